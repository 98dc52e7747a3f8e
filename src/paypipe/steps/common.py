"""Wiring shared by several steps: the ledger port, the acquirer contract's fees and
scheduled-invocation time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from paypipe.domain import ledger
from paypipe.domain.settlement import FeeSchedule
from paypipe.runtime import clock
from paypipe.runtime.aws import client, int_setting, setting


class LedgerPort(Protocol):
    def place_hold(self, request: ledger.HoldRequest) -> ledger.Outcome: ...
    def get_hold(self, payment_id: str) -> ledger.Hold | None: ...
    def release(self, payment_id: str, *, resolution_id: str, at: datetime) -> ledger.Outcome: ...
    def refund(self, payment_id: str, *, resolution_id: str, at: datetime) -> ledger.Outcome: ...
    def open_dispute(
        self,
        payment_id: str,
        *,
        dispute_id: str,
        at: datetime,
        window: timedelta | None = None,
        network: bool = False,
        network_fee_cents: int = 0,
    ) -> ledger.Outcome: ...
    def resolve_dispute(
        self,
        payment_id: str,
        *,
        dispute_id: str,
        outcome: ledger.DisputeOutcome,
        at: datetime,
        network: bool = False,
    ) -> ledger.Outcome: ...
    def return_to_card(
        self, payment_id: str, *, refund_id: str, amount_cents: int, at: datetime
    ) -> ledger.Outcome: ...
    def mark_dispute_aged(self, payment_id: str, *, dispute_id: str, at: datetime) -> ledger.Outcome: ...
    def expire(self, payment_id: str, *, as_of: datetime) -> ledger.Outcome: ...
    def due_holds(self, as_of: datetime, limit: int) -> list[str]: ...
    def aged_disputes(self, opened_before: datetime, limit: int) -> list[str]: ...
    def set_aside(self, payment_id: str, *, reason: str) -> None: ...
    def record_payout(
        self,
        payment_id: str,
        *,
        amount_cents: int,
        payout_ref: str,
        at: datetime,
        max_entry_cents: int | None = None,
    ) -> ledger.Outcome: ...
    def return_payout(self, command: ledger.PayoutReturn) -> ledger.Outcome: ...


def ledger_from_env() -> LedgerPort:
    from paypipe.adapters.ledger_store import LedgerStore

    store: LedgerPort = LedgerStore(setting("LEDGER_TABLE"), client("dynamodb"))
    return store


def scheduled_time(event: Mapping[str, Any]) -> datetime:
    """The schedule's own time (so a delayed or replayed invocation acts as of its slot)."""
    raw = event.get("time")
    if isinstance(raw, str):
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
    return clock.now()


def contracted_fees() -> FeeSchedule:
    """The acquirer contract's fees, from the stack's parameters (the simulator's by default)."""
    default = FeeSchedule()
    return FeeSchedule(
        rate_bps=int_setting("CARD_FEE_RATE_BPS", default.rate_bps),
        fixed_minor=int_setting("CARD_FEE_FIXED_MINOR", default.fixed_minor),
        chargeback_minor=int_setting("CHARGEBACK_FEE_MINOR", default.chargeback_minor),
    )
