"""EventBridge publisher: PutEvents in batches of 10, retrying only the entries that failed."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from paypipe.events.models import CLIENT_PRODUCER, EVENT_SOURCE_PREFIX, Event, to_detail
from paypipe.observability.facts import facts
from paypipe.runtime import metrics

MAX_ENTRIES_PER_CALL = 10
MAX_CALL_BYTES = 256 * 1024
TRACE_ENV = "_X_AMZN_TRACE_ID"  # the invocation's X-Ray trace header, set by Lambda
RETRYABLE_ERROR_CODES = frozenset(
    {"ThrottlingException", "InternalException", "InternalFailure", "ServiceUnavailable", "RequestTimeout"}
)


@dataclass(frozen=True)
class FailedEntry:
    event: Event
    error_code: str
    error_message: str


@dataclass
class PublishResult:
    published: list[Event] = field(default_factory=list)
    failed: list[FailedEntry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


class _EntriesFailed(Exception):
    """Some entries of a PutEvents call failed with a retryable error."""


def entry_for(event: Event, bus_name: str, producer: str) -> dict[str, Any]:
    """The PutEvents entry; with the invocation's trace header, so X-Ray links the bus hop."""
    entry = {
        "Source": f"{EVENT_SOURCE_PREFIX}.{producer}",
        "DetailType": event.event_type,
        "Detail": json.dumps(to_detail(event), separators=(",", ":")),
        "EventBusName": bus_name,
    }
    trace_header = os.environ.get(TRACE_ENV)
    if trace_header:
        entry["TraceHeader"] = trace_header
    return entry


def _entry_size(entry: dict[str, Any]) -> int:
    # PutEvents entry size as AWS counts it: source, detail-type, detail and resources.
    return sum(len(str(entry.get(key, "")).encode()) for key in ("Source", "DetailType", "Detail")) + 14


def chunk_entries(entries: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Indexes of entries grouped into PutEvents calls of at most 10 entries and 256 KiB."""
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, entry in enumerate(entries):
        entry_size = _entry_size(entry)
        if current and (len(current) == MAX_ENTRIES_PER_CALL or size + entry_size > MAX_CALL_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(index)
        size += entry_size
    if current:
        chunks.append(current)
    return chunks


class EventPublisher:
    def __init__(
        self,
        client: Any,
        bus_name: str,
        producer: str,
        *,
        max_attempts: int = 5,
        max_backoff_seconds: float = 2.0,
    ) -> None:
        self._client = client
        self._bus_name = bus_name
        self._producer = producer
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff_seconds
        self.put_events_calls = 0

    def publish(self, events: Sequence[Event]) -> PublishResult:
        result = PublishResult()
        entries = [entry_for(event, self._bus_name, self._producer) for event in events]
        for chunk in chunk_entries(entries):
            failures = self._put_with_retries({index: entries[index] for index in chunk})
            for index in chunk:
                if index in failures:
                    code, message = failures[index]
                    result.failed.append(FailedEntry(events[index], code, message))
                else:
                    result.published.append(events[index])
        if self._producer != CLIENT_PRODUCER:  # a step's events are its metrics (a client's are not)
            metrics.record(fact for event in result.published for fact in facts(event))
        return result

    def _put_with_retries(self, pending: dict[int, dict[str, Any]]) -> dict[int, tuple[str, str]]:
        """Send ``pending``; resend only failed entries. Returns the entries that never succeeded."""
        failures: dict[int, tuple[str, str]] = {}
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_random_exponential(multiplier=0.05, max=self._max_backoff),
            retry=retry_if_exception_type(_EntriesFailed),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._put_once(pending, failures)
        except RetryError:
            pass
        return failures

    def _put_once(self, pending: dict[int, dict[str, Any]], failures: dict[int, tuple[str, str]]) -> None:
        indexes = list(pending)
        self.put_events_calls += 1
        try:
            response = self._client.put_events(Entries=[pending[index] for index in indexes])
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "ClientError")
            message = error.response.get("Error", {}).get("Message", str(error))
            for index in indexes:
                failures[index] = (code, message)
            if code in RETRYABLE_ERROR_CODES:
                raise _EntriesFailed(code) from error
            return
        retry_needed = False
        for index, outcome in zip(indexes, response.get("Entries", []), strict=False):
            if "EventId" in outcome and not outcome.get("ErrorCode"):
                failures.pop(index, None)
                pending.pop(index)
            else:
                failures[index] = (outcome.get("ErrorCode", "Unknown"), outcome.get("ErrorMessage", ""))
                retry_needed = True
        if response.get("FailedEntryCount", 0) and not retry_needed:
            retry_needed = True
        if retry_needed and pending:
            raise _EntriesFailed(f"{len(pending)} entries failed")
