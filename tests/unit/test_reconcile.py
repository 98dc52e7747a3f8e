from datetime import UTC, datetime

from paypipe.embedded.pan_scan import find_leaks
from paypipe.embedded.reconcile import AchEntry, DlqRecord, reconcile
from paypipe.events import models as ev

AT = datetime(2026, 2, 2, tzinfo=UTC)
PAYEE = ev.PayeeBankAccount(
    name="A",
    routing_number="011000015",
    account_number="12345",
    account_type="checking",
    payee_type="individual",
)


def released(pid, cents=500):
    data = ev.FundsReleasedData(
        hold_id=f"{pid}:hold",
        amount_cents=cents,
        currency="USD",
        provider_id="p",
        payee=PAYEE,
        trigger=ev.ReleaseTrigger.SERVICE_COMPLETED,
        released_at=AT,
    )
    return ev.FundsReleased.create(payment_id=pid, data=data, producer="release", dedup_key="r")


def batched(pid, batch, trace, cents=500):
    data = ev.PayoutBatchedData(
        batch_id=batch,
        file_key=f"{batch}.ach",
        trace_number=trace,
        amount_cents=cents,
        effective_date="2026-02-03",
        window="standard",
    )
    return ev.PayoutBatched.create(payment_id=pid, data=data, producer="ach_batch", dedup_key=batch)


def rejected(pid):
    data = ev.PaymentRejectedData(
        reasons=[ev.Rejection(code="X", field="f", message="m")], request_event_id="r"
    )
    return ev.PaymentRejected.create(payment_id=pid, data=data, producer="validate", dedup_key=pid)


def test_a_clean_run_reconciles():
    events = [released("p1"), batched("p1", "b1", "011000010000001"), rejected("p2")]
    entries = [AchEntry("b1.ach", "011000010000001", 500, True)]
    result = reconcile(
        ["p1", "p2", "p3"], events, [DlqRecord("q", "p3", "FundsHeld", "Boom")], entries, {"USD": 0}
    )
    assert result.ok, result.violations
    assert result.states == {"PayoutBatched": 1, "PaymentRejected": 1, "dlq": 1}


def test_payout_twice_and_lost_payment_and_mismatch_are_reported():
    events = [
        released("p1"),
        batched("p1", "b1", "011000010000001"),
        batched("p1", "b2", "011000010000001"),
    ]
    entries = [
        AchEntry("b1.ach", "011000010000001", 500, True),
        AchEntry("b2.ach", "011000010000001", 500, True),
    ]
    result = reconcile(["p1", "p2"], events, [], entries, {"USD": 7})
    text = "\n".join(result.violations)
    assert "p1: 2 distinct PayoutBatched events" in text
    assert "p1: paid out 2 times" in text
    assert "p2: neither terminal nor in a DLQ" in text
    assert "ACH credits 1000 != released 500" in text
    assert "ledger unbalanced in USD: 7" in text


def test_file_entry_without_announcement_is_reported():
    result = reconcile(["p1"], [rejected("p1")], [], [AchEntry("x.ach", "011000010000009", 100, True)], {})
    assert any("entry without PayoutBatched" in v for v in result.violations)


def test_pan_scan_finds_card_numbers_but_not_structured_ids():
    known = frozenset({"4111111111111111"})
    assert find_leaks("log", "card 4111 1111 1111 1111", known)
    assert find_leaks("log", '{"n": "5555555555554444"}', frozenset())  # unknown but card-shaped
    nacha_entry = (
        "6220110000150205030969       0000240473RUN110639000000JOSE MULLER SERVICES    0011000010000001"
    )
    assert find_leaks("s3", nacha_entry, frozenset()) == []
    assert find_leaks("event", '{"trace_number": "011000010000005", "at": 1795431417085}', frozenset()) == []


def test_pan_scan_skips_hex_digests_but_not_known_numbers_inside_them():
    digest = "d41d8cd9" + "4111111111111111" + "ecf8427e"  # a card-shaped run inside a digest
    assert find_leaks("ddb", f"Consumer._run_route#{digest}", frozenset()) == []
    assert find_leaks("ddb", f"Consumer._run_route#{digest}", frozenset({"4111111111111111"}))
    assert find_leaks("log", "pan=4111111111111111;", frozenset())
