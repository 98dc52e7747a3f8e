"""fraud: PaymentTokenized -> PaymentScored (approve / review) | PaymentDeclined; reviews decided.

A payment scored ``review`` opens a review (see ``paypipe.steps.reviews``); ``ReviewDecided`` and
``ReviewExpiryDue`` close it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from paypipe.adapters.reviews_store import ReviewsStore
from paypipe.adapters.velocity_store import VelocityStore
from paypipe.domain import fraud
from paypipe.domain.identifiers import canonical_ip, ip_velocity_key
from paypipe.events import models as ev
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, Receipt, Route, content_conflict, content_fingerprint
from paypipe.runtime.entry import LambdaHandler, build_consumer, publisher
from paypipe.steps.common import scheduled_time
from paypipe.steps.reviews import ReviewDesk, ReviewSweep

STEP = "fraud"


def transaction_of(event: ev.PaymentTokenized) -> fraud.Transaction:
    """The payment as velocity sees it: identities the client cannot vary at will, at receipt time.

    The card is the vault's fingerprint (the same card under any tenant or token), the customer a
    tenant's customer, the IP address its canonical form (an IPv6 client by its /64), the time
    the pipeline received the request.
    """
    data = event.data
    return fraud.Transaction(
        payment_id=event.payment_id,
        customer_id=f"{data.tenant_id}/{data.customer.id}",
        card_id=data.card.fingerprint or data.card.token,
        payee_account_fingerprint=data.payee.account_fingerprint,
        ip_address=ip_velocity_key(canonical_ip(data.device.ip_address)),
        amount_cents=data.amount_cents,
        currency=data.currency,
        billing_country=data.customer.billing_country,
        ip_country=data.device.ip_country,
        card_country=data.card.issuing_country,
        occurred_at=data.received_at or event.occurred_at,
    )


@dataclass(frozen=True)
class FraudStep:
    velocity: VelocityStore
    ruleset: fraud.RuleSet
    review_at: int | None
    decline_at: int | None
    desk: ReviewDesk | None = None

    def on_tokenized(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        """Score the payment once: the first decision is stored on its velocity marker with the
        event's fingerprint, and a redelivery publishes that one (other content is refused)."""
        assert isinstance(event, ev.PaymentTokenized)
        txn = transaction_of(event)
        # Scored as of the request's receipt time, so a redelivery sees the same history.
        features = fraud.compute_features(txn, self.velocity.history(txn, txn.occurred_at), txn.occurred_at)
        result = fraud.evaluate(features, self.ruleset, review_at=self.review_at, decline_at=self.decline_at)
        scored = ScoredAt(
            assessment=ev.FraudAssessment(
                score=result.score,
                decision=ev.Decision(result.decision.value.lower()),
                reasons=list(result.reasons),
                rule_version=result.rule_version,
            ),
            at=receipt.received_at,
        )
        fingerprint = content_fingerprint(event)
        decided = self.velocity.decide(
            event.payment_id, fingerprint, scored.model_dump_json(), receipt.received_at
        )
        if decided.fingerprint != fingerprint:
            raise content_conflict(f"{STEP}:{event.payment_id}:{event.event_type}")
        scored = ScoredAt.model_validate_json(decided.decision)
        self.velocity.record(txn)
        return [self._announce(event, scored, receipt)]

    def _announce(self, event: ev.PaymentTokenized, scored: ScoredAt, receipt: Receipt) -> ev.Event:
        assessment = scored.assessment
        if assessment.decision is ev.Decision.DECLINE:
            declined = ev.PaymentDeclinedData(assessment=assessment)
            return ev.PaymentDeclined.create(
                payment_id=event.payment_id, data=declined, producer=STEP, cause=event, occurred_at=scored.at
            )
        data = ev.PaymentScoredData.model_validate({**event.data.model_dump(), "assessment": assessment})
        out = ev.PaymentScored.create(
            payment_id=event.payment_id, data=data, producer=STEP, cause=event, occurred_at=scored.at
        )
        if assessment.decision is ev.Decision.REVIEW and self.desk is not None:
            out = self.desk.open(out, receipt.received_at)
        return out


class ScoredAt(BaseModel):
    """A payment's fraud decision as its marker keeps it: the assessment and when it was made."""

    assessment: ev.FraudAssessment
    at: datetime


def _reviews() -> ReviewsStore:
    return ReviewsStore(setting("REVIEWS_TABLE"), client("dynamodb"))


def build() -> Consumer:
    version = setting("FRAUD_RULES_VERSION", "latest")
    desk = ReviewDesk(_reviews(), deadline_hours=int_setting("REVIEW_DEADLINE_HOURS", 72))
    step = FraudStep(
        # Eventually consistent history: what it can miss (an observation recorded within the
        # last second or so) a concurrent scoring misses anyway, and the marker, not the history,
        # makes a redelivery's answer the first one.
        velocity=VelocityStore(setting("VELOCITY_TABLE"), client("dynamodb"), consistent_read=False),
        ruleset=fraud.load_ruleset(None if version == "latest" else version),
        review_at=_optional_int("FRAUD_REVIEW_AT"),
        decline_at=_optional_int("FRAUD_DECLINE_AT"),
        desk=desk,
    )
    return build_consumer(STEP, routes(step, desk))


def routes(step: FraudStep, desk: ReviewDesk) -> dict[str, Route]:
    return {
        # Its idempotency record is the payment's velocity marker (VelocityStore.decide).
        "PaymentTokenized": Route(step.on_tokenized, idempotent=False),
        # Each decision is its own request (keyed by its event id): a redelivery replays its
        # outcome, a second decision is refused by the review's state, never parked.
        "ReviewDecided": Route(desk.on_decided, business_key=_decision_key),
        "ReviewExpiryDue": Route(desk.on_expiry_due),
    }


def _decision_key(event: ev.Event) -> str:
    return f"{event.payment_id}:{event.event_type}:{event.event_id}"


def build_sweep() -> LambdaHandler:
    sweep = ReviewSweep(_reviews(), publisher(STEP), int_setting("REVIEW_SWEEP_MAX", 1000))

    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, int]:
        return sweep.sweep(scheduled_time(event))

    return handler


def _optional_int(name: str) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value else None
