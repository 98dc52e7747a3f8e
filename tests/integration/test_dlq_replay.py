"""DLQ replay on the embedded (moto) pipeline: break a step, park payments, fix it, replay."""

import json
import random
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from paypipe import cli
from paypipe.adapters.velocity_store import VelocityStore
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.scenario import card_number, customer_ip, payment_requested
from paypipe.embedded.template import load_template
from paypipe.events import models as ev
from paypipe.ops.dlq import CAPPED, FILTERED, MALFORMED, DlqError, build_filters, dlqs_from_outputs
from paypipe.ops.dlq_aws import JsonlAudit, Replayer, ReplayOptions, discover, peek
from paypipe.stack.steps import FUNCTIONS

pytestmark = pytest.mark.embedded

STACK = "paypipe-dlqtest"


@pytest.fixture
def pipeline(monkeypatch, tmp_path):
    monkeypatch.setenv("LOG_FILE", str(tmp_path / "steps.log.jsonl"))
    with EmbeddedPipeline(stack_name=STACK) as embedded:
        yield embedded


@contextmanager
def broken_velocity_table(monkeypatch):
    """The fraud step's dependency fails until the block ends ("the bug is fixed")."""

    def unavailable(self, *args, **kwargs):
        raise RuntimeError("velocity table unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(VelocityStore, "history", unavailable)
        yield


def requests(count, tag="r"):
    rng = random.Random(count)
    now = datetime.now(UTC).replace(microsecond=0)
    out = []
    for index in range(count):
        customer = f"cust-{tag}-{index}"
        out.append(
            payment_requested(
                f"{tag}-{index:04d}",
                customer_id=customer,
                amount_cents=5_000 + index,
                pan=card_number(rng),
                occurred_at=now - timedelta(minutes=1),
                ip_address=customer_ip(customer),
            )
        )
    return out


def clients(pipeline):
    return pipeline.session.client("sqs"), pipeline.session.client("events")


def stack_dlqs(pipeline):
    sqs = pipeline.session.client("sqs")
    return discover(
        STACK,
        sqs=sqs,
        cloudformation=pipeline.session.client("cloudformation"),
        events=pipeline.session.client("events"),
    )


def replayer(pipeline, audit=()):
    sqs, events = clients(pipeline)
    return Replayer(sqs=sqs, events=events, audit=audit)


def replay(pipeline, queue, audit=(), **options):
    stack = stack_dlqs(pipeline)
    dlq = next(d for d in stack.dlqs if d.name == queue)
    return replayer(pipeline, audit).replay(stack, dlq, ReplayOptions(wait_seconds=0, **options))


def depth(pipeline, output):
    return pipeline.queue_depths()[output]


def park_in_fraud_dlq(pipeline, monkeypatch, count, tag="r"):
    sent = requests(count, tag)
    with broken_velocity_table(monkeypatch):
        assert pipeline.publish(sent).ok
        pipeline.drain()
    assert depth(pipeline, "FraudDLQUrl") == count
    return sent


def complete_all(pipeline):
    """Complete the service of every held payment and run the ACH cut; returns all events seen."""
    pipeline.drain()
    held = {e.payment_id: e for e in pipeline.observed() if isinstance(e, ev.FundsHeld)}
    completions = [
        ev.ServiceCompleted.create(
            payment_id=hold.payment_id,
            producer="client",
            cause=hold,
            data=ev.ServiceCompletedData(completed_at=hold.occurred_at),
        )
        for hold in held.values()
    ]
    if completions:
        assert pipeline.publish(completions).ok
        pipeline.drain()
    hold_days = int(pipeline.stack.parameters["HoldDays"])
    pipeline.run_scheduled(datetime.now(UTC) + timedelta(days=hold_days + 3))
    pipeline.drain()
    return pipeline.observed()


def terminal_events_by_payment(observed):
    ids = defaultdict(set)
    for event in observed:
        if event.event_type in ev.TERMINAL_EVENT_TYPES:
            ids[event.payment_id].add(event.event_id)
    return ids


def envelope(event, source="paypipe.client", resources=()):
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": event.event_type,
            "source": source,
            "account": "123456789012",
            "time": "2026-11-03T10:00:00Z",
            "region": "us-east-1",
            "resources": list(resources),
            "detail": ev.to_detail(event),
        }
    )


def send(pipeline, output, body, **attributes):
    pipeline.session.client("sqs").send_message(
        QueueUrl=pipeline.stack.outputs[output],
        MessageBody=body,
        MessageAttributes={k: {"DataType": "String", "StringValue": str(v)} for k, v in attributes.items()},
    )


# -- the incident: break, park, fix, replay ---------------------------------------------------------


