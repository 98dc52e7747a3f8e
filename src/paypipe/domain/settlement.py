"""The acquirer's daily settlement report, and its match against what the pipeline booked.

The report is a CSV file (columns: ``COLUMNS``), one line per capture, refund, chargeback or
chargeback reversal and a total line per currency. A refund's and a chargeback's gross are
negative, a capture's and a reversal's positive, and net = gross - fee (a chargeback's fee is the
network's dispute fee); the totals' net is captured - refunded - charged back + reversed - fees,
the amount the acquirer pays out for the day. `parse_report` refuses a report whose lines do not
add up to its totals; `compare` lists every way a day's booking and report disagree,
`match_report` every reported line the pipeline's booked lines do not account for and the other
way round.

Pure: no I/O.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Set
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

COLUMNS: Final = (
    "settlement_date",
    "type",
    "reference",
    "payment_id",
    "currency",
    "gross_minor",
    "fee_minor",
    "net_minor",
)
TOTAL: Final = "total"
REPORT_PREFIX: Final = "acquirer/settlement/"  # where the acquirer drops its reports (one per day)


def report_key(day: date) -> str:
    return f"{REPORT_PREFIX}{day:%Y/%m/%d}.csv"


def report_day(key: str) -> date:
    """The day of the report at ``key`` (ValueError for any other key)."""
    return datetime.strptime(key.removeprefix(REPORT_PREFIX), "%Y/%m/%d.csv").date()


@dataclass(frozen=True)
class FeeSchedule:
    """The acquirer contract's fee on each capture: ``rate_bps`` basis points of it plus ``fixed_minor``."""

    rate_bps: int = 290
    fixed_minor: int = 30
    chargeback_minor: int = 1_500  # the network's fee on each chargeback

    def fee(self, captured_minor: int) -> int:
        return (captured_minor * self.rate_bps + 5_000) // 10_000 + self.fixed_minor


class LineKind(StrEnum):
    CAPTURE = "capture"
    REFUND = "refund"
    CHARGEBACK = "chargeback"  # the network took a captured payment back for the cardholder
    CHARGEBACK_REVERSAL = "chargeback_reversal"  # the platform won the chargeback: given back


CREDITS: Final = frozenset({LineKind.CAPTURE, LineKind.CHARGEBACK_REVERSAL})  # money to the platform


class SettlementReportError(ValueError):
    """The report is malformed or does not add up."""


@dataclass(frozen=True)
class SettlementLine:
    day: date
    kind: LineKind
    reference: str
    payment_id: str
    currency: str
    amount_minor: int  # captured, refunded or charged back, as a positive amount
    fee_minor: int

    @property
    def gross_minor(self) -> int:
        return self.amount_minor if self.kind in CREDITS else -self.amount_minor


@dataclass(frozen=True)
class SettlementTotals:
    captured: int = 0
    refunded: int = 0
    fees: int = 0
    charged_back: int = 0
    chargebacks_reversed: int = 0

    @property
    def gross(self) -> int:
        return self.captured - self.refunded - self.charged_back + self.chargebacks_reversed

    @property
    def net(self) -> int:
        return self.gross - self.fees

    def add(self, line: SettlementLine) -> SettlementTotals:
        field = _TOTAL_OF[line.kind]
        return replace(
            self, **{field: getattr(self, field) + line.amount_minor}, fees=self.fees + line.fee_minor
        )


_TOTAL_OF: Final = {
    LineKind.CAPTURE: "captured",
    LineKind.REFUND: "refunded",
    LineKind.CHARGEBACK: "charged_back",
    LineKind.CHARGEBACK_REVERSAL: "chargebacks_reversed",
}


def settlement_totals(lines: Iterable[SettlementLine]) -> dict[str, SettlementTotals]:
    """Captured, refunded, fees and net per currency."""
    totals: dict[str, SettlementTotals] = {}
    for line in lines:
        totals[line.currency] = totals.get(line.currency, SettlementTotals()).add(line)
    return totals


@dataclass(frozen=True)
class SettlementReport:
    day: date
    lines: tuple[SettlementLine, ...]
    totals: Mapping[str, SettlementTotals]


