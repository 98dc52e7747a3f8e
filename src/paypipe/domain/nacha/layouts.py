"""Each NACHA record's layout, stated once: the writer formats and the reader parses from it.

A record type or addenda type the format gains is a new `Layout` (and, for an addenda, a
new `ADDENDA_LAYOUTS` entry); the writer and the reader need no change for its fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from paypipe.domain.nacha.ach_codes import (
    ReturnKind,
    change_codes,
    return_codes,
)
from paypipe.domain.nacha.model import (
    CREDIT_CODE_DIGITS,
    DEBIT_CODE_DIGITS,
    SERVICE_CLASS_CREDITS,
    SERVICE_CLASS_DEBITS,
    SERVICE_CLASS_MIXED,
    Addenda,
    BatchControl,
    BatchHeader,
    ContestedDishonoredReturn,
    CtxEntryDetail,
    DishonoredReturn,
    EntryCorrection,
    EntryDetail,
    EntryReturn,
    FileControl,
    FileHeader,
    RawAddenda,
    RefusedCorrection,
)


class Kind(Enum):
    NUMERIC = "numeric"  # int; zero-filled, right-justified
    DIGITS = "digits"  # str of exactly `width` digits (routing prefixes, check digit, trace number)
    ALPHANUMERIC = "alphanumeric"  # str; blank-filled, left-justified, kept without the right padding
    ROUTING = "routing"  # blank + 9-digit routing number, or a 10-character id; kept without the blank
    DATE = "date"  # YYMMDD
    DATE_OR_BLANK = "date or blank"  # YYMMDD, or blanks (zeros when read) for none
    TIME = "time"  # HHMM, or blanks for none
    CONSTANT = "constant"  # always `literal`
    BLANK = "blank"  # reserved: blanks when written, not read


@dataclass(frozen=True, slots=True)
class Check:
    """A shape the field's raw text must have, beyond its kind."""

    pattern: re.Pattern[str]
    expected: str  # what an error says was expected
    strict_only: bool = False


def check(pattern: str, expected: str, *, strict_only: bool = False) -> Check:
    return Check(re.compile(pattern), expected, strict_only)


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # as the NACHA rules name it; errors name the field by it
    start: int  # 1-based position of the first character
    width: int
    kind: Kind
    attr: str | None = None  # the model attribute it carries; None for constants and reserved space
    literal: str = ""  # CONSTANT: what the field holds
    lenient_literals: tuple[str, ...] = ()  # CONSTANT: also accepted by the lenient reader
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Layout[T]:
    """One record type's fields in position order, the first its record type code."""

    name: str
    model: Callable[..., T]
    fields: tuple[Field, ...]

    @property
    def type_code(self) -> str:
        return self.fields[0].literal

    def field(self, attr: str) -> Field:
        return next(field for field in self.fields if field.attr == attr)


class NachaFieldError(ValueError):
    """A field that does not fit its record's layout."""

    def __init__(self, line: int, record_type: str, field: str, message: str) -> None:
        self.line = line
        self.record_type = record_type
        self.field = field
        self.message = message
        super().__init__(f"line {line} ({record_type}) field {field}: {message}")


class NachaParseError(NachaFieldError):
    """A file the reader rejects."""


_TRANSACTION_CODE = rf"[2345][{''.join(sorted(CREDIT_CODE_DIGITS | DEBIT_CODE_DIGITS))}]"  # 21, 26: returns
_JULIAN_DAY = check(r" {3}|\d{3}", "blank or a 3-digit Julian day")


def _one_of(codes: tuple[str, ...]) -> Check:
    return check("|".join(codes), f"one of {codes[0]}-{codes[-1]}", strict_only=True)


_SERVICE_CLASSES = tuple(
    f"{code:03d}" for code in (SERVICE_CLASS_MIXED, SERVICE_CLASS_CREDITS, SERVICE_CLASS_DEBITS)
)

# fmt: off
FILE_HEADER: Final = Layout("file header", FileHeader, (
    Field("record type code", 1, 1, Kind.CONSTANT, literal="1"),
    Field("priority code", 2, 2, Kind.CONSTANT, literal="01", lenient_literals=("  ",)),
    Field("immediate destination", 4, 10, Kind.ROUTING, "immediate_destination",
          checks=(check(r" \d{9}", "a blank and 9 digits", strict_only=True),)),
    Field("immediate origin", 14, 10, Kind.ROUTING, "immediate_origin",
          checks=(check(r" \d{9}|[0-9A-Z]{10}", "a blank and 9 digits or 10 characters", strict_only=True),)),
    Field("file creation date", 24, 6, Kind.DATE, "creation_date"),
    Field("file creation time", 30, 4, Kind.TIME, "creation_time"),
    Field("file id modifier", 34, 1, Kind.ALPHANUMERIC, "file_id_modifier",
          checks=(check("[0-9A-Z]", "A-Z or 0-9"),)),
    Field("record size", 35, 3, Kind.CONSTANT, literal="094"),
    Field("blocking factor", 38, 2, Kind.CONSTANT, literal="10"),
    Field("format code", 40, 1, Kind.CONSTANT, literal="1"),
    Field("immediate destination name", 41, 23, Kind.ALPHANUMERIC, "immediate_destination_name"),
    Field("immediate origin name", 64, 23, Kind.ALPHANUMERIC, "immediate_origin_name"),
    Field("reference code", 87, 8, Kind.ALPHANUMERIC, "reference_code"),
))

