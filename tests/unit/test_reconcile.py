"""Reconciliation: a clean run passes, and every check catches exactly the violation injected."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from paypipe.domain import ledger
from paypipe.domain.settlement import FeeSchedule, LineKind, SettlementLine
from paypipe.embedded.reconcile import (
    AchEntry,
    BankAnswer,
    Context,
    DlqRecord,
    Observed,
    PayoutRow,
    reconcile,
)
from paypipe.embedded.samples import sample_chain
from paypipe.events import models as ev

AT = datetime(2026, 2, 2, tzinfo=UTC)
PAYEE = ev.PayeeRef(
    name="A",
    routing_number="011000015",
    account_token="acct_a",
    account_last4="2345",
    account_fingerprint="afp_a",
    account_type="checking",
    payee_type="individual",
)
TRACE = "011000010000001"


def released(pid, cents=500, cause=None, at=AT):
    data = ev.FundsReleasedData(
        hold_id=f"{pid}:hold",
        amount_cents=cents,
        currency="USD",
        provider_id="p",
        payee=PAYEE,
        trigger=ev.ReleaseTrigger.SERVICE_COMPLETED,
        released_at=at,
    )
    return ev.FundsReleased.create(
        payment_id=pid, data=data, producer="release", dedup_key="r", cause=cause, occurred_at=at
    )


def batched(pid, batch="b1", trace=TRACE, cents=500, netted=0):
    data = ev.PayoutBatchedData(
        batch_id=batch,
        file_key=f"{batch}.ach",
        trace_number=trace,
        amount_cents=cents,
        effective_date="2026-02-03",
        window="standard",
        netted_cents=netted,
    )
    return ev.PayoutBatched.create(
        payment_id=pid, data=data, producer="ach_batch", dedup_key=batch, occurred_at=AT + timedelta(hours=1)
    )


def rejected(pid):
    data = ev.PaymentRejectedData(
        reasons=[ev.Rejection(code="X", field="f", message="m")], request_event_id="r"
    )
    return ev.PaymentRejected.create(payment_id=pid, data=data, producer="validate", dedup_key=pid)


def held(pid, at=AT):
    hold = ev.HoldRef(
        hold_id=f"{pid}:hold", amount_cents=500, currency="USD", held_at=at, hold_until=at + timedelta(days=7)
    )
    data = ev.FundsHeldData(hold=hold, customer_id="c", provider_id="p", payee=PAYEE)
    return ev.FundsHeld.create(
        payment_id=pid, data=data, producer="escrow_hold", dedup_key="hold", occurred_at=at
    )


def client(model, pid, data, at=AT, key="c"):
    return model.create(payment_id=pid, data=data, producer="client", occurred_at=at, dedup_key=key)


def opened(pid, dispute="d1", at=AT):
    return client(
        ev.DisputeOpened, pid, ev.DisputeOpenedData(dispute_id=dispute, reason="r"), at, f"o{dispute}"
    )


def resolved(pid, dispute="d1", outcome=ev.DisputeOutcome.RELEASE):
    return client(
        ev.DisputeResolved,
        pid,
        ev.DisputeResolvedData(dispute_id=dispute, outcome=outcome),
        key=f"r{dispute}",
    )


def frozen(pid, dispute="d1", cause=None):
    data = ev.HoldFrozenData(hold_id=f"{pid}:hold", dispute_id=dispute)
    return ev.HoldFrozen.create(
        payment_id=pid, data=data, producer="release", cause=cause, dedup_key=dispute, occurred_at=AT
    )


def held_back(pid, dispute="d1", cause=None):
    data = ev.PayoutHeldBackData(dispute_id=dispute, hold_id=f"{pid}:hold", amount_cents=500, currency="USD")
    return ev.PayoutHeldBack.create(
        payment_id=pid, data=data, producer="release", cause=cause, dedup_key=dispute, occurred_at=AT
    )


def closed(pid, dispute="d1", cause=None, phase=ev.DisputePhase.ESCROW):
    data = ev.DisputeClosedData(
        dispute_id=dispute, outcome=ev.DisputeOutcome.RELEASE, phase=phase, still_open=[]
    )
    return ev.DisputeClosed.create(
        payment_id=pid, data=data, producer="release", cause=cause, dedup_key=dispute, occurred_at=AT
    )


def codes(result):
    return sorted({v.code for v in result.violations})


ENTRY = AchEntry("b1.ach", TRACE, 500, True)


def paid_payment(pid="p1"):
    """A payment released and paid, with its file entry."""
    return [held(pid), released(pid), batched(pid)], [ENTRY]


def run(events, entries=(), requested=("p1",), dlq=(), totals=None, **context):
    return reconcile(
        list(requested), events, list(dlq), list(entries), totals or {"USD": 0}, context=Context(**context)
    )


def test_a_clean_run_reconciles():
    events, entries = paid_payment()
    events += [rejected("p2")]
    result = run(events, entries, ["p1", "p2", "p3"], [DlqRecord("q", "p3", "FundsHeld", "Boom")])
    assert result.ok, result.violations
    assert result.states == {"PayoutBatched": 1, "PaymentRejected": 1, "dlq": 1}


def test_a_clean_dispute_history_reconciles():
    o1 = opened("p1")
    r1 = resolved("p1")
    events = [
        held("p1"),
        o1,
        frozen("p1", cause=o1),
        r1,
        closed("p1", cause=r1),
        released("p1", cause=r1),
        batched("p1"),
    ]
    assert run(events, [ENTRY]).ok, run(events, [ENTRY]).violations


def test_payout_twice_lost_payment_and_mismatches_are_reported():
    events = [released("p1"), batched("p1", "b1"), batched("p1", "b2")]
    entries = [AchEntry("b1.ach", TRACE, 500, True), AchEntry("b2.ach", TRACE, 500, True)]
    result = run(events, entries, ["p1", "p2"], totals={"USD": 7})
    assert codes(result) == [
        "ACH_CREDITS_NOT_RELEASED",
        "LEDGER_UNBALANCED",
        "PAID_OUT_TWICE",
        "PAYMENT_LOST",
        "TERMINAL_ANNOUNCED_TWICE",
        "TRACE_REUSED",
    ]
    text = "\n".join(map(str, result.violations))
    assert "p1: 2 distinct PayoutBatched events" in text and "ledger unbalanced in USD: 7" in text


def test_file_entry_without_announcement_is_reported():
    result = run([rejected("p1")], [AchEntry("x.ach", "011000010000009", 100, True)])
    assert codes(result) == ["ACH_CREDITS_NOT_RELEASED", "ACH_ENTRY_UNANNOUNCED"]


def test_file_amount_different_from_its_announcement_is_reported():
    result = run([released("p1"), batched("p1")], [AchEntry("b1.ach", TRACE, 499, True)])
    assert "ACH_AMOUNT_MISMATCH" in codes(result)


def test_a_release_never_paid_is_reported():
    assert codes(run([released("p1")])) == ["PAYMENT_LOST", "RELEASED_NOT_PAID"]


def test_a_release_parked_in_the_payout_dlq_is_not_lost_but_waits_there():
    parked = DlqRecord("AchBatchDLQUrl", "p1", "FundsReleased", "Redriven")
    assert codes(run([released("p1")], dlq=[parked])) == []
    other = DlqRecord("AchBatchDLQUrl", "p1", "PayeeAccountReplaced", "Redriven")
    assert "RELEASED_NOT_PAID" in codes(run([released("p1")], dlq=[other]))


def test_an_entry_paying_more_than_released_less_netted_is_reported():
    events = [released("p1"), batched("p1", cents=500, netted=100)]
    assert "PAYOUT_NOT_RELEASED_AMOUNT" in codes(run(events, [ENTRY]))


def test_several_terminal_states_are_reported():
    events, entries = paid_payment()
    assert codes(run([*events, rejected("p1")], entries)) == ["SEVERAL_TERMINAL_STATES"]


def test_a_payout_filed_while_a_dispute_held_it_back_is_reported():
    o1 = opened("p1")
    events = [held("p1"), released("p1"), o1, held_back("p1", cause=o1), batched("p1")]
    assert codes(run(events, [ENTRY])) == ["PAYOUT_WHILE_DISPUTED"]


def test_a_payout_filed_after_the_dispute_closed_is_fine():
    o1, r1 = opened("p1"), resolved("p1")
    phase = ev.DisputePhase.PAYOUT
    events = [
        held("p1"),
        released("p1"),
        o1,
        held_back("p1", cause=o1),
        r1,
        closed("p1", cause=r1, phase=phase),
        batched("p1"),
    ]
    assert run(events, [ENTRY]).ok


def test_a_release_of_a_frozen_hold_is_reported():
    o1 = opened("p1")
    completed = client(ev.ServiceCompleted, "p1", ev.ServiceCompletedData(completed_at=AT), key="done")
    events = [
        held("p1"),
        o1,
        frozen("p1", cause=o1),
        completed,
        released("p1", cause=completed),
        batched("p1"),
    ]
    assert codes(run(events, [ENTRY])) == ["FROZEN_HOLD_RELEASED", "PAYOUT_WHILE_DISPUTED"]


def test_the_last_dispute_resolution_may_resolve_a_frozen_hold_but_not_an_earlier_one():
    o1, o2, r1 = opened("p1", "d1"), opened("p1", "d2"), resolved("p1", "d1")
    events = [held("p1"), o1, frozen("p1", "d1", o1), o2, frozen("p1", "d2", o2), r1, closed("p1", "d1", r1)]
    events += [released("p1", cause=r1), batched("p1")]
    assert "FROZEN_HOLD_RELEASED" in codes(run(events, [ENTRY]))


def test_a_resolution_of_a_dispute_never_opened_is_reported():
    r9 = resolved("p1", "d9")
    events = [held("p1"), r9, closed("p1", "d9", r9), released("p1", cause=r9), batched("p1")]
    assert codes(run(events, [ENTRY])) == ["RESOLUTION_WITHOUT_DISPUTE"]


def hold(**changes):
    base = ledger.Hold("p1", "c", "p", 500, "USD", AT + timedelta(days=7), AT)
    return ledger.Hold(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})


def dispute(dispute_id="d1", phase=ledger.DisputePhase.ESCROW, at=AT):
    return ledger.Dispute(dispute_id, phase, at, dispute_id)


def test_the_final_ledger_state_is_checked_for_disputes_the_events_missed():
    paid_while_disputed = hold(
        status=ledger.HoldStatus.RELEASED,
        released_cents=500,
        payout_ref="b1",
        disputes=(dispute(phase=ledger.DisputePhase.PAYOUT),),
    )
    released_frozen = hold(status=ledger.HoldStatus.RELEASED, released_cents=500, disputes=(dispute(),))
    events, entries = paid_payment()
    assert codes(run(events, entries, holds=[paid_while_disputed])) == ["PAYOUT_WHILE_DISPUTED"]
    assert codes(run(events, entries, holds=[released_frozen])) == ["FROZEN_HOLD_RELEASED"]


def test_a_dispute_open_past_its_age_is_reported_and_must_have_been_signalled():
    frozen_long = hold(status=ledger.HoldStatus.FROZEN, disputes=(dispute(),))
    events = [held("p1"), opened("p1"), frozen("p1")]
    young = run(
        events, holds=[frozen_long], as_of=AT + timedelta(days=29), dispute_max_age=timedelta(days=30)
    )
    old = run(events, holds=[frozen_long], as_of=AT + timedelta(days=31), dispute_max_age=timedelta(days=30))
    assert young.ok and young.states == {"disputed": 1}
    assert codes(old) == ["DISPUTE_AGE_UNSIGNALLED", "DISPUTE_PAST_AGE"]
    aged = ev.DisputeAged.create(
        payment_id="p1",
        data=ev.DisputeAgedData(dispute_id="d1", phase=ev.DisputePhase.ESCROW, opened_at=AT, max_age_days=30),
        producer="release",
        dedup_key="d1",
    )
    signalled = run([*events, aged], holds=[frozen_long], as_of=AT + timedelta(days=31))
    assert codes(signalled) == ["DISPUTE_PAST_AGE"]


@pytest.mark.parametrize(
    "source, external",
    [("paypipe.client", False), ("paypipe.release", True)],
    ids=["wrong-source", "forged-from-outside"],
)
def test_an_internal_event_from_a_foreign_source_acted_on_is_reported(source, external):
    due = ev.HoldExpiryDue.create(
        payment_id="p1",
        data=ev.HoldExpiryDueData(hold_until=AT),
        producer="release",
        occurred_at=AT,
        dedup_key="x",
    )
    events = [
        Observed(held("p1")),
        Observed(due, source),
        Observed(released("p1", cause=due)),
        Observed(batched("p1")),
    ]
    external_ids = frozenset({due.event_id}) if external else frozenset()
    assert codes(run(events, [ENTRY], external_event_ids=external_ids)) == ["FOREIGN_SOURCE_ACTED_ON"]
    refused_only = [
        Observed(held("p1")),
        Observed(due, source),
        Observed(released("p1")),
        Observed(batched("p1")),
    ]
    assert run(refused_only, [ENTRY], external_event_ids=external_ids).ok


def test_a_forged_release_from_outside_that_got_paid_is_reported():
    forged = released("p1")
    events = [Observed(held("p1")), Observed(forged, "paypipe.release"), Observed(batched("p1"))]
    assert codes(run(events, [ENTRY], external_event_ids=frozenset({forged.event_id}))) == [
        "FOREIGN_SOURCE_ACTED_ON"
    ]


def test_acting_on_a_client_timestamp_outside_the_skew_is_reported():
    completed = client(ev.ServiceCompleted, "p1", ev.ServiceCompletedData(completed_at=AT), key="done")
    late = Observed(completed, "paypipe.client", received_at=AT + timedelta(minutes=10))
    events = [Observed(held("p1")), late, Observed(released("p1", cause=completed)), Observed(batched("p1"))]
    assert codes(run(events, [ENTRY])) == ["CLIENT_TIME_TRUSTED"]
    refusal = ev.RequestRefused.create(
        payment_id="p1",
        data=ev.RequestRefusedData(
            request_event_id=completed.event_id,
            request_type="ServiceCompleted",
            code=ev.RefusalCode.CLIENT_CLOCK_SKEW,
            message="m",
        ),
        producer="release",
        cause=completed,
    )
    refused = [
        Observed(held("p1")),
        late,
        Observed(refusal),
        Observed(released("p1")),
        Observed(batched("p1")),
    ]
    assert run(refused, [ENTRY]).ok


def test_a_release_dated_before_its_hold_is_reported():
    events = [held("p1", at=AT), released("p1", at=AT - timedelta(seconds=1)), batched("p1")]
    assert codes(run(events, [ENTRY])) == ["TIME_NOT_MONOTONE"]


def test_duplicate_requests_are_counted_apart_from_payments():
    events, entries = paid_payment()
    duplicate = ev.RequestRefused.create(
        payment_id="p1",
        data=ev.RequestRefusedData(
            request_event_id="again",
            request_type="PaymentRequested",
            code=ev.RefusalCode.DUPLICATE_PAYMENT_ID,
            message="m",
            original_event_id="first",
        ),
        producer="validate",
        dedup_key="again",
    )
    result = run([*events, duplicate], entries)
    assert result.ok and result.duplicate_requests == 1 and result.states == {"PayoutBatched": 1}


ODFI = "011000015"
MONDAY_10 = datetime(2026, 2, 2, 10, 0, tzinfo=ZoneInfo("America/New_York"))


def entry(file_key="b1.ach", trace=TRACE, cents=500, *, file_id="2026-02-02/A", created=MONDAY_10, **changes):
    fields = {
        "odfi": ODFI,
        "file_id": file_id,
        "created_at": created,
        "effective_date": date(2026, 2, 2),
        "same_day": True,
    }
    return AchEntry(file_key, trace, cents, True, **{**fields, **changes})


def test_file_entries_with_their_identities_reconcile():
    events, _ = paid_payment()
    assert run(events, [entry()]).ok


def test_a_non_usd_payment_filed_by_ach_is_reported():
    events = [held("p1"), released("p1"), batched("p1")]
    events[1] = events[1].model_copy(update={"data": events[1].data.model_copy(update={"currency": "EUR"})})
    assert codes(run(events, [entry()])) == ["ACH_NOT_USD"]


def test_two_files_of_one_odfi_with_one_file_id_are_reported():
    events = [
        held("p1"),
        released("p1"),
        batched("p1"),
        held("p2"),
        released("p2"),
        batched("p2", "b2", TRACE[:-1] + "2"),
    ]
    entries = [entry(), entry("b2.ach", TRACE[:-1] + "2")]
    assert codes(run(events, entries, ["p1", "p2"])) == ["DUPLICATE_FILE_ID"]
    other_date = [
        entry(),
        entry(
            "b2.ach",
            TRACE[:-1] + "2",
            file_id="2026-02-03/A",
            created=MONDAY_10 + timedelta(days=1),
            effective_date=date(2026, 2, 3),
        ),
    ]
    assert run(events, other_date, ["p1", "p2"]).ok


def test_a_trace_number_used_in_two_files_is_reported():
    events = [held("p1"), released("p1"), batched("p1"), held("p2"), released("p2"), batched("p2", "b2")]
    entries = [entry(), entry("b2.ach", file_id="2026-02-02/B")]
    assert codes(run(events, entries, ["p1", "p2"])) == ["TRACE_REUSED"]


@pytest.mark.parametrize(
    "changes",
    [
        {"created_at": MONDAY_10.replace(hour=17)},  # same-day, after the last deadline
        {"effective_date": date(2026, 2, 3)},  # same-day dated the next day
        {
            "same_day": False,
            "effective_date": date(2026, 2, 2),
            "created_at": MONDAY_10,
        },  # standard for today
    ],
)
def test_an_entry_the_fed_would_not_settle_on_its_date_is_reported(changes):
    events, _ = paid_payment()
    assert codes(run(events, [entry(**changes)])) == ["SETTLEMENT_DATE_INVALID"]


def payout_row(status, released_at=AT, reason=""):
    return PayoutRow("p1", 500, released_at, status, reason)


def set_aside(pid="p1"):
    data = ev.ItemSetAsideData(job="ach_cut", reason="UNWRITABLE", detail="d")
    return ev.ItemSetAside.create(payment_id=pid, data=data, producer="ach_batch", dedup_key="s")


def test_a_set_aside_payout_is_its_own_state_and_must_be_announced():
    events = [held("p1"), released("p1")]
    announced = run([*events, set_aside()], payouts=[payout_row("set_aside", reason="UNWRITABLE")])
    assert announced.ok and announced.states == {"set_aside": 1}
    silent = run(events, payouts=[payout_row("set_aside", reason="UNWRITABLE")])
    assert "SET_ASIDE_UNANNOUNCED" in codes(silent)


def test_a_payout_left_pending_past_its_deadline_is_reported():
    # Released 09:00 New York on Monday 2026-02-02: the 10:30 same-day deadline.
    released_at = datetime(2026, 2, 2, 14, 0, tzinfo=UTC)
    events = [held("p1"), released("p1")]
    before = run(
        events, payouts=[payout_row("pending", released_at)], as_of=released_at + timedelta(minutes=80)
    )
    after = run(
        events, payouts=[payout_row("pending", released_at)], as_of=released_at + timedelta(minutes=95)
    )
    assert "STALE_PAYOUT" not in codes(before)
    assert "STALE_PAYOUT" in codes(after)


def applied_state(outcome):
    assert isinstance(outcome, ledger.Applied), outcome
    return outcome.state


def returned_and_repaid():
    """The journal of p1 paid out, returned (R03) and paid out again: payout, return, payout."""
    request = ledger.HoldRequest("p1", "c", "p", 500, "USD", AT + timedelta(days=7), AT)
    state = applied_state(ledger.place_hold(ledger.LedgerState(), request))
    state = applied_state(ledger.release(state, "p1", resolution_id="done", at=AT))
    state = applied_state(ledger.record_payout(state, "p1", amount_cents=500, payout_ref="b0", at=AT))
    back = ledger.PayoutReturn("p1", "R03", "011000010000000", AT + timedelta(hours=2))
    state = applied_state(ledger.return_payout(state, back))
    again = AT + timedelta(hours=3)
    state = applied_state(ledger.record_payout(state, "p1", amount_cents=500, payout_ref="b1", at=again))
    journal = sorted(state.transfers.values(), key=lambda t: t.at)
    return [t for t in journal if t.kind in {ledger.TransferKind.PAYOUT, ledger.TransferKind.PAYOUT_RETURN}]


def bank_files(transfers):
    """The bank's return entries that the journal's returns answer."""
    return [
        BankAnswer("inbound/r.ach", f"07100001{n:07d}", t.transfer_id.rsplit(":", 1)[-1], "return", "R03")
        for n, t in enumerate(transfers)
        if t.kind is ledger.TransferKind.PAYOUT_RETURN
    ]


def returns_of(transfers):
    """The PayoutReturned events of the journal's returns."""
    return [
        event
        for t in transfers
        if t.kind is ledger.TransferKind.PAYOUT_RETURN
        for event in returned_events(t.payment_id, t.transfer_id.rsplit(":", 1)[-1])
    ]


