"""Cold start: import time of each Lambda entry point, each in a fresh interpreter.

CPU time inside the subprocess (interpreter start-up excluded; CPU rather than wall time
because other work shares the machine), minimum of N runs, with the
bytecode cache warm (as for a layer installed with pip). "init" adds the first-invocation
build (clients, settings, rule files) that ``lazy_handler`` defers to the first event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = ("validate", "tokenize", "fraud", "escrow_hold", "release", "ach_batch")
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
    "ACH_BUCKET": "ach",
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


def _measure(body: str, init: str, runs: int) -> tuple[float, float]:
    env = {**os.environ, **FAKE_ENV}
    samples = []
    for _ in range(runs):
        out = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", _PROBE.format(body=body, init=init)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
        ).stdout
        samples.append(json.loads(out.splitlines()[-1]))
    return min(s["import"] for s in samples), min(s["init"] for s in samples)


def measure(runs: int = 7) -> list[ColdStart]:
    baseline_init = "boto3.client('dynamodb')\n"  # one client: the least any step builds
    results = [ColdStart("boto3 + Powertools (batch, idempotency)", *_measure(BASELINE, baseline_init, runs))]
    for step in STEPS:
        app = REPO / "services" / step / "app.py"
        body = _IMPORT_APP.format(path=str(app), code=str(app.parent))
        # Build what the first SQS event would build, without an event (no AWS call).
        init = (
            "from paypipe.runtime import logging as log\n"
            f"log.configure()\nfrom paypipe.steps import {step}\n{step}.build()\n"
        )
        results.append(ColdStart(f"services/{step}/app.py", *_measure(body, init, runs)))
    return results
