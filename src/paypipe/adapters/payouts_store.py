"""Released payouts waiting for an ACH file, and the batches cut from them (DynamoDB).

Items (table keys ``pk``/``sk``, index ``gsi1`` on ``gsi1pk``/``gsi1sk``):
- ``payout#<payment id>`` / ``payout``: the payout (its payee account by vault token), release time and status
  (``pending`` -> ``assigned``; ``blocked`` while a dispute holds it back, ``cancelled`` once
  the release was refunded); while pending it sits in gsi1 under ``payout#pending#<shard>``
  sorted by ``<released_at>#<payment id>``, while blocked under ``payout#blocked#<shard>`` (the
  shard: ``paypipe.adapters.dynamo_index.shard_key`` of the payment id, so no index partition
  takes every payout's writes; reads merge the shards in sort order).
- ``batch#<batch id>`` / ``batch``: members, window and excluded members (the ledger refused
  their payout when the batch was filed) of a cut batch, and the payouts whose account it prenotes
  (as they stood when it was cut); while it is not yet fully written, uploaded and announced it
  sits in gsi1 under ``batch#open`` (one key: written per batch, not per payout).
- ``filemod#<ODFI routing>#<yyyymmdd>`` / ``counter``: file id modifiers used per ODFI and per
  creation date as the file header writes it (Eastern time).
- ``trace#<ODFI routing>`` / ``counter``: the ODFI's running entry sequence (trace numbers are
  unique across files and days, as returns identify entries by them).
- ``entry#<trace number>`` / ``entry``: a filed payout entry (payment, batch, provider, account
  fingerprint, amount, effective date), written before its file is uploaded, so every answer from
  the bank finds the entry it answers; a prenote's says ``prenote`` (its payment: the payout it is
  for), and ``status`` becomes ``returned`` (with ``return_code`` and the bank file,
  ``returned_by``) once its return is applied.
- ``account#<account fingerprint>`` / ``account``: what the pipeline knows of a payee account:
  unusable (a return whose code stops credits, or any return of its prenote), the correction of a
  notification of change (routing, account by vault token, type), applied to every payout to that
  account before it is filed; its prenote (trace number, effective date, batch) once its file is
  uploaded, its first live entry (``paid_trace``), and the notification of change whose corrected
  details it is (``given_by_bank_trace``): either of the last two means it needs no prenote.
- ``inbound#<bucket>/<key>`` / ``<ETag>``: a bank file read by the returns consumer (processed once).
- ``provider#<tenant>#<provider id>`` / ``account``: the account (by vault token) the client gave for
  the provider's payouts whose own account the bank said takes no credits (``PayeeAccountUpdated``).

A payout returned by the bank goes back to ``pending`` when it may be sent again, or to
``waiting`` (gsi1 ``payout#waiting#<shard>``) until its account details change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from paypipe.adapters.dynamo import put_once
from paypipe.adapters.dynamo_index import query_shards, shard_key
from paypipe.domain.ach_batching import PayoutRecord, PendingPayout, PlannedBatch
from paypipe.domain.ach_calendar import EASTERN
from paypipe.domain.ach_returns import FiledEntry
from paypipe.domain.nacha import Payable, trace_block_wraps
from paypipe.runtime.retry import retry_throttled

PENDING_INDEX_KEY = "payout#pending"
BLOCKED_INDEX_KEY = "payout#blocked"
SET_ASIDE_INDEX_KEY = "payout#set_aside"
WAITING_INDEX_KEY = "payout#waiting"
OPEN_BATCH_INDEX_KEY = "batch#open"
FILE_ID_MODIFIERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class BatchConflictError(RuntimeError):
    """A payout is already assigned to another batch: refuse rather than pay twice."""


class FileIdsExhaustedError(RuntimeError):
    """All 36 file id modifiers of the ODFI's creation date are used: the batch waits for the next date."""


