"""Structured JSON logging that never lets a card number through."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from paypipe.redaction import redact

_stream: list[TextIO] = []  # where configure() sends the log lines


def write_line(text: str) -> None:
    """One raw line (an EMF document) to the log stream, next to the JSON log lines."""
    stream = _stream[0] if _stream else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """Last line of defence: mask sensitive keys and any Luhn-valid digit run in every field."""
    return {key: redact(value) for key, value in event_dict.items()}


def configure(stream: TextIO | None = None, level: str | None = None) -> None:
    """JSON lines to ``stream``, else to the file named by LOG_FILE, else to stdout."""
    level_name = (level or os.environ.get("LOG_LEVEL", "INFO")).upper()
    if stream is None and os.environ.get("LOG_FILE"):
        stream = open(os.environ["LOG_FILE"], "a", encoding="utf-8")  # noqa: SIM115 - lives with the process
    _stream[:] = [stream or sys.stdout]
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
