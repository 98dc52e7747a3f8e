"""The SQS consumer every step runs: parse, deduplicate, apply the step, publish, report failures.

Per record:
1. parse the EventBridge event from the SQS body and validate it against its contract;
2. refuse it unless its EventBridge source and envelope producer are ones the contract allows
   for its type (parked as ``UntrustedSource``); answer a client event whose timestamps are
   further than the allowed skew from the pipeline's receipt time with the route's refusal;
3. run the step's route for that event type once per business key (payment id + step + event
   type): under an idempotency record that caches the outgoing events with the key, so a
   redelivery re-publishes exactly the same events (same ids) instead of recomputing, or, for a
   route that is not ``idempotent``, by the step's own conditional write (see ``Route``);
4. publish all outgoing events of the batch in PutEvents calls of up to 10 entries.

Routes get the record's ``Receipt``: the pipeline's receipt time (see ``paypipe.runtime.clock``),
the only "now" a step decides by.

Records that fail are reported through ReportBatchItemFailures so only they are redelivered.
Input that can never succeed (malformed, unknown type or version, conflicting duplicate) is
parked in the step's DLQ at once with its reason; so is a record on its last allowed receive.
A route with ``on_invalid`` answers a schema violation whose envelope is intact with events
instead (e.g. a rejection), so the sender learns why.

A consumer with an ``observer`` instead of routes (a read model such as the timeline projector)
skips steps 1-4: it hands every record's EventBridge envelope and receipt to the observer, from
any producer (the observer judges the origin and trusts it for nothing), and publishes nothing;
parking and partial batch failures work as for the steps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyValidationError
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.serialization.base import BaseIdempotencySerializer
from pydantic import ValidationError

from paypipe.events.models import (
    CLIENT_PRODUCER,
    EVENT_TYPES,
    CardData,
    CardInput,
    Event,
    UnknownEventError,
    parse_detail,
    to_detail,
    untrusted_origin,
)
from paypipe.observability.facts import decision
from paypipe.redaction import redact_json_text
from paypipe.runtime import clock, metrics
from paypipe.runtime.logging import get_logger
from paypipe.runtime.publisher import EventPublisher

IDEMPOTENCY_TTL_SECONDS = 14 * 24 * 3600
MAX_REASON_CHARS = 1000
DEFAULT_CLIENT_CLOCK_SKEW = timedelta(minutes=5)
CLIENT_CLOCK_SKEW = "CLIENT_CLOCK_SKEW"


class PermanentError(Exception):
    """Input that no retry can fix; the record is parked in the DLQ with this reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SchemaViolation(PermanentError):
    """The event's type and version are known but its content breaks the contract."""

    def __init__(self, detail: dict[str, Any], error: ValidationError, source: str | None = None) -> None:
        super().__init__("SchemaViolation", summarize_validation_error(error))
        self.detail = detail
        self.source = source
        self.errors = field_errors(error)


@dataclass(frozen=True)
class FieldError:
    """One contract violation: the field's dotted path and pydantic's message (never the value)."""

    field: str
    message: str


@dataclass(frozen=True)
class Receipt:
    """What the pipeline itself knows of a record: when it received it and who published it."""

    received_at: datetime
    source: str | None = None
    receive_count: int = 1


@dataclass(frozen=True)
class Refusal:
    """Why a client event is refused before the step acts on it (a reason code and the field)."""

    code: str
    field: str
    message: str


type Handler = Callable[[Event, Receipt], Sequence[Event]]
# An observer records every event whatever its origin (a read model): it gets the EventBridge
# envelope as delivered, unchecked against the contract, and publishes nothing.
type Observer = Callable[[Mapping[str, Any], Receipt], None]


@dataclass(frozen=True)
class Route:
    """How a step handles one event type.

    ``handle`` returns the events to publish. With ``idempotent`` (the default) its result is
    stored under the business key and replayed on redelivery; a step whose handler is already
    deterministic and safe to repeat sets it to False: its own conditional write decides once,
    keeps the event's ``content_fingerprint`` and refuses other content (``content_conflict``),
    and its outgoing events derive from its input and stored state alone (same ids, same times).
    ``on_conflict`` handles the same business key arriving with different content.
    ``on_invalid`` answers a schema violation whose envelope is valid (given as a bare ``Event``
    with unparsed ``data``) instead of parking it; ``on_refused`` answers a client event refused
    at the trust boundary (clock skew). Both must be deterministic, as they are not cached.
    """

    handle: Handler
    idempotent: bool = True
    business_key: Callable[[Event], str] | None = None
    on_conflict: Handler | None = None
    on_invalid: Callable[[Event, Sequence[FieldError], Receipt], Sequence[Event]] | None = None
    on_refused: Callable[[Event, Refusal, Receipt], Sequence[Event]] | None = None


