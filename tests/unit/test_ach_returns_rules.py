from datetime import date

import pytest

from paypipe.domain import ach_returns as rules
from paypipe.domain.ach_calendar import settlement_day
from paypipe.domain.ach_returns import AccountCorrection, FiledEntry, Parked

# Friday 2026-11-06; the next banking days are Mon 9th, Tue 10th, Thu 12th (the 11th is Veterans Day).
FILED = FiledEntry(
    trace_number="011000010000042",
    payment_id="pay-1",
    batch_id="achb_1",
    provider_id="prov-1",
    account_fingerprint="afp_abc",
    amount_cents=12_345,
    effective_date=date(2026, 11, 6),
)


def test_a_return_in_its_window_is_booked() -> None:
    for day in (date(2026, 11, 6), date(2026, 11, 9), date(2026, 11, 10)):
        assert rules.return_problem(FILED, "R03", 12_345, day) is None


@pytest.mark.parametrize(
    ("code", "amount", "received", "reason", "answer_code"),
    [
        ("R03", 12_345, date(2026, 11, 12), "LATE_RETURN", "R68"),  # third banking day after settlement
        ("R03", 12_345, date(2026, 11, 5), "RETURN_BEFORE_SETTLEMENT", "R69"),
        ("R03", 12_344, date(2026, 11, 9), "AMOUNT_MISMATCH", "R69"),
        ("R99", 12_345, date(2026, 11, 9), "UNKNOWN_RETURN_CODE", "R69"),
        ("R68", 12_345, date(2026, 11, 9), "UNEXPECTED_DISHONOR", None),
    ],
)
def test_a_return_the_rules_do_not_let_the_pipeline_book_is_parked_with_its_answer(
    code: str, amount: int, received: date, reason: str, answer_code: str | None
) -> None:
    parked = rules.return_problem(FILED, code, amount, received)
    assert isinstance(parked, Parked)
    assert (parked.reason, parked.answer_code) == (reason, answer_code)


def test_an_entry_effective_on_a_holiday_settles_the_next_banking_day() -> None:
    holiday = FiledEntry(**{**FILED.__dict__, "effective_date": date(2026, 11, 11)})
    assert settlement_day(holiday.effective_date) == date(2026, 11, 12)
    assert rules.return_problem(holiday, "R02", 12_345, date(2026, 11, 11)) is not None
    assert rules.return_problem(holiday, "R02", 12_345, date(2026, 11, 16)) is None


def test_only_insufficient_or_uncollected_funds_are_sent_again_and_at_most_twice() -> None:
    assert [rules.next_step("R01", n) for n in range(3)] == ["resend", "resend", "await_account_update"]
    assert rules.next_step("R09", 0) == "resend"
    for code in ("R02", "R03", "R04", "R16", "R23", "R17"):
        assert rules.next_step(code, 0) == "await_account_update"
    assert rules.stops_credits("R03") and rules.stops_credits("R16")
    assert not rules.stops_credits("R01") and not rules.stops_credits("R99")


def test_a_notification_of_change_gives_the_corrected_details() -> None:
    assert rules.correction_from("C01", "987654321") == AccountCorrection("C01", account_number="987654321")
    assert rules.correction_from("C02", "021000021") == AccountCorrection("C02", routing_number="021000021")
    both = rules.correction_from("C03", "021000021   55501")
    assert both == AccountCorrection("C03", routing_number="021000021", account_number="55501")
    assert rules.correction_from("C05", "32") == AccountCorrection("C05", account_type="savings")


@pytest.mark.parametrize(
    ("code", "data", "reason", "answer_code"),
    [
        ("C02", "021000022", "REFUSED_CORRECTION", "C65"),  # check digit wrong
        ("C01", "12-34", "REFUSED_CORRECTION", "C65"),
        ("C05", "27", "REFUSED_CORRECTION", "C69"),  # a debit code: payouts are credits
        ("C04", "NEW NAME", "CHANGE_NOT_APPLIED", None),
        ("C61", "", "UNEXPECTED_CHANGE_CODE", None),
    ],
)
def test_a_notification_whose_data_cannot_be_applied_is_refused_or_parked(
    code: str, data: str, reason: str, answer_code: str | None
) -> None:
    parked = rules.correction_from(code, data)
    assert isinstance(parked, Parked)
    assert (parked.reason, parked.answer_code) == (reason, answer_code)


def test_a_notification_is_applied_within_six_banking_days() -> None:
    # Mon 9, Tue 10, (Veterans Day), Thu 12, Fri 13, Mon 16, Tue 17
    assert rules.apply_by(date(2026, 11, 6)) == date(2026, 11, 17)
