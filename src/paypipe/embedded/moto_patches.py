"""Patches to moto for embedded runs only.

- A faster, equivalent DynamoDB TransactWriteItems: moto snapshots every table a transaction
  touches, once per transaction item, so each write costs time proportional to the table: long
  embedded runs (the ledger writes in transactions) become quadratic. This replacement checks
  every condition against the state before the transaction and writes only when all pass, as
  DynamoDB does; if applying an item still fails, the items written so far are restored from
  per-item snapshots. Errors are reported in moto's own shapes.
- The pipeline clock in SQS and EventBridge: message timestamps (``SentTimestamp``),
  visibility, retention and an event's ``time`` follow the clock the run drives, as they follow
  real time on AWS. Receives do not long-poll: in one process nothing can send while a receive
  waits, and the driven clock would never end the wait. A visibility timeout of 0 makes a
  message visible at once (moto compares times strictly, and the clock stands still between
  the run's steps), and is never refused: moto measures SQS's 12-hour visibility limit from the
  message's send, so a dead-lettered message older than 12 hours of the run's clock could not be
  released after a peek; SQS measures it from the receive, and a timeout of 0 extends nothing.
- Linear moto (``linear_moto``): paths whose cost grows with the data moto holds, made to cost
  what they cost on AWS, each with the same results as moto's own:
  an SQS receive checks each message's retention against the queue's period (moto rebuilds every
  queue attribute, counting all messages three times, for each message received), and a queue's
  attributes (read on every send) count its messages in one pass; a DynamoDB table
  Query reads only its partition (moto filters and sorts the whole table for each one);
  EventBridge parses each input path once (moto parses every path of every target's input
  transformer for each event).

Each replacement names the moto source it stands for and that source's fingerprint, per moto
version it was checked against (``REPLACED``); tests/unit/test_moto_patches.py fails when the
installed moto's source differs, so that a moto upgrade re-checks the patch.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import textwrap
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import moto.events.utils as events_utils
import moto.sqs.models as sqs_models
from moto.core.utils import camelcase_to_underscores
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.sqs.exceptions import ReceiptHandleIsInvalid

from paypipe.runtime.clock import Clock

OPERATIONS = frozenset({"ConditionCheck", "Put", "Delete", "Update"})


def _key_of(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


Operation = tuple[str, dict[str, Any], dict[str, Any]]  # (type, request, key)


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    ops = _parsed_operations(self, transact_items)
    _check_conditions(self, ops)
    _apply_all_or_none(self, ops)


def _parsed_operations(backend: Any, transact_items: list[dict[str, Any]]) -> list[Operation]:
    """The transaction's operations, refused as DynamoDB refuses them (size, shape, one per item)."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    ops: list[Operation] = []
    seen: set[tuple[str, str]] = set()
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in OPERATIONS:
            raise ValueError("Unsupported transaction operation")
        key = _key_of(backend, op_type, op)
        identity = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        ops.append((op_type, op, key))
    return ops


def _check_conditions(backend: Any, ops: list[Operation]) -> None:
    """Cancel the transaction, with a reason per operation, if any condition fails."""
    errors: list[tuple[str | None, str | None, Any]] = []
    for _op_type, op, key in ops:
        current = backend.get_item(op["TableName"], key)
        expression = op.get("ConditionExpression")
        if expression is not None:
            condition = get_filter_expression(
                expression, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not condition.expr(current):
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
                continue
        errors.append((None, None, None))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)


def _apply_all_or_none(backend: Any, ops: list[Operation]) -> None:
    """Apply every write; on a failure restore each item written so far."""
    snapshots: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    try:
        for op_type, op, key in ops:
            table_name = op["TableName"]
            current = backend.get_item(table_name, key)
            snapshots.append((table_name, key, current.to_json()["Attributes"] if current else None))
            _apply(backend, op_type, op, key)
    except Exception:
        for table_name, key, attributes in reversed(snapshots):
            if attributes is None:
                backend.delete_item(table_name, key)
            else:
                backend.put_item(table_name, attributes)
        raise


