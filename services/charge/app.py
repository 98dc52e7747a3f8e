"""Lambda entry points for the charge step and its refunds (SQS event sources), and the simulated
acquirer's daily settlement report (a schedule)."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import lazy_handler, sqs_handler
from paypipe.steps import charge

handler = sqs_handler(charge.build)
refund_handler = sqs_handler(charge.build_refunds)
report_handler = lazy_handler(charge.build_settlement_report)
