"""Dead-letter queues of a stack: the pure core of ``paypipe dlq``.

What a DLQ is (kind, step, where its messages came from), what a parked message says (event,
reason, replay count), whether a message may be replayed and in what form. No AWS calls here;
:mod:`paypipe.ops.dlq_aws` does the I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from paypipe.errors import CommandError, EnvironmentProblem
from paypipe.events.models import EVENT_TYPES, UnknownEventError, parse_detail
from paypipe.redaction import redact, redact_pan
from paypipe.runtime.clock import RECEIVED_AT_ATTRIBUTE
from paypipe.runtime.consumer import summarize_validation_error

KINDS = ("consumer", "rule-target", "scheduled")
REPLAY_COUNT = "replay_count"
# Rule-target DLQs are re-published with PutEvents, which carries no message attributes: the
# replay count travels as an entry of the event's ``resources`` instead.
REPLAY_MARKER = "paypipe:replay-count:"

# Skip reasons, as reported and counted.
FILTERED = "filtered"
CAPPED = "replay cap reached"
MALFORMED = "malformed body"
MISMATCH = "source queue mismatch"
S3_SOURCE, OBJECT_CREATED = "aws.s3", "Object Created"
S3_REPLAY_ADVICE = (
    "an S3 notification cannot be re-published (only S3 sends aws.s3 events): copy the object onto "
    "itself to notify again, e.g. aws s3 cp s3://BUCKET/KEY s3://BUCKET/KEY --metadata-directive REPLACE"
)


class DlqError(CommandError):
    """Invalid operator input or stack state; raised before anything is moved."""


class DlqStackError(DlqError, EnvironmentProblem):
    """The stack is not there, or not as the tool needs it."""


@dataclass(frozen=True)
class Dlq:
    name: str
    url: str
    kind: str
    step: str
    source_queue_url: str | None = None  # consumer DLQs: the queue that redrives into it

    @property
    def queue_name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def address(self) -> str:
        return f"{self.kind}:{self.step}"


@dataclass(frozen=True)
class StackDlqs:
    stack: str
    dlqs: tuple[Dlq, ...]
    event_bus: str | None
    source: str  # "outputs" or "tags"


def dlq_name(kind: str, step: str) -> str:
    """The template's logical name: ``consumer:escrow_hold`` -> ``EscrowHoldDLQ``."""
    camel = "".join(part.capitalize() for part in step.split("_"))
    return {"consumer": f"{camel}DLQ", "rule-target": f"{camel}RuleDLQ"}.get(kind, "ScheduledDLQ")


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def _kind_and_step(output_key: str, description: str) -> tuple[str, str]:
    parts = description.split(":")
    if len(parts) == 3 and parts[0] == "dlq" and parts[1] in KINDS:
        return parts[1], parts[2]
    base = output_key.removesuffix("DLQUrl")
    if base == "Scheduled":
        return "scheduled", "scheduled"
    if base.endswith("Rule"):
        return "rule-target", _snake(base.removesuffix("Rule"))
    return "consumer", _snake(base)


def dlqs_from_outputs(stack: str, outputs: Iterable[Mapping[str, str]]) -> StackDlqs:
    """DLQs from CloudFormation outputs: ``<Name>DLQUrl`` (Description ``dlq:<kind>:<step>``);
    a consumer DLQ's source is the ``<Name>QueueUrl`` output next to it."""
    by_key = {output["OutputKey"]: output for output in outputs}
    dlqs = []
    for key, output in sorted(by_key.items()):
        if not key.endswith("DLQUrl"):
            continue
        kind, step = _kind_and_step(key, output.get("Description", ""))
        source = by_key.get(key.removesuffix("DLQUrl") + "QueueUrl") if kind == "consumer" else None
        dlqs.append(
            Dlq(
                name=key.removesuffix("Url"),
                url=output["OutputValue"],
                kind=kind,
                step=step,
                source_queue_url=source["OutputValue"] if source else None,
            )
        )
    bus = by_key.get("EventBusName")
    return StackDlqs(stack, tuple(dlqs), bus["OutputValue"] if bus else None, "outputs")


def dlq_from_tags(url: str, tags: Mapping[str, str], source_queue_url: str | None) -> Dlq | None:
    kind = tags.get("paypipe:dlq-kind", "")
    if kind not in KINDS:
        return None
    step = tags.get("paypipe:step", kind)
    return Dlq(dlq_name(kind, step), url, kind, step, source_queue_url if kind == "consumer" else None)


def resolve_queue(stack: StackDlqs, ident: str) -> Dlq:
    """The DLQ an operator named: logical name (``FraudDLQ``), output key, queue name, URL or
    ``<kind>:<step>`` (``consumer:fraud``)."""
    wanted = ident.strip().lower()
    for dlq in stack.dlqs:
        names = {dlq.name, dlq.name + "Url", dlq.url, dlq.queue_name, dlq.address}
        if wanted in {name.lower() for name in names}:
            return dlq
    known = ", ".join(f"{dlq.name} ({dlq.address})" for dlq in stack.dlqs)
    raise DlqError(f"unknown queue {ident!r} in stack {stack.stack}; known DLQs: {known}")


