from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from paypipe.domain.ledger import (
    EXPIRY_RESOLUTION_ID,
    AccountId,
    AccountKind,
    Applied,
    DisputeOutcome,
    DisputePhase,
    Duplicate,
    Hold,
    HoldRequest,
    HoldStatus,
    LedgerState,
    Outcome,
    PayoutReturn,
    Posting,
    Rejected,
    Rejection,
    Side,
    Transfer,
    TransferKind,
    expire,
    expire_due,
    mark_dispute_aged,
    open_dispute,
    place_hold,
    record_payout,
    refund,
    release,
    resolve_dispute,
    return_payout,
    return_to_card,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOLD_UNTIL = T0 + timedelta(days=7)
USD = "USD"
CLEARING = AccountId.card_clearing(USD)
ESCROW = AccountId.escrow(USD)
CUSTOMER = AccountId.customer("cus-1", USD)
PROVIDER = AccountId.provider("prov-1", USD)
SETTLEMENT = AccountId.settlement(USD)
CLAWBACK = AccountId.clawback("prov-1", USD)
DISPUTES = AccountId.disputes(USD)
RELEASE = DisputeOutcome.RELEASE
REFUND = DisputeOutcome.REFUND


def hold_request(**changes: Any) -> HoldRequest:
    request = HoldRequest(
        payment_id="pay-1",
        customer_id="cus-1",
        provider_id="prov-1",
        amount_cents=10_000,
        currency=USD,
        hold_until=HOLD_UNTIL,
        held_at=T0,
    )
    return replace(request, **changes)


def applied(outcome: Outcome) -> Applied:
    assert isinstance(outcome, Applied), outcome
    return outcome


def rejected(outcome: Outcome, reason: Rejection) -> Rejected:
    assert isinstance(outcome, Rejected), outcome
    assert outcome.reason is reason, outcome
    return outcome


def held(amount_cents: int = 10_000) -> LedgerState:
    return applied(place_hold(LedgerState(), hold_request(amount_cents=amount_cents))).state


def balances(state: LedgerState) -> dict[AccountId, int]:
    return {account: cents for account, cents in state.balances.items() if cents}


# --- hold -----------------------------------------------------------------------------------------


def test_place_hold_moves_card_clearing_into_escrow() -> None:
    outcome = applied(place_hold(LedgerState(), hold_request()))

    assert outcome.hold.status is HoldStatus.HELD
    assert outcome.hold.version == 1
    assert outcome.expected_hold_version == 0
    assert balances(outcome.state) == {CLEARING: -10_000, ESCROW: 10_000}
    (transfer,) = outcome.transfers
    assert transfer.transfer_id == "pay-1:hold"
    assert transfer.kind is TransferKind.HOLD
    assert outcome.state.totals_by_currency() == {USD: 0}


def test_a_holds_card_fee_is_booked_as_the_platforms_expense_against_card_clearing() -> None:
    outcome = applied(place_hold(LedgerState(), hold_request(card_fee_cents=320)))

    fees = AccountId.card_fees(USD)
    assert balances(outcome.state) == {CLEARING: -10_000 + 320, ESCROW: 10_000, fees: -320}
    assert [t.kind for t in outcome.transfers] == [TransferKind.HOLD, TransferKind.CARD_FEE]
    assert outcome.transfers[1].transfer_id == "pay-1:card-fee"
    again = place_hold(outcome.state, hold_request(card_fee_cents=320))
    assert again == Duplicate(outcome.hold, outcome.transfers)  # booked once
    rejected(place_hold(outcome.state, hold_request(card_fee_cents=300)), Rejection.IDEMPOTENCY_CONFLICT)
    # A refund gives the customer the whole amount: the fee stays the platform's.
    refunded = applied(refund(outcome.state, "pay-1", resolution_id="r1", at=T0 + timedelta(hours=1)))
    assert balances(refunded.state)[fees] == -320
    assert refunded.state.totals_by_currency() == {USD: 0}


def test_duplicate_hold_is_a_no_op_returning_the_original() -> None:
    first = applied(place_hold(LedgerState(), hold_request()))

    again = place_hold(first.state, hold_request(held_at=T0 + timedelta(seconds=5)))

    assert again == Duplicate(first.hold, first.transfers)


@pytest.mark.parametrize(
    "change",
    [{"amount_cents": 9_999}, {"provider_id": "prov-2"}, {"customer_id": "cus-2"}, {"currency": "EUR"}],
)
def test_same_payment_with_other_terms_is_an_idempotency_conflict(change: dict[str, object]) -> None:
    state = held()

    rejected(place_hold(state, hold_request(**change)), Rejection.IDEMPOTENCY_CONFLICT)


@pytest.mark.parametrize(
    "change",
    [
        {"amount_cents": 0},
        {"amount_cents": -5},
        {"currency": "usd"},
        {"payment_id": ""},
        {"hold_until": T0},
        {"held_at": T0.replace(tzinfo=None)},
        {"card_fee_cents": -1},
    ],
)
def test_invalid_hold_requests_are_rejected(change: dict[str, object]) -> None:
    rejected(place_hold(LedgerState(), hold_request(**change)), Rejection.INVALID_REQUEST)


# --- release / refund -----------------------------------------------------------------------------


def test_full_release_pays_the_provider() -> None:
    outcome = applied(release(held(), "pay-1", amount_cents=None, resolution_id="done-1", at=T0))

    assert outcome.hold.status is HoldStatus.RELEASED
    assert (outcome.hold.released_cents, outcome.hold.refunded_cents) == (10_000, 0)
    assert balances(outcome.state) == {CLEARING: -10_000, PROVIDER: 10_000}
    assert outcome.transfers[0].transfer_id == "pay-1:resolution"
    assert outcome.transfers[0].reference == "done-1"


def test_partial_release_refunds_the_rest_to_the_customer() -> None:
    outcome = applied(release(held(), "pay-1", amount_cents=7_500, resolution_id="done-1", at=T0))

    assert outcome.hold.status is HoldStatus.PARTIALLY_RELEASED
    assert balances(outcome.state) == {CLEARING: -10_000, PROVIDER: 7_500, CUSTOMER: 2_500}
    assert outcome.transfers[0].kind is TransferKind.PARTIAL_RELEASE
    assert len(outcome.transfers[0].postings) == 3


@pytest.mark.parametrize("amount", [0, -1, 10_001])
def test_release_amount_outside_the_hold_is_rejected(amount: int) -> None:
    rejected(
        release(held(), "pay-1", amount_cents=amount, resolution_id="r", at=T0), Rejection.INVALID_REQUEST
    )


def test_refund_returns_everything_to_the_customer() -> None:
    outcome = applied(refund(held(), "pay-1", resolution_id="void-1", at=T0))

    assert outcome.hold.status is HoldStatus.REFUNDED
    assert balances(outcome.state) == {CLEARING: -10_000, CUSTOMER: 10_000}


def test_repeated_resolution_returns_the_original_result() -> None:
    first = applied(release(held(), "pay-1", amount_cents=4_000, resolution_id="done-1", at=T0))

    again = release(
        first.state, "pay-1", amount_cents=4_000, resolution_id="done-1", at=T0 + timedelta(hours=1)
    )

    assert again == Duplicate(first.hold, first.transfers)


def test_other_resolution_of_a_resolved_hold_is_refused() -> None:
    state = applied(release(held(), "pay-1", resolution_id="done-1", at=T0)).state

    rejected(refund(state, "pay-1", resolution_id="void-1", at=T0), Rejection.ALREADY_RESOLVED)
    rejected(release(state, "pay-1", resolution_id="done-2", at=T0), Rejection.ALREADY_RESOLVED)


def test_same_resolution_id_with_another_body_is_a_conflict() -> None:
    state = applied(release(held(), "pay-1", resolution_id="done-1", at=T0)).state

    rejected(
        release(state, "pay-1", amount_cents=1, resolution_id="done-1", at=T0), Rejection.IDEMPOTENCY_CONFLICT
    )
    rejected(refund(state, "pay-1", resolution_id="done-1", at=T0), Rejection.IDEMPOTENCY_CONFLICT)


def test_commands_for_an_unknown_hold_are_retryable_rejections() -> None:
    outcome = rejected(release(LedgerState(), "nope", resolution_id="r", at=T0), Rejection.NOT_FOUND)

    assert outcome.retryable


def test_unfrozen_hold_cannot_be_resolved_by_command_once_expired() -> None:
    state = held()

    rejected(release(state, "pay-1", resolution_id="late", at=HOLD_UNTIL), Rejection.HOLD_EXPIRED)
    rejected(refund(state, "pay-1", resolution_id="late", at=HOLD_UNTIL), Rejection.HOLD_EXPIRED)


def test_expiry_resolution_id_is_reserved() -> None:
    rejected(refund(held(), "pay-1", resolution_id=EXPIRY_RESOLUTION_ID, at=T0), Rejection.INVALID_REQUEST)


def test_naive_timestamps_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        refund(held(), "pay-1", resolution_id="r", at=T0.replace(tzinfo=None))


# --- expiry ---------------------------------------------------------------------------------------


def test_expiry_releases_due_holds_only() -> None:
    state = applied(
        place_hold(
            held(),
            hold_request(payment_id="pay-2", amount_cents=500, hold_until=HOLD_UNTIL + timedelta(days=1)),
        )
    ).state

    sweep = expire_due(state, HOLD_UNTIL)

    (only,) = sweep.outcomes
    assert isinstance(only, Applied)
    assert only.hold.payment_id == "pay-1"
    assert only.hold.status is HoldStatus.EXPIRED_RELEASED
    assert sweep.state.holds["pay-2"].status is HoldStatus.HELD
    assert balances(sweep.state) == {CLEARING: -10_500, ESCROW: 500, PROVIDER: 10_000}


def test_expiry_before_hold_until_is_not_due() -> None:
    rejected(expire(held(), "pay-1", as_of=HOLD_UNTIL - timedelta(microseconds=1)), Rejection.NOT_DUE)


def test_repeated_expiry_is_a_duplicate() -> None:
    first = applied(expire(held(), "pay-1", as_of=HOLD_UNTIL))

    assert expire(first.state, "pay-1", as_of=HOLD_UNTIL + timedelta(hours=1)) == Duplicate(
        first.hold, first.transfers
    )
    assert expire_due(first.state, HOLD_UNTIL + timedelta(days=1)).outcomes == ()


def test_expiry_of_a_resolved_hold_is_refused() -> None:
    state = applied(refund(held(), "pay-1", resolution_id="void-1", at=T0)).state

    rejected(expire(state, "pay-1", as_of=HOLD_UNTIL), Rejection.ALREADY_RESOLVED)


# --- disputes -------------------------------------------------------------------------------------


def frozen_by(*dispute_ids: str, state: LedgerState | None = None) -> LedgerState:
    state = state or held()
    for dispute_id in dispute_ids:
        state = applied(open_dispute(state, "pay-1", dispute_id=dispute_id, at=T0)).state
    return state


def test_a_frozen_hold_cannot_be_released_refunded_or_expired_by_the_core() -> None:
    frozen = applied(open_dispute(held(), "pay-1", dispute_id="dsp-1", at=T0))

    assert frozen.hold.status is HoldStatus.FROZEN
    assert frozen.hold.dispute("dsp-1").phase is DisputePhase.ESCROW  # type: ignore[union-attr]
    assert frozen.transfers == ()
    rejected(release(frozen.state, "pay-1", resolution_id="service", at=T0), Rejection.FROZEN)
    rejected(refund(frozen.state, "pay-1", resolution_id="void", at=T0), Rejection.FROZEN)
    rejected(expire(frozen.state, "pay-1", as_of=HOLD_UNTIL), Rejection.FROZEN)
    assert expire_due(frozen.state, HOLD_UNTIL + timedelta(days=30)).outcomes == ()


def test_only_the_last_open_dispute_resolves_the_hold_and_a_refund_wins() -> None:
    state = frozen_by("dsp-1", "dsp-2")

    first = applied(resolve_dispute(state, "pay-1", dispute_id="dsp-1", outcome=REFUND, at=T0))
    assert first.hold.status is HoldStatus.FROZEN and first.transfers == ()
    last = applied(resolve_dispute(first.state, "pay-1", dispute_id="dsp-2", outcome=RELEASE, at=T0))

    assert last.hold.status is HoldStatus.REFUNDED
    assert balances(last.state) == {CLEARING: -10_000, CUSTOMER: 10_000}


def test_disputes_all_released_release_the_hold_even_after_hold_until() -> None:
    state = frozen_by("dsp-1")
    late = HOLD_UNTIL + timedelta(days=3)

    won = applied(resolve_dispute(state, "pay-1", dispute_id="dsp-1", outcome=RELEASE, at=late))

    assert won.hold.status is HoldStatus.RELEASED and won.hold.resolution_id == "dispute:dsp-1"
    assert balances(won.state) == {CLEARING: -10_000, PROVIDER: 10_000}


def test_a_resolution_must_name_an_open_dispute_and_decides_once() -> None:
    rejected(
        resolve_dispute(held(), "pay-1", dispute_id="dsp-9", outcome=REFUND, at=T0),
        Rejection.DISPUTE_NOT_OPEN,
    )
    state = frozen_by("dsp-1", "dsp-2")
    rejected(
        resolve_dispute(state, "pay-1", dispute_id="dsp-9", outcome=REFUND, at=T0), Rejection.DISPUTE_NOT_OPEN
    )
    once = applied(resolve_dispute(state, "pay-1", dispute_id="dsp-1", outcome=RELEASE, at=T0))

    again = resolve_dispute(once.state, "pay-1", dispute_id="dsp-1", outcome=RELEASE, at=T0)
    other = resolve_dispute(once.state, "pay-1", dispute_id="dsp-1", outcome=REFUND, at=T0)

    assert isinstance(again, Duplicate)
    rejected(other, Rejection.DISPUTE_ALREADY_RESOLVED)


def test_opening_a_known_dispute_again_is_a_duplicate() -> None:
    frozen = applied(open_dispute(held(), "pay-1", dispute_id="dsp-1", at=T0))
    assert open_dispute(frozen.state, "pay-1", dispute_id="dsp-1", at=T0) == Duplicate(frozen.hold, ())


def test_a_dispute_after_release_holds_the_payout_back_until_it_is_resolved() -> None:
    released = applied(release(held(), "pay-1", resolution_id="done", at=T0)).state
    disputed = applied(open_dispute(released, "pay-1", dispute_id="dsp-1", at=T0))
    assert disputed.hold.dispute("dsp-1").phase is DisputePhase.PAYOUT  # type: ignore[union-attr]
    assert disputed.hold.payout_blocked

    rejected(
        record_payout(disputed.state, "pay-1", amount_cents=10_000, payout_ref="ach-1", at=T0),
        Rejection.DISPUTED,
    )
    cleared = applied(resolve_dispute(disputed.state, "pay-1", dispute_id="dsp-1", outcome=RELEASE, at=T0))
    paid = applied(record_payout(cleared.state, "pay-1", amount_cents=10_000, payout_ref="ach-1", at=T0))
    assert balances(paid.state) == {CLEARING: -10_000, SETTLEMENT: 10_000}


def test_a_payout_dispute_lost_reverses_the_release_and_no_payout_follows() -> None:
    released = applied(release(held(), "pay-1", resolution_id="done", at=T0)).state
    disputed = applied(open_dispute(released, "pay-1", dispute_id="dsp-1", at=T0)).state

    lost = applied(resolve_dispute(disputed, "pay-1", dispute_id="dsp-1", outcome=REFUND, at=T0))

    assert lost.hold.reversed_cents == 10_000
    assert balances(lost.state) == {CLEARING: -10_000, CUSTOMER: 10_000}
    rejected(
        record_payout(lost.state, "pay-1", amount_cents=10_000, payout_ref="ach-1", at=T0), Rejection.REFUNDED
    )
    rejected(open_dispute(lost.state, "pay-1", dispute_id="dsp-2", at=T0), Rejection.REFUNDED)


def test_a_dispute_after_hold_until_lets_the_expiry_release_but_holds_the_payout() -> None:
    disputed = applied(open_dispute(held(), "pay-1", dispute_id="dsp-1", at=HOLD_UNTIL))
    assert disputed.hold.status is HoldStatus.HELD
    assert disputed.hold.dispute("dsp-1").phase is DisputePhase.PAYOUT  # type: ignore[union-attr]

    expired = applied(expire(disputed.state, "pay-1", as_of=HOLD_UNTIL + timedelta(minutes=5)))

    assert expired.hold.released_cents == 10_000 and expired.hold.payout_blocked


def paid_out(state: LedgerState, payment_id: str, **request: Any) -> LedgerState:
    state = applied(place_hold(state, hold_request(payment_id=payment_id, **request))).state
    state = applied(release(state, payment_id, resolution_id="done", at=T0)).state
    hold = state.holds[payment_id]
    paid = record_payout(
        state, payment_id, amount_cents=hold.released_cents, payout_ref=f"ach-{payment_id}", at=T0
    )
    return applied(paid).state


def test_a_dispute_after_the_payout_books_a_clawback_netted_from_the_next_payouts() -> None:
    state = paid_out(LedgerState(), "pay-1")

    booked = applied(open_dispute(state, "pay-1", dispute_id="dsp-1", at=T0))
    assert booked.hold.dispute("dsp-1").phase is DisputePhase.CLAWBACK  # type: ignore[union-attr]
    assert [t.kind for t in booked.transfers] == [TransferKind.CLAWBACK]
    assert booked.state.balance(CLAWBACK) == -10_000 and booked.state.balance(DISPUTES) == 10_000

    state = paid_out(booked.state, "pay-2", amount_cents=6_000)
    assert state.holds["pay-2"].paid_out_cents == 0 and state.holds["pay-2"].netted_cents == 6_000
    state = paid_out(state, "pay-3", amount_cents=8_000)
    assert state.holds["pay-3"].paid_out_cents == 4_000 and state.holds["pay-3"].netted_cents == 4_000
    assert state.balance(CLAWBACK) == 0

    refunded = applied(resolve_dispute(state, "pay-1", dispute_id="dsp-1", outcome=REFUND, at=T0))
    assert refunded.state.balance(CUSTOMER) == 10_000 and refunded.state.balance(DISPUTES) == 0
    assert refunded.state.balance(SETTLEMENT) == 10_000 + 4_000


def test_a_clawback_won_by_the_provider_is_paid_back_with_the_next_payout() -> None:
    state = paid_out(LedgerState(), "pay-1")
    state = applied(open_dispute(state, "pay-1", dispute_id="dsp-1", at=T0)).state
    state = paid_out(state, "pay-2", amount_cents=4_000)  # collects 4,000 of the 10,000 owed

    won = applied(resolve_dispute(state, "pay-1", dispute_id="dsp-1", outcome=RELEASE, at=T0)).state
    assert won.balance(CLAWBACK) == 4_000 and won.balance(DISPUTES) == 0

    state = applied(place_hold(won, hold_request(payment_id="pay-3", amount_cents=1_000))).state
    state = applied(release(state, "pay-3", resolution_id="done", at=T0)).state
    capped = applied(
        record_payout(state, "pay-3", amount_cents=1_000, payout_ref="a3", at=T0, max_entry_cents=3_000)
    )
    assert capped.hold.paid_out_cents == 3_000 and capped.hold.netted_cents == -2_000
    assert capped.state.balance(CLAWBACK) == 2_000


def test_a_second_dispute_of_an_open_clawback_books_nothing_more() -> None:
    state = paid_out(LedgerState(), "pay-1")
    state = applied(open_dispute(state, "pay-1", dispute_id="dsp-1", at=T0)).state

    joined = applied(open_dispute(state, "pay-1", dispute_id="dsp-2", at=T0))

    assert joined.transfers == () and joined.hold.dispute("dsp-2").episode == "dsp-1"  # type: ignore[union-attr]
    first = applied(resolve_dispute(joined.state, "pay-1", dispute_id="dsp-1", outcome=RELEASE, at=T0))
    assert first.transfers == ()
    last = applied(resolve_dispute(first.state, "pay-1", dispute_id="dsp-2", outcome=REFUND, at=T0))
    assert [t.kind for t in last.transfers] == [TransferKind.CLAWBACK_REFUND]


def test_disputes_are_refused_once_the_window_after_release_has_closed() -> None:
    released = applied(release(held(), "pay-1", resolution_id="done", at=T0)).state
    window = timedelta(days=60)

    applied(open_dispute(released, "pay-1", dispute_id="dsp-1", at=T0 + window, window=window))
    rejected(
        open_dispute(
            released, "pay-1", dispute_id="dsp-1", at=T0 + window + timedelta(seconds=1), window=window
        ),
        Rejection.DISPUTE_WINDOW_CLOSED,
    )


def test_time_never_runs_backwards_for_a_payment() -> None:
    state = frozen_by("dsp-1")
    frozen_at = state.holds["pay-1"].last_change

    early = applied(
        resolve_dispute(state, "pay-1", dispute_id="dsp-1", outcome=RELEASE, at=T0 - timedelta(days=2))
    )

    assert early.hold.resolved_at == frozen_at >= early.hold.held_at
    assert early.hold.dispute("dsp-1").closed_at >= early.hold.dispute("dsp-1").opened_at  # type: ignore[union-attr, operator]
    backdated = applied(release(held(), "pay-1", resolution_id="done", at=T0 - timedelta(hours=1)))
    assert backdated.hold.resolved_at == T0


def test_an_aged_dispute_is_marked_once() -> None:
    state = frozen_by("dsp-1")

    marked = applied(mark_dispute_aged(state, "pay-1", dispute_id="dsp-1", at=T0 + timedelta(days=31)))

    assert marked.hold.dispute("dsp-1").aged_at == T0 + timedelta(days=31)  # type: ignore[union-attr]
    assert isinstance(mark_dispute_aged(marked.state, "pay-1", dispute_id="dsp-1", at=T0), Duplicate)
    rejected(mark_dispute_aged(state, "pay-1", dispute_id="dsp-9", at=T0), Rejection.DISPUTE_NOT_OPEN)


# --- payout ---------------------------------------------------------------------------------------


def test_payout_moves_the_released_share_to_settlement_once() -> None:
    state = applied(release(held(), "pay-1", amount_cents=6_000, resolution_id="done", at=T0)).state

    paid = applied(record_payout(state, "pay-1", amount_cents=6_000, payout_ref="ach-1", at=T0))

    assert balances(paid.state) == {CLEARING: -10_000, CUSTOMER: 4_000, SETTLEMENT: 6_000}
    assert paid.hold.payout_ref == "ach-1"
    assert record_payout(paid.state, "pay-1", amount_cents=6_000, payout_ref="ach-1", at=T0) == Duplicate(
        paid.hold, paid.transfers
    )
    rejected(
        record_payout(paid.state, "pay-1", amount_cents=6_000, payout_ref="ach-2", at=T0),
        Rejection.ALREADY_PAID_OUT,
    )
    rejected(
        record_payout(paid.state, "pay-1", amount_cents=5_000, payout_ref="ach-1", at=T0),
        Rejection.IDEMPOTENCY_CONFLICT,
    )


def test_payout_requires_a_release_of_exactly_that_amount() -> None:
    rejected(
        record_payout(held(), "pay-1", amount_cents=10_000, payout_ref="a", at=T0), Rejection.NOT_RELEASED
    )
    refunded = applied(refund(held(), "pay-1", resolution_id="void", at=T0)).state
    rejected(record_payout(refunded, "pay-1", amount_cents=10_000, payout_ref="a", at=T0), Rejection.REFUNDED)
    released = applied(release(held(), "pay-1", resolution_id="done", at=T0)).state
    rejected(
        record_payout(released, "pay-1", amount_cents=10_001, payout_ref="a", at=T0),
        Rejection.INVALID_REQUEST,
    )


def test_movement_that_would_overdraw_an_account_is_refused() -> None:
    state = applied(release(held(), "pay-1", resolution_id="done", at=T0)).state
    drained = replace(state, balances={**state.balances, PROVIDER: 100})

    outcome = rejected(
        record_payout(drained, "pay-1", amount_cents=10_000, payout_ref="ach-1", at=T0),
        Rejection.INSUFFICIENT_FUNDS,
    )

    assert "provider:prov-1:USD" in outcome.message


# --- building blocks ------------------------------------------------------------------------------


def test_unbalanced_or_mixed_currency_transfers_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="unbalanced"):
        Transfer("t", TransferKind.HOLD, "p", USD, (Posting(ESCROW, Side.CREDIT, 5),), T0)
    with pytest.raises(ValueError, match="mixes currencies"):
        Transfer(
            "t",
            TransferKind.HOLD,
            "p",
            USD,
            (Posting(ESCROW, Side.CREDIT, 5), Posting(AccountId.card_clearing("EUR"), Side.DEBIT, 5)),
            T0,
        )
    with pytest.raises(ValueError, match="positive"):
        Posting(ESCROW, Side.CREDIT, 0)


