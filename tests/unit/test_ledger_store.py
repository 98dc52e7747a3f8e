import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from paypipe.adapters.ledger_store import LedgerContentionError, LedgerStore
from paypipe.domain.ledger import (
    AccountId,
    Applied,
    DisputeOutcome,
    DisputePhase,
    Duplicate,
    HoldRequest,
    HoldStatus,
    Outcome,
    PayoutReturn,
    Rejected,
    Rejection,
    TransferKind,
)
from tests.tables import create_table

TABLE = "paypipe-test"
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
ACCOUNTS = (CLEARING, ESCROW, CUSTOMER, PROVIDER, SETTLEMENT, CLAWBACK, DISPUTES)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE, gsi=True)
        yield dynamodb


@pytest.fixture
def store(client: Any) -> LedgerStore:
    return LedgerStore(TABLE, client, sleep=lambda _: None)


def hold_request(
    payment_id: str = "pay-1",
    amount_cents: int = 10_000,
    hold_until: datetime = HOLD_UNTIL,
    card_fee_cents: int = 0,
) -> HoldRequest:
    return HoldRequest(payment_id, "cus-1", "prov-1", amount_cents, USD, hold_until, T0, card_fee_cents)


def balances(store: LedgerStore) -> dict[AccountId, int]:
    return {account: cents for account in ACCOUNTS if (cents := store.balance(account))}


def applied(outcome: Outcome) -> Applied:
    assert isinstance(outcome, Applied), outcome
    return outcome


def rejected(outcome: Outcome, reason: Rejection) -> Rejected:
    assert isinstance(outcome, Rejected), outcome
    assert outcome.reason is reason, outcome
    return outcome


def test_place_hold_persists_the_hold_and_the_journal(store: LedgerStore) -> None:
    outcome = applied(store.place_hold(hold_request()))

    assert store.get_hold("pay-1") == outcome.hold
    assert store.transfers("pay-1") == list(outcome.transfers)
    assert balances(store) == {CLEARING: -10_000, ESCROW: 10_000}
    assert store.verify_balanced() == {USD: 0}


def test_a_card_fee_is_stored_with_the_hold_and_in_its_journal(store: LedgerStore) -> None:
    outcome = applied(store.place_hold(hold_request(card_fee_cents=320)))

    assert store.get_hold("pay-1") == outcome.hold and outcome.hold.card_fee_cents == 320
    by_id = sorted(outcome.transfers, key=lambda transfer: transfer.transfer_id)
    assert store.transfers("pay-1") == by_id
    assert store.place_hold(hold_request(card_fee_cents=320)) == Duplicate(outcome.hold, outcome.transfers)
    assert store.verify_balanced() == {USD: 0}


def test_duplicate_hold_has_no_second_effect_and_other_terms_conflict(store: LedgerStore) -> None:
    first = applied(store.place_hold(hold_request()))

    assert store.place_hold(hold_request()) == Duplicate(first.hold, first.transfers)
    rejected(store.place_hold(hold_request(amount_cents=1)), Rejection.IDEMPOTENCY_CONFLICT)
    assert balances(store) == {CLEARING: -10_000, ESCROW: 10_000}


def test_release_pays_the_provider_once(store: LedgerStore) -> None:
    store.place_hold(hold_request())

    first = applied(store.release("pay-1", resolution_id="done-1", at=T0))
    again = store.release("pay-1", resolution_id="done-1", at=T0)

    assert again == Duplicate(first.hold, first.transfers)
    rejected(store.refund("pay-1", resolution_id="void-1", at=T0), Rejection.ALREADY_RESOLVED)
    assert balances(store) == {CLEARING: -10_000, PROVIDER: 10_000}
    assert store.get_hold("pay-1") == first.hold


def test_partial_release_splits_between_provider_and_customer(store: LedgerStore) -> None:
    store.place_hold(hold_request())

    outcome = applied(store.release("pay-1", amount_cents=3_000, resolution_id="done-1", at=T0))

    assert outcome.hold.status is HoldStatus.PARTIALLY_RELEASED
    assert balances(store) == {CLEARING: -10_000, PROVIDER: 3_000, CUSTOMER: 7_000}


def test_refund_returns_the_hold_to_the_customer(store: LedgerStore) -> None:
    store.place_hold(hold_request())

    applied(store.refund("pay-1", resolution_id="void-1", at=T0))

    assert balances(store) == {CLEARING: -10_000, CUSTOMER: 10_000}
    assert [t.kind for t in store.transfers("pay-1")] == [TransferKind.HOLD, TransferKind.REFUND]


