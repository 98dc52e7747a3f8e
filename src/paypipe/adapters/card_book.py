"""The card book on DynamoDB: the card lines the pipeline booked, matched against the acquirer's
settlement reports, and each day's match.

- a booked line: ``pk payment#<payment>``, ``sk line#<line id>``, the line (JSON) and, once a
  report accounts for it, ``matched_day``; until then it is on the sharded ``unmatched`` index
  sorted by its day, which the match reads for lines no report has accounted for, and which a
  line reported as on no report leaves (``unreported_on``: a later report may still match it);
- a day's match: ``pk day#<YYYY-MM-DD>``, ``sk match``, written once: the event that reported it.

Every write is conditional or idempotent, so a redelivered card event books its line once and a
match run again after a crash marks the same lines and finds the same day's record.
"""

from __future__ import annotations

import json
from datetime import date
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from paypipe.adapters.dynamo import put_once
from paypipe.adapters.dynamo_index import query_shards, shard_key
from paypipe.domain.settlement import BookedLine, line_from_record, line_record
from paypipe.runtime.retry import retry_throttled

UNMATCHED_INDEX = "unmatched"


class CardBook:
    def __init__(self, table: str, client: Any) -> None:
        self._table = table
        self._client = client

    def book(self, entry: BookedLine) -> BookedLine | None:
        """Book the line once: None when written, else the line already booked under its id."""
        line = entry.line
        item = {
            "pk": {"S": f"payment#{line.payment_id}"},
            "sk": {"S": f"line#{entry.line_id}"},
            "line": {"S": json.dumps(line_record(line), sort_keys=True)},
            "gsi1pk": {"S": shard_key(UNMATCHED_INDEX, entry.line_id)},
            "gsi1sk": {"S": f"{line.day.isoformat()}#{entry.line_id}"},
        }
        stored = retry_throttled(partial(put_once, self._client, self._table, item))
        return None if stored is None else _booked(stored)

    def lines_of(self, payment_id: str) -> list[BookedLine]:
        """Every line booked for the payment, matched or not."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :line)",
            "ExpressionAttributeValues": {":pk": {"S": f"payment#{payment_id}"}, ":line": {"S": "line#"}},
            "ConsistentRead": True,
        }
        found: list[BookedLine] = []
        while True:
            page = retry_throttled(partial(self._client.query, **request))
            found += [_booked(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def unmatched_before(self, day: date) -> list[BookedLine]:
        """The lines no report has accounted for, booked before ``day`` (oldest first)."""
        items = retry_throttled(
            partial(query_shards, self._client, self._table, UNMATCHED_INDEX, before=day.isoformat())
        )
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in items]
        return [entry for key in keys if (entry := self._get(key)) is not None and entry.matched_day is None]

    def mark_matched(self, entry: BookedLine, day: date) -> None:
        """Record that ``day``'s report accounts for the line (again, for the same day, is a no-op)."""
        matchable = "attribute_exists(pk) AND (attribute_not_exists(matched_day) OR matched_day = :day)"
        try:
            self._leave_index(entry, "matched_day", day, matchable)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise ValueError(f"line {entry.line_id} was matched on another day") from None

    def set_aside(self, entry: BookedLine, day: date) -> None:
        """Take a line the match of ``day`` reported as on no report off the unmatched index."""
        self._leave_index(entry, "unreported_on", day, "attribute_exists(pk)")

    def _leave_index(self, entry: BookedLine, attribute: str, day: date, condition: str) -> None:
        retry_throttled(
            partial(
                self._client.update_item,
                TableName=self._table,
                Key=_key(entry),
                UpdateExpression=f"SET {attribute} = :day REMOVE gsi1pk, gsi1sk",
                ConditionExpression=condition,
                ExpressionAttributeValues={":day": {"S": day.isoformat()}},
            )
        )

    def day_result(self, day: date) -> str | None:
        """The event the match of ``day`` reported (JSON), if it ran."""
        item = retry_throttled(
            partial(self._client.get_item, TableName=self._table, Key=_day_key(day), ConsistentRead=True)
        ).get("Item")
        return str(item["event"]["S"]) if item else None

    def save_day_result(self, day: date, event_json: str) -> str:
        """Keep the match's event unless one is kept for the day: the one kept."""
        item = {**_day_key(day), "event": {"S": event_json}}
        stored = retry_throttled(partial(put_once, self._client, self._table, item))
        return event_json if stored is None else str(stored["event"]["S"])

    def _get(self, key: dict[str, Any]) -> BookedLine | None:
        item = retry_throttled(
            partial(self._client.get_item, TableName=self._table, Key=key, ConsistentRead=True)
        ).get("Item")
        return _booked(item) if item else None


def _key(entry: BookedLine) -> dict[str, Any]:
    return {"pk": {"S": f"payment#{entry.line.payment_id}"}, "sk": {"S": f"line#{entry.line_id}"}}


def _day_key(day: date) -> dict[str, Any]:
    return {"pk": {"S": f"day#{day.isoformat()}"}, "sk": {"S": "match"}}


def _booked(item: dict[str, Any]) -> BookedLine:
    matched = item.get("matched_day", {}).get("S")
    return BookedLine(
        line_id=str(item["sk"]["S"]).removeprefix("line#"),
        line=line_from_record(json.loads(item["line"]["S"])),
        matched_day=date.fromisoformat(matched) if matched else None,
    )
