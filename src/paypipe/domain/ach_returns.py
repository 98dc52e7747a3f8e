"""What the originator does with the bank's answers to its payouts: returns and notifications of change.

Pure: the entry as filed, the bank's entry and the receipt date in; a decision out.

- A return is booked when it matches the entry as filed (amount) and arrives in time: within
  ``RETURN_WINDOW_BANKING_DAYS`` banking days after the entry's settlement date, and not before it.
  Otherwise it is parked and answered with a dishonored return (R69 field errors, R68 untimely),
  which the rules allow for an untimely or wrong return.
- After a return the payout is sent again only where the rules let an originator reinitiate
  without corrective action (R01, R09: at most ``MAX_RESENDS`` times); every other code waits for
  corrected account details. A code that says the account takes no credits (``stops_credits``)
  marks the account itself unusable, so the provider's other payouts to it wait too.
- A prenote (``FiledEntry.prenote``) moved no money: a return of it is checked like any other, but
  whatever its code the account takes no payouts until its details change; a notification of change
  to it corrects the account like one to a payout.
- A notification of change is applied before the next payout to the account and within
  ``NOC_APPLY_BANKING_DAYS`` banking days; one whose corrected data is not valid is refused
  (refused COR codes C65 / C69, prepared for the bank).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from paypipe.domain.ach_calendar import banking_days_after, settlement_day
from paypipe.domain.nacha import (
    CHANGE_REASONS,
    RETURN_REASONS,
    decode_corrected_data,
    is_valid_routing_number,
)
from paypipe.domain.nacha.ach_codes import ReturnKind
from paypipe.domain.nacha.model import AccountType

RETURN_WINDOW_BANKING_DAYS = 2
NOC_APPLY_BANKING_DAYS = 6
RESEND_CODES = frozenset({"R01", "R09"})
MAX_RESENDS = 2
# Change codes whose corrected data the pipeline applies to a payee account.
APPLIED_CHANGE_CODES = frozenset({"C01", "C02", "C03", "C05", "C06", "C07"})
_ACCOUNT_NUMBER = re.compile(r"^[A-Za-z0-9]{1,17}$")
# A corrected transaction code: a credit's, or a prenote's (a notification of change to a prenote).
_ACCOUNT_TYPES: dict[str, AccountType] = {
    "22": "checking",
    "32": "savings",
    "23": "checking",
    "33": "savings",
}

Answer = Literal["none", "dishonored_return", "refused_correction"]
NextStep = Literal["resend", "await_account_update"]


@dataclass(frozen=True)
class FiledEntry:
    """A payout or prenote entry as the pipeline filed it (looked up by its trace number)."""

    trace_number: str
    payment_id: str
    batch_id: str
    provider_id: str
    account_fingerprint: str
    amount_cents: int
    effective_date: date
    prenote: bool = False  # a zero-dollar prenote to the account (``payment_id``: the payout it is for)


@dataclass(frozen=True)
class Parked:
    reason: str
    detail: str
    answer: Answer = "none"
    answer_code: str | None = None  # the dishonored return or refused COR code to answer with


@dataclass(frozen=True)
class AccountCorrection:
    """The corrected details of a notification of change (None: unchanged)."""

    change_code: str
    routing_number: str | None = None
    account_number: str | None = None  # in memory only: the vault keeps it
    account_type: AccountType | None = None


def return_problem(filed: FiledEntry, code: str, amount_cents: int, received_on: date) -> Parked | None:
    """Why a return of ``filed`` is not booked (parked, with the answer the rules allow), or None."""
    reason = RETURN_REASONS.get(code)
    if reason is None:
        return Parked(
            "UNKNOWN_RETURN_CODE", f"{code} is not a return reason code", "dishonored_return", "R69"
        )
    if reason.kind is not ReturnKind.RETURN:
        return Parked("UNEXPECTED_DISHONOR", f"{code} ({reason.title}) answers no return the pipeline made")
    if amount_cents != filed.amount_cents:
        detail = f"returned {amount_cents} cents of an entry of {filed.amount_cents}"
        return Parked("AMOUNT_MISMATCH", detail, "dishonored_return", "R69")
    settled = settlement_day(filed.effective_date)
    if received_on < settled:
        detail = f"received {received_on} before the entry settles on {settled}"
        return Parked("RETURN_BEFORE_SETTLEMENT", detail, "dishonored_return", "R69")
    deadline = banking_days_after(settled, RETURN_WINDOW_BANKING_DAYS)
    if received_on > deadline:
        detail = f"received {received_on}, after the return deadline {deadline}"
        return Parked("LATE_RETURN", detail, "dishonored_return", "R68")
    return None


def stops_credits(code: str) -> bool:
    reason = RETURN_REASONS.get(code)
    return reason is not None and reason.stops_credits


def next_step(code: str, resends: int) -> NextStep:
    """What follows a booked return: send again (``resends`` made so far), or wait for new details."""
    if code in RESEND_CODES and resends < MAX_RESENDS:
        return "resend"
    return "await_account_update"


def correction_from(code: str, corrected_data: str) -> AccountCorrection | Parked:
    """The account correction a notification of change carries, or why it is refused or parked."""
    reason = CHANGE_REASONS.get(code)
    if reason is None or reason.refused:
        return Parked("UNEXPECTED_CHANGE_CODE", f"{code} is not a notification of change")
    if code not in APPLIED_CHANGE_CODES:
        return Parked("CHANGE_NOT_APPLIED", f"{code} ({reason.title}) changes nothing the payouts carry")
    values = decode_corrected_data(code, corrected_data)
    routing = values.get("routing number")
    account = values.get("account number")
    transaction = values.get("transaction code")
    if routing is not None and not is_valid_routing_number(routing):
        return Parked(
            "REFUSED_CORRECTION", "corrected routing number is not valid", "refused_correction", "C65"
        )
    if account is not None and not _ACCOUNT_NUMBER.fullmatch(account):
        return Parked(
            "REFUSED_CORRECTION", "corrected account number is not valid", "refused_correction", "C65"
        )
    if transaction is not None and transaction not in _ACCOUNT_TYPES:
        detail = f"corrected transaction code {transaction!r} is not a credit to checking or savings"
        return _refused(detail, "C69")
    return AccountCorrection(
        change_code=code,
        routing_number=routing,
        account_number=account,
        account_type=_ACCOUNT_TYPES[transaction] if transaction is not None else None,
    )


def _refused(detail: str, refused_code: str) -> Parked:
    return Parked("REFUSED_CORRECTION", detail, "refused_correction", refused_code)


def apply_by(received_on: date) -> date:
    """The last day to apply a notification of change received on ``received_on``."""
    return banking_days_after(received_on, NOC_APPLY_BANKING_DAYS)
