"""Lambda entry point for the escrow hold step (SQS event source)."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import sqs_handler
from paypipe.steps import escrow_hold

handler = sqs_handler(escrow_hold.build)
