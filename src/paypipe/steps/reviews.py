"""Fraud reviews in the fraud step: opened on a ``review`` score, decided once, swept at the deadline.

- ``ReviewDesk.open`` stores the review (the scored event's detail: tokens only) when fraud scores
  a payment ``review``;
- ``ReviewDesk.on_decided`` (``ReviewDecided``, from ``paypipe.operator`` only): approve publishes
  the same ``PaymentScored`` with decision approve (escrow holds it), decline a terminal
  ``PaymentDeclined`` ``REVIEW_DECLINED``; a decision on a decided or unknown review a
  ``ReviewDecisionRefused``;
- ``ReviewDesk.on_expiry_due`` (``ReviewExpiryDue``, from the sweep): ``PaymentDeclined``
  ``REVIEW_EXPIRED`` when the review is still open;
- ``ReviewSweep`` (scheduled) publishes ``ReviewExpiryDue`` for each open review past its deadline.

Closing a review is one conditional write (open -> outcome), so concurrent decisions and expiries
resolve it exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from paypipe.adapters.reviews_store import ReviewsStore
from paypipe.domain import reviews
from paypipe.domain.reviews import Outcome, Review, ReviewStatus, Verdict
from paypipe.events import models as ev
from paypipe.runtime import metrics
from paypipe.runtime.consumer import Receipt
from paypipe.runtime.publisher import EventPublisher

STEP = "fraud"


def review_ref(review: Review) -> ev.ReviewRef:
    return ev.ReviewRef(
        opened_at=review.opened_at,
        deadline=review.deadline,
        decided_at=review.decided_at,
        reviewer=review.reviewer,
    )


@dataclass(frozen=True)
class ReviewDesk:
    store: ReviewsStore
    deadline_hours: int = int(reviews.DEFAULT_DEADLINE.total_seconds() // 3600)

    def open(self, scored: ev.PaymentScored, opened_at: datetime) -> ev.PaymentScored:
        """Store the review for a payment scored ``review``; the event, with the review's times."""
        assessment = scored.data.assessment
        review = Review(
            payment_id=scored.payment_id,
            score=assessment.score,
            reasons=tuple(assessment.reasons),
            opened_at=opened_at,
            deadline=reviews.deadline_of(opened_at, self.deadline_hours),
            scored=json.dumps(ev.to_detail(scored), sort_keys=True),
        )
        if not self.store.open(review):
            review = self.store.get(scored.payment_id) or review  # redelivered: the stored one
        data = scored.data.model_copy(update={"review": review_ref(review)})
        return scored.model_copy(update={"data": data})

    def on_decided(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.ReviewDecided)
        review = self.store.get(event.payment_id)
        verdict = reviews.decide(review, event.data.decision.value, event.event_id)
        if verdict.outcome is Outcome.REFUSE or review is None:
            return [self._refused(event, review)]
        closed = replace(
            review,
            status=verdict.status or review.status,
            decided_at=review.decided_at or receipt.received_at,
            decided_by=event.event_id,
            reviewer=event.data.reviewer,
            note=event.data.note,
        )
        if review.is_open and not self.store.close(closed):
            # Decided by someone else between the read and the write.
            return [self._refused(event, self.store.get(event.payment_id))]
        return [self._outcome(closed, verdict, event)]

    def on_expiry_due(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.ReviewExpiryDue)
        review = self.store.get(event.payment_id)
        # The sweep (its only trusted producer) found it due at its deadline: judged as of then at
        # the latest, so an early receipt never stores an empty answer for this expiry.
        as_of = max(receipt.received_at, event.data.deadline)
        verdict = reviews.expire(review, as_of, event.event_id)
        if verdict.outcome is not Outcome.EXPIRE or review is None:
            return []
        closed = replace(
            review,
            status=ReviewStatus.EXPIRED,
            decided_at=review.decided_at or receipt.received_at,
            decided_by=event.event_id,
        )
        if review.is_open and not self.store.close(closed):
            return []  # decided in between: that decision has its own outcome
        return [self._outcome(closed, verdict, event)]

    def _outcome(self, review: Review, verdict: Verdict, cause: ev.Event) -> ev.Event:
        scored = ev.PaymentScored.model_validate(json.loads(review.scored))
        assert review.decided_at is not None
        if verdict.outcome is Outcome.APPROVE:
            assessment = scored.data.assessment.model_copy(update={"decision": ev.Decision.APPROVE})
            data = scored.data.model_copy(update={"assessment": assessment, "review": review_ref(review)})
            return ev.PaymentScored.create(
                payment_id=review.payment_id,
                data=data,
                producer=STEP,
                cause=cause,
                occurred_at=review.decided_at,
            )
        code = reviews.REVIEW_DECLINED if verdict.outcome is Outcome.DECLINE else reviews.REVIEW_EXPIRED
        assessment = scored.data.assessment.model_copy(update={"decision": ev.Decision.DECLINE})
        declined = ev.PaymentDeclinedData(assessment=assessment, reason_code=code, review=review_ref(review))
        return ev.PaymentDeclined.create(
            payment_id=review.payment_id,
            data=declined,
            producer=STEP,
            cause=cause,
            occurred_at=review.decided_at,
        )

    def _refused(self, event: ev.ReviewDecided, review: Review | None) -> ev.Event:
        reason = ev.ReviewRefusal.UNKNOWN_REVIEW if review is None else ev.ReviewRefusal.ALREADY_DECIDED
        message = (
            f"payment {event.payment_id} has no fraud review"
            if review is None
            else f"the review of payment {event.payment_id} is already {review.status.value}"
        )
        data = ev.ReviewDecisionRefusedData(
            decision_event_id=event.event_id,
            decision=event.data.decision,
            reviewer=event.data.reviewer,
            reason=reason,
            message=message,
            status=review.status.value if review else None,
        )
        return ev.ReviewDecisionRefused.create(
            payment_id=event.payment_id, data=data, producer=STEP, cause=event
        )


