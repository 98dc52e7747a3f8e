"""Release triggers in any order, any number of times: a hold resolves exactly once."""

import itertools
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paypipe.adapters.ledger_store import LedgerStore
from paypipe.adapters.payments_store import PaymentsStore
from paypipe.domain import ledger
from paypipe.embedded.scenario import payment_requested
from paypipe.events import models as ev
from paypipe.runtime.consumer import PermanentError
from paypipe.steps.release import ReleaseStep
from tests.tables import create_table

pytestmark = pytest.mark.embedded

HELD_AT = datetime(2026, 5, 4, 15, tzinfo=UTC)
HOLD_UNTIL = HELD_AT + timedelta(days=7)


def make_tables(dynamodb, suffix):
    create_table(dynamodb, f"ledger{suffix}", gsi=True)
    create_table(dynamodb, f"payments{suffix}")


PAYMENT_NUMBERS = itertools.count()


def resolve(step, event, parked):
    """A contradictory verdict on an already-resolved dispute goes to the DLQ (PermanentError)."""
    try:
        return step.on_dispute_resolved(event)
    except PermanentError as error:
        assert error.reason == "LedgerIdempotency_Conflict", error
        parked.append(str(error))
        return []


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
    request = payment_requested(
        payment_id, customer_id="c1", amount_cents=5000, pan="4111111111111111", occurred_at=HELD_AT
    )
    payments.save_payee(payment_id, request.data.payee)
    held = store.place_hold(ledger.HoldRequest(payment_id, "c1", "prov-1", 5000, "USD", HOLD_UNTIL, HELD_AT))
    assert isinstance(held, ledger.Applied)
    step = ReleaseStep(store, payments)
    emitted: dict[str, ev.Event] = {}
    parked: list[str] = []
    for trigger, offset in zip(triggers, minutes, strict=False):
        at = HELD_AT + timedelta(minutes=offset)
        if trigger == "sweep":
            if at < HOLD_UNTIL:
                continue  # the sweep only finds holds past their hold-until time
            out = step.on_expiry_due(
                ev.HoldExpiryDue.create(
                    payment_id=payment_id,
                    data=ev.HoldExpiryDueData(hold_until=HOLD_UNTIL),
                    producer="release",
                    occurred_at=HOLD_UNTIL,
                )
            )
        elif trigger == "completed":
            out = step.on_service_completed(
                ev.ServiceCompleted.create(
                    payment_id=payment_id,
                    data=ev.ServiceCompletedData(completed_at=at),
                    producer="client",
                    occurred_at=at,
                )
            )
        elif trigger == "opened":
            out = step.on_dispute_opened(
                ev.DisputeOpened.create(
                    payment_id=payment_id,
                    data=ev.DisputeOpenedData(dispute_id="d1", reason="x"),
                    producer="client",
                    occurred_at=at,
                )
            )
        else:
            outcome = ev.DisputeOutcome.REFUND if trigger == "resolved_refund" else ev.DisputeOutcome.RELEASE
            out = resolve(
                step,
                ev.DisputeResolved.create(
                    payment_id=payment_id,
                    data=ev.DisputeResolvedData(dispute_id="d1", outcome=outcome),
                    producer="client",
                    occurred_at=at,
                ),
                parked,
            )
        for event in out:
            emitted.setdefault(event.event_id, event)

    if parked:  # only a contradictory second verdict on the same dispute is refused
        assert {"resolved_refund", "resolved_release"} <= set(triggers)
    resolutions = [e for e in emitted.values() if e.event_type in {"FundsReleased", "FundsRefunded"}]
    assert len(resolutions) <= 1, [e.event_type for e in resolutions]
    hold = store.get_hold(payment_id)
    assert hold is not None
    if resolutions:
        assert hold.is_resolved
        assert resolutions[0].data.amount_cents == 5000
    else:
        assert not hold.is_resolved
    assert set(store.verify_balanced().values()) == {0}
