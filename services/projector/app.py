"""Lambda entry point for the timeline projector (SQS event source: every pipeline event)."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import sqs_handler
from paypipe.steps import projector

handler = sqs_handler(projector.build)
