"""``paypipe dlq`` against the stack deployed on LocalStack: a real park, fix and replay cycle.

A ServiceCompleted that overtakes its payment's hold fails in the release consumer on every
receive (HoldNotFoundError) and is parked in ReleaseDLQ on the last one. Once the payment is
held, the tool, finding the DLQs through the stack's CloudFormation outputs, replays that one
payment back to the release queue, and the funds are released exactly once.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from paypipe import cli
from paypipe.events import models as ev
from paypipe.ops.dlq import DlqMessage
from paypipe.ops.dlq_aws import depth, peek
from paypipe.runtime.publisher import EventPublisher
from tests.integration.conftest import DEADLINE_SECONDS, STACK, Tap, request, stack_parameters
from tests.integration.localstack import ENDPOINT, aws

pytestmark = pytest.mark.integration


def parked_for(dlq_url: str, payment_id: str) -> list[DlqMessage]:
    """The payment's messages in the DLQ, peeked (made visible again before returning)."""
    return [
        m for m in peek(aws("sqs"), dlq_url, limit=100, visibility_seconds=5) if m.payment_id == payment_id
    ]


def wait_parked(dlq_url: str, payment_id: str) -> DlqMessage:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        found = parked_for(dlq_url, payment_id)
        if found:
            assert len(found) == 1, found
            return found[0]
    raise AssertionError(f"{payment_id} never reached {dlq_url}")


def settle(tap: Tap) -> None:
    """Read the tap until a poll finds nothing more (each drain long-polls for a second)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while tap.drain():
        assert time.monotonic() < deadline, "the tap never went quiet"


def dlq(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    """``paypipe dlq <args> --json`` against the LocalStack stack: exit status and parsed output."""
    capsys.readouterr()
    status = cli.main(
        ["dlq", *args, "--stack", STACK, "--discover", "outputs", "--region", "us-east-1", "--json"]
    )
    out = capsys.readouterr().out
    return status, json.loads(out) if out.strip() else None


def test_completion_parked_before_the_hold_is_replayed_once_the_hold_exists(
    stack_outputs: dict[str, str],
    run_id: str,
    tap: Tap,
    client: EventPublisher,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", ENDPOINT)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    release_dlq, release_queue = stack_outputs["ReleaseDLQUrl"], stack_outputs["ReleaseQueueUrl"]

    # The tool finds the stack's DLQs through its CloudFormation outputs.
    status, listed = dlq(capsys, "list")
    assert status == 0
    assert listed["source"] == "outputs"
    by_name = {row["name"]: row for row in listed["dlqs"]}
    assert by_name["ReleaseDLQ"]["url"] == release_dlq
    assert by_name["ReleaseDLQ"]["kind"] == "consumer"

    # The completion overtakes the payment: the release consumer fails on every receive and parks it.
    payment = request(f"{run_id}-replay", random.Random(f"{run_id}-replay"))
    completion = ev.ServiceCompleted.create(
        payment_id=payment.payment_id,
        producer="client",
        data=ev.ServiceCompletedData(completed_at=datetime.now(UTC).replace(microsecond=0)),
    )
    assert client.publish([completion]).ok
    message = wait_parked(release_dlq, payment.payment_id)
    assert message.reason == "HoldNotFoundError"
    assert message.attributes["failed_step"] == "release"
    assert message.attributes["receive_count"] == stack_parameters()["MaxReceiveCount"]
    assert message.detail_type == "ServiceCompleted"
    assert message.event_id == completion.event_id
    assert message.replay_count == 0
    tap.drain()
    assert not tap.of(payment.payment_id, (ev.FundsHeld, ev.FundsReleased))

    # The cause goes away: the payment is requested, approved and held.
    assert client.publish([payment]).ok
    tap.wait_for("hold", lambda: bool(tap.of(payment.payment_id, ev.FundsHeld)))

    # A dry run plans exactly this message and leaves it parked.
    replay = ["replay", "ReleaseDLQ", "--payment-id", payment.payment_id]
    status, plan = dlq(capsys, *replay, "--dry-run")
    assert status == 0
    assert [p["message_id"] for p in plan["plan"]] == [message.message_id]
    assert [m.message_id for m in parked_for(release_dlq, payment.payment_id)] == [message.message_id]

    audit = tmp_path / "audit.jsonl"
    status, report = dlq(capsys, *replay, "--audit-file", str(audit))
    assert status == 0, report
    assert report["replayed"] == 1
    assert report["destination"] == release_queue
    assert report["errors"] == []

    (record,) = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["action"] == "replayed"
    assert record["message_id"] == message.message_id
    assert record["queue"] == release_dlq.rsplit("/", 1)[-1]
    assert record["queue_kind"] == "consumer"
    assert record["step"] == "release"
    assert record["destination"] == release_queue
    assert record["payment_id"] == payment.payment_id
    assert record["event_id"] == completion.event_id
    assert record["detail_type"] == "ServiceCompleted"
    assert record["reason"] == "HoldNotFoundError"
    assert record["replay_count"] == 1

    tap.wait_for("release", lambda: bool(tap.of(payment.payment_id, ev.FundsReleased)))
    # Once the release queue is empty the replayed message was consumed and deleted: no second
    # release can still be on its way from it.
    sqs = aws("sqs")
    tap.wait_for("release queue drained", lambda: depth(sqs, release_queue).total == 0)
    settle(tap)
    (released,) = tap.of(payment.payment_id, ev.FundsReleased)
    assert released.data.trigger is ev.ReleaseTrigger.SERVICE_COMPLETED
    assert released.data.amount_cents == payment.data.amount_cents
    assert parked_for(release_dlq, payment.payment_id) == []
