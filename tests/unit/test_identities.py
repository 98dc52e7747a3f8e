"""Client-chosen identities: the id grammar, canonical IP addresses, and the payment id registry."""

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypipe.adapters.payments_store import PaymentsStore
from paypipe.domain.identifiers import ID_MAX_LENGTH, canonical_ip, ip_velocity_key, is_valid_id
from paypipe.domain.nacha import to_nacha_text
from paypipe.domain.validation import PaymentFacts, RejectReason, validate_payment
from tests.tables import create_table

T0 = datetime(2026, 11, 2, 14, tzinfo=UTC)


@pytest.mark.parametrize("value", ["p1", "PAY-2026.11:0001_a", "0", "a" * ID_MAX_LENGTH, "cust:eu-west:9"])
def test_ids_that_every_step_can_carry(value):
    assert is_valid_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-._:",
        ".hidden",
        "a" * (ID_MAX_LENGTH + 1),
        "p#1",
        "p 1",
        "p/1",
        "pé",
        "p\n1",
        "\uff11\uff12\uff13",
    ],
)
def test_ids_a_later_step_could_not_carry_are_refused(value):
    assert not is_valid_id(value)


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", fullmatch=True))
def test_every_id_the_grammar_accepts_fits_a_nacha_individual_id(value):
    assert is_valid_id(value)
    compact = "".join(ch for ch in value.upper() if ch.isalnum())
    assert compact and to_nacha_text(compact) == compact


@pytest.mark.parametrize(
    "spelling, canonical",
    [
        ("198.51.100.7", "198.51.100.7"),
        (" 198.51.100.7 ", "198.51.100.7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("::FFFF:c633:6407", "198.51.100.7"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ],
)
def test_one_address_has_one_spelling(spelling, canonical):
    assert canonical_ip(spelling) == canonical


@pytest.mark.parametrize(
    "spelling",
    [
        "198.051.100.007",
        "0x7f.0.0.1",
        "3325256711",
        "127.1",
        "fe80::1%eth0",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ip",
        "",
    ],
)
def test_ambiguous_or_non_client_addresses_are_refused(spelling):
    with pytest.raises(ValueError):
        canonical_ip(spelling)


def test_velocity_counts_an_ipv6_client_by_its_64_and_an_ipv4_client_by_its_address():
    assert (
        ip_velocity_key("2001:db8:1:2::1") == ip_velocity_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert ip_velocity_key("2001:db8:1:3::1") != ip_velocity_key("2001:db8:1:2::1")
    assert ip_velocity_key("198.51.100.7") == "198.51.100.7"


def facts(**changes):
    base = {
        "amount_cents": 100,
        "currency": "USD",
        "card_number": "4111111111111111",
        "exp_month": 12,
        "exp_year": 2030,
        "routing_number": "021000021",
        "account_number": "12345",
        "ids": {"payment_id": "p1", "customer.id": "c1"},
        "tenant_id": "default",
        "ip_address": "198.51.100.7",
    }
    return PaymentFacts(**{**base, **changes})


def test_validate_refuses_ids_unknown_tenants_and_unreadable_addresses_with_reason_codes():
    rejections = validate_payment(
        facts(ids={"payment_id": "-._:", "customer.id": "ok"}, tenant_id="acme", ip_address="010.0.0.1"),
        today=T0.date(),
        max_amount_cents=10**6,
        allowed_tenants=frozenset({"default"}),
    )
    assert [(r.code, r.field) for r in rejections] == [
        (RejectReason.IDENTIFIER_INVALID, "payment_id"),
        (RejectReason.TENANT_UNKNOWN, "tenant_id"),
        (RejectReason.IP_ADDRESS_INVALID, "device.ip_address"),
    ]
    assert validate_payment(facts(tenant_id="acme"), today=T0.date(), max_amount_cents=10**6) == []


@pytest.fixture
def registry(aws):
    dynamodb = boto3.client("dynamodb")
    create_table(dynamodb, "payments")
    return PaymentsStore("payments", dynamodb)


def test_the_first_request_owns_a_payment_id_and_keeps_its_receipt_time(registry):
    first = registry.claim("p1", "fp-a", "req-1", T0)
    redelivered = registry.claim("p1", "fp-a", "req-1", T0 + timedelta(minutes=9))

    assert first.owned and first.received_at == T0
    assert redelivered.owned and redelivered.received_at == T0


@pytest.mark.parametrize(
    "fingerprint, event_id",
    [("fp-a", "req-2"), ("fp-b", "req-1"), ("fp-b", "req-2")],
    ids=["new-id", "new-content", "both"],
)
def test_any_other_request_for_the_payment_id_finds_its_owner(registry, fingerprint, event_id):
    registry.claim("p1", "fp-a", "req-1", T0)

    other = registry.claim("p1", fingerprint, event_id, T0 + timedelta(minutes=1))

    assert not other.owned
    assert (other.request_event_id, other.received_at) == ("req-1", T0)
    assert registry.claim("p1", "fp-a", "req-1", T0).owned


def test_the_pipeline_clock_moves_only_forward_and_only_when_told():
    from paypipe.runtime import clock

    manual = clock.ManualClock(T0)
    with clock.using(manual):
        assert clock.now() == T0
        manual.advance(timedelta(minutes=5))
        assert clock.now() == T0 + timedelta(minutes=5)
        with pytest.raises(ValueError, match="cannot go back"):
            manual.set(T0)
    assert clock.now() != T0 + timedelta(minutes=5)  # the system clock again
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.ManualClock(datetime(2026, 1, 1))


def test_a_records_receipt_time_is_the_carried_one_else_sqs_else_now():
    from paypipe.runtime import clock

    sent = {"SentTimestamp": str(int(T0.timestamp() * 1000))}
    carried = {"received_at": (T0 - timedelta(days=2)).isoformat()}
    assert clock.received_at(sent, carried) == T0 - timedelta(days=2)
    assert clock.received_at(sent, {}) == T0
    assert clock.received_at(sent, {"received_at": "garbage"}) == T0
    with clock.using(clock.ManualClock(T0 + timedelta(hours=1))):
        assert clock.received_at({}, {}) == T0 + timedelta(hours=1)
