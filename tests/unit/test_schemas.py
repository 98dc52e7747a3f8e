import copy
import json
from pathlib import Path

import pytest

from paypipe.events import models as ev
from paypipe.events.compat import breaking_changes
from paypipe.events.schemas import generated_schemas, retired_schema_paths

SCHEMA_ROOT = Path(__file__).resolve().parents[2] / "events" / "schemas"


def test_schema_files_match_the_models():
    generated = generated_schemas(SCHEMA_ROOT)
    committed = {path: path.read_text() for path in SCHEMA_ROOT.glob("*/v*.json")}
    assert set(committed) == set(generated) | retired_schema_paths(SCHEMA_ROOT), "run scripts/gen_schemas.py"
    drifted = [path.parent.name for path, text in generated.items() if committed[path] != text]
    assert drifted == [], f"schemas drifted from models: {drifted}; run scripts/gen_schemas.py"


def test_every_event_type_has_a_schema_of_its_major_with_the_envelope():
    for name, model in ev.EVENT_TYPES.items():
        schema = json.loads((SCHEMA_ROOT / name / f"v{model.MAJOR}.json").read_text())
        for field in (
            "event_id",
            "event_type",
            "schema_version",
            "payment_id",
            "correlation_id",
            "causation_id",
            "occurred_at",
            "data",
        ):
            assert field in schema["properties"], (name, field)
        assert schema["properties"]["event_type"]["const"] == name


def _schema(name: str) -> dict:
    return json.loads((SCHEMA_ROOT / name / f"v{ev.EVENT_TYPES[name].MAJOR}.json").read_text())


def test_identical_schema_is_compatible():
    schema = _schema("PaymentRequested")
    assert breaking_changes(schema, copy.deepcopy(schema)) == []


def test_new_optional_field_and_description_are_compatible():
    old = _schema("FundsHeld")
    new = copy.deepcopy(old)
    new["$defs"]["FundsHeldData"]["properties"]["note"] = {"type": "string", "default": None}
    new["$defs"]["FundsHeldData"]["description"] = "changed words"
    assert breaking_changes(old, new) == []


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda s: s["$defs"]["FundsHeldData"]["properties"].pop("provider_id"), "provider_id: removed"),
        (
            lambda s: (
                s["$defs"]["FundsHeldData"]["required"].append("note")
                or s["$defs"]["FundsHeldData"]["properties"].__setitem__("note", {"type": "string"})
            ),
            "note: became required",
        ),
        (
            lambda s: s["$defs"]["HoldRef"]["properties"]["amount_cents"].__setitem__("type", "string"),
            "type changed",
        ),
        (lambda s: s["$defs"]["AccountType"].__setitem__("enum", ["checking"]), "enum changed"),
        (lambda s: s["$defs"]["FundsHeldData"]["required"].remove("payee"), "payee: is no longer required"),
    ],
    ids=["removed-field", "new-required-field", "type-change", "enum-narrowed", "field-made-optional"],
)
def test_breaking_changes_are_refused(mutate, expected):
    old = _schema("FundsHeld")
    new = copy.deepcopy(old)
    mutate(new)
    problems = breaking_changes(old, new)
    assert any(expected in problem for problem in problems), problems


def test_unknown_and_retired_major_versions_are_refused():
    with pytest.raises(ev.UnknownEventError, match=r"not supported \(major 1 only"):
        ev.model_for("HoldFrozen", "2.0")
    with pytest.raises(ev.UnknownEventError, match=r"retired \(major 2 only"):
        ev.model_for("FundsHeld", "1.3")
    assert ev.model_for("FundsHeld", "2.0") is ev.FundsHeld
    with pytest.raises(ev.UnknownEventError, match="unknown event type"):
        ev.model_for("PaymentTeleported", "1.0")


def test_event_ids_are_stable_for_the_same_cause():
    cause = ev.ServiceCompleted.create(
        payment_id="p1", data=ev.ServiceCompletedData(completed_at="2026-01-01T00:00:00Z"), producer="client"
    )
    data = ev.HoldFrozenData(hold_id="h", dispute_id="d")
    first = ev.HoldFrozen.create(payment_id="p1", data=data, producer="release", cause=cause)
    again = ev.HoldFrozen.create(payment_id="p1", data=data, producer="release", cause=cause)
    assert first.event_id == again.event_id
    assert first.correlation_id == cause.correlation_id and first.causation_id == cause.event_id


def _property_names(schema: object) -> set[str]:
    """Every property name anywhere in a schema ($defs included)."""
    if isinstance(schema, dict):
        names = set(schema.get("properties", {})) if isinstance(schema.get("properties"), dict) else set()
        return names.union(*(_property_names(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_property_names(item) for item in schema))
    return set()


def test_no_contract_past_the_request_has_a_cvv_and_none_past_validate_an_account_or_card_number():
    for name, model in ev.EVENT_TYPES.items():
        names = _property_names(_schema(name))
        if name != "PaymentRequested":
            assert "cvv" not in names, name
        if not model.CARDHOLDER_DATA:
            assert not {"account_number", "number"} & names, name
    for name in ("PaymentTokenized", "PaymentScored", "FundsHeld", "FundsReleased"):
        payee = _schema(name)["$defs"]["PayeeRef"]
        assert {"account_token", "account_last4", "account_fingerprint"} <= set(payee["required"]), name


def test_the_published_majors_before_each_current_one_stay_committed_and_are_refused():
    for name, model in ev.EVENT_TYPES.items():
        for major in range(1, model.MAJOR):
            assert (SCHEMA_ROOT / name / f"v{major}.json").exists(), (name, major)
            with pytest.raises(ev.UnknownEventError, match="retired"):
                ev.model_for(name, f"{major}.0")
    assert {path.parent.name for path in retired_schema_paths(SCHEMA_ROOT)} == {
        "PaymentValidated",
        "PaymentTokenized",
        "PaymentScored",
        "FundsHeld",
        "FundsReleased",
    }


def test_a_v2_payee_without_its_token_or_with_only_a_number_is_refused():
    payee = {
        "name": "Jo",
        "routing_number": "021000021",
        "account_number": "0205030969",
        "account_type": "checking",
        "payee_type": "individual",
    }
    with pytest.raises(ValueError, match="account_token"):
        ev.PayeeRef.model_validate(payee)
    with pytest.raises(ValueError, match="account_token"):
        ev.PayeeRef.model_validate(
            {**payee, "account_token": "0205030969", "account_last4": "0969", "account_fingerprint": "afp_x"}
        )