@dataclass
class ReviewSweep:
    """Publishes ``ReviewExpiryDue`` for open reviews past their deadline (oldest first).

    An open review stays in the index until the fraud step closes it, so a failed sweep is
    caught up by the next; each expiry's id is derived from the review's deadline, so a sweep that
    runs twice announces it once.
    """

    store: ReviewsStore
    events: EventPublisher
    max_reviews: int = 1000

    def sweep(self, as_of: datetime) -> dict[str, int]:
        open_reviews = list(self.store.open_reviews(as_of, self.max_reviews))
        oldest = (as_of - open_reviews[0].opened_at).total_seconds() if open_reviews else 0.0
        metrics.emit("ReviewsOpen", len(open_reviews), step=STEP)
        metrics.emit("OldestReviewAgeSeconds", max(oldest, 0.0), step=STEP)
        due = [review for review in open_reviews if review.past_deadline(as_of)]
        expiries = [expiry_due(review) for review in due]
        result = self.events.publish(expiries)
        if not result.ok:
            raise RuntimeError(f"{len(result.failed)} review expiries not published; the next sweep retries")
        return {"expiries_published": len(expiries)}


def expiry_due(review: Review) -> ev.Event:
    return ev.ReviewExpiryDue.create(
        payment_id=review.payment_id,
        producer=STEP,
        dedup_key=f"review-expiry:{review.deadline.isoformat()}",
        occurred_at=review.deadline,
        data=ev.ReviewExpiryDueData(opened_at=review.opened_at, deadline=review.deadline),
    )


def review_summary(review: Review) -> dict[str, Any]:
    """A review as the operator CLI and the embedded run's output show it (no card data)."""
    return {
        "payment_id": review.payment_id,
        "status": review.status.value,
        "score": review.score,
        "reasons": list(review.reasons),
        "opened_at": review.opened_at.isoformat(),
        "deadline": review.deadline.isoformat(),
        "decided_at": review.decided_at.isoformat() if review.decided_at else None,
        "reviewer": review.reviewer,
        "note": review.note,
    }
