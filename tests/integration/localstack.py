"""LocalStack tooling shared by the integration tests and ``make bench``: clients, start and stop
with scripts/localstack.sh, the stack deployed with scripts/localstack_deploy.py, and the
functions' clock moved forward."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
PORT = os.environ.get("LOCALSTACK_PORT", "4566")
ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT", f"http://127.0.0.1:{PORT}")
CLIENT_CONFIG = Config(read_timeout=320, retries={"mode": "standard", "max_attempts": 3})
# Read by the host-mode Lambda executor at each invocation (scripts/localstack.sh points it here).
CLOCK_FILE = REPO_ROOT / ".localstack" / "lambda-clock-offset-ms"


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
def deployed_stack(stack: str, parameters: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """LocalStack up (started here unless already running, then stopped again) and ``stack``
    deployed from infra/sam/template.yaml (``parameters`` over the deploy script's); yields the
    stack's outputs."""
    started_here = localstack("status").returncode != 0
    if started_here:
        started = localstack("start")
        if started.returncode != 0:
            raise LocalStackUnavailable("LocalStack did not start", started.stdout + started.stderr)
    try:
        deploy = subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "scripts" / "localstack_deploy.py"),
                "--stack",
                stack,
                *(f"--param={key}={value}" for key, value in (parameters or {}).items()),
            ],
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


def functions_clock_movable() -> bool:
    """True when the running LocalStack is this checkout's host-mode one, whose functions read
    CLOCK_FILE (LocalStack's Docker executor has no such clock)."""
    status = localstack("status")
    return status.returncode == 0 and "running (host)" in status.stdout


class FunctionsClock:
    """The deployed functions' time: the host's, moved forward by what CLOCK_FILE says.

    LocalStack stamps the SQS records it delivers with the host's clock; the executor adds the
    offset to those stamps, which the steps take as the time each record was received. Use it
    only while nothing is in flight, and ``reset`` it after (the next tests expect the host's
    clock)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def move_to(self, moment: datetime) -> None:
        if moment <= self.now():
            raise ValueError(f"the functions' clock only moves forward, not to {moment.isoformat()}")
        self.offset = moment - datetime.now(UTC)
        CLOCK_FILE.write_text(str(int(self.offset.total_seconds() * 1000)))

    def reset(self) -> None:
        self.offset = timedelta(0)
        CLOCK_FILE.unlink(missing_ok=True)
