"""Lambda entry point for the fraud step (SQS event source)."""

from paypipe.runtime.entry import sqs_handler
from paypipe.steps import fraud

handler = sqs_handler(fraud.build)
