"""NACHA ACH file model, builder, writer and parser (PPD/CCD credit origination).

Pure: no I/O and no clock; the creation time is passed in. Amounts are integer cents.
Text fields are stored without their right padding, so `parse(write(f)) == f`.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Final, Literal, NoReturn, Protocol
from zoneinfo import ZoneInfo

from stdnum.us import rtn

EASTERN: Final = ZoneInfo("America/New_York")

RECORD_LENGTH: Final = 94
BLOCKING_FACTOR: Final = 10
PADDING_RECORD: Final = "9" * RECORD_LENGTH
MAX_ENTRY_AMOUNT_CENTS: Final = 10**10 - 1
MAX_TOTAL_CENTS: Final = 10**12 - 1
ENTRY_HASH_MODULUS: Final = 10**10
SAME_DAY_LIMIT_CENTS: Final = 100_000_000

SERVICE_CLASS_MIXED: Final = 200
SERVICE_CLASS_CREDITS: Final = 220
SERVICE_CLASS_DEBITS: Final = 225
CREDIT_CODE_DIGITS: Final = frozenset("234")
DEBIT_CODE_DIGITS: Final = frozenset("789")

# Characters the builder emits in text fields.
ALLOWED_TEXT_CHARS: Final = frozenset(string.ascii_uppercase + string.digits + " &'(),-./#")
# Letters that Unicode decomposition does not reduce to ASCII.
_TRANSLITERATIONS: Final = {
    "Æ": "AE", "æ": "AE", "Œ": "OE", "œ": "OE", "Ø": "O", "ø": "O", "Ł": "L", "ł": "L",
    "Đ": "D", "đ": "D", "Ð": "D", "ð": "D", "Þ": "TH", "þ": "TH", "ß": "SS", "\u0131": "I",
    "\u2018": "'", "\u2019": "'", "\u2013": "-", "\u2014": "-",
}  # fmt: skip

RECORD_NAMES: Final = {
    "1": "file header",
    "5": "batch header",
    "6": "entry detail",
    "7": "addenda",
    "8": "batch control",
    "9": "file control",
}

AccountType = Literal["checking", "savings"]
PayeeType = Literal["individual", "business"]
SecCode = Literal["PPD", "CCD"]

_CREDIT_CODES: Final[dict[AccountType, int]] = {"checking": 22, "savings": 32}
_DEBIT_CODES: Final[dict[AccountType, int]] = {"checking": 27, "savings": 37}
_SEC_BY_PAYEE: Final[dict[PayeeType, SecCode]] = {"individual": "PPD", "business": "CCD"}
_SEC_ORDER: Final[tuple[SecCode, ...]] = ("PPD", "CCD")


# --- Model -------------------------------------------------------------------------------------


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
    effective_entry_date: date
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
class EntryDetail:
    transaction_code: int
    rdfi_routing: str  # 8 digits
    check_digit: str
    dfi_account_number: str
    amount_cents: int
    individual_id_number: str
    individual_name: str  # receiving company name for CCD
    discretionary_data: str
    addenda_indicator: int
    trace_number: str  # 15 digits
    addenda: Addenda | None = None

    @property
    def is_credit(self) -> bool:
        return str(self.transaction_code)[-1] in CREDIT_CODE_DIGITS

    @property
    def is_debit(self) -> bool:
        return str(self.transaction_code)[-1] in DEBIT_CODE_DIGITS


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


# --- Shared helpers ----------------------------------------------------------------------------


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


def to_nacha_text(value: str) -> str:
    """Upper-case ASCII for a NACHA text field: accents stripped, whitespace collapsed.

    Raises ValueError naming the first character that has no ASCII equivalent.
    """
    decomposed = unicodedata.normalize("NFKD", "".join(_TRANSLITERATIONS.get(ch, ch) for ch in value))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = " ".join(stripped.upper().split())
    for ch in text:
        if ch not in ALLOWED_TEXT_CHARS:
            raise ValueError(f"{value!r}: character {ch!r} is not allowed in a NACHA text field")
    return text


def entry_hash(entries: Sequence[EntryDetail]) -> int:
    return sum(int(entry.rdfi_routing) for entry in entries) % ENTRY_HASH_MODULUS


def _entry_addenda_count(entries: Sequence[EntryDetail]) -> int:
    return sum(1 if entry.addenda is None else 2 for entry in entries)


def _record_count(batches: Sequence[Batch]) -> int:
    return 2 + sum(2 + batch.control.entry_addenda_count for batch in batches)


# --- Builder -----------------------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _config_text(value: str, width: int, what: str) -> str:
    text = to_nacha_text(value)
    _require(len(text) <= width, f"{what} {text!r} is longer than {width} characters")
    return text


def _validate_routing(routing: str, what: str) -> None:
    _require(is_valid_routing_number(routing), f"{what} {routing!r} is not a valid 9-digit routing number")


def _account_number(account: str, what: str) -> str:
    normalized = account.strip().upper()
    _require(
        re.fullmatch(r"[0-9A-Z-]{1,17}", normalized) is not None,
        f"{what}: account number must be 1-17 letters, digits or hyphens",
    )
    return normalized


def _individual_id(payment_id: str) -> str:
    compact = "".join(ch for ch in payment_id.upper() if ch in string.ascii_uppercase + string.digits)
    _require(compact != "", f"payment {payment_id!r}: id has no letters or digits")
    return compact[:15]


def _group_by_sec(payouts: Sequence[Payout]) -> list[tuple[SecCode, list[Payout]]]:
    groups: dict[SecCode, list[Payout]] = {sec: [] for sec in _SEC_ORDER}
    for payout in payouts:
        _require(payout.payee_type in _SEC_BY_PAYEE, f"payment {payout.payment_id!r}: unknown payee type")
        groups[_SEC_BY_PAYEE[payout.payee_type]].append(payout)
    return [(sec, group) for sec, group in groups.items() if group]


def _payee_entry(payout: Payout, trace_number: str, *, same_day: bool) -> EntryDetail:
    what = f"payment {payout.payment_id!r}"
    _require(
        isinstance(payout.amount_cents, int) and 0 < payout.amount_cents <= MAX_ENTRY_AMOUNT_CENTS,
        f"{what}: amount_cents must be between 1 and {MAX_ENTRY_AMOUNT_CENTS}, got {payout.amount_cents}",
    )
    _require(
        not same_day or payout.amount_cents <= SAME_DAY_LIMIT_CENTS,
        f"{what}: {payout.amount_cents} cents exceeds the Same Day ACH limit of {SAME_DAY_LIMIT_CENTS}",
    )
    _validate_routing(payout.routing_number, f"{what}: routing number")
    _require(payout.account_type in _CREDIT_CODES, f"{what}: unknown account type {payout.account_type!r}")
    name = to_nacha_text(payout.payee_name)[:22].rstrip()
    _require(name != "", f"{what}: payee name is empty")
    return EntryDetail(
        transaction_code=_CREDIT_CODES[payout.account_type],
        rdfi_routing=payout.routing_number[:8],
        check_digit=payout.routing_number[8],
        dfi_account_number=_account_number(payout.account_number, what),
        amount_cents=payout.amount_cents,
        individual_id_number=_individual_id(payout.payment_id),
        individual_name=name,
        discretionary_data="",
        addenda_indicator=0,
        trace_number=trace_number,
    )


def _offset_entry(
    offset: OffsetAccount, company_name: str, amount: int, trace_number: str, *, same_day: bool
) -> EntryDetail:
    _require(
        amount <= MAX_ENTRY_AMOUNT_CENTS,
        f"batch total {amount} cents does not fit one offset entry; split the batch",
    )
    _require(
        not same_day or amount <= SAME_DAY_LIMIT_CENTS,
        f"same-day batch total {amount} cents exceeds the Same Day ACH limit for its offset entry",
    )
    return EntryDetail(
        transaction_code=_DEBIT_CODES[offset.account_type],
        rdfi_routing=offset.routing_number[:8],
        check_digit=offset.routing_number[8],
        dfi_account_number=_account_number(offset.account_number, "offset account"),
        amount_cents=amount,
        individual_id_number="OFFSET",
        individual_name=company_name,
        discretionary_data="",
        addenda_indicator=0,
        trace_number=trace_number,
    )


def _batch_control(header: BatchHeader, entries: Sequence[EntryDetail]) -> BatchControl:
    debits = sum(entry.amount_cents for entry in entries if entry.is_debit)
    credits = sum(entry.amount_cents for entry in entries if entry.is_credit)
    _require(max(debits, credits) <= MAX_TOTAL_CENTS, "batch total does not fit the 12-digit field; split it")
    return BatchControl(
        service_class_code=header.service_class_code,
        entry_addenda_count=_entry_addenda_count(entries),
        entry_hash=entry_hash(entries),
        total_debit_cents=debits,
        total_credit_cents=credits,
        company_id=header.company_id,
        message_authentication_code="",
        odfi_routing=header.odfi_routing,
        batch_number=header.batch_number,
    )


def _file_control(batches: Sequence[Batch]) -> FileControl:
    debits = sum(batch.control.total_debit_cents for batch in batches)
    credits = sum(batch.control.total_credit_cents for batch in batches)
    _require(max(debits, credits) <= MAX_TOTAL_CENTS, "file total does not fit the 12-digit field; split it")
    return FileControl(
        batch_count=len(batches),
        block_count=math.ceil(_record_count(batches) / BLOCKING_FACTOR),
        entry_addenda_count=sum(batch.control.entry_addenda_count for batch in batches),
        entry_hash=sum(batch.control.entry_hash for batch in batches) % ENTRY_HASH_MODULUS,
        total_debit_cents=debits,
        total_credit_cents=credits,
    )


def _validate_originator(originator: Originator) -> None:
    _validate_routing(originator.immediate_destination, "immediate destination")
    _require(
        re.fullmatch(r"\d{9}|[0-9A-Z]{10}", originator.immediate_origin) is not None,
        "immediate origin must be 10 digits/letters or a 9-digit routing number",
    )
    _require(
        re.fullmatch(r"[0-9A-Z]{1,10}", originator.company_id) is not None,
        "company id must be 1-10 upper-case letters or digits",
    )
    _require(re.fullmatch(r"\d{8}", originator.odfi_routing) is not None, "ODFI routing must be 8 digits")
    if originator.offset_account is not None:
        _validate_routing(originator.offset_account.routing_number, "offset account routing number")
        _require(
            originator.offset_account.account_type in _DEBIT_CODES,
            f"unknown offset account type {originator.offset_account.account_type!r}",
        )


def build_file(
    payouts: Sequence[Payout],
    originator: Originator,
    *,
    effective_date: date,
    created_at: datetime,
    file_id_modifier: str = "A",
    same_day: bool = False,
    first_trace_sequence: int = 1,
) -> AchFile:
    """A balanced-or-credit-only ACH file paying each payout by credit.

    One batch per SEC code present, PPD (individuals) then CCD (businesses); entries keep
    the input order. Trace numbers ascend through the file from ``first_trace_sequence``
    (the ODFI's running sequence, so a trace number is unique across files; the 7-digit
    sequence wraps from 9,999,999 to 1). `created_at` must be timezone-aware; the header
    carries its America/New_York date and time.
    """
    _require(created_at.utcoffset() is not None, "created_at must be timezone-aware")
    local = created_at.astimezone(EASTERN)
    _require(len(payouts) > 0, "an ACH file needs at least one payout")
    _require(
        re.fullmatch(r"[0-9A-Z]", file_id_modifier) is not None,
        f"file id modifier must be one character A-Z or 0-9, got {file_id_modifier!r}",
    )
    _require(
        effective_date >= local.date(),
        f"effective date {effective_date} is before the creation date {local.date()}",
    )
    _require(
        not same_day or effective_date == local.date(),
        "a same-day file must have the creation date as effective date",
    )
    payment_ids = [payout.payment_id for payout in payouts]
    _require(len(set(payment_ids)) == len(payment_ids), "payment ids must be unique within a file")
    _validate_originator(originator)
    company_name = _config_text(originator.company_name, 16, "company name")
    description = _config_text(originator.company_entry_description, 10, "company entry description")
    offset = originator.offset_account

    _require(first_trace_sequence >= 1, "trace sequence numbers start at 1")
    _require(
        not trace_block_wraps(first_trace_sequence, traces_needed(payouts, originator)),
        "trace numbers must ascend through a file: its block of the ODFI's sequence may not wrap",
    )
    batches: list[Batch] = []
    sequence = first_trace_sequence - 1

    def next_trace() -> str:
        nonlocal sequence
        sequence += 1
        return trace_number(originator.odfi_routing, sequence)

    for batch_number, (sec_code, group) in enumerate(_group_by_sec(payouts), start=1):
        entries = [_payee_entry(payout, next_trace(), same_day=same_day) for payout in group]
        if offset is not None:
            batch_credit = sum(entry.amount_cents for entry in entries)
            entries.append(_offset_entry(offset, company_name, batch_credit, next_trace(), same_day=same_day))
        header = BatchHeader(
            service_class_code=SERVICE_CLASS_MIXED if offset is not None else SERVICE_CLASS_CREDITS,
            company_name=company_name,
            company_discretionary_data="",
            company_id=originator.company_id,
            sec_code=sec_code,
            company_entry_description=description,
            company_descriptive_date=f"SD{local:%H%M}" if same_day else "",
            effective_entry_date=effective_date,
            settlement_date="",
            originator_status_code="1",
            odfi_routing=originator.odfi_routing,
            batch_number=batch_number,
        )
        batches.append(Batch(header, tuple(entries), _batch_control(header, entries)))

    file_header = FileHeader(
        immediate_destination=originator.immediate_destination,
        immediate_origin=originator.immediate_origin,
        creation_date=local.date(),
        creation_time=time(local.hour, local.minute),
        file_id_modifier=file_id_modifier,
        immediate_destination_name=_config_text(
            originator.immediate_destination_name, 23, "immediate destination name"
        ),
        immediate_origin_name=_config_text(originator.immediate_origin_name, 23, "immediate origin name"),
    )
    return AchFile(file_header, tuple(batches), _file_control(batches))


TRACE_SEQUENCE_SPAN: Final = 10**7 - 1


def trace_number(odfi_routing: str, sequence: int) -> str:
    """The trace number of the ODFI's ``sequence``-th entry: ODFI routing + 7 digits (1-9,999,999)."""
    return f"{odfi_routing}{(sequence - 1) % TRACE_SEQUENCE_SPAN + 1:07d}"


