"""``paypipe status PAYMENT_ID``: where a payment is, its timeline, and any DLQ message of it.

The timeline is the projector's read model (the Timeline table); the DLQs are peeked, never
drained. ``--stack`` reads the deployed stack (its outputs name the table and the DLQs);
``--embedded OUT`` reads what ``paypipe run`` wrote: ``timeline.jsonl`` (the table's items) and
``dlq.jsonl`` (a card-free view of every DLQ message). Nothing printed carries a card number, CVV
or account number: the timeline keeps key facts only, and a DLQ message is shown by its payment,
type, queue and reason, never its body.

Exit status: 0 the payment was found; 1 nothing is known of it; 2 bad usage; 3 the stack or the
files cannot be read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paypipe.adapters.timeline_store import from_plain
from paypipe.domain.timeline import State, TimelineEntry, current_state, describe_facts, timeline, timestamp
from paypipe.errors import EXIT_NOT_CLEAN, EXIT_OK, CommandError, EnvironmentProblem
from paypipe.ops.dlq import DlqMessage
from paypipe.redaction import redact_pan

TIMELINE_FILE = "timeline.jsonl"
DLQ_FILE = "dlq.jsonl"
_PAYMENT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")  # the contract's identifier grammar
MAX_MESSAGE_CHARS = 300


class UnknownPayment(CommandError):
    """No event and no DLQ message of the payment."""

    exit_code = EXIT_NOT_CLEAN


@dataclass(frozen=True)
class Parked:
    """A DLQ message of a payment, card-free: where it is and why, never its body."""

    payment_id: str | None
    queue: str
    reason: str
    message: str
    event_type: str
    event_id: str | None
    parked_at: str


def parked_of(queue: str, message: DlqMessage) -> Parked:
    return Parked(
        payment_id=message.payment_id,
        queue=queue,
        reason=message.reason,
        message=redact_pan(message.error_message)[:MAX_MESSAGE_CHARS],
        event_type=message.detail_type,
        event_id=message.event_id,
        parked_at=timestamp(message.parked_at),
    )


@dataclass(frozen=True)
class Status:
    payment_id: str
    entries: Sequence[TimelineEntry] = ()
    parked: Sequence[Parked] = field(default_factory=tuple)

    @property
    def found(self) -> bool:
        return bool(self.entries or self.parked)

    @property
    def state(self) -> State:
        return current_state(self.entries)

    def as_dict(self) -> dict[str, Any]:
        state = self.state
        return {
            "payment_id": self.payment_id,
            "state": state.name,
            "terminal": state.terminal,
            "meaning": state.meaning,
            "timeline": [entry.as_dict() for entry in timeline(self.entries)],
            "dlq": [asdict(parked) for parked in self.parked],
        }


def render(status: Status) -> str:
    """The status as lines of text: the state, each event, each DLQ message."""
    state = status.state
    kind = "terminal" if state.terminal else "not terminal"
    lines = [f"payment {status.payment_id}: {state.name} ({kind}) - {state.meaning}"]
    for parked in status.parked:
        lines.append(
            f"  parked in {parked.queue}: {parked.reason} ({parked.event_type}, since {parked.parked_at})"
            + (f": {parked.message}" if parked.message and parked.message != parked.reason else "")
        )
    ordered = timeline(status.entries)
    lines.append(f"timeline ({len(ordered)} events):")
    for entry in ordered:
        mark = f"  UNTRUSTED: {entry.untrusted}" if entry.untrusted else ""
        facts = describe_facts(entry.facts)
        line = f"  {timestamp(entry.occurred_at)}  {entry.step:<12} {entry.event_type:<22} {facts}{mark}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def status_of(payment_id: str, items: Iterable[Mapping[str, Any]], parked: Iterable[Parked]) -> Status:
    """The payment's status from Timeline items (plain JSON values) and DLQ messages."""
    entries = [from_plain(item) for item in items if item.get("pk") == payment_id]
    return Status(payment_id, entries, tuple(p for p in parked if p.payment_id == payment_id))


# -- reading -------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise EnvironmentProblem(
            f"cannot read {path}: {error.strerror or error}; run paypipe run --out {path.parent} first"
        ) from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise EnvironmentProblem(f"cannot read {path}: line {number} is not JSON") from None
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_embedded(out_dir: Path, payment_id: str) -> Status:
    items = read_jsonl(out_dir / TIMELINE_FILE)
    parked = [Parked(**_parked_fields(row)) for row in read_jsonl(out_dir / DLQ_FILE)]
    return status_of(payment_id, items, parked)


def _parked_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    names = Parked.__dataclass_fields__
    return {
        name: row.get(name) if name in ("payment_id", "event_id") else str(row.get(name, ""))
        for name in names
    }


def run(args: argparse.Namespace) -> int:
    if not _PAYMENT_ID.match(args.payment_id):
        raise CommandError(f"{args.payment_id[:64]!r} is not a payment id (letters, digits, _ . : -)")
    if args.embedded is not None:
        status, where = read_embedded(args.embedded, args.payment_id), str(args.embedded)
    else:
        from paypipe.ops.status_aws import read_stack  # boto3 only for a stack

        status, where = read_stack(args, args.payment_id), f"stack {args.stack}"
    if not status.found:
        raise UnknownPayment(f"no event and no DLQ message of payment {args.payment_id} in {where}")
    text = json.dumps(status.as_dict(), indent=2, sort_keys=True) if args.json else render(status)
    sys.stdout.write(text + "\n")
    return EXIT_OK
