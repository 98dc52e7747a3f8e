"""escrow hold: PaymentCharged -> FundsHeld (card clearing -> escrow until hold-until, and the
capture's contracted card fee booked as the platform's expense).

No idempotency record: the payout instructions (and the card charge a refund goes back to) are
saved with the event's content fingerprint and the first receipt time (other content for the
payment is refused before any money moves), the ledger places the hold of those terms once per
payment (a redelivery finds it, a ``Duplicate``), and FundsHeld's id and time derive from the
payment and the stored hold, so a redelivery publishes the same event again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from paypipe.adapters.payments_store import PaymentsStore
from paypipe.domain import ledger
from paypipe.domain.settlement import FeeSchedule
from paypipe.events import models as ev
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import (
    Consumer,
    PermanentError,
    Receipt,
    Route,
    content_conflict,
    content_fingerprint,
)
from paypipe.runtime.entry import build_consumer
from paypipe.steps.common import LedgerPort, contracted_fees, ledger_from_env

STEP = "escrow_hold"


@dataclass(frozen=True)
class EscrowHoldStep:
    ledger: LedgerPort
    payments: PaymentsStore
    hold_for: timedelta
    fees: FeeSchedule = field(default_factory=FeeSchedule)  # the acquirer contract's

    def on_charged(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        """The captured card money goes from card clearing into escrow until the hold-until time."""
        assert isinstance(event, ev.PaymentCharged)
        data = event.data
        fingerprint = content_fingerprint(event)
        held_at = self.payments.keep_payee(
            event.payment_id,
            data.payee,
            data.received_at,
            fingerprint=fingerprint,
            at=receipt.received_at,
            charge=data.charge,
        )
        if held_at is None:
            raise content_conflict(f"{STEP}:{event.payment_id}:{event.event_type}")
        request = ledger.HoldRequest(
            payment_id=event.payment_id,
            customer_id=data.customer.id,
            provider_id=data.provider_id,
            amount_cents=data.amount_cents,
            currency=data.currency,
            held_at=held_at,  # the first receipt's, so any copy of the event asks the same hold
            hold_until=held_at + self.hold_for,
            card_fee_cents=self.fees.fee(data.charge.captured_cents),
        )
        outcome = self.ledger.place_hold(request)
        if isinstance(outcome, ledger.Rejected):
            raise PermanentError(f"Ledger{outcome.reason.value.title()}", outcome.message)
        hold = outcome.hold
        held = ev.FundsHeldData(
            hold=ev.HoldRef(
                hold_id=ledger.hold_transfer_id(event.payment_id),
                amount_cents=hold.amount_cents,
                currency=hold.currency,
                held_at=hold.held_at,
                hold_until=hold.hold_until,
            ),
            customer_id=hold.customer_id,
            provider_id=hold.provider_id,
            payee=data.payee,
            received_at=data.received_at,
        )
        return [
            ev.FundsHeld.create(
                payment_id=event.payment_id,
                data=held,
                producer=STEP,
                cause=event,
                dedup_key="hold",
                occurred_at=hold.held_at,
            )
        ]


def build() -> Consumer:
    step = EscrowHoldStep(
        ledger=ledger_from_env(),
        payments=PaymentsStore(setting("PAYMENTS_TABLE"), client("dynamodb")),
        hold_for=timedelta(days=int_setting("HOLD_DAYS", 7)),
        fees=contracted_fees(),
    )
    return build_consumer(STEP, routes(step))


def routes(step: EscrowHoldStep) -> dict[str, Route]:
    return {"PaymentCharged": Route(step.on_charged, idempotent=False)}