def returned_events(pid="p1", trace="011000010000000"):
    data = ev.PayoutReturnedData(
        original_trace_number=trace,
        return_code="R03",
        reason="No Account/Unable to Locate Account",
        amount_cents=500,
        provider_id="p",
        batch_id="b0",
        inbound_key="inbound/r.ach",
        account_unusable=True,
        next_step="await_account_update",
    )
    return [ev.PayoutReturned.create(payment_id=pid, data=data, producer="ach_returns", occurred_at=AT)]


def test_every_bank_answer_is_applied_or_parked_and_every_booked_return_answers_one():
    events, entries = paid_payment()
    journal = returned_and_repaid()
    files = bank_files(journal)
    assert run(events + returned_events(), entries, transfers=journal, bank_answers=files).ok
    # A return in a bank file that nothing applied, and a correction nothing applied either.
    correction = BankAnswer("inbound/n.ach", "071000010000099", TRACE, "correction", "C01")
    unapplied = run(events, entries, transfers=journal, bank_answers=[*files, correction])
    assert codes(unapplied) == ["BANK_ANSWER_UNAPPLIED"]
    assert len(unapplied.violations) == 2
    parked = ev.AchInboundParked.create(
        payment_id="p1",
        data=ev.AchInboundParkedData(
            inbound_key="inbound/n.ach",
            reason="REFUSED_CORRECTION",
            detail="x",
            trace_number="071000010000099",
        ),
        producer="ach_returns",
        occurred_at=AT,
    )
    assert run(
        [*events, *returned_events(), parked], entries, transfers=journal, bank_answers=[*files, correction]
    ).ok
    # A return booked in the journal that no bank file carries; a PayoutReturned never booked.
    assert codes(run(events + returned_events(), entries, transfers=journal)) == ["RETURN_WITHOUT_BANK_FILE"]
    unbooked = run(
        events + returned_events(trace="011000010000005"), entries, transfers=journal, bank_answers=files
    )
    assert "RETURN_NOT_BOOKED" in codes(unbooked)


