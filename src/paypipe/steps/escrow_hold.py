"""escrow hold: approved PaymentScored -> FundsHeld (card clearing -> escrow until hold-until)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from paypipe.adapters.payments_store import PaymentsStore
from paypipe.domain import ledger
from paypipe.events import models as ev
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, PermanentError, Receipt, Route
from paypipe.runtime.entry import build_consumer
from paypipe.steps.common import LedgerPort, ledger_from_env

STEP = "escrow_hold"


@dataclass(frozen=True)
class EscrowHoldStep:
    ledger: LedgerPort
    payments: PaymentsStore
    hold_for: timedelta

    def on_scored(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.PaymentScored)
        data = event.data
        if data.assessment.decision is not ev.Decision.APPROVE:
            return []  # review and decline never reach escrow (the rule filters them too)
        request = ledger.HoldRequest(
            payment_id=event.payment_id,
            customer_id=data.customer.id,
            provider_id=data.provider_id,
            amount_cents=data.amount_cents,
            currency=data.currency,
            held_at=receipt.received_at,
            hold_until=receipt.received_at + self.hold_for,
        )
        outcome = self.ledger.place_hold(request)
        if isinstance(outcome, ledger.Rejected):
            raise PermanentError(f"Ledger{outcome.reason.value.title()}", outcome.message)
        self.payments.save_payee(event.payment_id, data.payee, data.received_at)
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
    )
    return build_consumer(STEP, {"PaymentScored": Route(step.on_scored)})
