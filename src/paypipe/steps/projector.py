"""projector: every pipeline event, from every producer -> one entry of the payment's timeline.

A read model: it records, publishes nothing, and trusts no event for anything. The envelope is
checked (ids, type, time) and the origin judged against the contract (an event from a producer
its type does not name is recorded as untrusted, and ``current_state`` ignores it); the data is
read only through the type's ``KEY_FACTS`` whitelist. The card-bearing types reach the queue
already reduced to those facts by the rule's input transformer; the whitelist drops anything
else they might carry all the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from paypipe.adapters.timeline_store import TimelineStore
from paypipe.domain.timeline import TimelineEntry, key_facts
from paypipe.events.models import EVENT_TYPES, Identifier, untrusted_origin
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, PermanentError, Receipt, summarize_validation_error
from paypipe.runtime.entry import build_consumer
from paypipe.runtime.logging import get_logger

STEP = "projector"
_log = get_logger(step=STEP)


class Key(BaseModel):
    """What an event must have to be filed: its payment and its own id."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(min_length=1, max_length=64)
    payment_id: Identifier


class Envelope(BaseModel):
    """The rest of the envelope the timeline shows."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: str
    occurred_at: AwareDatetime
    producer: str = Field(min_length=1, max_length=64)


def entry_of(envelope: Mapping[str, Any], receipt: Receipt) -> TimelineEntry | None:
    """The timeline entry for a delivered event; None for one without a payment id and event id
    to file it under (no timeline can show it; the step it was meant for parks it); PermanentError
    for a type no contract knows (no rule delivers one).

    An event with a payment and an id is filed even when the rest of its envelope is wrong (a
    detail-type that is not its event type, no valid time or producer): marked untrusted, at its
    receipt time."""
    detail_type, detail = envelope.get("detail-type"), envelope["detail"]
    if not isinstance(detail_type, str) or detail_type not in EVENT_TYPES:
        raise PermanentError("UnknownEvent", f"unknown event type {str(detail_type)[:64]!r}")
    try:
        key = Key.model_validate(detail)
    except ValidationError as error:
        _log.warning(
            "event not filed: no valid payment id and event id", detail=summarize_validation_error(error)
        )
        return None
    try:
        head: Envelope | None = Envelope.model_validate(detail)
        problem = None
    except ValidationError as error:
        head, problem = None, f"envelope violates the contract: {summarize_validation_error(error)}"
    if head is not None and head.event_type != detail_type:
        problem = f"detail-type {detail_type} is not its event_type {head.event_type[:64]!r}"
    producer = head.producer if head else "unknown"
    return TimelineEntry(
        payment_id=key.payment_id,
        event_id=key.event_id,
        event_type=detail_type,
        occurred_at=head.occurred_at if head else receipt.received_at,
        producer=producer,
        source=receipt.source,
        facts=key_facts(detail_type, detail.get("data")),
        untrusted=problem or _origin_problem(detail_type, receipt.source, producer),
        received_at=receipt.received_at,
    )


def _origin_problem(detail_type: str, source: str | None, producer: str) -> str | None:
    if not source:
        return "delivered without an EventBridge source"
    return untrusted_origin(detail_type, source, producer)


class ProjectorStep:
    def __init__(self, store: TimelineStore) -> None:
        self.store = store

    def observe(self, envelope: Mapping[str, Any], receipt: Receipt) -> None:
        entry = entry_of(envelope, receipt)
        if entry is not None:
            self.store.record(entry)


def build() -> Consumer:
    retention = timedelta(days=int_setting("TIMELINE_RETENTION_DAYS", 400))
    step = ProjectorStep(TimelineStore(setting("TIMELINE_TABLE"), client("dynamodb"), retention))
    return build_consumer(STEP, {}, observer=step.observe)
