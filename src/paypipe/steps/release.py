"""release: ServiceCompleted / DisputeOpened / DisputeResolved and the expiry sweep.

A hold resolves exactly once (the ledger guarantees it); this step turns each resolution into
FundsReleased or FundsRefunded, with an event id derived from the payment, so however many
times and in whatever order the triggers arrive, downstream sees one release or one refund.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from paypipe.adapters.payments_store import PaymentsStore
from paypipe.domain import ledger
from paypipe.domain.ledger import Outcome
from paypipe.events import models as ev
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, PermanentError, Route
from paypipe.runtime.entry import LambdaHandler, build_consumer, publisher
from paypipe.runtime.logging import get_logger
from paypipe.runtime.publisher import EventPublisher
from paypipe.runtime.retry import retry_throttled
from paypipe.steps.common import LedgerPort, ledger_from_env, scheduled_time

STEP = "release"

# Refusals that mean "someone else already decided", not errors.
SETTLED_REJECTIONS = frozenset(
    {ledger.Rejection.ALREADY_RESOLVED, ledger.Rejection.HOLD_EXPIRED, ledger.Rejection.FROZEN}
)


class HoldNotFoundError(Exception):
    """The hold is not there yet (events can overtake each other); retried by redelivery."""


@dataclass(frozen=True)
class ReleaseStep:
    ledger: LedgerPort
    payments: PaymentsStore

    def on_service_completed(self, event: ev.Event) -> Sequence[ev.Event]:
        hold = self.ledger.get_hold(event.payment_id)
        if hold is None:
            raise HoldNotFoundError(f"no hold for payment {event.payment_id} yet")
        if hold.status is ledger.HoldStatus.FROZEN:
            get_logger(step=STEP).info("service completed on a disputed hold; the dispute decides")
            return []
        outcome = self.ledger.release(
            event.payment_id, resolution_id="service-completed", at=event.occurred_at
        )
        return self._resolution_events(outcome, event, ev.ReleaseTrigger.SERVICE_COMPLETED)

    def on_dispute_opened(self, event: ev.Event) -> Sequence[ev.Event]:
        assert isinstance(event, ev.DisputeOpened)
        outcome = self.ledger.freeze(event.payment_id, dispute_id=event.data.dispute_id, at=event.occurred_at)
        if not self._effective(outcome):
            return []
        assert not isinstance(outcome, ledger.Rejected)
        frozen = ev.HoldFrozenData(
            hold_id=ledger.hold_transfer_id(event.payment_id), dispute_id=event.data.dispute_id
        )
        return [
            ev.HoldFrozen.create(
                payment_id=event.payment_id,
                data=frozen,
                producer=STEP,
                cause=event,
                dedup_key=f"freeze:{event.data.dispute_id}",
            )
        ]

    def on_dispute_resolved(self, event: ev.Event) -> Sequence[ev.Event]:
        assert isinstance(event, ev.DisputeResolved)
        resolution_id = f"dispute:{event.data.dispute_id}"
        if event.data.outcome is ev.DisputeOutcome.REFUND:
            outcome = self.ledger.refund(event.payment_id, resolution_id=resolution_id, at=event.occurred_at)
        else:
            outcome = self.ledger.release(event.payment_id, resolution_id=resolution_id, at=event.occurred_at)
        return self._resolution_events(outcome, event, ev.ReleaseTrigger.DISPUTE_RESOLVED)

    def on_expiry_due(self, event: ev.Event) -> Sequence[ev.Event]:
        assert isinstance(event, ev.HoldExpiryDue)
        # As of the hold-until time itself: the outcome does not depend on when the sweep ran.
        outcome = self.ledger.expire(event.payment_id, as_of=event.data.hold_until)
        return self._resolution_events(outcome, event, ev.ReleaseTrigger.HOLD_EXPIRED)

    def _effective(self, outcome: Outcome) -> bool:
        """True when the outcome stands (applied now or before); raise or ignore otherwise."""
        if not isinstance(outcome, ledger.Rejected):
            return True
        if outcome.reason is ledger.Rejection.NOT_FOUND:
            raise HoldNotFoundError(outcome.message)
        if outcome.reason in SETTLED_REJECTIONS or outcome.reason is ledger.Rejection.NOT_DUE:
            get_logger(step=STEP).info(
                "no change to hold", reason=outcome.reason.value, detail=outcome.message
            )
            return False
        raise PermanentError(f"Ledger{outcome.reason.value.title()}", outcome.message)

    def _resolution_events(
        self, outcome: Outcome, cause: ev.Event | None, trigger: ev.ReleaseTrigger
    ) -> list[ev.Event]:
        if not self._effective(outcome):
            return []
        assert not isinstance(outcome, ledger.Rejected)
        hold = outcome.hold
        resolved_at = hold.resolved_at or hold.held_at
        hold_id = ledger.hold_transfer_id(hold.payment_id)
        events: list[ev.Event] = []
        if hold.released_cents:
            payee = self.payments.payee(hold.payment_id)
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
                dispute_id=(hold.resolution_id or "").removeprefix("dispute:") or None,
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


def _trigger_of(hold: ledger.Hold, fallback: ev.ReleaseTrigger) -> ev.ReleaseTrigger:
    """What actually resolved the hold (a duplicate trigger reports the original one)."""
    if hold.status is ledger.HoldStatus.EXPIRED_RELEASED:
        return ev.ReleaseTrigger.HOLD_EXPIRED
    if (hold.resolution_id or "").startswith("dispute:"):
        return ev.ReleaseTrigger.DISPUTE_RESOLVED
    if hold.resolution_id == "service-completed":
        return ev.ReleaseTrigger.SERVICE_COMPLETED
    return fallback


@dataclass
class ReleaseSweep:
    """Finds holds past their hold-until time and asks the release consumer to release them.

    The sweep only publishes ``HoldExpiryDue``; resolving and announcing happen in the consumer,
    whose idempotency re-publishes the outcome if anything fails in between. A hold stays in the
    due index until it is resolved, so a failed sweep is caught up by the next.
    """

    ledger: LedgerPort
    events: EventPublisher
    max_holds: int = 1000

    def sweep(self, as_of: datetime) -> int:
        due = []
        for payment_id in retry_throttled(lambda: self.ledger.due_holds(as_of, self.max_holds)):
            hold = retry_throttled(partial(self.ledger.get_hold, payment_id))
            if hold is not None and hold.is_due(as_of):
                due.append(
                    ev.HoldExpiryDue.create(
                        payment_id=payment_id,
                        producer=STEP,
                        dedup_key=f"expiry:{hold.hold_until.isoformat()}",
                        occurred_at=hold.hold_until,
                        data=ev.HoldExpiryDueData(hold_until=hold.hold_until),
                    )
                )
        result = self.events.publish(due)
        if not result.ok:
            failed = len(result.failed)
            raise RuntimeError(f"{failed} of {len(due)} expiries not published; the next sweep retries")
        return len(due)


def _step() -> ReleaseStep:
    return ReleaseStep(ledger_from_env(), PaymentsStore(setting("PAYMENTS_TABLE"), client("dynamodb")))


def build() -> Consumer:
    step = _step()
    return build_consumer(
        STEP,
        {
            "ServiceCompleted": Route(step.on_service_completed),
            "DisputeOpened": Route(step.on_dispute_opened, business_key=_dispute_key),
            "DisputeResolved": Route(step.on_dispute_resolved, business_key=_dispute_key),
            "HoldExpiryDue": Route(step.on_expiry_due),
        },
    )


def _dispute_key(event: ev.Event) -> str:
    dispute_id = getattr(event.data, "dispute_id", "")
    return f"{event.payment_id}:{event.event_type}:{dispute_id}"


def build_sweep() -> LambdaHandler:
    sweep = ReleaseSweep(ledger_from_env(), publisher(STEP), int_setting("SWEEP_MAX_HOLDS", 1000))

    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, int]:
        return {"expiries_published": sweep.sweep(scheduled_time(event))}

    return handler
