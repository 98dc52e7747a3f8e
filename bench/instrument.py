"""Instruments the embedded pipeline: AWS calls per service and operation, and handler CPU.

Two class-level patches, installed for the duration of a ``Meter`` context:

* ``BaseClient._make_api_call`` (the funnel of every boto3 client call) counts each call made
  inside a function invocation, with the DynamoDB capacity units it consumes, and times it;
* moto's ``BotocoreStubber.__call__`` (where moto answers a request in-process) is timed, so
  moto's own work can be subtracted from an invocation: what is left is the handler's CPU
  including botocore's request serialisation and response parsing, as in Lambda, minus the
  network.

``EmbeddedFunction.invoke`` is wrapped to attribute both to the function being invoked.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.client import BaseClient
from moto.core.botocore_stubber import BotocoreStubber

from paypipe.embedded.runtime import EmbeddedFunction
from paypipe.embedded.template import REGION

# Tables with a global secondary index (gsi1, keyed on gsi1pk, projection ALL).
GSI_KEY = "gsi1pk"
GSI_ITEM_OVERHEAD = 100  # bytes DynamoDB adds per item projected into an index


@dataclass
class Invocation:
    function: str
    records: int
    cpu_ns: int
    wall_ns: int
    moto_cpu_ns: int
    moto_wall_ns: int
    api_cpu_ns: int  # inside boto3 calls, moto included
    calls: int
    event: Mapping[str, Any]

    @property
    def handler_cpu_ns(self) -> int:
        return self.cpu_ns - self.moto_cpu_ns

    @property
    def handler_wall_ns(self) -> int:
        return self.wall_ns - self.moto_wall_ns

    @property
    def botocore_cpu_ns(self) -> int:
        return self.api_cpu_ns - self.moto_cpu_ns


@dataclass
class Meter:
    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (function, service, op)
    dynamodb_wru: float = 0.0
    dynamodb_rru: float = 0.0
    eventbridge_entries: Counter[str] = field(default_factory=Counter)  # by detail-type
    invocations: list[Invocation] = field(default_factory=list)
    moto_cpu_ns: int = 0
    moto_wall_ns: int = 0
    api_cpu_ns: int = 0
    active: str | None = None
    on_put_events: Callable[[list[dict[str, Any]]], None] | None = None
    _probe: Any = None
    _excluded_cpu_ns: int = 0
    _excluded_wall_ns: int = 0
    wru_by_table: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    rru_by_table: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    _probing: bool = False
    _key_names: dict[str, list[str]] = field(default_factory=dict)

    def calls_by(self, function: str | None = None) -> Counter[tuple[str, str]]:
        totals: Counter[tuple[str, str]] = Counter()
        for (fn, service, operation), count in self.calls.items():
            if function in (None, fn):
                totals[(service, operation)] += count
        return totals

    # -- DynamoDB capacity ------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._probe is None:
            self._probe = boto3.session.Session(region_name=REGION).client("dynamodb")
        return self._probe

    def _item_size(self, table: str, key: Mapping[str, Any]) -> int:
        """Size of an item as stored now, read outside the accounting (0 if absent)."""
        item = self._client().get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return item_size(item) if item else 0

    def _write_units(self, table: str, key: Mapping[str, Any], before: int, factor: float) -> None:
        after_item = self._client().get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        after = item_size(after_item) if after_item else 0
        units = max(1, math.ceil(max(before, after) / 1024)) * factor
        if after_item and GSI_KEY in after_item:
            units += max(1, math.ceil((after + GSI_ITEM_OVERHEAD) / 1024))
        self.dynamodb_wru += units
        self.wru_by_table[table] += units

    def _account_dynamodb(self, operation: str, params: Mapping[str, Any], call: Callable[[], Any]) -> Any:
        """Run ``call`` and add the capacity units it consumes (on-demand rules, sizes measured)."""
        writes: list[tuple[str, dict[str, Any], float]] = []  # (table, key, factor)
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            writes.append((params["TableName"], self._key_of(params), 1.0))
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, spec),) = entry.items()
                if kind == "ConditionCheck":
                    units = 2 * max(1, math.ceil(self._sized(spec) / 4096))
                    self.dynamodb_rru += units
                    self.rru_by_table[spec["TableName"]] += units
                    continue
                writes.append((spec["TableName"], self._key_of(spec), 2.0))
        before = self._excluded(lambda: [self._item_size(t, k) for t, k, _ in writes])
        response = call()

        def account_writes() -> None:
            for (table, key, factor), size in zip(writes, before, strict=True):
                self._write_units(table, key, size, factor)

        self._excluded(account_writes)
        if operation == "GetItem":
            self._read_units(params["TableName"], [response.get("Item")], params.get("ConsistentRead", False))
        elif operation in ("Query", "Scan"):
            self._read_units(
                params["TableName"], response.get("Items", []), params.get("ConsistentRead", False)
            )
        elif operation == "BatchGetItem":
            for table, items in response.get("Responses", {}).items():
                consistent = params["RequestItems"][table].get("ConsistentRead", False)
                for item in items:
                    self._read_units(table, [item], consistent)
        return response

    def _sized(self, spec: Mapping[str, Any]) -> int:
        return int(self._excluded(lambda: self._item_size(spec["TableName"], spec["Key"])))

    def _read_units(self, table: str, items: list[Any], consistent: bool) -> None:
        size = sum(item_size(item) for item in items if item)
        units = max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)
        self.dynamodb_rru += units
        self.rru_by_table[table] += units

    def _key_of(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if "Key" in params:
            return dict(params["Key"])
        table = params["TableName"]
        if table not in self._key_names:
            self._key_names[table] = self._excluded(
                lambda: [
                    key["AttributeName"]
                    for key in self._client().describe_table(TableName=table)["Table"]["KeySchema"]
                ]
            )
        return {name: params["Item"][name] for name in self._key_names[table]}

    def _excluded(self, work: Callable[[], Any]) -> Any:
        """Run measurement-only work and keep its time out of the invocation's figures."""
        cpu, wall = time.process_time_ns(), time.perf_counter_ns()
        self._probing = True
        try:
            return work()
        finally:
            self._probing = False
            self._excluded_cpu_ns += time.process_time_ns() - cpu
            self._excluded_wall_ns += time.perf_counter_ns() - wall

    # -- patches -------------------------------------------------------------------------------

    @contextmanager
    def installed(self) -> Iterator[Meter]:
        targets: tuple[tuple[type, str], ...] = (
            (BaseClient, "_make_api_call"),
            (BotocoreStubber, "__call__"),
            (EmbeddedFunction, "invoke"),
        )
        original_call, original_stub, original_invoke = (cls.__dict__[name] for cls, name in targets)
        patches = (
            self._counting_api_call(original_call),
            self._timing_stub(original_stub),
            self._attributing_invoke(original_invoke),
        )
        for (cls, name), patch in zip(targets, patches, strict=True):
            setattr(cls, name, patch)
        try:
            yield self
        finally:
            for (cls, name), original in zip(
                targets, (original_call, original_stub, original_invoke), strict=True
            ):
                setattr(cls, name, original)
            self._probe = None

    def _counting_api_call(self, original_call: Any) -> Callable[..., Any]:
        """``BaseClient._make_api_call`` counting and timing the calls made inside an invocation."""
        meter = self

        def make_api_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            service = client.meta.service_model.service_name
            if service == "events" and operation == "PutEvents" and meter.on_put_events:
                meter.on_put_events(params["Entries"])
            if meter.active is None or meter._probing:
                return original_call(client, operation, params)
            meter.calls[(meter.active, service, operation)] += 1
            if service == "events" and operation == "PutEvents":
                meter.eventbridge_entries.update(entry["DetailType"] for entry in params["Entries"])
            start = time.process_time_ns()
            excluded = meter._excluded_cpu_ns
            try:
                if service == "dynamodb":
                    return meter._account_dynamodb(
                        operation, params, lambda: original_call(client, operation, params)
                    )
                return original_call(client, operation, params)
            finally:
                meter.api_cpu_ns += time.process_time_ns() - start - (meter._excluded_cpu_ns - excluded)

        return make_api_call

    def _timing_stub(self, original_stub: Any) -> Callable[..., Any]:
        """``BotocoreStubber.__call__`` timing moto's in-process answers."""
        meter = self

        def stub(stubber: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
            if meter._probing:
                return original_stub(stubber, event_name, request, **kwargs)
            cpu, wall = time.process_time_ns(), time.perf_counter_ns()
            try:
                return original_stub(stubber, event_name, request, **kwargs)
            finally:
                meter.moto_cpu_ns += time.process_time_ns() - cpu
                meter.moto_wall_ns += time.perf_counter_ns() - wall

        return stub

    def _attributing_invoke(self, original_invoke: Any) -> Callable[..., Any]:
        """``EmbeddedFunction.invoke`` recording an ``Invocation`` with what the other patches measured."""
        meter = self

        def invoke(function: EmbeddedFunction, event: Mapping[str, Any]) -> Any:
            meter.active = function.spec.logical_id
            marks = (meter.moto_cpu_ns, meter.moto_wall_ns, meter.api_cpu_ns, meter._excluded_cpu_ns,
                     meter._excluded_wall_ns, sum(meter.calls.values()))  # fmt: skip
            cpu, wall = time.process_time_ns(), time.perf_counter_ns()
            try:
                return original_invoke(function, event)
            finally:
                cpu_ns = time.process_time_ns() - cpu - (meter._excluded_cpu_ns - marks[3])
                wall_ns = time.perf_counter_ns() - wall - (meter._excluded_wall_ns - marks[4])
                meter.active = None
                meter.invocations.append(
                    Invocation(
                        function=function.spec.logical_id,
                        records=len(event.get("Records", [])),
                        cpu_ns=cpu_ns,
                        wall_ns=wall_ns,
                        moto_cpu_ns=meter.moto_cpu_ns - marks[0],
                        moto_wall_ns=meter.moto_wall_ns - marks[1],
                        api_cpu_ns=meter.api_cpu_ns - marks[2],
                        calls=sum(meter.calls.values()) - marks[5],
                        event=event,
                    )
                )

        return invoke


def item_size(item: Mapping[str, Any]) -> int:
    """DynamoDB item size in bytes: attribute names plus values, as capacity is charged."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        digits = str(data).lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(_value_size({"N": n}) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in data)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + _value_size(element) for name, element in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def payment_id_of(entry: Mapping[str, Any]) -> str:
    return str(json.loads(entry["Detail"])["payment_id"])
