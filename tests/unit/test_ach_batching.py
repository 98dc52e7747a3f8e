import random
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paypipe.domain.ach_batching import PendingPayout, PlannedBatch, plan_files, window_at
from paypipe.domain.ach_calendar import EASTERN, settlement_problem
from paypipe.domain.nacha import Originator, PayeeType, Payout, build_file, parse, write

ORIGINATOR = Originator(
    immediate_destination="091000019",
    immediate_destination_name="WELLS FARGO",
    immediate_origin="1234567890",
    immediate_origin_name="PAYPIPE INC",
    company_name="PAYPIPE ESCROW",
    company_id="1234567890",
    odfi_routing="09100001",
    company_entry_description="PAYOUT",
)


def et(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=EASTERN)


def pending(
    payment_id: str,
    released_at: datetime,
    amount_cents: int = 10_000,
    payee_type: PayeeType = "individual",
) -> PendingPayout:
    payout = Payout(payment_id, amount_cents, "JANE DOE", "021000021", "12345", "checking", payee_type)
    return PendingPayout(payout, released_at)


def ids(batch: PlannedBatch) -> list[str]:
    return [payout.payment_id for payout in batch.payouts]


# 2025-06-10 is a Tuesday.


def test_same_day_payout_waits_for_its_cutoff() -> None:
    item = pending("p1", et(6, 10, 10, 20))
    assert plan_files([item], et(6, 10, 10, 29)) == []
    (batch,) = plan_files([item], et(6, 10, 10, 30))
    assert (batch.kind, batch.effective_date, batch.sec_code, ids(batch)) == (
        "same_day",
        date(2025, 6, 10),
        "PPD",
        ["p1"],
    )
    assert batch.same_day


def test_release_after_cutoff_goes_to_next_window() -> None:
    item = pending("p1", et(6, 10, 10, 31))
    assert plan_files([item], et(6, 10, 10, 45)) == []
    assert ids(plan_files([item], et(6, 10, 14, 45))[0]) == ["p1"]


def test_payouts_released_after_now_are_left_out() -> None:
    assert plan_files([pending("p1", et(6, 10, 10, 31))], et(6, 10, 10, 30)) == []


def test_over_limit_payout_is_standard_and_due_immediately() -> None:
    big = pending("big", et(6, 10, 9, 0), amount_cents=100_000_001)
    limit = pending("limit", et(6, 10, 9, 0), amount_cents=100_000_000)
    (batch,) = plan_files([big, limit], et(6, 10, 9, 5))
    assert (batch.kind, batch.effective_date, ids(batch)) == ("standard", date(2025, 6, 11), ["big"])


def test_after_last_deadline_is_standard_next_banking_day() -> None:
    # Friday 2025-07-03 evening before Independence Day (Fri 07-04): next banking day is Monday.
    (batch,) = plan_files([pending("p1", et(7, 3, 17, 0))], et(7, 3, 17, 15))
    assert (batch.kind, batch.effective_date) == ("standard", date(2025, 7, 7))


def test_a_same_day_window_is_missed_once_its_fed_deadline_has_passed() -> None:
    lead = timedelta(minutes=15)
    item = pending("p1", et(6, 10, 16, 20))  # the last window: cut at 16:30 for the 16:45 deadline
    (batch,) = plan_files([item], et(6, 10, 16, 40), submission_lead=lead)  # late, before 16:45
    assert (batch.kind, batch.effective_date) == ("same_day", date(2025, 6, 10))
    (batch,) = plan_files([item], et(6, 10, 16, 50), submission_lead=lead)  # after it: standard
    assert (batch.kind, batch.effective_date) == ("standard", date(2025, 6, 11))
    morning = pending("p2", et(6, 10, 9, 0))
    (batch,) = plan_files([morning], et(6, 10, 11, 0), submission_lead=lead)  # for the 14:45 window
    assert (batch.kind, batch.effective_date) == ("same_day", date(2025, 6, 10))
    (batch,) = plan_files([item], et(6, 11, 9, 0), submission_lead=lead)  # next day, dated that day
    assert (batch.kind, batch.effective_date) == ("same_day", date(2025, 6, 11))


