"""The acquirer's daily settlement report, and its match against what the ledger booked.

The report is a CSV file, one line per capture, refund or chargeback and a total line per
currency: ``settlement_date,type,reference,payment_id,currency,gross_minor,fee_minor,net_minor``,
where a refund's and a chargeback's gross are negative and net = gross - fee (a chargeback's fee
is the network's dispute fee); the totals' net is captured - refunded - charged back - fees, the
amount the acquirer pays out for the day. `parse_report` refuses a report whose lines do not
add up to its totals; `compare` lists every way a day's booking and report disagree.

Pure: no I/O.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Final

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


class LineKind(StrEnum):
    CAPTURE = "capture"
    REFUND = "refund"
    CHARGEBACK = "chargeback"  # the network took a captured payment back for the cardholder


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
        return self.amount_minor if self.kind is LineKind.CAPTURE else -self.amount_minor


@dataclass(frozen=True)
class SettlementTotals:
    captured: int = 0
    refunded: int = 0
    fees: int = 0
    charged_back: int = 0

    @property
    def gross(self) -> int:
        return self.captured - self.refunded - self.charged_back

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
    if (gross <= 0) if kind is LineKind.CAPTURE else (gross >= 0):
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
