"""The charge step on the simulated acquirer: approved cards captured once, declines terminal with
the processor's reason, undecided calls failing the record, never a second charge; refunds back to
the card once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from paypipe.adapters.ledger_store import LedgerStore
from paypipe.adapters.payments_store import PaymentsStore
from paypipe.domain import card_processing as cp
from paypipe.domain import ledger
from paypipe.domain.acquirer_simulator import TEST_CARDS, Faults, SimulatedAcquirer
from paypipe.domain.settlement import LineKind
from paypipe.embedded.samples import SAMPLE_PAN, sample_chain, sample_refund
from paypipe.events import models as ev
from paypipe.runtime.consumer import PermanentError, Receipt
from paypipe.steps.charge import CARD_DECLINED, SIMULATOR, ChargeStep, ProcessorUndecided, RefundStep
from tests.tables import create_table

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)
DECLINE_CARDS = sorted(pan for pan, code in TEST_CARDS.items() if isinstance(code, cp.DeclineCode))


@dataclass
class Cards:
    pan: str = SAMPLE_PAN

    def detokenize(self, token: str, *, tenant: str) -> str:
        return self.pan


def charge(step: ChargeStep, event: ev.PaymentScored) -> list[ev.Event]:
    return list(step.on_scored(event, Receipt(received_at=event.occurred_at)))


def captures(acquirer: SimulatedAcquirer) -> list[int]:
    return [
        line.amount_minor for line in acquirer.settlement_lines(NOW.date()) if line.kind is LineKind.CAPTURE
    ]


def charge_until_decided(step: ChargeStep, event: ev.PaymentScored, deliveries: int = 10) -> list[ev.Event]:
    """Delivered again (as SQS does) while the processor stays undecided."""
    for _ in range(deliveries - 1):
        try:
            return charge(step, event)
        except ProcessorUndecided:
            continue
    return charge(step, event)


@pytest.fixture
def scored() -> ev.PaymentScored:
    return sample_chain().scored


def test_an_approved_card_is_captured_in_full_and_charged_once(scored: ev.PaymentScored) -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    step = ChargeStep(acquirer, SIMULATOR, Cards())
    (charged,) = charge(step, scored)
    assert isinstance(charged, ev.PaymentCharged)
    assert charged.data.charge.captured_cents == scored.data.amount_cents == 12_500
    assert charged.data.charge.currency == "USD"
    assert charged.data.amount_cents == scored.data.amount_cents
    assert charged.data.payee == scored.data.payee
    assert charge(step, scored) == [charged]  # a redelivery: the same event, no second capture
    assert captures(acquirer) == [12_500]


@pytest.mark.parametrize("pan", DECLINE_CARDS)
def test_a_declined_card_ends_declined_with_the_processor_reason(scored: ev.PaymentScored, pan: str) -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    (declined,) = charge(ChargeStep(acquirer, SIMULATOR, Cards(pan)), scored)
    assert isinstance(declined, ev.PaymentDeclined)
    assert declined.data.reason_code == CARD_DECLINED
    assert declined.data.card == ev.CardDecline(
        processor=SIMULATOR, code=TEST_CARDS[pan], operation="authorize"
    )
    assert declined.data.assessment == scored.data.assessment
    assert captures(acquirer) == []


def test_a_processor_that_never_answers_fails_the_record_for_redelivery(scored: ev.PaymentScored) -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    with pytest.raises(ProcessorUndecided):
        charge(ChargeStep(acquirer, SIMULATOR, Cards("4000000000008005")), scored)
    assert captures(acquirer) == []


def test_lost_replies_and_errors_are_settled_without_a_second_charge(scored: ev.PaymentScored) -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW, faults=Faults(seed=7, error_rate=0.3, timeout_rate=0.4))
    step = ChargeStep(acquirer, SIMULATOR, Cards())
    outcomes = []
    for n in range(40):
        event = scored.model_copy(update={"payment_id": f"pay-{n}"})
        outcomes.append(charge_until_decided(step, event))
    assert all(isinstance(out[0], ev.PaymentCharged) for out in outcomes)
    assert captures(acquirer) == [12_500] * 40


def test_the_same_payment_with_other_content_is_refused_not_charged(scored: ev.PaymentScored) -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    step = ChargeStep(acquirer, SIMULATOR, Cards())
    charge(step, scored)
    data = scored.data.model_copy(update={"amount_cents": 99_900})
    with pytest.raises(PermanentError) as refused:
        charge(step, scored.model_copy(update={"data": data}))
    assert refused.value.reason == "ProcessorRefused"
    assert captures(acquirer) == [12_500]


def test_a_refused_capture_voids_the_authorization(scored: ev.PaymentScored) -> None:
    class RefusesCaptures(SimulatedAcquirer):
        def capture(self, request: cp.CaptureRequest) -> cp.Result:
            return cp.Declined(cp.Operation.CAPTURE, request.key, cp.DeclineCode.DO_NOT_HONOR, "no")

    acquirer = RefusesCaptures(now=lambda: NOW)
    (declined,) = charge(ChargeStep(acquirer, SIMULATOR, Cards()), scored)
    assert isinstance(declined, ev.PaymentDeclined)
    assert declined.data.card is not None and declined.data.card.operation == "capture"
    void = cp.VoidRequest(cp.operation_key(cp.Operation.VOID, scored.payment_id), "")
    assert isinstance(acquirer.lookup(void), cp.Approved)


@pytest.mark.parametrize("decision", [ev.Decision.REVIEW, ev.Decision.DECLINE])
def test_only_approved_payments_are_charged(scored: ev.PaymentScored, decision: ev.Decision) -> None:
    assessment = scored.data.assessment.model_copy(update={"decision": decision})
    event = scored.model_copy(update={"data": scored.data.model_copy(update={"assessment": assessment})})
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    assert charge(ChargeStep(acquirer, SIMULATOR, Cards()), event) == []
    assert acquirer.settlement_days() == []


# -- refunds -------------------------------------------------------------------------------------


@pytest.fixture
def payments() -> Iterator[PaymentsStore]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "payments")
        yield PaymentsStore("payments", client)


@pytest.fixture
def books(payments: PaymentsStore) -> LedgerStore:
    """The ledger, holding the sample payment refunded to its customer (escrow refunded it)."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_table(client, "ledger", gsi=True)
    store = LedgerStore("ledger", client)
    hold = sample_chain().held.data
    request = ledger.HoldRequest(
        payment_id=sample_chain().held.payment_id,
        customer_id=hold.customer_id,
        provider_id=hold.provider_id,
        amount_cents=hold.hold.amount_cents,
        currency=hold.hold.currency,
        hold_until=hold.hold.hold_until,
        held_at=hold.hold.held_at,
    )
    assert isinstance(store.place_hold(request), ledger.Applied)
    assert isinstance(
        store.refund(request.payment_id, resolution_id="r1", at=hold.hold.held_at), ledger.Applied
    )
    return store


