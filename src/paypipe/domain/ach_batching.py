"""Which released payouts to send now, and how to cut them into ACH batches.

Each planned batch becomes one file: `build_file(batch.payouts, originator,
effective_date=batch.effective_date, created_at=now, same_day=batch.same_day)`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import partial

from paypipe.domain.ach_calendar import (
    EASTERN,
    SAME_DAY_DEADLINES,
    AchWindow,
    WindowKind,
    next_window,
)
from paypipe.domain.nacha import MAX_ENTRY_AMOUNT_CENTS, AccountType, Payable, PayeeType, Payout, SecCode

_SEC_BY_PAYEE: dict[str, SecCode] = {"individual": "PPD", "business": "CCD"}


@dataclass(frozen=True)
class PayoutRecord:
    """A released payout as it waits for a file: the payee account by its vault token, never its number."""

    payment_id: str
    amount_cents: int
    payee_name: str
    routing_number: str
    account_token: str
    account_last4: str
    account_type: AccountType
    payee_type: PayeeType
    tenant_id: str = "default"
    provider_id: str = ""
    account_fingerprint: str = ""  # the vault's keyed fingerprint of routing and account number

    def with_account(self, account_number: str) -> Payout:
        """The payout a file is written from, once the ACH cut detokenized the account (in memory)."""
        return Payout(
            self.payment_id,
            self.amount_cents,
            self.payee_name,
            self.routing_number,
            account_number,
            self.account_type,
            self.payee_type,
        )


@dataclass(frozen=True)
class PendingPayout:
    payout: Payable
    released_at: datetime  # tz-aware


@dataclass(frozen=True)
class PlannedBatch:
    batch_id: str  # derived from the cut time and contents: the same plan always yields the same id
    kind: WindowKind
    effective_date: date
    sec_code: SecCode
    payouts: tuple[Payable, ...]  # ordered by release time, then payment id

    @property
    def same_day(self) -> bool:
        return self.kind == "same_day"

    @property
    def total_cents(self) -> int:
        return sum(payout.amount_cents for payout in self.payouts)


def is_missed(window: AchWindow, now: datetime) -> bool:
    """True once the Fed's deadline for the window has passed: a file cut later cannot make it
    (a same-day payout cut after the day's last same-day deadline goes in a standard file)."""
    return now >= window.deadline


def is_due(window: AchWindow, now: datetime) -> bool:
    """Same-day entries are due once their window has closed (cutoff reached or passed);
    standard entries as soon as they are released."""
    return window.kind == "standard" or now >= window.cutoff


def window_at(
    pending: PendingPayout,
    now: datetime,
    *,
    same_day_deadlines: Sequence[time] = SAME_DAY_DEADLINES,
    lead: timedelta = timedelta(0),
) -> AchWindow | None:
    """The window a released payout is sent in at `now`, or None if it is not due yet.

    That is the window its release time gives or, if that window was missed (the planner
    did not run before its deadline), the one open at `now`.
    """
    window_for = partial(
        next_window,
        amount_cents=pending.payout.amount_cents,
        same_day_deadlines=same_day_deadlines,
        lead=lead,
    )
    window = window_for(pending.released_at)
    if pending.released_at > now or not is_due(window, now):
        return None
    if is_missed(window, now):
        return window_for(now)
    return window


def batch_id(
    kind: WindowKind, effective_date: date, sec_code: SecCode, payouts: Sequence[Payable], cut_at: datetime
) -> str:
    """Unique per cut: a payout set aside in one cut and planned again later gets a new batch."""
    lines = [cut_at.astimezone(EASTERN).isoformat(), kind, effective_date.isoformat(), sec_code]
    lines += [f"{payout.payment_id}\t{payout.amount_cents}" for payout in payouts]
    return "achb_" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


def _chunks(payouts: Sequence[Payable], max_entries: int, max_total_cents: int) -> list[list[Payable]]:
    chunks: list[list[Payable]] = []
    current: list[Payable] = []
    total = 0
    for payout in payouts:
        if current and (len(current) == max_entries or total + payout.amount_cents > max_total_cents):
            chunks.append(current)
            current, total = [], 0
        current.append(payout)
        total += payout.amount_cents
    if current:
        chunks.append(current)
    return chunks


def plan_files(
    pending: Sequence[PendingPayout],
    now: datetime,
    *,
    max_entries_per_batch: int = 2500,
    max_batch_total_cents: int = MAX_ENTRY_AMOUNT_CENTS,
    max_same_day_batch_cents: int | None = None,
    same_day_deadlines: Sequence[time] = SAME_DAY_DEADLINES,
    submission_lead: timedelta = timedelta(0),
) -> list[PlannedBatch]:
    """Batches of the payouts due at `now`, grouped by window kind, effective date and SEC code.

    Payouts released after `now` are left out. Groups are split so that no batch has more
    than `max_entries_per_batch` payouts or a total above `max_batch_total_cents` (the
    default fits a single offset entry), a same-day batch not above `max_same_day_batch_cents`
    either (the Same Day ACH entry limit, when an offset entry carries the batch total).
    Same-day windows are cut `submission_lead` before the Fed's deadlines. Output order is
    deterministic. Payouts no file could carry must be set aside before (``nacha.payout_problem``).
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if max_entries_per_batch < 1:
        raise ValueError("max_entries_per_batch must be at least 1")
    payment_ids = [item.payout.payment_id for item in pending]
    if len(set(payment_ids)) != len(payment_ids):
        raise ValueError("pending payouts must have unique payment ids")

    groups: dict[tuple[date, WindowKind, SecCode], list[PendingPayout]] = {}
    for item in pending:
        if item.released_at.utcoffset() is None:
            raise ValueError(f"payment {item.payout.payment_id!r}: released_at must be timezone-aware")
        if not 0 < item.payout.amount_cents <= max_batch_total_cents:
            raise ValueError(
                f"payment {item.payout.payment_id!r}: amount must be between 1 and {max_batch_total_cents}"
            )
        window = window_at(item, now, same_day_deadlines=same_day_deadlines, lead=submission_lead)
        if window is None:
            continue
        key = (window.effective_date, window.kind, _SEC_BY_PAYEE[item.payout.payee_type])
        groups.setdefault(key, []).append(item)

    plan: list[PlannedBatch] = []
    for (effective_date, kind, sec_code), items in sorted(groups.items(), key=lambda group: group[0]):
        ordered = [item.payout for item in sorted(items, key=lambda i: (i.released_at, i.payout.payment_id))]
        total_limit = max_batch_total_cents
        if kind == "same_day" and max_same_day_batch_cents is not None:
            total_limit = min(total_limit, max_same_day_batch_cents)
        for chunk in _chunks(ordered, max_entries_per_batch, total_limit):
            plan.append(
                PlannedBatch(
                    batch_id=batch_id(kind, effective_date, sec_code, chunk, now),
                    kind=kind,
                    effective_date=effective_date,
                    sec_code=sec_code,
                    payouts=tuple(chunk),
                )
            )
    return plan
