"""Fraud reviews: the decision rules, and the fraud step's review routes on moto."""

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from pydantic import ValidationError

from paypipe.adapters.reviews_store import ReviewsStore
from paypipe.adapters.velocity_store import VelocityStore
from paypipe.domain import fraud, reviews
from paypipe.domain.reviews import Outcome, RefusalReason, Review, ReviewStatus
from paypipe.embedded.samples import sample_chain
from paypipe.events import models as ev
from paypipe.runtime.consumer import Consumer
from paypipe.runtime.publisher import PublishResult
from paypipe.steps.fraud import FraudStep, routes
from paypipe.steps.reviews import ReviewDesk, ReviewSweep
from tests.tables import create_table
from tests.unit.test_consumer import bus_body, record

OPENED = datetime(2026, 3, 2, 12, tzinfo=UTC)


def review(status=ReviewStatus.OPEN, decided_by=None):
    return Review(
        payment_id="p1",
        score=500,
        reasons=("velocity",),
        opened_at=OPENED,
        deadline=OPENED + timedelta(hours=72),
        scored="{}",
        status=status,
        decided_by=decided_by,
    )


# -- the rules -----------------------------------------------------------------------------------


def test_a_decision_on_an_open_review_approves_or_declines_it():
    assert reviews.decide(review(), "approve", "e1").outcome is Outcome.APPROVE
    assert reviews.decide(review(), "approve", "e1").status is ReviewStatus.APPROVED
    assert reviews.decide(review(), "decline", "e1").status is ReviewStatus.DECLINED


def test_a_decision_without_a_review_or_on_a_decided_one_is_refused():
    assert reviews.decide(None, "approve", "e1").refusal is RefusalReason.UNKNOWN_REVIEW
    decided = review(ReviewStatus.DECLINED, decided_by="e1")
    verdict = reviews.decide(decided, "approve", "e2")
    assert (verdict.outcome, verdict.refusal) == (Outcome.REFUSE, RefusalReason.ALREADY_DECIDED)
    expired = review(ReviewStatus.EXPIRED, decided_by="x1")
    assert reviews.decide(expired, "approve", "e2").refusal is RefusalReason.ALREADY_DECIDED


def test_the_decision_that_closed_a_review_gets_its_outcome_again():
    assert reviews.decide(review(ReviewStatus.APPROVED, "e1"), "approve", "e1").outcome is Outcome.APPROVE


def test_an_expiry_declines_only_an_open_review_past_its_deadline():
    deadline = OPENED + timedelta(hours=72)
    assert reviews.expire(review(), deadline - timedelta(seconds=1), "x1").outcome is Outcome.NOTHING
    assert reviews.expire(review(), deadline, "x1").outcome is Outcome.EXPIRE
    assert reviews.expire(review(ReviewStatus.APPROVED, "e1"), deadline, "x1").outcome is Outcome.NOTHING
    assert reviews.expire(review(ReviewStatus.EXPIRED, "x1"), deadline, "x1").outcome is Outcome.EXPIRE
    assert reviews.expire(None, deadline, "x1").outcome is Outcome.NOTHING


def test_a_note_is_short_and_carries_no_card_number():
    ev.ReviewDecidedData(decision="approve", reviewer="ann", note="called the buyer, order 1234")
    for note in ("card 4111 1111 1111 1111", "x" * 281):
        with pytest.raises(ValidationError):
            ev.ReviewDecidedData(decision="approve", reviewer="ann", note=note)


# -- the fraud step on moto ----------------------------------------------------------------------


class Capture:
    def __init__(self):
        self.events: list[ev.Event] = []

    def publish(self, events):
        self.events.extend(events)
        return PublishResult(published=list(events))


