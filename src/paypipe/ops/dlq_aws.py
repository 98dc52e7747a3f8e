"""The imperative shell of ``paypipe dlq``: find a stack's DLQs, peek at them, replay them.

Safety rules every path follows:
- input is validated (queue, filters, bus) before the first message is received;
- a message is deleted from its DLQ only after it was sent (SQS) or accepted (PutEvents), so a
  crash in between duplicates it and never loses it (consumers are idempotent on the business key);
- messages looked at but not moved are made visible again before returning.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from paypipe.ops import DEFAULT_MAX_REPLAYS
from paypipe.ops.dlq import (
    Dlq,
    DlqError,
    DlqMessage,
    DlqStackError,
    Filters,
    StackDlqs,
    audit_record,
    decide,
    dlq_from_tags,
    dlqs_from_outputs,
    parse_message,
    put_events_entry,
    requeue_attributes,
)

RECEIVE_ALL = {"AttributeNames": ["All"], "MessageAttributeNames": ["All"]}
UNSUPPORTED_CODES = {"UnsupportedOperation", "InvalidAction", "AWS.SimpleQueueService.UnsupportedOperation"}


def discover(
    stack: str, *, sqs: Any, cloudformation: Any, events: Any = None, source: str = "auto"
) -> StackDlqs:
    """The stack's DLQs from its CloudFormation outputs, or from the ``paypipe:stack`` queue tag
    (``auto``: outputs when CloudFormation knows the stack, tags otherwise). With tags, the bus
    is the one whose rules dead-letter into the stack's rule-target DLQs (needs ``events``)."""
    if source in {"auto", "outputs"}:
        try:
            described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        except ClientError as error:
            if source == "outputs" or "does not exist" not in str(error):
                raise DlqStackError(f"cannot read stack {stack} from CloudFormation: {error}") from None
        else:
            found = dlqs_from_outputs(stack, described.get("Outputs", []))
            if found.dlqs:
                return found
            if source == "outputs":
                raise DlqStackError(f"stack {stack} has no <Name>DLQUrl outputs; try --discover tags")
    dlqs = []
    for url in _queue_urls(sqs):
        tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        if tags.get("paypipe:stack") != stack:
            continue
        sources = sqs.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls", [])
        dlq = dlq_from_tags(url, tags, sources[0] if len(sources) == 1 else None)
        if dlq is not None:
            dlqs.append(dlq)
    if not dlqs:
        raise DlqStackError(
            f"no DLQs found for stack {stack} (no outputs, no queue tagged paypipe:stack={stack}); "
            "check --stack, --region and the account"
        )
    rule_dlqs = {queue_arn(sqs, dlq.url) for dlq in dlqs if dlq.kind == "rule-target"}
    bus = _bus_dead_lettering_into(events, rule_dlqs) if events is not None and rule_dlqs else None
    return StackDlqs(stack, tuple(sorted(dlqs, key=lambda d: d.name)), bus, "tags")


def _bus_dead_lettering_into(events: Any, dlq_arns: set[str]) -> str | None:
    # The default bus carries S3's notifications (the returns rule), never pipeline events.
    buses = [
        bus["Name"] for bus in events.list_event_buses().get("EventBuses", []) if bus["Name"] != "default"
    ]
    for bus in buses:
        request: dict[str, Any] = {"EventBusName": bus}
        while True:
            page = events.list_rules(**request)
            for rule in page.get("Rules", []):
                targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus).get("Targets", [])
                if any(t.get("DeadLetterConfig", {}).get("Arn") in dlq_arns for t in targets):
                    return str(bus)
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
    return None


def _queue_urls(sqs: Any) -> Iterator[str]:
    request: dict[str, Any] = {"MaxResults": 1000}
    while True:
        page = sqs.list_queues(**request)
        yield from page.get("QueueUrls", [])
        if not page.get("NextToken"):
            return
        request["NextToken"] = page["NextToken"]


def queue_arn(sqs: Any, url: str) -> str:
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return arn


# -- looking ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Depth:
    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


