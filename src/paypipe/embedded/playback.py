"""Play a scenario file through the embedded pipeline: ``paypipe run --scenario FILE --report FILE``.

A scenario is JSON lines in time order. A line ``{"at": T, "publish": {"Source", "DetailType",
"Detail"}}`` puts that entry on the bus at pipeline time T, exactly as given (the runner is not
the client's IAM role: what the bus takes is what the pipeline must defend against); the last
line ``{"at": T, "end": true}`` runs the clock to T. An optional first line ``{"parameters":
{...}}`` overrides template parameters. The pipeline clock is the scenario's clock; the
scheduled functions fire at their slots (``rate`` slots counted from the Unix epoch, ``cron``
as EventBridge reads it, both in UTC) as the clock passes them, and queues are drained after
every line and every slot. The run ends with the reconciliation and the card number scan, and
a JSON report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from aws_croniter import AwsCroniter

from paypipe.adapters.ledger_store import LedgerStore
from paypipe.embedded.data_scan import Secrets, pipeline_sources, scan
from paypipe.embedded.evidence import ach_file_entries, dlq_records, ledger, run_context
from paypipe.embedded.reconcile import DlqRecord, Reconciliation, reconcile
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.status_files import write_status_files
from paypipe.embedded.template import TemplateError, load_template, parameter_values
from paypipe.events import models as ev

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\((.+)\)")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ENTRY_KEYS = frozenset({"Source", "DetailType", "Detail", "Resources", "Time"})


class ScenarioError(ValueError):
    """The scenario file cannot be played; the message names the line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass(frozen=True)
class Publish:
    line: int
    at: datetime
    entry: dict[str, Any]  # a PutEvents entry without EventBusName; Detail as JSON text


@dataclass(frozen=True)
class Scenario:
    parameters: dict[str, str]
    publishes: tuple[Publish, ...]
    start: datetime
    end: datetime


def _instant(value: Any, line: int) -> datetime:
    if not isinstance(value, str):
        raise ScenarioError(line, '"at" must be an ISO 8601 UTC time such as "2026-11-02T14:00:00Z"')
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ScenarioError(line, f'"at" is not an ISO 8601 time: {value!r}') from None
    if moment.utcoffset() != timedelta(0):
        raise ScenarioError(line, f'"at" must be in UTC (Z or +00:00): {value!r}')
    return moment.astimezone(UTC)


def _entry(raw: Any, line: int) -> dict[str, Any]:
    if not isinstance(raw, dict) or not {"Source", "DetailType", "Detail"} <= set(raw):
        raise ScenarioError(line, '"publish" needs "Source", "DetailType" and "Detail"')
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ScenarioError(line, f'"publish" has unknown keys {sorted(unknown)}')
    if not isinstance(raw["Source"], str) or not isinstance(raw["DetailType"], str):
        raise ScenarioError(line, '"Source" and "DetailType" must be strings')
    detail = raw["Detail"]
    text = detail if isinstance(detail, str) else json.dumps(detail, separators=(",", ":"))
    return {**raw, "Detail": text}


def _parse_line(number: int, text: str) -> dict[str, Any]:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as error:
        raise ScenarioError(number, f"not JSON: {error.msg}") from None
    if not isinstance(item, dict):
        raise ScenarioError(number, "each line must be a JSON object")
    return item


def parse_scenario(text: str) -> Scenario:
    """The scenario, or ScenarioError naming the first line that is wrong."""
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ScenarioError(0, 'the scenario is empty; its last line must be {"at": ..., "end": true}')
    parameters: dict[str, str] = {}
    publishes: list[Publish] = []
    end: datetime | None = None
    last: datetime | None = None
    for index, (number, raw_line) in enumerate(lines):
        item = _parse_line(number, raw_line)
        if end is not None:
            raise ScenarioError(number, 'nothing may follow the "end" line')
        if index == 0 and set(item) == {"parameters"}:
            parameters = _parameters(item["parameters"], number)
            continue
        if set(item) not in ({"at", "publish"}, {"at", "end"}):
            raise ScenarioError(number, 'a line is {"at", "publish"} or {"at", "end": true}')
        at = _instant(item["at"], number)
        if last is not None and at < last:
            raise ScenarioError(number, f"time goes back from {last.isoformat()} to {at.isoformat()}")
        last = at
        if "end" in item:
            if item["end"] is not True:
                raise ScenarioError(number, '"end" must be true')
            end = at
        else:
            publishes.append(Publish(number, at, _entry(item["publish"], number)))
    if end is None:
        raise ScenarioError(lines[-1][0], 'the last line must be {"at": ..., "end": true}')
    start = publishes[0].at if publishes else end
    return Scenario(parameters, tuple(publishes), start, end)


