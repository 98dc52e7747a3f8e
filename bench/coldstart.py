"""Cold start: import time of each Lambda entry point, each in a fresh interpreter.

CPU time inside the subprocess (interpreter start-up excluded; CPU rather than wall time
because other work shares the machine), minimum of N rounds (each samples every figure once),
with the bytecode cache warm (as for a layer installed with pip). "init" adds the
first-invocation build (clients, settings, rule files) that ``lazy_handler`` defers to the
first event.

It runs in a venv with the runtime dependencies alone (``.bench/venvs/runtime``: the Lambda
layer's src/requirements.txt plus boto3, which the Lambda runtime provides, at the versions of the
development venv), since packages only development installs change what an import does (structlog
imports rich when it is there, pydantic loads the plugins that packages register).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME_VENV = REPO / ".bench" / "venvs" / "runtime"
LAYER_REQUIREMENTS = REPO / "src" / "requirements.txt"
STEPS = ("validate", "tokenize", "fraud", "escrow_hold", "release", "ach_batch", "ach_returns", "projector")
BASELINE = (
    "import boto3\n"
    "from aws_lambda_powertools.utilities.batch import BatchProcessor\n"
    "from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer\n"
)
# Placeholders so the build step finds its settings (no AWS call is made while building).
FAKE_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "EVENT_BUS_NAME": "bus",
    "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "IDEMPOTENCY_TABLE": "idem",
    "PAYMENTS_TABLE": "payments",
    "VAULT_TABLE": "vault",
    "VAULT_KEY_ID": "alias/vault",
    "VELOCITY_TABLE": "velocity",
    "LEDGER_TABLE": "ledger",
    "PAYOUTS_TABLE": "payouts",
    "REVIEWS_TABLE": "reviews",
    "TIMELINE_TABLE": "timeline",
    "ACH_BUCKET": "ach",
    "ACH_KMS_KEY_ID": "alias/ach",
    "LOG_FILE": os.devnull,
}

_PROBE = """
import importlib.util, json, sys, time
start = time.process_time()
{body}
imported = time.process_time()
{init}
done = time.process_time()
print(json.dumps({{"import": imported - start, "init": done - start}}))
"""

_IMPORT_APP = """
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
sys.path.insert(0, {code!r})
spec.loader.exec_module(module)
"""


@dataclass(frozen=True)
class ColdStart:
    name: str
    import_s: float
    init_s: float


def runtime_requirements() -> list[str]:
    """The layer's requirements and boto3, pinned to the versions this interpreter has."""
    names = ["boto3"]
    for line in LAYER_REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            names.append(re.split(r"[<>=!~\[ ]", line.strip(), maxsplit=1)[0])
    return [f"{name}=={metadata.version(name)}" for name in names]


def runtime_python() -> Path:
    """The runtime-only venv's interpreter, built once (again when the pins change)."""
    python = RUNTIME_VENV / "bin" / "python"
    stamp = RUNTIME_VENV / "pinned.txt"
    pins = "\n".join(runtime_requirements()) + "\n"
    if not python.exists() or not stamp.exists() or stamp.read_text() != pins:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(RUNTIME_VENV)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603 - fixed arguments
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins.split()],
            check=True,
        )
        stamp.write_text(pins)
    return python


def _sample(python: Path | str, body: str, init: str) -> tuple[float, float]:
    # src/ first on the path, as the layer's python/ is: the venv has no paypipe installed.
    env = {**os.environ, **FAKE_ENV, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [str(python), "-c", _PROBE.format(body=body, init=init)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    ).stdout
    sample = json.loads(out.splitlines()[-1])
    return sample["import"], sample["init"]


def probes() -> dict[str, tuple[str, str]]:
    """What each figure imports and then builds: the baseline, then every entry point."""
    baseline_init = "boto3.client('dynamodb')\n"  # one client: the least any step builds
    found = {"boto3 + Powertools (batch, idempotency)": (BASELINE, baseline_init)}
    for step in STEPS:
        app = REPO / "services" / step / "app.py"
        body = _IMPORT_APP.format(path=str(app), code=str(app.parent))
        # Build what the first SQS event would build, without an event (no AWS call), and end
        # start-up as the Lambda entry does then.
        init = (
            "from paypipe.runtime import logging as log\n"
            f"log.configure()\nfrom paypipe.steps import {step}\n{step}.build()\n"
            "startup = sys.modules.get('paypipe.runtime.startup')\n"
            "startup and startup.finish()\n"
        )
        found[f"services/{step}/app.py"] = (body, init)
    return found


def measure(runs: int = 7, python: Path | str | None = None) -> list[ColdStart]:
    """Cold starts in the runtime-only venv (or under ``python``, e.g. the development venv's).

    Each round samples every figure once, so a change in the machine's load between rounds
    shows in the baseline as much as in the functions."""
    python = python or runtime_python()
    todo = probes()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in todo}
    for _ in range(runs):
        for name, (body, init) in todo.items():
            samples[name].append(_sample(python, body, init))
    return [
        ColdStart(name, min(s[0] for s in found), min(s[1] for s in found)) for name, found in samples.items()
    ]