def test_command_before_its_hold_is_a_retryable_rejection(store: LedgerStore) -> None:
    outcome = rejected(store.release("pay-1", resolution_id="done-1", at=T0), Rejection.NOT_FOUND)

    assert outcome.retryable
    assert balances(store) == {}


def test_sweep_releases_due_holds_via_the_index(store: LedgerStore) -> None:
    store.place_hold(hold_request("pay-1", 100, HOLD_UNTIL))
    store.place_hold(hold_request("pay-2", 200, HOLD_UNTIL - timedelta(days=1)))
    store.place_hold(hold_request("pay-3", 400, HOLD_UNTIL + timedelta(seconds=1)))
    store.place_hold(hold_request("pay-4", 800, HOLD_UNTIL - timedelta(days=2)))
    store.refund("pay-4", resolution_id="void", at=T0)

    assert store.due_holds(HOLD_UNTIL, limit=10) == ["pay-2", "pay-1"]
    assert store.due_holds(HOLD_UNTIL, limit=1) == ["pay-2"]

    outcomes = store.release_due(HOLD_UNTIL, limit=10)

    assert [applied(o).hold.status for o in outcomes] == [HoldStatus.EXPIRED_RELEASED] * 2
    assert store.due_holds(HOLD_UNTIL, limit=10) == []
    assert store.due_holds(HOLD_UNTIL + timedelta(seconds=1), limit=10) == ["pay-3"]
    assert balances(store) == {CLEARING: -1_500, ESCROW: 400, PROVIDER: 300, CUSTOMER: 800}


def test_frozen_hold_leaves_the_due_index_for_the_dispute_index_until_resolved(store: LedgerStore) -> None:
    store.place_hold(hold_request())
    applied(store.open_dispute("pay-1", dispute_id="dsp-1", at=T0))
    later = HOLD_UNTIL + timedelta(days=2)

    assert store.due_holds(later, limit=10) == []
    assert store.aged_disputes(T0 - timedelta(seconds=1), limit=10) == []
    assert store.aged_disputes(T0, limit=10) == ["pay-1"]
    rejected(store.expire("pay-1", as_of=later), Rejection.FROZEN)

    won = applied(
        store.resolve_dispute("pay-1", dispute_id="dsp-1", outcome=DisputeOutcome.RELEASE, at=later)
    )

    assert won.hold.status is HoldStatus.RELEASED
    assert store.due_holds(later, limit=10) == [] and store.aged_disputes(later, limit=10) == []
    assert balances(store) == {CLEARING: -10_000, PROVIDER: 10_000}


def test_a_dispute_signalled_as_aged_leaves_the_aged_query(store: LedgerStore) -> None:
    store.place_hold(hold_request())
    store.open_dispute("pay-1", dispute_id="dsp-1", at=T0)
    store.open_dispute("pay-1", dispute_id="dsp-2", at=T0 + timedelta(days=1))

    applied(store.mark_dispute_aged("pay-1", dispute_id="dsp-1", at=T0 + timedelta(days=40)))

    assert store.aged_disputes(T0 + timedelta(hours=12), limit=10) == []
    assert store.aged_disputes(T0 + timedelta(days=1), limit=10) == ["pay-1"]
    applied(store.mark_dispute_aged("pay-1", dispute_id="dsp-2", at=T0 + timedelta(days=41)))
    assert store.aged_disputes(T0 + timedelta(days=400), limit=10) == []


def test_dispute_loss_refunds_a_frozen_hold(store: LedgerStore) -> None:
    store.place_hold(hold_request())
    store.open_dispute("pay-1", dispute_id="dsp-1", at=T0)

    applied(
        store.resolve_dispute(
            "pay-1", dispute_id="dsp-1", outcome=DisputeOutcome.REFUND, at=HOLD_UNTIL + timedelta(days=5)
        )
    )

    assert store.release_due(HOLD_UNTIL + timedelta(days=5), limit=10) == []
    assert balances(store) == {CLEARING: -10_000, CUSTOMER: 10_000}