def _parameters(raw: Any, line: int) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ScenarioError(line, '"parameters" must be an object of template parameter values')
    return {name: str(value) for name, value in raw.items()}


# -- schedules -----------------------------------------------------------------------------------


class Schedule(Protocol):
    def next_after(self, moment: datetime) -> datetime: ...


@dataclass(frozen=True)
class RateSchedule:
    every: timedelta

    def next_after(self, moment: datetime) -> datetime:
        elapsed = (moment - _EPOCH) // self.every
        return _EPOCH + (elapsed + 1) * self.every


@dataclass(frozen=True)
class CronSchedule:
    expression: str

    def next_after(self, moment: datetime) -> datetime:
        (found,) = AwsCroniter(self.expression).get_next(moment, n=1)
        return datetime.fromtimestamp(found.timestamp(), UTC)


def schedule_of(expression: str) -> Schedule:
    """An EventBridge schedule expression (``rate(...)`` or ``cron(...)``); ValueError otherwise."""
    if match := _RATE.fullmatch(expression.strip()):
        count, unit = int(match.group(1)), match.group(2).rstrip("s")
        if count < 1:
            raise ValueError(f"rate must be at least 1: {expression}")
        return RateSchedule(timedelta(seconds=count * _UNITS[unit]))
    if match := _CRON.fullmatch(expression.strip()):
        AwsCroniter(match.group(1))  # validates
        return CronSchedule(match.group(1))
    raise ValueError(f"not an EventBridge schedule expression: {expression!r}")


@dataclass
class Slots:
    """The next firing of every scheduled function, as the clock moves."""

    pending: dict[str, datetime] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)

    @classmethod
    def of(cls, pipeline: EmbeddedPipeline, start: datetime) -> Slots:
        slots = cls()
        for logical_id, function in pipeline.functions.items():
            for expression in function.spec.schedules:
                slots.schedules[logical_id] = schedule_of(expression)
                slots.pending[logical_id] = slots.schedules[logical_id].next_after(start)
        return slots

    def due(self, until: datetime) -> Iterator[tuple[str, datetime]]:
        """Every (function, slot) up to ``until``, in time order."""
        while self.pending:
            logical_id, slot = min(self.pending.items(), key=lambda item: (item[1], item[0]))
            if slot > until:
                return
            self.pending[logical_id] = self.schedules[logical_id].next_after(slot)
            yield logical_id, slot


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Playback:
    scenario: Scenario
    out_dir: Path | None = None  # where the ACH files are copied
    requested: set[str] = field(default_factory=set)
    requests: list[Mapping[str, Any]] = field(default_factory=list)  # PaymentRequested details
    publish_failures: list[dict[str, Any]] = field(default_factory=list)

    def run(self, pipeline: EmbeddedPipeline) -> dict[str, Any]:
        slots = Slots.of(pipeline, self.scenario.start)
        for item in self.scenario.publishes:
            self._fire(pipeline, slots, item.at)
            self._publish(pipeline, item)
            pipeline.drain()
        self._fire(pipeline, slots, self.scenario.end)
        pipeline.advance_to(self.scenario.end)
        pipeline.drain()
        return self._report(pipeline)

    def _fire(self, pipeline: EmbeddedPipeline, slots: Slots, until: datetime) -> None:
        for logical_id, slot in slots.due(until):
            published = pipeline.published_by_functions
            pipeline.run_schedule(logical_id, slot)
            if pipeline.published_by_functions != published:
                pipeline.drain()

    def _publish(self, pipeline: EmbeddedPipeline, item: Publish) -> None:
        pipeline.advance_to(item.at)
        detail = _json_or_none(item.entry["Detail"])
        if isinstance(detail, dict):
            self._note(item.entry["DetailType"], detail, pipeline)
        entry = {**item.entry, "EventBusName": pipeline.stack.outputs["EventBusName"]}
        response = pipeline.client("events").put_events(Entries=[entry])
        for result in response.get("Entries", []):
            if result.get("ErrorCode"):
                self.publish_failures.append({"line": item.line, "error": result["ErrorCode"]})

    def _note(self, detail_type: str, detail: Mapping[str, Any], pipeline: EmbeddedPipeline) -> None:
        if isinstance(detail.get("event_id"), str):
            pipeline.external_event_ids.add(detail["event_id"])
        if detail_type == "PaymentRequested" and isinstance(detail.get("payment_id"), str):
            self.requested.add(detail["payment_id"])
            self.requests.append(detail)

    def _report(self, pipeline: EmbeddedPipeline) -> dict[str, Any]:
        leaks = scan(pipeline_sources(pipeline, _log_text()), Secrets.of(self.requests))
        entries, _ = ach_file_entries(pipeline, self.out_dir)
        dlq = dlq_records(pipeline)
        store = ledger(pipeline)
        observed = pipeline.observations()
        context = run_context(pipeline)
        recon = reconcile(
            self.requested,
            observed,
            dlq,
            [entry.as_ach_entry() for entry in entries],
            store.verify_balanced(),
            context=context,
        )
        for leak in leaks:
            recon.flag("SENSITIVE_DATA_STORED", None, str(leak))
        payouts = {
            (e.data.file_key, e.data.trace_number): e.payment_id
            for e in (item.event for item in observed)
            if isinstance(e, ev.PayoutBatched)
        }
        return {
            **report(recon, observed_by_payment(pipeline), dlq, store, self.publish_failures),
            "ach_entries": [
                entry.as_report(payouts.get((entry.file_key, entry.trace_number))) for entry in entries
            ],
            "payouts_set_aside": [
                {"payment_id": row.payment_id, "reason": row.reason}
                for row in context.payouts
                if row.status == "set_aside"
            ],
        }


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _log_text() -> str:
    import os

    log_file = os.environ.get("LOG_FILE")
    return Path(log_file).read_text() if log_file and Path(log_file).exists() else ""


