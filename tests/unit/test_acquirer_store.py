"""The simulated acquirer on DynamoDB: one acquirer for every process that shares its table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from paypipe.adapters.acquirer_store import DynamoAcquirer
from paypipe.domain import card_processing as cp
from paypipe.domain.settlement import LineKind
from tests.tables import create_table

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)
PAN = "4242424242424242"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "acquirer", gsi=True)
        yield client


def authorize(acquirer: DynamoAcquirer, payment_id: str, amount: int = 5_000) -> cp.Result:
    card = cp.Card(pan=PAN, expiry_month=12, expiry_year=2030, cvc="123")
    key = cp.operation_key(cp.Operation.AUTHORIZE, payment_id)
    return acquirer.authorize(cp.AuthorizeRequest(key, payment_id, amount, "USD", card))


def capture(acquirer: DynamoAcquirer, reference: str, payment_id: str, amount: int = 5_000) -> cp.Result:
    return acquirer.capture(
        cp.CaptureRequest(cp.operation_key(cp.Operation.CAPTURE, payment_id), reference, amount)
    )


def test_two_processes_share_one_acquirer_and_nothing_is_captured_twice(dynamodb: Any) -> None:
    first, second = (DynamoAcquirer("acquirer", dynamodb, lambda: NOW) for _ in range(2))
    authorized = authorize(first, "p1")
    assert isinstance(authorized, cp.Approved)
    assert authorize(second, "p1") == authorized  # the second process sees the first's answer
    captured = capture(second, authorized.reference, "p1")
    assert isinstance(captured, cp.Approved)
    assert capture(first, authorized.reference, "p1") == captured
    lines = first.settlement_lines(NOW.date())
    assert [(line.kind, line.amount_minor, line.payment_id) for line in lines] == [
        (LineKind.CAPTURE, 5_000, "p1")
    ]
    assert second.settlement_lines(NOW.date()) == lines


def test_a_call_that_loses_the_race_is_a_retryable_error_and_changes_nothing(dynamodb: Any) -> None:
    acquirer = DynamoAcquirer("acquirer", dynamodb, lambda: NOW)
    authorized = authorize(acquirer, "p1")
    assert isinstance(authorized, cp.Approved)
    stale = acquirer._load(authorized.reference)  # another process loads the same authorization
    assert isinstance(capture(acquirer, authorized.reference, "p1"), cp.Approved)
    assert acquirer._save(authorized.reference, stale) is False  # its save is refused
    refund = cp.RefundRequest(cp.operation_key(cp.Operation.REFUND, "p1"), authorized.reference, 5_000)
    racing = DynamoAcquirer("acquirer", dynamodb, lambda: NOW)
    racing._load = lambda reference: stale  # type: ignore[method-assign]
    raced = racing.refund(refund)
    assert isinstance(raced, cp.ProcessorError) and raced.retryable
    assert [line.kind for line in acquirer.settlement_lines(NOW.date())] == [LineKind.CAPTURE]
    assert isinstance(cp.settle(acquirer, refund), cp.Approved)  # asked again, it refunds once


def test_no_card_number_or_cvc_is_stored(dynamodb: Any) -> None:
    acquirer = DynamoAcquirer("acquirer", dynamodb, lambda: NOW)
    authorized = authorize(acquirer, "p1")
    assert isinstance(authorized, cp.Approved)
    capture(acquirer, authorized.reference, "p1")
    stored = str(dynamodb.scan(TableName="acquirer")["Items"])
    assert PAN not in stored and "'123'" not in stored and PAN[-4:] not in stored
