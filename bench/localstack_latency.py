"""Throughput and latency PaymentRequested -> FundsHeld on LocalStack (the deployed template).

Uses the integration tests' tooling (``tests/integration/localstack.py``): LocalStack started
when not running, stopped again afterwards, and the template deployed. Latency is the time from
the client's PutEvents to the FundsHeld event arriving on a tap queue (a bench-only rule), so it
includes the tap's own delivery.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.integration.localstack import LocalStackUnavailable, aws, deployed_stack

from paypipe.embedded.scenario import card_number, payment_requested
from paypipe.runtime.publisher import EventPublisher

STACK = "paypipe-bench"
DEADLINE_SECONDS = 240


@dataclass
class LocalStackRun:
    per_second: float | None
    payments: int
    held: int
    seconds: float
    latencies_ms: list[float]


def measure(runs: tuple[tuple[int, float | None], ...]) -> list[LocalStackRun] | str:
    """One run per (payments, requests per second; None: all at once), or why none could be made."""
    try:
        with deployed_stack(STACK) as outputs:
            return [_run(outputs["EventBusName"], payments, per_second) for payments, per_second in runs]
    except LocalStackUnavailable as error:
        return f"{error.what}: {error.output.strip()[-200:]}"


def _run(bus: str, payments: int, per_second: float | None) -> LocalStackRun:
    run_id = f"bench{uuid.uuid4().hex[:8]}"
    sqs, events = aws("sqs"), aws("events")
    tap = sqs.create_queue(QueueName=f"paypipe-tap-{run_id}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"paypipe-tap-{run_id}"
    pattern = {"detail-type": ["FundsHeld"], "detail": {"payment_id": [{"prefix": run_id}]}}
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
    client = EventPublisher(events, bus, producer="client")
    rng = random.Random(3)
    requested: dict[str, float] = {}
    held: dict[str, float] = {}
    try:
        start = time.perf_counter()
        for index in range(payments):
            payment_id = f"{run_id}-{index:05d}"
            request = payment_requested(
                payment_id,
                customer_id=f"cust-{index}",
                amount_cents=rng.randrange(2_000, 50_000),
                pan=card_number(rng),
                occurred_at=datetime.now(UTC),
                ip_address=f"198.51.100.{index % 250 + 1}",
            )
            requested[payment_id] = time.perf_counter()
            client.publish([request])
            if per_second:
                _collect(sqs, tap, held, wait=0)
                time.sleep(max(0.0, start + (index + 1) / per_second - time.perf_counter()))
        deadline = time.monotonic() + DEADLINE_SECONDS
        while len(held) < payments and time.monotonic() < deadline:
            _collect(sqs, tap, held, wait=1)
    finally:
        events.remove_targets(Rule=rule, EventBusName=bus, Ids=["tap"])
        events.delete_rule(Name=rule, EventBusName=bus)
        sqs.delete_queue(QueueUrl=tap)
    end = max(held.values()) if held else time.perf_counter()
    latencies = [(held[p] - requested[p]) * 1000 for p in held]
    return LocalStackRun(per_second, payments, len(held), end - start, latencies)


def _collect(sqs: Any, url: str, held: dict[str, float], wait: int) -> None:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get(
        "Messages", []
    )
    now = time.perf_counter()
    for message in messages:
        held.setdefault(json.loads(message["Body"])["detail"]["payment_id"], now)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
