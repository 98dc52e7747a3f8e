"""Lambda entry points for the fraud step (SQS) and the review sweep (schedule)."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import lazy_handler, sqs_handler
from paypipe.steps import fraud

handler = sqs_handler(fraud.build)
sweep_handler = lazy_handler(fraud.build_sweep)
