"""End to end on LocalStack: infra/sam/template.yaml deployed through CloudFormation.

LocalStack's event source mappings feed the functions (batching, ReportBatchItemFailures,
visibility timeouts, redelivery); the session starts LocalStack with scripts/localstack.sh
when it is not running (and stops it afterwards) and deploys with scripts/localstack_deploy.py.
The fixtures (LocalStack, the deployed stack, the tap on the bus) are in conftest.py.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paypipe.domain import nacha, settlement
from paypipe.embedded.runtime import scheduled_event
from paypipe.embedded.scenario import card_number
from paypipe.events import models as ev
from paypipe.runtime.publisher import EventPublisher
from tests.integration.conftest import DEADLINE_SECONDS, STACK, Tap, request, stack_parameters
from tests.integration.localstack import aws

pytestmark = pytest.mark.integration


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


def test_payments_reach_each_terminal_outcome_and_the_ach_file_matches(
    stack_outputs: dict[str, str], tap: Tap, client: EventPublisher, run_id: str
) -> None:
    rng = random.Random(run_id)
    now = datetime.now(UTC).replace(microsecond=0)
    rejected = request(f"{run_id}-rejected", rng, exp=(1, 2024))
    completed = request(f"{run_id}-completed", rng)
    expiring = request(f"{run_id}-expiring", rng)
    disputed = request(f"{run_id}-disputed", rng)
    tester = {"customer_id": f"cust-{run_id}-tester", "ip_address": "203.0.113.9", "amount_cents": 100}
    tester_pan = card_number(rng)
    probes = [request(f"{run_id}-probe{i}", rng, pan=tester_pan, **tester) for i in range(3)]
    no_funds = request(f"{run_id}-no-funds", rng, pan="4000000000009995")  # the acquirer's test card
    assert client.publish([rejected, completed, expiring, disputed, *probes, no_funds]).ok

    tap.wait_for("rejection", lambda: bool(tap.of(rejected.payment_id, ev.PaymentRejected)))

    def held(payment: ev.PaymentRequested) -> bool:
        return bool(tap.of(payment.payment_id, ev.FundsHeld))

    tap.wait_for("holds", lambda: held(completed) and held(expiring) and held(disputed))
    for payment in (completed, expiring, disputed):
        (charged,) = tap.of(payment.payment_id, ev.PaymentCharged)
        assert charged.data.charge.captured_cents == payment.data.amount_cents
    tap.wait_for("card decline", lambda: bool(tap.of(no_funds.payment_id, ev.PaymentDeclined)))
    (card_declined,) = tap.of(no_funds.payment_id, ev.PaymentDeclined)
    assert card_declined.data.card is not None and card_declined.data.card.code == "insufficient_funds"
    assert not tap.of(no_funds.payment_id, ev.FundsHeld)
    scored = (ev.PaymentScored, ev.PaymentDeclined)
    tap.wait_for("probes scored", lambda: all(tap.of(p.payment_id, scored) for p in probes))

    # Three small charges on one card within the hour: the fourth is card testing.
    declined = request(f"{run_id}-declined", rng, pan=tester_pan, **tester)
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

    # A dispute the client resolves as a refund gives the card its money back.
    disputed_hold = tap.of(disputed.payment_id, ev.FundsHeld)[0]
    opened = ev.DisputeOpened.create(
        payment_id=disputed.payment_id,
        producer="client",
        cause=disputed_hold,
        data=ev.DisputeOpenedData(dispute_id=f"{run_id}-dp", reason="not as described"),
    )
    assert client.publish([opened]).ok
    tap.wait_for("hold frozen", lambda: bool(tap.of(disputed.payment_id, ev.HoldFrozen)))
    resolved = ev.DisputeResolved.create(
        payment_id=disputed.payment_id,
        producer="client",
        cause=opened,
        data=ev.DisputeResolvedData(dispute_id=f"{run_id}-dp", outcome=ev.DisputeOutcome.REFUND),
    )
    assert client.publish([resolved]).ok
    tap.wait_for("card refunded", lambda: bool(tap.of(disputed.payment_id, ev.CardRefunded)))
    (card_refund,) = tap.of(disputed.payment_id, ev.CardRefunded)
    assert card_refund.data.amount_cents == disputed.data.amount_cents

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

    # The simulated acquirer's report of the day settles both captures.
    day = tap.of(completed.payment_id, ev.PaymentCharged)[0].occurred_at.date()
    written = aws("lambda").invoke(
        FunctionName=function_name("AcquirerReportFunction"),
        Payload=json.dumps({"day": day.isoformat()}).encode(),
    )
    report_key = json.loads(written["Payload"].read())["key"]
    report = s3.get_object(Bucket=stack_outputs["AchBucketName"], Key=report_key)["Body"].read().decode()
    lines = settlement.parse_report(report, day).lines
    captured = {
        line.payment_id: line.amount_minor for line in lines if line.kind is settlement.LineKind.CAPTURE
    }
    refunded = {
        line.payment_id: line.amount_minor for line in lines if line.kind is settlement.LineKind.REFUND
    }
    charged = (completed, expiring, disputed)
    assert {p.payment_id: captured.get(p.payment_id) for p in charged} == {
        p.payment_id: p.data.amount_cents for p in charged
    }
    assert refunded.get(disputed.payment_id) == disputed.data.amount_cents

    # The day's match against the card book, once the book has taken every card event: each
    # reported line is a booked one (this stack's other runs of the day included).
    tap.wait_for("card book caught up", lambda: queue_empty(stack_outputs["CardBookQueueUrl"]))
    matched = aws("lambda").invoke(
        FunctionName=function_name("SettlementMatchFunction"),
        Payload=json.dumps({"day": day.isoformat()}).encode(),
    )
    assert json.loads(matched["Payload"].read())["discrepancies"] == 0

    terminal = {e.payment_id: e.event_type for e in tap.seen if e.event_type in ev.TERMINAL_EVENT_TYPES}
    assert terminal[rejected.payment_id] == "PaymentRejected"
    assert terminal[declined.payment_id] == "PaymentDeclined"
    assert terminal[no_funds.payment_id] == "PaymentDeclined"
    assert terminal[completed.payment_id] == terminal[expiring.payment_id] == "PayoutBatched"
    assert terminal[disputed.payment_id] == "FundsRefunded"


def queue_empty(queue_url: str) -> bool:
    """No message waiting, in flight or delayed on the queue."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    names.append("ApproximateNumberOfMessagesDelayed")
    counts = aws("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return all(counts.get(name) == "0" for name in names)


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


def test_the_deployed_archive_keeps_no_cardholder_data_and_bus_and_archive_use_the_storage_key(
    stack_outputs: dict[str, str],
) -> None:
    """What the stack deployed, as CloudFormation holds it; and, where the provider creates the
    archive (LocalStack 4.14's community provider accepts AWS::Events::Archive without creating
    one, and keeps no key on the bus), what the service reports."""
    deployed = aws("cloudformation").get_template(StackName=STACK, TemplateStage="Processed")["TemplateBody"]
    resources = json.loads(deployed)["Resources"] if isinstance(deployed, str) else deployed["Resources"]
    storage_key = {"Fn::GetAtt": ["StorageKey", "Arn"]}
    archive = resources["EventArchive"]["Properties"]
    assert archive["KmsKeyIdentifier"] == storage_key
    assert resources["EventBus"]["Properties"]["KmsKeyIdentifier"] == storage_key
    assert_archive_pattern(archive["EventPattern"])

    physical = function_name("EventArchive")
    if physical != "unknown":
        described = aws("events").describe_archive(ArchiveName=physical)
        assert_archive_pattern(json.loads(described["EventPattern"]))
        key_arn = aws("kms").describe_key(KeyId=function_name("StorageKey"))["KeyMetadata"]["Arn"]
        assert described["KmsKeyIdentifier"] == key_arn
        bus = aws("events").describe_event_bus(Name=stack_outputs["EventBusName"])
        assert bus["KmsKeyIdentifier"] == key_arn


def assert_archive_pattern(pattern: dict[str, Any]) -> None:
    internal, client_branch = pattern["$or"]
    (excluded,) = internal["detail-type"]
    assert list(excluded) == ["anything-but"]  # the template lists them in contract order
    assert sorted(excluded["anything-but"]) == sorted(ev.CARDHOLDER_DATA_EVENT_TYPES)
    assert ev.CLIENT_SOURCE not in internal["source"]
    assert client_branch["source"] == [ev.CLIENT_SOURCE]
    assert set(client_branch["detail-type"]) == ev.CLIENT_EVENT_TYPES - ev.CARDHOLDER_DATA_EVENT_TYPES