@pytest.fixture
def step(aws):
    dynamodb = boto3.client("dynamodb")
    sqs = boto3.client("sqs")
    create_table(dynamodb, "reviews", gsi=True)
    create_table(dynamodb, "velocity")
    dynamodb.create_table(
        TableName="idem",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    store = ReviewsStore("reviews", dynamodb)
    desk = ReviewDesk(store, deadline_hours=72)
    fraud_step = FraudStep(
        VelocityStore("velocity", dynamodb), fraud.load_ruleset(None), review_at=0, decline_at=1000, desk=desk
    )
    capture = Capture()
    consumer = Consumer(
        "fraud",
        routes(fraud_step, desk),
        publisher=capture,  # type: ignore[arg-type]
        sqs_client=sqs,
        dlq_url=dlq,
        max_receive_count=3,
        idempotency_store=DynamoDBPersistenceLayer(table_name="idem", boto3_client=dynamodb),
    )
    return {"consumer": consumer, "capture": capture, "store": store, "sqs": sqs, "dlq": dlq}


def deliver(step, event, at, source=None, message_id=None):
    body = bus_body(event, source=source)
    step["consumer"].process([record(body, message_id or event.event_id, sent_at=at)])
    out, step["capture"].events = step["capture"].events, []
    return out


def decision(kind, payment_id, key, reviewer="ann", producer="operator", at=None):
    return ev.ReviewDecided.create(
        payment_id=payment_id,
        data=ev.ReviewDecidedData(decision=kind, reviewer=reviewer, note="checked"),
        producer=producer,
        dedup_key=key,
        occurred_at=at,
    )


def parked(step):
    messages = (
        step["sqs"]
        .receive_message(QueueUrl=step["dlq"], MessageAttributeNames=["All"], MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [m["MessageAttributes"]["error_reason"]["StringValue"] for m in messages]


def opened(step):
    tokenized = sample_chain(7).tokenized
    at = tokenized.occurred_at
    (scored,) = deliver(step, tokenized, at)
    assert isinstance(scored, ev.PaymentScored) and scored.data.assessment.decision is ev.Decision.REVIEW
    return scored, at


def test_a_review_score_opens_a_review_with_its_times_and_no_card_data(step):
    scored, at = opened(step)
    assert scored.data.review is not None
    assert (scored.data.review.opened_at, scored.data.review.deadline) == (at, at + timedelta(hours=72))
    (stored,) = step["store"].open_reviews()
    assert stored.payment_id == scored.payment_id and stored.is_open
    assert "number" not in json.loads(stored.scored)["data"]["card"]


def test_approval_publishes_the_scored_payment_approved_once(step):
    scored, at = opened(step)
    approve = decision("approve", scored.payment_id, "d1", at=at + timedelta(hours=1))
    (approved,) = deliver(step, approve, at + timedelta(hours=1))
    assert isinstance(approved, ev.PaymentScored)
    assert approved.data.assessment.decision is ev.Decision.APPROVE
    assert approved.data.card == scored.data.card and approved.data.payee == scored.data.payee
    assert approved.data.review.decided_at == at + timedelta(hours=1)
    assert approved.data.review.reviewer == "ann"
    # Redelivered: the same event again (same id); the review stays approved.
    assert [e.event_id for e in deliver(step, approve, at + timedelta(hours=2), message_id="m2")] == [
        approved.event_id
    ]
    assert step["store"].get(scored.payment_id).status is ReviewStatus.APPROVED
    assert list(step["store"].open_reviews()) == []


def test_decline_is_terminal_and_a_second_decision_is_refused(step):
    scored, at = opened(step)
    (declined,) = deliver(step, decision("decline", scored.payment_id, "d1"), at + timedelta(hours=1))
    assert isinstance(declined, ev.PaymentDeclined) and declined.data.reason_code == "REVIEW_DECLINED"
    (refused,) = deliver(step, decision("approve", scored.payment_id, "d2"), at + timedelta(hours=2))
    assert isinstance(refused, ev.ReviewDecisionRefused)
    assert (refused.data.reason, refused.data.status) == (ev.ReviewRefusal.ALREADY_DECIDED, "declined")
    assert parked(step) == []


def test_a_decision_for_an_unknown_payment_is_refused(step):
    (refused,) = deliver(step, decision("approve", "nobody", "d1"), OPENED)
    assert isinstance(refused, ev.ReviewDecisionRefused)
    assert refused.data.reason is ev.ReviewRefusal.UNKNOWN_REVIEW
    assert parked(step) == []


@pytest.mark.parametrize(
    ("source", "producer"), [("paypipe.client", "operator"), ("paypipe.client", "client")]
)
def test_a_decision_from_a_client_source_is_refused(step, source, producer):
    scored, at = opened(step)
    forged = decision("approve", scored.payment_id, "d1", producer=producer)
    assert deliver(step, forged, at + timedelta(hours=1), source=source) == []
    assert parked(step) == ["UntrustedSource"]
    assert step["store"].get(scored.payment_id).is_open


def test_the_sweep_expires_a_review_past_its_deadline_once(step):
    scored, at = opened(step)
    sweep = ReviewSweep(step["store"], Capture())  # type: ignore[arg-type]
    assert sweep.sweep(at + timedelta(hours=71)) == {"expiries_published": 0}
    for _ in range(2):
        sweep.sweep(at + timedelta(hours=73))
    first, second = sweep.events.events
    assert first.event_id == second.event_id and first.producer == "fraud"
    (declined,) = deliver(step, first, at + timedelta(hours=73))
    assert isinstance(declined, ev.PaymentDeclined) and declined.data.reason_code == "REVIEW_EXPIRED"
    assert [e.event_id for e in deliver(step, second, at + timedelta(hours=74), message_id="m2")] == [
        declined.event_id
    ]
    assert sweep.sweep(at + timedelta(hours=80)) == {"expiries_published": 0}
    (refused,) = deliver(step, decision("approve", scored.payment_id, "d1"), at + timedelta(hours=81))
    assert refused.data.reason is ev.ReviewRefusal.ALREADY_DECIDED


def test_an_expiry_after_a_decision_changes_nothing(step):
    scored, at = opened(step)
    deliver(step, decision("approve", scored.payment_id, "d1"), at + timedelta(hours=1))
    expiry = ev.ReviewExpiryDue.create(
        payment_id=scored.payment_id,
        data=ev.ReviewExpiryDueData(opened_at=at, deadline=at + timedelta(hours=72)),
        producer="fraud",
        dedup_key="x",
        occurred_at=at + timedelta(hours=72),
    )
    assert deliver(step, expiry, at + timedelta(hours=73)) == []


class ResentUpdates:
    """A DynamoDB client whose update responses are lost once applied, so each is sent again."""

    def __init__(self, client):
        self._client = client

    def update_item(self, **kwargs):
        self._client.update_item(**kwargs)
        return self._client.update_item(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.mark.parametrize("closing", ["expiry", "decision"])
def test_a_close_whose_response_was_lost_still_gets_its_outcome(step, closing):
    scored, at = opened(step)
    step["store"]._client = ResentUpdates(step["store"]._client)
    if closing == "expiry":
        (due,) = _sweep(step, at)
        (outcome,) = deliver(step, due, at + timedelta(hours=73))
        assert isinstance(outcome, ev.PaymentDeclined) and outcome.data.reason_code == "REVIEW_EXPIRED"
    else:
        (outcome,) = deliver(step, decision("decline", scored.payment_id, "d1"), at + timedelta(hours=1))
        assert isinstance(outcome, ev.PaymentDeclined) and outcome.data.reason_code == "REVIEW_DECLINED"
    assert not step["store"].get(scored.payment_id).is_open
    # Another decision after it is still refused.
    (refused,) = deliver(step, decision("approve", scored.payment_id, "d2"), at + timedelta(hours=80))
    assert refused.data.reason is ev.ReviewRefusal.ALREADY_DECIDED


def _sweep(step, at):
    sweep = ReviewSweep(step["store"], Capture())  # type: ignore[arg-type]
    sweep.sweep(at + timedelta(hours=73))
    return sweep.events.events
