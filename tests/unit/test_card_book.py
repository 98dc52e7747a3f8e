"""The card book and the daily settlement match: each card event books the line the acquirer's
report owes once, and each way a report and the book can disagree is a discrepancy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import boto3
import pytest

from paypipe.adapters.card_book import CardBook
from paypipe.domain.settlement import (
    BookedLine,
    DiscrepancyKind,
    FeeSchedule,
    LineKind,
    SettlementLine,
    match_report,
    render_report,
    report_key,
)
from paypipe.embedded.samples import sample_chain
from paypipe.events import models as ev
from paypipe.runtime.consumer import PermanentError, Receipt
from paypipe.runtime.publisher import PublishResult
from paypipe.steps.common import contracted_fees
from paypipe.steps.settlement import (
    CaptureNotBookedError,
    CardBookStep,
    S3Reports,
    SettlementMatcher,
)
from tests.tables import create_table

FEES = FeeSchedule()
BUCKET = "reports"


class Capture:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def publish(self, events: Any) -> PublishResult:
        self.events.extend(events)
        return PublishResult(published=list(events))


@pytest.fixture
def book(aws) -> CardBook:
    dynamodb = boto3.client("dynamodb")
    create_table(dynamodb, "settlement", gsi=True)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return CardBook("settlement", dynamodb)


def charged() -> ev.PaymentCharged:
    event = sample_chain(7).charged
    assert isinstance(event, ev.PaymentCharged)
    return event


def card_refunded(cents: int, key: str = "r1") -> ev.CardRefunded:
    charge = charged().data.charge
    data = ev.CardRefundedData(
        processor="simulator",
        authorization_id=charge.authorization_id,
        refund_id=f"re_{key}",
        amount_cents=cents,
        currency=charge.currency,
        refund_of="FundsRefunded",
    )
    return ev.CardRefunded.create(
        payment_id=charged().payment_id, data=data, producer="charge", dedup_key=key, occurred_at=day_at(0)
    )


def dispute(producer: str) -> ev.DisputeOpened:
    return ev.DisputeOpened.create(
        payment_id=charged().payment_id,
        data=ev.DisputeOpenedData(dispute_id="dp_1", reason="fraudulent"),
        producer=producer,
        dedup_key="dp_1",
        occurred_at=day_at(0),
    )


def decision(producer: str, outcome: ev.DisputeOutcome) -> ev.DisputeResolved:
    return ev.DisputeResolved.create(
        payment_id=charged().payment_id,
        data=ev.DisputeResolvedData(dispute_id="dp_1", outcome=outcome),
        producer=producer,
        dedup_key=f"dp_1:{outcome}",
        occurred_at=day_at(2),
    )


def day_at(days: int) -> datetime:
    return datetime.combine(charged().occurred_at.date() + timedelta(days=days), time(12), tzinfo=UTC)


def receive(step: CardBookStep, event: ev.Event) -> None:
    assert step.on_card_event(event, Receipt(received_at=event.occurred_at)) == []


def booked(book: CardBook) -> list[SettlementLine]:
    return sorted((entry.line for entry in book.lines_of(charged().payment_id)), key=lambda line: line.kind)


def test_each_card_event_books_the_line_the_report_owes_once(book):
    step = CardBookStep(book)
    for event in (charged(), charged(), card_refunded(200), dispute(ev.CLIENT_PRODUCER)):
        receive(step, event)
    capture, refund = booked(book)
    charge = charged().data.charge
    assert (capture.kind, capture.reference, capture.amount_minor) == (
        LineKind.CAPTURE,
        charge.authorization_id,
        charge.captured_cents,
    )
    assert capture.fee_minor == FEES.fee(charge.captured_cents)
    assert (refund.kind, refund.amount_minor, refund.fee_minor) == (LineKind.REFUND, 200, 0)
    receive(step, dispute(ev.PROCESSOR_PRODUCER))  # the network's: the capture taken back, its fee
    chargeback = next(line for line in booked(book) if line.kind is LineKind.CHARGEBACK)
    assert (chargeback.amount_minor, chargeback.fee_minor) == (charge.captured_cents, FEES.chargeback_minor)
    # The network's loss owes no line, a client's win neither; the network's win gives the capture back.
    receive(step, decision(ev.PROCESSOR_PRODUCER, ev.DisputeOutcome.REFUND))
    receive(step, decision(ev.CLIENT_PRODUCER, ev.DisputeOutcome.RELEASE))
    assert LineKind.CHARGEBACK_REVERSAL not in {line.kind for line in booked(book)}
    receive(step, decision(ev.PROCESSOR_PRODUCER, ev.DisputeOutcome.RELEASE))
    reversal = next(line for line in booked(book) if line.kind is LineKind.CHARGEBACK_REVERSAL)
    assert (reversal.amount_minor, reversal.fee_minor, reversal.day) == (
        charge.captured_cents,
        0,
        day_at(2).date(),
    )


def test_a_chargeback_before_its_capture_is_booked_waits_and_other_content_is_parked(book):
    step = CardBookStep(book)
    with pytest.raises(CaptureNotBookedError):  # not parked at once: SQS delivers it again
        step.on_card_event(dispute(ev.PROCESSOR_PRODUCER), Receipt(received_at=day_at(0)))
    receive(step, decision(ev.PROCESSOR_PRODUCER, ev.DisputeOutcome.REFUND))  # a loss owes no line
    receive(step, charged())
    other = charged().data.charge.model_copy(update={"captured_cents": 1})
    forged = charged().model_copy(update={"data": charged().data.model_copy(update={"charge": other})})
    with pytest.raises(PermanentError) as conflict:
        step.on_card_event(forged, Receipt(received_at=day_at(0)))
    assert conflict.value.reason == "BookedLineConflict"


def drop_report(day: date, lines: list[SettlementLine]) -> None:
    """The acquirer's report of ``day`` with ``lines`` (dated that day)."""
    text = render_report(day, [replace(line, day=day) for line in lines])
    boto3.client("s3").put_object(Bucket=BUCKET, Key=report_key(day), Body=text.encode())


