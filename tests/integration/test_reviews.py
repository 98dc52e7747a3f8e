"""Fraud reviews end to end in the embedded stack: approved -> held and paid, declined, expired once
(the sweep run twice), decisions from a client source refused, a second decision and an unknown id
refused; ``paypipe review`` on the run's output directory, and the next run publishing its decisions."""

import json
from datetime import timedelta

import pytest

from paypipe import cli
from paypipe.embedded.evidence import run_context
from paypipe.embedded.reconcile import reconcile
from paypipe.embedded.reviews import DECISIONS_FILE, recorded_decisions, write_reviews
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.status_files import write_status_files
from paypipe.events import models as ev
from paypipe.runtime import metrics
from tests.integration.scenario_kit import request_distinct

pytestmark = pytest.mark.embedded

ALL_IN_REVIEW = {"FraudReviewAt": "0"}  # every payment scores review


def request_all(pipeline: EmbeddedPipeline, count: int) -> list[str]:
    return request_distinct(pipeline, count, "rv")


def decision(payment_id: str, kind: str, key: str, producer: str = "operator") -> ev.Event:
    return ev.ReviewDecided.create(
        payment_id=payment_id,
        data=ev.ReviewDecidedData(decision=kind, reviewer="analyst-1", note="checked"),
        producer=producer,
        dedup_key=key,
    )


def of(pipeline: EmbeddedPipeline, model: type[ev.Event], payment_id: str) -> list[ev.Event]:
    return [e for e in pipeline.observed() if isinstance(e, model) and e.payment_id == payment_id]


def test_reviews_are_decided_once_and_approved_payments_are_paid(tmp_path):
    with EmbeddedPipeline(overrides=ALL_IN_REVIEW) as pipeline:
        approved, declined, forged, expired = request_all(pipeline, 4)
        assert not [e for e in pipeline.observed() if isinstance(e, ev.FundsHeld)]
        # A client cannot decide: neither under its own source nor claiming the operator.
        pipeline.publish_as("client", [decision(forged, "approve", "f1")])
        pipeline.publish_as("client", [decision(forged, "approve", "f2", producer="client")])
        pipeline.publish_as(
            "operator", [decision(approved, "approve", "a1"), decision(declined, "decline", "d1")]
        )
        pipeline.drain()
        assert len(of(pipeline, ev.FundsHeld, approved)) == 1
        (no,) = of(pipeline, ev.PaymentDeclined, declined)
        assert no.data.reason_code == "REVIEW_DECLINED"
        assert of(pipeline, ev.FundsHeld, forged) == of(pipeline, ev.PaymentDeclined, forged) == []
        # A second decision and one for a payment without a review are refused, never parked.
        pipeline.publish_as(
            "operator", [decision(approved, "decline", "a2"), decision("nobody", "approve", "n1")]
        )
        pipeline.drain()
        refused = [e for e in pipeline.observed() if isinstance(e, ev.ReviewDecisionRefused)]
        assert sorted((e.payment_id, e.data.reason.value) for e in refused) == [
            ("nobody", "UNKNOWN_REVIEW"),
            (approved, "ALREADY_DECIDED"),
        ]
        assert pipeline.queue_depths("consumer").get("FraudDLQUrl", 0) == 0

        write_reviews(pipeline, tmp_path)
        check_cli(tmp_path, forged, approved)

        start = pipeline.clock.now()
        for run in range(2):  # the sweep twice past the deadline: declined once
            pipeline.run_scheduled(start + timedelta(hours=73, minutes=5 * run))
            pipeline.drain()
        for payment_id in (forged, expired):
            (late,) = of(pipeline, ev.PaymentDeclined, payment_id)
            assert late.data.reason_code == "REVIEW_EXPIRED"
        for run in range(3):  # past hold expiry (released), then the next ACH window (paid)
            pipeline.run_scheduled(start + timedelta(days=8, minutes=5 * run))
            pipeline.drain()
            pipeline.run_scheduled(start + timedelta(days=10, minutes=5 * run))
            pipeline.drain()
        assert len(of(pipeline, ev.PayoutBatched, approved)) == 1
        result = reconcile(
            [approved, declined, forged, expired],
            pipeline.observations(),
            [],
            [],
            {},
            context=run_context(pipeline),
        )
        codes = {v.code for v in result.violations}
        assert not {"REVIEW_DECIDED_TWICE", "REVIEW_PAST_DEADLINE", "FOREIGN_SOURCE_ACTED_ON"} & codes