def trace_block_wraps(first: int, count: int) -> bool:
    """True when ``count`` sequence numbers from ``first`` pass 9,999,999 (and would not ascend)."""
    return (first - 1) % TRACE_SEQUENCE_SPAN + count > TRACE_SEQUENCE_SPAN


class Payable(Protocol):
    """What planning a file needs of a payout (a ``Payout``, or a stored one before detokenizing)."""

    @property
    def payment_id(self) -> str: ...

    @property
    def amount_cents(self) -> int: ...

    @property
    def payee_type(self) -> str: ...


def traces_needed(payouts: Sequence[Payable], originator: Originator) -> int:
    """How many trace numbers a file of these payouts uses: one per entry, offsets included."""
    batches = {_SEC_BY_PAYEE.get(payout.payee_type) for payout in payouts}  # type: ignore[call-overload]
    return len(payouts) + (len(batches) if originator.offset_account is not None else 0)


def payout_problem(payout: Payout, *, same_day: bool = False) -> str | None:
    """Why no file could carry this payout's entry (None: it can be written)."""
    try:
        _group_by_sec([payout])
        _payee_entry(payout, "0" * 15, same_day=same_day)
    except ValueError as error:
        return str(error)
    return None


def payment_trace_numbers(payouts: Sequence[Payout], file: AchFile) -> dict[str, str]:
    """Trace number of each payout's entry in a file made by `build_file` from `payouts`."""
    groups = _group_by_sec(payouts)
    _require(len(groups) == len(file.batches), "file does not match the payouts")
    traces: dict[str, str] = {}
    for (_, group), batch in zip(groups, file.batches, strict=True):
        payee_entries = [entry for entry in batch.entries if entry.is_credit]
        _require(len(payee_entries) == len(group), "file does not match the payouts")
        for payout, entry in zip(group, payee_entries, strict=True):
            _require(entry.amount_cents == payout.amount_cents, "file does not match the payouts")
            traces[payout.payment_id] = entry.trace_number
    return traces


