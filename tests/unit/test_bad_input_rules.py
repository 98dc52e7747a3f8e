"""Validation rules and consumer behaviour for input the pipeline must refuse cleanly."""

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypipe.domain import nacha
from paypipe.domain.validation import MAX_REQUEST_BYTES, RejectReason, validate_payment
from paypipe.events import models as ev
from paypipe.runtime.consumer import Consumer, Route
from paypipe.runtime.publisher import EventPublisher
from tests.unit.test_consumer import Recorder, bus_body, completed, drain, infra, record  # noqa: F401
from tests.unit.test_validation import TODAY, VALID


def codes(**changes: object) -> list[RejectReason]:
    facts = replace(VALID, **changes)  # type: ignore[arg-type]
    return [r.code for r in validate_payment(facts, today=TODAY, max_amount_cents=10**9)]


@pytest.mark.parametrize(
    "name",
    [
        "Jordan Lee 😀",
        "山田太郎",
        "Jordan\x00Lee",
        "x'; DROP TABLE t; --",
        "$(id)",
        '{"a": 1}',
        " \t\n ",
        "\u202e",
    ],
)
def test_payee_names_nacha_cannot_carry_are_rejected_without_echo(name):
    [rejection] = validate_payment(replace(VALID, payee_name=name), today=TODAY, max_amount_cents=10**9)
    assert rejection.code is RejectReason.PAYEE_NAME_UNREPRESENTABLE
    assert rejection.field == "payee.name"
    assert not name.strip() or name.strip() not in rejection.message


@pytest.mark.parametrize(
    "name", ["O'Brien & Sons, Inc.", "Zoë Ærøskøbing-Łódź", "José Müller", "ACME #12 (US)"]
)
def test_latin_payee_names_pass(name):
    assert codes(payee_name=name) == []


@given(st.text(max_size=40))
def test_an_accepted_payee_name_can_always_be_written_to_nacha(name):
    if RejectReason.PAYEE_NAME_UNREPRESENTABLE not in codes(payee_name=name):
        assert nacha.to_nacha_text(name)


def test_payee_name_is_not_checked_when_absent():
    assert codes(payee_name=None) == []


def test_requests_over_the_size_limit_are_rejected():
    assert codes(request_bytes=MAX_REQUEST_BYTES) == []
    assert codes(request_bytes=MAX_REQUEST_BYTES + 1) == [RejectReason.REQUEST_TOO_LARGE]


# -- consumer: answering schema violations ------------------------------------------------------


def reject_invalid(envelope, errors, receipt):
    data = ev.PaymentRejectedData(
        reasons=[ev.Rejection(code="SCHEMA_INVALID", field=e.field, message=e.message) for e in errors],
        request_event_id=envelope.event_id,
    )
    return [
        ev.PaymentRejected.create(payment_id=envelope.payment_id, data=data, producer="t", cause=envelope)
    ]


def consumer_with(infra, on_invalid):  # noqa: F811
    return Consumer(
        "test",
        {"ServiceCompleted": Route(Recorder(), idempotent=False, on_invalid=on_invalid)},
        publisher=EventPublisher(infra["events"], "bus", "test", max_backoff_seconds=0),
        sqs_client=infra["sqs"],
        dlq_url=infra["dlq"],
        max_receive_count=3,
        idempotency_store=None,
    )


def test_schema_violation_with_an_intact_envelope_is_answered_not_parked(infra):  # noqa: F811
    body = bus_body(completed("p9"))
    body["detail"]["data"] = {"completed_at": "4111111111111111", "extra": 1}
    response = consumer_with(infra, reject_invalid).handle({"Records": [record(body)]})
    assert response == {"batchItemFailures": []}
    assert drain(infra["sqs"], infra["dlq"]) == []
    [published] = [json.loads(m["Body"]) for m in drain(infra["sqs"], infra["tap"])]
    assert published["detail-type"] == "PaymentRejected"
    detail = published["detail"]
    assert detail["payment_id"] == "p9" and detail["causation_id"] == body["detail"]["event_id"]
    [reason] = detail["data"]["reasons"]
    assert reason["field"] == "completed_at"
    assert "4111111111111111" not in json.dumps(published)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda detail: detail.pop("event_id"),
        lambda detail: detail.update(payment_id="p 1; rm -rf /"),
        lambda detail: detail.update(unexpected=True),
    ],
)
def test_schema_violation_with_a_broken_envelope_is_still_parked(infra, breakage):  # noqa: F811
    body = bus_body(completed())
    body["detail"]["data"]["completed_at"] = "not a date"
    breakage(body["detail"])
    consumer_with(infra, reject_invalid).handle({"Records": [record(body)]})
    [parked] = drain(infra["sqs"], infra["dlq"])
    assert parked["MessageAttributes"]["error_reason"]["StringValue"] == "SchemaViolation"
    assert drain(infra["sqs"], infra["tap"]) == []


def test_without_on_invalid_a_schema_violation_is_parked(infra):  # noqa: F811
    body = bus_body(completed())
    body["detail"]["data"]["completed_at"] = "not a date"
    consumer_with(infra, None).handle({"Records": [record(body)]})
    [parked] = drain(infra["sqs"], infra["dlq"])
    assert parked["MessageAttributes"]["error_reason"]["StringValue"] == "SchemaViolation"