def matcher(book: CardBook) -> SettlementMatcher:
    return SettlementMatcher(book, S3Reports(boto3.client("s3"), BUCKET), Capture())  # type: ignore[arg-type]


def settled_book(book: CardBook) -> tuple[SettlementLine, SettlementLine]:
    """A capture and a refund booked, and the lines the acquirer owes for them on their day."""
    step = CardBookStep(book)
    receive(step, charged())
    receive(step, card_refunded(200))
    capture, refund = booked(book)
    day = day_at(0).date()
    return replace(capture, day=day), replace(refund, day=day)


def test_a_report_that_settles_the_book_matches_every_line_once_and_is_kept(book):
    capture, refund = settled_book(book)
    day = capture.day
    drop_report(day, [capture, refund])
    first = matcher(book).match(day, day_at(1))
    assert (first.data.lines, first.data.matched, first.data.discrepancy_count) == (2, 2, 0)
    (usd,) = first.data.reported
    assert usd.net == capture.amount_minor - refund.amount_minor - capture.fee_minor
    assert all(entry.matched_day == day for entry in book.lines_of(capture.payment_id))
    assert matcher(book).match(day, day_at(2)) == first  # matched once: the kept result again
    # The same lines on a later report are not the booked ones again.
    drop_report(day + timedelta(days=1), [capture])
    later = matcher(book).match(day + timedelta(days=1), day_at(2))
    assert [d.kind for d in later.data.discrepancies] == [DiscrepancyKind.NOT_BOOKED.value]


