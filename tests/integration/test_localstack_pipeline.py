"""End to end on LocalStack: infra/sam/template.yaml deployed through CloudFormation.

LocalStack's event source mappings feed the functions (batching, ReportBatchItemFailures,
visibility timeouts, redelivery); the session starts LocalStack with scripts/localstack.sh
when it is not running (and stops it afterwards) and deploys with scripts/localstack_deploy.py.
Every payment id carries a per-run id, and a tap rule on the bus (test harness only) routes
this run's events to a queue the tests read.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from paypipe.domain import nacha
from paypipe.embedded.runtime import scheduled_event
from paypipe.embedded.scenario import card_number, payment_requested
from paypipe.events import models as ev
from paypipe.runtime.publisher import EventPublisher

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
PORT = os.environ.get("LOCALSTACK_PORT", "4566")
ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT", f"http://127.0.0.1:{PORT}")
STACK = os.environ.get("LOCALSTACK_STACK", "paypipe-localstack")
DEADLINE_SECONDS = 120
CLIENT_CONFIG = Config(read_timeout=320, retries={"mode": "standard", "max_attempts": 3})


def aws(service: str) -> Any:
    return boto3.client(
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


@pytest.fixture(scope="session")
def stack_outputs() -> Iterator[dict[str, str]]:
    """LocalStack up (started here unless already running) and the stack deployed."""
    started_here = localstack("status").returncode != 0
    if started_here:
        result = localstack("start")
        assert result.returncode == 0, result.stdout + result.stderr
    try:
        deploy = subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / "localstack_deploy.py"), "--stack", STACK],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LOCALSTACK_ENDPOINT": ENDPOINT},
        )
        assert deploy.returncode == 0, deploy.stderr
        yield json.loads(deploy.stdout)
    finally:
        if started_here:
            localstack("stop")


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

    def drain(self) -> None:
        messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for message in messages:
            body = json.loads(message["Body"])
            self.seen.append(ev.parse_detail(body["detail-type"], body["detail"]))
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def of(self, payment_id: str, event_type: type[ev.Event]) -> list[Any]:
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


def function_name(logical_id: str) -> str:
    resource = aws("cloudformation").describe_stack_resource(StackName=STACK, LogicalResourceId=logical_id)
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


def invoke_scheduled(logical_id: str, at: datetime) -> Any:
    response = aws("lambda").invoke(
        FunctionName=function_name(logical_id), Payload=json.dumps(scheduled_event(at)).encode()
    )
    payload = json.loads(response["Payload"].read() or b"null")
    assert "FunctionError" not in response, payload
    return payload


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


def test_payments_reach_each_terminal_outcome_and_the_ach_file_matches(
    stack_outputs: dict[str, str], tap: Tap, client: EventPublisher, run_id: str
) -> None:
    rng = random.Random(run_id)
    now = datetime.now(UTC).replace(microsecond=0)
    rejected = request(f"{run_id}-rejected", rng, exp=(1, 2024))
    completed = request(f"{run_id}-completed", rng)
    expiring = request(f"{run_id}-expiring", rng)
    tester = {"customer_id": f"cust-{run_id}-tester", "ip_address": "203.0.113.9", "amount_cents": 100}
    tester_pan = card_number(rng)
    probes = [
        request(
            f"{run_id}-probe{i}", rng, pan=tester_pan, occurred_at=now - timedelta(minutes=10 - i), **tester
        )
        for i in range(3)
    ]
    assert client.publish([rejected, completed, expiring, *probes]).ok

    tap.wait_for("rejection", lambda: bool(tap.of(rejected.payment_id, ev.PaymentRejected)))
    held = lambda payment: bool(tap.of(payment.payment_id, ev.FundsHeld))  # noqa: E731
    tap.wait_for("holds", lambda: held(completed) and held(expiring))
    scored = (ev.PaymentScored, ev.PaymentDeclined)
    tap.wait_for("probes scored", lambda: all(tap.of(p.payment_id, scored) for p in probes))

    # Three small charges on one card within the hour: the fourth is card testing.
    declined = request(f"{run_id}-declined", rng, pan=tester_pan, occurred_at=now, **tester)
    assert client.publish([declined]).ok
    tap.wait_for("decline", lambda: bool(tap.of(declined.payment_id, ev.PaymentDeclined)))
    assert not tap.of(declined.payment_id, ev.FundsHeld)

    hold = tap.of(completed.payment_id, ev.FundsHeld)[0]
    done = ev.ServiceCompleted.create(
        payment_id=hold.payment_id,
        producer="client",
        cause=hold,
        data=ev.ServiceCompletedData(completed_at=now),
    )
    assert client.publish([done]).ok
    tap.wait_for("release on completion", lambda: bool(tap.of(completed.payment_id, ev.FundsReleased)))

    # Past the hold period the sweep releases the hold nobody completed.
    hold_days = int(stack_parameters()["HoldDays"])
    invoke_scheduled("ReleaseSweepFunction", now + timedelta(days=hold_days + 1))
    tap.wait_for("release on expiry", lambda: bool(tap.of(expiring.payment_id, ev.FundsReleased)))
    assert tap.of(expiring.payment_id, ev.FundsReleased)[0].data.trigger is ev.ReleaseTrigger.HOLD_EXPIRED
    assert (
        tap.of(completed.payment_id, ev.FundsReleased)[0].data.trigger is ev.ReleaseTrigger.SERVICE_COMPLETED
    )

    # The ACH cut batches a payout once the ach_batch consumer has recorded it; cut until it has.
    paid = [completed.payment_id, expiring.payment_id]
    tap.wait_for(
        "payouts batched",
        lambda: all(tap.of(pid, ev.PayoutBatched) for pid in paid),
        on_poll=lambda: invoke_scheduled("AchCutFunction", now + timedelta(days=hold_days + 3)),
    )

    s3 = aws("s3")
    for payment_id in paid:
        released = tap.of(payment_id, ev.FundsReleased)[0]
        payout = tap.of(payment_id, ev.PayoutBatched)[0]
        batch = next(
            e for e in tap.seen if isinstance(e, ev.AchBatchCreated) and payment_id in e.data.payment_ids
        )
        assert batch.data.bucket == stack_outputs["AchBucketName"]
        text = s3.get_object(Bucket=batch.data.bucket, Key=batch.data.file_key)["Body"].read().decode()
        parsed = nacha.parse(text, strict=True)
        assert parsed.control.total_credit_cents == batch.data.total_credit_cents
        assert parsed.control.total_debit_cents == batch.data.total_debit_cents
        entries = {entry.trace_number: entry for b in parsed.batches for entry in b.entries}
        assert entries[payout.data.trace_number].amount_cents == released.data.amount_cents
        assert payout.data.amount_cents == released.data.amount_cents

    terminal = {e.payment_id: e.event_type for e in tap.seen if e.event_type in ev.TERMINAL_EVENT_TYPES}
    assert terminal[rejected.payment_id] == "PaymentRejected"
    assert terminal[declined.payment_id] == "PaymentDeclined"
    assert terminal[completed.payment_id] == terminal[expiring.payment_id] == "PayoutBatched"


def stack_parameters() -> dict[str, str]:
    described = aws("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}


def parked(dlq_url: str, marker: str) -> dict[str, Any] | None:
    """The DLQ message whose body contains ``marker`` (deleted once found), if any yet."""
    sqs = aws("sqs")
    messages = sqs.receive_message(
        QueueUrl=dlq_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        VisibilityTimeout=0,
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
    ).get("Messages", [])
    for message in messages:
        if marker in message["Body"]:
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            return dict(message)
    return None


def wait_parked(dlq_url: str, marker: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        message = parked(dlq_url, marker)
        if message is not None:
            return message
    raise AssertionError(f"no message with {marker} in {dlq_url}")


def attribute(message: dict[str, Any], name: str) -> str:
    return str(message["MessageAttributes"][name]["StringValue"])


def test_record_failing_on_every_receive_reaches_the_step_dlq(
    stack_outputs: dict[str, str], run_id: str
) -> None:
    """Completion of a payment that was never held: retried by redelivery, parked on the last receive."""
    payment_id = f"{run_id}-nohold"
    completion = ev.ServiceCompleted.create(
        payment_id=payment_id,
        producer="client",
        data=ev.ServiceCompletedData(completed_at=datetime.now(UTC)),
    )
    body = {"detail-type": "ServiceCompleted", "source": "paypipe.client", "detail": ev.to_detail(completion)}
    aws("sqs").send_message(QueueUrl=stack_outputs["ReleaseQueueUrl"], MessageBody=json.dumps(body))

    message = wait_parked(stack_outputs["ReleaseDLQUrl"], payment_id)
    max_receives = stack_parameters()["MaxReceiveCount"]
    assert attribute(message, "error_reason") == "HoldNotFoundError"
    assert attribute(message, "failed_step") == "release"
    assert attribute(message, "receive_count") == max_receives


def test_malformed_message_is_parked_at_once(stack_outputs: dict[str, str], run_id: str) -> None:
    marker = f"{run_id}-malformed"
    aws("sqs").send_message(QueueUrl=stack_outputs["ValidateQueueUrl"], MessageBody=f"{{not json {marker}")

    message = wait_parked(stack_outputs["ValidateDLQUrl"], marker)
    assert attribute(message, "error_reason") == "MalformedJson"
    assert attribute(message, "receive_count") == "1"
