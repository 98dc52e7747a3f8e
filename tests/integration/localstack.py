"""LocalStack tooling shared by the integration tests and ``make bench``: clients, start and stop
with scripts/localstack.sh, and the stack deployed with scripts/localstack_deploy.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
PORT = os.environ.get("LOCALSTACK_PORT", "4566")
ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT", f"http://127.0.0.1:{PORT}")
CLIENT_CONFIG = Config(read_timeout=320, retries={"mode": "standard", "max_attempts": 3})


class LocalStackUnavailable(RuntimeError):
    """LocalStack did not start, or the stack did not deploy."""

    def __init__(self, what: str, output: str) -> None:
        super().__init__(f"{what}: {output}")
        self.what = what
        self.output = output


def aws(service: str) -> Any:
    """A client for LocalStack (not a fixture: the moto ``aws`` fixture is tests/conftest.py's)."""
    factory: Callable[..., Any] = boto3.client
    return factory(
        service,
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=CLIENT_CONFIG,
    )


def localstack(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "localstack.sh"), command],
        capture_output=True,
        text=True,
        check=False,
    )


@contextmanager
def deployed_stack(stack: str) -> Iterator[dict[str, str]]:
    """LocalStack up (started here unless already running, then stopped again) and ``stack``
    deployed from infra/sam/template.yaml; yields the stack's outputs."""
    started_here = localstack("status").returncode != 0
    if started_here:
        started = localstack("start")
        if started.returncode != 0:
            raise LocalStackUnavailable("LocalStack did not start", started.stdout + started.stderr)
    try:
        deploy = subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / "localstack_deploy.py"), "--stack", stack],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LOCALSTACK_ENDPOINT": ENDPOINT},
        )
        if deploy.returncode != 0:
            raise LocalStackUnavailable("deploy to LocalStack failed", deploy.stderr)
        yield json.loads(deploy.stdout)
    finally:
        if started_here:
            localstack("stop")
