"""The settlement report: written and read back, refused when it does not add up, and matched
against the ledger's booking figure by figure."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypipe.domain.settlement import (
    LineKind,
    MismatchKind,
    SettlementLine,
    SettlementReportError,
    SettlementTotals,
    compare,
    parse_report,
    render_report,
    settlement_totals,
)

DAY = date(2026, 12, 1)

lines_strategy = st.lists(
    st.builds(
        SettlementLine,
        day=st.just(DAY),
        kind=st.sampled_from(LineKind),
        reference=st.from_regex(r"[a-z_0-9]{1,20}", fullmatch=True),
        payment_id=st.from_regex(r"p-[0-9]{1,6}", fullmatch=True),
        currency=st.sampled_from(["USD", "EUR", "JPY"]),
        amount_minor=st.integers(1, 10**9),
        fee_minor=st.integers(0, 10**6),
    ),
    max_size=30,
)


@given(lines_strategy)
def test_a_rendered_report_reads_back_to_the_same_lines_and_totals(lines: list[SettlementLine]) -> None:
    report = parse_report(render_report(DAY, lines), DAY)
    assert list(report.lines) == lines
    assert report.totals == settlement_totals(lines)
    for totals in report.totals.values():
        paid = totals.captured - totals.refunded - totals.charged_back + totals.chargebacks_reversed
        assert totals.net == paid - totals.fees


def sample() -> str:
    return render_report(
        DAY,
        [
            SettlementLine(DAY, LineKind.CAPTURE, "a1", "p-1", "USD", 10_000, 320),
            SettlementLine(DAY, LineKind.REFUND, "r1", "p-1", "USD", 2_500, 0),
        ],
    )


def test_the_report_states_gross_fee_and_net_per_line_and_per_currency() -> None:
    assert sample().splitlines()[1:] == [
        "2026-12-01,capture,a1,p-1,USD,10000,320,9680",
        "2026-12-01,refund,r1,p-1,USD,-2500,0,-2500",
        "2026-12-01,total,,,USD,7500,320,7180",
    ]


@pytest.mark.parametrize(
    ("before", "after", "says"),
    [
        (",7500,320,7180", ",7600,320,7280", "lines add up to"),  # a total that is not the lines' sum
        (",9680\n", ",9681\n", "net 9681 is not gross"),  # a line whose net is wrong
        ("capture,a1", "payout,a1", "unknown type"),
        ("capture,a1", "chargeback,a1", "a chargeback with gross 10000"),
        (",10000,320,9680", ",-10000,320,-10320", "a capture with gross"),
        ("2026-12-01,refund", "2026-12-02,refund", "a line of 2026-12-02 in the report of 2026-12-01"),
        ("settlement_date", "date", "header"),
        (",p-1,USD,-2500", ",p-1,USD,x", "row 3"),
    ],
)
def test_a_report_that_does_not_add_up_is_refused(before: str, after: str, says: str) -> None:
    text = sample()
    assert before in text
    with pytest.raises(SettlementReportError, match=says):
        parse_report(text.replace(before, after, 1), DAY)


def test_a_line_of_another_day_is_not_written_into_the_report() -> None:
    with pytest.raises(ValueError, match="another day"):
        render_report(date(2026, 12, 2), [SettlementLine(DAY, LineKind.CAPTURE, "a", "p", "USD", 1, 0)])


def test_compare_names_each_figure_that_differs() -> None:
    booked = {"USD": SettlementTotals(captured=10_000, refunded=2_500, fees=320)}
    assert compare(DAY, booked, booked) == []
    reported = {
        "USD": SettlementTotals(captured=10_000, refunded=2_000, fees=320),
        "EUR": SettlementTotals(500, 0, 45),
    }
    found = {(m.currency, m.kind): (m.booked_minor, m.reported_minor) for m in compare(DAY, booked, reported)}
    assert found == {
        ("USD", MismatchKind.REFUNDED): (2_500, 2_000),
        ("USD", MismatchKind.NET): (7_180, 7_680),
        ("EUR", MismatchKind.CAPTURED): (0, 500),
        ("EUR", MismatchKind.FEES): (0, 45),
        ("EUR", MismatchKind.NET): (0, 455),
    }
