"""Prenotes: a zero-dollar entry (23 checking, 33 savings) that checks a payee account with its bank
before the first payout to it.

Pure: the payouts due, what is known of their accounts and the day in; a decision out.

The Nacha rules let an originator that prenoted an account send live entries to it from the third
banking day after the prenote's settlement date (``PRENOTE_WAIT_BANKING_DAYS``), provided no return
or notification of change answered the prenote by then. So a payout to an account never prenoted nor
paid waits: its account is prenoted in the next file, and its payouts go out once the waiting period
is over. A returned prenote makes the account unusable (its payouts wait for new details, as after a
return that stops credits); a notification of change corrects it, and details the bank itself gave
need no prenote of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from paypipe.domain.ach_batching import PendingPayout
from paypipe.domain.ach_calendar import banking_days_after, settlement_day

PRENOTE_WAIT_BANKING_DAYS = 3


@dataclass(frozen=True)
class FiledPrenote:
    """A prenote to an account, as its file was uploaded."""

    trace_number: str
    effective_date: date


@dataclass(frozen=True)
class AccountHistory:
    """What decides whether payouts to an account wait for a prenote."""

    prenote: FiledPrenote | None = None
    verified: bool = False  # paid before, or its details came from the bank (a notification of change)
    prenote_in_flight: bool = False  # in a batch whose file is not uploaded yet


@dataclass(frozen=True)
class PrenoteGate:
    live: tuple[PendingPayout, ...]  # may be filed now
    held: tuple[PendingPayout, ...]  # wait for their account's prenote (filed now or before)
    prenote_for: tuple[PendingPayout, ...]  # per account to prenote now: its first held payout


def live_entries_from(prenote: FiledPrenote) -> date:
    """The first day live entries may follow the prenote: the third banking day after it settles."""
    return banking_days_after(settlement_day(prenote.effective_date), PRENOTE_WAIT_BANKING_DAYS)


def may_pay(history: AccountHistory, today: date) -> bool:
    """Whether a live entry to the account may be filed on ``today`` (Eastern)."""
    if history.verified:
        return True
    return history.prenote is not None and today >= live_entries_from(history.prenote)


def gate(
    pending: Sequence[PendingPayout], accounts: Mapping[str, AccountHistory], today: date
) -> PrenoteGate:
    """Which payouts go out on ``today``, which wait for a prenote, and which accounts to prenote now.

    ``accounts`` holds what is known of each account by fingerprint (absent: nothing). A payout
    without a fingerprint cannot be told apart from others and goes out as before. Each account
    needing a prenote gets one, for its first payout by release time (then payment id).
    """
    live: list[PendingPayout] = []
    held: list[PendingPayout] = []
    first: dict[str, PendingPayout] = {}
    for item in pending:
        fingerprint = str(getattr(item.payout, "account_fingerprint", ""))
        history = accounts.get(fingerprint, AccountHistory())
        if not fingerprint or may_pay(history, today):
            live.append(item)
            continue
        held.append(item)
        if history.prenote is None and not history.prenote_in_flight:
            known = first.get(fingerprint)
            if known is None or _order(item) < _order(known):
                first[fingerprint] = item
    return PrenoteGate(tuple(live), tuple(held), tuple(first[fp] for fp in sorted(first)))


def _order(item: PendingPayout) -> tuple[datetime, str]:
    return item.released_at, item.payout.payment_id