def observed_by_payment(pipeline: EmbeddedPipeline) -> dict[str, dict[str, list[str]]]:
    """Per payment: its events' detail-types in order, and the reason codes it was refused with."""
    payments: dict[str, dict[str, list[str]]] = {}
    for event in pipeline.observed():
        payment = payments.setdefault(event.payment_id, {"events": [], "refused": [], "rejected": []})
        payment["events"].append(event.event_type)
        if isinstance(event, ev.RequestRefused):
            payment["refused"].append(event.data.code.value)
        elif isinstance(event, ev.PaymentRejected):
            payment["rejected"].extend(reason.code for reason in event.data.reasons)
    return payments


def report(
    recon: Reconciliation,
    events: Mapping[str, Mapping[str, Sequence[str]]],
    dlq: Sequence[DlqRecord],
    store: LedgerStore,
    publish_failures: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    return {
        "ok": recon.ok,
        "violations": [
            {"code": v.code, "payment_id": v.payment_id, "message": v.message} for v in recon.violations
        ],
        "payments": {
            payment_id: {"state": state, **{k: list(v) for k, v in events.get(payment_id, {}).items()}}
            for payment_id, state in sorted(recon.payment_states.items())
        },
        "states": dict(sorted(recon.states.items())),
        "duplicate_requests": recon.duplicate_requests,
        "refused_requests": dict(sorted(recon.refused_requests.items())),
        "dlq": [{"queue": r.queue, "reason": r.reason, "payment_id": r.payment_id} for r in dlq],
        "ledger": ledger_report(store),
        "publish_failures": list(publish_failures),
    }


def ledger_report(store: LedgerStore) -> dict[str, Any]:
    by_currency: dict[str, dict[str, int]] = {}
    for account, cents in sorted(store.balances().items()):
        name = f"{account.kind}:{account.owner}" if account.owner else str(account.kind)
        by_currency.setdefault(account.currency, {})[name] = cents
    return {
        currency: {"balanced": sum(balances.values()) == 0, "balances": balances}
        for currency, balances in by_currency.items()
    }


def play_file(path: Path, out_dir: Path | None = None) -> dict[str, Any]:
    """Parse and play a scenario file (ACH files copied to ``out_dir``); ScenarioError for a file
    that cannot be played."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(0, f"cannot read {path}: {error}") from None
    scenario = parse_scenario(text)
    try:
        parameter_values(load_template(), scenario.parameters)
    except TemplateError as error:
        raise ScenarioError(1, str(error)) from None
    with EmbeddedPipeline(overrides=scenario.parameters, start=scenario.start) as pipeline:
        report = Playback(scenario, out_dir).run(pipeline)
        if out_dir is not None:
            write_status_files(pipeline, out_dir)
        return report