# -- messages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    receipt_handle: str
    body: str
    sent_at: datetime
    attributes: Mapping[str, str]  # message attributes, string values
    event: Mapping[str, Any] | None  # the EventBridge envelope, when the body is one
    problem: str | None  # why the body can never be replayed

    @property
    def detail(self) -> Mapping[str, Any]:
        detail = (self.event or {}).get("detail")
        return detail if isinstance(detail, Mapping) else {}

    @property
    def detail_type(self) -> str:
        return str((self.event or {}).get("detail-type") or "-")

    @property
    def payment_id(self) -> str | None:
        value = self.detail.get("payment_id")
        return str(value) if value is not None else None

    @property
    def event_id(self) -> str | None:
        value = self.detail.get("event_id")
        return str(value) if value is not None else None

    @property
    def reason(self) -> str:
        """The consumer's ``error_reason``, EventBridge's ``ERROR_CODE``, or SQS redrive."""
        return self.attributes.get("error_reason") or self.attributes.get("ERROR_CODE") or "Redriven"

    @property
    def error_message(self) -> str:
        return self.attributes.get("error_message") or self.attributes.get("ERROR_MESSAGE") or ""

    @property
    def parked_at(self) -> datetime:
        return _parse_instant(self.attributes.get("parked_at", "")) or self.sent_at

    @property
    def replay_count(self) -> int:
        """Replays so far: the message attribute, or the marker in the event's resources."""
        counts = [_int(self.attributes.get(REPLAY_COUNT))]
        resources = (self.event or {}).get("resources")
        if isinstance(resources, list):
            counts += [_int(r.removeprefix(REPLAY_MARKER)) for r in resources if _is_marker(r)]
        return max(counts)


def _is_marker(resource: object) -> bool:
    return isinstance(resource, str) and resource.startswith(REPLAY_MARKER)


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or "0"))
    except ValueError:
        return 0


def _parse_instant(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_message(raw: Mapping[str, Any]) -> DlqMessage:
    """An SQS ``ReceiveMessage`` entry; the body is checked against the event contracts."""
    body = str(raw.get("Body", ""))
    sent_ms = int((raw.get("Attributes") or {}).get("SentTimestamp", "0"))
    attributes = {
        name: str(value.get("StringValue", ""))
        for name, value in (raw.get("MessageAttributes") or {}).items()
        if isinstance(value, Mapping)
    }
    event, problem = _check_body(body)
    return DlqMessage(
        message_id=str(raw["MessageId"]),
        receipt_handle=str(raw.get("ReceiptHandle", "")),
        body=body,
        sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC),
        attributes=attributes,
        event=event,
        problem=problem,
    )


def _check_body(body: str) -> tuple[Mapping[str, Any] | None, str | None]:
    try:
        envelope = json.loads(body)
    except json.JSONDecodeError as error:
        return None, f"body is not JSON ({error.msg})"
    if not isinstance(envelope, dict):
        return None, "body is not an EventBridge event"
    missing = [key for key in ("source", "detail-type", "detail") if key not in envelope]
    if missing:
        return envelope, f"body is not an EventBridge event (no {', '.join(missing)})"
    if (envelope["source"], envelope["detail-type"]) == (S3_SOURCE, OBJECT_CREATED):
        return envelope, None  # S3's notification of a bank file (the returns consumer's input)
    try:
        parse_detail(str(envelope["detail-type"]), envelope["detail"])
    except UnknownEventError as error:
        return envelope, f"unknown event: {error}"
    except ValidationError as error:
        return envelope, f"event violates its contract: {summarize_validation_error(error)}"
    return envelope, None


# -- filters and decisions ----------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: datetime) -> datetime:
    """ISO 8601 (naive means UTC) or a duration ago: ``90s``, ``30m``, ``2h``, ``7d``."""
    match = _RELATIVE.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    parsed = _parse_instant(text.strip())
    if parsed is None:
        raise DlqError(f"bad time {text!r}: use ISO 8601 (2026-11-03T10:00:00Z) or a duration like 2h")
    return parsed


@dataclass(frozen=True)
class Filters:
    detail_types: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    payment_ids: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None

    @property
    def active(self) -> bool:
        return bool(self.detail_types or self.reasons or self.payment_ids or self.since or self.until)

    def matches(self, message: DlqMessage) -> bool:
        at = message.parked_at
        return (
            (not self.detail_types or message.detail_type in self.detail_types)
            and (not self.reasons or message.reason in self.reasons)
            and (not self.payment_ids or message.payment_id in self.payment_ids)
            and (self.since is None or at >= self.since)
            and (self.until is None or at <= self.until)
        )


