"""The metric facts of published events, the catalogue and the EMF emitter."""

import io
import json
from datetime import timedelta

import pytest

from paypipe.embedded.samples import sample_chain
from paypipe.events import models as ev
from paypipe.observability.catalogue import CATALOGUE, METRICS
from paypipe.observability.facts import RULES, Fact, decision, facts, score_bucket
from paypipe.runtime import logging as log_setup
from paypipe.runtime import metrics

CHAIN = sample_chain(hold_days=7)


def by_metric(found):
    return {(fact.metric, fact.dimensions): fact.value for fact in found}


def test_every_event_counts_once_as_published_by_its_producer():
    for event in (CHAIN.validated, CHAIN.tokenized, CHAIN.held, CHAIN.released):
        published = [fact for fact in facts(event) if fact.metric == "EventsPublished"]
        assert published == [Fact.of("EventsPublished", 1, step=event.producer, event_type=event.event_type)]


def test_fraud_decision_and_score_bucket():
    score = CHAIN.scored.data.assessment.score
    found = by_metric(facts(CHAIN.scored))
    assert found[("FraudDecisions", (("outcome", "approve"), ("step", "fraud")))] == 1
    assert found[("FraudScores", (("bucket", score_bucket(score)), ("step", "fraud")))] == 1


@pytest.mark.parametrize(
    ("score", "bucket"),
    [(0, "000-099"), (99, "000-099"), (100, "100-199"), (899, "800-899"), (1000, "900-1000")],
)
def test_score_buckets(score, bucket):
    assert score_bucket(score) == bucket


def test_amounts_in_cents():
    assert by_metric(facts(CHAIN.held))[("HeldCents", (("step", "escrow_hold"),))] == 12_500
    assert by_metric(facts(CHAIN.released))[("ReleasedCents", (("step", "release"),))] == 12_500


def test_payment_age_at_a_milestone_is_from_the_receipt_at_validate():
    received_at = CHAIN.held.data.received_at
    assert received_at is not None
    age = by_metric(facts(CHAIN.held))[("PaymentAge", (("milestone", "FundsHeld"), ("step", "escrow_hold")))]
    assert age == (CHAIN.held.occurred_at - received_at).total_seconds() > 0


def test_payment_age_at_release():
    received_at = CHAIN.released.data.received_at
    assert received_at is not None
    dims = (("milestone", "FundsReleased"), ("step", "release"))
    age = by_metric(facts(CHAIN.released))[("PaymentAge", dims)]
    assert age == (CHAIN.released.occurred_at - received_at).total_seconds() > 0


def test_no_age_without_a_receipt_time():
    held = CHAIN.held.model_copy(update={"data": CHAIN.held.data.model_copy(update={"received_at": None})})
    assert not [fact for fact in facts(held) if fact.metric == "PaymentAge"]


def rejected(*codes):
    reasons = [ev.Rejection(code=code, field="card.number", message="bad") for code in codes]
    return ev.PaymentRejected.create(
        payment_id="p1",
        data=ev.PaymentRejectedData(reasons=reasons, request_event_id="e1"),
        producer="validate",
        cause=CHAIN.requested,
    )


def test_a_rejection_counts_once_and_each_distinct_reason_once():
    found = by_metric(facts(rejected("CARD_LUHN_FAILED", "CVV_INVALID", "CVV_INVALID")))
    assert found[("PaymentsRejected", (("step", "validate"),))] == 1
    reasons = {dims: value for (name, dims), value in found.items() if name == "RejectReasons"}
    assert reasons == {
        (("reason", "CARD_LUHN_FAILED"), ("step", "validate")): 1,
        (("reason", "CVV_INVALID"), ("step", "validate")): 1,
    }


def test_a_nacha_file_counts_its_entries_and_credits_by_window():
    data = ev.AchBatchCreatedData(
        batch_id="b1",
        bucket="bucket",
        file_key="ach/f1.ach",
        entry_count=3,
        total_credit_cents=30_000,
        total_debit_cents=0,
        entry_hash="0000000001",
        effective_date="2026-03-03",
        window="same_day",
        payment_ids=["p1", "p2", "p3"],
    )
    event = ev.AchBatchCreated.create(payment_id="b1", data=data, producer="ach_batch", dedup_key="b1")
    found = by_metric(facts(event))
    window = (("step", "ach_batch"), ("window", "same_day"))
    assert found[("AchFiles", window)] == 1 and found[("AchEntries", window)] == 3
    assert found[("PaidOutCents", (("step", "ach_batch"),))] == 30_000


def test_every_fact_is_in_the_catalogue_with_its_dimensions():
    events = [*vars(CHAIN).values(), rejected("CVV_INVALID")]
    for event in events:
        for fact in facts(event):
            assert sorted(CATALOGUE[fact.metric].dimensions) == [name for name, _ in fact.dimensions]


def test_rules_only_for_contract_types_and_catalogue_names_unique():
    assert set(RULES) <= set(ev.EVENT_TYPES)
    assert len(CATALOGUE) == len(METRICS)


def test_decision_fields_carry_outcome_reason_and_amount_never_card_data():
    line = decision(CHAIN.validated)
    assert line["outcome"] == "PaymentValidated" and line["amount_cents"] == 12_500
    assert decision(rejected("CVV_INVALID", "CARD_EXPIRED"))["reason_code"] == "CVV_INVALID,CARD_EXPIRED"
    assert decision(CHAIN.scored)["reason_code"] == "approve"
    text = json.dumps(line, default=str)
    pan = CHAIN.validated.data.card.number.get_secret_value()
    assert pan not in text and pan[-4:] not in text
    assert CHAIN.validated.data.payee.account_number not in text


def test_the_emitter_refuses_metrics_outside_the_catalogue():
    with pytest.raises(metrics.UnknownMetricError):
        metrics.emit("Invented", 1, step="validate")
    with pytest.raises(metrics.UnknownMetricError):
        metrics.emit("RecordsParked", 1, step="validate")  # lacks its reason


@pytest.fixture
def stream():
    metrics.documents(metrics.pending())
    metrics._pending.clear()
    captured = io.StringIO()
    log_setup.configure(stream=captured)
    yield captured
    log_setup.configure()


def test_flush_writes_one_emf_document_per_dimension_set(stream):
    metrics.record(facts(CHAIN.held) + facts(CHAIN.released))
    metrics.emit("RecordsParked", 1, step="release", reason="NoRoute")
    # held and released: published, amount, age each; parked
    assert metrics.flush() == 7 and not metrics.pending()
    docs = [json.loads(line) for line in stream.getvalue().splitlines()]
    for doc in docs:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "paypipe" and "service" not in doc
        assert all(name in doc for name in directive["Dimensions"][0])
    release = next(doc for doc in docs if doc.get("step") == "release" and "ReleasedCents" in doc)
    assert release["ReleasedCents"] == [12_500.0]
    assert {(doc.get("reason"), tuple(doc.get("RecordsParked", []))) for doc in docs if "reason" in doc} == {
        ("NoRoute", (1.0,))
    }


def test_flush_splits_a_metric_with_many_values():
    docs = metrics.documents(
        [Fact.of("PaymentAge", float(i), step="s", milestone="FundsHeld") for i in range(250)]
    )
    assert [len(doc["PaymentAge"]) for doc in docs] == [99, 99, 52]
    assert timedelta(seconds=sum(sum(doc["PaymentAge"]) for doc in docs)) == timedelta(
        seconds=sum(range(250))
    )