def test_a_returned_payout_is_neither_paid_twice_nor_counted_as_credit():
    first_entry = AchEntry("b0.ach", "011000010000000", 500, True)
    second_entry = AchEntry("b1.ach", TRACE, 500, True)
    events = [held("p1"), released("p1"), batched("p1", batch="b0", trace="011000010000000"), batched("p1")]
    journal = returned_and_repaid()
    twice = run(events, [first_entry, second_entry], transfers=journal, bank_answers=bank_files(journal))
    assert "PAID_OUT_TWICE" in codes(twice)  # no PayoutReturned: two entries outstanding
    result = run(
        events + returned_events(),
        [first_entry, second_entry],
        transfers=journal,
        bank_answers=bank_files(journal),
    )
    assert result.ok and result.ach_credit_cents == 500 and result.returned_cents == 500
    assert result.paid_again == 1


def test_a_returned_and_repaid_payout_reconciles():
    events, entries = paid_payment()
    assert run(
        events + returns_of(returned_and_repaid()),
        entries,
        transfers=returned_and_repaid(),
        bank_answers=bank_files(returned_and_repaid()),
    ).ok


def test_a_payment_with_two_payouts_outstanding_is_reported():
    first, back, second = returned_and_repaid()
    events, entries = paid_payment()
    late = replace(back, at=second.at + timedelta(hours=1))
    assert codes(
        run(
            events + returns_of([first, second]),
            entries,
            transfers=[first, second],
            bank_answers=bank_files([first, second]),
        )
    ) == ["PAYOUTS_OUTSTANDING_AT_ONCE"]
    assert codes(
        run(
            events + returns_of([first, late, second]),
            entries,
            transfers=[first, late, second],
            bank_answers=bank_files([first, late, second]),
        )
    ) == ["PAYOUTS_OUTSTANDING_AT_ONCE"]


