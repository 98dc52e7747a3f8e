"""validate: PaymentRequested -> PaymentValidated | PaymentRejected | RequestRefused.

Business rejects are events, never DLQ traffic. The first request to reach validate owns its
payment id (the registry keeps its event id, content fingerprint and receipt time); every other
request for that id, whatever its content, is refused with a ``RequestRefused`` that names it,
so a payment has one journey and one terminal state. Every decision is taken at the owning
request's receipt time on the pipeline's clock, so a redelivery recomputes the same events with
the same ids instead of caching output that would contain the card number.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from paypipe.adapters.payments_store import Claim, PaymentsStore
from paypipe.domain import validation
from paypipe.domain.identifiers import canonical_ip
from paypipe.domain.payout_rails import PAYOUT_RAILS
from paypipe.events import models as ev
from paypipe.redaction import redact
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, FieldError, Receipt, Refusal, Route, content_fingerprint
from paypipe.runtime.entry import build_consumer

STEP = "validate"
MAX_SCHEMA_REASONS = 10


def request_fingerprint(event: ev.Event) -> str:
    """The content fingerprint of a request, parsed or not (card numbers masked before hashing)."""
    if isinstance(event.data, ev.Payload):
        return content_fingerprint(event)
    payload = json.dumps(redact(event.data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def facts_of(event: ev.PaymentRequested) -> validation.PaymentFacts:
    data = event.data
    return validation.PaymentFacts(
        amount_cents=data.amount_cents,
        currency=data.currency,
        card_number=data.card.number.get_secret_value(),
        exp_month=data.card.exp_month,
        exp_year=data.card.exp_year,
        cvv=data.card.cvv.get_secret_value() if data.card.cvv else None,
        routing_number=data.payee.routing_number,
        account_number=data.payee.account_number,
        payee_name=data.payee.name,
        request_bytes=len(json.dumps(ev.to_detail(event), separators=(",", ":"))),
        ids={
            "event_id": event.event_id,
            "payment_id": event.payment_id,
            "customer.id": data.customer.id,
            "provider_id": data.provider_id,
            "tenant_id": data.tenant_id,
        },
        tenant_id=data.tenant_id,
        ip_address=data.device.ip_address,
    )


@dataclass(frozen=True)
class ValidateStep:
    payments: PaymentsStore
    max_amount_cents: int
    supported_currencies: frozenset[str]
    allowed_tenants: frozenset[str] | None = None  # None: any id that follows the grammar
    odfi_routing: str | None = None  # refused as a payee bank (None: any)

    def __post_init__(self) -> None:
        limit = max((rail.max_entry_minor for rail in PAYOUT_RAILS.values()), default=0)
        if self.max_amount_cents > limit:
            raise ValueError(
                f"MAX_AMOUNT_CENTS {self.max_amount_cents} exceeds what one NACHA entry carries ({limit})"
            )

    def on_requested(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.PaymentRequested)
        claim = self._claim(event, receipt)
        if not claim.owned:
            return [duplicate_refused(event, claim, receipt.received_at)]
        rejections = validation.validate_payment(
            facts_of(event),
            today=claim.received_at.date(),
            max_amount_cents=self.max_amount_cents,
            supported_currencies=self.supported_currencies,
            allowed_tenants=self.allowed_tenants,
            odfi_routing=self.odfi_routing,
        )
        if rejections:
            return [rejected(event, rejections, claim.received_at)]
        data = event.data.model_dump()
        del data["card"]["cvv"]  # checked for format above; never published, never stored
        data["device"]["ip_address"] = canonical_ip(event.data.device.ip_address)
        validated = ev.PaymentValidatedData.model_validate({**data, "received_at": claim.received_at})
        return [
            ev.PaymentValidated.create(
                payment_id=event.payment_id,
                data=validated,
                producer=STEP,
                cause=event,
                occurred_at=claim.received_at,
            )
        ]

    def on_payee_update(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        """New bank details for a provider: validated like a payment's payee, or refused with why."""
        assert isinstance(event, ev.PayeeAccountUpdated)
        data = event.data
        facts = validation.PayeeFacts(
            routing_number=data.payee.routing_number,
            account_number=data.payee.account_number,
            payee_name=data.payee.name,
            ids={
                "payment_id": event.payment_id,
                "provider_id": data.provider_id,
                "tenant_id": data.tenant_id,
            },
            tenant_id=data.tenant_id,
        )
        rejections = validation.validate_payee_update(
            facts, allowed_tenants=self.allowed_tenants, odfi_routing=self.odfi_routing
        )
        if rejections:
            return [payee_rejected(event, rejections, receipt.received_at)]
        validated = ev.PayeeAccountValidatedData(**data.model_dump(), received_at=receipt.received_at)
        return [
            ev.PayeeAccountValidated.create(
                payment_id=event.payment_id,
                data=validated,
                producer=STEP,
                cause=event,
                occurred_at=receipt.received_at,
            )
        ]

    def on_payee_update_refused(
        self, event: ev.Event, refusal: Refusal, receipt: Receipt
    ) -> Sequence[ev.Event]:
        reason = validation.Rejection(validation.RejectReason(refusal.code), refusal.field, refusal.message)
        return [payee_rejected(event, [reason], receipt.received_at)]

    def on_invalid(
        self, envelope: ev.Event, errors: Sequence[FieldError], receipt: Receipt
    ) -> Sequence[ev.Event]:
        """A request whose envelope is intact but whose data breaks the contract is rejected, not parked."""
        reasons = [
            validation.Rejection(validation.RejectReason.SCHEMA_INVALID, error.field, error.message)
            for error in errors[:MAX_SCHEMA_REASONS]
        ]
        return self._reject_owned(envelope, reasons, receipt)

    def on_refused(self, event: ev.Event, refusal: Refusal, receipt: Receipt) -> Sequence[ev.Event]:
        """A request refused at the trust boundary (clock skew) ends rejected with that reason."""
        reason = validation.Rejection(validation.RejectReason(refusal.code), refusal.field, refusal.message)
        return self._reject_owned(event, [reason], receipt)

    def _reject_owned(
        self, event: ev.Event, reasons: Sequence[validation.Rejection], receipt: Receipt
    ) -> Sequence[ev.Event]:
        claim = self._claim(event, receipt)
        if not claim.owned:
            return [duplicate_refused(event, claim, receipt.received_at)]
        return [rejected(event, reasons, claim.received_at)]

    def _claim(self, event: ev.Event, receipt: Receipt) -> Claim:
        return self.payments.claim(
            event.payment_id, request_fingerprint(event), event.event_id, receipt.received_at
        )