def test_a_clawback_is_netted_from_the_providers_next_payout(store: LedgerStore) -> None:
    store.place_hold(hold_request("pay-1", 3_000))
    store.release("pay-1", resolution_id="done", at=T0)
    applied(store.record_payout("pay-1", amount_cents=3_000, payout_ref="ach-1", at=T0))
    booked = applied(store.open_dispute("pay-1", dispute_id="dsp-1", at=T0 + timedelta(days=2)))
    assert booked.hold.dispute("dsp-1").phase is DisputePhase.CLAWBACK  # type: ignore[union-attr]

    store.place_hold(hold_request("pay-2", 5_000))
    store.release("pay-2", resolution_id="done", at=T0)
    netted = applied(store.record_payout("pay-2", amount_cents=5_000, payout_ref="ach-2", at=T0))

    assert (netted.hold.paid_out_cents, netted.hold.netted_cents) == (2_000, 3_000)
    assert balances(store) == {CLEARING: -8_000, SETTLEMENT: 5_000, DISPUTES: 3_000}
    assert store.get_hold("pay-2") == netted.hold


def test_payout_moves_the_release_to_settlement_once(store: LedgerStore) -> None:
    store.place_hold(hold_request())
    store.release("pay-1", amount_cents=6_000, resolution_id="done", at=T0)

    first = applied(store.record_payout("pay-1", amount_cents=6_000, payout_ref="ach-1", at=T0))

    assert store.record_payout("pay-1", amount_cents=6_000, payout_ref="ach-1", at=T0) == Duplicate(
        first.hold, first.transfers
    )
    rejected(
        store.record_payout("pay-1", amount_cents=6_000, payout_ref="ach-2", at=T0),
        Rejection.ALREADY_PAID_OUT,
    )
    assert balances(store) == {CLEARING: -10_000, CUSTOMER: 4_000, SETTLEMENT: 6_000}


TRACE_1 = "011000010000001"
TRACE_2 = "011000010000002"


def payout_return(trace: str = TRACE_1, code: str = "R03", days: int = 3) -> PayoutReturn:
    return PayoutReturn("pay-1", code, trace, T0 + timedelta(days=days))


def paid_out(store: LedgerStore, amount_cents: int = 10_000) -> None:
    store.place_hold(hold_request(amount_cents=amount_cents))
    store.release("pay-1", resolution_id="done", at=T0)
    applied(store.record_payout("pay-1", amount_cents=amount_cents, payout_ref="ach-1", at=T0))


def test_a_returned_payout_is_reversed_once_and_the_payment_paid_out_again(store: LedgerStore) -> None:
    paid_out(store)

    back = applied(store.return_payout(payout_return()))

    assert store.get_hold("pay-1") == back.hold
    assert store.return_payout(payout_return()) == Duplicate(back.hold, back.transfers)
    rejected(store.return_payout(payout_return(code="R01")), Rejection.IDEMPOTENCY_CONFLICT)
    rejected(store.return_payout(payout_return(TRACE_2)), Rejection.ALREADY_RETURNED)
    assert balances(store) == {CLEARING: -10_000, PROVIDER: 10_000}

    again = applied(
        store.record_payout("pay-1", amount_cents=10_000, payout_ref="ach-2", at=T0 + timedelta(days=4))
    )
    applied(store.return_payout(payout_return(TRACE_2, "R01", days=5)))

    hold = store.get_hold("pay-1")
    assert hold is not None
    assert [(r.attempt, r.payout_ref, r.trace_number) for r in hold.returned_payouts] == [
        (1, "ach-1", TRACE_1),
        (2, "ach-2", TRACE_2),
    ]
    assert [t.transfer_id for t in store.all_transfers() if t.payment_id == "pay-1"][-3:] == [
        "pay-1:payout-return:" + TRACE_1,
        again.transfers[0].transfer_id,
        "pay-1:payout-return:" + TRACE_2,
    ]
    assert balances(store) == {CLEARING: -10_000, PROVIDER: 10_000}


def test_a_return_racing_its_duplicate_reverses_the_payout_once(client: Any, store: LedgerStore) -> None:
    paid_out(store)
    racing = racing_store(RacingClient(client, lambda: store.return_payout(payout_return())))

    outcome = racing.return_payout(payout_return())

    assert isinstance(outcome, Duplicate)
    assert balances(store) == {CLEARING: -10_000, PROVIDER: 10_000}