def test_replay_after_fix_completes_every_payment_exactly_once(pipeline, monkeypatch, tmp_path):
    sent = park_in_fraud_dlq(pipeline, monkeypatch, 6)
    parked = peek(pipeline.session.client("sqs"), pipeline.stack.outputs["FraudDLQUrl"], wait_seconds=0)
    assert {m.reason for m in parked} == {"RuntimeError"}
    assert not terminal_events_by_payment(pipeline.observed())

    audit_path = tmp_path / "audit.jsonl"
    sink = JsonlAudit(audit_path)
    report = replay(pipeline, "FraudDLQ", audit=[sink])
    sink.close()

    assert report.ok and len(report.replayed) == 6
    assert report.destination == pipeline.stack.outputs["FraudQueueUrl"]
    assert depth(pipeline, "FraudDLQUrl") == 0
    observed = complete_all(pipeline)

    terminal = terminal_events_by_payment(observed)
    assert set(terminal) == {r.payment_id for r in sent}
    assert all(len(ids) == 1 for ids in terminal.values())
    assert {e.payment_id for e in observed if isinstance(e, ev.PayoutBatched)} == set(terminal)
    assert set(pipeline.queue_depths().values()) == {0}

    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert sorted(r["payment_id"] for r in records) == sorted(r.payment_id for r in sent)
    assert {r["destination"] for r in records} == {pipeline.stack.outputs["FraudQueueUrl"]}
    assert {r["reason"] for r in records} == {"RuntimeError"}
    assert {r["replay_count"] for r in records} == {1}
    assert all(r["message_id"] and r["queue"] and r["at"] for r in records)


class DeleteFailsOnce:
    """An SQS client whose first delete_message fails, as if the operator's process died."""

    def __init__(self, sqs):
        self._sqs = sqs
        self.undeleted = []

    def __getattr__(self, name):
        return getattr(self._sqs, name)

    def delete_message(self, **kwargs):
        if not self.undeleted:
            self.undeleted.append(kwargs["ReceiptHandle"])
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "crash"}}, "DeleteMessage")
        return self._sqs.delete_message(**kwargs)


def test_a_crash_between_send_and_delete_duplicates_and_idempotency_absorbs_it(pipeline, monkeypatch):
    sent = park_in_fraud_dlq(pipeline, monkeypatch, 3)
    sqs, events = clients(pipeline)
    flaky = DeleteFailsOnce(sqs)
    stack = stack_dlqs(pipeline)
    dlq = next(d for d in stack.dlqs if d.name == "FraudDLQ")

    first = Replayer(sqs=flaky, events=events).replay(stack, dlq, ReplayOptions(wait_seconds=0))
    assert len(first.replayed) == 3 and not first.ok
    assert "replayed but not deleted" in first.errors[0]
    assert depth(pipeline, "FraudDLQUrl") == 1  # kept, not lost
    pipeline.drain()

    # Its visibility timeout runs out; the next replay sends it a second time.
    sqs.change_message_visibility(QueueUrl=dlq.url, ReceiptHandle=flaky.undeleted[0], VisibilityTimeout=0)
    second = replay(pipeline, "FraudDLQ")
    assert len(second.replayed) == 1 and second.ok
    assert depth(pipeline, "FraudDLQUrl") == 0

    observed = complete_all(pipeline)
    terminal = terminal_events_by_payment(observed)
    assert set(terminal) == {r.payment_id for r in sent}
    assert all(len(ids) == 1 for ids in terminal.values())
    holds = Counter(
        e.payment_id for e in {e.event_id: e for e in observed if isinstance(e, ev.FundsHeld)}.values()
    )
    assert set(holds.values()) == {1}


def test_rule_target_dlq_is_republished_to_the_bus(pipeline):
    (request,) = requests(1, tag="rt")
    # What EventBridge parks when it cannot deliver to the validate queue.
    send(
        pipeline,
        "ValidateRuleDLQUrl",
        envelope(request),
        ERROR_CODE="SQS.AccessDenied",
        ERROR_MESSAGE="denied",
        RULE_ARN=f"arn:aws:events:us-east-1:123456789012:rule/paypipe-embedded/{STACK}-ValidateRule",
    )

    report = replay(pipeline, "ValidateRuleDLQ")
    assert report.ok and report.destination == pipeline.stack.outputs["EventBusName"]
    assert report.replayed[0]["reason"] == "SQS.AccessDenied"
    assert depth(pipeline, "ValidateRuleDLQUrl") == 0
    pipeline.drain()
    observed = complete_all(pipeline)
    assert [e.event_type for e in observed if e.payment_id == request.payment_id][:2] == [
        "PaymentRequested",
        "PaymentValidated",
    ]
    assert len(terminal_events_by_payment(observed)[request.payment_id]) == 1


# -- safety -----------------------------------------------------------------------------------------


