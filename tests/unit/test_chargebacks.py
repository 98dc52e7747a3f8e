"""Chargebacks from the card network: the simulated acquirer's disputed card, the processor's feed,
the ledger's rules for a network dispute, and no second refund at the card for a lost one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from paypipe.adapters.acquirer_store import DynamoAcquirer
from paypipe.adapters.ledger_store import LedgerStore
from paypipe.adapters.payments_store import PaymentsStore
from paypipe.domain import card_processing as cp
from paypipe.domain import ledger
from paypipe.domain.acquirer_simulator import (
    CHARGEBACK_DECIDED_AFTER,
    CHARGEBACK_OPENS_AFTER,
    TEST_CARDS,
    Behaviour,
    SimulatedAcquirer,
)
from paypipe.domain.settlement import FeeSchedule, LineKind, parse_report, render_report, settlement_totals
from paypipe.embedded.samples import sample_chain, sample_refund
from paypipe.events import models as ev
from paypipe.runtime.consumer import Receipt
from paypipe.runtime.publisher import FailedEntry, PublishResult
from paypipe.steps.charge import RefundStep
from paypipe.steps.processor import ProcessorFeed
from paypipe.steps.release import DisputeNotYetOpenError, ReleaseStep
from tests.tables import create_table

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)
DISPUTED_CARD = next(pan for pan, code in TEST_CARDS.items() if code is Behaviour.CHARGEBACK)
HOLD = ledger.HoldRequest(
    payment_id="pay-1",
    customer_id="cus-1",
    provider_id="prov-1",
    amount_cents=10_000,
    currency="USD",
    hold_until=NOW + timedelta(days=7),
    held_at=NOW,
)


def captured(acquirer: Any, pan: str, payment_id: str = "pay-1", amount: int = 10_000) -> str:
    card = cp.Card(pan=pan, expiry_month=12, expiry_year=2030)
    key = cp.operation_key(cp.Operation.AUTHORIZE, payment_id)
    authorized = acquirer.authorize(cp.AuthorizeRequest(key, payment_id, amount, "USD", card))
    assert isinstance(authorized, cp.Approved)
    capture_key = cp.operation_key(cp.Operation.CAPTURE, payment_id)
    done = acquirer.capture(cp.CaptureRequest(capture_key, authorized.reference, amount))
    assert isinstance(done, cp.Approved)
    return authorized.reference


# -- the simulated acquirer ------------------------------------------------------------------------


def assert_charged_back(acquirer: Any, reference: str) -> None:
    opened_day = (NOW + CHARGEBACK_OPENS_AFTER).date()
    (line,) = acquirer.settlement_lines(opened_day)
    assert (line.kind, line.reference, line.amount_minor) == (LineKind.CHARGEBACK, reference, 10_000)
    assert line.fee_minor == FeeSchedule().chargeback_minor
    assert acquirer.due_notices(NOW + CHARGEBACK_OPENS_AFTER - timedelta(seconds=1)) == []
    (opened,) = acquirer.due_notices(NOW + CHARGEBACK_OPENS_AFTER)
    assert (opened.kind, opened.payment_id, opened.amount_cents) == (cp.NoticeKind.OPENED, "pay-1", 10_000)
    both = acquirer.due_notices(NOW + CHARGEBACK_DECIDED_AFTER)
    assert [n.kind for n in both] == [cp.NoticeKind.OPENED, cp.NoticeKind.LOST]
    assert acquirer.due_notices(NOW + CHARGEBACK_DECIDED_AFTER, limit=1) == both[:1]  # the oldest
    acquirer.acknowledge(opened)
    assert [n.kind for n in acquirer.due_notices(NOW + CHARGEBACK_DECIDED_AFTER)] == [cp.NoticeKind.LOST]


def test_the_disputed_card_is_captured_then_charged_back_with_the_networks_fee() -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    reference = captured(acquirer, DISPUTED_CARD)
    assert [line.kind for line in acquirer.settlement_lines(NOW.date())] == [LineKind.CAPTURE]
    assert_charged_back(acquirer, reference)


def test_the_card_whose_chargeback_is_won_is_given_back_on_the_decision_day() -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    won_card = next(pan for pan, code in TEST_CARDS.items() if code is Behaviour.CHARGEBACK_WON)
    reference = captured(acquirer, won_card)
    (opened, decided) = acquirer.due_notices(NOW + CHARGEBACK_DECIDED_AFTER)
    assert (opened.kind, decided.kind, opened.reason) == (
        cp.NoticeKind.OPENED,
        cp.NoticeKind.WON,
        "product_not_received",
    )
    (chargeback,) = acquirer.settlement_lines((NOW + CHARGEBACK_OPENS_AFTER).date())
    (reversal,) = acquirer.settlement_lines((NOW + CHARGEBACK_DECIDED_AFTER).date())
    assert (chargeback.kind, reversal.kind) == (LineKind.CHARGEBACK, LineKind.CHARGEBACK_REVERSAL)
    assert (reversal.reference, reversal.amount_minor, reversal.fee_minor) == (reference, 10_000, 0)
    day = reversal.day
    totals = parse_report(render_report(day, [reversal]), day).totals["USD"]
    assert (totals.chargebacks_reversed, totals.net) == (10_000, 10_000)  # the dispute fee stays charged


def test_an_ordinary_card_is_never_charged_back() -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    captured(acquirer, "4242424242424242")
    assert acquirer.due_notices(NOW + timedelta(days=30)) == []
    assert acquirer.settlement_lines((NOW + CHARGEBACK_OPENS_AFTER).date()) == []


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for name, gsi in (("acquirer", True), ("ledger", True), ("payments", False)):
            create_table(client, name, gsi=gsi)
        yield client


def test_the_acquirer_on_dynamodb_keeps_its_chargebacks_and_their_notices(dynamodb: Any) -> None:
    writer = DynamoAcquirer("acquirer", dynamodb, lambda: NOW)
    reference = captured(writer, DISPUTED_CARD)
    assert_charged_back(DynamoAcquirer("acquirer", dynamodb, lambda: NOW), reference)  # another process


def test_a_chargeback_line_is_reported_and_read_back_in_the_days_totals() -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    captured(acquirer, DISPUTED_CARD)
    day = (NOW + CHARGEBACK_OPENS_AFTER).date()
    report = parse_report(render_report(day, acquirer.settlement_lines(day)), day)
    totals = report.totals["USD"]
    assert (totals.charged_back, totals.fees, totals.net) == (10_000, 1_500, -11_500)
    assert settlement_totals(report.lines) == report.totals


# -- the ledger's rules for a network dispute ------------------------------------------------------


def released_long_ago() -> ledger.LedgerState:
    state = ledger.place_hold(ledger.LedgerState(), HOLD)
    assert isinstance(state, ledger.Applied)
    done = ledger.release(state.state, "pay-1", resolution_id="service-completed", at=NOW)
    assert isinstance(done, ledger.Applied)
    return done.state


def test_a_chargeback_is_accepted_after_the_dispute_window_closed() -> None:
    state, window, late = released_long_ago(), timedelta(days=30), NOW + timedelta(days=90)
    client = ledger.open_dispute(state, "pay-1", dispute_id="d1", at=late, window=window)
    assert isinstance(client, ledger.Rejected) and client.reason is ledger.Rejection.DISPUTE_WINDOW_CLOSED
    network = ledger.open_dispute(state, "pay-1", dispute_id="cb1", at=late, window=window, network=True)
    assert isinstance(network, ledger.Applied) and network.hold.dispute("cb1").network  # type: ignore[union-attr]


@pytest.mark.parametrize("opened_by_network", [True, False])
def test_only_the_party_that_opened_a_dispute_resolves_it(opened_by_network: bool) -> None:
    state = ledger.open_dispute(
        released_long_ago(), "pay-1", dispute_id="d1", at=NOW, network=opened_by_network
    )
    assert isinstance(state, ledger.Applied)

    def resolve(network: bool) -> ledger.Outcome:
        return ledger.resolve_dispute(
            state.state,
            "pay-1",
            dispute_id="d1",
            outcome=ledger.DisputeOutcome.REFUND,
            at=NOW,
            network=network,
        )

    other = resolve(not opened_by_network)
    assert isinstance(other, ledger.Rejected) and other.reason is ledger.Rejection.DISPUTE_OF_ANOTHER_PARTY
    own = resolve(opened_by_network)
    assert isinstance(own, ledger.Applied)
    assert own.hold.charged_back is opened_by_network  # only a lost chargeback gave the card its money


# -- the release step and the refund function ------------------------------------------------------


def network(model: type[ev.Event], data: ev.Payload, at: datetime) -> ev.Event:
    return model.create(
        payment_id=sample_chain().held.payment_id, data=data, producer=ev.PROCESSOR_PRODUCER, occurred_at=at
    )


@pytest.fixture
def release(dynamodb: Any) -> ReleaseStep:
    store = LedgerStore("ledger", dynamodb)
    held = sample_chain().held
    hold = held.data.hold
    store.place_hold(
        ledger.HoldRequest(
            payment_id=held.payment_id,
            customer_id=held.data.customer_id,
            provider_id=held.data.provider_id,
            amount_cents=hold.amount_cents,
            currency=hold.currency,
            hold_until=hold.hold_until,
            held_at=hold.held_at,
        )
    )
    return ReleaseStep(store, PaymentsStore("payments", dynamodb))


def test_a_lost_chargeback_refunds_the_hold_and_not_the_card_again(release: ReleaseStep) -> None:
    at = sample_chain().held.data.hold.held_at + timedelta(days=1)
    opened = network(ev.DisputeOpened, ev.DisputeOpenedData(dispute_id="cb1", reason="fraudulent"), at)
    lost = network(
        ev.DisputeResolved, ev.DisputeResolvedData(dispute_id="cb1", outcome=ev.DisputeOutcome.REFUND), at
    )
    with pytest.raises(DisputeNotYetOpenError):  # the decision overtook its opening: retried, never refused
        release.on_dispute_resolved(lost, Receipt(received_at=at))
    assert [type(e) for e in release.on_dispute_opened(opened, Receipt(received_at=at))] == [ev.HoldFrozen]
    refunds = [
        e
        for e in release.on_dispute_resolved(lost, Receipt(received_at=at))
        if isinstance(e, ev.FundsRefunded)
    ]
    assert [e.data.chargeback for e in refunds] == [True]

    acquirer = SimulatedAcquirer(now=lambda: NOW)
    refund_step = RefundStep(acquirer, release.payments, release.ledger)
    assert list(refund_step.on_refunded(refunds[0], Receipt(received_at=at))) == []
    assert acquirer.settlement_lines(NOW.date()) == []  # nothing asked of the processor
    # The ledger booked the network's refund on the card with the decision: the customer is owed nothing.
    assert isinstance(release.ledger, LedgerStore)
    kinds = [t.kind for t in release.ledger.transfers(opened.payment_id)]
    assert kinds.count(ledger.TransferKind.CARD_REFUND) == 1


def test_a_chargeback_of_a_payment_refunded_already_books_the_fee_and_the_loss(release: ReleaseStep) -> None:
    step = replace(release, chargeback_fee_cents=1_500)
    payment_id, at = (
        sample_chain().held.payment_id,
        sample_chain().held.data.hold.held_at + timedelta(hours=1),
    )
    client_refund = ev.DisputeOpened.create(
        payment_id=payment_id,
        data=ev.DisputeOpenedData(dispute_id="d1", reason="not as described"),
        producer=ev.CLIENT_PRODUCER,
        occurred_at=at,
    )
    step.on_dispute_opened(client_refund, Receipt(received_at=at))
    decided = ev.DisputeResolved.create(
        payment_id=payment_id,
        data=ev.DisputeResolvedData(dispute_id="d1", outcome=ev.DisputeOutcome.REFUND),
        producer=ev.CLIENT_PRODUCER,
        occurred_at=at,
    )
    assert ev.FundsRefunded in [type(e) for e in step.on_dispute_resolved(decided, Receipt(received_at=at))]
    later = at + timedelta(days=1)
    opened = network(ev.DisputeOpened, ev.DisputeOpenedData(dispute_id="cb1", reason="fraudulent"), later)
    assert list(step.on_dispute_opened(opened, Receipt(received_at=later))) == []  # nothing to freeze
    lost = network(
        ev.DisputeResolved, ev.DisputeResolvedData(dispute_id="cb1", outcome=ev.DisputeOutcome.REFUND), later
    )
    assert [type(e) for e in step.on_dispute_resolved(lost, Receipt(received_at=later))] == [ev.DisputeClosed]
    store = step.ledger
    assert isinstance(store, LedgerStore)
    kinds = [t.kind for t in store.transfers(payment_id)]
    assert (
        kinds.count(ledger.TransferKind.CHARGEBACK_FEE)
        == kinds.count(ledger.TransferKind.CHARGEBACK_LOSS)
        == 1
    )
    assert (
        store.balance(ledger.AccountId.chargeback_losses("USD"))
        == -sample_chain().held.data.hold.amount_cents
    )


def test_a_client_cannot_decide_the_networks_chargeback(release: ReleaseStep) -> None:
    at = sample_chain().held.data.hold.held_at + timedelta(days=1)
    opened = network(ev.DisputeOpened, ev.DisputeOpenedData(dispute_id="cb1", reason="fraudulent"), at)
    release.on_dispute_opened(opened, Receipt(received_at=at))
    forged = ev.DisputeResolved.create(
        payment_id=opened.payment_id,
        data=ev.DisputeResolvedData(dispute_id="cb1", outcome=ev.DisputeOutcome.RELEASE),
        producer=ev.CLIENT_PRODUCER,
        occurred_at=at,
    )
    (refused,) = release.on_dispute_resolved(forged, Receipt(received_at=at))
    assert isinstance(refused, ev.RequestRefused) and refused.data.code is ev.RefusalCode.DISPUTE_NOT_OPEN
    assert "card network" in refused.data.message


def test_a_refund_the_platform_decided_still_reaches_the_card() -> None:
    refunded = sample_refund(sample_chain().held)
    assert refunded.data.chargeback is False  # the default: only a lost chargeback sets it


# -- the processor's feed --------------------------------------------------------------------------


class Bus:
    """A publisher that fails the events it is told to, and keeps the rest."""

    def __init__(self, failing: Sequence[str] = ()) -> None:
        self.failing = set(failing)
        self.events: list[ev.Event] = []

    def publish(self, events: Sequence[ev.Event]) -> PublishResult:
        result = PublishResult()
        for event in events:
            if event.event_type in self.failing:
                result.failed.append(FailedEntry(event, "InternalFailure", "injected"))
            else:
                result.published.append(event)
                self.events.append(event)
        return result


def test_the_feed_relays_an_opening_before_its_decision_and_each_once() -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    captured(acquirer, DISPUTED_CARD)
    bus = Bus()
    feed = ProcessorFeed(acquirer, bus)  # type: ignore[arg-type]
    late = NOW + CHARGEBACK_DECIDED_AFTER
    assert feed.relay(late) == {"relayed": 1, "failed": 0, "waiting": 1, "malformed": 0}
    assert feed.relay(late) == {"relayed": 1, "failed": 0, "waiting": 0, "malformed": 0}
    assert feed.relay(late)["relayed"] == 0
    opened, lost = bus.events
    assert isinstance(opened, ev.DisputeOpened) and isinstance(lost, ev.DisputeResolved)
    assert {e.producer for e in bus.events} == {ev.PROCESSOR_PRODUCER}
    assert lost.data.outcome is ev.DisputeOutcome.REFUND
    assert opened.occurred_at == NOW + CHARGEBACK_OPENS_AFTER  # the network's time, not the feed's


def test_a_notice_not_published_or_malformed_is_kept_and_stops_nothing() -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    captured(acquirer, DISPUTED_CARD, payment_id="pay-1")
    captured(acquirer, DISPUTED_CARD, payment_id="pay-2")
    broken = acquirer.state.notices[0]
    acquirer.state.notices[0] = cp.DisputeNotice(**{**broken.__dict__, "payment_id": "not an id!"})
    feed = ProcessorFeed(acquirer, Bus(failing=["DisputeOpened"]))  # type: ignore[arg-type]
    opened_at = NOW + CHARGEBACK_OPENS_AFTER
    assert feed.relay(opened_at) == {"relayed": 0, "failed": 1, "waiting": 0, "malformed": 1}
    assert len(acquirer.due_notices(opened_at)) == 2  # both kept for the next run
    bus = Bus()
    assert ProcessorFeed(acquirer, bus).relay(opened_at)["relayed"] == 1  # type: ignore[arg-type]
    assert [e.payment_id for e in bus.events] == ["pay-2"]
    assert [n.payment_id for n in acquirer.due_notices(opened_at)] == ["not an id!"]
