"""AWS clients and settings for the imperative shell (one client per service per process)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode with a few attempts: absorbs throttling from KMS and DynamoDB.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=5, read_timeout=20)

ClientWrapper = Callable[[str, Any], Any]
_wrapper: list[ClientWrapper] = []


@cache
def client(service: str) -> Any:
    made = boto3.client(service, config=CLIENT_CONFIG)  # type: ignore[call-overload]
    return _wrapper[0](service, made) if _wrapper else made


class _LazyClient:
    """Stands for ``client(service)`` and makes it on first use."""

    def __init__(self, service: str) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self._service), name)


def lazy_client(service: str) -> Any:
    """A client made on first use: a cold start skips those of rare paths (e.g. the DLQ's)."""
    return _LazyClient(service)


def reset_clients() -> None:
    """Forget cached clients (tests and the embedded runner switch endpoints)."""
    client.cache_clear()


def wrap_clients(wrapper: ClientWrapper | None) -> None:
    """Route every client made from now on through ``wrapper`` (fault injection); None removes it."""
    _wrapper.clear()
    if wrapper is not None:
        _wrapper.append(wrapper)
    reset_clients()


class MissingSettingError(RuntimeError):
    pass


def setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise MissingSettingError(f"environment variable {name} is required")
    return value


def int_setting(name: str, default: int) -> int:
    return int(setting(name, str(default)))