def depth(sqs: Any, url: str) -> Depth:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=[*names, "ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return Depth(
        int(attributes.get(names[0], 0)),
        int(attributes.get(names[1], 0)),
        int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


def release(sqs: Any, url: str, receipt_handles: Sequence[str]) -> None:
    """Make received messages visible again at once."""
    handles = list(dict.fromkeys(receipt_handles))
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(handles[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def peek(
    sqs: Any, url: str, *, limit: int = 100, visibility_seconds: int = 30, wait_seconds: int = 1
) -> list[DlqMessage]:
    """Up to ``limit`` messages, received with a short visibility timeout and released again."""
    seen: dict[str, DlqMessage] = {}
    handles: list[str] = []
    try:
        while len(seen) < limit:
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, limit - len(seen)),
                VisibilityTimeout=visibility_seconds,
                WaitTimeSeconds=wait_seconds,
                **RECEIVE_ALL,
            ).get("Messages", [])
            handles += [message["ReceiptHandle"] for message in messages]
            fresh = [message for message in messages if message["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen[message["MessageId"]] = parse_message(message)
    finally:
        release(sqs, url, handles)
    return list(seen.values())


# -- audit --------------------------------------------------------------------------------------


class AuditSink(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class JsonlAudit:
    """Appends one JSON line per record, flushed and synced before the message is deleted."""

    def __init__(self, path: Path) -> None:
        # Opened at once, so an unwritable path fails before anything moves; removed again on
        # close when no record was written to a file this run created.
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._created = not path.exists()
        self._written = False
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._written = True

    def close(self) -> None:
        self._file.close()
        if self._created and not self._written:
            self.path.unlink(missing_ok=True)


class S3Audit:
    """One JSON lines object per run under ``prefix``, written when the run ends."""

    def __init__(self, s3: Any, bucket: str, prefix: str, started: datetime) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.key = f"{prefix.strip('/')}/{started.strftime('%Y%m%dT%H%M%S%fZ')}.jsonl".lstrip("/")
        self._lines: list[str] = []

    def write(self, record: dict[str, Any]) -> None:
        self._lines.append(json.dumps(record, sort_keys=True))

    def close(self) -> None:
        if self._lines:
            body = ("\n".join(self._lines) + "\n").encode()
            self._s3.put_object(Bucket=self.bucket, Key=self.key, Body=body)


# -- replaying ----------------------------------------------------------------------------------


class RateLimiter:
    """At most ``per_second`` calls of :meth:`wait` per second (None: unlimited)."""

    def __init__(
        self,
        per_second: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second is not None and per_second <= 0:
            raise DlqError("--rate must be positive")
        self._interval = 1 / per_second if per_second else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    def wait(self) -> None:
        if not self._interval:
            return
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


@dataclass(frozen=True)
class ReplayOptions:
    filters: Filters = field(default_factory=Filters)
    max_messages: int | None = None
    rate: float | None = None
    max_replays: int = DEFAULT_MAX_REPLAYS
    dry_run: bool = False
    event_bus: str | None = None
    server_side: bool = False
    visibility_seconds: int = 60
    wait_seconds: int = 1


def check_options(options: ReplayOptions) -> None:
    """Raises DlqError for options no replay can run with (checked before any AWS call)."""
    if options.max_messages is not None and options.max_messages < 1:
        raise DlqError("--max must be at least 1")
    if options.max_replays < 1:
        raise DlqError("--max-replays must be at least 1")
    combined = options.filters.active or options.max_messages or options.rate or options.dry_run
    if options.server_side and combined:
        raise DlqError("--server-side cannot be combined with filters, --max, --rate or --dry-run")


@dataclass
class ReplayReport:
    dlq: Dlq
    destination: str
    mode: str
    replayed: list[dict[str, Any]] = field(default_factory=list)  # audit records (or the plan)
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # per-message details of skips and errors
    errors: list[str] = field(default_factory=list)  # failures that need an operator
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Run:
    dlq: Dlq
    options: ReplayOptions
    report: ReplayReport
    expected_arn: str | None
    limiter: RateLimiter
    progress: Callable[[dict[str, Any]], None] | None


class Replayer:
    def __init__(
        self,
        *,
        sqs: Any,
        events: Any,
        audit: Sequence[AuditSink] = (),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        limiter_factory: Callable[[float | None], RateLimiter] = RateLimiter,
    ) -> None:
        self._sqs = sqs
        self._events = events
        self._audit = list(audit)
        self._now = now
        self._limiter_factory = limiter_factory

    def replay(
        self,
        stack: StackDlqs,
        dlq: Dlq,
        options: ReplayOptions,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> ReplayReport:
        """Move ``dlq``'s messages back: a consumer DLQ to its source queue, a rule-target DLQ to
        the bus. Raises DlqError (having moved nothing) on invalid input."""
        check_options(options)
        limiter = self._limiter_factory(options.rate)
        if dlq.kind == "consumer":
            if not dlq.source_queue_url:
                raise DlqError(f"{dlq.name}: no source queue redrives into it; cannot tell where to replay")
            destination = dlq.source_queue_url
            expected_arn: str | None = queue_arn(self._sqs, destination)
        elif dlq.kind == "rule-target":
            bus = options.event_bus or stack.event_bus
            if not bus:
                raise DlqError(f"{dlq.name}: pass --event-bus (the stack outputs give none)")
            destination, expected_arn = bus, None
        else:
            raise DlqError(
                f"{dlq.name} holds failed scheduled invocations; re-invoke the function instead of replaying"
            )
        report = ReplayReport(dlq, destination, "dry-run" if options.dry_run else "per-message")
        if options.server_side:
            if self._move_task(dlq, report):
                return report
            report.mode = "per-message"
        self._per_message(_Run(dlq, options, report, expected_arn, limiter, progress))
        return report

    def _move_task(self, dlq: Dlq, report: ReplayReport) -> bool:
        """SQS StartMessageMoveTask for a whole consumer DLQ. False when the endpoint lacks it."""
        if dlq.kind != "consumer":
            raise DlqError("--server-side moves only consumer DLQs (rule-target DLQs go to the bus)")
        source_arn = queue_arn(self._sqs, dlq.url)
        try:
            task = self._sqs.start_message_move_task(
                SourceArn=source_arn, DestinationArn=queue_arn(self._sqs, report.destination)
            )
        except NotImplementedError:
            supported = False
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in UNSUPPORTED_CODES:
                raise DlqStackError(f"StartMessageMoveTask failed: {error}") from None
            supported = False
        else:
            supported = True
        if not supported:
            report.notes.append("the endpoint has no StartMessageMoveTask; moving message by message")
            return False
        report.mode = "move-task"
        record = {
            "at": self._now().isoformat(),
            "action": "move-task-started",
            "mode": "move-task",
            "task_handle": task.get("TaskHandle"),
            "queue": dlq.queue_name,
            "queue_kind": dlq.kind,
            "step": dlq.step,
            "destination": report.destination,
            "approximate_messages": depth(self._sqs, dlq.url).total,
        }
        for sink in self._audit:
            sink.write(record)
        report.replayed.append(record)
        report.notes.append(
            "server-side move task started: the replay counter is not incremented and the audit "
            "holds one record for the task"
        )
        return True

    def _per_message(self, run: _Run) -> None:
        dlq, options = run.dlq, run.options
        seen: set[str] = set()
        held: dict[str, str] = {}  # message id -> latest receipt handle, released at the end
        moved = 0
        try:
            while options.max_messages is None or moved < options.max_messages:
                messages = self._sqs.receive_message(
                    QueueUrl=dlq.url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=options.visibility_seconds,
                    WaitTimeSeconds=options.wait_seconds,
                    **RECEIVE_ALL,
                ).get("Messages", [])
                fresh = []
                for raw in messages:
                    if raw["MessageId"] in seen:
                        held[raw["MessageId"]] = raw["ReceiptHandle"]
                    else:
                        fresh.append(raw)
                if not fresh:
                    return
                for raw in fresh:
                    seen.add(raw["MessageId"])
                    message = parse_message(raw)
                    if options.max_messages is not None and moved >= options.max_messages:
                        held[message.message_id] = message.receipt_handle
                        continue
                    replayed = self._one(run, message)
                    moved += replayed
                    if not replayed or options.dry_run:
                        held[message.message_id] = message.receipt_handle
        finally:
            release(self._sqs, dlq.url, list(held.values()))

    def _one(self, run: _Run, message: DlqMessage) -> bool:
        """Replay one message; True when it was moved (in a dry run: would be)."""
        report = run.report
        decision = decide(message, run.options.filters, run.options.max_replays, run.expected_arn)
        if not decision.replay:
            report.skipped[decision.skip_reason] += 1
            if decision.detail:
                report.problems.append(f"{message.message_id}: {decision.skip_reason}: {decision.detail}")
            return False
        at = self._now()
        record = audit_record(message, run.dlq, report.destination, at, mode=report.mode)
        if run.options.dry_run:
            report.replayed.append(record)
            if run.progress:
                run.progress(record)
            return True
        run.limiter.wait()
        try:
            self._send(run.dlq, message, report.destination, at)
        except (ClientError, BotoCoreError, DlqError) as error:
            report.errors.append(f"{message.message_id}: not replayed, left in the DLQ: {error}")
            return False
        for sink in self._audit:
            sink.write(record)
        report.replayed.append(record)
        try:
            self._sqs.delete_message(QueueUrl=run.dlq.url, ReceiptHandle=message.receipt_handle)
        except (ClientError, BotoCoreError) as error:
            report.errors.append(
                f"{message.message_id}: replayed but not deleted from the DLQ ({error}); a later "
                "replay sends it again, which the idempotent consumers absorb"
            )
        if run.progress:
            run.progress(record)
        return True

    def _send(self, dlq: Dlq, message: DlqMessage, destination: str, at: datetime) -> None:
        if dlq.kind == "consumer":
            self._sqs.send_message(
                QueueUrl=destination,
                MessageBody=message.body,
                MessageAttributes=requeue_attributes(message, at),
            )
            return
        result = self._events.put_events(Entries=[put_events_entry(message, destination)])
        if result.get("FailedEntryCount", 0):
            entry = result["Entries"][0]
            raise DlqError(f"PutEvents refused it: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}")
