"""DynamoDB store of fraud reviews (the Reviews table).

One item per payment: ``pk = "review#<payment id>"``, ``sk = "review"``. An open review is also in
the sparse index gsi1 (``gsi1pk = "open"``, ``gsi1sk = "<opened_at>#<payment id>"``) so the sweep
and ``paypipe review list`` read open reviews by opened time; deciding removes it from the index
in the same conditional write that moves it from open to its outcome, so a review closes once.
No card data is stored: the scored event's detail carries only tokens and last fours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final, cast

from botocore.exceptions import ClientError

from paypipe.domain.reviews import Review, ReviewStatus

OPEN: Final = "open"
_SK: Final = "review"


def _ts(moment: datetime) -> str:
    """Fixed width, so the index sorts by time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _key(payment_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"review#{payment_id}"}, "sk": {"S": _SK}}


def to_item(review: Review) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_key(review.payment_id),
        "payment_id": {"S": review.payment_id},
        "score": {"N": str(review.score)},
        "reasons": {"L": [{"S": reason} for reason in review.reasons]},
        "opened_at": {"S": _ts(review.opened_at)},
        "deadline": {"S": _ts(review.deadline)},
        "scored": {"S": review.scored},
        "status": {"S": review.status.value},
    }
    if review.is_open:
        item |= {"gsi1pk": {"S": OPEN}, "gsi1sk": {"S": f"{_ts(review.opened_at)}#{review.payment_id}"}}
    for name in ("decided_by", "reviewer", "note"):
        value = getattr(review, name)
        if value is not None:
            item[name] = {"S": value}
    if review.decided_at is not None:
        item["decided_at"] = {"S": _ts(review.decided_at)}
    return item


def from_item(item: Mapping[str, Any]) -> Review:
    def optional(name: str) -> str | None:
        return str(item[name]["S"]) if name in item else None

    decided_at = optional("decided_at")
    return Review(
        payment_id=item["payment_id"]["S"],
        score=int(item["score"]["N"]),
        reasons=tuple(str(reason["S"]) for reason in item["reasons"]["L"]),
        opened_at=datetime.fromisoformat(item["opened_at"]["S"]),
        deadline=datetime.fromisoformat(item["deadline"]["S"]),
        scored=item["scored"]["S"],
        status=ReviewStatus(item["status"]["S"]),
        decided_at=datetime.fromisoformat(decided_at) if decided_at else None,
        decided_by=optional("decided_by"),
        reviewer=optional("reviewer"),
        note=optional("note"),
    )


class ReviewsStore:
    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def open(self, review: Review) -> bool:
        """Store a new open review; False when the payment already has one (a redelivery)."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(review),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def get(self, payment_id: str) -> Review | None:
        item = self._client.get_item(TableName=self._table, Key=_key(payment_id), ConsistentRead=True).get(
            "Item"
        )
        return from_item(item) if item else None

    def close(self, review: Review) -> bool:
        """Move an open review to ``review``'s outcome; False when another decision closed it.

        A close found already made by the same decision (its response lost, the request sent
        again) is this close: True.
        """
        names = {"#status": "status"}
        values: dict[str, Any] = {":open": {"S": OPEN}, ":status": {"S": review.status.value}}
        sets = ["#status = :status"]
        for name in ("decided_at", "decided_by", "reviewer", "note"):
            value = getattr(review, name)
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = {"S": _ts(value) if isinstance(value, datetime) else value}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(review.payment_id),
                UpdateExpression=f"SET {', '.join(sets)} REMOVE gsi1pk, gsi1sk",
                ConditionExpression="#status = :open",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            stored = cast("dict[str, dict[str, str]]", error.response.get("Item") or {})
            mine = {"decided_by": review.decided_by, "status": review.status.value}
            return all(stored.get(name, {}).get("S") == value for name, value in mine.items())
        return True

    def open_reviews(self, opened_before: datetime | None = None, limit: int = 1000) -> Iterator[Review]:
        """Open reviews, oldest first (opened before ``opened_before`` when given)."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :open" + (" AND gsi1sk < :before" if opened_before else ""),
            "ExpressionAttributeValues": {":open": {"S": OPEN}}
            | ({":before": {"S": _ts(opened_before)}} if opened_before else {}),
        }
        found = 0
        while found < limit:
            page = self._client.query(**query, Limit=min(100, limit - found))
            for item in page.get("Items", []):
                found += 1
                yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
