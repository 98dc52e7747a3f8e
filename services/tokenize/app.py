"""Lambda entry points for the tokenize step (SQS) and detokenize (direct, IAM-restricted)."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import lazy_handler, sqs_handler
from paypipe.steps import tokenize

handler = sqs_handler(tokenize.build)
detokenize_handler = lazy_handler(tokenize.build_detokenize)
