"""A simulated receiving bank: what it answers an outbound payout file with, and when.

Deterministic: an entry's answer depends only on the seed, its trace number and its account number
(a SHA-256 of the three, never `random`), so answering a file again gives the same files. The
documented test accounts in `TEST_ACCOUNTS` always get their answer; any other account is returned
with probability `return_rate` or, if not, notified of a change with probability `noc_rate`, the
code drawn by the weights below. Only credits (payees) are answered, never debits (offsets).

Pure: no I/O and no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

from paypipe.domain import ach_calendar
from paypipe.domain.nacha import (
    EASTERN,
    AchFile,
    Answer,
    ChangeAnswer,
    EntryDetail,
    ReturnAnswer,
    answer_file,
    encode_corrected_data,
    is_forward,
    is_valid_routing_number,
)

SIMULATED_BANK_ROUTING: Final = "071000013"
SIMULATED_BANK_NAME: Final = "SIMULATED RDFI"
# Valid routing numbers the corrections point payees to.
CORRECTED_ROUTING_NUMBERS: Final = ("021000021", "026009593", "061000104", "121000358")
DEATH_BEFORE_EFFECTIVE: Final = timedelta(days=30)  # the date of death an R15 test account carries

# Codes drawn for accounts outside the table, by weight (credit entries: no R01 or R09 here).
RETURN_CODE_WEIGHTS: Final = (("R03", 35), ("R02", 30), ("R04", 15), ("R20", 10), ("R23", 5), ("R16", 5))
CHANGE_CODE_WEIGHTS: Final = (("C01", 45), ("C02", 20), ("C05", 15), ("C03", 10), ("C06", 5), ("C07", 5))


@dataclass(frozen=True)
class TestAccount:
    """An account number the simulated bank always answers the same way."""

    __test__ = False  # not a pytest test class

    account_number: str
    code: str  # the R or C code it gets
    note: str = ""
    corrected: tuple[tuple[str, str], ...] = ()  # a C code's corrected values, by part name

    @property
    def corrected_data(self) -> str:
        return encode_corrected_data(self.code, dict(self.corrected)) if self.corrected else ""


# fmt: off
TEST_ACCOUNTS: Final = (
    TestAccount("SIMR02", "R02"),
    TestAccount("SIMR03", "R03"),
    TestAccount("SIMR04", "R04"),
    TestAccount("SIMR15", "R15", "date of death 30 days before the effective date"),
    TestAccount("SIMR16", "R16"),
    TestAccount("SIMC01", "C01", corrected=(("account number", "SIMC01NEW"),)),
    TestAccount("SIMC02", "C02", corrected=(("routing number", "021000021"),)),
    TestAccount("SIMC03", "C03",
                corrected=(("routing number", "026009593"), ("account number", "SIMC03NEW"))),
    TestAccount("SIMC05", "C05", "the account is a savings account", (("transaction code", "32"),)),
    TestAccount("SIMC65", "C02", "the check digit is wrong: the ODFI refuses the notification (C65)",
                (("routing number", "021000022"),)),
)
# fmt: on
_BY_ACCOUNT: Final = {account.account_number: account for account in TEST_ACCOUNTS}


def banking_days_after(day: date, count: int) -> date:
    """`count` banking days after `day`'s settlement (`day`, or the next banking day if it is not one)."""
    return ach_calendar.banking_days_after(ach_calendar.settlement_day(day), count)


class _Draws:
    """Uniform numbers in [0, 1) and integers, read in turn from a SHA-256 chain of the key."""

    def __init__(self, key: str) -> None:
        self.key = key.encode()
        self.count = 0

    def integer(self) -> int:
        self.count += 1
        digest = hashlib.sha256(self.key + self.count.to_bytes(4, "big")).digest()
        return int.from_bytes(digest[:8], "big")

    def uniform(self) -> float:
        return self.integer() / 2**64

    def pick(self, weights: Sequence[tuple[str, int]]) -> str:
        point = self.integer() % sum(weight for _, weight in weights)
        for code, weight in weights:
            if point < weight:
                return code
            point -= weight
        raise AssertionError("unreachable")


def _other_account_type(transaction_code: int) -> str:
    """The transaction code for the other account type: checking 2x <-> savings 3x."""
    digits = f"{transaction_code:02d}"
    return ("3" if digits[0] == "2" else "2") + digits[1]


