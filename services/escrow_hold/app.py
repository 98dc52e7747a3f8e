"""Lambda entry point for the escrow hold step (SQS event source)."""

from paypipe.runtime.entry import sqs_handler
from paypipe.steps import escrow_hold

handler = sqs_handler(escrow_hold.build)
