"""Lambda entry point of the card processor's feed (a schedule): its chargeback notices as
DisputeOpened and DisputeResolved events under the source paypipe.processor."""

from paypipe.runtime import startup  # noqa: F401 - first: see paypipe.runtime.startup
from paypipe.runtime.entry import lazy_handler
from paypipe.steps import processor

handler = lazy_handler(processor.build)