def render_report(day: date, lines: Iterable[SettlementLine]) -> str:
    """The day's report file (its lines must all be of ``day``)."""
    rows = list(lines)
    if any(line.day != day for line in rows):
        raise ValueError(f"a line of another day in the report of {day}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for line in rows:
        gross = line.gross_minor
        writer.writerow(
            (
                day,
                line.kind,
                line.reference,
                line.payment_id,
                line.currency,
                gross,
                line.fee_minor,
                gross - line.fee_minor,
            )
        )
    for currency, totals in sorted(settlement_totals(rows).items()):
        writer.writerow((day, TOTAL, "", "", currency, totals.gross, totals.fees, totals.net))
    return out.getvalue()


def parse_report(text: str, day: date) -> SettlementReport:
    """The report of ``day`` in ``text`` (a day with no activity has the header alone);
    SettlementReportError if a row is malformed, of another day, or the lines and the total rows
    disagree."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise SettlementReportError("not a settlement report: the header is missing or wrong")
    lines: list[SettlementLine] = []
    stated: dict[str, tuple[int, int, int]] = {}
    for number, row in enumerate(rows[1:], start=2):
        row_day, kind, figures = _row(number, row)
        if row_day != day:
            raise SettlementReportError(f"row {number}: a line of {row_day} in the report of {day}")
        if kind == TOTAL:
            stated[row[4]] = figures
        else:
            lines.append(_line(number, day, LineKind(kind), row, figures))
    totals = settlement_totals(lines)
    _check_totals(totals, stated)
    return SettlementReport(day, tuple(lines), totals)


def _row(number: int, row: list[str]) -> tuple[date, str, tuple[int, int, int]]:
    if len(row) != len(COLUMNS):
        raise SettlementReportError(f"row {number}: {len(row)} columns, expected {len(COLUMNS)}")
    if row[1] not in {*LineKind, TOTAL}:
        raise SettlementReportError(f"row {number}: unknown type {row[1]!r}")
    try:
        day = date.fromisoformat(row[0])
        gross, fee, net = (int(value) for value in row[5:8])
    except ValueError as error:
        raise SettlementReportError(f"row {number}: {error}") from None
    if net != gross - fee:
        raise SettlementReportError(f"row {number}: net {net} is not gross {gross} - fee {fee}")
    return day, row[1], (gross, fee, net)


def _line(
    number: int, day: date, kind: LineKind, row: list[str], figures: tuple[int, int, int]
) -> SettlementLine:
    gross, fee, _ = figures
    if (gross <= 0) if kind in CREDITS else (gross >= 0):
        raise SettlementReportError(f"row {number}: a {kind} with gross {gross}")
    return SettlementLine(day, kind, row[2], row[3], row[4], abs(gross), fee)


def _check_totals(totals: Mapping[str, SettlementTotals], stated: Mapping[str, tuple[int, int, int]]) -> None:
    for currency in sorted(set(totals) | set(stated)):
        summed = totals.get(currency, SettlementTotals())
        expected = (summed.gross, summed.fees, summed.net)
        if stated.get(currency) != expected:
            raise SettlementReportError(
                f"{currency}: total row {stated.get(currency)} but lines add up to {expected}"
            )


class MismatchKind(StrEnum):
    CAPTURED = "captured"
    REFUNDED = "refunded"
    CHARGED_BACK = "charged_back"
    CHARGEBACKS_REVERSED = "chargebacks_reversed"
    FEES = "fees"
    NET = "net"


@dataclass(frozen=True)
class SettlementMismatch:
    day: date
    currency: str
    kind: MismatchKind
    booked_minor: int
    reported_minor: int

    def __str__(self) -> str:
        figures = f"booked {self.booked_minor}, reported {self.reported_minor}"
        return f"{self.day} {self.currency} {self.kind}: {figures}"


def compare(
    day: date, booked: Mapping[str, SettlementTotals], reported: Mapping[str, SettlementTotals]
) -> list[SettlementMismatch]:
    """Every figure of the day where the ledger's booking and the acquirer's report differ."""
    mismatches = []
    for currency in sorted(set(booked) | set(reported)):
        ours, theirs = booked.get(currency, SettlementTotals()), reported.get(currency, SettlementTotals())
        for kind in MismatchKind:
            mine, other = getattr(ours, kind.value), getattr(theirs, kind.value)
            if mine != other:
                mismatches.append(SettlementMismatch(day, currency, kind, mine, other))
    return mismatches


# -- the pipeline's booked card lines matched line by line against the acquirer's reports ---------

BOOKED_GRACE_DAYS: Final = (
    2  # a booked line on none of the reports of its day and these days after: NOT_REPORTED
)


class DiscrepancyKind(StrEnum):
    NOT_BOOKED = "not_booked"  # on the acquirer's report, but the pipeline booked no such line
    NOT_REPORTED = "not_reported"  # booked, but on no report within BOOKED_GRACE_DAYS
    FEE = "fee"  # matched, but the reported fee is not the contracted one


@dataclass(frozen=True)
class BookedLine:
    """A card line the pipeline booked (its own id) and, once matched, the report's day."""

    line_id: str
    line: SettlementLine
    matched_day: date | None = None


@dataclass(frozen=True)
class Discrepancy:
    kind: DiscrepancyKind
    line: SettlementLine  # the reported line (NOT_BOOKED, FEE) or the booked one (NOT_REPORTED)
    booked_minor: int | None  # the booked amount, or the contracted fee for FEE
    reported_minor: int | None
    booked: BookedLine | None = None  # the booked line NOT_REPORTED


@dataclass(frozen=True)
class DayMatch:
    matched: tuple[BookedLine, ...]  # the booked lines the report accounts for
    discrepancies: tuple[Discrepancy, ...]


def _match_key(line: SettlementLine) -> tuple[str, LineKind, str, str, int]:
    return (line.payment_id, line.kind, line.reference, line.currency, line.amount_minor)


def match_report(
    day: date,
    reported: Iterable[SettlementLine],
    booked: Iterable[BookedLine],
    *,
    stale: Iterable[BookedLine] = (),
    matched_days: Set[date] = frozenset(),
) -> DayMatch:
    """Each line of ``day``'s report against a booked line not yet matched on another day (same
    payment, kind, reference, currency and amount; oldest first), and the ``stale`` booked lines
    (not matched before) that no report accounted for: neither this one nor those of their own
    day and the ``BOOKED_GRACE_DAYS`` after it, all of them matched (``matched_days``). A stale
    line is reported once: by the match that completes its days."""
    free: dict[tuple[str, LineKind, str, str, int], list[BookedLine]] = {}
    for entry in sorted(booked, key=lambda entry: (entry.line.day, entry.line_id)):
        if entry.matched_day in (None, day):
            free.setdefault(_match_key(entry.line), []).append(entry)
    matched: list[BookedLine] = []
    found: list[Discrepancy] = []
    for line in reported:
        candidates = free.get(_match_key(line))
        if not candidates:
            found.append(Discrepancy(DiscrepancyKind.NOT_BOOKED, line, None, line.amount_minor))
            continue
        entry = candidates.pop(0)
        matched.append(entry)
        if entry.line.fee_minor != line.fee_minor:
            found.append(Discrepancy(DiscrepancyKind.FEE, line, entry.line.fee_minor, line.fee_minor))
    taken = {entry.line_id for entry in matched}
    for entry in sorted(stale, key=lambda entry: (entry.line.day, entry.line_id)):
        window = grace_days(entry.line.day)
        if entry.line_id not in taken and day in window and window <= {*matched_days, day}:
            found.append(
                Discrepancy(DiscrepancyKind.NOT_REPORTED, entry.line, entry.line.amount_minor, None, entry)
            )
    return DayMatch(tuple(matched), tuple(found))


def grace_days(booked: date) -> set[date]:
    """The reports that may account for a line booked on ``booked``: its day's and the grace days'."""
    return {booked + timedelta(days=n) for n in range(BOOKED_GRACE_DAYS + 1)}


def line_record(line: SettlementLine) -> dict[str, object]:
    """A line as stored (JSON): the acquirer's lines and the pipeline's booked ones alike."""
    return {**asdict(line), "day": line.day.isoformat(), "kind": line.kind.value}


def line_from_record(record: Mapping[str, Any]) -> SettlementLine:
    return SettlementLine(
        **{**record, "day": date.fromisoformat(record["day"]), "kind": LineKind(record["kind"])}
    )