BATCH_HEADER: Final = Layout("batch header", BatchHeader, (
    Field("record type code", 1, 1, Kind.CONSTANT, literal="5"),
    Field("service class code", 2, 3, Kind.NUMERIC, "service_class_code",
          checks=(check("|".join(_SERVICE_CLASSES), f"one of {', '.join(_SERVICE_CLASSES)}"),)),
    Field("company name", 5, 16, Kind.ALPHANUMERIC, "company_name"),
    Field("company discretionary data", 21, 20, Kind.ALPHANUMERIC, "company_discretionary_data"),
    Field("company id", 41, 10, Kind.ALPHANUMERIC, "company_id"),
    Field("SEC code", 51, 3, Kind.ALPHANUMERIC, "sec_code", checks=(check("[A-Z]{3}", "3 letters"),)),
    Field("company entry description", 54, 10, Kind.ALPHANUMERIC, "company_entry_description"),
    Field("company descriptive date", 64, 6, Kind.ALPHANUMERIC, "company_descriptive_date"),
    Field("effective entry date", 70, 6, Kind.DATE_OR_BLANK, "effective_entry_date"),
    Field("settlement date", 76, 3, Kind.ALPHANUMERIC, "settlement_date",
          checks=(_JULIAN_DAY,)),
    Field("originator status code", 79, 1, Kind.ALPHANUMERIC, "originator_status_code",
          checks=(check("[012]", "0, 1 or 2", strict_only=True),)),
    Field("ODFI routing", 80, 8, Kind.DIGITS, "odfi_routing"),
    Field("batch number", 88, 7, Kind.NUMERIC, "batch_number"),
))

ENTRY_DETAIL: Final = Layout("entry detail", EntryDetail, (
    Field("record type code", 1, 1, Kind.CONSTANT, literal="6"),
    Field("transaction code", 2, 2, Kind.NUMERIC, "transaction_code",
          checks=(check(_TRANSACTION_CODE, "a credit or debit transaction code"),)),
    Field("RDFI routing", 4, 8, Kind.DIGITS, "rdfi_routing"),
    Field("check digit", 12, 1, Kind.DIGITS, "check_digit"),
    Field("DFI account number", 13, 17, Kind.ALPHANUMERIC, "dfi_account_number"),
    Field("amount", 30, 10, Kind.NUMERIC, "amount_cents"),
    Field("individual id number", 40, 15, Kind.ALPHANUMERIC, "individual_id_number"),
    Field("individual name", 55, 22, Kind.ALPHANUMERIC, "individual_name"),
    Field("discretionary data", 77, 2, Kind.ALPHANUMERIC, "discretionary_data"),
    Field("addenda indicator", 79, 1, Kind.NUMERIC, "addenda_indicator", checks=(check("[01]", "0 or 1"),)),
    Field("trace number", 80, 15, Kind.DIGITS, "trace_number"),
))

ADDENDA: Final = Layout("addenda", Addenda, (
    Field("record type code", 1, 1, Kind.CONSTANT, literal="7"),
    Field("addenda type code", 2, 2, Kind.CONSTANT, "addenda_type_code", literal="05"),
    Field("payment related information", 4, 80, Kind.ALPHANUMERIC, "payment_related_information"),
    Field("addenda sequence number", 84, 4, Kind.NUMERIC, "addenda_sequence_number"),
    Field("entry detail sequence number", 88, 7, Kind.NUMERIC, "entry_detail_sequence_number"),
))

# Like the entry detail, but positions 55-58 count the addenda and 59-74 name the receiving company.
CTX_ENTRY_DETAIL: Final = Layout("entry detail", CtxEntryDetail, (
    *ENTRY_DETAIL.fields[:7],
    Field("number of addenda records", 55, 4, Kind.NUMERIC, "addenda_count"),
    Field("receiving company name", 59, 16, Kind.ALPHANUMERIC, "individual_name"),
    Field("reserved", 75, 2, Kind.BLANK),
    *ENTRY_DETAIL.fields[8:],
))

