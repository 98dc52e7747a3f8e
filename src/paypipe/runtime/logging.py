"""Structured JSON logging that never lets a card number through."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from paypipe.redaction import redact_pan

SENSITIVE_KEYS = frozenset(
    {"number", "pan", "card_number", "cvv", "account_number", "ciphertext", "plaintext"}
)


def _redact_value(value: Any, depth: int = 0) -> Any:
    if depth > 12:
        return "[truncated]"
    if isinstance(value, str):
        return redact_pan(value)
    if isinstance(value, Mapping):
        return {
            key: "[REDACTED]" if str(key).lower() in SENSITIVE_KEYS else _redact_value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item, depth + 1) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_pan(str(value))


def redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """Last line of defence: mask sensitive keys and any Luhn-valid digit run in every field."""
    return {key: _redact_value(value) for key, value in event_dict.items()}


def configure(stream: TextIO | None = None, level: str | None = None) -> None:
    """JSON lines to ``stream``, else to the file named by LOG_FILE, else to stdout."""
    level_name = (level or os.environ.get("LOG_LEVEL", "INFO")).upper()
    if stream is None and os.environ.get("LOG_FILE"):
        stream = open(os.environ["LOG_FILE"], "a", encoding="utf-8")  # noqa: SIM115 - lives with the process
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_processor,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level_name, 20)
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger(**initial)