def client_timestamps(event: Event) -> Iterator[tuple[str, datetime]]:
    """Every timestamp a client chose in an event: the envelope's and any in its data."""
    yield "occurred_at", event.occurred_at
    for name, value in event.data:
        if isinstance(value, datetime):
            yield name, value


def clock_skew_refusal(event: Event, received_at: datetime, max_skew: timedelta) -> Refusal | None:
    """A refusal when a client timestamp is further than ``max_skew`` from the receipt time."""
    for name, moment in client_timestamps(event):
        if moment.utcoffset() is None or abs(moment - received_at) > max_skew:
            return Refusal(
                CLIENT_CLOCK_SKEW,
                name,
                f"{name} must be within {int(max_skew.total_seconds())} s of the pipeline's clock "
                f"({received_at.isoformat()})",
            )
    return None


@dataclass
class BatchOutcome:
    failed_message_ids: list[str] = field(default_factory=list)
    parked_message_ids: list[str] = field(default_factory=list)
    published: int = 0

    def response(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in self.failed_message_ids]}


def content_fingerprint(event: Event) -> str:
    """Hash of the business content. Secrets are dumped masked, so no card number is hashed:
    only its BIN and last four take part."""
    view = event.data.model_dump(mode="json")
    card = getattr(event.data, "card", None)
    if isinstance(card, CardInput | CardData):
        pan = card.number.get_secret_value()
        view["card"]["number"] = f"{pan[:6]}..{pan[-4:]}"
    payload = json.dumps(view, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class CompressedEvents(BaseIdempotencySerializer):
    """A record's outgoing events as compressed JSON: most answers then fit the record in one write
    unit (1 KB) instead of two. A record stored before as a plain list still reads."""

    def to_dict(self, data: Any) -> dict[str, str]:
        packed = zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 9)
        return {"events_zlib": base64.b64encode(packed).decode("ascii")}

    def from_dict(self, data: Any) -> list[dict[str, Any]]:
        if isinstance(data, dict) and "events_zlib" in data:
            loaded: list[dict[str, Any]] = json.loads(zlib.decompress(base64.b64decode(data["events_zlib"])))
            return loaded
        return list(data or [])


def content_conflict(key: str) -> PermanentError:
    """The refusal of a business key already processed with different content (parked)."""
    return PermanentError("IdempotencyConflict", f"{key} was already processed with different content")