def test_with_a_lead_the_cut_files_between_its_cutoff_and_the_fed_deadline() -> None:
    lead = timedelta(minutes=15)
    item = pending("p1", et(6, 10, 10, 10))
    assert plan_files([item], et(6, 10, 10, 14), submission_lead=lead) == []  # before the 10:15 cutoff
    (batch,) = plan_files([item], et(6, 10, 10, 20), submission_lead=lead)
    assert (batch.kind, batch.effective_date) == ("same_day", date(2025, 6, 10))
    released_after_cutoff = pending("p2", et(6, 10, 10, 20))  # goes to the 14:45 window (cut 14:30)
    assert plan_files([released_after_cutoff], et(6, 10, 10, 25), submission_lead=lead) == []
    (batch,) = plan_files([released_after_cutoff], et(6, 10, 14, 30), submission_lead=lead)
    assert batch.kind == "same_day"


def test_random_release_and_cut_times_plan_only_files_the_fed_settles() -> None:
    rng = random.Random(6000)
    start = datetime(2025, 11, 24, tzinfo=UTC)  # Thanksgiving week, a weekend, two holidays near
    for _ in range(6000):
        released = start + timedelta(minutes=rng.randrange(0, 14 * 24 * 60))
        cut = released + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
        item = pending("p1", released, amount_cents=rng.choice([100, 100_000_000, 100_000_001]))
        for batch in plan_files([item], cut, submission_lead=timedelta(minutes=rng.choice([0, 15, 60]))):
            problem = settlement_problem(cut, batch.effective_date, same_day=batch.same_day)
            assert problem is None, (released, cut, batch.kind, batch.effective_date, problem)


def test_same_day_batches_with_an_offset_stay_within_the_same_day_limit() -> None:
    items = [pending(f"p{i}", et(6, 10, 9, i), amount_cents=40_000_000) for i in range(5)]
    batches = plan_files(items, et(6, 10, 10, 30), max_same_day_batch_cents=100_000_000)
    assert all(batch.kind == "same_day" and batch.total_cents <= 100_000_000 for batch in batches)
    assert [len(batch.payouts) for batch in batches] == [2, 2, 1]
    (unbounded,) = plan_files(items, et(6, 10, 10, 30))
    assert unbounded.total_cents == 200_000_000


def test_missed_standard_deadline_moves_to_next_open_window() -> None:
    item = pending("p1", et(6, 13, 17, 0))  # Friday evening: standard, effective Monday
    assert window_at(item, et(6, 13, 16, 59)) is None  # not released yet
    on_time = window_at(item, et(6, 13, 17, 5))
    assert on_time is not None
    assert (on_time.kind, on_time.effective_date) == ("standard", date(2025, 6, 16))
    late = window_at(item, et(6, 16, 3, 0))  # Monday after the 02:15 deadline
    assert late is not None
    assert (late.kind, late.effective_date) == ("same_day", date(2025, 6, 16))
    (batch,) = plan_files([item], et(6, 16, 3, 0))
    assert (batch.kind, batch.effective_date) == ("same_day", date(2025, 6, 16))


def test_groups_by_kind_effective_date_and_sec_code() -> None:
    items = [
        pending("ppd-1", et(6, 10, 9, 0)),
        pending("ccd-1", et(6, 10, 9, 1), payee_type="business"),
        pending("big-1", et(6, 10, 9, 2), amount_cents=200_000_000),
        pending("ppd-2", et(6, 10, 8, 0)),
        # Monday evening: standard for Tuesday, overdue after 02:15, so sent same-day.
        pending("evening", et(6, 9, 18, 0)),
    ]
    plan = plan_files(items, et(6, 10, 10, 30))
    assert [(b.effective_date, b.kind, b.sec_code, ids(b)) for b in plan] == [
        (date(2025, 6, 10), "same_day", "CCD", ["ccd-1"]),
        (date(2025, 6, 10), "same_day", "PPD", ["evening", "ppd-2", "ppd-1"]),
        (date(2025, 6, 11), "standard", "PPD", ["big-1"]),
    ]


def test_order_is_release_time_then_payment_id() -> None:
    same_time = et(6, 10, 9, 0)
    items = [pending("b", same_time), pending("a", same_time), pending("c", et(6, 10, 8, 59))]
    (batch,) = plan_files(items, et(6, 10, 10, 30))
    assert ids(batch) == ["c", "a", "b"]


def test_splits_at_max_entries() -> None:
    items = [pending(f"p{i:05d}", et(6, 10, 9, 0) + timedelta(seconds=i)) for i in range(5001)]
    plan = plan_files(items, et(6, 10, 10, 30), max_entries_per_batch=2500)
    assert [len(b.payouts) for b in plan] == [2500, 2500, 1]
    assert [p.payment_id for b in plan for p in b.payouts] == [f"p{i:05d}" for i in range(5001)]
    assert len({b.batch_id for b in plan}) == 3