# --- Writer ------------------------------------------------------------------------------------


def _alpha(value: str, width: int, field: str) -> str:
    if len(value) > width:
        raise ValueError(f"{field} {value!r} is longer than {width} characters")
    return value.ljust(width)


def _right(value: str, width: int, field: str) -> str:
    if len(value) > width:
        raise ValueError(f"{field} {value!r} is longer than {width} characters")
    return value.rjust(width)


def _num(value: int, width: int, field: str) -> str:
    if not 0 <= value < 10**width:
        raise ValueError(f"{field} {value} does not fit {width} digits")
    return f"{value:0{width}d}"


def _yymmdd(value: date) -> str:
    return f"{value:%y%m%d}"


def _file_header_record(h: FileHeader) -> str:
    return "".join(
        [
            "101",
            _right(h.immediate_destination, 10, "immediate destination"),
            _right(h.immediate_origin, 10, "immediate origin"),
            _yymmdd(h.creation_date),
            "    " if h.creation_time is None else f"{h.creation_time:%H%M}",
            _alpha(h.file_id_modifier, 1, "file id modifier"),
            "094",
            f"{BLOCKING_FACTOR:02d}",
            "1",
            _alpha(h.immediate_destination_name, 23, "immediate destination name"),
            _alpha(h.immediate_origin_name, 23, "immediate origin name"),
            _alpha(h.reference_code, 8, "reference code"),
        ]
    )


