"""Writes per DynamoDB item in the embedded run of ``paypipe run``: no item of any table is written
on the path of every payment. Each payment's items take a bounded number of writes whatever the
number of payments; only a provider's items and an ACH batch's items may take more, and are named
here with the reason. The same holds for the partitions of the tables' index: the entries written
under each index partition key (``gsi1pk``) are counted as if it were an item."""

import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.client import BaseClient

from paypipe.adapters import dynamo_index
from paypipe.embedded import runtime
from paypipe.embedded.demo import run_demo

pytestmark = pytest.mark.embedded

PAYMENTS = 8  # the small run; the large one has twice as many
PER_ITEM_BOUND = 6  # the most writes one payment's item takes in the scenario (ledger: 3-4)
KEY_NAMES = ("pk", "sk", "id")  # every table's key attributes (``id``: the idempotency table)
# (table, key pattern): items that may be written by many payments, and why that does not grow globally
ALLOWED = (
    ("LedgerTable", re.compile(r"pk=ledger#account#[A-Z]{3}#clawback#.+")),  # one per provider
    ("PayoutsTable", re.compile(r"pk=batch#.+")),  # one per ACH file of up to 2,500 payouts
)

INDEX_SET = re.compile(r"\bgsi1pk = (:\w+)")  # an update setting the index partition key

type ItemKey = tuple[str, str]


def _key(table: str, item: Mapping[str, Any]) -> ItemKey:
    name = table.removeprefix("paypipe-embedded-")
    return name, "|".join(f"{k}={next(iter(item[k].values()))}" for k in KEY_NAMES if k in item)


def _index_entry(table: str, spec: Mapping[str, Any]) -> Iterator[ItemKey]:
    """The index partition a write puts an entry under (the item's ``gsi1pk`` or an update's new one)."""
    if "Item" in spec and "gsi1pk" in spec["Item"]:
        yield table.removeprefix("paypipe-embedded-"), f"gsi1pk={spec['Item']['gsi1pk']['S']}"
    set_to = INDEX_SET.search(spec.get("UpdateExpression", ""))
    if set_to:
        value = spec["ExpressionAttributeValues"][set_to.group(1)]["S"]
        yield table.removeprefix("paypipe-embedded-"), f"gsi1pk={value}"


def _write(table: str, spec: Mapping[str, Any]) -> Iterator[ItemKey]:
    yield _key(table, spec.get("Key") or spec["Item"])
    yield from _index_entry(table, spec)


def _written(operation: str, params: Mapping[str, Any]) -> Iterator[ItemKey]:
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        yield from _write(params["TableName"], params)
    elif operation == "TransactWriteItems":
        for entry in params["TransactItems"]:
            ((kind, spec),) = entry.items()
            if kind != "ConditionCheck":
                yield from _write(spec["TableName"], spec)
    elif operation == "BatchWriteItem":
        for table, requests in params["RequestItems"].items():
            for request in requests:
                ((_, spec),) = request.items()
                yield from _write(table, spec)


def writes_per_item(payments: int) -> Counter[ItemKey]:
    counts: Counter[ItemKey] = Counter()
    original = BaseClient._make_api_call

    def counting(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            counts.update(_written(operation, params))
        return original(client, operation, params)

    with (
        tempfile.TemporaryDirectory() as scratch,
        mock.patch.dict(os.environ, LOG_FILE=f"{scratch}/log.jsonl"),
        mock.patch.object(BaseClient, "_make_api_call", counting),
        # The deployed stack's shard count: what a key takes per payment is what this test measures.
        mock.patch.object(runtime, "EMBEDDED_INDEX_SHARDS", dynamo_index.INDEX_SHARDS),
    ):
        report = run_demo(payments, out_dir=Path(scratch) / "out")
    assert report.reconciliation.ok, report.reconciliation.violations
    return counts


def _allowed(item: ItemKey) -> bool:
    table, key = item
    return any(table.startswith(name) and pattern.fullmatch(key) for name, pattern in ALLOWED)


def test_no_item_is_written_on_the_path_of_every_payment() -> None:
    small, large = writes_per_item(PAYMENTS), writes_per_item(2 * PAYMENTS)

    for counts in (small, large):
        hot = {item: n for item, n in counts.most_common() if n > PER_ITEM_BOUND and not _allowed(item)}
        assert hot == {}, f"items whose writes grow with the payments: {hot}"
    assert sum(large.values()) > 1.8 * sum(small.values())  # the large run did twice the work
