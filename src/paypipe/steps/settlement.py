"""settlement: the pipeline's card book, matched each day against the acquirer's report.

- ``CardBookStep`` (SQS: PaymentCharged, CardRefunded, DisputeOpened and DisputeResolved from the
  processor) books the line each card event owes on the acquirer's report: a capture with the
  contracted fee, a refund, a chargeback (the captured charge and the network's fee), a won
  chargeback's reversal (the captured charge given back). Booked once per event id.
- ``SettlementMatcher`` (scheduled, daily after the report) matches each line of a day's report
  to a booked line of its payment (same kind, reference, currency and amount) and publishes
  ``SettlementReconciled``: lines reported but never booked, booked lines on no report within
  ``BOOKED_GRACE_DAYS`` after their day, fees other than the contract's, and a report missing
  or malformed. Each discrepancy counts in the ``SettlementDiscrepancies`` metric, which alarms.
  A day is matched once (its event kept); a run also matches the days of the week before it
  that no run matched and whose report has come since.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from paypipe.adapters.card_book import CardBook
from paypipe.domain.settlement import (
    BOOKED_GRACE_DAYS,
    BookedLine,
    DayMatch,
    Discrepancy,
    FeeSchedule,
    LineKind,
    SettlementLine,
    SettlementReportError,
    grace_days,
    match_report,
    parse_report,
    report_key,
    settlement_totals,
)
from paypipe.events import models as ev
from paypipe.runtime.aws import client, setting
from paypipe.runtime.consumer import Consumer, PermanentError, Receipt, Route
from paypipe.runtime.entry import LambdaHandler, build_consumer, publisher
from paypipe.runtime.publisher import EventPublisher
from paypipe.steps.common import contracted_fees, scheduled_time

STEP = "settlement"
CATCH_UP_DAYS = 7  # days before the one asked for that a match run catches up when none matched them
LISTED_DISCREPANCIES = 50


def booked_line(event: ev.Event, capture: SettlementLine | None, fees: FeeSchedule) -> SettlementLine | None:
    """The line the acquirer's report owes for a card event (None: the event owes none);
    a chargeback's is the payment's ``capture`` taken back, a won one's reversal the capture given
    back (None when it has none)."""
    day = event.occurred_at.date()
    if isinstance(event, ev.PaymentCharged):
        charge = event.data.charge
        cents = charge.captured_cents
        return SettlementLine(
            day,
            LineKind.CAPTURE,
            charge.authorization_id,
            event.payment_id,
            charge.currency,
            cents,
            fees.fee(cents),
        )
    if isinstance(event, ev.CardRefunded):
        data = event.data
        return SettlementLine(
            day, LineKind.REFUND, data.authorization_id, event.payment_id, data.currency, data.amount_cents, 0
        )
    kind, fee = _network_line(event, fees)
    if kind is None or capture is None:
        return None
    return SettlementLine(
        day, kind, capture.reference, event.payment_id, capture.currency, capture.amount_minor, fee
    )


def _network_line(event: ev.Event, fees: FeeSchedule) -> tuple[LineKind | None, int]:
    """The kind and fee of the line a network's dispute event owes (None: a client's, or a loss)."""
    if event.producer != ev.PROCESSOR_PRODUCER:
        return None, 0
    if isinstance(event, ev.DisputeOpened):
        return LineKind.CHARGEBACK, fees.chargeback_minor
    if isinstance(event, ev.DisputeResolved) and event.data.outcome is ev.DisputeOutcome.RELEASE:
        return LineKind.CHARGEBACK_REVERSAL, 0
    return None, 0


class CaptureNotBookedError(RuntimeError):
    """A chargeback's capture is not in the book yet: the record is tried again (then parked)."""


