"""validate: PaymentRequested -> PaymentValidated | PaymentRejected.

Business rejects are events, never DLQ traffic. The step is deterministic for a given request
(expiry is judged on the request's own date), so redelivery recomputes the same events with the
same ids instead of caching output that would contain the card number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from paypipe.adapters.payments_store import PaymentsStore
from paypipe.domain import validation
from paypipe.events import models as ev
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, FieldError, Route, content_fingerprint
from paypipe.runtime.entry import build_consumer

STEP = "validate"


@dataclass(frozen=True)
class ValidateStep:
    payments: PaymentsStore
    max_amount_cents: int
    supported_currencies: frozenset[str]

    def on_requested(self, event: ev.Event) -> Sequence[ev.Event]:
        assert isinstance(event, ev.PaymentRequested)
        data = event.data
        facts = validation.PaymentFacts(
            amount_cents=data.amount_cents,
            currency=data.currency,
            card_number=data.card.number.get_secret_value(),
            exp_month=data.card.exp_month,
            exp_year=data.card.exp_year,
            routing_number=data.payee.routing_number,
            account_number=data.payee.account_number,
            payee_name=data.payee.name,
            request_bytes=len(json.dumps(ev.to_detail(event), separators=(",", ":"))),
        )
        rejections = validation.validate_payment(
            facts,
            today=event.occurred_at.date(),
            max_amount_cents=self.max_amount_cents,
            supported_currencies=self.supported_currencies,
        )
        if rejections:
            return [rejected(event, rejections)]
        if not self.payments.claim(event.payment_id, content_fingerprint(event), event.event_id):
            duplicate = validation.Rejection(
                validation.RejectReason.DUPLICATE_PAYMENT_ID,
                "payment_id",
                "payment id already used by a request with different content",
            )
            return [rejected(event, [duplicate])]
        validated = ev.PaymentValidatedData.model_validate(data.model_dump())
        return [
            ev.PaymentValidated.create(
                payment_id=event.payment_id, data=validated, producer=STEP, cause=event
            )
        ]


MAX_SCHEMA_REASONS = 10


def on_invalid(envelope: ev.Event, errors: Sequence[FieldError]) -> Sequence[ev.Event]:
    """A request whose envelope is intact but whose data breaks the contract is rejected, not parked."""
    reasons = [
        validation.Rejection(validation.RejectReason.SCHEMA_INVALID, error.field, error.message)
        for error in errors[:MAX_SCHEMA_REASONS]
    ]
    return [rejected(envelope, reasons)]


def rejected(event: ev.Event, rejections: Sequence[validation.Rejection]) -> ev.PaymentRejected:
    data = ev.PaymentRejectedData(
        reasons=[ev.Rejection(code=r.code.value, field=r.field, message=r.message) for r in rejections],
        request_event_id=event.event_id,
    )
    return ev.PaymentRejected.create(payment_id=event.payment_id, data=data, producer=STEP, cause=event)


def build() -> Consumer:
    step = ValidateStep(
        payments=PaymentsStore(setting("PAYMENTS_TABLE"), client("dynamodb")),
        max_amount_cents=int_setting("MAX_AMOUNT_CENTS", 1_000_000_000),
        supported_currencies=frozenset(
            code.strip().upper() for code in setting("SUPPORTED_CURRENCIES", "USD").split(",") if code.strip()
        ),
    )
    route = Route(step.on_requested, idempotent=False, on_invalid=on_invalid)
    return build_consumer(STEP, {"PaymentRequested": route})
