"""The pure core of the DLQ tool: discovery from outputs, parsing, filters, decisions, redaction."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from paypipe.embedded.scenario import payment_requested
from paypipe.events import models as ev
from paypipe.ops.dlq import (
    CAPPED,
    FILTERED,
    MALFORMED,
    MISMATCH,
    REPLAY_MARKER,
    DlqError,
    Filters,
    build_filters,
    decide,
    dlq_name,
    dlqs_from_outputs,
    group_messages,
    parse_message,
    parse_time,
    put_events_entry,
    redacted_view,
    requeue_attributes,
    resolve_queue,
)
from paypipe.ops.dlq_aws import JsonlAudit, RateLimiter

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
PAN = "4111111111111111"


def request(payment_id="p-1"):
    return payment_requested(
        payment_id, customer_id="c-1", amount_cents=1000, pan=PAN, occurred_at=NOW - timedelta(hours=1)
    )


def raw(body, message_id="m-1", sent=NOW - timedelta(minutes=10), **attributes):
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "Body": body if isinstance(body, str) else json.dumps(body),
        "Attributes": {"SentTimestamp": str(int(sent.timestamp() * 1000))},
        "MessageAttributes": {
            k: {"DataType": "String", "StringValue": str(v)} for k, v in attributes.items()
        },
    }


def envelope(event, resources=()):
    return {
        "source": "paypipe.client",
        "detail-type": event.event_type,
        "resources": list(resources),
        "detail": ev.to_detail(event),
    }


def test_outputs_give_kind_step_source_and_bus():
    outputs = [
        {"OutputKey": "EventBusName", "OutputValue": "bus"},
        {"OutputKey": "EscrowHoldQueueUrl", "OutputValue": "https://q/escrow"},
        {
            "OutputKey": "EscrowHoldDLQUrl",
            "OutputValue": "https://q/escrow-dlq",
            "Description": "dlq:consumer:escrow_hold",
        },
        {"OutputKey": "EscrowHoldRuleDLQUrl", "OutputValue": "https://q/escrow-rule-dlq"},
        {
            "OutputKey": "ScheduledDLQUrl",
            "OutputValue": "https://q/sched",
            "Description": "dlq:scheduled:scheduled",
        },
    ]
    stack = dlqs_from_outputs("s", outputs)
    by_name = {d.name: d for d in stack.dlqs}
    assert stack.event_bus == "bus"
    assert by_name["EscrowHoldDLQ"].source_queue_url == "https://q/escrow"
    assert (by_name["EscrowHoldRuleDLQ"].kind, by_name["EscrowHoldRuleDLQ"].step) == (
        "rule-target",
        "escrow_hold",
    )
    assert by_name["EscrowHoldRuleDLQ"].source_queue_url is None
    assert by_name["ScheduledDLQ"].kind == "scheduled"
    assert dlq_name("rule-target", "escrow_hold") == "EscrowHoldRuleDLQ"
    for ident in (
        "EscrowHoldDLQ",
        "escrowholddlqurl",
        "escrow-dlq",
        "https://q/escrow-dlq",
        "consumer:escrow_hold",
    ):
        assert resolve_queue(stack, ident).name == "EscrowHoldDLQ"
    with pytest.raises(DlqError, match="known DLQs: EscrowHoldDLQ"):
        resolve_queue(stack, "fraud")


def test_parse_reads_reason_payment_and_replay_count():
    event = request()
    message = parse_message(
        raw(envelope(event, [f"{REPLAY_MARKER}2"]), error_reason="KeyError", replay_count="1")
    )
    assert message.problem is None
    assert (message.payment_id, message.detail_type, message.reason) == (
        "p-1",
        "PaymentRequested",
        "KeyError",
    )
    assert message.replay_count == 2  # the larger of attribute and marker
    rule = parse_message(raw(envelope(event), ERROR_CODE="SQS.AccessDenied"))
    assert (rule.reason, rule.replay_count) == ("SQS.AccessDenied", 0)
    assert parse_message(raw(envelope(event))).reason == "Redriven"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{not json", "not JSON"),
        ([1, 2], "not an EventBridge event"),
        ({"detail-type": "PaymentRequested", "detail": {}}, "no source"),
        (
            {"source": "x", "detail-type": "Teleported", "detail": {"event_type": "Teleported"}},
            "unknown event",
        ),
        (
            {
                "source": "x",
                "detail-type": "PaymentRequested",
                "detail": {"event_type": "PaymentRequested", "schema_version": "1.0"},
            },
            "contract",
        ),
    ],
)
def test_bodies_that_can_never_succeed_are_malformed(body, problem):
    message = parse_message(raw(body))
    assert problem in (message.problem or "")
    assert decide(message, Filters(), 3).skip_reason == MALFORMED


def test_decide_filters_cap_and_source():
    message = parse_message(raw(envelope(request()), error_reason="RuntimeError", replay_count="2"))
    assert decide(message, Filters(), 3).replay
    assert decide(message, Filters(), 2).skip_reason == CAPPED
    assert decide(message, build_filters(reasons=["KeyError"], now=NOW), 3).skip_reason == FILTERED
    assert decide(message, build_filters(payment_ids=["p-1"], since="1h", now=NOW), 3).replay
    assert decide(message, build_filters(until="1h", now=NOW), 3).skip_reason == FILTERED
    moved = parse_message(raw(envelope(request()), source_queue_arn="arn:other"))
    assert decide(moved, Filters(), 3, expected_source_arn="arn:fraud").skip_reason == MISMATCH
    assert decide(moved, Filters(), 3, expected_source_arn="arn:other").replay


def test_time_filters():
    assert parse_time("90s", NOW) == NOW - timedelta(seconds=90)
    assert parse_time("7d", NOW) == NOW - timedelta(days=7)
    assert parse_time("2026-11-01T00:00:00", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    for bad in ("tomorrow", "5w", ""):
        with pytest.raises(DlqError):
            parse_time(bad, NOW)
    with pytest.raises(DlqError, match="unknown detail-type"):
        build_filters(detail_types=["Nope"], now=NOW)
    with pytest.raises(DlqError, match="empty"):
        build_filters(reasons=[" "], now=NOW)


def test_outgoing_forms_carry_the_incremented_count():
    message = parse_message(raw(envelope(request(), ["arn:x", f"{REPLAY_MARKER}1"]), replay_count="1"))
    attributes = requeue_attributes(message, NOW)
    assert attributes["replay_count"]["StringValue"] == "2"
    # the first receipt time travels with the replay (here SQS's own, as no consumer parked it)
    assert attributes["received_at"]["StringValue"] == message.sent_at.isoformat()
    parked = parse_message(raw(envelope(request()), received_at="2026-01-02T03:04:05+00:00"))
    assert requeue_attributes(parked, NOW)["received_at"]["StringValue"] == "2026-01-02T03:04:05+00:00"
    entry = put_events_entry(message, "bus")
    assert entry["Resources"] == ["arn:x", f"{REPLAY_MARKER}2"]
    assert (entry["EventBusName"], entry["Source"], entry["DetailType"]) == (
        "bus",
        "paypipe.client",
        "PaymentRequested",
    )
    assert json.loads(entry["Detail"]) == message.event["detail"]


def test_shown_messages_never_contain_a_card_number():
    event_message = parse_message(raw(envelope(request()), error_message=f"bad card {PAN}"))
    text_message = parse_message(raw(f"garbage {PAN} cvv", message_id="m-2"))
    for message in (event_message, text_message):
        shown = json.dumps(redacted_view(message))
        assert PAN not in shown
    assert redacted_view(event_message)["body"]["detail"]["data"]["card"]["cvv"] == "[REDACTED]"
    groups = group_messages(
        [event_message, text_message, parse_message(raw(envelope(request("p-2")), "m-3"))]
    )
    assert [(g.reason, g.detail_type, len(g.messages)) for g in groups] == [
        ("Redriven", "PaymentRequested", 2),
        ("Redriven", "-", 1),
    ]


def test_rate_limiter_spaces_calls():
    clock = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(4, clock=lambda: clock[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert slept == [0.25, 0.25]
    with pytest.raises(DlqError):
        RateLimiter(0)


def test_an_audit_file_without_records_is_not_left_behind(tmp_path):
    unused = JsonlAudit(tmp_path / "runs" / "unused.jsonl")
    unused.close()
    assert not (tmp_path / "runs" / "unused.jsonl").exists()
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text('{"action": "replayed"}\n')
    JsonlAudit(earlier).close()
    assert earlier.read_text() == '{"action": "replayed"}\n'
    used = JsonlAudit(tmp_path / "used.jsonl")
    used.write({"action": "replayed", "message_id": "m-1"})
    used.close()
    assert (tmp_path / "used.jsonl").read_text() == '{"action": "replayed", "message_id": "m-1"}\n'
    with pytest.raises(OSError):
        JsonlAudit(tmp_path / "used.jsonl" / "under-a-file.jsonl")


def test_an_s3_notification_goes_back_to_its_queue_but_is_never_re_published():
    notification = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "inbound/x.ach", "etag": "e"}},
    }
    message = parse_message(raw(notification, error_reason="RuntimeError"))
    assert message.problem is None
    assert decide(message, Filters(), max_replays=3, expected_source_arn="arn:queue").replay
    refused = decide(message, Filters(), max_replays=3)
    assert not refused.replay and "copy the object onto itself" in (refused.detail or "")
