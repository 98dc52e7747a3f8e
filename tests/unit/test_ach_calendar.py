from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypipe.domain.ach_calendar import (
    EASTERN,
    SAME_DAY_LIMIT_CENTS,
    AchWindow,
    fed_holidays,
    is_banking_day,
    next_banking_day,
    next_window,
    settlement_problem,
)

# Federal Reserve published holiday schedules (closure dates).
FED_CLOSURES = {
    2025: [
        "2025-01-01", "2025-01-20", "2025-02-17", "2025-05-26", "2025-06-19", "2025-07-04",
        "2025-09-01", "2025-10-13", "2025-11-11", "2025-11-27", "2025-12-25",
    ],
    2026: [
        "2026-01-01", "2026-01-19", "2026-02-16", "2026-05-25", "2026-06-19", "2026-07-04",
        "2026-09-07", "2026-10-12", "2026-11-11", "2026-11-26", "2026-12-25",
    ],
    2027: [
        "2027-01-01", "2027-01-18", "2027-02-15", "2027-05-31", "2027-06-19", "2027-07-05",
        "2027-09-06", "2027-10-11", "2027-11-11", "2027-11-25", "2027-12-25",
    ],
}  # fmt: skip


@pytest.mark.parametrize("year", sorted(FED_CLOSURES))
def test_fed_holidays_match_published_schedule(year: int) -> None:
    assert sorted(fed_holidays(year)) == [date.fromisoformat(d) for d in FED_CLOSURES[year]]


def test_sunday_holiday_closes_following_monday() -> None:
    # Juneteenth 2022 fell on a Sunday.
    assert fed_holidays(2022)[date(2022, 6, 20)] == "Juneteenth National Independence Day (observed)"
    assert not is_banking_day(date(2022, 6, 20))
    assert is_banking_day(date(2022, 6, 21))


def test_saturday_holiday_keeps_friday_open() -> None:
    assert date(2027, 12, 25).weekday() == 5
    assert is_banking_day(date(2027, 12, 24))
    assert fed_holidays(2027)[date(2027, 12, 25)] == "Christmas Day"
    # New Year's Day 2022 was a Saturday: Friday 2021-12-31 stayed open.
    assert is_banking_day(date(2021, 12, 31))


def test_juneteenth_only_from_2022() -> None:
    assert date(2021, 6, 18) not in fed_holidays(2021)
    assert date(2021, 6, 19) not in fed_holidays(2021)
    assert is_banking_day(date(2021, 6, 18))
    assert date(2023, 6, 19) in fed_holidays(2023)


def test_each_year_has_eleven_holidays_from_2022() -> None:
    for year in range(2022, 2101):
        assert len(fed_holidays(year)) == 11
    assert len(fed_holidays(2021)) == 10


def test_next_banking_day_skips_weekends_and_holidays() -> None:
    assert next_banking_day(date(2025, 11, 26)) == date(2025, 11, 28)  # over Thanksgiving
    assert next_banking_day(date(2025, 12, 24)) == date(2025, 12, 26)
    assert next_banking_day(date(2026, 1, 16)) == date(2026, 1, 20)  # Fri -> Tue after MLK
    assert next_banking_day(date(2027, 7, 2)) == date(2027, 7, 6)  # observed July 4th Monday
    assert next_banking_day(date(2025, 12, 31)) == date(2026, 1, 2)


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 12, 31)))
def test_next_banking_day_is_first_banking_day_after(day: date) -> None:
    following = next_banking_day(day)
    assert following > day
    assert is_banking_day(following)
    assert following.weekday() < 5
    gap = day + timedelta(days=1)
    while gap < following:
        assert not is_banking_day(gap)
        gap += timedelta(days=1)


def et(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=EASTERN)


def test_same_day_window_boundaries() -> None:
    tuesday = date(2025, 6, 10)
    window = next_window(et(2025, 6, 10, 10, 29), amount_cents=100)
    assert window == AchWindow("same_day", et(2025, 6, 10, 10, 30), tuesday, et(2025, 6, 10, 10, 30))
    assert next_window(et(2025, 6, 10, 10, 30), amount_cents=100).cutoff == et(2025, 6, 10, 14, 45)
    assert next_window(et(2025, 6, 10, 10, 31), amount_cents=100).cutoff == et(2025, 6, 10, 14, 45)
    assert next_window(et(2025, 6, 10, 16, 44, 59), amount_cents=100).cutoff == et(2025, 6, 10, 16, 45)
    late = next_window(et(2025, 6, 10, 16, 45), amount_cents=100)
    assert late == AchWindow("standard", et(2025, 6, 11, 2, 15), date(2025, 6, 11), et(2025, 6, 11, 2, 15))


def test_same_day_amount_limit() -> None:
    now = et(2025, 6, 10, 9, 0)
    assert next_window(now, amount_cents=SAME_DAY_LIMIT_CENTS).kind == "same_day"
    over = next_window(now, amount_cents=SAME_DAY_LIMIT_CENTS + 1)
    assert over.kind == "standard"
    assert over.effective_date == date(2025, 6, 11)