def _apply(backend: Any, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
    table_name = op["TableName"]
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    if op_type == "Put":
        backend.put_item(
            table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values
        )
    elif op_type == "Delete":
        backend.delete_item(
            table_name, key, expression_attribute_names=names, expression_attribute_values=values
        )
    elif op_type == "Update":
        backend.update_item(
            table_name,
            key,
            update_expression=op["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )


@contextmanager
def faster_transactions() -> Iterator[None]:
    original: Callable[..., None] = DynamoDBBackend.transact_write_items
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]


@contextmanager
def pipeline_clock(clock: Clock) -> Iterator[None]:
    """SQS and EventBridge in moto read ``clock`` (the modules import moto's time helpers by name)."""
    import moto.events.models as events_models

    def unix_time(moment: datetime | None = None) -> float:
        return (moment or clock.now()).timestamp()

    def unix_time_millis(moment: datetime | None = None) -> float:
        return unix_time(moment) * 1000.0

    receive: Callable[..., Any] = sqs_models.SQSBackend.receive_message

    def receive_now(self: Any, queue_name: str, count: int, _wait: int, *args: Any, **kwargs: Any) -> Any:
        return receive(self, queue_name, count, 0, *args, **kwargs)

    change_visibility: Callable[..., None] = sqs_models.Message.change_visibility

    def visible_again(self: Any, visibility_timeout: int) -> None:
        if int(visibility_timeout) == 0:
            self.visible_at = 0
        else:
            change_visibility(self, visibility_timeout)

    change_message_visibility: Callable[..., None] = sqs_models.SQSBackend.change_message_visibility

    def released(self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
        if int(visibility_timeout) != 0:
            return change_message_visibility(self, queue_name, receipt_handle, visibility_timeout)
        queue = self.get_queue(queue_name)
        for message in queue._messages:
            if message.had_receipt_handle(receipt_handle):
                message.change_visibility(0)
                if message in queue.pending_messages:
                    queue.pending_messages.remove(message)
                return None
        raise ReceiptHandleIsInvalid()

    replacements: list[tuple[Any, str, Any]] = [
        (sqs_models.SQSBackend, "change_message_visibility", released),
        (sqs_models.Message, "change_visibility", visible_again),
        (sqs_models, "unix_time", unix_time),
        (sqs_models, "unix_time_millis", unix_time_millis),
        (events_models, "unix_time", unix_time),
        (sqs_models.SQSBackend, "receive_message", receive_now),
    ]
    with _replaced(replacements):
        yield


# -- linear moto ----------------------------------------------------------------------------------

# moto's source replaced, by qualified name: its fingerprint (``fingerprint``) in each moto version
# the replacement was checked against (5.1.0, 5.1.11, 5.1.22, 5.2.0 and 5.2.5, within the versions
# pyproject allows).
REPLACED: Mapping[str, frozenset[str]] = {
    "moto.dynamodb.models.DynamoDBBackend.transact_write_items": frozenset(
        {"c13e5ac41009cb50", "f1ff5d36d713414c", "de717cb800193df0", "0b5c3b73cdccf326"}
    ),
    "moto.sqs.models.SQSBackend.is_message_valid_based_on_retention_period": frozenset({"9c430561cf6d7cb4"}),
    "moto.sqs.models.SQSBackend.change_message_visibility": frozenset({"9c89525e42fd0d37"}),
    "moto.sqs.models.Queue.attributes": frozenset({"832c3d3d7ebce2bd", "ddf03540564891aa"}),
    "moto.sqs.models.Message.visible": frozenset({"1abcc7861b9a4c5b"}),
    "moto.sqs.models.Message.delayed": frozenset({"815515980283b0b0"}),
    "moto.dynamodb.models.table.Table.query": frozenset(
        {"841c0c253c9cc170", "4badcb7abae8102b", "c08e16587862d4ca"}
    ),
    "moto.events.utils.EventTemplateParser.parse": frozenset(
        {"66797cc7a016c778", "7f76231d155223a7", "316594ec2a681a96"}
    ),
}


def fingerprint(function: Callable[..., Any] | property) -> str:
    """A short digest of a function's source, as written (comments and layout included)."""
    target = function.fget if isinstance(function, property) else function
    assert target is not None
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(target)))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


_COUNTED = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
)