def test_two_returns_racing_for_one_payout_reverse_it_once(client: Any, store: LedgerStore) -> None:
    paid_out(store)
    racing = racing_store(RacingClient(client, lambda: store.return_payout(payout_return(TRACE_2))))

    rejected(racing.return_payout(payout_return()), Rejection.ALREADY_RETURNED)

    assert balances(store) == {CLEARING: -10_000, PROVIDER: 10_000}
    assert [t.kind for t in store.transfers("pay-1")].count(TransferKind.PAYOUT_RETURN) == 1


def _deliver_all(store: LedgerStore) -> None:
    store.place_hold(hold_request("pay-1", 1_000))
    store.place_hold(hold_request("pay-2", 2_000))
    store.place_hold(hold_request("pay-3", 4_000))
    store.place_hold(hold_request("pay-4", 8_000))
    store.release("pay-1", resolution_id="done-1", at=T0)
    store.release("pay-2", amount_cents=500, resolution_id="done-2", at=T0)
    store.open_dispute("pay-3", dispute_id="dsp-3", at=T0)
    store.resolve_dispute("pay-3", dispute_id="dsp-3", outcome=DisputeOutcome.REFUND, at=T0)
    store.record_payout("pay-1", amount_cents=1_000, payout_ref="ach-1", at=T0)
    store.return_payout(payout_return())
    store.record_payout("pay-1", amount_cents=1_000, payout_ref="ach-2", at=T0)
    store.release_due(HOLD_UNTIL, limit=10)


def test_redelivering_every_command_leaves_balances_unchanged(store: LedgerStore) -> None:
    _deliver_all(store)
    snapshot = (balances(store), [store.get_hold(p) for p in ("pay-1", "pay-2", "pay-3", "pay-4")])

    _deliver_all(store)

    assert (balances(store), [store.get_hold(p) for p in ("pay-1", "pay-2", "pay-3", "pay-4")]) == snapshot
    assert snapshot[0] == {CLEARING: -15_000, CUSTOMER: 5_500, PROVIDER: 8_500, SETTLEMENT: 1_000}
    assert store.verify_balanced() == {USD: 0}


class RacingClient:
    """Delegates to DynamoDB but runs ``race`` right before the first write (the command has read
    and decided: its write meets what the race wrote)."""

    def __init__(self, client: Any, race: Callable[[], object], times: int = 1) -> None:
        self._client = client
        self._race = race
        self._times = times

    def _before_write(self) -> None:
        if self._times:
            self._times -= 1
            self._race()

    def put_item(self, **kwargs: Any) -> Any:
        self._before_write()
        return self._client.put_item(**kwargs)

    def transact_write_items(self, **kwargs: Any) -> Any:
        self._before_write()
        return self._client.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def racing_store(client: Any, **options: Any) -> LedgerStore:
    return LedgerStore(TABLE, client, sleep=lambda _: None, **options)


def test_concurrent_duplicate_is_reported_as_a_duplicate(client: Any, store: LedgerStore) -> None:
    store.place_hold(hold_request())
    racing = racing_store(RacingClient(client, lambda: store.release("pay-1", resolution_id="r", at=T0)))

    outcome = racing.release("pay-1", resolution_id="r", at=T0)

    assert isinstance(outcome, Duplicate)
    assert balances(store) == {CLEARING: -10_000, PROVIDER: 10_000}


def test_concurrent_other_resolution_loses_cleanly(client: Any, store: LedgerStore) -> None:
    store.place_hold(hold_request())
    racing = racing_store(RacingClient(client, lambda: store.refund("pay-1", resolution_id="void", at=T0)))

    rejected(racing.release("pay-1", resolution_id="done", at=T0), Rejection.ALREADY_RESOLVED)

    assert balances(store) == {CLEARING: -10_000, CUSTOMER: 10_000}


def test_a_payment_cannot_overdraw_its_own_share_of_a_pool(client: Any, store: LedgerStore) -> None:
    store.place_hold(hold_request())
    client.update_item(  # the journal damaged by hand: the hold moved 10 cents, not 10,000
        TableName=TABLE,
        Key={"pk": {"S": "ledger#payment#pay-1"}, "sk": {"S": "hold"}},
        UpdateExpression="SET journal[0].p = :postings",
        ExpressionAttributeValues={":postings": {"L": [{"S": "card_clearing:-10"}, {"S": "escrow:10"}]}},
    )

    outcome = rejected(store.release("pay-1", resolution_id="done", at=T0), Rejection.INSUFFICIENT_FUNDS)

    assert "escrow:USD" in outcome.message
    hold = store.get_hold("pay-1")
    assert hold is not None and hold.status is HoldStatus.HELD
    assert balances(store) == {CLEARING: -10, ESCROW: 10}


