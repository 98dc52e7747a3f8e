"""DynamoDB store of past transactions for fraud velocity features.

Single table, keys ``pk`` (S) and ``sk`` (S), TTL attribute ``expires_at`` (epoch seconds).
Each transaction is stored once per dimension::

    pk = "card#<card fingerprint>" | "customer#<id>" | "ip#<canonical address or IPv6 /64>"
    sk = "<occurred_at, UTC, fixed width>#<payment_id>"

so a time window is a single key-range Query. The observations are plain puts (no transaction):
the same payment always writes the same items.

A marker item ``pk = "payment#<id>", sk = "recorded"`` is the fraud step's idempotency record:
the first scoring of a payment stores its decision there with the content fingerprint of the
event scored (``decide``), and every redelivery gets that decision back instead of its own,
since a score depends on the history at the time it was computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from paypipe.adapters.dynamo import put_once
from paypipe.domain.fraud import HISTORY_LOOKBACK, Transaction

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        QueryInputTypeDef,
    )

    Item = Mapping[str, AttributeValueTypeDef]

RETENTION: Final = timedelta(days=8)  # a little beyond the 7-day lookback
MARKER_RETENTION: Final = timedelta(days=14)  # as long as an event may be redelivered
_TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
_MARKER_SK: Final = "recorded"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


def _partition_keys(txn: Transaction) -> tuple[str, str, str]:
    return (f"card#{txn.card_id}", f"customer#{txn.customer_id}", f"ip#{txn.ip_address}")


def _expires_at(txn: Transaction) -> int:
    return int((txn.occurred_at + RETENTION).timestamp())


def _to_item(txn: Transaction, pk: str) -> dict[str, AttributeValueTypeDef]:
    item: dict[str, AttributeValueTypeDef] = {
        "pk": {"S": pk},
        "sk": {"S": f"{_timestamp(txn.occurred_at)}#{txn.payment_id}"},
        "expires_at": {"N": str(_expires_at(txn))},
        "payment_id": {"S": txn.payment_id},
        "customer_id": {"S": txn.customer_id},
        "card_id": {"S": txn.card_id},
        "payee_account_fingerprint": {"S": txn.payee_account_fingerprint},
        "ip_address": {"S": txn.ip_address},
        "amount_cents": {"N": str(txn.amount_cents)},
        "currency": {"S": txn.currency},
        "billing_country": {"S": txn.billing_country},
        "occurred_at": {"S": _timestamp(txn.occurred_at)},
    }
    if txn.ip_country is not None:
        item["ip_country"] = {"S": txn.ip_country}
    if txn.card_country is not None:
        item["card_country"] = {"S": txn.card_country}
    return item


def _from_item(item: Item) -> Transaction:
    def text(name: str) -> str:
        return item[name]["S"]

    def optional_text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return Transaction(
        payment_id=text("payment_id"),
        customer_id=text("customer_id"),
        card_id=text("card_id"),
        payee_account_fingerprint=text("payee_account_fingerprint"),
        ip_address=text("ip_address"),
        amount_cents=int(item["amount_cents"]["N"]),
        currency=text("currency"),
        billing_country=text("billing_country"),
        ip_country=optional_text("ip_country"),
        card_country=optional_text("card_country"),
        occurred_at=datetime.strptime(text("occurred_at"), _TIMESTAMP_FORMAT).replace(tzinfo=UTC),
    )


@dataclass(frozen=True)
class Decided:
    """A payment's stored decision and the fingerprint of the event it was made for."""

    fingerprint: str
    decision: str


class VelocityStore:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        consistent_read: bool = True,
        page_size: int | None = None,
    ) -> None:
        self._table_name = table_name
        self._client = client
        self._consistent_read = consistent_read
        self._page_size = page_size

    def history(self, txn: Transaction, as_of: datetime) -> list[Transaction]:
        """Transactions sharing txn's card, customer or IP in [as_of - 7 days, as_of), oldest first."""
        low = _timestamp(as_of - HISTORY_LOOKBACK)
        high = _timestamp(as_of)  # every sk at as_of has a "#..." suffix, so sorts above: excluded
        found: dict[str, Transaction] = {}
        for pk in _partition_keys(txn):
            for item in self._query(pk, low, high):
                observed = _from_item(item)
                found.setdefault(observed.payment_id, observed)
        return sorted(found.values(), key=lambda t: (t.occurred_at, t.payment_id))

    def decide(self, payment_id: str, fingerprint: str, decision: str, at: datetime) -> Decided:
        """Store ``decision`` as the payment's, unless one is stored already: the stored one."""
        item: dict[str, AttributeValueTypeDef] = {
            "pk": {"S": f"payment#{payment_id}"},
            "sk": {"S": _MARKER_SK},
            "expires_at": {"N": str(int((at + MARKER_RETENTION).timestamp()))},
            "fingerprint": {"S": fingerprint},
            "decision": {"S": decision},
        }
        stored = put_once(self._client, self._table_name, item)
        if stored is not None:
            item = stored or dict(self._marker(payment_id))
        return Decided(
            fingerprint=item.get("fingerprint", {}).get("S", ""),
            decision=item.get("decision", {}).get("S", ""),
        )

    def _marker(self, payment_id: str) -> Item:
        response = self._client.get_item(
            TableName=self._table_name,
            Key={"pk": {"S": f"payment#{payment_id}"}, "sk": {"S": _MARKER_SK}},
            ConsistentRead=True,
        )
        return response.get("Item", {})

    def _query(self, pk: str, low: str, high: str) -> list[Item]:
        request: QueryInputTypeDef = {
            "TableName": self._table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":low": {"S": low}, ":high": {"S": high}},
            "ConsistentRead": self._consistent_read,
        }
        if self._page_size is not None:
            request["Limit"] = self._page_size
        items: list[Item] = []
        while True:
            page = self._client.query(**request)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def record(self, txn: Transaction) -> None:
        """Store one observation per dimension (the same items however often it is called)."""
        for pk in _partition_keys(txn):
            self._client.put_item(TableName=self._table_name, Item=_to_item(txn, pk))