def _batch_header_record(h: BatchHeader) -> str:
    return "".join(
        [
            "5",
            _num(h.service_class_code, 3, "service class code"),
            _alpha(h.company_name, 16, "company name"),
            _alpha(h.company_discretionary_data, 20, "company discretionary data"),
            _alpha(h.company_id, 10, "company id"),
            _alpha(h.sec_code, 3, "SEC code"),
            _alpha(h.company_entry_description, 10, "company entry description"),
            _alpha(h.company_descriptive_date, 6, "company descriptive date"),
            _yymmdd(h.effective_entry_date),
            _alpha(h.settlement_date, 3, "settlement date"),
            _alpha(h.originator_status_code, 1, "originator status code"),
            _alpha(h.odfi_routing, 8, "ODFI routing"),
            _num(h.batch_number, 7, "batch number"),
        ]
    )


def _entry_record(e: EntryDetail) -> str:
    return "".join(
        [
            "6",
            _num(e.transaction_code, 2, "transaction code"),
            _alpha(e.rdfi_routing, 8, "RDFI routing"),
            _alpha(e.check_digit, 1, "check digit"),
            _alpha(e.dfi_account_number, 17, "DFI account number"),
            _num(e.amount_cents, 10, "amount"),
            _alpha(e.individual_id_number, 15, "individual id number"),
            _alpha(e.individual_name, 22, "individual name"),
            _alpha(e.discretionary_data, 2, "discretionary data"),
            _num(e.addenda_indicator, 1, "addenda indicator"),
            _alpha(e.trace_number, 15, "trace number"),
        ]
    )


