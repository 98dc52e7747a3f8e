import copy
import json
from pathlib import Path

import pytest

from paypipe.events import models as ev
from paypipe.events.compat import breaking_changes
from paypipe.events.schemas import generated_schemas

SCHEMA_ROOT = Path(__file__).resolve().parents[2] / "events" / "schemas"


def test_schema_files_match_the_models():
    generated = generated_schemas(SCHEMA_ROOT)
    committed = {path: path.read_text() for path in SCHEMA_ROOT.glob("*/v*.json")}
    assert set(committed) == set(generated), "run scripts/gen_schemas.py"
    drifted = [path.parent.name for path, text in generated.items() if committed[path] != text]
    assert drifted == [], f"schemas drifted from models: {drifted}; run scripts/gen_schemas.py"


def test_every_event_type_has_a_v1_schema_with_the_envelope():
    for name in ev.EVENT_TYPES:
        schema = json.loads((SCHEMA_ROOT / name / "v1.json").read_text())
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
    return json.loads((SCHEMA_ROOT / name / "v1.json").read_text())


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


def test_unknown_major_version_is_refused():
    with pytest.raises(ev.UnknownEventError, match="major 1 only"):
        ev.model_for("FundsHeld", "2.0")
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