def test_window_uses_eastern_time_across_dst() -> None:
    # 2025-03-10 (Monday after DST start): 10:30 EDT is 14:30 UTC.
    assert next_window(datetime(2025, 3, 10, 14, 29, tzinfo=UTC), amount_cents=1).cutoff == et(
        2025, 3, 10, 10, 30
    )
    assert next_window(datetime(2025, 3, 10, 14, 31, tzinfo=UTC), amount_cents=1).cutoff == et(
        2025, 3, 10, 14, 45
    )
    # Friday before DST start: 10:30 EST is 15:30 UTC.
    assert next_window(datetime(2025, 3, 7, 15, 29, tzinfo=UTC), amount_cents=1).cutoff == et(
        2025, 3, 7, 10, 30
    )
    cutoff = next_window(datetime(2025, 11, 3, 15, 29, tzinfo=UTC), amount_cents=1).cutoff
    assert cutoff.astimezone(UTC) == datetime(2025, 11, 3, 15, 30, tzinfo=UTC)  # EST after DST ends
    summer = next_window(datetime(2025, 7, 1, 15, 29, tzinfo=UTC), amount_cents=1).cutoff
    assert summer.astimezone(UTC) == datetime(2025, 7, 1, 18, 45, tzinfo=UTC)  # 11:29 EDT -> 14:45


def test_utc_evening_is_previous_eastern_day() -> None:
    # 2025-06-11 01:00 UTC is 2025-06-10 21:00 EDT: after the last deadline on Tuesday.
    window = next_window(datetime(2025, 6, 11, 1, 0, tzinfo=UTC), amount_cents=1)
    assert window.kind == "standard"
    assert window.effective_date == date(2025, 6, 11)


def test_non_banking_days_roll_forward() -> None:
    saturday = next_window(et(2025, 6, 14, 9, 0), amount_cents=1)
    assert saturday == AchWindow(
        "standard", et(2025, 6, 16, 2, 15), date(2025, 6, 16), et(2025, 6, 16, 2, 15)
    )
    thanksgiving = next_window(et(2025, 11, 27, 9, 0), amount_cents=1)
    assert thanksgiving.effective_date == date(2025, 11, 28)
    # Friday after the last deadline before a Monday holiday (MLK Day 2026).
    friday_late = next_window(et(2026, 1, 16, 17, 0), amount_cents=1)
    assert friday_late.effective_date == date(2026, 1, 20)
    assert friday_late.cutoff == et(2026, 1, 20, 2, 15)


def test_custom_deadlines() -> None:
    window = next_window(et(2025, 6, 10, 9, 30), amount_cents=1, same_day_deadlines=(time(9, 15),))
    assert window.kind == "standard"


def test_next_window_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_window(datetime(2025, 6, 10, 9, 0), amount_cents=1)
    with pytest.raises(ValueError, match="positive"):
        next_window(et(2025, 6, 10, 9, 0), amount_cents=0)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.integers(min_value=1, max_value=10**10),
)
def test_window_invariants(now: datetime, amount: int) -> None:
    window = next_window(now, amount_cents=amount)
    assert window.cutoff > now
    assert is_banking_day(window.effective_date)
    assert window.effective_date >= now.astimezone(EASTERN).date()
    if window.kind == "same_day":
        assert amount <= SAME_DAY_LIMIT_CENTS
        assert window.effective_date == now.astimezone(EASTERN).date()
        assert window.cutoff.astimezone(EASTERN).date() == window.effective_date
    else:
        assert window.effective_date > now.astimezone(EASTERN).date()


def test_submission_cutoffs_lead_the_fed_deadlines():
    from datetime import time, timedelta

    from paypipe.domain.ach_calendar import submission_cutoffs

    assert submission_cutoffs(timedelta(minutes=15)) == (time(10, 15), time(14, 30), time(16, 30))
    assert submission_cutoffs(timedelta(0)) == (time(10, 30), time(14, 45), time(16, 45))
    with pytest.raises(ValueError, match="between 0 and 2 hours"):
        submission_cutoffs(timedelta(hours=3))


def test_with_a_lead_the_cutoff_precedes_the_fed_deadline() -> None:
    window = next_window(et(2025, 6, 10, 10, 0), amount_cents=1, lead=timedelta(minutes=15))
    assert (window.cutoff, window.deadline) == (et(2025, 6, 10, 10, 15), et(2025, 6, 10, 10, 30))
    after_cutoff = next_window(et(2025, 6, 10, 10, 20), amount_cents=1, lead=timedelta(minutes=15))
    assert after_cutoff.deadline == et(2025, 6, 10, 14, 45)


@pytest.mark.parametrize(
    "created, effective, same_day, ok",
    [
        (et(2025, 6, 10, 16, 44), date(2025, 6, 10), True, True),
        (et(2025, 6, 10, 16, 45), date(2025, 6, 10), True, False),  # after the last deadline
        (et(2025, 6, 10, 9, 0), date(2025, 6, 11), True, False),  # same-day dated another day
        (et(2025, 6, 14, 9, 0), date(2025, 6, 14), True, False),  # a Saturday
        (et(2025, 6, 10, 17, 0), date(2025, 6, 11), False, True),
        (et(2025, 6, 11, 1, 0), date(2025, 6, 11), False, True),  # before the 02:15 deadline
        (et(2025, 6, 11, 3, 0), date(2025, 6, 11), False, False),
        (et(2025, 7, 3, 17, 0), date(2025, 7, 4), False, False),  # Independence Day
    ],
)
def test_settlement_problem_knows_which_dates_the_fed_settles(created, effective, same_day, ok) -> None:
    assert (settlement_problem(created, effective, same_day=same_day) is None) is ok
