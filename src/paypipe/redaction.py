"""Card-number redaction used by every log line and diagnostic the pipeline emits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from paypipe.domain.tokenization import REDACTED_PAN, redact_pan

__all__ = ["SENSITIVE_KEYS", "redact", "redact_json_text", "redact_pan"]

SENSITIVE_KEYS = frozenset(
    {"number", "pan", "card_number", "cvv", "account_number", "ciphertext", "plaintext"}
)
# Masked in parked messages too: a message body keeps its other fields for diagnosis and replay.
PARKED_SENSITIVE_KEYS = frozenset({"cvv", "account_number"})
REDACTED = "[REDACTED]"
MAX_DEPTH = 12


def redact(value: Any, depth: int = 0) -> Any:
    """A copy with sensitive keys masked and card-number-like digit runs replaced, at any depth.

    Strings, booleans and None keep their type, and so do numbers unless their digits hide a card
    number (then they become "[PAN]"); any other object is redacted as its text.
    """
    if depth > MAX_DEPTH:
        return "[truncated]"
    if isinstance(value, str):
        return redact_pan(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if str(key).lower() in SENSITIVE_KEYS else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, depth + 1) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return _redact_number(value)
    return redact_pan(str(value))


def _redact_number(value: int | float) -> int | float | str:
    text = repr(value)  # the form json.dumps writes
    return value if redact_pan(text) == text else REDACTED_PAN


def redact_json_text(text: str) -> str:
    """``text`` with every card number, CVV and account number masked, still valid JSON if it was.

    Text with none of them is returned unchanged (byte for byte). In a JSON document card numbers
    are masked value by value, so one hidden in a number (``"schema_version": 4111...``) does not
    leave broken JSON behind, and CVV and account number fields are masked by key; other text is
    masked as text (card numbers only: it has no keys).
    """
    if redact_pan(text) == text and not any(f'"{key}"' in text.lower() for key in PARKED_SENSITIVE_KEYS):
        return text
    try:
        document = json.loads(text)
        return json.dumps(_redact_for_parking(document), ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError):
        return redact_pan(text)


def _redact_for_parking(value: Any) -> Any:
    """Card numbers, CVVs and account numbers masked, every other field kept: what a parked message
    keeps. A null CVV stays null (there was none)."""
    if isinstance(value, str):
        return redact_pan(value)
    if isinstance(value, dict):
        return {
            redact_pan(key): REDACTED
            if str(key).lower() in PARKED_SENSITIVE_KEYS and item is not None
            else _redact_for_parking(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_for_parking(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    return _redact_number(value)
