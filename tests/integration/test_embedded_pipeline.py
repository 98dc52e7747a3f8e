"""End to end on the embedded (moto) pipeline built from the SAM template."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from paypipe.domain import nacha
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.scenario import TERMINAL_STATES, build_scenario, final_states
from paypipe.events import models as ev

pytestmark = pytest.mark.embedded


def follow_ups(held: list[ev.FundsHeld]) -> tuple[list[ev.Event], list[ev.Event]]:
    """Service completion for most holds, a refunded dispute for one, the rest left to expire."""
    opened, resolved = [], []
    for index, hold in enumerate(held):
        if index % 5 == 0:
            continue
        if index % 5 == 1:
            dispute = f"d-{hold.payment_id}"
            opened.append(
                ev.DisputeOpened.create(
                    payment_id=hold.payment_id,
                    producer="client",
                    cause=hold,
                    data=ev.DisputeOpenedData(dispute_id=dispute, reason="no show"),
                )
            )
            resolved.append(
                ev.DisputeResolved.create(
                    payment_id=hold.payment_id,
                    producer="client",
                    cause=hold,
                    data=ev.DisputeResolvedData(dispute_id=dispute, outcome=ev.DisputeOutcome.REFUND),
                )
            )
        else:
            opened.append(
                ev.ServiceCompleted.create(
                    payment_id=hold.payment_id,
                    producer="client",
                    cause=hold,
                    data=ev.ServiceCompletedData(completed_at=hold.occurred_at),
                )
            )
    return opened, resolved


def run(pipeline: EmbeddedPipeline, count: int, *, duplicate: bool) -> list[ev.Event]:
    now = datetime.now(UTC).replace(microsecond=0)
    scenario = build_scenario(count, seed=11, now=now, run_id="e2e")
    copies = 2 if duplicate else 1
    for _ in range(copies):  # at-least-once: clients and the bus may deliver twice
        assert pipeline.play(scenario.requests).ok
    pipeline.drain()
    held = [e for e in pipeline.observed() if isinstance(e, ev.FundsHeld)]
    held = list({e.payment_id: e for e in held}.values())
    opened, resolved = follow_ups(held)
    for wave in (opened, resolved):
        for _ in range(copies):
            assert pipeline.publish(wave).ok
        pipeline.drain()
    hold_days = int(pipeline.stack.parameters["HoldDays"])
    for _ in range(copies):
        pipeline.run_scheduled(now + timedelta(days=hold_days + 1))
        pipeline.drain()
    pipeline.run_scheduled(now + timedelta(days=hold_days + 3))
    pipeline.drain()
    return pipeline.observed()


@pytest.mark.parametrize("duplicate", [False, True], ids=["once", "every-delivery-twice"])
def test_every_payment_ends_once_and_ach_matches_releases(duplicate):
    with EmbeddedPipeline() as pipeline:
        observed = run(pipeline, 40, duplicate=duplicate)
        states = final_states(observed)
        assert len(states) == 40
        assert set(states.values()) <= TERMINAL_STATES, Counter(states.values())
        assert {"paid_out", "rejected", "refunded", "declined"} <= set(states.values())
        # Nobody decided the reviews: the sweep declined each once it was past its deadline.
        expired = Counter(
            payment_id
            for payment_id, _ in {
                (e.payment_id, e.event_id)
                for e in observed
                if isinstance(e, ev.PaymentDeclined) and e.data.reason_code == "REVIEW_EXPIRED"
            }
        )
        assert expired and set(expired.values()) == {1}
        assert "review" not in states.values()

        terminal = Counter(
            (e.payment_id, e.event_id) for e in observed if e.event_type in ev.TERMINAL_EVENT_TYPES
        )
        per_payment = Counter(payment_id for payment_id, _ in terminal)
        assert set(per_payment.values()) == {1}, "a payment reached two different terminal events"

        reversed_ = {
            e.payment_id for e in observed if isinstance(e, ev.FundsRefunded) and e.data.after_release
        }
        released = {
            e.payment_id: e.data.amount_cents
            for e in observed
            if isinstance(e, ev.FundsReleased) and e.payment_id not in reversed_  # refunded before payout
        }
        batches = {e.data.batch_id: e for e in observed if isinstance(e, ev.AchBatchCreated)}
        paid = Counter(pid for batch in batches.values() for pid in batch.data.payment_ids)
        assert set(paid.values()) == {1}, "a payout appears in two ACH files"
        assert set(paid) == set(released)

        s3 = pipeline.session.client("s3")
        file_credits = 0
        for batch in batches.values():
            text = s3.get_object(Bucket=batch.data.bucket, Key=batch.data.file_key)["Body"].read().decode()
            parsed = nacha.parse(text, strict=True)
            assert all(len(line) == 94 for line in text.splitlines())
            assert parsed.control.total_credit_cents == batch.data.total_credit_cents
            file_credits += parsed.control.total_credit_cents
        assert file_credits == sum(released.values())

        from paypipe.adapters.ledger_store import LedgerStore

        ledger = LedgerStore(pipeline.stack.outputs["LedgerTableName"], pipeline.session.client("dynamodb"))
        assert set(ledger.verify_balanced().values()) <= {0}
        assert pipeline.queue_depths() == dict.fromkeys(pipeline.queue_depths(), 0)