@pytest.mark.parametrize(
    "tamper, kind",
    [
        (lambda capture, refund: [capture, refund, replace(capture, payment_id="other")], "not_booked"),
        (lambda capture, refund: [replace(capture, fee_minor=capture.fee_minor + 1), refund], "fee"),
        (
            lambda capture, refund: [replace(capture, amount_minor=capture.amount_minor - 1), refund],
            "not_booked",
        ),
    ],
)
def test_a_report_line_the_book_does_not_hold_is_a_discrepancy(book, tamper, kind):
    capture, refund = settled_book(book)
    drop_report(capture.day, tamper(capture, refund))
    found = matcher(book).match(capture.day, day_at(1))
    assert kind in [d.kind for d in found.data.discrepancies]
    assert found.data.discrepancy_count == len(found.data.discrepancies) >= 1


def test_a_booked_line_on_no_report_of_its_day_or_the_grace_days_is_not_reported(book):
    capture, refund = settled_book(book)
    runs = []
    for n in range(4):  # the capture never comes; the refund does, on its day
        day = capture.day + timedelta(days=n)
        drop_report(day, [refund] if n == 0 else [])
        runs.append(matcher(book).match(day, day_at(n + 1)))
    assert [run.data.discrepancy_count for run in runs] == [0, 0, 1, 0]  # reported once
    (missing,) = runs[2].data.discrepancies
    assert (missing.kind, missing.line_kind, missing.booked_minor) == (
        "not_reported",
        "capture",
        capture.amount_minor,
    )
    # A report that brings it late still accounts for it.
    late = capture.day + timedelta(days=4)
    drop_report(late, [capture])
    assert matcher(book).match(late, day_at(5)).data.matched == 1


def test_a_missing_or_malformed_report_is_reported_and_matched_once_it_comes(book):
    capture, refund = settled_book(book)
    day = capture.day
    checker = matcher(book)
    missing = checker.match(day, day_at(1))
    assert (missing.data.report_error, missing.data.discrepancy_count) == ("missing", 1)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=report_key(day), Body=b"not,a,report\n")
    assert checker.match(day, day_at(1)).data.report_error.startswith("malformed")
    drop_report(day, [capture, refund])
    drop_report(day + timedelta(days=1), [])
    checker.match_through(day + timedelta(days=1), day_at(2))  # catches the late report up
    caught_up = [e for e in checker.events.events if e.data.day == day and e.data.report_error is None]  # type: ignore[attr-defined]
    assert [(e.data.matched, e.data.discrepancy_count) for e in caught_up] == [(2, 0)]
    assert caught_up[0].event_id != missing.event_id  # the missing report's result is not the day's


def test_matching_pairs_equal_lines_one_to_one_oldest_first():
    day = date(2026, 12, 1)
    line = SettlementLine(day, LineKind.REFUND, "auth", "p1", "USD", 100, 0)
    two = [BookedLine("a", line), BookedLine("b", replace(line, day=day - timedelta(days=1)))]
    once = match_report(day, [line], two)
    assert [entry.line_id for entry in once.matched] == ["b"] and once.discrepancies == ()
    twice = match_report(day, [line, line, line], two)
    assert [d.kind for d in twice.discrepancies] == [DiscrepancyKind.NOT_BOOKED]
    matched_before = [BookedLine("a", line, matched_day=day - timedelta(days=1))]
    assert [d.kind for d in match_report(day, [line], matched_before).discrepancies] == [
        DiscrepancyKind.NOT_BOOKED
    ]


def test_the_contracted_fees_are_the_stacks_parameters(monkeypatch):
    assert contracted_fees() == FeeSchedule()  # unset: the simulated acquirer's own schedule
    for name, value in (
        ("CARD_FEE_RATE_BPS", "150"),
        ("CARD_FEE_FIXED_MINOR", "0"),
        ("CHARGEBACK_FEE_MINOR", "2500"),
    ):
        monkeypatch.setenv(name, value)
    fees = contracted_fees()
    assert (fees.fee(10_000), fees.chargeback_minor) == (150, 2_500)
