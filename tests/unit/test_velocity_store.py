from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from paypipe.adapters.velocity_store import VelocityStore
from paypipe.domain.fraud import Transaction, compute_features
from tests.tables import create_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

TABLE = "velocity"
AS_OF = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

TXN = Transaction(
    payment_id="pay-current",
    customer_id="cust-1",
    card_id="tok-1",
    payee_account_fingerprint="fp-1",
    ip_address="203.0.113.7",
    amount_cents=5_000,
    currency="USD",
    billing_country="US",
    ip_country="US",
    card_country=None,
    occurred_at=AS_OF,
)


def past(payment_id: str, ago: timedelta, **changes: Any) -> Transaction:
    return dataclasses.replace(TXN, payment_id=payment_id, occurred_at=AS_OF - ago, **changes)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoDBClient]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE, ttl_attribute="expires_at")
        yield dynamodb


@pytest.fixture
def store(client: DynamoDBClient) -> VelocityStore:
    return VelocityStore(TABLE, client)


def all_items(client: DynamoDBClient) -> list[dict[str, Any]]:
    return list(client.scan(TableName=TABLE, ConsistentRead=True)["Items"])


def test_round_trip_preserves_every_field(store: VelocityStore) -> None:
    stored = past("p1", timedelta(minutes=5, microseconds=123), ip_country=None, card_country="GB")
    store.record(stored)
    assert store.history(TXN, AS_OF) == [stored]


def test_one_item_per_dimension(store: VelocityStore, client: DynamoDBClient) -> None:
    store.record(past("p1", timedelta(minutes=5)))
    keys = sorted(item["pk"]["S"] for item in all_items(client))
    assert keys == ["card#tok-1", "customer#cust-1", "ip#203.0.113.7"]


def test_recording_again_writes_the_same_items(store: VelocityStore, client: DynamoDBClient) -> None:
    first = past("p1", timedelta(minutes=5))
    store.record(first)
    before = all_items(client)
    store.record(first)
    assert all_items(client) == before
    assert store.history(TXN, AS_OF) == [first]


def test_the_first_decision_is_the_payments(store: VelocityStore, client: DynamoDBClient) -> None:
    first = store.decide("p1", "fp-a", '{"score": 10}', AS_OF)
    again = store.decide("p1", "fp-a", '{"score": 90}', AS_OF + timedelta(minutes=1))
    other = store.decide("p1", "fp-b", '{"score": 50}', AS_OF)
    assert first == again == other
    assert (first.fingerprint, first.decision) == ("fp-a", '{"score": 10}')
    (marker,) = all_items(client)
    assert marker["pk"]["S"] == "payment#p1"
    assert int(marker["expires_at"]["N"]) == int((AS_OF + timedelta(days=14)).timestamp())
    assert store.decide("p2", "fp-b", "{}", AS_OF).fingerprint == "fp-b"


def test_a_marker_never_shows_in_history(store: VelocityStore) -> None:
    store.decide("p1", "fp-a", "{}", AS_OF - timedelta(minutes=5))
    assert store.history(TXN, AS_OF) == []


def test_ttl_is_about_eight_days_after_the_transaction(store: VelocityStore, client: DynamoDBClient) -> None:
    occurred = past("p1", timedelta(hours=2))
    store.record(occurred)
    expected = int((occurred.occurred_at + timedelta(days=8)).timestamp())
    assert {int(item["expires_at"]["N"]) for item in all_items(client)} == {expected}


def test_history_merges_dimensions_without_duplicates(store: VelocityStore) -> None:
    same_everything = past("p1", timedelta(minutes=30))
    card_only = past("p2", timedelta(hours=2), customer_id="cust-9", ip_address="198.51.100.9")
    customer_only = past("p3", timedelta(hours=3), card_id="tok-9", ip_address="198.51.100.9")
    ip_only = past("p4", timedelta(hours=4), card_id="tok-9", customer_id="cust-9")
    unrelated = past("p5", timedelta(hours=1), card_id="tok-9", customer_id="cust-9", ip_address="x")
    for txn in (same_everything, card_only, customer_only, ip_only, unrelated):
        store.record(txn)
    history = store.history(TXN, AS_OF)
    assert [t.payment_id for t in history] == ["p4", "p3", "p2", "p1"]  # oldest first


@pytest.mark.parametrize(
    ("ago", "included"),
    [
        (timedelta(0), False),  # at as_of
        (timedelta(microseconds=1), True),
        (timedelta(days=7), True),
        (timedelta(days=7, microseconds=1), False),
        (timedelta(minutes=-1), False),  # after as_of
    ],
)
def test_history_window(store: VelocityStore, ago: timedelta, included: bool) -> None:
    store.record(past("p1", ago))
    assert [t.payment_id for t in store.history(TXN, AS_OF)] == (["p1"] if included else [])


def test_history_handles_non_utc_as_of(store: VelocityStore) -> None:
    store.record(past("p1", timedelta(minutes=30)))
    as_of_elsewhere = AS_OF.astimezone(timezone(timedelta(hours=-5)))
    assert [t.payment_id for t in store.history(TXN, as_of_elsewhere)] == ["p1"]
    assert store.history(TXN, as_of_elsewhere - timedelta(hours=1)) == []


def test_history_follows_pagination(client: DynamoDBClient) -> None:
    store = VelocityStore(TABLE, client, page_size=2)
    recorded = [past(f"p{i}", timedelta(minutes=i + 1)) for i in range(7)]
    for txn in recorded:
        store.record(txn)
    assert store.history(TXN, AS_OF) == sorted(recorded, key=lambda t: t.occurred_at)


def test_store_history_feeds_feature_computation(store: VelocityStore) -> None:
    history = [
        past("p1", timedelta(minutes=10), amount_cents=100),
        past("p2", timedelta(hours=5), card_id="tok-2", amount_cents=2_000),
        past("p3", timedelta(days=3), ip_address="198.51.100.1", amount_cents=3_000),
    ]
    for txn in history:
        store.record(txn)
    stored = store.history(TXN, AS_OF)
    assert compute_features(TXN, stored, AS_OF) == compute_features(TXN, history, AS_OF)
    assert compute_features(TXN, stored, AS_OF).customer_txn_count_7d == 3


def test_record_surfaces_other_errors(client: DynamoDBClient) -> None:
    store = VelocityStore("no-such-table", client)
    with pytest.raises(ClientError):
        store.record(TXN)