def test_a_payout_racing_another_netting_of_the_clawback_decides_again(
    client: Any, store: LedgerStore
) -> None:
    store.place_hold(hold_request("pay-1", 3_000))
    store.release("pay-1", resolution_id="done", at=T0)
    store.record_payout("pay-1", amount_cents=3_000, payout_ref="ach-1", at=T0)
    store.open_dispute("pay-1", dispute_id="dsp-1", at=T0 + timedelta(days=1))  # the provider owes 3,000
    for payment_id in ("pay-2", "pay-3"):
        store.place_hold(hold_request(payment_id, 5_000))
        store.release(payment_id, resolution_id="done", at=T0)
    first = lambda: store.record_payout("pay-3", amount_cents=5_000, payout_ref="ach-3", at=T0)  # noqa: E731
    racing = racing_store(RacingClient(client, first))

    second = applied(racing.record_payout("pay-2", amount_cents=5_000, payout_ref="ach-2", at=T0))

    assert (second.hold.netted_cents, second.hold.paid_out_cents) == (0, 5_000)
    assert store.get_hold("pay-3").netted_cents == 3_000  # type: ignore[union-attr]
    assert store.balance(CLAWBACK) == 0 == balances(store).get(CLAWBACK, 0)
    assert store.stored_balances() == {CLAWBACK: 0}


def test_endless_contention_raises_after_the_attempt_budget(client: Any, store: LedgerStore) -> None:
    store.place_hold(hold_request())
    bump_version = {
        "TableName": TABLE,
        "Key": {"pk": {"S": "ledger#payment#pay-1"}, "sk": {"S": "hold"}},
        "UpdateExpression": "ADD version :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    racing = racing_store(
        RacingClient(client, lambda: client.update_item(**bump_version), times=3), max_attempts=3
    )

    with pytest.raises(LedgerContentionError):
        racing.release("pay-1", resolution_id="done", at=T0)

    assert balances(store) == {CLEARING: -10_000, ESCROW: 10_000}


def test_a_dispute_racing_a_refund_cannot_reopen_the_refunded_hold(client: Any, store: LedgerStore) -> None:
    store.place_hold(hold_request())
    racing = racing_store(RacingClient(client, lambda: store.refund("pay-1", resolution_id="void", at=T0)))

    rejected(racing.open_dispute("pay-1", dispute_id="dsp-1", at=T0), Rejection.REFUNDED)

    hold = store.get_hold("pay-1")
    assert hold is not None
    assert (hold.status, hold.disputes) == (HoldStatus.REFUNDED, ())


def test_a_dispute_racing_the_payout_claim_is_either_held_back_or_clawed_back(
    client: Any, store: LedgerStore
) -> None:
    store.place_hold(hold_request())
    store.release("pay-1", resolution_id="done", at=T0)
    racing = racing_store(
        RacingClient(client, lambda: store.record_payout("pay-1", amount_cents=10_000, payout_ref="a", at=T0))
    )

    booked = applied(racing.open_dispute("pay-1", dispute_id="dsp-1", at=T0))

    assert booked.hold.dispute("dsp-1").phase is DisputePhase.CLAWBACK  # type: ignore[union-attr]
    assert balances(store) == {CLEARING: -10_000, SETTLEMENT: 10_000, CLAWBACK: -10_000, DISPUTES: 10_000}


def test_hold_and_balances_round_trip_every_field(store: LedgerStore) -> None:
    store.place_hold(hold_request(hold_until=datetime(2025, 3, 8, 9, 30, 15, 123456, tzinfo=UTC)))
    store.release("pay-1", amount_cents=2_500, resolution_id="done", at=T0 + timedelta(hours=1))
    store.open_dispute("pay-1", dispute_id="dsp-0", at=T0 + timedelta(hours=2))
    store.resolve_dispute(
        "pay-1", dispute_id="dsp-0", outcome=DisputeOutcome.RELEASE, at=T0 + timedelta(hours=3)
    )
    store.record_payout("pay-1", amount_cents=2_500, payout_ref="ach-1", at=T0 + timedelta(days=1))
    store.open_dispute("pay-1", dispute_id="dsp-1", at=T0 + timedelta(days=2))
    last = applied(store.mark_dispute_aged("pay-1", dispute_id="dsp-1", at=T0 + timedelta(days=40)))

    assert store.get_hold("pay-1") == last.hold
    assert [(d.dispute_id, d.phase, d.outcome) for d in last.hold.disputes] == [
        ("dsp-0", DisputePhase.PAYOUT, DisputeOutcome.RELEASE),
        ("dsp-1", DisputePhase.CLAWBACK, None),
    ]
    assert [t.kind for t in store.transfers("pay-1")] == [
        TransferKind.HOLD,
        TransferKind.PARTIAL_RELEASE,
        TransferKind.PAYOUT,
        TransferKind.CLAWBACK,
    ]