def _drawn_correction(code: str, entry: EntryDetail, draws: _Draws) -> str:
    routings = [r for r in CORRECTED_ROUTING_NUMBERS if r[:8] != entry.rdfi_routing]
    values = {
        "account number": f"{draws.integer() % 10**10:010d}",
        "routing number": routings[draws.integer() % len(routings)],
        "transaction code": _other_account_type(entry.transaction_code),
    }
    parts = {
        "C01": ("account number",),
        "C02": ("routing number",),
        "C03": ("routing number", "account number"),
        "C05": ("transaction code",),
        "C06": ("account number", "transaction code"),
        "C07": ("routing number", "account number", "transaction code"),
    }[code]
    return encode_corrected_data(code, {name: values[name] for name in parts})


def _test_account_answer(account: TestAccount, entry: EntryDetail, effective_date: date) -> Answer:
    if account.code.startswith("C"):
        return ChangeAnswer(entry.trace_number, account.code, account.corrected_data)
    death = effective_date - DEATH_BEFORE_EFFECTIVE if account.code in ("R14", "R15") else None
    return ReturnAnswer(entry.trace_number, account.code, death)


@dataclass(frozen=True)
class Delivery:
    delivery_date: date
    file: AchFile


@dataclass(frozen=True)
class BankSimulator:
    """The receiving bank (routing `routing_number`) answering every payee entry of a file.

    Returns reach the ODFI `return_delay_days` banking days after the entry's effective date
    (settlement), notifications of change `noc_delay_days` after it; each answer file is created
    at `delivery_time` (Eastern) on its delivery date, with that date as its settlement day.
    """

    seed: int = 0
    return_rate: float = 0.02
    noc_rate: float = 0.02
    return_delay_days: int = 2
    noc_delay_days: int = 2
    routing_number: str = SIMULATED_BANK_ROUTING
    name: str = SIMULATED_BANK_NAME
    delivery_time: time = time(6, 0)

    def __post_init__(self) -> None:
        if not (0 <= self.return_rate <= 1 and 0 <= self.noc_rate <= 1):
            raise ValueError("return_rate and noc_rate must be between 0 and 1")
        if self.return_delay_days < 0 or self.noc_delay_days < 0:
            raise ValueError("delays must be zero or more banking days")
        if not is_valid_routing_number(self.routing_number):
            raise ValueError(f"{self.routing_number!r} is not a valid 9-digit routing number")

    def answer(self, entry: EntryDetail, effective_date: date) -> Answer | None:
        """What the bank answers this entry (None: it posts it and says nothing)."""
        if not (entry.is_credit and is_forward(entry.transaction_code)):
            return None
        account = _BY_ACCOUNT.get(entry.dfi_account_number)
        if account is not None:
            return _test_account_answer(account, entry, effective_date)
        draws = _Draws(f"{self.seed}|{entry.trace_number}|{entry.dfi_account_number}")
        returned, changed = draws.uniform() < self.return_rate, draws.uniform() < self.noc_rate
        if returned:
            return ReturnAnswer(entry.trace_number, draws.pick(RETURN_CODE_WEIGHTS))
        if changed:
            code = draws.pick(CHANGE_CODE_WEIGHTS)
            return ChangeAnswer(entry.trace_number, code, _drawn_correction(code, entry, draws))
        return None

    def _delay(self, answer: Answer) -> int:
        return self.return_delay_days if isinstance(answer, ReturnAnswer) else self.noc_delay_days

    def answers(self, original: AchFile) -> list[tuple[date, Answer]]:
        """Each answer to `original`'s entries with the date it reaches the ODFI, in file order."""
        planned = []
        for batch in original.batches:
            effective = batch.header.effective_entry_date
            if effective is None:
                raise ValueError(f"batch {batch.header.batch_number} has no effective entry date")
            for entry in batch.entries:
                answer = self.answer(entry, effective)
                if answer is not None:
                    planned.append((banking_days_after(effective, self._delay(answer)), answer))
        return planned

    def deliveries(self, original: AchFile, *, file_id_modifier: str = "A") -> list[Delivery]:
        """The answer files to `original`, one per delivery date, by date; none when all entries post."""
        by_date: dict[date, list[Answer]] = {}
        for day, answer in self.answers(original):
            by_date.setdefault(day, []).append(answer)
        return [
            Delivery(
                day,
                answer_file(
                    original,
                    by_date[day],
                    created_at=datetime.combine(day, self.delivery_time, EASTERN),
                    rdfi_routing=self.routing_number,
                    rdfi_name=self.name,
                    file_id_modifier=file_id_modifier,
                    settlement_date=day,
                ),
            )
            for day in sorted(by_date)
        ]
