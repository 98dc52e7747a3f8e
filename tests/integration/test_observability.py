"""Metrics and step decision lines of an embedded run, against the events on the bus."""

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.template import load_template
from paypipe.events import models as ev
from paypipe.observability.catalogue import CATALOGUE
from paypipe.runtime import metrics
from tests.integration.test_embedded_pipeline import run
from tests.unit.test_template_observability import referenced

pytestmark = pytest.mark.embedded

# What the dashboard and alarms read that a run without disputes past their age, bank answers,
# set-aside items, deferred cuts, parked records or refusals has no value for.
NOT_IN_THIS_RUN = {
    "DisputesPastAge",
    "PayoutReturns",
    "ReturnCodes",
    "PrenoteReturns",
    "AccountCorrections",
    "ItemsSetAside",
    "AchFilesDeferred",
    "RecordsParked",
    "RequestsRefused",
    # No review is decided in it (tests/integration/test_reviews.py counts them).
    "ReviewsOpened",
    "ReviewsDecided",
    "ReviewDecisionSeconds",
}


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    log_file = tmp_path_factory.mktemp("logs") / "steps.jsonl"
    saved = os.environ.get("LOG_FILE")
    os.environ["LOG_FILE"] = str(log_file)
    metrics.documents(metrics.pending())  # nothing left over from other tests
    metrics._pending.clear()
    try:
        with EmbeddedPipeline() as pipeline:
            observed = run(pipeline, 12, duplicate=False)
            requests = [e for e in observed if isinstance(e, ev.PaymentRequested)]
    finally:
        if saved is None:
            os.environ.pop("LOG_FILE", None)
        else:
            os.environ["LOG_FILE"] = saved
    lines = [json.loads(line) for line in Path(log_file).read_text().splitlines()]
    return observed, requests, lines, Path(log_file).read_text()


def emf(lines):
    return [line for line in lines if "_aws" in line]


def totals(lines, metric, **dimensions):
    """The sum of a metric's values over the EMF documents with these dimension values."""
    total = 0.0
    for doc in emf(lines):
        if metric in doc and all(doc.get(name) == value for name, value in dimensions.items()):
            total += sum(doc[metric])
    return total


def test_emf_counts_equal_the_events_on_the_bus(embedded_run):
    observed, _, lines, _ = embedded_run
    published = Counter((e.producer, e.event_type) for e in observed if e.producer != ev.CLIENT_PRODUCER)
    assert published[("escrow_hold", "FundsHeld")] > 0 and published[("ach_batch", "AchBatchCreated")] > 0
    emitted = Counter()
    for doc in emf(lines):
        if "EventsPublished" in doc:
            emitted[(doc["step"], doc["event_type"])] += int(sum(doc["EventsPublished"]))
    assert emitted == published
    held = [e for e in observed if isinstance(e, ev.FundsHeld)]
    assert totals(lines, "HeldCents", step="escrow_hold") == sum(e.data.hold.amount_cents for e in held)
    files = [e for e in observed if isinstance(e, ev.AchBatchCreated)]
    assert sum(totals(lines, "AchEntries", window=w) for w in ("same_day", "standard")) == sum(
        e.data.entry_count for e in files
    )
    card_declines = [e for e in observed if isinstance(e, ev.PaymentDeclined) and e.data.card is not None]
    assert card_declines  # the scenario's test cards
    for code in {e.data.card.code for e in card_declines if e.data.card}:
        expected = sum(1 for e in card_declines if e.data.card and e.data.card.code == code)
        assert totals(lines, "CardDeclines", step="charge", reason=code) == expected
    scored = [  # a review's outcome counts under ReviewsDecided, a card decline under CardDeclines
        e
        for e in observed
        if isinstance(e, ev.PaymentScored | ev.PaymentDeclined)
        and (e.data.review is None or e.data.review.decided_at is None)
        and e not in card_declines
    ]
    for decision in ev.Decision:
        expected = sum(e.data.assessment.decision is decision for e in scored)
        assert totals(lines, "FraudDecisions", step="fraud", outcome=decision.value) == expected
    for milestone in ("FundsHeld", "FundsReleased"):
        (producer,) = ev.EVENT_TYPES[milestone].PRODUCERS
        ages = [
            value for doc in emf(lines) if doc.get("milestone") == milestone for value in doc["PaymentAge"]
        ]
        assert len(ages) == published[(producer, milestone)]  # one age per milestone event
        assert totals(lines, "PaymentAge", milestone=milestone) > 0


def test_every_metric_read_by_the_dashboard_or_alarms_is_emitted(embedded_run):
    _, _, lines, _ = embedded_run
    emitted = set()
    for doc in emf(lines):
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]:
            emitted.add((metric["Name"], tuple(sorted(directive["Dimensions"][0]))))
    for name, dimensions in emitted:
        assert tuple(sorted(CATALOGUE[name].dimensions)) == dimensions, name
    read = referenced(load_template())
    missing = {item for item in read - emitted if item[0] not in NOT_IN_THIS_RUN}
    assert not missing
    assert {name for name, _ in read} >= NOT_IN_THIS_RUN  # the exemptions are real references


def test_a_step_decision_line_per_step_event_and_no_card_data(embedded_run):
    observed, requests, lines, text = embedded_run
    decisions = [line for line in lines if line.get("event") == "step decision"]
    decided = {line["decided_event_id"] for line in decisions if "decided_event_id" in line}
    consumers = {"PaymentValidated", "PaymentRejected", "PaymentTokenized", "PaymentScored", "FundsHeld"}
    for event in observed:
        if event.event_type in consumers:
            assert event.event_id in decided, event.event_type
    for line in decisions:
        assert line["level"] == "info" and line["step"] and line["outcome"]
    by_id = {e.event_id: e for e in observed}
    for line in decisions:
        if "decided_event_id" in line:
            event = by_id[line["decided_event_id"]]
            assert (line["payment_id"], line["outcome"]) == (event.payment_id, event.event_type)
    for request in requests:
        pan = request.data.card.number.get_secret_value()
        assert pan not in text
        assert request.data.payee.account_number not in text


def test_a_clean_run_counts_records_and_no_failures(embedded_run):
    _, _, lines, _ = embedded_run
    decided = {(line["step"], line["message_id"]) for line in lines if line.get("event") == "step decision"}
    decisions = Counter(step for step, _ in decided)  # records with a decision (some decide several)
    for step in ("validate", "tokenize", "fraud", "escrow_hold", "release", "ach_batch"):
        assert totals(lines, "RecordsReceived", step=step) >= decisions[step] > 0, step
        assert totals(lines, "RecordsFailed", step=step) == 0, step
    assert totals(lines, "RecordsParked") == 0