def test_a_hold_written_before_disputes_had_phases_still_reads(client: Any, store: LedgerStore) -> None:
    store.place_hold(hold_request())
    store.open_dispute("pay-1", dispute_id="dsp-1", at=T0)
    key = {"pk": {"S": "ledger#payment#pay-1"}, "sk": {"S": "hold"}}
    client.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET open_disputes = :open, closed_disputes = :none REMOVE disputes, updated_at",
        ExpressionAttributeValues={":open": {"L": [{"S": "dsp-1"}]}, ":none": {"L": []}},
    )

    hold = store.get_hold("pay-1")

    assert hold is not None and hold.status is HoldStatus.FROZEN
    assert [(d.dispute_id, d.phase, d.is_open) for d in hold.disputes] == [
        ("dsp-1", DisputePhase.ESCROW, True)
    ]
    applied(store.resolve_dispute("pay-1", dispute_id="dsp-1", outcome=DisputeOutcome.REFUND, at=T0))


class BarrierClient:
    """Threads that read, then meet at a barrier before their first write: every command decides
    on what it read before any of them wrote. Writes to the table are serialized, as DynamoDB
    serializes the writes of one item."""

    def __init__(self, client: Any, parties: int) -> None:
        self._client = client
        self._barrier = threading.Barrier(parties, timeout=30)
        self._lock = threading.Lock()
        self._waited: set[int] = set()
        self.writes = 0

    def _write(self, operation: str, kwargs: dict[str, Any]) -> Any:
        if threading.get_ident() not in self._waited:
            self._waited.add(threading.get_ident())
            self._barrier.wait()
        with self._lock:
            self.writes += 1
            return getattr(self._client, operation)(**kwargs)

    def put_item(self, **kwargs: Any) -> Any:
        return self._write("put_item", kwargs)

    def transact_write_items(self, **kwargs: Any) -> Any:
        return self._write("transact_write_items", kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def in_threads(*commands: Callable[[], Outcome]) -> list[Outcome]:
    with ThreadPoolExecutor(len(commands)) as pool:
        return [future.result() for future in [pool.submit(command) for command in commands]]


def test_many_payments_racing_through_the_pools_never_conflict(client: Any, store: LedgerStore) -> None:
    payments = [f"pay-{n}" for n in range(8)]
    for payment_id in payments:
        store.place_hold(hold_request(payment_id, 1_000))
    barrier = BarrierClient(client, len(payments))
    racing = racing_store(barrier, max_attempts=1)  # a lost condition would raise

    outcomes = in_threads(*(lambda p=p: racing.release(p, resolution_id="done", at=T0) for p in payments))

    assert all(isinstance(outcome, Applied) for outcome in outcomes)
    assert barrier.writes == len(payments)  # one write each, none retried
    assert balances(store) == {CLEARING: -8_000, PROVIDER: 8_000}


def test_two_commands_racing_on_one_payment_apply_once(client: Any, store: LedgerStore) -> None:
    store.place_hold(hold_request())
    racing = racing_store(BarrierClient(client, 2))

    release, refund = in_threads(
        lambda: racing.release("pay-1", resolution_id="done", at=T0),
        lambda: racing.refund("pay-1", resolution_id="void", at=T0),
    )

    winner, loser = (release, refund) if isinstance(release, Applied) else (refund, release)
    assert isinstance(winner, Applied), (release, refund)
    rejected(loser, Rejection.ALREADY_RESOLVED)
    assert store.get_hold("pay-1") == winner.hold
    assert len(store.transfers("pay-1")) == 2
    assert sum(balances(store).values()) == 0 and ESCROW not in balances(store)
