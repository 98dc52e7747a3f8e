"""Federal Reserve banking calendar and ACH submission windows.

Pure functions: the current time is always passed in, never read.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")

# FedACH same-day submission deadlines, Eastern time.
SAME_DAY_DEADLINES: tuple[time, ...] = (time(10, 30), time(14, 45), time(16, 45))
# FedACH final deadline for next-day (standard) settlement, on the settlement day itself.
STANDARD_DEADLINE = time(2, 15)


def submission_cutoffs(lead: timedelta, deadlines: Sequence[time] = SAME_DAY_DEADLINES) -> tuple[time, ...]:
    """The times to cut same-day files: each Fed deadline less the lead the ODFI needs."""
    if lead < timedelta(0) or lead >= timedelta(hours=2):
        raise ValueError("submission lead must be between 0 and 2 hours")
    return tuple((datetime.combine(date(2000, 1, 3), deadline) - lead).time() for deadline in deadlines)


# Per-entry limit for Same Day ACH: $1,000,000.00.
SAME_DAY_LIMIT_CENTS = 100_000_000

JUNETEENTH_FIRST_YEAR = 2022

WindowKind = Literal["same_day", "standard"]


@dataclass(frozen=True)
class AchWindow:
    kind: WindowKind
    cutoff: datetime  # tz-aware (America/New_York): when the cut files for it (deadline less the lead)
    effective_date: date
    deadline: datetime  # the Fed's deadline for the window; after it the window is missed


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based) given weekday of a month; n = -1 for the last one."""
    if n > 0:
        first = date(year, month, 1)
        offset = (weekday - first.weekday()) % 7
        return first + timedelta(days=offset + 7 * (n - 1))
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _holiday_dates(year: int) -> list[tuple[date, str]]:
    holidays = [
        (date(year, 1, 1), "New Year's Day"),
        (_nth_weekday(year, 1, calendar.MONDAY, 3), "Birthday of Martin Luther King, Jr."),
        (_nth_weekday(year, 2, calendar.MONDAY, 3), "Washington's Birthday"),
        (_nth_weekday(year, 5, calendar.MONDAY, -1), "Memorial Day"),
        (date(year, 7, 4), "Independence Day"),
        (_nth_weekday(year, 9, calendar.MONDAY, 1), "Labor Day"),
        (_nth_weekday(year, 10, calendar.MONDAY, 2), "Columbus Day"),
        (date(year, 11, 11), "Veterans Day"),
        (_nth_weekday(year, 11, calendar.THURSDAY, 4), "Thanksgiving Day"),
        (date(year, 12, 25), "Christmas Day"),
    ]
    if year >= JUNETEENTH_FIRST_YEAR:
        holidays.append((date(year, 6, 19), "Juneteenth National Independence Day"))
    return holidays


@lru_cache(maxsize=256)
def _closures(year: int) -> tuple[tuple[date, str], ...]:
    closures: list[tuple[date, str]] = []
    for day, name in _holiday_dates(year):
        if day.weekday() == calendar.SUNDAY:
            # Sunday holidays close the Fed on the following Monday.
            closures.append((day + timedelta(days=1), f"{name} (observed)"))
        else:
            # Saturday holidays are not moved: the Friday before stays open.
            closures.append((day, name))
    return tuple(sorted(closures))


def fed_holidays(year: int) -> dict[date, str]:
    """Dates in `year` on which the Fed is closed for a holiday, with the holiday's name.

    A holiday on Sunday appears on the observed Monday; one on Saturday keeps its
    Saturday date (no weekday closure).
    """
    return dict(_closures(year))


def is_banking_day(day: date) -> bool:
    return day.weekday() < calendar.SATURDAY and all(day != closed for closed, _ in _closures(day.year))


def next_banking_day(day: date) -> date:
    """The first banking day strictly after `day`."""
    candidate = day + timedelta(days=1)
    while not is_banking_day(candidate):
        candidate += timedelta(days=1)
    return candidate


def banking_days_after(day: date, count: int) -> date:
    """The ``count``-th banking day after ``day``."""
    for _ in range(count):
        day = next_banking_day(day)
    return day


def settlement_day(effective_date: date) -> date:
    """The day an entry settles: its effective date, or the next banking day when that is not one."""
    return effective_date if is_banking_day(effective_date) else next_banking_day(effective_date)


def next_window(
    now: datetime,
    *,
    amount_cents: int,
    same_day_deadlines: Sequence[time] = SAME_DAY_DEADLINES,
    lead: timedelta = timedelta(0),
) -> AchWindow:
    """The ACH window an entry released at `now` goes into.

    Same-day when `now` (Eastern) is on a banking day strictly before one of the
    deadlines less the ODFI's `lead` (the cut's cutoff) and the amount is within the
    Same Day ACH limit; standard otherwise, with the next banking day as effective date.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if amount_cents <= 0:
        raise ValueError(f"amount_cents must be positive, got {amount_cents}")
    local = now.astimezone(EASTERN)
    today = local.date()
    if is_banking_day(today) and amount_cents <= SAME_DAY_LIMIT_CENTS:
        for fed_deadline in sorted(same_day_deadlines):
            deadline = datetime.combine(today, fed_deadline, tzinfo=EASTERN)
            if local < deadline - lead:
                return AchWindow("same_day", deadline - lead, today, deadline)
    effective = next_banking_day(today)
    deadline = datetime.combine(effective, STANDARD_DEADLINE, tzinfo=EASTERN)
    return AchWindow("standard", deadline - lead, effective, deadline)


def settlement_problem(created_at: datetime, effective_date: date, *, same_day: bool) -> str | None:
    """Why the Fed would not settle a file created at ``created_at`` on ``effective_date`` (None: it
    would). A same-day file must be created on a banking day before its last same-day deadline and
    be dated that day; a standard one is dated a banking day after its creation date (or that day,
    created before the 02:15 deadline)."""
    local = created_at.astimezone(EASTERN)
    if not is_banking_day(effective_date):
        return f"effective date {effective_date} is not a banking day"
    if same_day:
        if effective_date != local.date():
            return f"a same-day file created on {local.date()} is dated {effective_date}"
        last = max(SAME_DAY_DEADLINES)
        if local.time() >= last:
            return f"a same-day file created at {local:%H:%M} ET, after the last deadline {last:%H:%M}"
        return None
    if effective_date < local.date() or (
        effective_date == local.date() and local.time() >= STANDARD_DEADLINE
    ):
        return f"a standard file created at {local:%Y-%m-%d %H:%M} ET cannot settle on {effective_date}"
    return None
