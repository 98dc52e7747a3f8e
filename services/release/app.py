"""Lambda entry points for the release step (SQS) and the expired-hold sweep (schedule)."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import lazy_handler, sqs_handler
from paypipe.steps import release

handler = sqs_handler(release.build)
sweep_handler = lazy_handler(release.build_sweep)