@dataclass(frozen=True)
class CardBookStep:
    book: CardBook
    fees: FeeSchedule = field(default_factory=FeeSchedule)

    def on_card_event(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        disputes = ev.DisputeOpened | ev.DisputeResolved
        if isinstance(event, disputes) and event.producer != ev.PROCESSOR_PRODUCER:
            return []  # a client's dispute moves no card money
        capture = None
        if isinstance(event, disputes):
            if _network_line(event, self.fees)[0] is None:
                return []  # the network's loss: the chargeback's line stands
            captures = [
                e.line for e in self.book.lines_of(event.payment_id) if e.line.kind is LineKind.CAPTURE
            ]
            if not captures:  # its capture not booked yet (out of order): try again later
                raise CaptureNotBookedError(f"chargeback of payment {event.payment_id}: no capture booked")
            capture = captures[0]
        line = booked_line(event, capture, self.fees)
        if line is None:
            return []
        entry = BookedLine(f"{line.kind}:{event.event_id}", line)
        stored = self.book.book(entry)
        if stored is not None and stored.line != line:
            raise PermanentError(
                "BookedLineConflict", f"event {event.event_id} booked before with other content"
            )
        return []


def card_book_routes(step: CardBookStep) -> dict[str, Route]:
    route = Route(step.on_card_event, idempotent=False)
    card_events = ("PaymentCharged", "CardRefunded", "DisputeOpened", "DisputeResolved")
    return dict.fromkeys(card_events, route)


def build() -> Consumer:
    book = CardBook(setting("SETTLEMENT_TABLE"), client("dynamodb"))
    return build_consumer(STEP, card_book_routes(CardBookStep(book, contracted_fees())))


class ReportSource(Protocol):
    """Where the acquirer drops its reports (the bucket)."""

    def read(self, key: str) -> str | None: ...
    def exists(self, key: str) -> bool: ...


@dataclass(frozen=True)
class S3Reports:
    s3: Any
    bucket: str

    def read(self, key: str) -> str | None:
        try:
            return str(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode())
        except self.s3.exceptions.NoSuchKey:
            return None

    def exists(self, key: str) -> bool:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(item["Key"] == key for item in listed.get("Contents", []))


@dataclass
class SettlementMatcher:
    book: CardBook
    reports: ReportSource
    events: EventPublisher

    def match_through(self, day: date, at: datetime) -> dict[str, Any]:
        """Match ``day`` and each of the ``CATCH_UP_DAYS`` before it that no run matched and
        whose report is there (one that came late)."""
        before = [day - timedelta(days=n) for n in range(CATCH_UP_DAYS, 0, -1)]
        due = [d for d in before if self.book.day_result(d) is None and self.reports.exists(report_key(d))]
        due.append(day)
        events = [self.match(d, at) for d in due]
        result = self.events.publish(events)
        if not result.ok:
            raise RuntimeError(f"{len(result.failed)} settlement results not published; the next run retries")
        return {
            "days": [d.isoformat() for d in due],
            "discrepancies": sum(e.data.discrepancy_count for e in events),
        }

    def match(self, day: date, at: datetime) -> ev.SettlementReconciled:
        """The day's match: the one kept when it ran before, else made now (the lines it matched
        marked first, so a run cut short redoes the same match). A report missing or malformed
        is reported and not kept: the day is matched once a readable report is there."""
        kept = self.book.day_result(day)
        if kept is not None:
            return ev.SettlementReconciled.model_validate_json(kept)
        key = report_key(day)
        text = self.reports.read(key)
        if text is None:
            return _reconciled(day, key, at, report_error="missing")
        try:
            lines = parse_report(text, day).lines
        except SettlementReportError as error:
            return _reconciled(day, key, at, report_error=f"malformed: {error}")
        payments = sorted({line.payment_id for line in lines})
        booked = [entry for payment in payments for entry in self.book.lines_of(payment)]
        stale = self.book.unmatched_before(day - timedelta(days=BOOKED_GRACE_DAYS - 1))
        windows = {d for entry in stale for d in grace_days(entry.line.day)} - {day}
        matched_days = {d for d in windows if self.book.day_result(d) is not None}
        outcome = match_report(day, lines, booked, stale=stale, matched_days=matched_days)
        for entry in outcome.matched:
            self.book.mark_matched(entry, day)
        for found in outcome.discrepancies:
            if found.booked is not None:  # reported as on no report: once
                self.book.set_aside(found.booked, day)
        return self._keep(day, _reconciled(day, key, at, lines=lines, outcome=outcome))

    def _keep(self, day: date, event: ev.SettlementReconciled) -> ev.SettlementReconciled:
        return ev.SettlementReconciled.model_validate_json(
            self.book.save_day_result(day, event.model_dump_json())
        )


def _reconciled(
    day: date,
    key: str,
    at: datetime,
    *,
    lines: Sequence[SettlementLine] = (),
    outcome: DayMatch | None = None,
    report_error: str | None = None,
) -> ev.SettlementReconciled:
    found = outcome.discrepancies if outcome else ()
    data = ev.SettlementReconciledData(
        day=day,
        report_key=key,
        report_error=report_error,
        lines=len(lines),
        matched=len(outcome.matched) if outcome else 0,
        discrepancy_count=len(found) + (1 if report_error else 0),
        discrepancies=[_discrepancy(d) for d in found[:LISTED_DISCREPANCIES]],
        reported=[
            ev.SettlementCurrencyTotals(
                currency=currency,
                captured=totals.captured,
                refunded=totals.refunded,
                charged_back=totals.charged_back,
                chargebacks_reversed=totals.chargebacks_reversed,
                fees=totals.fees,
                net=totals.net,
            )
            for currency, totals in sorted(settlement_totals(lines).items())
        ],
    )
    # A result not kept (no readable report) has an id of its own: the day's match gets another.
    dedup = day.isoformat() if report_error is None else f"{day.isoformat()}:{report_error}"
    return ev.SettlementReconciled.create(
        payment_id=f"settlement-{day:%Y%m%d}",
        data=data,
        producer=STEP,
        dedup_key=dedup,
        occurred_at=at,
    )


def _discrepancy(found: Discrepancy) -> ev.SettlementDiscrepancy:
    line = found.line
    return ev.SettlementDiscrepancy(
        kind=found.kind.value,
        payment_id=line.payment_id,
        line_kind=line.kind.value,
        reference=line.reference,
        currency=line.currency,
        booked_minor=found.booked_minor,
        reported_minor=found.reported_minor,
    )


def build_matcher() -> LambdaHandler:
    """Scheduled: yesterday's report (the schedule's own time); invoked with {"day": "YYYY-MM-DD"}:
    that day's."""
    matcher = SettlementMatcher(
        CardBook(setting("SETTLEMENT_TABLE"), client("dynamodb")),
        S3Reports(client("s3"), setting("REPORT_BUCKET")),
        publisher(STEP),
    )

    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, Any]:
        at = scheduled_time(event)
        asked = event.get("day")
        day = date.fromisoformat(asked) if isinstance(asked, str) else (at - timedelta(days=1)).date()
        return matcher.match_through(day, at)

    return handler
