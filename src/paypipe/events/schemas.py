"""JSON Schema files generated from the event models, one per event type and major version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paypipe.events.models import EVENT_TYPES, SCHEMA_MAJOR, Event, source_of

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_for(model: type[Event]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:paypipe:event:{model.EVENT_TYPE}:v{model.MAJOR}",
        "x-event-type": model.EVENT_TYPE,
        "x-schema-major": model.MAJOR,
        # Who may publish it: the envelope's producer and the EventBridge source it must come from.
        "x-producers": sorted(model.PRODUCERS),
        "x-sources": sorted(source_of(producer) for producer in model.PRODUCERS),
        **schema,
    }


def schema_path(root: Path, event_type: str, major: int = SCHEMA_MAJOR) -> Path:
    return root / event_type / f"v{major}.json"


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def generated_schemas(root: Path) -> dict[Path, str]:
    """Every schema file the models define (each type's current major), keyed by its path under ``root``.

    A retired major's file stays as it was published: consumers refuse it, and the compatibility
    gate keeps it from changing.
    """
    return {
        schema_path(root, name, model.MAJOR): render(schema_for(model))
        for name, model in sorted(EVENT_TYPES.items())
    }


def retired_schema_paths(root: Path) -> set[Path]:
    """The committed files of majors earlier than their type's current one."""
    return {
        path
        for name, model in EVENT_TYPES.items()
        for path in (root / name).glob("v*.json")
        if int(path.stem.removeprefix("v")) < model.MAJOR
    }
