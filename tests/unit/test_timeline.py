"""The timeline read model: key facts, ordering, deduplication and a payment's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypipe.adapters.timeline_store import from_plain, to_plain
from paypipe.domain.timeline import (
    KEY_FACTS,
    SENSITIVE_FIELDS,
    STATES,
    TimelineEntry,
    current_state,
    key_facts,
    timeline,
)
from paypipe.events import models as ev

T0 = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def entry(
    event_type: str,
    minutes: float,
    producer: str,
    facts: dict[str, object] | None = None,
    *,
    event_id: str | None = None,
    untrusted: str | None = None,
) -> TimelineEntry:
    return TimelineEntry(
        payment_id="pay-1",
        event_id=event_id or f"{event_type}-{minutes}",
        event_type=event_type,
        occurred_at=T0 + timedelta(minutes=minutes),
        producer=producer,
        source=f"paypipe.{producer}",
        facts=facts or {},  # type: ignore[arg-type]
        untrusted=untrusted,
    )


PAID_OUT = [
    entry("PaymentRequested", 0, "client", {"amount_cents": 12500}),
    entry("PaymentValidated", 0, "validate"),
    entry("PaymentTokenized", 0, "tokenize"),
    entry("PaymentScored", 0, "fraud", {"decision": "approve", "score": 120}),
    entry("FundsHeld", 0, "escrow_hold"),
    entry("ServiceCompleted", 60, "client"),
    entry("FundsReleased", 61, "release", {"trigger": "service_completed"}),
    entry("PayoutBatched", 600, "ach_batch", {"trace_number": "011000010000001"}),
]


def test_every_event_type_of_the_contract_has_its_key_facts():
    assert set(KEY_FACTS) == set(ev.EVENT_TYPES)


def test_key_facts_never_name_a_card_number_cvv_or_account_number():
    for event_type, spec in KEY_FACTS.items():
        for path in spec.paths:
            parts = {part.removesuffix("[]") for part in path.rpartition("=")[2].split(".")}
            assert not parts & SENSITIVE_FIELDS, (event_type, path)


def test_card_bearing_types_list_only_fields_every_event_of_them_carries():
    """Their rule's input transformer maps exactly these paths, so each must be in every event: a
    field the contract requires, or one with a non-null default in a type only steps publish (a
    step's event carries every field)."""
    for event_type in ev.CARDHOLDER_DATA_EVENT_TYPES:
        from_steps = ev.CLIENT_PRODUCER not in ev.EVENT_TYPES[event_type].PRODUCERS
        for path in KEY_FACTS[event_type].paths:
            model: object = ev.EVENT_TYPES[event_type].model_fields["data"].annotation
            for part in path.rpartition("=")[2].split("."):
                fields = model.model_fields  # type: ignore[attr-defined]
                assert part in fields, (event_type, path)
                always = fields[part].is_required() or (from_steps and fields[part].default is not None)
                assert always, (event_type, path)
                model = fields[part].annotation


def test_key_facts_of_a_request_leave_the_card_and_account_behind():
    request = {
        "amount_cents": 12500,
        "currency": "USD",
        "provider_id": "prov-1",
        "customer": {"id": "cust-1", "email": "a@example.com"},
        "card": {"number": "4111111111111111", "cvv": "123"},
        "payee": {"account_number": "1616900068"},
    }
    facts = key_facts("PaymentRequested", request)
    assert facts == {
        "amount_cents": 12500,
        "currency": "USD",
        "provider_id": "prov-1",
        "customer_id": "cust-1",
    }


def test_key_facts_from_an_input_transformer_get_their_numbers_back():
    facts = key_facts("PaymentRequested", {"amount_cents": "12500", "currency": "USD"})
    assert facts == {"amount_cents": 12500, "currency": "USD"}


def test_key_facts_read_lists_and_nested_fields():
    rejected = {"reasons": [{"code": "CARD_LUHN_FAILED", "field": "card.number"}, {"code": "CVV_INVALID"}]}
    assert key_facts("PaymentRejected", rejected) == {"reason_codes": ["CARD_LUHN_FAILED", "CVV_INVALID"]}
    scored = {
        "assessment": {"decision": "review", "score": 640, "reasons": ["VELOCITY"], "rule_version": "v"}
    }
    assert key_facts("PaymentScored", scored) == {
        "decision": "review",
        "score": 640,
        "reasons": ["VELOCITY"],
        "rule_version": "v",
    }


def test_an_unknown_type_keeps_no_facts():
    assert key_facts("SomethingNew", {"amount_cents": 1}) == {}


@given(st.permutations(PAID_OUT + PAID_OUT[2:5]))
def test_duplicates_and_any_delivery_order_give_the_same_timeline_and_state(delivered):
    assert timeline(delivered) == timeline(PAID_OUT)
    assert current_state(delivered) == STATES["paid_out"]


def test_events_of_the_same_instant_are_in_pipeline_order():
    types = [e.event_type for e in timeline(reversed(PAID_OUT))]
    assert types[:5] == [
        "PaymentRequested",
        "PaymentValidated",
        "PaymentTokenized",
        "PaymentScored",
        "FundsHeld",
    ]


@pytest.mark.parametrize(
    ("entries", "state"),
    [
        ([entry("PaymentRequested", 0, "client")], "requested"),
        ([*PAID_OUT[:1], entry("PaymentRejected", 0, "validate")], "rejected"),
        ([*PAID_OUT[:3], entry("PaymentDeclined", 0, "fraud")], "declined"),
        ([*PAID_OUT[:3], entry("PaymentScored", 0, "fraud", {"decision": "review"})], "in_review"),
        (PAID_OUT[:5], "held"),
        ([*PAID_OUT[:5], entry("HoldFrozen", 5, "release")], "disputed"),
        (
            [*PAID_OUT[:5], entry("HoldFrozen", 5, "release"), entry("FundsRefunded", 9, "release")],
            "refunded",
        ),
        (PAID_OUT[:7], "released"),
        (PAID_OUT, "paid_out"),
        (
            [*PAID_OUT, entry("PayoutReturned", 900, "ach_returns", {"next_step": "resend"})],
            "returned_resend",
        ),
        (
            [*PAID_OUT, entry("PayoutReturned", 900, "ach_returns", {"next_step": "await_account_update"})],
            "returned",
        ),
        (
            [
                *PAID_OUT,
                entry("PayoutReturned", 900, "ach_returns", {"next_step": "resend"}),
                entry("PayoutBatched", 1900, "ach_batch", event_id="second"),
            ],
            "paid_out",
        ),
        ([*PAID_OUT[:7], entry("PayoutNetted", 600, "ach_batch")], "netted"),
        ([*PAID_OUT[:7], entry("ItemSetAside", 600, "ach_batch", {"job": "ach_cut"})], "set_aside"),
    ],
)
def test_current_state(entries, state):
    assert current_state(entries).name == state
    assert current_state(entries).terminal is STATES[state].terminal


def test_client_commands_and_untrusted_events_move_nothing():
    forged = entry(
        "PayoutBatched", 30, "client", untrusted="PayoutBatched is published only by ['ach_batch']"
    )
    late_duplicate_request = entry("PaymentRequested", 90, "client", event_id="again")
    entries = [*PAID_OUT[:5], forged, late_duplicate_request, entry("DisputeOpened", 95, "client")]
    assert current_state(entries).name == "held"
    assert forged in timeline(entries)


def test_a_trusted_record_of_an_event_id_wins_over_an_untrusted_one():
    real = entry("FundsHeld", 0, "escrow_hold", event_id="e1")
    forged = entry("FundsHeld", -5, "client", event_id="e1", untrusted="not its producer")
    assert timeline([forged, real]) == [real]


def test_no_step_event_is_an_unknown_state():
    assert current_state([]).name == "unknown"
    assert current_state([entry("DisputeOpened", 0, "client")]).name == "unknown"


def test_an_entry_round_trips_through_the_table_item():
    original = PAID_OUT[3]
    plain = to_plain(original, timedelta(days=400))
    assert plain["pk"] == "pay-1"
    assert plain["sk"] == original.sort_key
    assert plain["expires_at"] == int((original.occurred_at + timedelta(days=400)).timestamp())
    assert from_plain(plain) == original