def test_only_card_clearing_clawbacks_and_the_platforms_card_expenses_may_go_negative() -> None:
    assert [
        kind
        for kind in AccountKind
        if AccountId(kind, USD, "x" * (kind in {"customer", "provider", "clawback"})).may_go_negative
    ] == [
        AccountKind.CLAWBACK,
        AccountKind.CARD_CLEARING,
        AccountKind.CARD_FEES,
        AccountKind.CHARGEBACK_LOSSES,
    ]


# --- card clearing: refunds at the card, chargebacks ------------------------------------------------

FEES = AccountId.card_fees(USD)
LOSSES = AccountId.chargeback_losses(USD)
CARD_FEE = 320
NETWORK_FEE = 1_500


def refunded_in_escrow() -> LedgerState:
    state = applied(place_hold(LedgerState(), hold_request(card_fee_cents=CARD_FEE))).state
    return applied(refund(state, "pay-1", resolution_id="r1", at=T0 + timedelta(hours=1))).state


def test_a_refund_reaching_the_card_leaves_the_customer_for_card_clearing_once() -> None:
    state = refunded_in_escrow()
    at = T0 + timedelta(hours=2)
    back = applied(return_to_card(state, "pay-1", refund_id="rf-1", amount_cents=10_000, at=at))

    (transfer,) = back.transfers
    assert (transfer.kind, transfer.transfer_id) == (TransferKind.CARD_REFUND, "pay-1:card-refund:rf-1")
    # Card clearing now holds what the network owes for the payment: nothing but the fee it kept.
    assert balances(back.state) == {CLEARING: CARD_FEE, FEES: -CARD_FEE}
    again = return_to_card(back.state, "pay-1", refund_id="rf-1", amount_cents=10_000, at=at + timedelta(1))
    assert again == Duplicate(back.hold, back.transfers)
    other = return_to_card(back.state, "pay-1", refund_id="rf-1", amount_cents=9_000, at=at)
    rejected(other, Rejection.IDEMPOTENCY_CONFLICT)
    # Never more than the payment refunded its customer: a second refund id finds nothing owed.
    more = return_to_card(back.state, "pay-1", refund_id="rf-2", amount_cents=1, at=at)
    assert "owes its customer 0 cents" in rejected(more, Rejection.INSUFFICIENT_FUNDS).message