_RECORD_TYPE_7 = Field("record type code", 1, 1, Kind.CONSTANT, literal="7")
_ORIGINAL_TRACE = Field("original entry trace number", 7, 15, Kind.DIGITS, "original_trace_number")
_ORIGINAL_RDFI = Field("original receiving DFI identification", 28, 8, Kind.DIGITS, "original_rdfi")
_TRACE = Field("trace number", 80, 15, Kind.DIGITS, "trace_number")
_RETURN_CODES = return_codes(ReturnKind.RETURN)
_CHANGE_CODES = change_codes(refused=False)

RETURN_ADDENDA: Final = Layout("return addenda", EntryReturn, (
    _RECORD_TYPE_7,
    Field("addenda type code", 2, 2, Kind.CONSTANT, literal="99"),
    Field("return reason code", 4, 3, Kind.ALPHANUMERIC, "code", checks=(_one_of(_RETURN_CODES),)),
    _ORIGINAL_TRACE,
    Field("date of death", 22, 6, Kind.DATE_OR_BLANK, "date_of_death"),
    _ORIGINAL_RDFI,
    Field("addenda information", 36, 44, Kind.ALPHANUMERIC, "information"),
    _TRACE,
))

_DISHONORED_TAIL = (
    Field("return trace number", 39, 15, Kind.DIGITS, "return_trace_number"),
    Field("return settlement date", 54, 3, Kind.ALPHANUMERIC, "return_settlement_date",
          checks=(_JULIAN_DAY,)),
    Field("return reason code", 57, 2, Kind.DIGITS, "return_reason_code"),
)

DISHONORED_RETURN_ADDENDA: Final = Layout("dishonored return addenda", DishonoredReturn, (
    _RECORD_TYPE_7,
    Field("addenda type code", 2, 2, Kind.CONSTANT, literal="99"),
    Field("dishonored return reason code", 4, 3, Kind.ALPHANUMERIC, "code"),
    _ORIGINAL_TRACE,
    Field("reserved", 22, 6, Kind.BLANK),
    _ORIGINAL_RDFI,
    Field("reserved", 36, 3, Kind.BLANK),
    *_DISHONORED_TAIL,
    Field("addenda information", 59, 21, Kind.ALPHANUMERIC, "information"),
    _TRACE,
))

CONTESTED_DISHONORED_RETURN_ADDENDA: Final = Layout(
    "contested dishonored return addenda", ContestedDishonoredReturn, (
    _RECORD_TYPE_7,
    Field("addenda type code", 2, 2, Kind.CONSTANT, literal="99"),
    Field("contested dishonored return reason code", 4, 3, Kind.ALPHANUMERIC, "code"),
    _ORIGINAL_TRACE,
    Field("date original entry returned", 22, 6, Kind.DATE_OR_BLANK, "date_original_returned"),
    _ORIGINAL_RDFI,
    Field("original settlement date", 36, 3, Kind.ALPHANUMERIC, "original_settlement_date",
          checks=(_JULIAN_DAY,)),
    *_DISHONORED_TAIL,
    Field("dishonored return trace number", 59, 15, Kind.DIGITS, "dishonored_return_trace_number"),
    Field("dishonored return settlement date", 74, 3, Kind.ALPHANUMERIC,
          "dishonored_return_settlement_date", checks=(_JULIAN_DAY,)),
    Field("dishonored return reason code", 77, 2, Kind.DIGITS, "dishonored_return_reason_code"),
    Field("reserved", 79, 1, Kind.BLANK),
    _TRACE,
))

CORRECTION_ADDENDA: Final = Layout("notification of change addenda", EntryCorrection, (
    _RECORD_TYPE_7,
    Field("addenda type code", 2, 2, Kind.CONSTANT, literal="98"),
    Field("change code", 4, 3, Kind.ALPHANUMERIC, "code", checks=(_one_of(_CHANGE_CODES),)),
    _ORIGINAL_TRACE,
    Field("reserved", 22, 6, Kind.BLANK),
    _ORIGINAL_RDFI,
    Field("corrected data", 36, 29, Kind.ALPHANUMERIC, "corrected_data"),
    Field("reserved", 65, 15, Kind.BLANK),
    _TRACE,
))