def test_a_return_that_undoes_no_outstanding_payout_is_reported():
    first, back, second = returned_and_repaid()
    events, entries = paid_payment()
    twice = replace(back, transfer_id="p1:payout-return:011000010000009")
    unknown = replace(back, reference="p1:payout:7")
    other = replace(back, payment_id="p2", reference=first.transfer_id)
    for planted in (twice, unknown, other):
        result = run(
            events + returns_of([back, *([planted] if planted is twice else [])]),
            entries,
            transfers=[first, back, second, planted],
            bank_answers=bank_files([first, back, second, planted]),
        )
        assert codes(result) == ["RETURN_WITHOUT_PAYOUT"], planted


def test_a_return_of_another_amount_than_its_payout_is_reported():
    first, back, second = returned_and_repaid()
    events, entries = paid_payment()
    short = replace(
        back,
        postings=(
            ledger.Posting(ledger.AccountId.settlement("USD"), ledger.Side.DEBIT, 400),
            ledger.Posting(ledger.AccountId.provider("p", "USD"), ledger.Side.CREDIT, 400),
        ),
    )
    assert codes(
        run(
            events + returns_of([first, short, second]),
            entries,
            transfers=[first, short, second],
            bank_answers=bank_files([first, short, second]),
        )
    ) == ["RETURN_AMOUNT_MISMATCH"]


