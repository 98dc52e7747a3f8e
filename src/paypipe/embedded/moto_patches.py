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
  the run's steps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend

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
    import moto.sqs.models as sqs_models

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

    replacements: list[tuple[Any, str, Any]] = [
        (sqs_models.Message, "change_visibility", visible_again),
        (sqs_models, "unix_time", unix_time),
        (sqs_models, "unix_time_millis", unix_time_millis),
        (events_models, "unix_time", unix_time),
        (sqs_models.SQSBackend, "receive_message", receive_now),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in replacements]
    for owner, name, replacement in replacements:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
