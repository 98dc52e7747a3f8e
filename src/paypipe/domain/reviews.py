"""Fraud reviews: a payment scored ``review`` waits for a person (or its deadline), decided once.

Pure rules; the fraud step stores reviews (``paypipe.adapters.reviews_store``) and publishes what
these decide. A review is open until one outcome closes it: an operator's approval or decline,
or its deadline passing. Whatever arrives after that is refused with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

DEFAULT_DEADLINE = timedelta(hours=72)
MAX_NOTE_CHARS = 280


class ReviewStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    DECLINED = "declined"
    EXPIRED = "expired"


class Outcome(StrEnum):
    """What the fraud step publishes for a decision or an expiry."""

    APPROVE = "approve"  # PaymentScored (decision approve): escrow holds the funds
    DECLINE = "decline"  # PaymentDeclined REVIEW_DECLINED
    EXPIRE = "expire"  # PaymentDeclined REVIEW_EXPIRED
    REFUSE = "refuse"  # ReviewDecisionRefused: nothing changes
    NOTHING = "nothing"  # an expiry for a review already decided: nothing to say


class RefusalReason(StrEnum):
    UNKNOWN_REVIEW = "UNKNOWN_REVIEW"
    ALREADY_DECIDED = "ALREADY_DECIDED"


REVIEW_DECLINED = "REVIEW_DECLINED"
REVIEW_EXPIRED = "REVIEW_EXPIRED"


@dataclass(frozen=True)
class Review:
    """An open or decided review; ``scored`` is the PaymentScored detail (tokens only, no card data)."""

    payment_id: str
    score: int
    reasons: tuple[str, ...]
    opened_at: datetime
    deadline: datetime
    scored: str  # JSON of the scored event's detail, to publish the same PaymentScored on approval
    status: ReviewStatus = ReviewStatus.OPEN
    decided_at: datetime | None = None
    decided_by: str | None = None  # the decision's event id, or "expiry"
    reviewer: str | None = None
    note: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status is ReviewStatus.OPEN

    def past_deadline(self, as_of: datetime) -> bool:
        return self.is_open and self.deadline <= as_of


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    status: ReviewStatus | None = None  # the status a decision moves an open review to
    refusal: RefusalReason | None = None


def deadline_of(opened_at: datetime, hours: int) -> datetime:
    return opened_at + timedelta(hours=max(1, hours))


def decide(review: Review | None, decision: str, decision_id: str) -> Verdict:
    """An operator's decision (``approve`` or ``decline``) on ``review``.

    A redelivered decision (the one that closed the review) gets its outcome again, so a step
    that failed after the write publishes the same events; any other decision on a closed review,
    or one on a payment without a review, is refused.
    """
    if review is None:
        return Verdict(Outcome.REFUSE, refusal=RefusalReason.UNKNOWN_REVIEW)
    if not review.is_open and review.decided_by != decision_id:
        return Verdict(Outcome.REFUSE, refusal=RefusalReason.ALREADY_DECIDED)
    if decision == "approve":
        return Verdict(Outcome.APPROVE, ReviewStatus.APPROVED)
    return Verdict(Outcome.DECLINE, ReviewStatus.DECLINED)


def expire(review: Review | None, as_of: datetime, expiry_id: str) -> Verdict:
    """The sweep's word that ``review`` is past its deadline (as of ``as_of``)."""
    if review is None:
        return Verdict(Outcome.NOTHING)
    if not review.is_open:
        redelivered = review.status is ReviewStatus.EXPIRED and review.decided_by == expiry_id
        return Verdict(Outcome.EXPIRE, ReviewStatus.EXPIRED) if redelivered else Verdict(Outcome.NOTHING)
    if review.deadline > as_of:
        return Verdict(Outcome.NOTHING)
    return Verdict(Outcome.EXPIRE, ReviewStatus.EXPIRED)