REFUSED_CORRECTION_ADDENDA: Final = Layout("refused notification of change addenda", RefusedCorrection, (
    _RECORD_TYPE_7,
    Field("addenda type code", 2, 2, Kind.CONSTANT, literal="98"),
    Field("refused COR code", 4, 3, Kind.ALPHANUMERIC, "code"),
    _ORIGINAL_TRACE,
    Field("reserved", 22, 6, Kind.BLANK),
    _ORIGINAL_RDFI,
    Field("corrected data", 36, 29, Kind.ALPHANUMERIC, "corrected_data"),
    Field("change code", 65, 3, Kind.ALPHANUMERIC, "change_code", checks=(_one_of(_CHANGE_CODES),)),
    Field("trace sequence number", 68, 7, Kind.DIGITS, "trace_sequence_number"),
    Field("reserved", 75, 5, Kind.BLANK),
    _TRACE,
))

# What the lenient reader keeps of an addenda type it has no layout for.
RAW_ADDENDA: Final = Layout("addenda", RawAddenda, (
    _RECORD_TYPE_7,
    Field("addenda type code", 2, 2, Kind.ALPHANUMERIC, "addenda_type_code"),
    Field("addenda text", 4, 91, Kind.ALPHANUMERIC, "text"),
))

BATCH_CONTROL: Final = Layout("batch control", BatchControl, (
    Field("record type code", 1, 1, Kind.CONSTANT, literal="8"),
    Field("service class code", 2, 3, Kind.NUMERIC, "service_class_code"),
    Field("entry/addenda count", 5, 6, Kind.NUMERIC, "entry_addenda_count"),
    Field("entry hash", 11, 10, Kind.NUMERIC, "entry_hash"),
    Field("total debit", 21, 12, Kind.NUMERIC, "total_debit_cents"),
    Field("total credit", 33, 12, Kind.NUMERIC, "total_credit_cents"),
    Field("company id", 45, 10, Kind.ALPHANUMERIC, "company_id"),
    Field("message authentication code", 55, 19, Kind.ALPHANUMERIC, "message_authentication_code"),
    Field("reserved", 74, 6, Kind.BLANK),
    Field("ODFI routing", 80, 8, Kind.DIGITS, "odfi_routing"),
    Field("batch number", 88, 7, Kind.NUMERIC, "batch_number"),
))

FILE_CONTROL: Final = Layout("file control", FileControl, (
    Field("record type code", 1, 1, Kind.CONSTANT, literal="9"),
    Field("batch count", 2, 6, Kind.NUMERIC, "batch_count"),
    Field("block count", 8, 6, Kind.NUMERIC, "block_count"),
    Field("entry/addenda count", 14, 8, Kind.NUMERIC, "entry_addenda_count"),
    Field("entry hash", 22, 10, Kind.NUMERIC, "entry_hash"),
    Field("total debit", 32, 12, Kind.NUMERIC, "total_debit_cents"),
    Field("total credit", 44, 12, Kind.NUMERIC, "total_credit_cents"),
    Field("reserved", 56, 39, Kind.BLANK),
))
# fmt: on

LAYOUTS: Final = (FILE_HEADER, BATCH_HEADER, ENTRY_DETAIL, ADDENDA, BATCH_CONTROL, FILE_CONTROL)
RECORD_NAMES: Final = {layout.type_code: layout.name for layout in LAYOUTS}
# Entry detail records by SEC code, when not ENTRY_DETAIL.
ENTRY_LAYOUTS: Final = {"CTX": CTX_ENTRY_DETAIL}
# Addenda records by their addenda type code, then by the reason code that picks a variant.
ADDENDA_LAYOUTS: Final = {"05": ADDENDA, "98": CORRECTION_ADDENDA, "99": RETURN_ADDENDA}
ADDENDA_VARIANTS: Final = {
    **{("99", code): DISHONORED_RETURN_ADDENDA for code in return_codes(ReturnKind.DISHONORED)},
    **{("99", code): CONTESTED_DISHONORED_RETURN_ADDENDA for code in return_codes(ReturnKind.CONTESTED)},
    **{("98", code): REFUSED_CORRECTION_ADDENDA for code in change_codes(refused=True)},
}
ADDENDA_RECORDS: Final = (*ADDENDA_LAYOUTS.values(), *dict.fromkeys(ADDENDA_VARIANTS.values()), RAW_ADDENDA)


def addenda_layout(record: str) -> Layout[object] | None:
    """An addenda record's layout, by its addenda type code and, for 98 and 99, its reason code."""
    type_code = record[1:3]
    return ADDENDA_VARIANTS.get((type_code, record[3:6])) or ADDENDA_LAYOUTS.get(type_code)


MAX_ENTRY_AMOUNT_CENTS: Final[int] = 10 ** ENTRY_DETAIL.field("amount_cents").width - 1
MAX_TOTAL_CENTS: Final[int] = 10 ** FILE_CONTROL.field("total_credit_cents").width - 1
ENTRY_HASH_MODULUS: Final[int] = 10 ** BATCH_CONTROL.field("entry_hash").width