def prenote_returned(pid="p1", trace="011000010000002"):
    data = ev.PrenoteReturnedData(
        original_trace_number=trace,
        return_code="R03",
        reason="No Account/Unable to Locate Account",
        provider_id="p",
        batch_id="b1",
        inbound_key="inbound/r.ach",
    )
    return ev.PrenoteReturned.create(payment_id=pid, data=data, producer="ach_returns", dedup_key=trace)


def test_prenotes_are_not_payouts_and_a_payout_waiting_for_new_details_is_its_own_state():
    prenote_trace = "011000010000002"
    prenote = AchEntry("b1.ach", prenote_trace, 0, True, prenote=True)
    answer = BankAnswer("inbound/r.ach", "071000010000001", prenote_trace, "return", "R03")
    events = [held("p1"), released("p1")]
    waiting = run(
        [*events, prenote_returned()],
        [prenote],
        payouts=[payout_row("waiting", reason="ACCOUNT_UNUSABLE_R03")],
        bank_answers=[answer],
    )
    assert waiting.ok, waiting.violations
    assert waiting.states == {"awaiting_account": 1}
    assert (waiting.prenotes, waiting.prenotes_returned, waiting.ach_entries) == (1, 1, 0)
    # Without its event the prenote's return is unapplied; without the row the payment is lost.
    assert codes(run(events, [prenote], payouts=[payout_row("waiting")], bank_answers=[answer])) == [
        "BANK_ANSWER_UNAPPLIED"
    ]
    assert codes(run([*events, prenote_returned()], [prenote], bank_answers=[answer])) == [
        "PAYMENT_LOST",
        "RELEASED_NOT_PAID",
    ]
    # Paid once its prenote cleared: the prenote entry is no ACH credit of the payout's.
    paid = run([*events, batched("p1")], [prenote, ENTRY], payouts=[payout_row("assigned")])
    assert paid.ok, paid.violations
    assert (paid.ach_entries, paid.ach_credit_cents, paid.prenotes) == (1, 500, 1)