def test_a_card_refund_of_a_payment_not_refunded_or_unknown_is_refused() -> None:
    state = held()
    rejected(
        return_to_card(state, "pay-1", refund_id="rf-1", amount_cents=1, at=T0), Rejection.INSUFFICIENT_FUNDS
    )
    rejected(return_to_card(state, "pay-9", refund_id="rf-1", amount_cents=1, at=T0), Rejection.NOT_FOUND)
    rejected(
        return_to_card(state, "pay-1", refund_id="rf-1", amount_cents=0, at=T0), Rejection.INVALID_REQUEST
    )


def test_a_lost_chargeback_books_the_networks_fee_and_its_refund_on_the_card() -> None:
    state = applied(place_hold(LedgerState(), hold_request(card_fee_cents=CARD_FEE))).state
    at = T0 + timedelta(days=1)
    opened = applied(
        open_dispute(state, "pay-1", dispute_id="cb1", at=at, network=True, network_fee_cents=NETWORK_FEE)
    )
    assert opened.hold.status is HoldStatus.FROZEN
    assert [t.transfer_id for t in opened.transfers] == ["pay-1:chargeback-fee:cb1"]
    again = open_dispute(
        opened.state, "pay-1", dispute_id="cb1", at=at, network=True, network_fee_cents=NETWORK_FEE
    )
    assert again == Duplicate(opened.hold, opened.transfers)
    lost = applied(
        resolve_dispute(opened.state, "pay-1", dispute_id="cb1", outcome=REFUND, at=at, network=True)
    )
    assert [t.kind for t in lost.transfers] == [TransferKind.REFUND, TransferKind.CARD_REFUND]
    assert lost.hold.charged_back
    assert balances(lost.state) == {CLEARING: CARD_FEE + NETWORK_FEE, FEES: -CARD_FEE - NETWORK_FEE}


