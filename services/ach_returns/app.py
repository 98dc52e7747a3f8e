"""Lambda entry point for the returns consumer (the bank's files, through S3 notifications)."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import sqs_handler
from paypipe.steps import ach_returns

handler = sqs_handler(ach_returns.build)
