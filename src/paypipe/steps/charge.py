"""charge: approved PaymentScored -> PaymentCharged (the card authorized and captured into the
platform's escrow) or a terminal PaymentDeclined with the processor's reason; and (its refund
function) FundsRefunded or a clawback resolved as a refund -> CardRefunded, the money back on the
card through the same processor, against the charge escrow hold saved with the payout instructions.

Capture at hold: an escrow hold (7 days by default, longer when disputed) outlives a
card-not-present authorization (5-7 days by network), so the card is captured at once and the
platform holds the captured money itself; authorize-then-capture at release would suit only
holds shorter than the authorization (see docs/decisions.md).

No idempotency record: every processor call carries a key derived from the payment
(``operation_key``), so a redelivery asks for the same operations and gets their first outcomes
(nothing is charged twice); the events' ids and times derive from the cause, so a redelivery
publishes the same events again. A processor that stays undecided (errors, timeouts the lookup
cannot resolve) fails the record for SQS to redeliver, and to park in the DLQ at the last receive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

from paypipe.adapters.acquirer_store import DynamoAcquirer
from paypipe.adapters.payments_store import PaymentsStore
from paypipe.adapters.vault import TenantMismatchError, UnknownTokenError
from paypipe.domain import card_processing as cp
from paypipe.domain import ledger
from paypipe.domain.acquirer_simulator import Faults
from paypipe.domain.settlement import render_report, report_key
from paypipe.events import models as ev
from paypipe.runtime import clock
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, PermanentError, Receipt, Route
from paypipe.runtime.entry import LambdaHandler, build_consumer
from paypipe.steps.common import LedgerPort, ledger_from_env, scheduled_time
from paypipe.steps.vaults import vault_from_env

STEP = "charge"
SIMULATOR = "simulator"
CARD_DECLINED = "CARD_DECLINED"


class ProcessorUndecided(RuntimeError):
    """The processor gave no decided answer after its attempts: try the record again later."""


class CardSource(Protocol):
    """Where the charge step reads a card number for a token (the card vault, decrypt only)."""

    def detokenize(self, token: str, *, tenant: str) -> str: ...


@dataclass(frozen=True)
class ChargeStep:
    processor: cp.CardProcessor
    processor_name: str
    cards: CardSource

    def on_scored(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.PaymentScored)
        data = event.data
        if data.assessment.decision is not ev.Decision.APPROVE:
            return []  # review and decline are never charged (the rule filters them too)
        authorized = self._decide(self._authorize_request(event))
        if isinstance(authorized, cp.Declined):
            return [self._declined(event, authorized)]
        captured = self._decide(
            cp.CaptureRequest(
                key=cp.operation_key(cp.Operation.CAPTURE, event.payment_id),
                authorization_id=authorized.reference,
                amount_cents=data.amount_cents,
            )
        )
        if isinstance(captured, cp.Declined):
            self._decide(
                cp.VoidRequest(cp.operation_key(cp.Operation.VOID, event.payment_id), authorized.reference)
            )
            return [self._declined(event, captured)]
        charge = ev.CardCharge(
            processor=self.processor_name,
            authorization_id=authorized.reference,
            captured_cents=captured.amount_cents,
            currency=data.currency,
        )
        charged = ev.PaymentChargedData.model_validate({**data.model_dump(), "charge": charge})
        return [
            ev.PaymentCharged.create(
                payment_id=event.payment_id,
                data=charged,
                producer=STEP,
                cause=event,
                occurred_at=event.occurred_at,  # the cause's time: a redelivery republishes it unchanged
            )
        ]

    def _authorize_request(self, event: ev.PaymentScored) -> cp.AuthorizeRequest:
        data = event.data
        try:
            pan = self.cards.detokenize(data.card.token, tenant=data.tenant_id)
        except (UnknownTokenError, TenantMismatchError) as error:  # no retry finds another card
            raise PermanentError(type(error).__name__.removesuffix("Error"), str(error)) from error
        return cp.AuthorizeRequest(
            key=cp.operation_key(cp.Operation.AUTHORIZE, event.payment_id),
            payment_id=event.payment_id,
            amount_cents=data.amount_cents,
            currency=data.currency,
            card=cp.Card(pan=pan, expiry_month=data.card.exp_month, expiry_year=data.card.exp_year),
        )

    def _decide(self, request: cp.Request) -> cp.Decided:
        return _decided(cp.settle(self.processor, request))

    def _declined(self, event: ev.PaymentScored, declined: cp.Declined) -> ev.PaymentDeclined:
        decline = ev.CardDecline(
            processor=self.processor_name, code=declined.code.value, operation=declined.operation.value
        )
        assessment = event.data.assessment
        data = ev.PaymentDeclinedData(assessment=assessment, reason_code=CARD_DECLINED, card=decline)
        return ev.PaymentDeclined.create(
            payment_id=event.payment_id, data=data, producer=STEP, cause=event, occurred_at=event.occurred_at
        )


def _decided(result: cp.Result) -> cp.Decided:
    """The decided answer, or the record fails: for good (a refusal) or for redelivery."""
    if isinstance(result, cp.Approved | cp.Declined):
        return result
    if isinstance(result, cp.ProcessorError) and not result.retryable:
        raise PermanentError("ProcessorRefused", f"{result.operation}: {result.message}")
    raise ProcessorUndecided(f"{result.operation} undecided after {cp.DEFAULT_ATTEMPTS} attempts")


def routes(step: ChargeStep) -> dict[str, Route]:
    return {"PaymentScored": Route(step.on_scored, idempotent=False)}


def processor_from_env() -> DynamoAcquirer:
    """The processor the stack is configured for (``CARD_PROCESSOR``): the simulated acquirer,
    its state in the acquirer table, with the fault run's seeded faults when it sets them."""
    name = setting("CARD_PROCESSOR", SIMULATOR)
    if name != SIMULATOR:
        raise ValueError(f"CARD_PROCESSOR={name!r}: only {SIMULATOR!r} is deployable (see the README)")
    faults = Faults(
        seed=int_setting("ACQUIRER_FAULT_SEED", 0),
        error_rate=float(setting("ACQUIRER_ERROR_RATE", "0")),
        timeout_rate=float(setting("ACQUIRER_TIMEOUT_RATE", "0")),
    )
    return DynamoAcquirer(setting("ACQUIRER_TABLE"), client("dynamodb"), clock.now, faults=faults)


