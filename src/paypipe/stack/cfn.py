"""CloudFormation short-form intrinsics (``!Ref``, ``!GetAtt``, ``!Sub``) and the YAML that carries them."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

import yaml

_TAGS = frozenset({"!Ref", "!GetAtt", "!Sub"})


@dataclass(frozen=True)
class Intrinsic:
    tag: str
    value: str


def ref(name: str) -> Intrinsic:
    return Intrinsic("!Ref", name)


def getatt(target: str) -> Intrinsic:
    """``getatt("Queue.Arn")``: an attribute of a resource."""
    return Intrinsic("!GetAtt", target)


def sub(text: str) -> Intrinsic:
    return Intrinsic("!Sub", text)


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # list items indented under their key

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def choose_scalar_style(self) -> str:
        """Intrinsics plain (``!Ref Name``) where YAML allows it; PyYAML would quote any tagged scalar."""
        if isinstance(self.event, yaml.ScalarEvent) and self.event.tag in _TAGS:
            self.analysis = self.analysis or self.analyze_scalar(self.event.value)
            if self.analysis.allow_block_plain and not self.analysis.multiline and not self.flow_level:
                return ""
        return super().choose_scalar_style()


_Dumper.add_representer(Intrinsic, lambda dumper, fn: dumper.represent_scalar(fn.tag, fn.value))


def to_yaml(document: dict[str, Any], indent: int = 0) -> str:
    """Block-style YAML in the document's key order, indented by ``indent`` spaces."""
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return textwrap.indent(text, " " * indent)