def card_refunds(books: LedgerStore) -> list[int]:
    """What the ledger booked as reaching the card (customer -> card clearing)."""
    return [
        t.postings[0].amount_cents
        for t in books.transfers(sample_chain().held.payment_id)
        if t.kind is ledger.TransferKind.CARD_REFUND
    ]


def charged_and_kept(acquirer: SimulatedAcquirer, payments: PaymentsStore) -> ev.PaymentCharged:
    """The sample payment charged, and its charge kept with its payout instructions (escrow hold)."""
    (charged,) = charge(ChargeStep(acquirer, SIMULATOR, Cards()), sample_chain().scored)
    assert isinstance(charged, ev.PaymentCharged)
    data = charged.data
    payments.keep_payee(
        charged.payment_id, data.payee, data.received_at, fingerprint="f", at=NOW, charge=data.charge
    )
    return charged


def refund(step: RefundStep, event: ev.Event) -> list[ev.Event]:
    return list(step.on_refunded(event, Receipt(received_at=event.occurred_at)))


def refunds(acquirer: SimulatedAcquirer) -> list[int]:
    return [
        line.amount_minor for line in acquirer.settlement_lines(NOW.date()) if line.kind is LineKind.REFUND
    ]


def test_a_refund_in_escrow_goes_back_to_the_card_once(payments: PaymentsStore, books: LedgerStore) -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    charged = charged_and_kept(acquirer, payments)
    step = RefundStep(acquirer, payments, books)
    refunded = sample_refund(sample_chain().held)
    (card_refunded,) = refund(step, refunded)
    assert isinstance(card_refunded, ev.CardRefunded)
    assert card_refunded.data.amount_cents == refunded.data.amount_cents == 12_500
    assert card_refunded.data.authorization_id == charged.data.charge.authorization_id
    assert card_refunded.data.refund_of == "FundsRefunded"
    assert refund(step, refunded) == [card_refunded]  # a redelivery: the same event, one refund
    assert refunds(acquirer) == [12_500]
    assert card_refunds(books) == [12_500]  # booked once in the ledger too


def test_a_card_refund_the_ledger_cannot_book_is_parked(payments: PaymentsStore, books: LedgerStore) -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    charged_and_kept(acquirer, payments)
    step = RefundStep(acquirer, payments, books)
    payment_id, at = sample_chain().held.payment_id, NOW
    # The customer's refund already reached the card by another way (booked by hand, say).
    books.return_to_card(payment_id, refund_id="by-hand", amount_cents=12_500, at=at)
    with pytest.raises(PermanentError) as parked:  # the ledger owed the customer nothing more
        refund(step, sample_refund(sample_chain().held))
    assert parked.value.reason == "LedgerInsufficient_Funds"
    assert card_refunds(books) == [12_500]


def test_a_lost_clawback_refunds_the_card_and_a_cancelled_one_does_not(
    payments: PaymentsStore, books: LedgerStore
) -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    charged_and_kept(acquirer, payments)
    step = RefundStep(acquirer, payments, books)

    def clawback(outcome: ev.DisputeOutcome) -> ev.ClawbackResolved:
        data = ev.ClawbackResolvedData(
            dispute_id="d1", provider_id="prov-sample", amount_cents=2_500, currency="USD", outcome=outcome
        )
        return ev.ClawbackResolved.create(
            payment_id=sample_chain().held.payment_id, data=data, producer="release"
        )

    assert refund(step, clawback(ev.DisputeOutcome.RELEASE)) == []
    (card_refunded,) = refund(step, clawback(ev.DisputeOutcome.REFUND))
    assert isinstance(card_refunded, ev.CardRefunded) and card_refunded.data.amount_cents == 2_500
    assert refunds(acquirer) == [2_500]


def test_a_refund_without_a_charge_or_beyond_it_is_parked_not_retried(
    payments: PaymentsStore, books: LedgerStore
) -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW)
    step = RefundStep(acquirer, payments, books)
    refunded = sample_refund(sample_chain().held)
    with pytest.raises(PermanentError) as missing:
        refund(step, refunded)
    assert missing.value.reason == "NoCardCharge"
    charged_and_kept(acquirer, payments)
    too_much = refunded.model_copy(update={"data": refunded.data.model_copy(update={"amount_cents": 12_501})})
    with pytest.raises(PermanentError) as refused:
        refund(step, too_much)
    assert refused.value.reason == "RefundRefused"
    assert refunds(acquirer) == []
    assert card_refunds(books) == []
