"""Refuses schema changes that would break consumers of the same major version.

Within a major version the only allowed changes are new optional properties and annotations
(titles, descriptions, defaults, examples). Anything else needs a new major version file.
"""

from __future__ import annotations

from typing import Any

ANNOTATION_KEYWORDS = frozenset({"title", "description", "default", "examples", "$comment", "$id", "$schema"})
STRUCTURAL_KEYWORDS = frozenset(
    {"properties", "required", "$defs", "$ref", "items", "anyOf", "oneOf", "allOf"}
)


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    seen: set[str] = set()
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen or not isinstance(ref, str) or not ref.startswith("#/"):
            break
        seen.add(ref)
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable list of breaking differences; empty when ``new`` is compatible."""
    walk = _Walk(old, new)
    walk.compare(old, new, "$", depth=0)
    return walk.problems


class _Walk:
    def __init__(self, old_root: dict[str, Any], new_root: dict[str, Any]) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.problems: list[str] = []

    def compare(self, old: Any, new: Any, path: str, depth: int) -> None:
        if depth > 64:
            return
        old = _resolve(old, self.old_root)
        new = _resolve(new, self.new_root)
        out = self.problems
        if not isinstance(old, dict) or not isinstance(new, dict):
            if old != new:
                out.append(f"{path}: changed from {old!r} to {new!r}")
            return

        for key in sorted((old.keys() | new.keys()) - ANNOTATION_KEYWORDS - STRUCTURAL_KEYWORDS):
            if not key.startswith("x-") and old.get(key) != new.get(key):
                out.append(f"{path}: {key} changed from {old.get(key)!r} to {new.get(key)!r}")

        old_required = set(old.get("required", []))
        new_required = set(new.get("required", []))
        out.extend(f"{path}.{name}: became required" for name in sorted(new_required - old_required))
        out.extend(f"{path}.{name}: is no longer required" for name in sorted(old_required - new_required))

        old_props: dict[str, Any] = old.get("properties", {})
        new_props: dict[str, Any] = new.get("properties", {})
        for name in sorted(old_props):
            if name not in new_props:
                out.append(f"{path}.{name}: removed")
            else:
                self.compare(old_props[name], new_props[name], f"{path}.{name}", depth + 1)

        if "items" in old or "items" in new:
            self.compare(old.get("items"), new.get("items"), f"{path}[]", depth + 1)

        for combinator in ("anyOf", "oneOf", "allOf"):
            old_branches = old.get(combinator, [])
            new_branches = new.get(combinator, [])
            if len(old_branches) != len(new_branches):
                out.append(f"{path}: {combinator} has {len(new_branches)} branches, was {len(old_branches)}")
                continue
            for index, (before, after) in enumerate(zip(old_branches, new_branches, strict=True)):
                self.compare(before, after, f"{path}<{combinator}[{index}]>", depth + 1)