def ledger_run(state, **context):
    return reconcile(
        [],
        [],
        [],
        [],
        state.totals_by_currency(),
        context=Context(
            holds=list(state.holds.values()), transfers=list(state.transfers.values()), **context
        ),
    )


def clawed_back_ledger():
    request = ledger.HoldRequest("p1", "c", "p", 500, "USD", AT + timedelta(days=7), AT)
    state = ledger.place_hold(ledger.LedgerState(), request).state
    state = ledger.release(state, "p1", resolution_id="r", at=AT).state
    state = ledger.record_payout(state, "p1", amount_cents=500, payout_ref="b1", at=AT).state
    state = ledger.open_dispute(state, "p1", dispute_id="d1", at=AT + timedelta(days=1)).state
    request = ledger.HoldRequest("p2", "c", "p", 700, "USD", AT + timedelta(days=7), AT)
    return ledger.place_hold(state, request).state


def test_pool_totals_are_the_sum_of_the_journals_and_stored_balances_agree():
    state = clawed_back_ledger()
    clawback = ledger.AccountId.clawback("p", "USD")
    assert ledger_run(state, stored_balances={clawback: -500}).violations == []

    assert codes(ledger_run(state, stored_balances={clawback: -400})) == ["LEDGER_ACCOUNT_MISMATCH"]
    hold = state.transfers["p2:hold"]
    tampered = replace(
        hold,
        postings=(
            ledger.Posting(ledger.AccountId.card_clearing("USD"), ledger.Side.DEBIT, 600),
            ledger.Posting(ledger.AccountId.escrow("USD"), ledger.Side.CREDIT, 600),
        ),
    )
    state = replace(state, transfers={**state.transfers, "p2:hold": tampered})
    assert codes(ledger_run(state, stored_balances={clawback: -500})) == ["LEDGER_SHARE_MISMATCH"]


# -- card money --------------------------------------------------------------------------------


def charged(pid, cents=500):
    sample = sample_chain().charged
    charge = sample.data.charge.model_copy(update={"captured_cents": cents})
    data = sample.data.model_copy(update={"charge": charge, "amount_cents": cents})
    return sample.model_copy(update={"payment_id": pid, "event_id": f"{pid}-charged", "data": data})


def refunded(pid, cents=500):
    data = ev.FundsRefundedData(
        hold_id=f"{pid}:hold", amount_cents=cents, currency="USD", customer_id="c", refunded_at=AT
    )
    return ev.FundsRefunded.create(
        payment_id=pid, data=data, producer="release", dedup_key="resolution", occurred_at=AT
    )


def card_refunded(pid, cents=500, cause=None):
    data = ev.CardRefundedData(
        processor="simulator",
        authorization_id="sim_auth_1",
        refund_id=f"sim_refund_{cents}",
        amount_cents=cents,
        currency="USD",
        refund_of="FundsRefunded",
    )
    return ev.CardRefunded.create(payment_id=pid, data=data, producer="charge", cause=cause, occurred_at=AT)


def test_a_charged_payment_refunded_at_the_card_reconciles():
    refund = refunded("p1")
    assert "REFUND_NOT_AT_CARD" not in codes(
        run([charged("p1"), held("p1"), refund, card_refunded("p1", cause=refund)])
    )


def test_a_hold_other_than_the_capture_is_reported():
    result = run([charged("p1", cents=499), held("p1")])
    assert [(v.code, v.payment_id) for v in result.violations if v.code == "HELD_NOT_CAPTURED"] == [
        ("HELD_NOT_CAPTURED", "p1")
    ]