def test_dry_run_moves_nothing_and_leaves_messages_visible(pipeline, monkeypatch):
    sent = park_in_fraud_dlq(pipeline, monkeypatch, 3)
    report = replay(pipeline, "FraudDLQ", dry_run=True)

    assert report.mode == "dry-run"
    assert sorted(r["payment_id"] for r in report.replayed) == sorted(r.payment_id for r in sent)
    assert depth(pipeline, "FraudDLQUrl") == 3
    sqs = pipeline.session.client("sqs")
    assert (
        sqs.get_queue_attributes(
            QueueUrl=pipeline.stack.outputs["FraudQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
    # Visible again at once: a peek sees all of them.
    assert len(peek(sqs, pipeline.stack.outputs["FraudDLQUrl"], wait_seconds=0)) == 3


def test_filters_move_only_matching_messages(pipeline, monkeypatch):
    sent = park_in_fraud_dlq(pipeline, monkeypatch, 4)
    now = datetime.now(UTC)
    chosen = {sent[0].payment_id, sent[2].payment_id}

    by_payment = replay(pipeline, "FraudDLQ", filters=build_filters(payment_ids=sorted(chosen), now=now))
    assert {r["payment_id"] for r in by_payment.replayed} == chosen
    assert by_payment.skipped == Counter({FILTERED: 2})
    assert depth(pipeline, "FraudDLQUrl") == 2

    nothing = [
        build_filters(detail_types=["PaymentValidated"], now=now),
        build_filters(reasons=["SchemaViolation"], now=now),
        build_filters(since="2099-01-01T00:00:00Z", now=now),
        build_filters(until="1h", now=now),
    ]
    for filters in nothing:
        report = replay(pipeline, "FraudDLQ", filters=filters)
        assert report.replayed == [] and report.skipped == Counter({FILTERED: 2})
    assert depth(pipeline, "FraudDLQUrl") == 2

    matching = build_filters(
        detail_types=["PaymentTokenized"], reasons=["RuntimeError"], since="1h", now=datetime.now(UTC)
    )
    assert len(replay(pipeline, "FraudDLQ", filters=matching, max_messages=1).replayed) == 1
    assert depth(pipeline, "FraudDLQUrl") == 1


def test_replay_cap_stops_a_message_that_keeps_failing(pipeline, monkeypatch):
    park_in_fraud_dlq(pipeline, monkeypatch, 1)
    with broken_velocity_table(monkeypatch):  # the bug is not fixed
        for attempt in range(1, 4):
            report = replay(pipeline, "FraudDLQ", max_replays=3)
            assert len(report.replayed) == 1 and report.replayed[0]["replay_count"] == attempt
            pipeline.drain()  # fails again and is parked with its replay count
            assert depth(pipeline, "FraudDLQUrl") == 1
        refused = replay(pipeline, "FraudDLQ", max_replays=3)
    assert refused.replayed == [] and refused.skipped == Counter({CAPPED: 1})
    assert "replayed 3 times" in refused.problems[0]
    assert depth(pipeline, "FraudDLQUrl") == 1
    # A higher cap, chosen by the operator once the cause is fixed, lets it through.
    assert len(replay(pipeline, "FraudDLQ", max_replays=4).replayed) == 1


def test_malformed_bodies_stay_parked(pipeline):
    send(pipeline, "FraudDLQUrl", "not json 4111111111111111", error_reason="MalformedJson")
    send(pipeline, "FraudDLQUrl", json.dumps({"detail-type": "PaymentTokenized", "detail": {}}))
    send(pipeline, "ValidateRuleDLQUrl", json.dumps({"hello": "world"}))

    for queue, count in (("FraudDLQ", 2), ("ValidateRuleDLQ", 1)):
        report = replay(pipeline, queue)
        assert report.replayed == [] and report.skipped == Counter({MALFORMED: count})
        assert all("4111111111111111" not in line for line in report.problems)
    assert depth(pipeline, "FraudDLQUrl") == 2 and depth(pipeline, "ValidateRuleDLQUrl") == 1
    assert pipeline.drain() == 0  # nothing reached a consumer queue


def test_invalid_input_is_refused_before_anything_moves(pipeline, monkeypatch):
    park_in_fraud_dlq(pipeline, monkeypatch, 2)
    stack = stack_dlqs(pipeline)
    now = datetime.now(UTC)
    with pytest.raises(DlqError, match="unknown queue 'NoSuchDLQ'"):
        from paypipe.ops.dlq import resolve_queue

        resolve_queue(stack, "NoSuchDLQ")
    with pytest.raises(DlqError, match="unknown detail-type"):
        build_filters(detail_types=["PaymentTeleported"], now=now)
    with pytest.raises(DlqError, match="bad time"):
        build_filters(since="yesterday-ish", now=now)
    with pytest.raises(DlqError, match="after --until"):
        build_filters(since="1h", until="2h", now=now)
    fraud = next(d for d in stack.dlqs if d.name == "FraudDLQ")
    for bad in (ReplayOptions(max_messages=0), ReplayOptions(max_replays=0), ReplayOptions(rate=-1)):
        with pytest.raises(DlqError):
            replayer(pipeline).replay(stack, fraud, bad)
    scheduled = next(d for d in stack.dlqs if d.kind == "scheduled")
    with pytest.raises(DlqError, match="scheduled"):
        replayer(pipeline).replay(stack, scheduled, ReplayOptions())
    assert depth(pipeline, "FraudDLQUrl") == 2


# -- discovery and the command line ---------------------------------------------------------------


def test_outputs_and_tags_find_the_same_dlqs(pipeline):
    template = load_template()
    outputs = [
        {
            "OutputKey": key,
            "OutputValue": value,
            "Description": template["Outputs"][key].get("Description", ""),
        }
        for key, value in pipeline.stack.outputs.items()
    ]
    from_outputs = dlqs_from_outputs(STACK, outputs)
    from_tags = stack_dlqs(pipeline)
    assert from_tags.source == "tags"
    assert set(from_outputs.dlqs) == set(from_tags.dlqs)
    queued = sum(1 for function in FUNCTIONS if function.queued)
    assert (
        len(from_tags.dlqs) == 2 * queued + 1
    )  # a consumer and a rule DLQ per queued step, one for schedules
    assert {d.kind for d in from_tags.dlqs} == {"consumer", "rule-target", "scheduled"}
    fraud = next(d for d in from_tags.dlqs if d.name == "FraudDLQ")
    assert fraud.source_queue_url == pipeline.stack.outputs["FraudQueueUrl"]
    assert from_outputs.event_bus == from_tags.event_bus == pipeline.stack.outputs["EventBusName"]


def test_cli_list_show_and_replay(pipeline, monkeypatch, capsys, tmp_path):
    park_in_fraud_dlq(pipeline, monkeypatch, 2)
    (request,) = requests(1, tag="pan")
    pan = request.data.card.number.get_secret_value()
    send(pipeline, "ValidateDLQUrl", envelope(request), error_reason="KeyError", error_message=f"bad {pan}")

    assert cli.main(["dlq", "list", "--stack", STACK, "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)["dlqs"]}
    assert listed["FraudDLQ"]["visible"] == 2 and listed["FraudDLQ"]["oldest_age_seconds"] is not None
    assert listed["ValidateDLQ"]["visible"] == 1 and listed["TokenizeDLQ"]["visible"] == 0

    assert cli.main(["dlq", "show", "consumer:validate", "--stack", STACK, "--json", "--bodies"]) == 0
    shown = capsys.readouterr().out
    assert pan not in shown and "[REDACTED]" in shown
    (group,) = json.loads(shown)["groups"]
    assert (group["reason"], group["detail_type"], group["count"]) == ("KeyError", "PaymentRequested", 1)
    assert cli.main(["dlq", "show", "ValidateDLQ", "--stack", STACK, "--bodies"]) == 0
    assert pan not in capsys.readouterr().out
    assert depth(pipeline, "ValidateDLQUrl") == 1

    assert cli.main(["dlq", "replay", "Nope", "--stack", STACK]) == 2
    assert "unknown queue" in capsys.readouterr().err
    assert cli.main(["dlq", "replay", "FraudDLQ", "--stack", STACK, "--since", "soon"]) == 2
    assert depth(pipeline, "FraudDLQUrl") == 2

    audit = tmp_path / "audit.jsonl"
    args = ["dlq", "replay", "FraudDLQ", "--stack", STACK, "--json", "--audit-file", str(audit)]
    assert cli.main([*args, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["would_replay"] == 2
    assert not audit.exists()
    assert cli.main([*args, "--rate", "1000"]) == 0
    assert json.loads(capsys.readouterr().out)["replayed"] == 2
    assert len(audit.read_text().splitlines()) == 2
    assert depth(pipeline, "FraudDLQUrl") == 0


def test_server_side_falls_back_to_per_message_where_the_endpoint_lacks_it(pipeline, monkeypatch):
    park_in_fraud_dlq(pipeline, monkeypatch, 2)
    with pytest.raises(DlqError, match="cannot be combined"):
        replay(pipeline, "FraudDLQ", server_side=True, max_messages=1)
    report = replay(pipeline, "FraudDLQ", server_side=True)
    assert report.mode == "per-message" and "StartMessageMoveTask" in report.notes[0]
    assert len(report.replayed) == 2 and depth(pipeline, "FraudDLQUrl") == 0
