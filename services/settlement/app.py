"""Lambda entry points of the card book (an SQS event source: the card events) and of the daily
settlement match (a schedule): the acquirer's report against the booked card lines."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import lazy_handler, sqs_handler
from paypipe.steps import settlement

handler = sqs_handler(settlement.build)
match_handler = lazy_handler(settlement.build_matcher)
