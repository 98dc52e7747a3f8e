"""Lambda entry points for ACH batching: collect released payouts (SQS), cut files (schedule)."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import lazy_handler, sqs_handler
from paypipe.steps import ach_batch

handler = sqs_handler(ach_batch.build)
cut_handler = lazy_handler(ach_batch.build_cut)
