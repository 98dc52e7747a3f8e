"""release: ServiceCompleted / DisputeOpened / DisputeResolved and the expiry sweep.

A hold resolves exactly once (the ledger guarantees it); this step turns each resolution into
FundsReleased or FundsRefunded, with an event id derived from the payment, so however many
times and in whatever order the triggers arrive, downstream sees one release or one refund.
Disputes act by the phase the payment is in (see ``paypipe.domain.ledger``): a frozen hold
(HoldFrozen), a payout held back (PayoutHeldBack) or a clawback from the provider
(ClawbackBooked). A client command the ledger refuses is answered with a RequestRefused that
names it and the reason. Every command takes effect at the pipeline's receipt time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from paypipe.adapters.payments_store import PaymentsStore
from paypipe.domain import ledger
from paypipe.domain.identifiers import ID_GRAMMAR, is_valid_id
from paypipe.domain.ledger import Applied, DisputePhase, Duplicate, Hold, Outcome
from paypipe.events import models as ev
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, PermanentError, Receipt, Refusal, Route
from paypipe.runtime.entry import LambdaHandler, build_consumer, publisher
from paypipe.runtime.logging import get_logger
from paypipe.runtime.publisher import EventPublisher
from paypipe.runtime.retry import retry_throttled
from paypipe.steps.common import LedgerPort, contracted_fees, ledger_from_env, scheduled_time

STEP = "release"

# Ledger refusals of a client command, and the reason code the client is told.
REFUSAL_CODES: Mapping[ledger.Rejection, ev.RefusalCode] = {
    ledger.Rejection.FROZEN: ev.RefusalCode.HOLD_FROZEN,
    ledger.Rejection.HOLD_EXPIRED: ev.RefusalCode.HOLD_EXPIRED,
    ledger.Rejection.ALREADY_RESOLVED: ev.RefusalCode.ALREADY_RESOLVED,
    ledger.Rejection.REFUNDED: ev.RefusalCode.ALREADY_REFUNDED,
    ledger.Rejection.DISPUTE_NOT_OPEN: ev.RefusalCode.DISPUTE_NOT_OPEN,
    ledger.Rejection.DISPUTE_ALREADY_RESOLVED: ev.RefusalCode.DISPUTE_ALREADY_RESOLVED,
    ledger.Rejection.DISPUTE_WINDOW_CLOSED: ev.RefusalCode.DISPUTE_WINDOW_CLOSED,
    # Not open to the one resolving it: a client's for the network's chargeback, or the reverse.
    ledger.Rejection.DISPUTE_OF_ANOTHER_PARTY: ev.RefusalCode.DISPUTE_NOT_OPEN,
}
_NOT_YET_OPEN = {ledger.Rejection.NOT_FOUND, ledger.Rejection.DISPUTE_NOT_OPEN}
_OUTCOMES = {
    ev.DisputeOutcome.RELEASE: ledger.DisputeOutcome.RELEASE,
    ev.DisputeOutcome.REFUND: ledger.DisputeOutcome.REFUND,
}


class DisputeNotYetOpenError(Exception):
    """The network decided a chargeback whose opening has not been booked yet: retry later (the
    network's decision is never refused)."""


class HoldNotFoundError(Exception):
    """The hold is not there yet (events can overtake each other); retried by redelivery."""


def refused(
    event: ev.Event, code: ev.RefusalCode, message: str, at: datetime, field: str | None = None
) -> ev.Event:
    data = ev.RequestRefusedData(
        request_event_id=event.event_id,
        request_type=event.event_type,
        code=code,
        field=field,
        message=message,
    )
    return ev.RequestRefused.create(
        payment_id=event.payment_id,
        data=data,
        producer=STEP,
        cause=event,
        dedup_key=f"refused:{event.event_id}:{code.value}",
        occurred_at=at,
    )


@dataclass(frozen=True)
class ReleaseStep:
    ledger: LedgerPort
    payments: PaymentsStore
    dispute_window: timedelta | None = None  # how long after release disputes are accepted
    chargeback_fee_cents: int = 0  # the network's fee on each chargeback (the acquirer contract's)

    def on_service_completed(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        outcome = self.ledger.release(
            event.payment_id, resolution_id="service-completed", at=receipt.received_at
        )
        if (refusal := self._refusal(event, outcome, receipt)) is not None:
            return [refusal]
        return self._resolution_events(outcome, event, ev.ReleaseTrigger.SERVICE_COMPLETED)

    def on_dispute_opened(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.DisputeOpened)
        dispute_id, network = event.data.dispute_id, event.producer == ev.PROCESSOR_PRODUCER
        if not is_valid_id(dispute_id):
            message = f"dispute_id must be {ID_GRAMMAR}"
            return [
                refused(event, ev.RefusalCode.IDENTIFIER_INVALID, message, receipt.received_at, "dispute_id")
            ]
        outcome = self.ledger.open_dispute(
            event.payment_id,
            dispute_id=dispute_id,
            at=receipt.received_at,
            window=self.dispute_window,
            network=network,
            network_fee_cents=self.chargeback_fee_cents if network else 0,
        )
        if (refusal := self._refusal(event, outcome, receipt)) is not None:
            return [refusal]
        assert not isinstance(outcome, ledger.Rejected)
        hold = outcome.hold
        dispute = hold.dispute(dispute_id)
        assert dispute is not None
        return dispute_opened_events(hold, dispute, event)

    def on_dispute_resolved(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.DisputeResolved)
        data, network = event.data, event.producer == ev.PROCESSOR_PRODUCER
        outcome = self.ledger.resolve_dispute(
            event.payment_id,
            dispute_id=data.dispute_id,
            outcome=_OUTCOMES[data.outcome],
            at=receipt.received_at,
            network=network,
        )
        if network and isinstance(outcome, ledger.Rejected) and outcome.reason in _NOT_YET_OPEN:
            raise DisputeNotYetOpenError(outcome.message)
        if isinstance(outcome, ledger.Rejected) and outcome.reason is ledger.Rejection.NOT_FOUND:
            # No hold, so no dispute of this payment was ever opened.
            message = f"payment {event.payment_id} has no dispute {data.dispute_id}"
            return [
                refused(event, ev.RefusalCode.DISPUTE_NOT_OPEN, message, receipt.received_at, "dispute_id")
            ]
        if (refusal := self._refusal(event, outcome, receipt)) is not None:
            return [refusal]
        assert not isinstance(outcome, ledger.Rejected)
        return self._dispute_closed_events(outcome, event)

    def on_expiry_due(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.HoldExpiryDue)
        # The sweep (the only trusted producer) found the hold due at hold-until by its schedule's
        # clock; a late delivery is due all the more. The release itself is dated at hold-until.
        outcome = self.ledger.expire(event.payment_id, as_of=max(receipt.received_at, event.data.hold_until))
        if isinstance(outcome, ledger.Rejected) and outcome.reason is not ledger.Rejection.NOT_FOUND:
            get_logger(step=STEP).info(
                "no change to hold", reason=outcome.reason.value, detail=outcome.message
            )
            return []
        return self._resolution_events(outcome, event, ev.ReleaseTrigger.HOLD_EXPIRED)

    def on_refused(self, event: ev.Event, refusal: Refusal, receipt: Receipt) -> Sequence[ev.Event]:
        """A client command refused at the trust boundary (e.g. clock skew)."""
        return [
            refused(event, ev.RefusalCode(refusal.code), refusal.message, receipt.received_at, refusal.field)
        ]

    def _refusal(self, event: ev.Event, outcome: Outcome, receipt: Receipt) -> ev.Event | None:
        """The RequestRefused answering a ledger refusal; raise when the command must be retried."""
        if not isinstance(outcome, ledger.Rejected):
            return None
        if outcome.reason is ledger.Rejection.NOT_FOUND:
            raise HoldNotFoundError(outcome.message)
        code = REFUSAL_CODES.get(outcome.reason)
        if code is None:
            raise PermanentError(f"Ledger{outcome.reason.value.title()}", outcome.message)
        return refused(event, code, outcome.message, receipt.received_at)

    def _dispute_closed_events(
        self, outcome: Applied | Duplicate, cause: ev.DisputeResolved
    ) -> list[ev.Event]:
        hold = outcome.hold
        dispute = hold.dispute(cause.data.dispute_id)
        assert dispute is not None and dispute.outcome is not None
        closed = ev.DisputeClosed.create(
            payment_id=hold.payment_id,
            data=ev.DisputeClosedData(
                dispute_id=dispute.dispute_id,
                outcome=ev.DisputeOutcome(dispute.outcome.value),
                phase=ev.DisputePhase(dispute.phase.value),
                still_open=[d.dispute_id for d in hold.open_disputes(dispute.phase)],
            ),
            producer=STEP,
            cause=cause,
            dedup_key=f"closed:{dispute.dispute_id}",
            occurred_at=dispute.closed_at,
        )
        if dispute.after_refund or hold.open_disputes(dispute.phase):
            return [closed]
        match dispute.phase:
            case DisputePhase.ESCROW:
                return [closed, *self._resolution_events(outcome, cause, ev.ReleaseTrigger.DISPUTE_RESOLVED)]
            case DisputePhase.PAYOUT:
                return [closed, *self._payout_dispute_end(outcome, cause)]
            case DisputePhase.CLAWBACK:
                return [closed, clawback_resolved(hold, dispute, cause)]

    def _payout_dispute_end(self, outcome: Applied | Duplicate, cause: ev.Event) -> list[ev.Event]:
        hold = outcome.hold
        if not hold.reversed_cents:
            # Released to the provider again (payout proceeds), or refunded before the sweep ran.
            return (
                self._resolution_events(outcome, cause, ev.ReleaseTrigger.DISPUTE_RESOLVED)
                if (hold.status is ledger.HoldStatus.REFUNDED)
                else []
            )
        refunded = ev.FundsRefundedData(
            hold_id=ledger.hold_transfer_id(hold.payment_id),
            amount_cents=hold.reversed_cents,
            currency=hold.currency,
            customer_id=hold.customer_id,
            refunded_at=hold.reversed_at or hold.last_change,
            dispute_id=cause.data.dispute_id if isinstance(cause, ev.DisputeResolved) else None,
            after_release=True,
            chargeback=hold.charged_back,
        )
        return [
            ev.FundsRefunded.create(
                payment_id=hold.payment_id,
                data=refunded,
                producer=STEP,
                cause=cause,
                dedup_key="reversal",
                occurred_at=refunded.refunded_at,
            )
        ]

    def _resolution_events(
        self, outcome: Outcome, cause: ev.Event | None, trigger: ev.ReleaseTrigger
    ) -> list[ev.Event]:
        if isinstance(outcome, ledger.Rejected):
            raise HoldNotFoundError(outcome.message)
        hold = outcome.hold
        resolved_at = hold.resolved_at or hold.held_at
        hold_id = ledger.hold_transfer_id(hold.payment_id)
        events: list[ev.Event] = []
        if hold.released_cents:
            instructions = self.payments.instructions(hold.payment_id)
            payee = instructions.payee
            if payee is None:
                raise PermanentError("PayeeMissing", f"no payout instructions for payment {hold.payment_id}")
            released = ev.FundsReleasedData(
                hold_id=hold_id,
                amount_cents=hold.released_cents,
                currency=hold.currency,
                provider_id=hold.provider_id,
                payee=payee,
                trigger=_trigger_of(hold, trigger),
                released_at=resolved_at,
                received_at=instructions.received_at,
            )
            events.append(
                ev.FundsReleased.create(
                    payment_id=hold.payment_id,
                    data=released,
                    producer=STEP,
                    cause=cause,
                    dedup_key="resolution",
                    occurred_at=resolved_at,
                )
            )
        if hold.refunded_cents:
            refunded = ev.FundsRefundedData(
                hold_id=hold_id,
                amount_cents=hold.refunded_cents,
                currency=hold.currency,
                customer_id=hold.customer_id,
                refunded_at=resolved_at,
                dispute_id=(hold.resolution_id or "").removeprefix(ledger.DISPUTE_RESOLUTION_PREFIX) or None,
                chargeback=hold.charged_back,
            )
            events.append(
                ev.FundsRefunded.create(
                    payment_id=hold.payment_id,
                    data=refunded,
                    producer=STEP,
                    cause=cause,
                    dedup_key="resolution",
                    occurred_at=resolved_at,
                )
            )
        return events


def dispute_opened_events(hold: ledger.Hold, dispute: ledger.Dispute, cause: ev.Event) -> list[ev.Event]:
    """What an accepted dispute announces: a frozen hold, a payout held back or a clawback."""
    hold_id = ledger.hold_transfer_id(hold.payment_id)
    model: type[ev.Event]
    data: ev.Payload
    key = f"dispute:{dispute.dispute_id}"
    if dispute.after_refund:
        get_logger(step=STEP).info(
            "chargeback of a refunded payment: its fee booked", dispute=dispute.dispute_id
        )
        return []
    match dispute.phase:
        case DisputePhase.ESCROW:
            model, key = ev.HoldFrozen, f"freeze:{dispute.dispute_id}"
            data = ev.HoldFrozenData(hold_id=hold_id, dispute_id=dispute.dispute_id)
        case DisputePhase.PAYOUT:
            model = ev.PayoutHeldBack
            data = ev.PayoutHeldBackData(
                dispute_id=dispute.dispute_id,
                hold_id=hold_id,
                amount_cents=hold.released_cents or hold.amount_cents,
                currency=hold.currency,
            )
        case DisputePhase.CLAWBACK:
            if dispute.episode != dispute.dispute_id:
                get_logger(step=STEP).info("dispute joins an open clawback", episode=dispute.episode)
                return []
            model = ev.ClawbackBooked
            data = ev.ClawbackBookedData(
                dispute_id=dispute.dispute_id,
                provider_id=hold.provider_id,
                amount_cents=hold.released_cents,
                currency=hold.currency,
                payout_ref=hold.payout_ref or "",
            )
    return [
        model.create(
            payment_id=hold.payment_id,
            data=data,
            producer=STEP,
            cause=cause,
            dedup_key=key,
            occurred_at=dispute.opened_at,
        )
    ]


def clawback_resolved(hold: ledger.Hold, dispute: ledger.Dispute, cause: ev.Event) -> ev.Event:
    episode = [d for d in hold.disputes if d.phase is DisputePhase.CLAWBACK and d.episode == dispute.episode]
    refund = any(d.outcome is ledger.DisputeOutcome.REFUND for d in episode)
    data = ev.ClawbackResolvedData(
        dispute_id=dispute.episode,
        provider_id=hold.provider_id,
        amount_cents=hold.released_cents,
        currency=hold.currency,
        outcome=ev.DisputeOutcome.REFUND if refund else ev.DisputeOutcome.RELEASE,
        chargeback=refund and hold.charged_back,
    )
    return ev.ClawbackResolved.create(
        payment_id=hold.payment_id,
        data=data,
        producer=STEP,
        cause=cause,
        dedup_key=f"clawback:{dispute.episode}",
        occurred_at=dispute.closed_at,
    )


def _trigger_of(hold: ledger.Hold, fallback: ev.ReleaseTrigger) -> ev.ReleaseTrigger:
    """What actually resolved the hold (a duplicate trigger reports the original one)."""
    if hold.status is ledger.HoldStatus.EXPIRED_RELEASED:
        return ev.ReleaseTrigger.HOLD_EXPIRED
    if (hold.resolution_id or "").startswith(ledger.DISPUTE_RESOLUTION_PREFIX):
        return ev.ReleaseTrigger.DISPUTE_RESOLVED
    if hold.resolution_id == "service-completed":
        return ev.ReleaseTrigger.SERVICE_COMPLETED
    return fallback


@dataclass
class ReleaseSweep:
    """Finds holds past their hold-until time and disputes past their age, and says so on the bus.

    The sweep only publishes ``HoldExpiryDue`` (resolving and announcing happen in the consumer,
    whose idempotency re-publishes the outcome if anything fails in between) and ``DisputeAged``
    (once per dispute: the ledger notes each one signalled after it is published). A hold stays in
    the due index until it is resolved, so a failed sweep is caught up by the next. A hold the
    sweep cannot read is set aside (out of the ledger's indexes, with an ``ItemSetAside``) so it
    never stops the others.
    """

    ledger: LedgerPort
    events: EventPublisher
    max_holds: int = 1000
    dispute_max_age: timedelta = timedelta(days=30)

    def sweep(self, as_of: datetime) -> dict[str, int]:
        expiries: list[ev.Event] = []
        set_aside: list[ev.Event] = []
        for payment_id in retry_throttled(lambda: self.ledger.due_holds(as_of, self.max_holds)):
            hold = self._readable(payment_id, as_of, set_aside)
            if hold is not None and hold.is_due(as_of):
                expiries.append(expiry_due(hold))
        aged = self._aged(as_of, set_aside)
        result = self.events.publish([*expiries, *(event for event, _ in aged), *set_aside])
        if not result.ok:
            failed = len(result.failed)
            raise RuntimeError(f"{failed} sweep events not published; the next sweep retries")
        for event, dispute_id in aged:
            retry_throttled(
                partial(self.ledger.mark_dispute_aged, event.payment_id, dispute_id=dispute_id, at=as_of)
            )
        return {"expiries_published": len(expiries), "disputes_aged": len(aged), "set_aside": len(set_aside)}

    def _readable(self, payment_id: str, as_of: datetime, set_aside: list[ev.Event]) -> Hold | None:
        """The hold, or None when there is none or it cannot be read (then it is set aside)."""
        try:
            return retry_throttled(partial(self.ledger.get_hold, payment_id))
        except Exception as error:
            get_logger(step=STEP).error("hold set aside by the sweep", payment_id=payment_id, exc_info=True)
            detail = f"{type(error).__name__}: {error}"[:500]
            retry_throttled(partial(self.ledger.set_aside, payment_id, reason="UNREADABLE_HOLD"))
            set_aside.append(
                ev.ItemSetAside.create(
                    payment_id=payment_id,
                    producer=STEP,
                    dedup_key="set-aside:release_sweep:UNREADABLE_HOLD",
                    occurred_at=as_of,
                    data=ev.ItemSetAsideData(job="release_sweep", reason="UNREADABLE_HOLD", detail=detail),
                )
            )
            return None

    def _aged(self, as_of: datetime, set_aside: list[ev.Event]) -> list[tuple[ev.Event, str]]:
        cutoff = as_of - self.dispute_max_age
        found: list[tuple[ev.Event, str]] = []
        for payment_id in retry_throttled(lambda: self.ledger.aged_disputes(cutoff, self.max_holds)):
            hold = self._readable(payment_id, as_of, set_aside)
            for dispute in hold.open_disputes() if hold else ():
                if dispute.aged_at is None and dispute.opened_at <= cutoff:
                    found.append(
                        (disputed_aged(payment_id, dispute, self.dispute_max_age), dispute.dispute_id)
                    )
        return found


def expiry_due(hold: Hold) -> ev.Event:
    """The sweep's command to release a hold past its hold-until time."""
    return ev.HoldExpiryDue.create(
        payment_id=hold.payment_id,
        producer=STEP,
        dedup_key=f"expiry:{hold.hold_until.isoformat()}",
        occurred_at=hold.hold_until,
        data=ev.HoldExpiryDueData(hold_until=hold.hold_until),
    )


def disputed_aged(payment_id: str, dispute: ledger.Dispute, max_age: timedelta) -> ev.Event:
    data = ev.DisputeAgedData(
        dispute_id=dispute.dispute_id,
        phase=ev.DisputePhase(dispute.phase.value),
        opened_at=dispute.opened_at,
        max_age_days=max(1, max_age.days),
    )
    return ev.DisputeAged.create(
        payment_id=payment_id,
        data=data,
        producer=STEP,
        dedup_key=f"aged:{dispute.dispute_id}",
        occurred_at=dispute.opened_at + max_age,
    )


def _days_setting(name: str, default: int) -> timedelta | None:
    days = int_setting(name, default)
    return timedelta(days=days) if days > 0 else None


def _step() -> ReleaseStep:
    return ReleaseStep(
        ledger_from_env(),
        PaymentsStore(setting("PAYMENTS_TABLE"), client("dynamodb")),
        dispute_window=_days_setting("DISPUTE_WINDOW_DAYS", 120),
        chargeback_fee_cents=contracted_fees().chargeback_minor,
    )


def routes(step: ReleaseStep) -> dict[str, Route]:
    return {
        # Keyed by the client's event: a command sent twice is two requests the ledger decides
        # once (a second, contradictory one is refused with its reason, never parked). Their
        # records keep the first answer: a later copy could meet another ledger state.
        "ServiceCompleted": Route(
            step.on_service_completed, business_key=_request_key, on_refused=step.on_refused
        ),
        "DisputeOpened": Route(step.on_dispute_opened, business_key=_request_key, on_refused=step.on_refused),
        "DisputeResolved": Route(
            step.on_dispute_resolved, business_key=_request_key, on_refused=step.on_refused
        ),
        # The sweep's own command needs no record: the ledger expires a hold once, and what a copy
        # publishes is the stored resolution (or, the hold resolved otherwise, nothing).
        "HoldExpiryDue": Route(step.on_expiry_due, idempotent=False),
    }


def build() -> Consumer:
    return build_consumer(STEP, routes(_step()))


def _request_key(event: ev.Event) -> str:
    return f"{event.payment_id}:{event.event_type}:{event.event_id}"


def build_sweep() -> LambdaHandler:
    sweep = ReleaseSweep(
        ledger_from_env(),
        publisher(STEP),
        int_setting("SWEEP_MAX_HOLDS", 1000),
        dispute_max_age=timedelta(days=max(1, int_setting("DISPUTE_MAX_AGE_DAYS", 30))),
    )

    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, int]:
        return sweep.sweep(scheduled_time(event))

    return handler