def test_a_client_dispute_is_refused_a_network_fee() -> None:
    outcome = open_dispute(held(), "pay-1", dispute_id="d1", at=T0, network_fee_cents=NETWORK_FEE)
    rejected(outcome, Rejection.INVALID_REQUEST)


@pytest.mark.parametrize(("outcome", "loss"), [(REFUND, 10_000), (RELEASE, 0)])
def test_a_chargeback_of_a_refunded_payment_books_its_fee_and_lost_the_platforms_loss(
    outcome: DisputeOutcome, loss: int
) -> None:
    state = refunded_in_escrow()
    state = applied(
        return_to_card(state, "pay-1", refund_id="rf-1", amount_cents=10_000, at=T0 + timedelta(hours=2))
    ).state
    at = T0 + timedelta(days=1)
    opened = applied(
        open_dispute(state, "pay-1", dispute_id="cb1", at=at, network=True, network_fee_cents=NETWORK_FEE)
    )
    dispute = opened.hold.dispute("cb1")
    assert dispute is not None and dispute.after_refund
    assert opened.hold.status is HoldStatus.REFUNDED  # the hold is as it was
    assert opened.hold.open_disputes(dispute.phase) == ()
    # A client may still not dispute a refunded payment.
    rejected(open_dispute(opened.state, "pay-1", dispute_id="d2", at=at), Rejection.REFUNDED)
    decided = applied(
        resolve_dispute(opened.state, "pay-1", dispute_id="cb1", outcome=outcome, at=at, network=True)
    )
    assert [t.kind for t in decided.transfers] == ([TransferKind.CHARGEBACK_LOSS] if loss else [])
    expected = {CLEARING: CARD_FEE + NETWORK_FEE + loss, FEES: -CARD_FEE - NETWORK_FEE, LOSSES: -loss}
    assert balances(decided.state) == {account: cents for account, cents in expected.items() if cents}
    assert not decided.hold.charged_back  # the card is not refunded again, nor the customer
    again = resolve_dispute(decided.state, "pay-1", dispute_id="cb1", outcome=outcome, at=at, network=True)
    assert again == Duplicate(decided.hold, decided.transfers)


