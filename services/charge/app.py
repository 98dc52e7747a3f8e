"""Lambda entry point for the charge step (SQS event source)."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import sqs_handler
from paypipe.steps import charge

handler = sqs_handler(charge.build)
