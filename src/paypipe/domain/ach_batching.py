"""Which released payouts to send now, and how to cut them into ACH batches.

Each planned batch becomes one file: `build_file(batch.payouts, originator,
effective_date=batch.effective_date, created_at=now, same_day=batch.same_day)`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
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
    prenotes: tuple[Payable, ...] = ()  # payouts whose account the batch prenotes (zero-dollar entries)

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
    kind: WindowKind,
    effective_date: date,
    sec_code: SecCode,
    payouts: Sequence[Payable],
    cut_at: datetime,
    *,
    prenotes: Sequence[Payable] = (),
) -> str:
    """Unique per cut: a payout set aside in one cut and planned again later gets a new batch."""
    lines = [cut_at.astimezone(EASTERN).isoformat(), kind, effective_date.isoformat(), sec_code]
    lines += [f"{payout.payment_id}\t{payout.amount_cents}" for payout in payouts]
    lines += [f"prenote\t{payout.payment_id}" for payout in prenotes]
    return "achb_" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


# A batch member: the payout, and whether the batch carries it (False) or prenotes its account (True).
_Member = tuple[PendingPayout, bool]


def _chunks(members: Sequence[_Member], max_entries: int, max_total_cents: int) -> list[list[_Member]]:
    """Members in order, cut where a batch would pass its entry count or total (prenotes add nothing)."""
    chunks: list[list[_Member]] = []
    current: list[_Member] = []
    total = 0
    for member in members:
        item, prenote = member
        cents = 0 if prenote else item.payout.amount_cents
        if current and (len(current) == max_entries or total + cents > max_total_cents):
            chunks.append(current)
            current, total = [], 0
        current.append(member)
        total += cents
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
    prenotes: Sequence[PendingPayout] = (),
) -> list[PlannedBatch]:
    """Batches of the payouts due at `now`, grouped by window kind, effective date and SEC code.

    Payouts released after `now` are left out. Groups are split so that no batch has more
    than `max_entries_per_batch` entries or a total above `max_batch_total_cents` (the
    default fits a single offset entry), a same-day batch not above `max_same_day_batch_cents`
    either (the Same Day ACH entry limit, when an offset entry carries the batch total).
    Same-day windows are cut `submission_lead` before the Fed's deadlines. Output order is
    deterministic. Payouts no file could carry must be set aside before (``nacha.payout_problem``).

    Each of `prenotes` (a payout whose account is to be prenoted; the payout itself waits) goes
    in the batch its payout would go in, after the payouts: an entry that adds nothing to totals.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if max_entries_per_batch < 1:
        raise ValueError("max_entries_per_batch must be at least 1")
    payment_ids = [item.payout.payment_id for item in [*pending, *prenotes]]
    if len(set(payment_ids)) != len(payment_ids):
        raise ValueError("pending payouts and prenotes must have unique payment ids")
    groups = _groups(
        [*((item, False) for item in pending), *((item, True) for item in prenotes)],
        now,
        partial(window_at, same_day_deadlines=same_day_deadlines, lead=submission_lead),
        max_batch_total_cents,
    )
    plan: list[PlannedBatch] = []
    for (effective_date, kind, sec_code), members in sorted(groups.items(), key=lambda group: group[0]):
        ordered = sorted(members, key=lambda m: (m[1], m[0].released_at, m[0].payout.payment_id))
        total_limit = max_batch_total_cents
        if kind == "same_day" and max_same_day_batch_cents is not None:
            total_limit = min(total_limit, max_same_day_batch_cents)
        for chunk in _chunks(ordered, max_entries_per_batch, total_limit):
            payouts = tuple(item.payout for item, prenote in chunk if not prenote)
            prenoted = tuple(item.payout for item, prenote in chunk if prenote)
            plan.append(
                PlannedBatch(
                    batch_id=batch_id(kind, effective_date, sec_code, payouts, now, prenotes=prenoted),
                    kind=kind,
                    effective_date=effective_date,
                    sec_code=sec_code,
                    payouts=payouts,
                    prenotes=prenoted,
                )
            )
    return plan


def _groups(
    members: Sequence[_Member],
    now: datetime,
    window: Callable[[PendingPayout, datetime], AchWindow | None],
    max_batch_total_cents: int,
) -> dict[tuple[date, WindowKind, SecCode], list[_Member]]:
    """The members due at `now`, by the effective date, window kind and SEC code of their batch."""
    groups: dict[tuple[date, WindowKind, SecCode], list[_Member]] = {}
    for member in members:
        item = member[0]
        if item.released_at.utcoffset() is None:
            raise ValueError(f"payment {item.payout.payment_id!r}: released_at must be timezone-aware")
        if not 0 < item.payout.amount_cents <= max_batch_total_cents:
            raise ValueError(
                f"payment {item.payout.payment_id!r}: amount must be between 1 and {max_batch_total_cents}"
            )
        found = window(item, now)
        if found is None:
            continue
        key = (found.effective_date, found.kind, _SEC_BY_PAYEE[item.payout.payee_type])
        groups.setdefault(key, []).append(member)
    return groups
