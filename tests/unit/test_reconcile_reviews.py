"""Reconciliation of fraud reviews: each check catches exactly the violation injected."""

from datetime import timedelta

from paypipe.embedded.evidence import schedule_period
from paypipe.embedded.reconcile import Context, reconcile
from paypipe.embedded.samples import sample_chain
from paypipe.events import models as ev

CHAIN = sample_chain(7)
OPENED = CHAIN.tokenized.occurred_at
DEADLINE = OPENED + timedelta(hours=72)
PID = CHAIN.scored.payment_id


def in_review():
    assessment = CHAIN.scored.data.assessment.model_copy(update={"decision": ev.Decision.REVIEW})
    review = ev.ReviewRef(opened_at=OPENED, deadline=DEADLINE)
    data = CHAIN.scored.data.model_copy(update={"assessment": assessment, "review": review})
    return CHAIN.scored.model_copy(update={"data": data})


def decided(key):
    return ev.ReviewDecided.create(
        payment_id=PID,
        data=ev.ReviewDecidedData(decision="approve", reviewer="ann"),
        producer="operator",
        dedup_key=key,
        occurred_at=OPENED + timedelta(hours=1),
    )


def approved(cause):
    review = ev.ReviewRef(opened_at=OPENED, deadline=DEADLINE, decided_at=OPENED + timedelta(hours=1))
    data = CHAIN.scored.data.model_copy(update={"review": review})
    return ev.PaymentScored.create(payment_id=PID, data=data, producer="fraud", cause=cause)


def declined(cause, code="REVIEW_DECLINED"):
    assessment = CHAIN.scored.data.assessment.model_copy(update={"decision": ev.Decision.DECLINE})
    data = ev.PaymentDeclinedData(assessment=assessment, reason_code=code)
    return ev.PaymentDeclined.create(payment_id=PID, data=data, producer="fraud", cause=cause)


def review_codes(events, as_of=None):
    result = reconcile([PID], events, [], [], {}, context=Context(as_of=as_of))
    return sorted(v.code for v in result.violations if v.code.startswith("REVIEW_"))


def test_a_review_decided_once_by_its_deadline_passes():
    decision = decided("d1")
    assert review_codes([in_review(), decision, approved(decision)], as_of=DEADLINE + timedelta(days=9)) == []


def test_a_review_with_two_outcomes_is_caught():
    first, second = decided("d1"), decided("d2")
    events = [in_review(), first, approved(first), second, declined(second)]
    assert review_codes(events, as_of=OPENED + timedelta(hours=2)) == ["REVIEW_DECIDED_TWICE"]
    # The same outcome seen twice (a redelivery: same event id) is one outcome.
    assert review_codes([in_review(), first, approved(first), approved(first)]) == []


def test_a_review_open_past_its_deadline_and_a_sweep_is_caught():
    assert review_codes([in_review()], as_of=DEADLINE + timedelta(minutes=4)) == []
    assert review_codes([in_review()], as_of=DEADLINE + timedelta(minutes=6)) == ["REVIEW_PAST_DEADLINE"]
    expiry = ev.ReviewExpiryDue.create(
        payment_id=PID,
        data=ev.ReviewExpiryDueData(opened_at=OPENED, deadline=DEADLINE),
        producer="fraud",
        dedup_key="x",
        occurred_at=DEADLINE,
    )
    events = [in_review(), expiry, declined(expiry, "REVIEW_EXPIRED")]
    assert review_codes(events, as_of=DEADLINE + timedelta(days=1)) == []


def test_the_sweep_period_is_read_from_the_schedule():
    assert schedule_period("rate(5 minutes)") == timedelta(minutes=5)
    assert schedule_period("rate(1 hour)") == timedelta(hours=1)
    assert schedule_period("cron(0 * * * ? *)") == timedelta(days=1)


def test_an_operator_decision_from_outside_may_act_but_not_one_from_a_client_source():
    from paypipe.embedded.reconcile import Observed

    decision = decided("d1")
    events = [
        Observed(in_review()),
        Observed(decision, source="paypipe.operator"),
        Observed(approved(decision)),
    ]
    external = frozenset({decision.event_id})
    result = reconcile([PID], events, [], [], {}, context=Context(external_event_ids=external))
    assert "FOREIGN_SOURCE_ACTED_ON" not in {v.code for v in result.violations}
    events[1] = Observed(decision, source="paypipe.client")
    result = reconcile([PID], events, [], [], {}, context=Context(external_event_ids=external))
    assert "FOREIGN_SOURCE_ACTED_ON" in {v.code for v in result.violations}
