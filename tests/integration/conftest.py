"""LocalStack for the ``integration`` tests: the deployed stack, clients, and a tap on the bus.

The session starts LocalStack with scripts/localstack.sh when it is not running (and stops it
afterwards; one it did not start is reused and left running) and deploys
infra/sam/template.yaml through CloudFormation with scripts/localstack_deploy.py. Every payment
id carries a per-run id, and a tap rule on the bus (test harness only) routes this run's events
to a queue the tests read. The fixtures are session-scoped and shared by every module here, so
the stack is deployed once per run.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from paypipe.embedded.scenario import card_number, payment_requested
from paypipe.events import models as ev
from paypipe.runtime.publisher import EventPublisher
from tests.integration.localstack import aws, deployed_stack

STACK = os.environ.get("LOCALSTACK_STACK", "paypipe-localstack")
DEADLINE_SECONDS = 120


@pytest.fixture(scope="session")
def stack_outputs() -> Iterator[dict[str, str]]:
    """LocalStack up (started here unless already running) and the stack deployed."""
    with deployed_stack(STACK) as outputs:
        yield outputs


@pytest.fixture(scope="session")
def run_id() -> str:
    return f"it{uuid.uuid4().hex[:10]}"


class Tap:
    """This run's events on the bus, read from a queue a test-only rule fills."""

    def __init__(self, bus: str, run_id: str) -> None:
        self.sqs = aws("sqs")
        self.events = aws("events")
        self.bus = bus
        self.name = f"paypipe-tap-{run_id}"
        self.url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        # This run's payments, and every ACH file (its payment id is the batch's, not a payment's).
        self.patterns = {
            f"{self.name}-payments": {"detail": {"payment_id": [{"prefix": run_id}]}},
            f"{self.name}-ach-files": {"detail-type": ["AchBatchCreated"]},
        }
        for rule, pattern in self.patterns.items():
            self.events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
            self.events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
        self.seen: list[ev.Event] = []

    def drain(self) -> int:
        """Read what the tap queue holds now (waiting up to a second); how many events were read."""
        messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for message in messages:
            body = json.loads(message["Body"])
            self.seen.append(ev.parse_detail(body["detail-type"], body["detail"]))
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def of(self, payment_id: str, event_type: type[ev.Event] | tuple[type[ev.Event], ...]) -> list[Any]:
        return [e for e in self.seen if e.payment_id == payment_id and isinstance(e, event_type)]

    def wait_for(
        self, what: str, found: Callable[[], bool], on_poll: Callable[[], None] | None = None
    ) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not found():
            if time.monotonic() > deadline:
                seen = sorted({(e.payment_id, e.event_type) for e in self.seen})
                raise AssertionError(f"timed out waiting for {what}; seen: {seen}")
            if on_poll:
                on_poll()
            self.drain()

    def close(self) -> None:
        for rule in self.patterns:
            self.events.remove_targets(Rule=rule, EventBusName=self.bus, Ids=["tap"])
            self.events.delete_rule(Name=rule, EventBusName=self.bus)
        self.sqs.delete_queue(QueueUrl=self.url)


@pytest.fixture(scope="session")
def tap(stack_outputs: dict[str, str], run_id: str) -> Iterator[Tap]:
    observer = Tap(stack_outputs["EventBusName"], run_id)
    yield observer
    observer.close()


@pytest.fixture(scope="session")
def client(stack_outputs: dict[str, str]) -> EventPublisher:
    return EventPublisher(aws("events"), stack_outputs["EventBusName"], producer="client")


def stack_parameters() -> dict[str, str]:
    described = aws("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}


def request(payment_id: str, rng: random.Random, **overrides: Any) -> ev.PaymentRequested:
    """A good payment unless ``overrides`` say otherwise; customer and IP unique to the payment."""
    arguments: dict[str, Any] = {
        "customer_id": f"cust-{payment_id}",
        "amount_cents": rng.randrange(5_000, 90_000),
        "pan": card_number(rng),
        "occurred_at": datetime.now(UTC).replace(microsecond=0),
        "ip_address": f"198.51.100.{rng.randrange(1, 250)}",
        "provider_id": f"prov-{payment_id}",
    }
    arguments.update(overrides)
    return payment_requested(payment_id, **arguments)


@pytest.fixture(autouse=True)
def _step_logs_in_a_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded step logs go to a file (the card number scan reads it), not stdout: the test's own,
    unless a fixture already chose one."""
    if not os.environ.get("LOG_FILE"):
        monkeypatch.setenv("LOG_FILE", str(tmp_path / "steps.log.jsonl"))