def check_cli(out, forged, approved):
    def review(*args):
        return cli.main(["review", *args, "--embedded", str(out)])

    assert review("list") == 0
    assert review("show", forged) == 0
    assert review("show", "nobody") == 1
    assert review("approve", approved, "--reviewer", "ann") == 1  # already approved
    assert review("approve", forged, "--reviewer", "ann", "--note", "4111 1111 1111 1111") == 2
    assert review("approve", forged, "--reviewer", "ann", "--note", "known buyer") == 0
    assert review("decline", forged, "--reviewer", "bob") == 1  # a decision is already recorded
    (line,) = [json.loads(text) for text in (out / DECISIONS_FILE).read_text().splitlines()]
    assert line == {"payment_id": forged, "decision": "approve", "reviewer": "ann", "note": "known buyer"}


def test_the_next_run_publishes_the_recorded_decisions_as_the_operator(tmp_path):
    (tmp_path / DECISIONS_FILE).write_text(
        json.dumps({"payment_id": "run000000-000001", "decision": "approve", "reviewer": "ann", "note": None})
        + "\n"
    )
    with EmbeddedPipeline(overrides=ALL_IN_REVIEW) as pipeline:
        first, second = request_all(pipeline, 2)  # rv-000000, rv-000001
        decisions = recorded_decisions(pipeline, tmp_path)
        assert [d.payment_id for d in decisions] == [second]
        assert pipeline.publish_as(ev.OPERATOR_PRODUCER, decisions).ok
        pipeline.drain()
        assert len(of(pipeline, ev.FundsHeld, second)) == 1
        assert of(pipeline, ev.FundsHeld, first) == []


def test_review_metrics_count_openings_outcomes_and_the_queue(tmp_path, monkeypatch):
    log_file = tmp_path / "steps.jsonl"
    monkeypatch.setenv("LOG_FILE", str(log_file))
    metrics._pending.clear()
    with EmbeddedPipeline(overrides=ALL_IN_REVIEW) as pipeline:
        approved, declined, _left_to_expire = request_all(pipeline, 3)
        pipeline.publish_as(
            "operator", [decision(approved, "approve", "m1"), decision(declined, "decline", "m2")]
        )
        pipeline.drain()
        start = pipeline.clock.now()
        pipeline.run_scheduled(start + timedelta(hours=73))
        pipeline.drain()
    documents = [doc for doc in map(json.loads, log_file.read_text().splitlines()) if "_aws" in doc]

    def values(metric, **dimensions):
        return [
            value
            for doc in documents
            if metric in doc and all(doc.get(k) == v for k, v in dimensions.items())
            for value in doc[metric]
        ]

    assert sum(values("ReviewsOpened", step="fraud")) == 3
    for outcome in ("approve", "decline", "expired"):
        assert sum(values("ReviewsDecided", step="fraud", outcome=outcome)) == 1, outcome
    waits = values("ReviewDecisionSeconds", step="fraud")
    assert len(waits) == 3 and max(waits) >= 72 * 3600  # the expired one waited past its deadline
    # The sweep past the deadline saw the one review still open, older than the deadline.
    assert 1 in values("ReviewsOpen", step="fraud")
    assert max(values("OldestReviewAgeSeconds", step="fraud")) >= 72 * 3600
    # Reviews' outcomes are not counted again as fraud decisions.
    assert sum(values("FraudDecisions", step="fraud", outcome="review")) == 3
    assert sum(values("FraudDecisions", step="fraud", outcome="approve")) == 0


def test_paypipe_status_shows_a_payment_in_review_until_it_is_decided(tmp_path, capsys):
    with EmbeddedPipeline(overrides=ALL_IN_REVIEW) as pipeline:
        (waiting,) = request_all(pipeline, 1)
        write_status_files(pipeline, tmp_path / "before")
        pipeline.publish_as("operator", [decision(waiting, "approve", "s1")])
        pipeline.drain()
        write_status_files(pipeline, tmp_path / "after")
    capsys.readouterr()
    assert cli.main(["status", waiting, "--embedded", str(tmp_path / "before")]) == 0
    head, *lines = capsys.readouterr().out.splitlines()
    assert head.startswith(f"payment {waiting}: in_review (not terminal)")
    assert any("PaymentScored" in line and "decision=review" in line for line in lines)
    assert cli.main(["status", waiting, "--embedded", str(tmp_path / "after")]) == 0
    head, *lines = capsys.readouterr().out.splitlines()
    assert head.startswith(f"payment {waiting}: held ")
    assert any("ReviewDecided" in line and "reviewer=analyst-1" in line for line in lines)