# --- payout returns -------------------------------------------------------------------------------

TRACE_1 = "011000010000001"
TRACE_2 = "011000010000002"


def returned(
    payment_id: str = "pay-1", trace: str = TRACE_1, code: str = "R03", **changes: Any
) -> PayoutReturn:
    return replace(PayoutReturn(payment_id, code, trace, T0 + timedelta(days=2)), **changes)


def test_a_returned_payout_is_reversed_once_and_paid_out_again_under_a_new_id() -> None:
    state = paid_out(LedgerState(), "pay-1")

    back = applied(return_payout(state, returned()))

    (reversal,) = back.transfers
    assert reversal.transfer_id == f"pay-1:payout-return:{TRACE_1}"
    assert reversal.kind is TransferKind.PAYOUT_RETURN and reversal.reference == "pay-1:payout"
    assert balances(back.state) == {CLEARING: -10_000, PROVIDER: 10_000}
    assert back.hold.payout_ref is None and back.hold.paid_out_cents == 0
    (record,) = back.hold.returned_payouts
    assert (record.attempt, record.payout_ref, record.return_code, record.paid_out_cents) == (
        1,
        "ach-pay-1",
        "R03",
        10_000,
    )
    assert return_payout(back.state, returned()) == Duplicate(back.hold, back.transfers)
    rejected(return_payout(back.state, returned(code="R02")), Rejection.IDEMPOTENCY_CONFLICT)
    rejected(return_payout(back.state, returned(trace=TRACE_2)), Rejection.ALREADY_RETURNED)

    again = applied(record_payout(back.state, "pay-1", amount_cents=10_000, payout_ref="ach-2", at=T0))
    assert [t.transfer_id for t in again.transfers] == ["pay-1:payout:2"]
    assert again.hold.payout_attempt == 2 and again.state.balance(SETTLEMENT) == 10_000
    second = applied(return_payout(again.state, returned(trace=TRACE_2, code="R01")))
    assert second.transfers[0].reference == "pay-1:payout:2"
    assert [r.attempt for r in second.hold.returned_payouts] == [1, 2]