def build() -> Consumer:
    step = ChargeStep(processor_from_env(), SIMULATOR, vault_from_env())
    return build_consumer(STEP, routes(step))


@dataclass(frozen=True)
class RefundStep:
    """FundsRefunded, or a clawback resolved as a refund -> CardRefunded: the card gets it back,
    and the ledger books it there (customer -> card clearing)."""

    processor: cp.CardProcessor
    payments: PaymentsStore
    ledger: LedgerPort

    def on_refunded(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.FundsRefunded | ev.ClawbackResolved)
        data = event.data
        if isinstance(data, ev.ClawbackResolvedData) and data.outcome is not ev.DisputeOutcome.REFUND:
            return []  # the receivable was cancelled: the provider keeps the money, nothing to refund
        if data.chargeback:
            return []  # the network already took the money back for the card (a lost chargeback)
        charge = self.payments.instructions(event.payment_id).charge
        if charge is None:
            raise PermanentError("NoCardCharge", f"payment {event.payment_id} has no card charge to refund")
        request = cp.RefundRequest(
            key=cp.operation_key(cp.Operation.REFUND, event.payment_id, event.event_id),
            authorization_id=charge.authorization_id,
            amount_cents=data.amount_cents,
        )
        result = _decided(cp.settle(self.processor, request))
        if isinstance(result, cp.Declined):
            raise PermanentError("RefundRefused", f"{result.code}: {result.message}")
        booked = self.ledger.return_to_card(
            event.payment_id, refund_id=event.event_id, amount_cents=data.amount_cents, at=event.occurred_at
        )
        if isinstance(booked, ledger.Rejected):  # the card has it; the ledger must be mended by hand
            raise PermanentError(f"Ledger{booked.reason.value.title()}", booked.message)
        refunded = ev.CardRefundedData(
            processor=charge.processor,
            authorization_id=charge.authorization_id,
            refund_id=result.reference,
            amount_cents=data.amount_cents,
            currency=data.currency,
            refund_of=event.event_type,
        )
        return [
            ev.CardRefunded.create(
                payment_id=event.payment_id,
                data=refunded,
                producer=STEP,
                cause=event,
                occurred_at=event.occurred_at,  # the cause's time: a redelivery republishes it unchanged
            )
        ]


def refund_routes(step: RefundStep) -> dict[str, Route]:
    return {
        "FundsRefunded": Route(step.on_refunded, idempotent=False),
        "ClawbackResolved": Route(step.on_refunded, idempotent=False),
    }


def build_refunds() -> Consumer:
    payments = PaymentsStore(setting("PAYMENTS_TABLE"), client("dynamodb"))
    step = RefundStep(processor_from_env(), payments, ledger_from_env())
    return build_consumer(STEP, refund_routes(step))


def write_settlement_report(
    acquirer: DynamoAcquirer, s3: Any, bucket: str, kms_key_id: str, day: date
) -> dict[str, Any]:
    """The simulated acquirer's report of ``day``, dropped in the bucket as an acquirer drops it."""
    lines = acquirer.settlement_lines(day)
    key = report_key(day)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=render_report(day, lines).encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key_id,
    )
    return {"day": day.isoformat(), "key": key, "lines": len(lines)}


def build_settlement_report() -> LambdaHandler:
    """Scheduled: yesterday's report (the schedule's own time); invoked with {"day": "YYYY-MM-DD"}:
    that day's, written again."""
    acquirer = processor_from_env()
    s3, bucket, key_id = client("s3"), setting("REPORT_BUCKET"), setting("REPORT_KMS_KEY_ID")

    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, Any]:
        asked = event.get("day")
        day = (
            date.fromisoformat(asked)
            if isinstance(asked, str)
            else (scheduled_time(event) - timedelta(days=1)).date()
        )
        return write_settlement_report(acquirer, s3, bucket, key_id, day)

    return handler
