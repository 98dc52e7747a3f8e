"""Hostile clients, buggy upstreams and late disputes, each a scenario file played by the runner.

Every scenario carries a bystander payment that has nothing to do with the attack; it must still
pay out. The attacked payment's outcome is asserted from the run's report, and so is the
reconciliation's verdict (clean, or exactly the violation the scenario provokes).
"""

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.scenario_kit import CARDS, DAY, Script, iso

pytestmark = pytest.mark.embedded

END = DAY + timedelta(hours=6)  # past the 10:15 and 14:30 New York same-day cuts


FORGED_PAYEE = {
    "name": "Eve",
    "routing_number": "021000021",
    "account_token": "acct_eve",
    "account_last4": "9999",
    "account_fingerprint": "afp_eve",
    "account_type": "checking",
    "payee_type": "individual",
}


def m(minutes: float) -> datetime:
    return DAY + timedelta(minutes=minutes)


def expiry_command(payment_id: str, producer: str = "client") -> dict:
    return {
        "event_id": f"forged-expiry-{payment_id}-{producer}",
        "event_type": "HoldExpiryDue",
        "schema_version": "1.0",
        "payment_id": payment_id,
        "correlation_id": payment_id,
        "occurred_at": iso(m(10)),
        "producer": producer,
        "data": {"hold_until": iso(m(0))},
    }


def held_and_completed(script: Script, payment_id: str = "p1", completed: float = 120) -> None:
    script.request(m(0), payment_id)
    script.complete(m(completed), payment_id)


def released_after(report, payment_id: str, trigger_type: str) -> None:
    """The payment was released only after ``trigger_type`` arrived."""
    events = report.events(payment_id)
    assert events.index("FundsReleased") > events.index(trigger_type), events


# -- trust boundary ------------------------------------------------------------------------------


@pytest.mark.parametrize("producer", ["client", "release"])
def test_a_client_published_expiry_command_never_releases_a_hold(tmp_path, producer):
    script = Script()
    script.bystander()
    held_and_completed(script)
    script.publish(m(10), "HoldExpiryDue", expiry_command("p1", producer))
    report = script.play(tmp_path, END)
    released_after(report, "p1", "ServiceCompleted")
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


def test_a_client_published_release_is_not_paid_out(tmp_path):
    script = Script()
    script.bystander()
    held_and_completed(script)
    forged = {
        **expiry_command("p1"),
        "event_id": "forged-release",
        "event_type": "FundsReleased",
        "schema_version": "2.0",
        "data": {
            "hold_id": "p1:hold",
            "amount_cents": 9_900_000,
            "currency": "USD",
            "provider_id": "prov-evil",
            "payee": FORGED_PAYEE,
            "trigger": "service_completed",
            "released_at": iso(m(10)),
        },
    }
    script.publish(m(10), "FundsReleased", forged)
    report = script.play(tmp_path, END)
    assert report.paid("p1") == 12_500
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


def test_a_client_published_validated_payment_is_never_tokenized(tmp_path):
    script = Script()
    script.bystander()
    request = script.request(m(0), "ghost")
    script.lines.pop()  # not requested: only its would-be validated form is published
    validated = {
        **request,
        "event_id": "forged-validated",
        "event_type": "PaymentValidated",
        "producer": "client",
    }
    script.publish(m(1), "PaymentValidated", validated)
    report = script.play(tmp_path, END)
    assert "ghost" not in report.raw["payments"]
    report.assert_clean()
    report.assert_bystanders_paid()