@dataclass(frozen=True)
class StoredBatch:
    batch_id: str
    kind: str
    effective_date: date
    sec_code: str
    created_at: datetime
    file_id_modifier: str
    payment_ids: tuple[str, ...]
    excluded: frozenset[str] = frozenset()  # members whose payout the ledger refused at filing
    first_trace: int = 1  # the first of the ODFI's sequence numbers this batch's file uses
    prenotes: tuple[PayoutRecord, ...] = ()  # payouts whose account the file prenotes, as planned


class PayoutsStore:
    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def add_pending(self, payout: PayoutRecord, released_at: datetime, *, fingerprint: str = "") -> bool:
        """Record a released payout once, with the fingerprint of the event that released it;
        False when it was already recorded from an event of other content (nothing written)."""
        item = {
            "pk": {"S": f"payout#{payout.payment_id}"},
            "sk": {"S": "payout"},
            "payout": {"S": json.dumps(asdict(payout), sort_keys=True)},
            "released_at": {"S": released_at.isoformat()},
            "status": {"S": "pending"},
            "gsi1pk": {"S": shard_key(PENDING_INDEX_KEY, payout.payment_id)},
            "gsi1sk": {"S": f"{released_at.isoformat()}#{payout.payment_id}"},
        }
        if fingerprint:
            item["fingerprint"] = {"S": fingerprint}
        stored = put_once(self._client, self._table, item)
        if stored is None:
            return True
        recorded_with = stored.get("fingerprint", {}).get("S", "")
        return not (fingerprint and recorded_with and recorded_with != fingerprint)

    def pending(self, limit: int | None = None) -> list[PendingPayout]:
        """Pending payouts, oldest release first (the ``limit`` oldest when given)."""
        return self._indexed(PENDING_INDEX_KEY, limit)

    def blocked(self) -> list[PendingPayout]:
        """Payouts a dispute holds back (each cut asks the ledger whether it still does)."""
        return self._indexed(BLOCKED_INDEX_KEY)

    def _indexed(self, key: str, limit: int | None = None) -> list[PendingPayout]:
        """The payouts under every shard of ``key``, oldest release first."""
        return [
            PendingPayout(_payout(item), datetime.fromisoformat(item["released_at"]["S"]))
            for item in query_shards(self._client, self._table, key, limit=limit)
        ]

    def block(self, pending: PendingPayout) -> None:
        self._set_status(pending, "blocked", BLOCKED_INDEX_KEY)

    def unblock(self, pending: PendingPayout) -> None:
        self._set_status(pending, "pending", PENDING_INDEX_KEY)

    def set_aside(self, pending: PendingPayout, reason: str) -> None:
        """A payout no file or ledger will take as it is: out of the cut, listed for an operator."""
        self._set_status(pending, "set_aside", SET_ASIDE_INDEX_KEY, reason=reason)

    def set_aside_payouts(self) -> list[PendingPayout]:
        return self._indexed(SET_ASIDE_INDEX_KEY)

    def wait(self, pending: PendingPayout, reason: str) -> None:
        """A returned payout waits for its payee account details to change."""
        self._set_status(pending, "waiting", WAITING_INDEX_KEY, reason=reason)

    def waiting(self) -> list[PendingPayout]:
        return self._indexed(WAITING_INDEX_KEY)

    def waiting_reason(self, payment_id: str) -> str:
        item = self._item(f"payout#{payment_id}", "payout")
        return str(item.get("reason", {}).get("S", "")) if item else ""

    def replace_payout(self, payout: PayoutRecord) -> None:
        """Store the payout with corrected payee details (a notification of change or new details)."""
        retry_throttled(
            partial(
                self._client.update_item,
                TableName=self._table,
                Key={"pk": {"S": f"payout#{payout.payment_id}"}, "sk": {"S": "payout"}},
                UpdateExpression="SET payout = :payout",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":payout": {"S": json.dumps(asdict(payout), sort_keys=True)}},
            )
        )

    def record_entries(self, entries: Sequence[FiledEntry], file_key: str) -> None:
        """Index a file's payout entries by trace number (before the file is uploaded)."""
        items = [_entry_item(entry, file_key) for entry in entries]
        for start in range(0, len(items), 25):
            request: dict[str, Any] = {
                self._table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            }
            while request:
                response = retry_throttled(partial(self._client.batch_write_item, RequestItems=request))
                request = response.get("UnprocessedItems") or {}

    def entry(self, trace_number: str) -> FiledEntry | None:
        item = self._item(f"entry#{trace_number}", "entry")
        return _filed_entry(item) if item else None

    def mark_returned(self, trace_number: str, return_code: str, inbound_key: str) -> str:
        """Note which bank file returned the entry (the first one wins); the key of that file."""
        try:
            retry_throttled(
                partial(
                    self._client.update_item,
                    TableName=self._table,
                    Key={"pk": {"S": f"entry#{trace_number}"}, "sk": {"S": "entry"}},
                    UpdateExpression="SET #status = :returned, returned_by = :key, return_code = :code",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(returned_by)",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":returned": {"S": "returned"},
                        ":key": {"S": inbound_key},
                        ":code": {"S": return_code},
                    },
                )
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = self._item(f"entry#{trace_number}", "entry") or {}
            return str(item.get("returned_by", {}).get("S", inbound_key))
        return inbound_key

    def _item(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = retry_throttled(
            partial(
                self._client.get_item,
                TableName=self._table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                ConsistentRead=True,
            )
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def cancel(self, payment_id: str) -> None:
        """The release was refunded: the payout will never be made."""
        retry_throttled(
            partial(
                self._client.update_item,
                TableName=self._table,
                Key={"pk": {"S": f"payout#{payment_id}"}, "sk": {"S": "payout"}},
                UpdateExpression="SET #status = :cancelled REMOVE gsi1pk, gsi1sk, batch_id",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":cancelled": {"S": "cancelled"}},
            )
        )

    def _set_status(self, pending: PendingPayout, status: str, index_key: str, reason: str = "") -> None:
        payment_id = pending.payout.payment_id
        retry_throttled(
            partial(
                self._client.update_item,
                TableName=self._table,
                Key={"pk": {"S": f"payout#{payment_id}"}, "sk": {"S": "payout"}},
                UpdateExpression="SET #status = :status, gsi1pk = :index, gsi1sk = :sort, reason = :reason "
                "REMOVE batch_id",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": {"S": status},
                    ":index": {"S": shard_key(index_key, payment_id)},
                    ":sort": {"S": f"{pending.released_at.isoformat()}#{payment_id}"},
                    ":reason": {"S": reason},
                },
            )
        )

    def released_at(self, payment_id: str) -> datetime:
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"payout#{payment_id}"}, "sk": {"S": "payout"}},
            ConsistentRead=True,
        )["Item"]
        return datetime.fromisoformat(item["released_at"]["S"])

    def payouts(self, payment_ids: Sequence[str]) -> list[PayoutRecord]:
        keys = [(f"payout#{pid}", "payout") for pid in payment_ids]
        found = {
            payout.payment_id: payout for payout in map(_payout, batch_get(self._client, self._table, keys))
        }
        missing = [pid for pid in payment_ids if pid not in found]
        if missing:
            raise KeyError(f"payouts not found: {missing[:5]}")
        return [found[pid] for pid in payment_ids]

    def open_batch(self, plan: PlannedBatch, created_at: datetime, *, odfi: str, traces: int) -> StoredBatch:
        """Persist the batch (idempotent by its content-derived id) before anything is written,
        with its file id modifier and its block of ``traces`` trace sequence numbers.

        FileIdsExhaustedError when the ODFI's creation date has no modifier left.
        """
        existing = self.batch(plan.batch_id)
        if existing is not None:
            return existing
        stored = StoredBatch(
            batch_id=plan.batch_id,
            kind=plan.kind,
            effective_date=plan.effective_date,
            sec_code=plan.sec_code,
            created_at=created_at,
            file_id_modifier=self._next_file_id_modifier(created_at, odfi),
            payment_ids=tuple(payout.payment_id for payout in plan.payouts),
            first_trace=self._trace_block(odfi, traces),
            prenotes=tuple(_record(payout) for payout in plan.prenotes),
        )
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **_batch_item(stored),
                    "gsi1pk": {"S": OPEN_BATCH_INDEX_KEY},
                    "gsi1sk": {"S": stored.batch_id},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            found = self.batch(plan.batch_id)
            assert found is not None
            return found
        return stored

    def assign(self, batch: StoredBatch) -> None:
        """Take each member out of the pending set; refuse if any belongs to another batch."""
        for payment_id in batch.payment_ids:
            if payment_id in batch.excluded:
                continue
            request = {
                "TableName": self._table,
                "Key": {"pk": {"S": f"payout#{payment_id}"}, "sk": {"S": "payout"}},
                "UpdateExpression": "SET #status = :assigned, batch_id = :batch REMOVE gsi1pk, gsi1sk",
                "ConditionExpression": "#status = :pending OR batch_id = :batch",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":assigned": {"S": "assigned"},
                    ":pending": {"S": "pending"},
                    ":batch": {"S": batch.batch_id},
                },
            }
            try:
                retry_throttled(partial(self._client.update_item, **request))
            except ClientError as error:
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    raise BatchConflictError(f"payout {payment_id} belongs to another batch") from None
                raise

    def exclude(self, batch_id: str, payment_id: str) -> None:
        """Record that a member's payout was refused at filing (before the file is written)."""
        retry_throttled(
            partial(
                self._client.update_item,
                TableName=self._table,
                Key={"pk": {"S": f"batch#{batch_id}"}, "sk": {"S": "batch"}},
                UpdateExpression="ADD excluded :member",
                ExpressionAttributeValues={":member": {"SS": [payment_id]}},
            )
        )

    def close_batch(self, batch_id: str, file_key: str | None) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": f"batch#{batch_id}"}, "sk": {"S": "batch"}},
            UpdateExpression="SET #status = :done, file_key = :key REMOVE gsi1pk, gsi1sk",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":done": {"S": "done"}, ":key": {"S": file_key or ""}},
        )

    def open_batches(self) -> list[StoredBatch]:
        return [_stored_batch(item) for item in self._query_index(OPEN_BATCH_INDEX_KEY)]

    def batch(self, batch_id: str) -> StoredBatch | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"batch#{batch_id}"}, "sk": {"S": "batch"}},
            ConsistentRead=True,
        ).get("Item")
        return _stored_batch(item) if item else None

    def _next_file_id_modifier(self, created_at: datetime, odfi: str) -> str:
        """The next modifier of the creation date the header carries (Eastern), per ODFI."""
        local_date = created_at.astimezone(EASTERN).date()
        key = f"filemod#{odfi}#{local_date:%Y%m%d}"
        used = self._count(key, 1)
        if used > len(FILE_ID_MODIFIERS):
            raise FileIdsExhaustedError(f"{len(FILE_ID_MODIFIERS)} ACH files already created on {local_date}")
        return FILE_ID_MODIFIERS[used - 1]

    def files_left(self, created_at: datetime, odfi: str) -> int:
        """File id modifiers still free on the creation date (Eastern) for this ODFI."""
        local_date = created_at.astimezone(EASTERN).date()
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"filemod#{odfi}#{local_date:%Y%m%d}"}, "sk": {"S": "counter"}},
            ConsistentRead=True,
        ).get("Item")
        used = int(item["used"]["N"]) if item else 0
        return max(0, len(FILE_ID_MODIFIERS) - used)

    def trace_block(self, odfi: str, count: int) -> int:
        """``count`` fresh trace sequence numbers of the ODFI (for files other than payouts)."""
        return self._trace_block(odfi, count)

    def _trace_block(self, odfi: str, count: int) -> int:
        """The first of ``count`` fresh sequence numbers of the ODFI (atomic: concurrent cuts never
        share one); a block that would pass 9,999,999 is skipped for the next one."""
        while True:
            last = self._count(f"trace#{odfi}", count)
            first = last - count + 1
            if not trace_block_wraps(first, count):
                return first

    def _count(self, key: str, amount: int) -> int:
        response = self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": key}, "sk": {"S": "counter"}},
            UpdateExpression="ADD used :amount",
            ExpressionAttributeValues={":amount": {"N": str(amount)}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["used"]["N"])

    def _query_index(self, key: str) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :key",
            "ExpressionAttributeValues": {":key": {"S": key}},
        }
        while True:
            response = self._client.query(**request)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def batch_get(client: Any, table: str, keys: Sequence[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """The items of ``table`` with these (pk, sk) keys that exist (consistent reads, 100 per call)."""
    for start in range(0, len(keys), 100):
        chunk = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in keys[start : start + 100]]
        request: dict[str, Any] = {table: {"Keys": chunk, "ConsistentRead": True}}
        while request:
            response = retry_throttled(partial(client.batch_get_item, RequestItems=request))
            yield from response["Responses"].get(table, [])
            request = response.get("UnprocessedKeys") or {}


def _entry_item(entry: FiledEntry, file_key: str) -> dict[str, Any]:
    prenote = {"prenote": {"BOOL": True}} if entry.prenote else {}
    return {
        **prenote,
        "pk": {"S": f"entry#{entry.trace_number}"},
        "sk": {"S": "entry"},
        "payment_id": {"S": entry.payment_id},
        "batch_id": {"S": entry.batch_id},
        "provider_id": {"S": entry.provider_id},
        "account_fingerprint": {"S": entry.account_fingerprint},
        "amount_cents": {"N": str(entry.amount_cents)},
        "effective_date": {"S": entry.effective_date.isoformat()},
        "file_key": {"S": file_key},
    }


def _filed_entry(item: dict[str, Any]) -> FiledEntry:
    return FiledEntry(
        trace_number=item["pk"]["S"].removeprefix("entry#"),
        payment_id=item["payment_id"]["S"],
        batch_id=item["batch_id"]["S"],
        provider_id=item["provider_id"]["S"],
        account_fingerprint=item["account_fingerprint"]["S"],
        amount_cents=int(item["amount_cents"]["N"]),
        effective_date=date.fromisoformat(item["effective_date"]["S"]),
        prenote=item.get("prenote", {}).get("BOOL", False),
    )


def _payout(item: dict[str, Any]) -> PayoutRecord:
    return PayoutRecord(**json.loads(item["payout"]["S"]))


def _record(payout: Payable) -> PayoutRecord:
    if not isinstance(payout, PayoutRecord):
        raise TypeError(f"payout {payout.payment_id}: a stored batch prenotes stored payouts only")
    return payout


def _batch_item(batch: StoredBatch) -> dict[str, Any]:
    prenotes = [{"S": json.dumps(asdict(p), sort_keys=True)} for p in batch.prenotes]
    return {
        **({"prenotes": {"L": prenotes}} if prenotes else {}),
        "pk": {"S": f"batch#{batch.batch_id}"},
        "sk": {"S": "batch"},
        "kind": {"S": batch.kind},
        "effective_date": {"S": batch.effective_date.isoformat()},
        "sec_code": {"S": batch.sec_code},
        "created_at": {"S": batch.created_at.isoformat()},
        "file_id_modifier": {"S": batch.file_id_modifier},
        "payment_ids": {"L": [{"S": pid} for pid in batch.payment_ids]},
        "first_trace": {"N": str(batch.first_trace)},
        "status": {"S": "open"},
    }


def _stored_batch(item: dict[str, Any]) -> StoredBatch:
    return StoredBatch(
        batch_id=item["pk"]["S"].removeprefix("batch#"),
        kind=item["kind"]["S"],
        effective_date=date.fromisoformat(item["effective_date"]["S"]),
        sec_code=item["sec_code"]["S"],
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        file_id_modifier=item["file_id_modifier"]["S"],
        payment_ids=tuple(value["S"] for value in item["payment_ids"]["L"]),
        excluded=frozenset(item.get("excluded", {}).get("SS", [])),
        first_trace=int(item.get("first_trace", {}).get("N", "1")),
        prenotes=tuple(PayoutRecord(**json.loads(p["S"])) for p in item.get("prenotes", {}).get("L", [])),
    )