def test_splits_at_max_total() -> None:
    items = [pending(f"p{i}", et(6, 10, 9, i), amount_cents=40) for i in range(5)]
    plan = plan_files(items, et(6, 10, 10, 30), max_batch_total_cents=100)
    assert [ids(b) for b in plan] == [["p0", "p1"], ["p2", "p3"], ["p4"]]
    assert all(b.total_cents <= 100 for b in plan)


def test_batch_id_is_deterministic_per_cut_and_content_derived() -> None:
    items = [pending("a", et(6, 10, 9, 0)), pending("b", et(6, 10, 9, 1))]
    now = et(6, 10, 10, 30)
    (first,) = plan_files(items, now)
    (again,) = plan_files(list(reversed(items)), now)
    assert first.batch_id == again.batch_id
    assert first.batch_id.startswith("achb_")
    # A later cut of the same payouts (one set aside before) is a batch of its own.
    (later,) = plan_files(items, now + timedelta(minutes=5))
    assert later.batch_id != first.batch_id
    (fewer,) = plan_files(items[:1], now)
    assert fewer.batch_id != first.batch_id
    changed = [items[0], pending("b", et(6, 10, 9, 1), amount_cents=10_001)]
    assert plan_files(changed, now)[0].batch_id != first.batch_id


def test_rejects_invalid_input() -> None:
    now = et(6, 10, 10, 30)
    with pytest.raises(ValueError, match="unique"):
        plan_files([pending("a", et(6, 10, 9)), pending("a", et(6, 10, 9))], now)
    with pytest.raises(ValueError, match="max_entries_per_batch"):
        plan_files([], now, max_entries_per_batch=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_files([], datetime(2025, 6, 10, 10, 30))
    with pytest.raises(ValueError, match="released_at"):
        plan_files([pending("a", datetime(2025, 6, 10, 9))], now)
    with pytest.raises(ValueError, match="amount"):
        plan_files([pending("a", et(6, 10, 9), amount_cents=0)], now)


def test_planned_batches_build_into_valid_files() -> None:
    now = et(6, 10, 14, 45)
    items = [
        pending("p1", et(6, 10, 9, 0)),
        pending("p2", et(6, 10, 11, 0), payee_type="business"),
        pending("p3", et(6, 10, 12, 0), amount_cents=150_000_000),
    ]
    plan = plan_files(items, now)
    assert len(plan) == 3
    for batch in plan:
        file = build_file(
            batch.payouts,
            ORIGINATOR,
            effective_date=batch.effective_date,
            created_at=now,
            same_day=batch.same_day,
        )
        assert parse(write(file)) == file
        assert file.control.total_credit_cents == batch.total_cents


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=7 * 24 * 60),
            st.integers(min_value=1, max_value=150_000_000),
            st.sampled_from(["individual", "business"]),
        ),
        max_size=40,
    ),
    st.integers(min_value=0, max_value=8 * 24 * 60),
    st.integers(min_value=1, max_value=5),
    st.randoms(use_true_random=False),
)
def test_plan_properties(
    specs: list[tuple[int, int, PayeeType]], now_offset: int, max_entries: int, rng: object
) -> None:
    start = datetime(2025, 11, 24, 0, 0, tzinfo=UTC)  # Thanksgiving week
    items = [
        pending(f"p{i}", start + timedelta(minutes=minutes), amount, payee_type)
        for i, (minutes, amount, payee_type) in enumerate(specs)
    ]
    now = start + timedelta(minutes=now_offset)
    plan = plan_files(items, now, max_entries_per_batch=max_entries)

    planned = [p.payment_id for batch in plan for p in batch.payouts]
    assert len(planned) == len(set(planned))
    released = {item.payout.payment_id for item in items if item.released_at <= now}
    assert set(planned) <= released
    for batch in plan:
        assert 1 <= len(batch.payouts) <= max_entries
        for payout in batch.payouts:
            assert batch.sec_code == ("PPD" if payout.payee_type == "individual" else "CCD")
            if batch.kind == "same_day":
                assert payout.amount_cents <= 100_000_000
                assert batch.effective_date == now.astimezone(EASTERN).date()
            else:
                assert batch.effective_date > now.astimezone(EASTERN).date() or (
                    batch.effective_date == now.astimezone(EASTERN).date()
                    and now.astimezone(EASTERN).hour < 3
                )
    shuffled = list(items)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert plan_files(shuffled, now, max_entries_per_batch=max_entries) == plan