def test_a_redelivered_claim_of_a_returned_payout_is_a_duplicate_not_a_second_payout() -> None:
    back = applied(return_payout(paid_out(LedgerState(), "pay-1"), returned())).state
    first = back.transfers["pay-1:payout"]

    again = record_payout(back, "pay-1", amount_cents=10_000, payout_ref="ach-pay-1", at=T0)

    assert again == Duplicate(back.holds["pay-1"], (first,))
    repaid = applied(record_payout(back, "pay-1", amount_cents=10_000, payout_ref="ach-2", at=T0)).state
    assert isinstance(
        record_payout(repaid, "pay-1", amount_cents=10_000, payout_ref="ach-pay-1", at=T0), Duplicate
    )
    rejected(
        record_payout(repaid, "pay-1", amount_cents=10_000, payout_ref="ach-3", at=T0),
        Rejection.ALREADY_PAID_OUT,
    )


def test_a_return_is_refused_without_an_entry_outstanding() -> None:
    rejected(return_payout(LedgerState(), returned()), Rejection.NOT_FOUND)
    released = applied(release(held(), "pay-1", resolution_id="done", at=T0)).state
    rejected(return_payout(released, returned()), Rejection.NOT_PAID_OUT)
    owing = applied(open_dispute(paid_out(LedgerState(), "pay-0"), "pay-0", dispute_id="d", at=T0)).state
    netted = paid_out(owing, "pay-1", amount_cents=6_000)  # netted entirely: no ACH entry
    assert netted.holds["pay-1"].paid_out_cents == 0
    rejected(return_payout(netted, returned()), Rejection.NOT_PAID_OUT)


def test_a_return_of_an_entry_of_a_payout_no_longer_outstanding_is_refused() -> None:
    back = applied(return_payout(paid_out(LedgerState(), "pay-1"), returned(payout_ref="ach-pay-1"))).state
    repaid = applied(record_payout(back, "pay-1", amount_cents=10_000, payout_ref="ach-2", at=T0)).state

    late = return_payout(repaid, returned(trace=TRACE_2, payout_ref="ach-pay-1"))

    rejected(late, Rejection.NOT_PAID_OUT)
    assert "ach-2" in late.message  # type: ignore[union-attr]
    second = applied(return_payout(repaid, returned(trace=TRACE_2, payout_ref="ach-2")))
    assert second.hold.payout_ref is None and len(second.hold.returned_payouts) == 2


@pytest.mark.parametrize("change", [{"code": "R00"}, {"code": "R86"}, {"code": "C01"}, {"trace": "12345"}])
def test_a_return_needs_a_return_code_and_a_trace_number(change: dict[str, str]) -> None:
    rejected(return_payout(paid_out(LedgerState(), "pay-1"), returned(**change)), Rejection.INVALID_REQUEST)


def test_a_return_restores_what_the_payout_netted_against_the_clawback() -> None:
    owing = applied(open_dispute(paid_out(LedgerState(), "pay-0"), "pay-0", dispute_id="d", at=T0)).state
    state = paid_out(owing, "pay-1", amount_cents=14_000)  # nets the 10,000 owed, files 4,000
    assert state.balance(CLAWBACK) == 0

    back = applied(return_payout(state, returned()))

    assert back.state.balance(CLAWBACK) == -10_000 and back.state.balance(PROVIDER) == 14_000
    assert back.state.balance(SETTLEMENT) == 10_000  # pay-0's entry only
    again = applied(record_payout(back.state, "pay-1", amount_cents=14_000, payout_ref="ach-2", at=T0))
    assert (again.hold.paid_out_cents, again.hold.netted_cents) == (4_000, 10_000)


def test_a_dispute_after_a_return_holds_the_new_payout_back_and_a_refund_reverses_the_release() -> None:
    back = applied(return_payout(paid_out(LedgerState(), "pay-1"), returned())).state

    disputed = applied(open_dispute(back, "pay-1", dispute_id="dsp-1", at=T0 + timedelta(days=3)))

    assert disputed.hold.dispute("dsp-1").phase is DisputePhase.PAYOUT  # type: ignore[union-attr]
    assert disputed.transfers == ()
    rejected(
        record_payout(disputed.state, "pay-1", amount_cents=10_000, payout_ref="ach-2", at=T0),
        Rejection.DISPUTED,
    )
    lost = applied(resolve_dispute(disputed.state, "pay-1", dispute_id="dsp-1", outcome=REFUND, at=T0))
    assert balances(lost.state) == {CLEARING: -10_000, CUSTOMER: 10_000}


def test_a_return_during_a_clawback_leaves_the_receivable_for_the_new_payout_to_net() -> None:
    state = applied(open_dispute(paid_out(LedgerState(), "pay-1"), "pay-1", dispute_id="dsp-1", at=T0)).state
    back = applied(return_payout(state, returned())).state

    joined = applied(open_dispute(back, "pay-1", dispute_id="dsp-2", at=T0 + timedelta(days=3)))
    assert joined.hold.dispute("dsp-2").phase is DisputePhase.CLAWBACK  # type: ignore[union-attr]
    assert joined.transfers == ()
    state = applied(resolve_dispute(joined.state, "pay-1", dispute_id="dsp-1", outcome=REFUND, at=T0)).state
    state = applied(resolve_dispute(state, "pay-1", dispute_id="dsp-2", outcome=REFUND, at=T0)).state
    repaid = applied(record_payout(state, "pay-1", amount_cents=10_000, payout_ref="ach-2", at=T0))

    assert (repaid.hold.paid_out_cents, repaid.hold.netted_cents) == (0, 10_000)
    assert balances(repaid.state) == {CLEARING: -10_000, CUSTOMER: 10_000}


# --- stateful property test -----------------------------------------------------------------------

