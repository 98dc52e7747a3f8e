"""Release triggers in any order, any number of times: a hold resolves exactly once, and a
release is reversed at most once (a dispute after release, lost before the payout)."""

import itertools
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paypipe.adapters.ledger_store import LedgerStore
from paypipe.adapters.payments_store import PaymentsStore
from paypipe.domain import ledger
from paypipe.embedded.samples import sample_chain
from paypipe.events import models as ev
from paypipe.runtime.consumer import Receipt
from paypipe.steps.release import ReleaseStep
from tests.tables import create_table

pytestmark = pytest.mark.embedded

HELD_AT = datetime(2026, 5, 4, 15, tzinfo=UTC)
HOLD_UNTIL = HELD_AT + timedelta(days=7)


def make_tables(dynamodb, suffix):
    create_table(dynamodb, f"ledger{suffix}", gsi=True)
    create_table(dynamodb, f"payments{suffix}")


PAYMENT_NUMBERS = itertools.count()


def resolve(step, event, receipt, refused):
    """A contradictory verdict on an already-resolved dispute is refused with its reason."""
    out = step.on_dispute_resolved(event, receipt)
    refused.extend(e.data.code for e in out if isinstance(e, ev.RequestRefused))
    return out


PAYEE = sample_chain().held.data.payee  # as tokenize leaves it: by vault token
TRIGGERS = st.lists(
    st.sampled_from(["completed", "opened", "resolved_refund", "resolved_release", "sweep"]),
    min_size=1,
    max_size=8,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(triggers=TRIGGERS, minutes=st.lists(st.integers(0, 60 * 24 * 9), min_size=8, max_size=8))
def test_exactly_one_resolution_whatever_the_order(aws, triggers, minutes):
    dynamodb = boto3.client("dynamodb")
    number = next(PAYMENT_NUMBERS)  # fresh tables per example, shrinking included (moto slows as tables grow)
    make_tables(dynamodb, number)
    payment_id = f"p{number}"
    store = LedgerStore(f"ledger{number}", dynamodb)
    payments = PaymentsStore(f"payments{number}", dynamodb)
    payments.save_payee(payment_id, PAYEE)
    held = store.place_hold(ledger.HoldRequest(payment_id, "c1", "prov-1", 5000, "USD", HOLD_UNTIL, HELD_AT))
    assert isinstance(held, ledger.Applied)
    step = ReleaseStep(store, payments)
    emitted: dict[str, ev.Event] = {}
    refused: list[str] = []
    for trigger, offset in zip(triggers, minutes, strict=False):
        at = HELD_AT + timedelta(minutes=offset)
        receipt = Receipt(at, "paypipe.client")
        if trigger == "sweep":
            if at < HOLD_UNTIL:
                continue  # the sweep only finds holds past their hold-until time
            due = ev.HoldExpiryDue.create(
                payment_id=payment_id,
                data=ev.HoldExpiryDueData(hold_until=HOLD_UNTIL),
                producer="release",
                occurred_at=HOLD_UNTIL,
            )
            out = step.on_expiry_due(due, Receipt(at, "paypipe.release"))
        elif trigger == "completed":
            completed = ev.ServiceCompleted.create(
                payment_id=payment_id,
                data=ev.ServiceCompletedData(completed_at=at),
                producer="client",
                occurred_at=at,
            )
            out = step.on_service_completed(completed, receipt)
        elif trigger == "opened":
            opened = ev.DisputeOpened.create(
                payment_id=payment_id,
                data=ev.DisputeOpenedData(dispute_id="d1", reason="x"),
                producer="client",
                occurred_at=at,
            )
            out = step.on_dispute_opened(opened, receipt)
        else:
            outcome = ev.DisputeOutcome.REFUND if trigger == "resolved_refund" else ev.DisputeOutcome.RELEASE
            resolved = ev.DisputeResolved.create(
                payment_id=payment_id,
                data=ev.DisputeResolvedData(dispute_id="d1", outcome=outcome),
                producer="client",
                occurred_at=at,
            )
            out = resolve(step, resolved, receipt, refused)
        for event in out:
            emitted.setdefault(event.event_id, event)

    if ev.RefusalCode.DISPUTE_ALREADY_RESOLVED in refused:  # a contradictory second verdict
        assert {"resolved_refund", "resolved_release"} <= set(triggers)
    released = [e for e in emitted.values() if isinstance(e, ev.FundsReleased)]
    refunded = [e for e in emitted.values() if isinstance(e, ev.FundsRefunded)]
    assert len(released) <= 1 and len(refunded) <= 1, [e.event_type for e in emitted.values()]
    hold = store.get_hold(payment_id)
    assert hold is not None
    assert hold.is_resolved == bool(released or refunded)
    if released and refunded:  # released, then disputed and lost before any payout: reversed once
        assert refunded[0].data.after_release and hold.reversed_cents == 5000
    for event in (*released, *refunded):
        assert event.data.amount_cents == 5000
    if released:
        assert released[0].data.released_at >= HELD_AT
    assert set(store.verify_balanced().values()) == {0}
