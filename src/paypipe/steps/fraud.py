"""fraud: PaymentTokenized -> PaymentScored (approve / review) | PaymentDeclined."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from paypipe.adapters.velocity_store import VelocityStore
from paypipe.domain import fraud
from paypipe.domain.identifiers import canonical_ip, ip_velocity_key
from paypipe.events import models as ev
from paypipe.runtime.aws import client, setting
from paypipe.runtime.consumer import Consumer, Receipt, Route
from paypipe.runtime.entry import build_consumer

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

    def on_tokenized(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.PaymentTokenized)
        txn = transaction_of(event)
        # Scored as of the request's receipt time, so a redelivery sees the same history.
        features = fraud.compute_features(txn, self.velocity.history(txn, txn.occurred_at), txn.occurred_at)
        result = fraud.evaluate(features, self.ruleset, review_at=self.review_at, decline_at=self.decline_at)
        self.velocity.record(txn)
        assessment = ev.FraudAssessment(
            score=result.score,
            decision=ev.Decision(result.decision.value.lower()),
            reasons=list(result.reasons),
            rule_version=result.rule_version,
        )
        if assessment.decision is ev.Decision.DECLINE:
            declined = ev.PaymentDeclinedData(assessment=assessment)
            return [
                ev.PaymentDeclined.create(
                    payment_id=event.payment_id, data=declined, producer=STEP, cause=event
                )
            ]
        scored = ev.PaymentScoredData.model_validate({**event.data.model_dump(), "assessment": assessment})
        return [ev.PaymentScored.create(payment_id=event.payment_id, data=scored, producer=STEP, cause=event)]


def build() -> Consumer:
    version = setting("FRAUD_RULES_VERSION", "latest")
    step = FraudStep(
        velocity=VelocityStore(setting("VELOCITY_TABLE"), client("dynamodb")),
        ruleset=fraud.load_ruleset(None if version == "latest" else version),
        review_at=_optional_int("FRAUD_REVIEW_AT"),
        decline_at=_optional_int("FRAUD_DECLINE_AT"),
    )
    return build_consumer(STEP, {"PaymentTokenized": Route(step.on_tokenized)})


def _optional_int(name: str) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value else None
