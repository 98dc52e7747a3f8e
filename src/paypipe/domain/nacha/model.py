"""NACHA ACH file value types and the format's fixed values.

Amounts are integer cents. Text fields are stored without their right padding, so
`parse(write(f)) == f`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from functools import cache
from typing import Final, Literal
from zoneinfo import ZoneInfo

from stdnum.us import rtn

EASTERN: Final = ZoneInfo("America/New_York")

RECORD_LENGTH: Final = 94
BLOCKING_FACTOR: Final = 10
PADDING_RECORD: Final = "9" * RECORD_LENGTH
SAME_DAY_LIMIT_CENTS: Final = 100_000_000

SERVICE_CLASS_MIXED: Final = 200
SERVICE_CLASS_CREDITS: Final = 220
SERVICE_CLASS_DEBITS: Final = 225
# A transaction code's last digit: 1 and 6 are returns and NOCs (zero-amount CORs) of credits and debits.
CREDIT_CODE_DIGITS: Final = frozenset("1234")
DEBIT_CODE_DIGITS: Final = frozenset("6789")
# 3 and 8: prenotifications (zero-dollar entries that check an account before live entries to it).
PRENOTE_CODE_DIGITS: Final = frozenset("38")

_CREDIT_LAST_DIGITS: Final = frozenset(map(int, CREDIT_CODE_DIGITS))
_DEBIT_LAST_DIGITS: Final = frozenset(map(int, DEBIT_CODE_DIGITS))
_PRENOTE_LAST_DIGITS: Final = frozenset(map(int, PRENOTE_CODE_DIGITS))

AccountType = Literal["checking", "savings"]
PayeeType = Literal["individual", "business"]
SecCode = Literal["PPD", "CCD"]


@dataclass(frozen=True)
class FileHeader:
    immediate_destination: str  # routing number, without the leading blank
    immediate_origin: str
    creation_date: date
    creation_time: time | None
    file_id_modifier: str
    immediate_destination_name: str
    immediate_origin_name: str
    reference_code: str = ""


@dataclass(frozen=True)
class BatchHeader:
    service_class_code: int
    company_name: str
    company_discretionary_data: str
    company_id: str
    sec_code: str
    company_entry_description: str
    company_descriptive_date: str
    effective_entry_date: date | None  # None: blank or zeros, as in returns from the ACH operator
    settlement_date: str  # Julian day, filled in by the ACH operator; usually blank
    originator_status_code: str
    odfi_routing: str  # 8 digits
    batch_number: int


@dataclass(frozen=True)
class Addenda:
    payment_related_information: str
    addenda_sequence_number: int
    entry_detail_sequence_number: int
    addenda_type_code: str = "05"


@dataclass(frozen=True)
class EntryReturn:
    """Addenda 99: the RDFI or ACH operator returns the entry."""

    code: str  # return reason code, R01-R85
    original_trace_number: str
    date_of_death: date | None
    original_rdfi: str  # 8 digits
    information: str
    trace_number: str


@dataclass(frozen=True)
class DishonoredReturn:
    """Addenda 99, R61, R62, R67-R70: the ODFI refuses a return."""

    code: str
    original_trace_number: str
    original_rdfi: str
    return_trace_number: str
    return_settlement_date: str  # Julian day
    return_reason_code: str  # two digits: the R code of the return dishonored
    information: str
    trace_number: str


@dataclass(frozen=True)
class ContestedDishonoredReturn:
    """Addenda 99, R71-R77: the RDFI contests a dishonored return."""

    code: str
    original_trace_number: str
    date_original_returned: date | None
    original_rdfi: str
    original_settlement_date: str
    return_trace_number: str
    return_settlement_date: str
    return_reason_code: str
    dishonored_return_trace_number: str
    dishonored_return_settlement_date: str
    dishonored_return_reason_code: str
    trace_number: str


@dataclass(frozen=True)
class EntryCorrection:
    """Addenda 98: a notification of change (COR entry) with the corrected data."""

    code: str  # change code, C01-C14
    original_trace_number: str
    original_rdfi: str
    corrected_data: str
    trace_number: str


@dataclass(frozen=True)
class RefusedCorrection:
    """Addenda 98, C61-C69: the ODFI refuses a notification of change."""

    code: str  # refused COR code
    original_trace_number: str
    original_rdfi: str
    corrected_data: str
    change_code: str  # of the notification refused
    trace_sequence_number: str  # last 7 digits of that notification's trace number
    trace_number: str


@dataclass(frozen=True)
class RawAddenda:
    """An addenda type without a layout here (POS 02, IAT 10-18), kept by the lenient reader."""

    addenda_type_code: str
    text: str  # positions 4-94


Return = EntryReturn | DishonoredReturn | ContestedDishonoredReturn
Correction = EntryCorrection | RefusedCorrection
AddendaRecord = Addenda | Return | Correction | RawAddenda


@dataclass(frozen=True)
class EntryDetail:
    transaction_code: int
    rdfi_routing: str  # 8 digits
    check_digit: str
    dfi_account_number: str
    amount_cents: int
    individual_id_number: str
    individual_name: str  # receiving company name for CCD and CTX
    discretionary_data: str
    addenda_indicator: int
    trace_number: str  # 15 digits
    addenda: tuple[AddendaRecord, ...] = ()

    @property
    def is_credit(self) -> bool:
        return self.transaction_code % 10 in _CREDIT_LAST_DIGITS

    @property
    def is_debit(self) -> bool:
        return self.transaction_code % 10 in _DEBIT_LAST_DIGITS

    @property
    def is_prenote(self) -> bool:
        return self.transaction_code % 10 in _PRENOTE_LAST_DIGITS

    @property
    def entry_return(self) -> Return | None:
        return next((a for a in self.addenda if isinstance(a, Return)), None)

    @property
    def correction(self) -> Correction | None:
        return next((a for a in self.addenda if isinstance(a, Correction)), None)


@dataclass(frozen=True)
class CtxEntryDetail(EntryDetail):
    """A CTX entry: it states how many addenda follow (up to 9,999)."""

    addenda_count: int = 0


@dataclass(frozen=True)
class BatchControl:
    service_class_code: int
    entry_addenda_count: int
    entry_hash: int
    total_debit_cents: int
    total_credit_cents: int
    company_id: str
    message_authentication_code: str
    odfi_routing: str
    batch_number: int


@dataclass(frozen=True)
class FileControl:
    batch_count: int
    block_count: int
    entry_addenda_count: int
    entry_hash: int
    total_debit_cents: int
    total_credit_cents: int


@dataclass(frozen=True)
class Batch:
    header: BatchHeader
    entries: tuple[EntryDetail, ...]
    control: BatchControl


@dataclass(frozen=True)
class AchFile:
    header: FileHeader
    batches: tuple[Batch, ...]
    control: FileControl


@dataclass(frozen=True)
class Payout:
    payment_id: str
    amount_cents: int
    payee_name: str
    routing_number: str
    account_number: str
    account_type: AccountType
    payee_type: PayeeType
    prenote: bool = False  # a zero-dollar prenotification to the account (23/33), not a payment


@dataclass(frozen=True)
class OffsetAccount:
    """The originator's settlement account, debited by one offset entry per batch."""

    routing_number: str
    account_number: str
    account_type: AccountType


@dataclass(frozen=True)
class Originator:
    immediate_destination: str  # 9-digit routing number of the receiving point (ODFI or operator)
    immediate_destination_name: str
    immediate_origin: str  # 10 characters (e.g. "1" + EIN) or a 9-digit routing number
    immediate_origin_name: str
    company_name: str
    company_id: str  # up to 10 characters
    odfi_routing: str  # first 8 digits of the ODFI routing number
    company_entry_description: str
    offset_account: OffsetAccount | None = None


@cache  # routing numbers repeat across a file's entries
def routing_check_digit(first_eight: str) -> str:
    """ABA check digit for the first 8 digits of a routing number (python-stdnum's, as validate uses)."""
    return str(rtn.calc_check_digit(first_eight))


def is_valid_routing_number(routing: str) -> bool:
    return (
        len(routing) == 9
        and routing.isascii()
        and routing.isdigit()
        and routing_check_digit(routing[:8]) == routing[8]
    )
