"""Card-number redaction used by every log line and diagnostic the pipeline emits."""

from paypipe.domain.tokenization import redact_pan

__all__ = ["redact_pan"]