class Consumer:
    def __init__(
        self,
        step: str,
        routes: Mapping[str, Route],
        *,
        publisher: EventPublisher,
        sqs_client: Any,
        dlq_url: str | None,
        max_receive_count: int,
        idempotency_store: BasePersistenceLayer | None,
        max_client_skew: timedelta = DEFAULT_CLIENT_CLOCK_SKEW,
        observer: Observer | None = None,
    ) -> None:
        unknown = set(routes) - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"routes for unknown event types: {sorted(unknown)}")
        if observer is not None and routes:
            raise ValueError("an observer has no routes: it records every event and publishes nothing")
        self._observer = observer
        self.step = step
        self.routes = dict(routes)
        self.publisher = publisher
        self._sqs = sqs_client
        self._dlq_url = dlq_url
        self._max_receive_count = max_receive_count
        self._max_client_skew = max_client_skew
        self._log = get_logger(step=step)
        self._idempotent_run: Callable[..., list[dict[str, Any]]] | None = None
        self._idempotency_config: IdempotencyConfig | None = None
        if idempotency_store is not None:
            self._idempotency_config = IdempotencyConfig(
                event_key_jmespath="key",
                payload_validation_jmespath="fingerprint",
                expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
                raise_on_no_idempotency_key=True,
            )
            self._idempotent_run = idempotent_function(
                data_keyword_argument="request",
                persistence_store=idempotency_store,
                config=self._idempotency_config,
                output_serializer=CompressedEvents(),
            )(self._run_route)

    # -- Lambda entry -------------------------------------------------------------------------

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
        if self._idempotency_config is not None and hasattr(context, "get_remaining_time_in_millis"):
            self._idempotency_config.register_lambda_context(context)
        return self.process(event.get("Records", [])).response()

    def process(self, records: Sequence[Mapping[str, Any]]) -> BatchOutcome:
        outcome = BatchOutcome()
        outgoing: dict[str, list[Event]] = {}

        def record_handler(record: SQSRecord) -> None:
            result = self._process_record(record)
            if result is None:
                outcome.parked_message_ids.append(record.message_id)
            else:
                outgoing[record.message_id] = result

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        with processor(records=[dict(record) for record in records], handler=record_handler):
            processor.process()
        outcome.failed_message_ids.extend(
            str(item["itemIdentifier"]) for item in processor.response()["batchItemFailures"]
        )
        self._publish(outgoing, outcome)
        self._log_decisions(outgoing, set(outcome.failed_message_ids))
        metrics.emit("RecordsReceived", len(records), step=self.step)
        metrics.emit("RecordsFailed", len(set(outcome.failed_message_ids)), step=self.step)
        return outcome

    def _log_decisions(self, outgoing: Mapping[str, Sequence[Event]], failed: set[str]) -> None:
        """One "step decision" line per published outgoing event (``none`` for a record that
        published nothing); parked and failed records have their own lines."""
        structlog.contextvars.clear_contextvars()
        for message_id, batch in outgoing.items():
            if message_id in failed:
                continue
            for event in batch:
                self._log.info("step decision", message_id=message_id, **decision(event))
            if not batch:
                self._log.info("step decision", message_id=message_id, outcome="none")

    # -- one record ---------------------------------------------------------------------------

    def _process_record(self, record: SQSRecord) -> list[Event] | None:
        """Outgoing events for the record, or None when the record was parked in the DLQ."""
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(step=self.step, message_id=record.message_id)
        receive_count = int(record.attributes.approximate_receive_count or "1")
        received_at = clock.received_at(record.raw_event.get("attributes") or {}, _message_attributes(record))
        try:
            return self._decide(record, Receipt(received_at, None, receive_count))
        except PermanentError as error:
            self._park(record, error.reason, str(error), receive_count, received_at)
            return None
        except Exception as error:
            if receive_count >= self._max_receive_count:
                self._log.error(
                    "record failed on its last receive", receive_count=receive_count, exc_info=True
                )
                self._park(record, type(error).__name__, str(error), receive_count, received_at)
                return None
            self._log.warning(
                "record failed; will be redelivered",
                receive_count=receive_count,
                error=type(error).__name__,
                detail=str(error)[:MAX_REASON_CHARS],
            )
            raise

    def _decide(self, record: SQSRecord, receipt: Receipt) -> list[Event]:
        """The record's outgoing events; PermanentError when it is to be parked."""
        if self._observer is not None:
            return self._observe(record.body, receipt)
        try:
            event, source = self._parse(record.body)
        except SchemaViolation as error:
            answer = self._answer_invalid(error, replace(receipt, source=error.source))
            if answer is None:
                raise
            return answer
        receipt = replace(receipt, source=source)
        structlog.contextvars.bind_contextvars(
            payment_id=event.payment_id, event_id=event.event_id, correlation_id=event.correlation_id
        )
        route = self._route(event.event_type, source, event.producer)
        if event.producer == CLIENT_PRODUCER:
            refusal = clock_skew_refusal(event, receipt.received_at, self._max_client_skew)
            if refusal is not None:
                return self._refuse(route, event, refusal, receipt)
        return self._apply(route, event, receipt)

    def _observe(self, body: str, receipt: Receipt) -> list[Event]:
        """Hand the envelope to the observer: every producer's events, trusted for nothing (the
        observer sees the source and judges the origin itself), no refusals, nothing published."""
        assert self._observer is not None
        try:
            envelope = json.loads(body)
        except json.JSONDecodeError as error:
            raise PermanentError("MalformedJson", f"body is not JSON: {error.msg}") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("detail"), dict):
            raise PermanentError("NotAnEventBridgeEvent", "body lacks an object 'detail'")
        source = envelope.get("source")
        self._observer(envelope, replace(receipt, source=source if isinstance(source, str) else None))
        return []

    def _parse(self, body: str) -> tuple[Event, str | None]:
        source: str | None = None
        try:
            envelope = json.loads(body)
            source = envelope.get("source") if isinstance(envelope.get("source"), str) else None
            return parse_detail(envelope["detail-type"], envelope["detail"]), source
        except json.JSONDecodeError as error:
            raise PermanentError("MalformedJson", f"body is not JSON: {error.msg}") from None
        except (KeyError, TypeError, AttributeError) as error:
            raise PermanentError("NotAnEventBridgeEvent", f"body lacks {error}") from None
        except UnknownEventError as error:
            raise PermanentError("UnknownEvent", str(error)) from None
        except ValidationError as error:
            raise SchemaViolation(envelope["detail"], error, source) from None

    def _route(self, event_type: str, source: str | None, producer: str) -> Route:
        """The route for a trusted event; PermanentError for one this step must not act on."""
        route = self.routes.get(event_type)
        if route is None:
            raise PermanentError("NoRoute", f"step {self.step} does not consume {event_type}")
        problem = untrusted_origin(event_type, source or "", producer)
        if problem is not None:
            raise PermanentError("UntrustedSource", problem)
        return route

    def _refuse(self, route: Route, event: Event, refusal: Refusal, receipt: Receipt) -> list[Event]:
        if route.on_refused is None:
            raise PermanentError(refusal.code, refusal.message)
        self._log.warning("client event refused", code=refusal.code, field=refusal.field)
        return list(route.on_refused(event, refusal, receipt))

    def _answer_invalid(self, error: SchemaViolation, receipt: Receipt) -> list[Event] | None:
        """The route's answer to a schema violation, or None when it has none (the record is parked)."""
        try:
            envelope = Event.model_validate(error.detail)
        except ValidationError:
            return None
        route = self._route(envelope.event_type, receipt.source, envelope.producer)
        if route.on_invalid is None:
            return None
        structlog.contextvars.bind_contextvars(
            payment_id=envelope.payment_id, event_id=envelope.event_id, correlation_id=envelope.correlation_id
        )
        self._log.warning("schema violation answered by the route", detail=str(error)[:MAX_REASON_CHARS])
        return list(route.on_invalid(envelope, error.errors, receipt))

    def _apply(self, route: Route, event: Event, receipt: Receipt) -> list[Event]:
        if not route.idempotent or self._idempotent_run is None:
            return list(route.handle(event, receipt))
        key = route.business_key(event) if route.business_key else f"{event.payment_id}:{event.event_type}"
        request = {"key": f"{self.step}:{key}", "fingerprint": content_fingerprint(event)}
        try:
            cached = self._idempotent_run(request=request, event=event, receipt=receipt)
        except IdempotencyValidationError:
            if route.on_conflict is None:
                raise content_conflict(request["key"]) from None
            return list(route.on_conflict(event, receipt))
        # Powertools returns None for a stored empty result.
        return [parse_detail(item["event_type"], item) for item in cached or []]

    def _run_route(self, request: dict[str, str], event: Event, receipt: Receipt) -> list[dict[str, Any]]:
        route = self.routes[event.event_type]
        return [to_detail(out) for out in route.handle(event, receipt)]

    # -- publishing and parking ---------------------------------------------------------------

    def _publish(self, outgoing: dict[str, list[Event]], outcome: BatchOutcome) -> None:
        events = [event for batch in outgoing.values() for event in batch]
        if not events:
            return
        result = self.publisher.publish(events)
        outcome.published += len(result.published)
        failed_ids = {entry.event.event_id for entry in result.failed}
        for message_id, batch in outgoing.items():
            if any(event.event_id in failed_ids for event in batch):
                outcome.failed_message_ids.append(message_id)
        for entry in result.failed:
            self._log.warning(
                "publish failed; source record will be redelivered",
                event_type=entry.event.event_type,
                payment_id=entry.event.payment_id,
                error_code=entry.error_code,
            )

    def _park(
        self, record: SQSRecord, reason: str, message: str, receive_count: int, received_at: datetime
    ) -> None:
        if not self._dlq_url:
            raise RuntimeError(f"cannot park message {record.message_id}: no DLQ configured") from None
        replay_count = _message_attribute(record, "replay_count") or "0"
        # DLQs keep no card numbers: a parked request whose PAN was masked replays into a
        # PaymentRejected (the client resubmits) instead of a payment stuck half way.
        body = redact_json_text(record.body)
        attributes = {
            "error_reason": reason,
            "error_message": message[:MAX_REASON_CHARS] or reason,
            "failed_step": self.step,
            "source_queue_arn": record.event_source_arn or "unknown",
            "receive_count": str(receive_count),
            "replay_count": replay_count,
            "parked_at": clock.now().isoformat(),
            clock.RECEIVED_AT_ATTRIBUTE: received_at.isoformat(),
        }
        if body != record.body:
            attributes["card_data_redacted"] = "true"
        self._sqs.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=body,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
            },
        )
        self._log.error("record parked in DLQ", reason=reason, detail=message[:MAX_REASON_CHARS])
        metrics.emit("RecordsParked", 1, step=self.step, reason=reason)


def _message_attributes(record: SQSRecord) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, attribute in (record.raw_event.get("messageAttributes") or {}).items():
        value = attribute.get("stringValue") or attribute.get("StringValue") if attribute else None
        if value is not None:
            values[name] = str(value)
    return values


def _message_attribute(record: SQSRecord, name: str) -> str | None:
    return _message_attributes(record).get(name)


def field_errors(error: ValidationError) -> list[FieldError]:
    """Every violation as a field path under ``data`` (or the envelope field) and its message."""
    errors = []
    for item in error.errors(include_input=False, include_url=False):
        path = [str(part) for part in item["loc"]]
        if path[:1] == ["data"] and len(path) > 1:
            path = path[1:]
        errors.append(FieldError(".".join(path), item["msg"]))
    return errors


def summarize_validation_error(error: ValidationError, limit: int = 5) -> str:
    """Field paths and messages only: pydantic's default text would echo input values (PANs)."""
    parts = []
    for item in error.errors(include_input=False)[:limit]:
        location = ".".join(str(part) for part in item["loc"])
        parts.append(f"{location}: {item['msg']}")
    more = error.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
