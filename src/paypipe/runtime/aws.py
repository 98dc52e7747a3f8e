"""AWS clients and settings for the imperative shell (one client per service per process)."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode with a few attempts: absorbs throttling from KMS and DynamoDB.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=5, read_timeout=20)


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=CLIENT_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests and the embedded runner switch endpoints)."""
    client.cache_clear()


class MissingSettingError(RuntimeError):
    pass


def setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise MissingSettingError(f"environment variable {name} is required")
    return value


def int_setting(name: str, default: int) -> int:
    return int(setting(name, str(default)))