@pytest.mark.parametrize("at_card", [[], [400], [500, 500]])
def test_a_refund_the_card_did_not_get_back_exactly_is_reported(at_card):
    """None, too little, or twice (two refunds, not one redelivered)."""
    events = [charged("p1"), held("p1"), refunded("p1"), *(card_refunded("p1", cents) for cents in at_card)]
    result = run(events)
    assert [v.code for v in result.violations if v.code == "REFUND_NOT_AT_CARD"] == ["REFUND_NOT_AT_CARD"]


def test_a_redelivered_card_refund_counts_once():
    refund = refunded("p1")
    copy = card_refunded("p1", cause=refund)
    assert "REFUND_NOT_AT_CARD" not in codes(run([charged("p1"), held("p1"), refund, copy, copy]))


def report_line(kind, cents, fee):
    return SettlementLine(AT.date(), kind, "sim_auth_1", "p1", "USD", cents, fee)


def settled_payment():
    """A payment charged 500 cents and refunded 200 at the card, and what the acquirer reports."""
    refund = refunded("p1", cents=200)
    events = [charged("p1"), held("p1"), refund, card_refunded("p1", 200, cause=refund)]
    fee = FeeSchedule().fee(500)
    return events, [report_line(LineKind.CAPTURE, 500, fee), report_line(LineKind.REFUND, 200, 0)]


def test_a_settlement_report_that_settles_the_run_reconciles():
    events, lines = settled_payment()
    assert "SETTLEMENT_MISMATCH" not in codes(run(events, settlement_lines=lines))


@pytest.mark.parametrize(
    "tamper, kinds",
    [
        (lambda lines: lines[1:], {"captured", "fees", "net"}),  # a capture the acquirer never settled
        (lambda lines: lines[:1], {"refunded", "net"}),  # a card refund it never paid back
        (lambda lines: [replace(lines[0], fee_minor=lines[0].fee_minor + 1), lines[1]], {"fees", "net"}),
        (
            lambda lines: [*lines, report_line(LineKind.CAPTURE, 500, FeeSchedule().fee(500))],
            {"captured", "fees", "net"},
        ),
    ],
)
def test_a_report_that_does_not_settle_the_run_is_reported(tamper, kinds):
    events, lines = settled_payment()
    violations = [
        v for v in run(events, settlement_lines=tamper(lines)).violations if v.code == "SETTLEMENT_MISMATCH"
    ]
    assert {v.message.split(" ")[4].rstrip(":") for v in violations} == kinds  # "over the run, USD <kind>:"


def charged_back_payment():
    """A payment charged 500 cents, charged back by the network and lost: the hold refunded to
    the customer with ``chargeback`` set, and the acquirer's capture and chargeback lines."""
    opened = ev.DisputeOpened.create(
        payment_id="p1",
        data=ev.DisputeOpenedData(dispute_id="sim_dp_1", reason="fraudulent"),
        producer=ev.PROCESSOR_PRODUCER,
        occurred_at=AT,
    )
    refund = refunded("p1")
    refund = refund.model_copy(update={"data": refund.data.model_copy(update={"chargeback": True})})
    fees = FeeSchedule()
    lines = [
        report_line(LineKind.CAPTURE, 500, fees.fee(500)),
        report_line(LineKind.CHARGEBACK, 500, fees.chargeback_minor),
    ]
    return [charged("p1"), held("p1"), opened, refund], lines


def won_chargeback():
    """A payment charged 500 cents, charged back and won: the network's decision releases it, and
    the acquirer's capture, chargeback and reversal lines."""
    opened = ev.DisputeOpened.create(
        payment_id="p1",
        data=ev.DisputeOpenedData(dispute_id="sim_dp_1", reason="product_not_received"),
        producer=ev.PROCESSOR_PRODUCER,
        occurred_at=AT,
    )
    won = ev.DisputeResolved.create(
        payment_id="p1",
        data=ev.DisputeResolvedData(dispute_id="sim_dp_1", outcome=ev.DisputeOutcome.RELEASE),
        producer=ev.PROCESSOR_PRODUCER,
        occurred_at=AT,
    )
    fees = FeeSchedule()
    lines = [
        report_line(LineKind.CAPTURE, 500, fees.fee(500)),
        report_line(LineKind.CHARGEBACK, 500, fees.chargeback_minor),
        report_line(LineKind.CHARGEBACK_REVERSAL, 500, 0),
    ]
    return [charged("p1"), held("p1"), opened, won], lines


def test_a_won_chargeback_is_given_back_on_the_report_or_reported_missing():
    events, lines = won_chargeback()
    assert "SETTLEMENT_MISMATCH" not in codes(run(events, settlement_lines=lines))
    missing = run(events, settlement_lines=lines[:2]).violations
    kinds = {v.message.split(" ")[4].rstrip(":") for v in missing if v.code == "SETTLEMENT_MISMATCH"}
    assert kinds == {"chargebacks_reversed", "net"}


def test_a_lost_chargeback_needs_no_refund_at_the_card_and_settles():
    events, lines = charged_back_payment()
    found = codes(run(events, settlement_lines=lines))
    assert "REFUND_NOT_AT_CARD" not in found and "SETTLEMENT_MISMATCH" not in found


