"""What each published event says to an operator: its metrics and its decision log fields.

``facts(event)`` is pure: the metric values (names from ``paypipe.observability.catalogue``) an
event stands for. Every event counts once in ``EventsPublished``; a rule per event type adds what
its content tells (amounts, reason codes, scores, windows). ``decision(event)`` is the operator's
view of one step decision: outcome, reason code, amount; never card data or account numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paypipe.domain.reviews import REVIEW_EXPIRED
from paypipe.events import models as ev


@dataclass(frozen=True)
class Fact:
    metric: str
    value: float
    dimensions: tuple[tuple[str, str], ...]  # (name, value) pairs, sorted by name

    @classmethod
    def of(cls, metric: str, value: float, **dimensions: str) -> Fact:
        return cls(metric, value, tuple(sorted(dimensions.items())))


type Rule = Callable[[Any, str], Iterator[Fact]]
MILESTONES = ("PaymentTokenized", "PaymentScored", "PaymentCharged", "FundsHeld", "FundsReleased")


def score_bucket(score: int) -> str:
    """Buckets of 100: ``000-099`` .. ``800-899``, then ``900-1000``."""
    low = min(score // 100, 9) * 100
    return f"{low:03d}-{1000 if low == 900 else low + 99:03d}"


def _rejected(data: ev.PaymentRejectedData, step: str) -> Iterator[Fact]:
    yield Fact.of("PaymentsRejected", 1, step=step)
    for code in dict.fromkeys(reason.code for reason in data.reasons):
        yield Fact.of("RejectReasons", 1, step=step, reason=code)


def _assessed(data: ev.PaymentScoredData | ev.PaymentDeclinedData, step: str) -> Iterator[Fact]:
    if isinstance(data, ev.PaymentDeclinedData) and data.card is not None:  # the processor's, not fraud's
        yield Fact.of("CardDeclines", 1, step=step, reason=data.card.code)
        return
    review = data.review
    if review is not None and review.decided_at is not None:  # a fraud review closed
        if data.assessment.decision is ev.Decision.APPROVE:
            outcome = "approve"
        else:
            outcome = "expired" if getattr(data, "reason_code", None) == REVIEW_EXPIRED else "decline"
        waited = (review.decided_at - review.opened_at).total_seconds()
        yield Fact.of("ReviewsDecided", 1, step=step, outcome=outcome)
        yield Fact.of("ReviewDecisionSeconds", max(waited, 0.0), step=step)
        return
    yield Fact.of("FraudDecisions", 1, step=step, outcome=data.assessment.decision.value)
    yield Fact.of("FraudScores", 1, step=step, bucket=score_bucket(data.assessment.score))
    if data.assessment.decision is ev.Decision.REVIEW:
        yield Fact.of("ReviewsOpened", 1, step=step)


def _batch(data: ev.AchBatchCreatedData, step: str) -> Iterator[Fact]:
    yield Fact.of("AchFiles", 1, step=step, window=data.window)
    yield Fact.of("AchEntries", data.entry_count, step=step, window=data.window)
    yield Fact.of("PaidOutCents", data.total_credit_cents, step=step)


def _returned(data: ev.PayoutReturnedData, step: str) -> Iterator[Fact]:
    yield Fact.of("PayoutReturns", 1, step=step)
    yield Fact.of("ReturnCodes", 1, step=step, reason=data.return_code)


def _set_aside(data: ev.ItemSetAsideData, step: str) -> Iterator[Fact]:
    yield Fact.of("ItemsSetAside", 1, step=step)
    yield Fact.of("SetAsideReasons", 1, step=step, reason=data.reason)


def _one(metric: str, value: Callable[[Any], float] | None = None, **labels: str) -> Rule:
    """A rule counting the event once (or its ``value``), with dimensions read from its data."""

    def rule(data: Any, step: str) -> Iterator[Fact]:
        dimensions = {name: str(getattr(data, attribute)) for name, attribute in labels.items()}
        yield Fact.of(metric, value(data) if value else 1, step=step, **dimensions)

    return rule


RULES: dict[str, Rule] = {
    "PaymentRejected": _rejected,
    "RequestRefused": _one("RequestsRefused", reason="code"),
    "PaymentScored": _assessed,
    "PaymentDeclined": _assessed,
    "PaymentCharged": _one("ChargedCents", lambda data: data.charge.captured_cents),
    "FundsHeld": _one("HeldCents", lambda data: data.hold.amount_cents),
    "FundsReleased": _one("ReleasedCents", lambda data: data.amount_cents),
    "FundsRefunded": _one("RefundedCents", lambda data: data.amount_cents),
    "CardRefunded": _one("CardRefundedCents", lambda data: data.amount_cents),
    "SettlementReconciled": _one("SettlementDiscrepancies", lambda data: data.discrepancy_count),
    "AchBatchCreated": _batch,
    "AchFilesDeferred": _one("AchFilesDeferred"),
    "ItemSetAside": _set_aside,
    "DisputeAged": _one("DisputesPastAge"),
    "PayoutReturned": _returned,
    "PrenoteReturned": _one("PrenoteReturns", reason="return_code"),
    "PayeeAccountCorrected": _one("AccountCorrections", reason="change_code"),
    "AchInboundParked": _one("BankEntriesParked", reason="reason"),
}


def facts(event: ev.Event) -> list[Fact]:
    """The metrics one published event stands for (its producer is the ``step``)."""
    step = event.producer
    found = [Fact.of("EventsPublished", 1, step=step, event_type=event.event_type)]
    rule = RULES.get(event.event_type)
    if rule is not None:
        found.extend(rule(event.data, step))
    received_at = getattr(event.data, "received_at", None)
    if event.event_type in MILESTONES and isinstance(received_at, datetime):
        age = max((event.occurred_at - received_at).total_seconds(), 0.0)
        found.append(Fact.of("PaymentAge", age, step=step, milestone=event.event_type))
    return found


def _reason(data: Any) -> str | None:
    if isinstance(data, ev.PaymentRejectedData):
        return ",".join(dict.fromkeys(reason.code for reason in data.reasons))
    if isinstance(data, ev.PaymentDeclinedData) and data.card is not None:
        return data.card.code
    if isinstance(data, ev.PaymentScoredData | ev.PaymentDeclinedData):
        return data.assessment.decision.value
    for attribute in ("code", "return_code", "change_code", "reason", "trigger", "outcome"):
        value = getattr(data, attribute, None)
        if isinstance(value, str):
            return value
    return None


def _amount(data: Any) -> int | None:
    hold = getattr(data, "hold", None)
    amount = getattr(hold, "amount_cents", None) if hold is not None else getattr(data, "amount_cents", None)
    return amount if isinstance(amount, int) else None


def decision(event: ev.Event) -> dict[str, Any]:
    """The fields of one "step decision" log line for an outgoing event (no card data)."""
    return {
        "payment_id": event.payment_id,
        "correlation_id": event.correlation_id,
        "outcome": event.event_type,
        "reason_code": _reason(event.data),
        "amount_cents": _amount(event.data),
        "decided_event_id": event.event_id,
    }
