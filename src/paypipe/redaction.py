"""Card-number redaction used by every log line and diagnostic the pipeline emits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paypipe.domain.tokenization import redact_pan

__all__ = ["SENSITIVE_KEYS", "redact", "redact_pan"]

SENSITIVE_KEYS = frozenset(
    {"number", "pan", "card_number", "cvv", "account_number", "ciphertext", "plaintext"}
)
MAX_DEPTH = 12


def redact(value: Any, depth: int = 0) -> Any:
    """A copy with sensitive keys masked and card-number-like digit runs replaced, at any depth.

    Strings, numbers, booleans and None keep their type; any other object is redacted as its text.
    """
    if depth > MAX_DEPTH:
        return "[truncated]"
    if isinstance(value, str):
        return redact_pan(value)
    if isinstance(value, Mapping):
        return {
            key: "[REDACTED]" if str(key).lower() in SENSITIVE_KEYS else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, depth + 1) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_pan(str(value))