def test_a_lost_chargeback_refunded_at_the_card_as_well_is_reported():
    events, lines = charged_back_payment()
    events.append(card_refunded("p1", 500, cause=events[-1]))
    lines.append(report_line(LineKind.REFUND, 500, 0))
    assert "REFUND_NOT_AT_CARD" in codes(run(events, settlement_lines=lines))


def test_a_chargeback_the_reports_do_not_show_or_the_run_never_saw_is_reported():
    events, lines = charged_back_payment()
    missing = run(events, settlement_lines=lines[:1]).violations
    kinds = {v.message.split(" ")[4].rstrip(":") for v in missing if v.code == "SETTLEMENT_MISMATCH"}
    assert kinds == {"charged_back", "fees", "net"}
    unseen = [e for e in events if not isinstance(e, ev.DisputeOpened)]
    assert "SETTLEMENT_MISMATCH" in codes(run(unseen, settlement_lines=lines))


def settlement_result(discrepancies, report_error=None):
    """The settlement match's event for a day, with these discrepancies."""
    listed = [
        ev.SettlementDiscrepancy(
            kind=kind,
            payment_id="p1",
            line_kind="capture",
            reference="sim_auth_1",
            currency="USD",
            booked_minor=500,
            reported_minor=None,
        )
        for kind in discrepancies
    ]
    data = ev.SettlementReconciledData(
        day=AT.date(),
        report_key="acquirer/settlement/x.csv",
        report_error=report_error,
        lines=1,
        matched=1 - len(listed),
        discrepancy_count=len(listed) + (1 if report_error else 0),
        discrepancies=listed,
        reported=[],
    )
    return ev.SettlementReconciled.create(
        payment_id="settlement-x", data=data, producer="settlement", dedup_key="x", occurred_at=AT
    )


@pytest.mark.parametrize(
    "discrepancies, report_error, flagged",
    [([], None, False), (["not_reported"], None, True), ([], "missing", True)],
)
def test_a_day_whose_settlement_match_found_discrepancies_is_reported(discrepancies, report_error, flagged):
    events, lines = settled_payment()
    result = run([*events, settlement_result(discrepancies, report_error)], settlement_lines=lines)
    assert ("SETTLEMENT_DISCREPANCY" in codes(result)) is flagged


def test_a_held_capture_whose_card_fee_the_ledger_did_not_book_is_reported():
    request = ledger.HoldRequest("p1", "c1", "v1", 500, "USD", AT + timedelta(days=7), AT)
    fee = FeeSchedule().fee(500)
    booked = ledger.place_hold(ledger.LedgerState(), replace(request, card_fee_cents=fee))
    unbooked = ledger.place_hold(ledger.LedgerState(), request)
    assert isinstance(booked, ledger.Applied) and isinstance(unbooked, ledger.Applied)
    events = [charged("p1"), held("p1")]
    for outcome, flagged in ((booked, False), (unbooked, True)):
        result = run(events, holds=[outcome.hold], transfers=list(outcome.transfers))
        assert ("CARD_FEE_NOT_BOOKED" in codes(result)) is flagged


def network_opened(pid, dispute="cb1"):
    data = ev.DisputeOpenedData(dispute_id=dispute, reason="fraudulent")
    return ev.DisputeOpened.create(payment_id=pid, data=data, producer=ev.PROCESSOR_PRODUCER, occurred_at=AT)


def clearing_books(*, card_refund: bool, chargeback_fee: int):
    """p1 held (its fee booked), refunded, charged back at the network; the card refund and the
    network's fee booked as told."""
    fees = FeeSchedule()
    request = ledger.HoldRequest("p1", "c1", "v1", 500, "USD", AT + timedelta(days=7), AT, fees.fee(500))
    state = ledger.place_hold(ledger.LedgerState(), request)
    assert isinstance(state, ledger.Applied)
    state = ledger.refund(state.state, "p1", resolution_id="r1", at=AT)
    assert isinstance(state, ledger.Applied)
    if card_refund:
        state = ledger.return_to_card(state.state, "p1", refund_id="rf1", amount_cents=500, at=AT)
        assert isinstance(state, ledger.Applied)
    state = ledger.open_dispute(
        state.state, "p1", dispute_id="cb1", at=AT, network=True, network_fee_cents=chargeback_fee
    )
    assert isinstance(state, ledger.Applied)
    return state.state


@pytest.mark.parametrize(
    ("card_refund", "chargeback_fee", "flagged"),
    [
        (True, FeeSchedule().chargeback_minor, False),
        (False, FeeSchedule().chargeback_minor, True),
        (True, 0, True),
    ],
)
def test_card_clearing_that_is_not_what_the_network_settles_is_reported(card_refund, chargeback_fee, flagged):
    books = clearing_books(card_refund=card_refund, chargeback_fee=chargeback_fee)
    refund = refunded("p1")
    events = [charged("p1"), held("p1"), refund, card_refunded("p1", cause=refund), network_opened("p1")]
    result = run(events, holds=list(books.holds.values()), transfers=list(books.transfers.values()))
    assert ("CARD_CLEARING_MISMATCH" in codes(result)) is flagged
    parked = run(
        events,
        dlq=[DlqRecord("q", "p1", "CardRefunded", "Boom")],
        holds=list(books.holds.values()),
        transfers=list(books.transfers.values()),
    )
    assert "CARD_CLEARING_MISMATCH" not in codes(parked)  # it waits in the DLQ with its reason