PAYMENT_IDS = ("p1", "p2", "p3", "p4")
CUSTOMERS = ("c1", "c2")
PROVIDERS = ("v1", "v2")
CURRENCIES = ("USD", "EUR")
RESOLUTION_IDS = ("r1", "r2")
DISPUTE_IDS = ("d1", "d2")
PAYOUT_REFS = ("ach1", "ach2", "ach3")
TRACES = ("000000000000001", "000000000000002", "000000000000003")
RETURN_CODES = ("R01", "R03")

type Command = tuple[str, dict[str, object]]


def _run(state: LedgerState, command: Command) -> Outcome:
    name, args = command
    match name:
        case "place_hold":
            request = args["request"]
            assert isinstance(request, HoldRequest)
            return place_hold(state, request)
        case "release":
            return release(state, **args)  # type: ignore[arg-type]
        case "refund":
            return refund(state, **args)  # type: ignore[arg-type]
        case "open_dispute":
            return open_dispute(state, **args)  # type: ignore[arg-type]
        case "resolve_dispute":
            return resolve_dispute(state, **args)  # type: ignore[arg-type]
        case "expire":
            return expire(state, **args)  # type: ignore[arg-type]
        case "record_payout":
            return record_payout(state, **args)  # type: ignore[arg-type]
        case "return_payout":
            command = args["command"]
            assert isinstance(command, PayoutReturn)
            return return_payout(state, command)
    raise AssertionError(name)


