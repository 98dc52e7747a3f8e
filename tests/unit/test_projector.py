"""The projector: the observer runtime hands it every event, it files each once, judges its origin,
keeps key facts only, and parks what it cannot file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from paypipe.adapters.timeline_store import TimelineStore
from paypipe.domain.timeline import current_state, timeline
from paypipe.embedded.scenario import payment_requested
from paypipe.events import models as ev
from paypipe.runtime.consumer import Consumer, Route
from paypipe.runtime.publisher import EventPublisher
from paypipe.steps.projector import STEP, ProjectorStep

from .test_consumer import bus_body, completed, drain, record

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)
PAN, ACCOUNT = "4111111111111111", "4400718293"


@pytest.fixture
def projector(aws: None) -> tuple[Consumer, TimelineStore, Any, str]:
    sqs, dynamodb = boto3.client("sqs"), boto3.client("dynamodb")
    dlq = sqs.create_queue(QueueName="projector-dlq")["QueueUrl"]
    dynamodb.create_table(
        TableName="timeline",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    store = TimelineStore("timeline", dynamodb, timedelta(days=400))
    consumer = Consumer(
        STEP,
        {},
        publisher=EventPublisher(boto3.client("events"), "bus", STEP, max_backoff_seconds=0),
        sqs_client=sqs,
        dlq_url=dlq,
        max_receive_count=3,
        idempotency_store=None,
        observer=ProjectorStep(store).observe,
    )
    return consumer, store, sqs, dlq


def request_body() -> dict[str, Any]:
    request = payment_requested(
        "p1", customer_id="c1", amount_cents=900, pan=PAN, account_number=ACCOUNT, occurred_at=AT
    )
    return bus_body(request)


def test_every_origin_is_recorded_once_and_only_trusted_ones_move_the_state(projector):
    consumer, store, sqs, dlq = projector
    held = ev.FundsHeld.model_validate(
        {
            **completed().model_dump(),
            "event_type": "FundsHeld",
            "schema_version": "2.0",
            "producer": "escrow_hold",
            "event_id": "held-1",
            "data": {
                "hold": {"hold_id": "h", "amount_cents": 900, "currency": "USD"}
                | {"held_at": AT, "hold_until": AT + timedelta(days=7)},
                "customer_id": "c1",
                "provider_id": "prov-1",
                "payee": {"name": "A", "routing_number": "021000021", "account_token": "acct_x"}
                | {"account_last4": "0068", "account_fingerprint": "afp_x", "account_type": "checking"}
                | {"payee_type": "individual"},
            },
        }
    )
    forged = bus_body(held, source="paypipe.client") | {"detail": ev.to_detail(held) | {"event_id": "f1"}}
    records = [
        record(bus_body(held), "m1"),
        record(bus_body(held), "m2"),  # a redelivery
        record(bus_body(completed()), "m3"),  # a client command
        record(forged, "m4"),  # a step's event from the client's source
    ]
    outcome = consumer.process(records)
    assert (outcome.failed_message_ids, outcome.parked_message_ids, outcome.published) == ([], [], 0)
    entries = timeline(store.entries("p1"))
    # At the same instant: pipeline order (FundsHeld before ServiceCompleted), then event id.
    assert [(e.event_id, e.untrusted is None) for e in entries] == [
        ("f1", False),
        ("held-1", True),
        (completed().event_id, True),
    ]
    assert len(store.entries("p1")) == 3
    (untrusted,) = [e for e in entries if e.untrusted]
    assert "paypipe.escrow_hold" in untrusted.untrusted  # type: ignore[operator]
    assert current_state(entries).name == "held"
    assert drain(sqs, dlq) == []


def test_a_card_bearing_event_keeps_its_key_facts_only(projector):
    consumer, store, _, _ = projector
    assert consumer.process([record(request_body())]).parked_message_ids == []
    (entry,) = store.entries("p1")
    assert dict(entry.facts) == {
        "amount_cents": 900,
        "currency": "USD",
        "provider_id": "prov-1",
        "customer_id": "c1",
    }
    item = boto3.client("dynamodb").scan(TableName="timeline")["Items"]
    assert PAN not in json.dumps(item) and ACCOUNT not in json.dumps(item)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "MalformedJson"),
        ({"detail-type": "PaymentRequested"}, "NotAnEventBridgeEvent"),
        ({"detail-type": "Nope", "source": "paypipe.client", "detail": {}}, "UnknownEvent"),
    ],
)
def test_what_cannot_be_filed_is_parked_with_its_reason(projector, body, reason):
    consumer, _, sqs, dlq = projector
    outcome = consumer.process([record(body)])
    assert outcome.parked_message_ids == ["m1"]
    (parked,) = drain(sqs, dlq)
    assert parked["MessageAttributes"]["error_reason"]["StringValue"] == reason


def test_an_observer_takes_no_routes():
    with pytest.raises(ValueError, match="observer"):
        Consumer(
            STEP,
            {"ServiceCompleted": Route(lambda _e, _r: [])},
            publisher=None,  # type: ignore[arg-type]
            sqs_client=None,
            dlq_url=None,
            max_receive_count=1,
            idempotency_store=None,
            observer=lambda _envelope, _receipt: None,
        )


def test_an_event_under_another_detail_type_is_filed_untrusted_at_its_receipt_time(projector):
    consumer, store, sqs, dlq = projector
    mislabelled = bus_body(completed()) | {"detail-type": "DisputeOpened"}
    broken = bus_body(completed()) | {
        "detail": ev.to_detail(completed()) | {"event_id": "b1", "occurred_at": "x"}
    }
    assert (
        consumer.process([record(mislabelled, "m1"), record(broken, "m2", sent_at=AT)]).parked_message_ids
        == []
    )
    entries = {e.event_id: e for e in store.entries("p1")}
    assert "is not its event_type" in (entries[completed().event_id].untrusted or "")
    assert entries[completed().event_id].event_type == "DisputeOpened"
    assert "violates the contract" in (entries["b1"].untrusted or "")
    assert entries["b1"].occurred_at == AT
    assert current_state(entries.values()).name == "unknown"
    assert drain(sqs, dlq) == []


def test_an_event_without_a_payment_id_to_file_it_under_is_left_to_its_step(projector):
    consumer, _, sqs, dlq = projector
    nameless = bus_body(completed()) | {"detail": ev.to_detail(completed()) | {"payment_id": "p 1#"}}
    outcome = consumer.process([record(nameless)])
    assert (outcome.parked_message_ids, outcome.failed_message_ids) == ([], [])
    assert boto3.client("dynamodb").scan(TableName="timeline")["Items"] == []
    assert drain(sqs, dlq) == []