def _addenda_record(a: Addenda) -> str:
    return "".join(
        [
            "7",
            _alpha(a.addenda_type_code, 2, "addenda type code"),
            _alpha(a.payment_related_information, 80, "payment related information"),
            _num(a.addenda_sequence_number, 4, "addenda sequence number"),
            _num(a.entry_detail_sequence_number, 7, "entry detail sequence number"),
        ]
    )


def _batch_control_record(c: BatchControl) -> str:
    return "".join(
        [
            "8",
            _num(c.service_class_code, 3, "service class code"),
            _num(c.entry_addenda_count, 6, "entry/addenda count"),
            _num(c.entry_hash, 10, "entry hash"),
            _num(c.total_debit_cents, 12, "total debit"),
            _num(c.total_credit_cents, 12, "total credit"),
            _alpha(c.company_id, 10, "company id"),
            _alpha(c.message_authentication_code, 19, "message authentication code"),
            " " * 6,
            _alpha(c.odfi_routing, 8, "ODFI routing"),
            _num(c.batch_number, 7, "batch number"),
        ]
    )


def _file_control_record(c: FileControl) -> str:
    return "".join(
        [
            "9",
            _num(c.batch_count, 6, "batch count"),
            _num(c.block_count, 6, "block count"),
            _num(c.entry_addenda_count, 8, "entry/addenda count"),
            _num(c.entry_hash, 10, "entry hash"),
            _num(c.total_debit_cents, 12, "total debit"),
            _num(c.total_credit_cents, 12, "total credit"),
            " " * 39,
        ]
    )


def write(file: AchFile) -> str:
    """The file as 94-character records with "\\n" endings, padded to a multiple of 10 records."""
    records = [_file_header_record(file.header)]
    for batch in file.batches:
        records.append(_batch_header_record(batch.header))
        for entry in batch.entries:
            records.append(_entry_record(entry))
            if entry.addenda is not None:
                records.append(_addenda_record(entry.addenda))
        records.append(_batch_control_record(batch.control))
    records.append(_file_control_record(file.control))
    records.extend([PADDING_RECORD] * (-len(records) % BLOCKING_FACTOR))
    for record in records:
        if len(record) != RECORD_LENGTH:  # only reachable through a field-width bug
            raise ValueError(f"record {record!r} is {len(record)} characters, expected {RECORD_LENGTH}")
    return "\n".join(records) + "\n"


# --- Parser ------------------------------------------------------------------------------------


class NachaParseError(ValueError):
    def __init__(self, line: int, record_type: str, field: str, message: str) -> None:
        self.line = line
        self.record_type = record_type
        self.field = field
        self.message = message
        super().__init__(f"line {line} ({record_type}) field {field}: {message}")


_PRINTABLE = frozenset(chr(code) for code in range(0x20, 0x7F)) - frozenset(string.ascii_lowercase)


@dataclass(frozen=True)
class _Record:
    text: str
    line: int

    @property
    def name(self) -> str:
        return RECORD_NAMES.get(self.text[:1], "unknown record")

    def fail(self, field: str, message: str) -> NoReturn:
        raise NachaParseError(self.line, self.name, field, message)

    def raw(self, start: int, end: int) -> str:
        """Characters at 1-based inclusive positions, as in the NACHA record layouts."""
        return self.text[start - 1 : end]

    def digits(self, field: str, start: int, end: int) -> str:
        raw = self.raw(start, end)
        if not (raw.isascii() and raw.isdigit()):
            self.fail(field, f"expected {end - start + 1} digits, got {raw!r}")
        return raw

    def number(self, field: str, start: int, end: int) -> int:
        return int(self.digits(field, start, end))

    def text_field(self, field: str, start: int, end: int) -> str:
        raw = self.raw(start, end)
        for ch in raw:
            if ch not in _PRINTABLE:
                self.fail(field, f"character {ch!r} is not allowed, got {raw!r}")
        return raw.rstrip()

    def constant(self, field: str, start: int, end: int, *allowed: str) -> None:
        raw = self.raw(start, end)
        if raw not in allowed:
            self.fail(field, f"expected {' or '.join(repr(a) for a in allowed)}, got {raw!r}")

    def yymmdd(self, field: str, start: int, end: int) -> date:
        raw = self.digits(field, start, end)
        try:
            return date(2000 + int(raw[:2]), int(raw[2:4]), int(raw[4:]))
        except ValueError:
            self.fail(field, f"expected a YYMMDD date, got {raw!r}")