class LedgerMachine(RuleBasedStateMachine):
    """Random, duplicated and reordered commands against the pure core."""

    def __init__(self) -> None:
        super().__init__()
        self.state = LedgerState()
        self.now = T0
        self.sent: list[tuple[Command, bool]] = []  # command, whether it applied
        self.first_resolution: dict[str, tuple[HoldStatus, str | None, int]] = {}
        self.payout_refs: dict[str, tuple[str, ...]] = {}  # per payment, the reference of each attempt

    def _send(self, command: Command) -> Outcome:
        before = self.state
        outcome = _run(before, command)
        if isinstance(outcome, Applied):
            self.state = outcome.state
        else:
            assert self.state is before
        self.sent.append((command, isinstance(outcome, Applied)))
        return outcome

    def _payment(self, data: st.DataObject) -> str:
        known = sorted(self.state.holds) or list(PAYMENT_IDS)
        return data.draw(st.sampled_from(known) | st.sampled_from(PAYMENT_IDS))

    def _payment_where(self, data: st.DataObject, wanted: Callable[[Hold], bool]) -> str:
        """Mostly a payment the rule can act on, so payouts, returns and re-payouts happen often."""
        matching = sorted(pid for pid, hold in self.state.holds.items() if wanted(hold))
        return (
            data.draw(st.sampled_from(matching))
            if matching and data.draw(st.booleans())
            else self._payment(data)
        )

    def _jittered(self, data: st.DataObject) -> datetime:
        return self.now + timedelta(hours=data.draw(st.integers(-48, 48)))

    @rule(
        payment_id=st.sampled_from(PAYMENT_IDS),
        customer_id=st.sampled_from(CUSTOMERS),
        provider_id=st.sampled_from(PROVIDERS),
        currency=st.sampled_from(CURRENCIES),
        amount=st.sampled_from([1, 99, 2_500, 10_000]),
        hold_hours=st.integers(1, 96),
    )
    def place(
        self, payment_id: str, customer_id: str, provider_id: str, currency: str, amount: int, hold_hours: int
    ) -> None:
        until = self.now + timedelta(hours=hold_hours)
        request = HoldRequest(payment_id, customer_id, provider_id, amount, currency, until, self.now)
        self._send(("place_hold", {"request": request}))

    @rule(
        resolution_id=st.sampled_from(RESOLUTION_IDS),
        amount=st.sampled_from([None, None, 1, 50, 2_499, -1, 10_001]),
        data=st.data(),
    )
    def release(self, resolution_id: str, amount: int | None, data: st.DataObject) -> None:
        args = {"amount_cents": amount, "resolution_id": resolution_id, "at": self._jittered(data)}
        self._send(("release", {"payment_id": self._payment(data), **args}))

    @rule(resolution_id=st.sampled_from(RESOLUTION_IDS), data=st.data())
    def refund(self, resolution_id: str, data: st.DataObject) -> None:
        args = {"resolution_id": resolution_id, "at": self._jittered(data)}
        self._send(("refund", {"payment_id": self._payment(data), **args}))

    @rule(dispute_id=st.sampled_from(DISPUTE_IDS), data=st.data())
    def open_dispute(self, dispute_id: str, data: st.DataObject) -> None:
        args = {"dispute_id": dispute_id, "at": self._jittered(data)}
        self._send(("open_dispute", {"payment_id": self._payment(data), **args}))

    @rule(dispute_id=st.sampled_from(DISPUTE_IDS), outcome=st.sampled_from(DisputeOutcome), data=st.data())
    def resolve_dispute(self, dispute_id: str, outcome: DisputeOutcome, data: st.DataObject) -> None:
        args = {"dispute_id": dispute_id, "outcome": outcome, "at": self._jittered(data)}
        self._send(("resolve_dispute", {"payment_id": self._payment(data), **args}))

    @rule(data=st.data())
    def expire_one(self, data: st.DataObject) -> None:
        self._send(("expire", {"payment_id": self._payment(data), "as_of": self.now}))

    @rule()
    def sweep(self) -> None:
        sweep = expire_due(self.state, self.now)
        for outcome in sweep.outcomes:
            assert isinstance(outcome, Applied)
            assert outcome.hold.status is HoldStatus.EXPIRED_RELEASED
        assert not any(hold.is_due(self.now) for hold in sweep.state.holds.values())
        self.state = sweep.state

    @rule(ref=st.sampled_from(PAYOUT_REFS), exact=st.booleans(), data=st.data())
    def payout(self, ref: str, exact: bool, data: st.DataObject) -> None:
        payment_id = self._payment_where(data, lambda h: h.released_cents > 0 and h.payout_ref is None)
        hold = self.state.holds.get(payment_id)
        amount = hold.released_cents if hold is not None and exact else 5_000
        blocked = hold is not None and (hold.payout_blocked or hold.reversed_cents > 0)
        args = {"amount_cents": amount, "payout_ref": ref, "at": self.now, "max_entry_cents": 20_000}
        outcome = self._send(("record_payout", {"payment_id": payment_id, **args}))
        if blocked:
            assert not isinstance(outcome, Applied), (
                "paid out while a dispute held it back, or after a refund"
            )

    @rule(trace=st.sampled_from(TRACES), code=st.sampled_from(RETURN_CODES), data=st.data())
    def return_payout(self, trace: str, code: str, data: st.DataObject) -> None:
        payment_id = self._payment_where(data, lambda h: h.payout_ref is not None)
        hold = self.state.holds.get(payment_id)
        fresh = hold is not None and trace not in {r.trace_number for r in hold.returned_payouts}
        returnable = fresh and hold is not None and hold.payout_ref is not None and hold.paid_out_cents > 0
        command = PayoutReturn(payment_id, code, trace, self._jittered(data))
        outcome = self._send(("return_payout", {"command": command}))
        assert isinstance(outcome, Applied) == returnable, (hold, command, outcome)

    @rule(hours=st.integers(1, 72))
    def advance_time(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        command, applied_before = data.draw(st.sampled_from(self.sent))
        before = self.state
        outcome = self._send(command)
        if applied_before:
            assert not isinstance(outcome, Applied), (command, outcome)
            assert self.state is before

    @invariant()
    def money_is_conserved_per_currency(self) -> None:
        assert all(total == 0 for total in self.state.totals_by_currency().values())

    @invariant()
    def only_designated_accounts_go_negative(self) -> None:
        for account, cents in self.state.balances.items():
            assert cents >= 0 or account.may_go_negative, (account, cents)

    @invariant()
    def balances_replay_from_the_journal(self) -> None:
        replayed: dict[AccountId, int] = {}
        for transfer in self.state.transfers.values():
            for posting in transfer.postings:
                replayed[posting.account] = replayed.get(posting.account, 0) + posting.signed_cents
        assert {a: c for a, c in replayed.items() if c} == balances(self.state)

    @invariant()
    def each_hold_resolves_at_most_once(self) -> None:
        for payment_id, hold in self.state.holds.items():
            if not hold.is_resolved:
                assert payment_id not in self.first_resolution
                assert hold.released_cents == hold.refunded_cents == 0
                continue
            resolution = (hold.status, hold.resolution_id, hold.released_cents)
            assert self.first_resolution.setdefault(payment_id, resolution) == resolution
            assert hold.released_cents + hold.refunded_cents == hold.amount_cents

    @invariant()
    def escrow_holds_exactly_the_unresolved_holds(self) -> None:
        for currency in CURRENCIES:
            open_cents = sum(
                h.amount_cents
                for h in self.state.holds.values()
                if h.currency == currency and not h.is_resolved
            )
            assert self.state.balance(AccountId.escrow(currency)) == open_cents

    @invariant()
    def provider_never_receives_more_than_held_and_is_paid_at_most_once(self) -> None:
        for payment_id, hold in self.state.holds.items():
            transfers = [t for t in self.state.transfers.values() if t.payment_id == payment_id]
            provider = AccountId.provider(hold.provider_id, hold.currency)
            credited = sum(
                p.amount_cents
                for t in transfers
                if t.kind is not TransferKind.PAYOUT_RETURN
                for p in t.postings
                if p.account == provider and p.side is Side.CREDIT
            )
            assert credited == hold.released_cents <= hold.amount_cents
            undone = {t.reference for t in transfers if t.kind is TransferKind.PAYOUT_RETURN}
            payouts = [t for t in transfers if t.kind is TransferKind.PAYOUT and t.transfer_id not in undone]
            assert len(payouts) <= 1, "two payouts outstanding"
            settlement = AccountId.settlement(hold.currency)
            paid = sum(p.amount_cents for t in payouts for p in t.postings if p.account == settlement)
            expected = hold.released_cents - hold.netted_cents if hold.payout_ref is not None else 0
            assert paid == hold.paid_out_cents == expected
            assert not (payouts and hold.reversed_cents), "a payment both paid out and reversed"
            refs = (*(r.payout_ref for r in hold.returned_payouts), *filter(None, [hold.payout_ref]))
            known = self.payout_refs.setdefault(payment_id, refs)
            assert refs[: len(known)] == known, "an attempt changed its reference"
            self.payout_refs[payment_id] = refs
        for currency in CURRENCIES:
            paid = sum(h.paid_out_cents for h in self.state.holds.values() if h.currency == currency)
            assert self.state.balance(AccountId.settlement(currency)) == paid

    @invariant()
    def each_return_mirrors_the_payout_it_undoes_once(self) -> None:
        returns = [t for t in self.state.transfers.values() if t.kind is TransferKind.PAYOUT_RETURN]
        undone = Counter(t.reference for t in returns)
        assert all(count == 1 for count in undone.values()), undone
        for transfer in returns:
            payout = self.state.transfers[str(transfer.reference)]
            assert payout.kind is TransferKind.PAYOUT and payout.payment_id == transfer.payment_id
            flipped = {(p.account, -p.signed_cents) for p in payout.postings}
            assert {(p.account, p.signed_cents) for p in transfer.postings} == flipped
        for hold in self.state.holds.values():
            assert [r.attempt for r in hold.returned_payouts] == list(
                range(1, len(hold.returned_payouts) + 1)
            )

    @invariant()
    def only_a_dispute_resolution_resolves_a_frozen_hold(self) -> None:
        for hold in self.state.holds.values():
            escrow_disputes = [d for d in hold.disputes if d.phase is DisputePhase.ESCROW]
            if any(d.is_open for d in escrow_disputes):
                assert hold.status is HoldStatus.FROZEN, hold
            elif escrow_disputes and hold.is_resolved:
                assert (hold.resolution_id or "").startswith("dispute:"), hold

    @invariant()
    def disputed_funds_are_the_open_clawbacks(self) -> None:
        for currency in CURRENCIES:
            open_clawbacks = sum(
                h.released_cents
                for h in self.state.holds.values()
                if h.currency == currency
                for episode in {d.episode for d in h.open_disputes(DisputePhase.CLAWBACK)}
            )
            assert self.state.balance(AccountId.disputes(currency)) == open_clawbacks

    @invariant()
    def a_payment_time_line_runs_forward(self) -> None:
        for hold in self.state.holds.values():
            assert hold.last_change >= hold.held_at
            assert hold.resolved_at is None or hold.resolved_at >= hold.held_at
            assert hold.paid_out_at is None or hold.paid_out_at >= (hold.resolved_at or hold.held_at)
            for payout in hold.returned_payouts:
                assert hold.last_change >= payout.returned_at >= payout.paid_out_at
            for dispute in hold.disputes:
                assert dispute.opened_at >= hold.held_at
                assert dispute.closed_at is None or dispute.closed_at >= dispute.opened_at


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