def build_filters(
    *,
    detail_types: Sequence[str] = (),
    reasons: Sequence[str] = (),
    payment_ids: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    now: datetime,
) -> Filters:
    unknown = sorted(set(detail_types) - set(EVENT_TYPES))
    if unknown:
        raise DlqError(f"unknown detail-type {', '.join(unknown)}; known: {', '.join(sorted(EVENT_TYPES))}")
    if any(not value.strip() for value in [*reasons, *payment_ids]):
        raise DlqError("empty --reason or --payment-id filter")
    start = parse_time(since, now) if since else None
    end = parse_time(until, now) if until else None
    if start and end and start > end:
        raise DlqError(f"--since {start.isoformat()} is after --until {end.isoformat()}")
    return Filters(frozenset(detail_types), frozenset(reasons), frozenset(payment_ids), start, end)


@dataclass(frozen=True)
class Decision:
    replay: bool
    skip_reason: str = ""
    detail: str = ""


def decide(
    message: DlqMessage, filters: Filters, max_replays: int, expected_source_arn: str | None = None
) -> Decision:
    """Whether ``message`` may be replayed: it matches, parses, is under the cap and came from
    the queue it would go back to."""
    if not filters.matches(message):
        return Decision(False, FILTERED)
    if message.problem:
        return Decision(False, MALFORMED, message.problem)
    if message.replay_count >= max_replays:
        return Decision(False, CAPPED, f"replayed {message.replay_count} times (cap {max_replays})")
    if expected_source_arn is None and message.event and message.event.get("source") == S3_SOURCE:
        return Decision(False, MALFORMED, S3_REPLAY_ADVICE)
    source = message.attributes.get("source_queue_arn", "unknown")
    if expected_source_arn and source not in {"unknown", expected_source_arn}:
        return Decision(False, MISMATCH, f"parked from {source}, not {expected_source_arn}")
    return Decision(True)


# -- what is sent -------------------------------------------------------------------------------


def requeue_attributes(message: DlqMessage, at: datetime) -> dict[str, dict[str, str]]:
    """Message attributes for the source queue: the incremented replay count (the consumer
    carries it into the DLQ if the message fails again) and the first receipt time, which the
    consumer decides by (for a message SQS redrove, its own SentTimestamp)."""
    values = {
        REPLAY_COUNT: str(message.replay_count + 1),
        "replayed_at": at.isoformat(),
        RECEIVED_AT_ATTRIBUTE: message.attributes.get(RECEIVED_AT_ATTRIBUTE) or message.sent_at.isoformat(),
    }
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}


def put_events_entry(message: DlqMessage, bus: str) -> dict[str, Any]:
    """The PutEvents entry re-publishing a rule-target DLQ message to ``bus``."""
    if message.event is None:
        raise DlqError(f"message {message.message_id} has no event to re-publish")
    event = message.event
    resources = [r for r in event.get("resources") or [] if isinstance(r, str) and not _is_marker(r)]
    return {
        "Source": str(event["source"]),
        "DetailType": str(event["detail-type"]),
        "Detail": json.dumps(event["detail"], separators=(",", ":")),
        "Resources": [*resources, f"{REPLAY_MARKER}{message.replay_count + 1}"],
        "EventBusName": bus,
    }


def audit_record(
    message: DlqMessage, dlq: Dlq, destination: str, at: datetime, *, mode: str
) -> dict[str, Any]:
    return {
        "at": at.isoformat(),
        "action": "replayed",
        "mode": mode,
        "message_id": message.message_id,
        "queue": dlq.queue_name,
        "queue_kind": dlq.kind,
        "step": dlq.step,
        "destination": destination,
        "payment_id": message.payment_id,
        "event_id": message.event_id,
        "detail_type": message.detail_type,
        "reason": message.reason,
        "replay_count": message.replay_count + 1,
    }


# -- showing ------------------------------------------------------------------------------------

MAX_SHOWN_BODY = 4000


def redacted_view(message: DlqMessage) -> dict[str, Any]:
    """What ``show`` prints for a message; never a card number or secret."""
    body: Any = redact(dict(message.event)) if message.event is not None else None
    if body is None:
        body = redact_pan(message.body[:MAX_SHOWN_BODY])
    return {
        "message_id": message.message_id,
        "detail_type": message.detail_type,
        "payment_id": message.payment_id,
        "reason": message.reason,
        "error_message": redact_pan(message.error_message),
        "parked_at": message.parked_at.isoformat(),
        "replay_count": message.replay_count,
        "problem": redact_pan(message.problem or "") or None,
        "body": body,
    }


@dataclass
class Group:
    reason: str
    detail_type: str
    messages: list[DlqMessage] = field(default_factory=list)


def group_messages(messages: Iterable[DlqMessage]) -> list[Group]:
    """Messages by (error reason, detail-type), largest group first."""
    groups: dict[tuple[str, str], Group] = {}
    for message in messages:
        key = (message.reason, message.detail_type)
        groups.setdefault(key, Group(*key)).messages.append(message)
    return sorted(groups.values(), key=lambda g: (-len(g.messages), g.reason, g.detail_type))


def oldest_age(messages: Iterable[DlqMessage], now: datetime) -> timedelta | None:
    times = [message.sent_at for message in messages]
    return now - min(times) if times else None