def _split_records(text: str, strict: bool) -> list[_Record]:
    if strict:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        records = []
        for number, line in enumerate(lines, start=1):
            record = _Record(line, number)
            if "\r" in line:
                record.fail("line ending", 'expected "\\n" line endings, found "\\r"')
            if len(line) != RECORD_LENGTH:
                record.fail("record length", f"expected {RECORD_LENGTH} characters, got {len(line)}")
            records.append(record)
        return records

    numbered = [(n, line.rstrip()) for n, line in enumerate(text.splitlines(), start=1)]
    numbered = [(n, line) for n, line in numbered if line]
    if len(numbered) == 1 and len(numbered[0][1]) > RECORD_LENGTH:
        # A file written without line breaks: fixed-width records back to back.
        stream = numbered[0][1].ljust(math.ceil(len(numbered[0][1]) / RECORD_LENGTH) * RECORD_LENGTH)
        numbered = [
            (i // RECORD_LENGTH + 1, stream[i : i + RECORD_LENGTH].rstrip())
            for i in range(0, len(stream), RECORD_LENGTH)
        ]
    records = []
    for number, line in numbered:
        record = _Record(line.upper().ljust(RECORD_LENGTH), number)
        if len(line) > RECORD_LENGTH:
            record.fail("record length", f"expected {RECORD_LENGTH} characters, got {len(line)}")
        records.append(record)
    return records


def _routing_field(record: _Record, field: str, raw: str) -> str:
    value = raw.strip()
    if not (value.isascii() and value.isalnum() and len(value) in (9, 10)):
        record.fail(field, f"expected a 9-digit routing number or 10-character id, got {raw!r}")
    return value


def _parse_file_header(r: _Record, strict: bool) -> FileHeader:
    r.constant("priority code", 2, 3, *(("01",) if strict else ("01", "  ")))
    destination = r.raw(4, 13)
    if strict and not re.fullmatch(r" \d{9}", destination):
        r.fail("immediate destination", f"expected a blank and 9 digits, got {destination!r}")
    origin = r.raw(14, 23)
    if strict and not re.fullmatch(r" \d{9}|[0-9A-Z]{10}", origin):
        r.fail("immediate origin", f"expected a blank and 9 digits or 10 characters, got {origin!r}")
    creation_time: time | None = None
    raw_time = r.raw(30, 33)
    if raw_time != "    ":
        hhmm = r.digits("file creation time", 30, 33)
        if int(hhmm[:2]) > 23 or int(hhmm[2:]) > 59:
            r.fail("file creation time", f"expected HHMM, got {hhmm!r}")
        creation_time = time(int(hhmm[:2]), int(hhmm[2:]))
    modifier = r.raw(34, 34)
    if not re.fullmatch(r"[0-9A-Z]", modifier):
        r.fail("file id modifier", f"expected A-Z or 0-9, got {modifier!r}")
    r.constant("record size", 35, 37, "094")
    r.constant("blocking factor", 38, 39, "10")
    r.constant("format code", 40, 40, "1")
    return FileHeader(
        immediate_destination=_routing_field(r, "immediate destination", destination),
        immediate_origin=_routing_field(r, "immediate origin", origin),
        creation_date=r.yymmdd("file creation date", 24, 29),
        creation_time=creation_time,
        file_id_modifier=modifier,
        immediate_destination_name=r.text_field("immediate destination name", 41, 63),
        immediate_origin_name=r.text_field("immediate origin name", 64, 86),
        reference_code=r.text_field("reference code", 87, 94),
    )


def _parse_batch_header(r: _Record, strict: bool) -> BatchHeader:
    service_class = r.number("service class code", 2, 4)
    if service_class not in (SERVICE_CLASS_MIXED, SERVICE_CLASS_CREDITS, SERVICE_CLASS_DEBITS):
        r.fail("service class code", f"expected 200, 220 or 225, got {service_class:03d}")
    sec_code = r.raw(51, 53)
    if not re.fullmatch(r"[A-Z]{3}", sec_code):
        r.fail("SEC code", f"expected 3 letters, got {sec_code!r}")
    settlement = r.raw(76, 78)
    if settlement.strip() and not re.fullmatch(r"\d{3}", settlement):
        r.fail("settlement date", f"expected blank or a 3-digit Julian day, got {settlement!r}")
    status = r.raw(79, 79)
    if strict and status not in ("0", "1", "2"):
        r.fail("originator status code", f"expected 0, 1 or 2, got {status!r}")
    return BatchHeader(
        service_class_code=service_class,
        company_name=r.text_field("company name", 5, 20),
        company_discretionary_data=r.text_field("company discretionary data", 21, 40),
        company_id=r.text_field("company id", 41, 50),
        sec_code=sec_code,
        company_entry_description=r.text_field("company entry description", 54, 63),
        company_descriptive_date=r.text_field("company descriptive date", 64, 69),
        effective_entry_date=r.yymmdd("effective entry date", 70, 75),
        settlement_date=settlement.rstrip(),
        originator_status_code=r.text_field("originator status code", 79, 79),
        odfi_routing=r.digits("ODFI routing", 80, 87),
        batch_number=r.number("batch number", 88, 94),
    )


def _parse_entry(r: _Record, strict: bool) -> EntryDetail:
    code = r.digits("transaction code", 2, 3)
    if code[0] not in "2345" or code[1] not in CREDIT_CODE_DIGITS | DEBIT_CODE_DIGITS:
        r.fail("transaction code", f"unsupported transaction code {code!r}")
    routing = r.digits("RDFI routing", 4, 11)
    check_digit = r.digits("check digit", 12, 12)
    if strict and routing_check_digit(routing) != check_digit:
        r.fail(
            "check digit", f"expected {routing_check_digit(routing)} for RDFI {routing}, got {check_digit}"
        )
    indicator = r.number("addenda indicator", 79, 79)
    if indicator > 1:
        r.fail("addenda indicator", f"expected 0 or 1, got {indicator}")
    return EntryDetail(
        transaction_code=int(code),
        rdfi_routing=routing,
        check_digit=check_digit,
        dfi_account_number=r.text_field("DFI account number", 13, 29),
        amount_cents=r.number("amount", 30, 39),
        individual_id_number=r.text_field("individual id number", 40, 54),
        individual_name=r.text_field("individual name", 55, 76),
        discretionary_data=r.text_field("discretionary data", 77, 78),
        addenda_indicator=indicator,
        trace_number=r.digits("trace number", 80, 94),
    )


def _parse_addenda(r: _Record, entry: EntryDetail, strict: bool) -> Addenda:
    r.constant("addenda type code", 2, 3, "05")
    addenda = Addenda(
        payment_related_information=r.text_field("payment related information", 4, 83),
        addenda_sequence_number=r.number("addenda sequence number", 84, 87),
        entry_detail_sequence_number=r.number("entry detail sequence number", 88, 94),
    )
    if strict and addenda.addenda_sequence_number != 1:
        r.fail("addenda sequence number", f"expected 0001, got {addenda.addenda_sequence_number:04d}")
    if strict and addenda.entry_detail_sequence_number != int(entry.trace_number[8:]):
        r.fail(
            "entry detail sequence number",
            f"expected {entry.trace_number[8:]} (from trace number), "
            f"got {addenda.entry_detail_sequence_number:07d}",
        )
    return addenda


def _parse_batch_control(r: _Record) -> BatchControl:
    return BatchControl(
        service_class_code=r.number("service class code", 2, 4),
        entry_addenda_count=r.number("entry/addenda count", 5, 10),
        entry_hash=r.number("entry hash", 11, 20),
        total_debit_cents=r.number("total debit", 21, 32),
        total_credit_cents=r.number("total credit", 33, 44),
        company_id=r.text_field("company id", 45, 54),
        message_authentication_code=r.text_field("message authentication code", 55, 73),
        odfi_routing=r.digits("ODFI routing", 80, 87),
        batch_number=r.number("batch number", 88, 94),
    )


def _parse_file_control(r: _Record) -> FileControl:
    return FileControl(
        batch_count=r.number("batch count", 2, 7),
        block_count=r.number("block count", 8, 13),
        entry_addenda_count=r.number("entry/addenda count", 14, 21),
        entry_hash=r.number("entry hash", 22, 31),
        total_debit_cents=r.number("total debit", 32, 43),
        total_credit_cents=r.number("total credit", 44, 55),
    )


def _check_total(r: _Record, field: str, width: int, stated: int, computed: int) -> None:
    if stated != computed:
        r.fail(field, f"expected {computed:0{width}d} (computed), got {stated:0{width}d}")


def _check_batch(header_record: _Record, control_record: _Record, batch: Batch, strict: bool) -> None:
    header, control, entries = batch.header, batch.control, batch.entries
    if not entries:
        control_record.fail("entry/addenda count", "a batch needs at least one entry")
    _check_total(
        control_record, "service class code", 3, control.service_class_code, header.service_class_code
    )
    if control.company_id != header.company_id:
        control_record.fail(
            "company id", f"expected {header.company_id!r} (batch header), got {control.company_id!r}"
        )
    if control.odfi_routing != header.odfi_routing:
        control_record.fail(
            "ODFI routing", f"expected {header.odfi_routing} (batch header), got {control.odfi_routing}"
        )
    _check_total(control_record, "batch number", 7, control.batch_number, header.batch_number)
    _check_total(
        control_record, "entry/addenda count", 6, control.entry_addenda_count, _entry_addenda_count(entries)
    )
    _check_total(control_record, "entry hash", 10, control.entry_hash, entry_hash(entries))
    debits = sum(entry.amount_cents for entry in entries if entry.is_debit)
    credits = sum(entry.amount_cents for entry in entries if entry.is_credit)
    _check_total(control_record, "total debit", 12, control.total_debit_cents, debits)
    _check_total(control_record, "total credit", 12, control.total_credit_cents, credits)
    if strict:
        if header.service_class_code == SERVICE_CLASS_CREDITS and any(e.is_debit for e in entries):
            header_record.fail("service class code", "220 (credits only) but the batch has debit entries")
        if header.service_class_code == SERVICE_CLASS_DEBITS and any(e.is_credit for e in entries):
            header_record.fail("service class code", "225 (debits only) but the batch has credit entries")


def _check_file(control_record: _Record, file: AchFile, record_count: int) -> None:
    control, batches = file.control, file.batches
    _check_total(control_record, "batch count", 6, control.batch_count, len(batches))
    _check_total(
        control_record, "block count", 6, control.block_count, math.ceil(record_count / BLOCKING_FACTOR)
    )
    _check_total(
        control_record,
        "entry/addenda count",
        8,
        control.entry_addenda_count,
        sum(batch.control.entry_addenda_count for batch in batches),
    )
    _check_total(
        control_record,
        "entry hash",
        10,
        control.entry_hash,
        sum(batch.control.entry_hash for batch in batches) % ENTRY_HASH_MODULUS,
    )
    _check_total(
        control_record,
        "total debit",
        12,
        control.total_debit_cents,
        sum(batch.control.total_debit_cents for batch in batches),
    )
    _check_total(
        control_record,
        "total credit",
        12,
        control.total_credit_cents,
        sum(batch.control.total_credit_cents for batch in batches),
    )


class _Cursor:
    def __init__(self, records: list[_Record]) -> None:
        self.records = records
        self.index = 0

    def peek_type(self) -> str | None:
        return self.records[self.index].text[0] if self.index < len(self.records) else None

    def take(self, expected: str) -> _Record:
        if self.index >= len(self.records):
            last = self.records[-1]
            raise NachaParseError(
                last.line + 1, RECORD_NAMES[expected], "record type", "unexpected end of file"
            )
        record = self.records[self.index]
        if record.text[0] != expected:
            record.fail(
                "record type", f"expected {RECORD_NAMES[expected]} ({expected}), got {record.text[0]!r}"
            )
        self.index += 1
        return record


def _parse_batch(cursor: _Cursor, strict: bool) -> Batch:
    header_record = cursor.take("5")
    header = _parse_batch_header(header_record, strict)
    entries: list[EntryDetail] = []
    while cursor.peek_type() == "6":
        record = cursor.take("6")
        entry = _parse_entry(record, strict)
        if strict and entry.trace_number[:8] != header.odfi_routing:
            record.fail(
                "trace number",
                f"expected to start with ODFI routing {header.odfi_routing}, got {entry.trace_number}",
            )
        if strict and entries and entry.trace_number <= entries[-1].trace_number:
            record.fail(
                "trace number",
                f"expected ascending trace numbers, got {entry.trace_number} "
                f"after {entries[-1].trace_number}",
            )
        if entry.addenda_indicator == 1:
            entry = replace(entry, addenda=_parse_addenda(cursor.take("7"), entry, strict))
        elif cursor.peek_type() == "7":
            cursor.records[cursor.index].fail(
                "record type", "addenda record after an entry whose addenda indicator is 0"
            )
        entries.append(entry)
    control_record = cursor.take("8")
    batch = Batch(header, tuple(entries), _parse_batch_control(control_record))
    _check_batch(header_record, control_record, batch, strict)
    return batch


def parse(text: str, *, strict: bool = True) -> AchFile:
    """Parse an ACH file, checking record order, field formats and every control total.

    Strict mode also requires exact 94-character "\\n"-terminated records, blocking with
    all-9 padding records, ascending trace numbers and batch numbers, and valid RDFI check
    digits. Lenient mode accepts CRLF or CR endings, trailing whitespace, short records,
    lower case (upper-cased), records without line breaks and missing padding; it never
    fixes totals. Raises NachaParseError.
    """
    records = _split_records(text, strict)
    if not records:
        raise NachaParseError(1, "file header", "record type", "empty file")
    cursor = _Cursor(records)
    header = _parse_file_header(cursor.take("1"), strict)
    batches: list[Batch] = []
    while cursor.peek_type() == "5":
        batch_line = cursor.records[cursor.index]
        batch = _parse_batch(cursor, strict)
        if strict and batches and batch.header.batch_number <= batches[-1].header.batch_number:
            batch_line.fail(
                "batch number",
                f"expected ascending batch numbers, got {batch.header.batch_number} "
                f"after {batches[-1].header.batch_number}",
            )
        batches.append(batch)
    control_record = cursor.take("9")
    record_count = cursor.index
    file = AchFile(header, tuple(batches), _parse_file_control(control_record))
    _check_file(control_record, file, record_count)

    padding = records[record_count:]
    for record in padding:
        if record.text != PADDING_RECORD:
            raise NachaParseError(
                record.line,
                "padding",
                "record",
                f"expected {RECORD_LENGTH} '9' characters after the file control, "
                f"got {record.text.rstrip()!r}",
            )
    if strict and len(records) != file.control.block_count * BLOCKING_FACTOR:
        last = records[-1]
        raise NachaParseError(
            last.line,
            "padding",
            "block count",
            f"expected {file.control.block_count * BLOCKING_FACTOR} records "
            f"({file.control.block_count} blocks of {BLOCKING_FACTOR}), got {len(records)}",
        )
    return file
