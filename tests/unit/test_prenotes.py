"""Prenotes: which payouts wait, the waiting period, prenote entries in files and batches."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from paypipe.domain.ach_batching import PayoutRecord, PendingPayout, plan_files
from paypipe.domain.ach_calendar import EASTERN
from paypipe.domain.nacha import (
    AccountType,
    NachaParseError,
    OffsetAccount,
    Originator,
    PayeeType,
    Payout,
    build_file,
    parse,
    payment_trace_numbers,
    payout_problem,
    traces_needed,
    write,
)
from paypipe.domain.prenotes import (
    PRENOTE_WAIT_BANKING_DAYS,
    AccountHistory,
    FiledPrenote,
    gate,
    live_entries_from,
    may_pay,
)

ORIGINATOR = Originator(
    immediate_destination="091000019",
    immediate_destination_name="ODFI",
    immediate_origin="1234567890",
    immediate_origin_name="PAYPIPE INC",
    company_name="PAYPIPE ESCROW",
    company_id="1234567890",
    odfi_routing="09100001",
    company_entry_description="PAYOUT",
)
WITH_OFFSET = replace(ORIGINATOR, offset_account=OffsetAccount("091000019", "99887766", "checking"))
CREATED = datetime(2025, 6, 10, 14, 5, tzinfo=UTC)  # Tuesday 10:05 EDT
EFFECTIVE = date(2025, 6, 11)


def record(payment_id: str, fingerprint: str, amount_cents: int = 10_000) -> PayoutRecord:
    return PayoutRecord(
        payment_id=payment_id,
        amount_cents=amount_cents,
        payee_name="JANE DOE",
        routing_number="021000021",
        account_token="tok",
        account_last4="6789",
        account_type="checking",
        payee_type="individual",
        account_fingerprint=fingerprint,
    )


def pending(payment_id: str, fingerprint: str, minute: int = 0) -> PendingPayout:
    released = datetime(2025, 6, 10, 11, minute, tzinfo=EASTERN)
    return PendingPayout(record(payment_id, fingerprint), released)


def prenote(
    account_type: AccountType = "checking", payee_type: PayeeType = "individual", payment_id: str = "pn1"
) -> Payout:
    return Payout(payment_id, 0, "JANE DOE", "021000021", "12345", account_type, payee_type, prenote=True)


def live(payment_id: str = "p1", amount_cents: int = 12_345) -> Payout:
    return Payout(payment_id, amount_cents, "JOHN ROE", "026009593", "555", "checking", "individual")


def ids(items: tuple[PendingPayout, ...]) -> list[str]:
    return [item.payout.payment_id for item in items]


# --- The waiting period ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effective", "first_live_day"),
    [
        (date(2025, 6, 10), date(2025, 6, 13)),  # Tuesday: Wed, Thu, Fri
        (date(2025, 6, 12), date(2025, 6, 17)),  # Thursday: Fri, then Mon, Tue over the weekend
        (date(2025, 6, 14), date(2025, 6, 20)),  # Saturday: settles Mon 16; Tue, Wed, Fri (Juneteenth)
        (date(2025, 7, 3), date(2025, 7, 9)),  # Thursday before Independence Day (Friday closed)
        (date(2025, 11, 26), date(2025, 12, 2)),  # Wednesday before Thanksgiving, then the weekend
        (date(2025, 12, 24), date(2025, 12, 30)),  # Christmas Eve: Christmas closed, Fri, Mon, Tue
    ],
)
def test_live_entries_may_follow_on_the_third_banking_day_after_the_prenote_settles(
    effective: date, first_live_day: date
) -> None:
    filed = FiledPrenote("091000010000001", effective)
    assert PRENOTE_WAIT_BANKING_DAYS == 3
    assert live_entries_from(filed) == first_live_day
    history = AccountHistory(prenote=filed)
    assert not may_pay(history, first_live_day - timedelta(days=1))
    assert may_pay(history, first_live_day)
    assert may_pay(history, first_live_day + timedelta(days=10))


def test_an_account_paid_or_named_by_the_bank_needs_no_prenote_and_an_unknown_one_does() -> None:
    assert may_pay(AccountHistory(verified=True), date(2025, 6, 10))
    assert not may_pay(AccountHistory(), date(2025, 6, 10))
    assert not may_pay(AccountHistory(prenote_in_flight=True), date(2030, 1, 1))


# --- Which payouts wait ------------------------------------------------------------------------


def test_payouts_to_an_account_never_prenoted_nor_paid_wait_and_its_first_payout_is_prenoted() -> None:
    items = [pending("b-later", "acct-b", 30), pending("a1", "acct-a", 5), pending("b-first", "acct-b", 10)]
    decided = gate(items, {}, date(2025, 6, 10))
    assert decided.live == ()
    assert ids(decided.held) == ["b-later", "a1", "b-first"]
    assert ids(decided.prenote_for) == ["a1", "b-first"]  # one per account: its first payout


def test_known_accounts_go_out_and_prenoted_ones_wait_for_the_end_of_the_waiting_period() -> None:
    filed = FiledPrenote("091000010000007", date(2025, 6, 10))
    accounts = {
        "paid": AccountHistory(verified=True),
        "prenoted": AccountHistory(prenote=filed),
        "in-flight": AccountHistory(prenote_in_flight=True),
    }
    items = [
        pending("p-paid", "paid"),
        pending("p-prenoted", "prenoted"),
        pending("p-in-flight", "in-flight"),
        pending("p-unknown", "unknown"),
        PendingPayout(record("p-legacy", ""), datetime(2025, 6, 10, 11, tzinfo=EASTERN)),
    ]
    during = gate(items, accounts, date(2025, 6, 12))
    assert ids(during.live) == ["p-paid", "p-legacy"]
    assert ids(during.held) == ["p-prenoted", "p-in-flight", "p-unknown"]
    assert ids(during.prenote_for) == ["p-unknown"]  # never a second prenote for an account
    after = gate(items, accounts, live_entries_from(filed))
    assert ids(after.live) == ["p-paid", "p-prenoted", "p-legacy"]
    assert ids(after.prenote_for) == ["p-unknown"]


# --- Prenote entries in files ------------------------------------------------------------------


def test_prenote_entries_are_zero_dollar_23_and_33_and_the_strict_reader_reads_them_back() -> None:
    entries = [live("p1"), prenote("checking", payment_id="pn1"), prenote("savings", payment_id="pn2")]
    file = build_file(entries, ORIGINATOR, effective_date=EFFECTIVE, created_at=CREATED)
    read = parse(write(file), strict=True)
    assert read == file
    (batch,) = read.batches
    assert [(e.transaction_code, e.amount_cents, e.is_prenote) for e in batch.entries] == [
        (22, 12_345, False),
        (23, 0, True),
        (33, 0, True),
    ]
    assert batch.control.total_credit_cents == 12_345
    assert batch.control.entry_addenda_count == 3
    traces = payment_trace_numbers(entries, file)
    assert [traces[pid] for pid in ("p1", "pn1", "pn2")] == [e.trace_number for e in batch.entries]


def test_a_batch_of_prenotes_alone_has_no_offset_entry_and_needs_no_trace_for_one() -> None:
    prenotes = [prenote(payment_id="pn1"), prenote(payee_type="business", payment_id="pn2")]
    file = build_file(prenotes, WITH_OFFSET, effective_date=EFFECTIVE, created_at=CREATED)
    assert [len(batch.entries) for batch in file.batches] == [1, 1]  # PPD, CCD: no offsets
    assert file.control.total_debit_cents == file.control.total_credit_cents == 0
    assert traces_needed(prenotes, WITH_OFFSET) == 2
    mixed = [live("p1"), *prenotes]
    file = build_file(mixed, WITH_OFFSET, effective_date=EFFECTIVE, created_at=CREATED)
    assert [len(batch.entries) for batch in file.batches] == [3, 1]  # PPD: live, prenote, offset
    assert file.batches[0].entries[-1].amount_cents == 12_345
    assert traces_needed(mixed, WITH_OFFSET) == 4
    assert parse(write(file), strict=True) == file


def test_a_prenote_carries_no_amount_and_the_strict_reader_refuses_one_that_does() -> None:
    assert "carries no amount" in (payout_problem(replace(prenote(), amount_cents=1)) or "")
    assert payout_problem(prenote()) is None
    file = build_file([prenote()], ORIGINATOR, effective_date=EFFECTIVE, created_at=CREATED)
    lines = write(file).splitlines()
    lines[2] = lines[2][:29] + "0000000001" + lines[2][39:]
    # Totals fixed up so only the prenote rule is violated.
    lines[3] = lines[3][:32] + "000000000001" + lines[3][44:]
    lines[4] = lines[4][:43] + "000000000001" + lines[4][55:]
    with pytest.raises(NachaParseError) as error:
        parse("\n".join(lines), strict=True)
    assert (error.value.line, error.value.field) == (3, "amount")
    assert parse("\n".join(lines), strict=False).batches[0].entries[0].amount_cents == 1


# --- Prenotes in the plan ----------------------------------------------------------------------


def test_a_prenote_goes_in_the_batch_its_payout_would_go_in_and_adds_nothing_to_its_total() -> None:
    now = datetime(2025, 6, 10, 15, 0, tzinfo=EASTERN)  # after the morning same-day cutoff
    paid = PendingPayout(record("p1", "a"), datetime(2025, 6, 10, 9, tzinfo=EASTERN))  # same day
    held = PendingPayout(record("h1", "b", amount_cents=20_000), datetime(2025, 6, 10, 9, 5, tzinfo=EASTERN))
    later = PendingPayout(record("h2", "c"), datetime(2025, 6, 10, 16, 50, tzinfo=EASTERN))  # standard
    (batch,) = plan_files([paid], now, prenotes=[held])
    assert ([p.payment_id for p in batch.payouts], [p.payment_id for p in batch.prenotes]) == (["p1"], ["h1"])
    assert (batch.kind, batch.total_cents) == ("same_day", 10_000)
    assert batch.batch_id != plan_files([paid], now)[0].batch_id
    alone = plan_files([], datetime(2025, 6, 10, 17, 0, tzinfo=EASTERN), prenotes=[later])
    assert [(b.kind, b.payouts, [p.payment_id for p in b.prenotes]) for b in alone] == [
        ("standard", (), ["h2"])
    ]
    assert plan_files([], now, prenotes=[later]) == []  # not released yet at `now`


def test_prenotes_count_as_entries_when_batches_are_split() -> None:
    now = datetime(2025, 6, 10, 17, 0, tzinfo=EASTERN)
    paid = [
        PendingPayout(record(f"p{i}", f"a{i}"), datetime(2025, 6, 10, 16, 50, tzinfo=EASTERN))
        for i in range(2)
    ]
    held = [
        PendingPayout(record(f"h{i}", f"b{i}"), datetime(2025, 6, 10, 16, 55, tzinfo=EASTERN))
        for i in range(2)
    ]
    plan = plan_files(paid, now, prenotes=held, max_entries_per_batch=3)
    assert [([p.payment_id for p in b.payouts], [p.payment_id for p in b.prenotes]) for b in plan] == [
        (["p0", "p1"], ["h0"]),
        ([], ["h1"]),
    ]
    with pytest.raises(ValueError, match="unique payment ids"):
        plan_files(paid, now, prenotes=paid[:1])
