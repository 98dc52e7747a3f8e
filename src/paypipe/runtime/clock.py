"""The pipeline's clock: every step reads "now" here, never from a client's timestamp.

On AWS it is the system clock. The embedded run and tests install a clock they drive
(``use``), so a scenario can fast-forward to a hold's expiry or an ACH window; the embedded
SQS reads the same clock, so a message's ``SentTimestamp`` is pipeline time there too.

A record's receipt time is when it entered the step's queue (SQS ``SentTimestamp``, which no
client sets and which stays the same on every redelivery), or the ``received_at`` a consumer
wrote when it parked the record, which a DLQ replay carries back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

RECEIVED_AT_ATTRIBUTE = "received_at"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to (embedded runs, tests)."""

    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("the clock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        if moment.utcoffset() is None:
            raise ValueError("the clock needs timezone-aware times")
        if moment < self._now:
            raise ValueError(f"the clock cannot go back from {self._now.isoformat()} to {moment.isoformat()}")
        self._now = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


_clock: list[Clock] = [SystemClock()]


def now() -> datetime:
    return _clock[0].now()


def now_millis() -> int:
    return int(now().timestamp() * 1000)


def use(clock: Clock | None) -> None:
    """Install ``clock`` for the whole process; None restores the system clock."""
    _clock[0] = clock or SystemClock()


@contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    previous = _clock[0]
    _clock[0] = clock
    try:
        yield clock
    finally:
        _clock[0] = previous


def received_at(attributes: Mapping[str, Any], message_attributes: Mapping[str, str]) -> datetime:
    """When an SQS record was first received by the pipeline (see the module docstring)."""
    carried = message_attributes.get(RECEIVED_AT_ATTRIBUTE)
    if carried:
        try:
            moment = datetime.fromisoformat(carried)
            if moment.utcoffset() is not None:
                return moment.astimezone(UTC)
        except ValueError:
            pass
    sent = attributes.get("SentTimestamp") or attributes.get("sentTimestamp")
    if sent is not None and str(sent).isdigit():
        return datetime.fromtimestamp(int(sent) / 1000, UTC)
    return now()