def test_a_client_command_under_an_internal_source_is_not_routed(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1")
    script.complete(m(5), "p1", source="paypipe.release", key="spoofed")
    script.complete(m(120), "p1")
    report = script.play(tmp_path, END)
    assert report.events("p1").count("ServiceCompleted") == 2
    released_after(report, "p1", "ServiceCompleted")
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


def test_a_client_event_claiming_an_internal_producer_is_parked_as_untrusted(tmp_path):
    script = Script()
    script.bystander()
    held_and_completed(script)
    script.open_dispute(m(10), "p1", producer="release")
    report = script.play(tmp_path, END)
    assert report.dlq_reasons("p1") == ["UntrustedSource"] * 2  # release and the card book each park it
    assert "HoldFrozen" not in report.events("p1")
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


def test_a_detail_type_that_is_not_the_events_type_is_parked(tmp_path):
    script = Script()
    script.bystander()
    held_and_completed(script)
    dispute = script.open_dispute(m(10), "p1")
    script.lines.pop()
    script.publish(m(10), "ServiceCompleted", dispute)
    report = script.play(tmp_path, END)
    assert report.dlq_reasons("p1") == ["UnknownEvent"]
    released_after(report, "p1", "ServiceCompleted")
    report.assert_clean()


def test_a_forged_internal_event_under_its_producers_source_is_caught_by_reconciliation(tmp_path):
    """Only IAM keeps a publisher from using another step's source (the template's policies do);
    a bus without it acts on the forgery, and reconciliation says so. A forged score reaches no
    money: the charge step finds no card for its token and parks it."""
    script = Script()
    script.bystander()
    card = {
        "token": "tok_FORGED",
        "bin6": "411111",
        "last4": "1111",
        "brand": "VISA",
        "exp_month": 12,
        "exp_year": 2030,
    }
    assessment = {"score": 0, "decision": "approve", "reasons": [], "rule_version": "2026-11-01"}

    def forged(payment_id: str, event_type: str, producer: str, **data: object) -> dict[str, object]:
        request = script.request(m(0), payment_id)
        script.lines.pop()
        body = {**request["data"], "card": card, "payee": FORGED_PAYEE, "assessment": assessment, **data}
        return {
            **request,
            "event_id": f"forged-{payment_id}",
            "event_type": event_type,
            "producer": producer,
            "data": body,
        }

    charge = {
        "processor": "simulator",
        "authorization_id": "sim_auth_forged",
        "captured_cents": 12_500,  # the request's amount
        "currency": "USD",
    }
    script.publish(
        m(1),
        "PaymentCharged",
        forged("ghost", "PaymentCharged", "charge", charge=charge),
        source="paypipe.charge",
    )
    scored = {**forged("ghost-score", "PaymentScored", "fraud"), "schema_version": "2.0"}
    script.publish(m(1), "PaymentScored", scored, source="paypipe.fraud")
    report = script.play(tmp_path, END)
    # Held on a charge the acquirer never made: its reports do not settle it either.
    assert report.codes == {"FOREIGN_SOURCE_ACTED_ON", "SETTLEMENT_MISMATCH"}
    acted_on = {v["payment_id"] for v in report.raw["violations"] if v["code"] == "FOREIGN_SOURCE_ACTED_ON"}
    assert acted_on == {"ghost"}
    assert report.dlq_reasons("ghost-score") == ["UnknownToken"]
    report.assert_bystanders_paid()


# -- the pipeline's clock ------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-10, 10], ids=["back-dated", "future-dated"])
def test_a_request_dated_outside_the_skew_is_rejected(tmp_path, offset):
    script = Script()
    script.bystander()
    script.request(m(0), "p1", occurred_at=m(offset))
    report = script.play(tmp_path, END)
    assert report.state("p1") == "PaymentRejected"
    assert report.rejected("p1") == ["CLIENT_CLOCK_SKEW"]
    report.assert_clean()
    report.assert_bystanders_paid()


def test_card_expiry_is_judged_at_receipt_not_at_the_clients_date(tmp_path):
    received = datetime(2026, 11, 1, 0, 2, tzinfo=UTC)
    script = Script()
    script.bystander()
    script.request(received, "p1", occurred_at=received - timedelta(minutes=4), exp=(10, 2026))
    report = script.play(tmp_path, END)
    assert report.rejected("p1") == ["CARD_EXPIRED"]
    report.assert_clean()
    report.assert_bystanders_paid()


def test_a_completion_with_a_far_off_completion_time_is_refused(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1")
    script.complete(m(10), "p1", completed_at=m(10) - timedelta(days=2), key="stale")
    script.complete(m(120), "p1")
    report = script.play(tmp_path, END)
    assert report.refused("p1") == ["CLIENT_CLOCK_SKEW"]
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


def test_a_completion_after_hold_until_does_not_race_the_expiry(tmp_path):
    script = Script(parameters={"HoldDays": 1})
    script.bystander()
    script.request(m(0), "p1")
    script.complete(m(24 * 60 + 60), "p1")
    report = script.play(tmp_path, m(24 * 60 + 360))
    assert report.refused("p1") == ["ALREADY_RESOLVED"]
    assert report.events("p1").index("FundsReleased") < report.events("p1").index("ServiceCompleted")
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


def test_a_dispute_back_dated_into_escrow_is_decided_at_receipt(tmp_path):
    hold_until = m(24 * 60)
    script = Script(parameters={"HoldDays": 1})
    script.bystander()
    script.request(m(0), "p1")
    script.open_dispute(
        hold_until + timedelta(minutes=2), "p1", occurred_at=hold_until - timedelta(minutes=1)
    )
    script.resolve(hold_until + timedelta(minutes=90), "p1")
    report = script.play(tmp_path, hold_until + timedelta(hours=4))
    events = report.events("p1")
    assert "HoldFrozen" not in events and "PayoutHeldBack" in events
    assert report.state("p1") == "FundsRefunded" and report.paid("p1") == 0
    report.assert_clean()
    report.assert_bystanders_paid()


def test_the_buses_own_event_time_is_not_the_pipelines_clock(tmp_path):
    script = Script()
    script.bystander()
    held_and_completed(script)
    script.lines[-2]["publish"]["Time"] = "2020-01-01T00:00:00Z"
    report = script.play(tmp_path, END)
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


# -- identities ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payment_id, changes, field",
    [
        ("-._:", {}, "payment_id"),
        ("p1", {"data__customer__id": ":::"}, "customer.id"),
        ("p1", {"data__provider_id": "p" * 100}, "provider_id"),
        ("p1", {"event_id": "!!bad request id"}, "event_id"),
    ],
    ids=["punctuation-payment-id", "customer-id", "provider-id-too-long", "request-id"],
)
def test_an_id_outside_the_grammar_is_rejected_at_validate(tmp_path, payment_id, changes, field):
    script = Script()
    script.bystander()
    script.request(m(0), payment_id, **changes)
    script.complete(m(30), payment_id)
    report = script.play(tmp_path, END)
    assert report.rejected(payment_id) == ["IDENTIFIER_INVALID"]
    assert report.paid(payment_id) == 0
    report.assert_clean()
    report.assert_bystanders_paid()


def test_an_unknown_tenant_is_rejected(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1", data__tenant_id="acme")
    report = script.play(tmp_path, END)
    assert report.rejected("p1") == ["TENANT_UNKNOWN"]
    report.assert_clean()
    report.assert_bystanders_paid()


def test_a_payment_id_the_envelope_cannot_carry_is_parked(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1")["payment_id"] = "p 1#"  # the envelope's pattern refuses it
    report = script.play(tmp_path, END)
    assert report.state("p 1#") == "dlq" and report.dlq_reasons("p 1#") == ["SchemaViolation"]
    report.assert_clean()
    report.assert_bystanders_paid()


def test_one_card_under_several_tenants_is_one_card_to_velocity(tmp_path):
    script = Script(parameters={"AllowedTenants": "*"})
    script.bystander()
    for index in range(4):
        script.request(
            m(index),
            f"t{index}",
            customer=f"c{index}",
            amount=100,
            ip=f"203.0.113.{index + 1}",
            data__tenant_id=f"tenant-{index}",
        )
        script.complete(m(30 + index), f"t{index}")
    report = script.play(tmp_path, END)
    assert report.state("t3") == "PaymentDeclined"
    report.assert_clean()
    report.assert_bystanders_paid()


@pytest.mark.parametrize(
    "spellings",
    [
        [
            "2001:db8:85a3::8a2e:370:7334",
            "2001:DB8:85A3:0:0:8A2E:370:7334",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8:85a3::1",
        ],
        ["198.51.100.9", "::ffff:198.51.100.9", "::FFFF:c633:6409", " 198.51.100.9 "],
    ],
    ids=["ipv6-notations-and-one-64", "ipv4-mapped"],
)
def test_one_ip_address_in_several_notations_is_one_address_to_velocity(tmp_path, spellings):
    script = Script()
    script.bystander()
    for index, ip in enumerate(spellings):
        script.request(m(index), f"ip{index}", customer=f"ipc{index}", pan=CARDS[index + 1], ip=ip)
        script.complete(m(30 + index), f"ip{index}")
    report = script.play(tmp_path, END)
    assert report.state("ip3") == "PaymentDeclined"
    assert {report.state(f"ip{index}") for index in range(3)} <= {"PayoutBatched", "review"}
    report.assert_clean()
    report.assert_bystanders_paid()


def test_an_ambiguous_ipv4_spelling_is_rejected(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1", ip="198.051.100.007")
    report = script.play(tmp_path, END)
    assert report.rejected("p1") == ["IP_ADDRESS_INVALID"]
    report.assert_clean()


def test_a_dispute_id_outside_the_grammar_is_refused(tmp_path):
    script = Script()
    script.bystander()
    held_and_completed(script)
    script.open_dispute(m(10), "p1", dispute_id="--x")
    report = script.play(tmp_path, END)
    assert report.refused("p1") == ["IDENTIFIER_INVALID"]
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


def test_two_payments_sharing_a_request_event_id_stay_apart(tmp_path):
    script = Script()
    script.bystander()
    for payment_id, customer in (("p1", "c1"), ("p2", "c2")):
        script.request(m(0), payment_id, customer=customer, key="shared")
        script.complete(m(60), payment_id)
    report = script.play(tmp_path, END)
    assert report.paid("p1") == report.paid("p2") == 12_500
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1", "p2")


# -- disputes ------------------------------------------------------------------------------------


def test_a_resolution_of_a_dispute_never_opened_is_refused(tmp_path):
    script = Script()
    script.bystander()
    held_and_completed(script)
    script.resolve(m(10), "p1", "never-opened", "refund")
    report = script.play(tmp_path, END)
    assert report.refused("p1") == ["DISPUTE_NOT_OPEN"]
    assert "FundsRefunded" not in report.events("p1")
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


def test_a_resolution_for_a_payment_never_held_is_refused(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1", data__card__number="4111111111111112")
    script.resolve(m(10), "p1", "d1", "release")
    report = script.play(tmp_path, END)
    assert report.state("p1") == "PaymentRejected" and report.refused("p1") == ["DISPUTE_NOT_OPEN"]
    report.assert_clean()


def test_the_hold_resolves_only_when_the_last_open_dispute_is_resolved(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1")
    script.open_dispute(m(10), "p1", "d1")
    script.open_dispute(m(11), "p1", "d2")
    script.resolve(m(20), "p1", "d1", "release")
    script.complete(m(30), "p1")
    script.resolve(m(40), "p1", "d2", "refund")
    report = script.play(tmp_path, END)
    events = report.events("p1")
    assert events.count("HoldFrozen") == 2 and events.count("DisputeClosed") == 2
    assert report.refused("p1") == ["HOLD_FROZEN"]
    assert report.state("p1") == "FundsRefunded" and report.paid("p1") == 0
    report.assert_clean()
    report.assert_bystanders_paid()


def test_a_dispute_resolved_twice_decides_once(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1")
    script.open_dispute(m(10), "p1")
    script.resolve(m(20), "p1", outcome="refund")
    script.resolve(m(21), "p1", outcome="refund")
    script.resolve(m(22), "p1", outcome="release")
    report = script.play(tmp_path, END)
    assert report.refused("p1") == ["DISPUTE_ALREADY_RESOLVED"]
    assert report.state("p1") == "FundsRefunded" and "FundsReleased" not in report.events("p1")
    report.assert_clean()


def test_a_completion_while_a_dispute_froze_the_hold_is_refused(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1")
    script.open_dispute(m(10), "p1")
    script.complete(m(20), "p1")
    script.resolve(m(30), "p1", outcome="release")
    report = script.play(tmp_path, END)
    assert report.refused("p1") == ["HOLD_FROZEN"]
    released_after(report, "p1", "DisputeClosed")
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


@pytest.mark.parametrize("outcome", ["release", "refund"])
def test_a_dispute_after_release_holds_the_payout_back_until_resolved(tmp_path, outcome):
    script = Script()
    script.bystander()
    held_and_completed(script, completed=10)  # released at 09:10 New York, due at the 10:15 cut
    script.open_dispute(m(20), "p1")
    script.resolve(m(120), "p1", outcome=outcome)
    report = script.play(tmp_path, END)
    events = report.events("p1")
    assert "PayoutHeldBack" in events
    if outcome == "release":
        assert events.index("PayoutBatched") > events.index("DisputeClosed")
        assert report.paid("p1") == 12_500
    else:
        assert report.state("p1") == "FundsRefunded" and report.paid("p1") == 0
    report.assert_clean()
    report.assert_bystanders_paid()


def test_a_dispute_after_filing_is_clawed_back_from_the_providers_next_payout(tmp_path):
    script = Script()
    script.bystander()
    held_and_completed(script, completed=10)  # filed at the 10:15 New York cut (15:15 UTC)
    script.open_dispute(m(90), "p1")
    script.request(m(60), "p2", customer="c2", pan=CARDS[2], amount=20_000)
    script.complete(m(120), "p2")  # filed at the 14:30 cut, netted
    script.resolve(m(345), "p1", outcome="refund")
    report = script.play(tmp_path, END)
    assert "ClawbackBooked" in report.events("p1") and "ClawbackResolved" in report.events("p1")
    assert report.paid("p1") == 12_500
    assert report.paid("p2") == 20_000 - 12_500
    usd = report.raw["ledger"]["USD"]["balances"]
    # The provider paid it back; the customer's refund went on to the card (card clearing).
    assert usd.get("clawback:prov-1", 0) == 0 and usd.get("customer:cust-1", 0) == 0
    assert "CardRefunded" in report.events("p1")
    report.assert_clean()
    report.assert_bystanders_paid()


def test_a_clawback_won_by_the_provider_is_paid_back_with_their_next_payout(tmp_path):
    tuesday = DAY + timedelta(days=1)
    script = Script()
    script.bystander()
    held_and_completed(script, completed=10)
    script.open_dispute(m(90), "p1")
    script.request(m(60), "p2", customer="c2", pan=CARDS[2], amount=5_000)
    script.complete(m(120), "p2")  # netted in full at the 14:30 cut: no entry
    script.resolve(m(345), "p1", outcome="release")
    script.request(tuesday, "p3", customer="c3", pan=CARDS[3], amount=3_000)
    script.complete(tuesday + timedelta(minutes=10), "p3")
    report = script.play(tmp_path, tuesday + timedelta(hours=6))
    assert report.state("p2") == "PayoutNetted" and report.paid("p2") == 0
    assert report.paid("p3") == 3_000 + 5_000
    assert report.raw["ledger"]["USD"]["balances"].get("clawback:prov-1", 0) == 0
    report.assert_clean()
    report.assert_bystanders_paid()


def test_a_dispute_never_resolved_is_announced_and_reported(tmp_path):
    log = Path(os.environ["LOG_FILE"])
    logged_before = log.stat().st_size if log.exists() else 0
    script = Script(parameters={"DisputeMaxAgeDays": 1})
    script.bystander()
    script.request(m(0), "p1")
    script.open_dispute(m(30), "p1")
    report = script.play(tmp_path, m(30 + 24 * 60 + 60))
    assert report.events("p1").count("DisputeAged") == 1 and report.state("p1") == "disputed"
    assert report.codes == {"DISPUTE_PAST_AGE"}
    report.assert_bystanders_paid()
    with log.open() as lines:
        lines.seek(logged_before)
        alarms = [json.loads(line) for line in lines if '"DisputesPastAge"' in line]
    assert [
        (sum(line["DisputesPastAge"]), line["_aws"]["CloudWatchMetrics"][0]["Namespace"]) for line in alarms
    ] == [(1, "paypipe")]


def test_a_dispute_after_the_dispute_window_is_refused(tmp_path):
    script = Script(parameters={"DisputeWindowDays": 1})
    script.bystander()
    held_and_completed(script, completed=10)
    script.open_dispute(m(10 + 24 * 60 + 60), "p1")
    report = script.play(tmp_path, m(10 + 24 * 60 + 120))
    assert report.refused("p1") == ["DISPUTE_WINDOW_CLOSED"]
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


def test_a_dispute_of_a_refunded_payment_is_refused(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1")
    script.open_dispute(m(10), "p1", "d1")
    script.resolve(m(20), "p1", "d1", "refund")
    script.open_dispute(m(30), "p1", "d2")
    report = script.play(tmp_path, END)
    assert report.refused("p1") == ["ALREADY_REFUNDED"]
    report.assert_clean()


def test_a_dispute_of_a_payment_never_held_ends_in_the_dlq_with_its_reason(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1", data__card__number="4111111111111112")
    script.open_dispute(m(10), "p1")
    report = script.play(tmp_path, END)
    assert report.state("p1") == "PaymentRejected" and report.dlq_reasons("p1") == ["HoldNotFoundError"]
    report.assert_clean()


def test_a_dispute_after_hold_until_before_the_sweep_holds_the_payout(tmp_path):
    script = Script(parameters={"HoldDays": 1, "SweepSchedule": "rate(1 hour)"})
    script.bystander()
    script.request(m(10), "p1")  # held at 14:10 UTC: the hold ends at 14:10 on Tuesday
    tuesday = m(10 + 24 * 60)
    script.open_dispute(tuesday + timedelta(minutes=20), "p1")  # before the 15:00 sweep
    script.resolve(tuesday + timedelta(minutes=110), "p1", outcome="release")
    report = script.play(tmp_path, tuesday + timedelta(hours=6))
    events = report.events("p1")
    assert events.index("PayoutHeldBack") < events.index("FundsReleased") < events.index("DisputeClosed")
    assert events.index("DisputeClosed") < events.index("PayoutBatched")
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


# -- duplicates ----------------------------------------------------------------------------------


def test_the_same_request_delivered_twice_is_one_payment(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1", key="once")
    script.request(m(1), "p1", key="once", occurred_at=m(0))
    script.complete(m(60), "p1")
    report = script.play(tmp_path, END)
    assert report.refused("p1") == [] and report.raw["duplicate_requests"] == 0
    assert len(report.entries("p1")) == 1
    report.assert_clean()


@pytest.mark.parametrize(
    "changes",
    [{}, {"data__payee__account_number": "66666666", "data__amount_cents": 99_000}],
    ids=["same-content", "other-payee-and-amount"],
)
def test_a_second_request_for_a_payment_id_is_refused_and_changes_nothing(tmp_path, changes):
    script = Script()
    script.bystander()
    script.request(m(0), "p1", key="first")
    script.request(m(5), "p1", key="second", **changes)
    script.complete(m(60), "p1")
    report = script.play(tmp_path, END)
    assert report.refused("p1") == ["DUPLICATE_PAYMENT_ID"] and report.raw["duplicate_requests"] == 1
    assert [entry["amount_cents"] for entry in report.entries("p1")] == [12_500]
    report.assert_clean()
    report.assert_bystanders_paid("by-1", "p1")


def test_a_corrected_retry_of_a_rejected_request_is_refused(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1", key="bad", data__card__number="4111111111111112")
    script.request(m(5), "p1", key="fixed")
    script.complete(m(60), "p1")
    report = script.play(tmp_path, END)
    assert report.state("p1") == "PaymentRejected" and report.paid("p1") == 0
    assert report.refused("p1") == ["DUPLICATE_PAYMENT_ID"]
    assert report.dlq_reasons("p1") == ["HoldNotFoundError"]  # the completion of a payment never held
    report.assert_clean()


def test_a_duplicate_after_the_payout_does_not_pay_again(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1", key="first")
    script.complete(m(10), "p1")
    script.request(m(120), "p1", key="late")
    script.complete(m(125), "p1")
    report = script.play(tmp_path, END)
    assert report.refused("p1") == ["DUPLICATE_PAYMENT_ID"]
    assert len(report.entries("p1")) == 1
    report.assert_clean()


def test_two_requests_for_one_payment_id_at_the_same_instant_have_one_owner(tmp_path):
    script = Script()
    script.bystander()
    script.request(m(0), "p1", key="a")
    script.request(m(0), "p1", key="b", data__amount_cents=7_700)
    script.complete(m(60), "p1")
    report = script.play(tmp_path, END)
    assert report.refused("p1") == ["DUPLICATE_PAYMENT_ID"]
    assert [entry["amount_cents"] for entry in report.entries("p1")] == [12_500]
    report.assert_clean()


# -- a day of ordinary traffic -------------------------------------------------------------------


def test_an_ordinary_day_reconciles(tmp_path):
    script = Script()
    for index in range(5):
        payment_id = f"day-{index}"
        script.request(
            m(index * 7),
            payment_id,
            customer=f"dc{index}",
            pan=CARDS[index],
            provider=f"dp{index % 2}",
            ip=f"192.0.2.{index + 10}",  # five customers, five places: nothing for velocity to see
        )
        script.complete(m(index * 7 + 40), payment_id)
    report = script.play(tmp_path, END)
    report.assert_clean()
    assert {report.state(f"day-{index}") for index in range(5)} == {"PayoutBatched"}
    assert len({entry["trace_number"] for entry in report.raw["ach_entries"]}) == len(
        report.raw["ach_entries"]
    )


def test_every_violation_in_a_report_names_a_code_and_a_payment_where_one_applies(tmp_path):
    script = Script(parameters={"DisputeMaxAgeDays": 1})
    script.request(m(0), "p1")
    script.open_dispute(m(30), "p1")
    report = script.play(tmp_path, m(30 + 26 * 60))
    [violation] = report.raw["violations"]
    assert (violation["code"], violation["payment_id"]) == ("DISPUTE_PAST_AGE", "p1")
    assert "dispute d1 open for 1 days" in violation["message"]
