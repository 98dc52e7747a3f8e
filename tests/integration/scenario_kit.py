"""Builds scenario files (JSON lines, as users write them) and plays them through the runner."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from paypipe.embedded.playback import play_file
from paypipe.embedded.scenario import card_number, payment_requested
from paypipe.events import models as ev

DAY = datetime(2026, 11, 2, 14, tzinfo=UTC)  # a Monday, 09:00 in New York
VISA = "4111111111111111"
CARDS = ("4012888888881881", "5555555555554444", "5105105105105100", "4000056655665556", "378282246310005")


def request_distinct(pipeline: Any, count: int, prefix: str, *, own_accounts: bool = False) -> list[str]:
    """Play and drain ``count`` payments with distinct customers, cards and IPs (ids
    ``<prefix>-<index>``, ``own_accounts``: each payee with an account of its own); their ids."""
    rng = random.Random(count)
    now = pipeline.clock.now()
    requests = [
        payment_requested(
            f"{prefix}-{index:06d}",
            customer_id=f"{prefix}cust-{index}",
            amount_cents=10_000 + index,
            pan=card_number(rng),
            occurred_at=now + timedelta(seconds=index),
            ip_address=f"192.0.2.{index + 1}",
            **({"account_number": f"98765{index:04d}"} if own_accounts else {}),
        )
        for index in range(count)
    ]
    assert pipeline.play(requests).ok
    pipeline.drain()
    return [request.payment_id for request in requests]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def set_path(document: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def detail(event: ev.Event, changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    document = ev.to_detail(event)
    document["occurred_at"] = iso(event.occurred_at)
    for dotted, value in (changes or {}).items():
        set_path(document, dotted, value)
    return document


@dataclass
class Script:
    """A scenario being written: ``publish`` lines in time order, then ``play`` ends it."""

    parameters: dict[str, Any] = field(default_factory=dict)
    lines: list[dict[str, Any]] = field(default_factory=list)

    def publish(
        self,
        at: datetime,
        detail_type: str,
        document: dict[str, Any],
        source: str = "paypipe.client",
        **entry: Any,
    ) -> dict[str, Any]:
        publish = {"Source": source, "DetailType": detail_type, "Detail": document, **entry}
        self.lines.append({"at": iso(at), "publish": publish})
        return document

    def request(
        self,
        at: datetime,
        payment_id: str,
        *,
        occurred_at: datetime | None = None,
        pan: str = VISA,
        customer: str = "cust-1",
        provider: str = "prov-1",
        amount: int = 12_500,
        ip: str = "198.51.100.7",
        exp: tuple[int, int] = (12, 2030),
        key: str | None = None,
        source: str = "paypipe.client",
        **changes: Any,
    ) -> dict[str, Any]:
        event = payment_requested(
            payment_id,
            customer_id=customer,
            amount_cents=amount,
            pan=pan,
            occurred_at=occurred_at or at,
            exp=exp,
            ip_address=ip,
            provider_id=provider,
        )
        if key is not None:
            event = event.model_copy(update={"event_id": f"req-{key}"})
        return self.publish(at, "PaymentRequested", detail(event, _dotted(changes)), source)

    def command(
        self,
        at: datetime,
        model: type[ev.Event],
        payment_id: str,
        data: ev.Payload,
        *,
        occurred_at: datetime | None = None,
        key: str = "",
        source: str = "paypipe.client",
        **changes: Any,
    ) -> dict[str, Any]:
        event = model.create(
            payment_id=payment_id,
            data=data,
            producer="client",
            occurred_at=occurred_at or at,
            dedup_key=f"{model.EVENT_TYPE}:{key or iso(at)}",
        )
        return self.publish(at, model.EVENT_TYPE, detail(event, _dotted(changes)), source)

    def complete(self, at: datetime, payment_id: str, **options: Any) -> dict[str, Any]:
        data = ev.ServiceCompletedData(completed_at=options.pop("completed_at", at))
        return self.command(at, ev.ServiceCompleted, payment_id, data, **options)

    def open_dispute(
        self, at: datetime, payment_id: str, dispute_id: str = "d1", **options: Any
    ) -> dict[str, Any]:
        data = ev.DisputeOpenedData(dispute_id=dispute_id, reason="not as described")
        return self.command(at, ev.DisputeOpened, payment_id, data, key=f"{dispute_id}:{iso(at)}", **options)

    def resolve(
        self, at: datetime, payment_id: str, dispute_id: str = "d1", outcome: str = "refund", **options: Any
    ) -> dict[str, Any]:
        data = ev.DisputeResolvedData(dispute_id=dispute_id, outcome=ev.DisputeOutcome(outcome))
        return self.command(
            at, ev.DisputeResolved, payment_id, data, key=f"{dispute_id}:{iso(at)}", **options
        )

    def bystander(self, at: datetime = DAY, payment_id: str = "by-1", provider: str = "prov-by") -> None:
        """A payment that has nothing to do with the attack: it must still pay out."""
        self.request(
            at, payment_id, customer=f"cust-{payment_id}", provider=provider, pan=CARDS[0], amount=4_200
        )
        self.complete(at + timedelta(minutes=30), payment_id)

    def text(self, end: datetime) -> str:
        header = [{"parameters": self.parameters}] if self.parameters else []
        items = [*header, *sorted(self.lines, key=lambda line: line["at"]), {"at": iso(end), "end": True}]
        return "\n".join(json.dumps(item) for item in items) + "\n"

    def play(self, directory: Path, end: datetime, name: str = "scenario") -> Report:
        path = directory / f"{name}.jsonl"
        path.write_text(self.text(end))
        return Report(play_file(path, directory / "out"))


def _dotted(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword changes with ``__`` for dots: ``data__device__ip_address`` -> ``data.device.ip_address``."""
    return {name.replace("__", "."): value for name, value in changes.items()}


@dataclass(frozen=True)
class Report:
    raw: dict[str, Any]

    def state(self, payment_id: str) -> str:
        return str(self.raw["payments"][payment_id]["state"])

    def events(self, payment_id: str) -> list[str]:
        return list(self.raw["payments"][payment_id].get("events", []))

    def refused(self, payment_id: str) -> list[str]:
        return list(self.raw["payments"][payment_id].get("refused", []))

    def rejected(self, payment_id: str) -> list[str]:
        return list(self.raw["payments"][payment_id].get("rejected", []))

    @property
    def codes(self) -> set[str]:
        return {violation["code"] for violation in self.raw["violations"]}

    def entries(self, payment_id: str) -> list[dict[str, Any]]:
        return [entry for entry in self.raw["ach_entries"] if entry["payment_id"] == payment_id]

    def paid(self, payment_id: str) -> int:
        return sum(entry["amount_cents"] for entry in self.entries(payment_id))

    def dlq_reasons(self, payment_id: str) -> list[str]:
        return [record["reason"] for record in self.raw["dlq"] if record["payment_id"] == payment_id]

    def assert_bystanders_paid(self, *payment_ids: str) -> None:
        for payment_id in payment_ids or ("by-1",):
            assert self.state(payment_id) == "PayoutBatched", (
                payment_id,
                self.raw["payments"].get(payment_id),
            )
            assert len(self.entries(payment_id)) == 1

    def assert_clean(self) -> None:
        assert self.raw["ok"], self.raw["violations"]
        for currency, ledger in self.raw["ledger"].items():
            assert ledger["balanced"], (currency, ledger)