def rejected(event: ev.Event, rejections: Sequence[validation.Rejection], at: datetime) -> ev.PaymentRejected:
    data = ev.PaymentRejectedData(
        reasons=[ev.Rejection(code=r.code.value, field=r.field, message=r.message) for r in rejections],
        request_event_id=event.event_id,
    )
    return ev.PaymentRejected.create(
        payment_id=event.payment_id, data=data, producer=STEP, cause=event, occurred_at=at
    )


def duplicate_refused(event: ev.Event, claim: Claim, at: datetime) -> ev.RequestRefused:
    """The refusal of a request for a payment id another request owns (its own event)."""
    data = ev.RequestRefusedData(
        request_event_id=event.event_id,
        request_type=event.event_type,
        code=ev.RefusalCode.DUPLICATE_PAYMENT_ID,
        field="payment_id",
        message="payment id already belongs to another request; use a new payment id",
        original_event_id=claim.request_event_id,
    )
    return ev.RequestRefused.create(
        payment_id=event.payment_id,
        data=data,
        producer=STEP,
        cause=event,
        dedup_key=f"duplicate:{event.event_id}:{request_fingerprint(event)}",
        occurred_at=at,
    )


def payee_rejected(
    event: ev.Event, rejections: Sequence[validation.Rejection], at: datetime
) -> ev.PayeeAccountRejected:
    data = ev.PaymentRejectedData(
        reasons=[ev.Rejection(code=r.code.value, field=r.field, message=r.message) for r in rejections],
        request_event_id=event.event_id,
    )
    return ev.PayeeAccountRejected.create(
        payment_id=event.payment_id, data=data, producer=STEP, cause=event, occurred_at=at
    )


def tenants_setting(raw: str) -> frozenset[str] | None:
    """``ALLOWED_TENANTS``: comma-separated tenant ids, or ``*`` for any id that follows the grammar."""
    tenants = frozenset(part.strip() for part in raw.split(",") if part.strip())
    return None if "*" in tenants else tenants


def build() -> Consumer:
    step = ValidateStep(
        payments=PaymentsStore(setting("PAYMENTS_TABLE"), client("dynamodb")),
        max_amount_cents=int_setting("MAX_AMOUNT_CENTS", 1_000_000_000),
        supported_currencies=frozenset(
            code.strip().upper() for code in setting("SUPPORTED_CURRENCIES", "USD").split(",") if code.strip()
        ),
        allowed_tenants=tenants_setting(setting("ALLOWED_TENANTS", "default")),
        odfi_routing=None
        if setting("ACH_ALLOW_ODFI_PAYEE", "false") == "true"
        else os.environ.get("ACH_ODFI_ROUTING") or None,
    )
    route = Route(step.on_requested, idempotent=False, on_invalid=step.on_invalid, on_refused=step.on_refused)
    update = Route(step.on_payee_update, idempotent=False, on_refused=step.on_payee_update_refused)
    return build_consumer(STEP, {"PaymentRequested": route, "PayeeAccountUpdated": update})