def _message_counts(queue: Any) -> dict[str, int]:
    """The three approximate counts in one pass, at one reading of the clock (moto: three passes,
    a clock reading per message and count; the pipeline clock stands still within a call)."""
    now = sqs_models.unix_time_millis()  # type: ignore[attr-defined]
    available = delayed = hidden = 0
    for message in queue._messages:
        is_visible, is_delayed = now > message.visible_at, now < message.delayed_until
        available += is_visible and not is_delayed
        delayed += is_delayed
        hidden += not is_visible
    return dict(zip(_COUNTED, (available, delayed, hidden), strict=True))


def queue_attributes(self: Any) -> dict[str, Any]:
    """moto's ``Queue.attributes`` with its message counts made in one pass."""
    counts = _message_counts(self)
    names = list(self.BASE_ATTRIBUTES)
    if self.fifo_queue:
        names += self.FIFO_ATTRIBUTES
    if self.kms_master_key_id:
        names += self.KMS_ATTRIBUTES
    result = {
        name: counts[name] if name in counts else getattr(self, camelcase_to_underscores(name))
        for name in names
    }
    if self.policy:
        result["Policy"] = self.policy
    if self.redrive_policy:
        result["RedrivePolicy"] = json.dumps(self.redrive_policy)
    return {key: str(value).lower() if isinstance(value, bool) else value for key, value in result.items()}


def retained(self: Any, queue_name: str, message: Any) -> bool:
    """moto's retention check reading the queue's period alone."""
    period = int(self.get_queue(queue_name).message_retention_period)
    return bool(period + message.sent_timestamp / 1000 > sqs_models.unix_time())  # type: ignore[attr-defined]


_QUERY = Table.query
_QUERY_SIGNATURE = inspect.signature(_QUERY)


def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    """moto's Query with a table query's candidates limited to its partition (same order after the
    sort by range key); index queries as moto makes them."""
    index_name = _QUERY_SIGNATURE.bind(self, hash_key, *args, **kwargs).arguments.get("index_name")
    if index_name is not None or hash_key is None:
        return _QUERY(self, hash_key, *args, **kwargs)
    partition = self.items.get(hash_key)
    candidates = [] if partition is None else [partition]
    if partition is not None and self.range_key_attr:
        candidates = list(partition.values())
    self.all_items = lambda: candidates
    try:
        return _QUERY(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items


@functools.cache
def _json_path(path: str) -> Any:
    from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

    return parse(path)


def parse_template(input_template: str, input_paths_map: dict[str, Any], event: Any) -> dict[str, Any]:
    """moto's ``EventTemplateParser.parse`` with each input path parsed once per run."""
    parser = events_utils.EventTemplateParser
    template = input_template or parser.DEFAULT_EVENT_INPUT_TEMPLATE
    paths = input_paths_map or parser.DEFAULT_EVENT_INPUT_PATHS_MAP
    for name, path in paths.items():
        matches = _json_path(path).find(event)
        result = parser._stringify(matches[0].value) if matches else None
        if result:
            template = template.replace(f"<{name}>", result)
    defaults = {"aws.events.event.json": event, "aws.events.event.ingestion-time": event["ingestion-time"]}
    for name, value in defaults.items():
        template = template.replace(f"<{name}>", parser._stringify(value))
    parsed: dict[str, Any] = json.loads(template)
    return parsed


@contextmanager
def linear_moto() -> Iterator[None]:
    replacements: list[tuple[Any, str, Any]] = [
        (sqs_models.SQSBackend, "is_message_valid_based_on_retention_period", retained),
        (sqs_models.Queue, "attributes", property(queue_attributes)),
        (Table, "query", partition_query),
        (events_utils.EventTemplateParser, "parse", staticmethod(parse_template)),
    ]
    with _replaced(replacements):
        yield


@contextmanager
def _replaced(replacements: list[tuple[Any, str, Any]]) -> Iterator[None]:
    """Each ``(owner, name, replacement)`` in place, the originals (descriptors as defined) restored."""
    saved = [(owner, name, vars(owner)[name]) for owner, name, _ in replacements]
    for owner, name, replacement in replacements:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
