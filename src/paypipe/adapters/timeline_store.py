"""The Timeline table: every event of a payment, as the projector recorded it.

Keys ``pk`` (S) = payment id, ``sk`` (S) = ``<occurred_at, UTC, fixed width>#<event id>``, so a
payment's timeline is one Query in time order. TTL attribute ``expires_at`` (epoch seconds): an
entry is kept ``TimelineRetentionDays`` after the event. The key facts are one JSON string
(``facts``); no attribute holds a card number, CVV or account number (the facts are a whitelist).
A record is written once: the conditional put makes a redelivered event a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from paypipe.domain.timeline import TimelineEntry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef


def to_plain(entry: TimelineEntry, retention: timedelta) -> dict[str, str | int]:
    """The entry as the table's item, in plain JSON values."""
    view = entry.as_dict()
    plain: dict[str, str | int] = {
        "pk": entry.payment_id,
        "sk": entry.sort_key,
        "event_id": entry.event_id,
        "event_type": entry.event_type,
        "occurred_at": view["occurred_at"],
        "producer": entry.producer,
        "facts": json.dumps(view["facts"], sort_keys=True, separators=(",", ":")),
        "expires_at": int((entry.occurred_at + retention).timestamp()),
    }
    for name in ("source", "untrusted", "received_at"):
        if view.get(name):
            plain[name] = view[name]
    return plain


def from_plain(item: Mapping[str, Any]) -> TimelineEntry:
    """An entry from an item in plain JSON values (a Query's, decoded, or a line of timeline.jsonl)."""
    facts = json.loads(str(item.get("facts") or "{}"))
    received = item.get("received_at")
    return TimelineEntry(
        payment_id=str(item["pk"]),
        event_id=str(item["event_id"]),
        event_type=str(item["event_type"]),
        occurred_at=_instant(str(item["occurred_at"])),
        producer=str(item["producer"]),
        source=str(item["source"]) if item.get("source") else None,
        facts=facts if isinstance(facts, dict) else {},
        untrusted=str(item["untrusted"]) if item.get("untrusted") else None,
        received_at=_instant(str(received)) if received else None,
    )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def to_item(plain: Mapping[str, str | int]) -> dict[str, AttributeValueTypeDef]:
    return {
        name: {"N": str(value)} if isinstance(value, int) else {"S": value} for name, value in plain.items()
    }


def decode(item: Mapping[str, AttributeValueTypeDef]) -> dict[str, str | int]:
    """A DynamoDB item of this table in plain JSON values."""
    plain: dict[str, str | int] = {}
    for name, value in item.items():
        if "N" in value:
            plain[name] = int(value["N"])
        elif "S" in value:
            plain[name] = value["S"]
    return plain


class TimelineStore:
    def __init__(
        self, table: str, dynamodb: DynamoDBClient, retention: timedelta = timedelta(days=400)
    ) -> None:
        self._table = table
        self._dynamodb = dynamodb
        self._retention = retention

    def record(self, entry: TimelineEntry) -> bool:
        """Write the entry once; False when it was already there (a redelivery)."""
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item=to_item(to_plain(entry, self._retention)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def entries(self, payment_id: str) -> list[TimelineEntry]:
        """Every recorded entry of the payment, in key order."""
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": payment_id}},
        }
        found: list[TimelineEntry] = []
        while True:
            page = self._dynamodb.query(**request)
            found += [from_plain(decode(item)) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
