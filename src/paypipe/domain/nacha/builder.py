"""Building an ACH file of credit payouts (PPD/CCD) and prenotes, and the trace numbers it uses.

Pure: no I/O and no clock; the creation time is passed in.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Final, Protocol

from paypipe.domain.nacha.layouts import (
    BATCH_HEADER,
    ENTRY_DETAIL,
    FILE_HEADER,
    MAX_ENTRY_AMOUNT_CENTS,
    MAX_TOTAL_CENTS,
    Field,
)
from paypipe.domain.nacha.model import (
    EASTERN,
    SAME_DAY_LIMIT_CENTS,
    SERVICE_CLASS_CREDITS,
    SERVICE_CLASS_MIXED,
    AccountType,
    AchFile,
    Batch,
    BatchHeader,
    EntryDetail,
    FileHeader,
    OffsetAccount,
    Originator,
    PayeeType,
    Payout,
    SecCode,
    is_valid_routing_number,
)
from paypipe.domain.nacha.text import to_nacha_text
from paypipe.domain.nacha.totals import batch_control, file_control

_CREDIT_CODES: Final[dict[AccountType, int]] = {"checking": 22, "savings": 32}
_PRENOTE_CODES: Final[dict[AccountType, int]] = {"checking": 23, "savings": 33}
_DEBIT_CODES: Final[dict[AccountType, int]] = {"checking": 27, "savings": 37}
_SEC_BY_PAYEE: Final[dict[PayeeType, SecCode]] = {"individual": "PPD", "business": "CCD"}
_SEC_ORDER: Final[tuple[SecCode, ...]] = ("PPD", "CCD")

_ACCOUNT_NUMBER: Final = ENTRY_DETAIL.field("dfi_account_number")
_INDIVIDUAL_ID: Final = ENTRY_DETAIL.field("individual_id_number")
_INDIVIDUAL_NAME: Final = ENTRY_DETAIL.field("individual_name")
_COMPANY_ID: Final = BATCH_HEADER.field("company_id")
_IMMEDIATE_ORIGIN: Final = FILE_HEADER.field("immediate_origin")
_FILE_ID_MODIFIER: Final = FILE_HEADER.field("file_id_modifier")

TRACE_SEQUENCE_SPAN: Final = 10**7 - 1
_ACCOUNT_NUMBER_SHAPE: Final = re.compile(rf"[0-9A-Z-]{{1,{_ACCOUNT_NUMBER.width}}}")
_NOT_ID_CHARACTERS: Final = re.compile("[^0-9A-Z]")


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
    """How many trace numbers a file of these payouts uses: one per entry, offsets included (a batch
    of zero-dollar entries alone has no offset entry)."""
    paying = {
        _SEC_BY_PAYEE.get(payout.payee_type)  # type: ignore[call-overload]
        for payout in payouts
        if payout.amount_cents > 0
    }
    return len(payouts) + (len(paying) if originator.offset_account is not None else 0)


# --- Checks ------------------------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _config_text(value: str, field: Field) -> str:
    text = to_nacha_text(value)
    _require(len(text) <= field.width, f"{field.name} {text!r} is longer than {field.width} characters")
    return text


def _passes_checks(field: Field, raw: str) -> bool:
    """Whether ``raw``, as the writer puts it in ``field``, passes the strict reader's checks."""
    return len(raw) == field.width and all(rule.pattern.fullmatch(raw) for rule in field.checks)


def _validate_routing(routing: str, what: str) -> None:
    _require(is_valid_routing_number(routing), f"{what} {routing!r} is not a valid 9-digit routing number")


def _account_number(account: str, what: str, payment_id: str | None = None) -> str:
    normalized = account.strip().upper()
    if _ACCOUNT_NUMBER_SHAPE.fullmatch(normalized) is None:
        whose = what if payment_id is None else f"{what} {payment_id!r}"
        raise ValueError(
            f"{whose}: account number must be 1-{_ACCOUNT_NUMBER.width} letters, digits or hyphens"
        )
    return normalized


def _individual_id(payment_id: str) -> str:
    compact = _NOT_ID_CHARACTERS.sub("", payment_id.upper())
    if not compact:
        raise ValueError(f"payment {payment_id!r}: id has no letters or digits")
    return compact[: _INDIVIDUAL_ID.width]


def _validate_originator(originator: Originator) -> None:
    _validate_routing(originator.immediate_destination, "immediate destination")
    _require(
        _passes_checks(_IMMEDIATE_ORIGIN, originator.immediate_origin.rjust(_IMMEDIATE_ORIGIN.width)),
        f"immediate origin must be {_IMMEDIATE_ORIGIN.width} digits/letters or a 9-digit routing number",
    )
    _require(
        re.fullmatch(rf"[0-9A-Z]{{1,{_COMPANY_ID.width}}}", originator.company_id) is not None,
        f"company id must be 1-{_COMPANY_ID.width} upper-case letters or digits",
    )
    _require(re.fullmatch(r"\d{8}", originator.odfi_routing) is not None, "ODFI routing must be 8 digits")
    if originator.offset_account is not None:
        _validate_routing(originator.offset_account.routing_number, "offset account routing number")
        _require(
            originator.offset_account.account_type in _DEBIT_CODES,
            f"unknown offset account type {originator.offset_account.account_type!r}",
        )


@dataclass(frozen=True)
class _Request:
    """What `build_file` was asked for, checked; `local` is the creation time in New York."""

    originator: Originator
    local: datetime
    effective_date: date
    file_id_modifier: str
    same_day: bool
    first_trace_sequence: int


def _check_request(payouts: Sequence[Payout], request: _Request) -> None:
    local, effective_date, same_day = request.local, request.effective_date, request.same_day
    _require(len(payouts) > 0, "an ACH file needs at least one payout")
    _require(
        _passes_checks(_FILE_ID_MODIFIER, request.file_id_modifier),
        f"file id modifier must be one character A-Z or 0-9, got {request.file_id_modifier!r}",
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
    _validate_originator(request.originator)
    _require(request.first_trace_sequence >= 1, "trace sequence numbers start at 1")
    _require(
        not trace_block_wraps(request.first_trace_sequence, traces_needed(payouts, request.originator)),
        "trace numbers must ascend through a file: its block of the ODFI's sequence may not wrap",
    )


def _group_by_sec(payouts: Sequence[Payout]) -> list[tuple[SecCode, list[Payout]]]:
    groups: dict[SecCode, list[Payout]] = {sec: [] for sec in _SEC_ORDER}
    for payout in payouts:
        _require(payout.payee_type in _SEC_BY_PAYEE, f"payment {payout.payment_id!r}: unknown payee type")
        groups[_SEC_BY_PAYEE[payout.payee_type]].append(payout)
    return [(sec, group) for sec, group in groups.items() if group]


# --- Entries, batches and the file -------------------------------------------------------------


def _payout_problem(payout: Payout, *, same_day: bool) -> str | None:
    """What makes a payout unfit for an entry, if anything (messages formatted only then)."""
    amount = payout.amount_cents
    if payout.prenote:
        if amount != 0:
            return f"a prenote carries no amount, got {amount}"
    elif not (isinstance(amount, int) and 0 < amount <= MAX_ENTRY_AMOUNT_CENTS):
        return f"amount_cents must be between 1 and {MAX_ENTRY_AMOUNT_CENTS}, got {amount}"
    if same_day and amount > SAME_DAY_LIMIT_CENTS:
        return f"{amount} cents exceeds the Same Day ACH limit of {SAME_DAY_LIMIT_CENTS}"
    if not is_valid_routing_number(payout.routing_number):
        return f"routing number {payout.routing_number!r} is not a valid 9-digit routing number"
    if payout.account_type not in (_PRENOTE_CODES if payout.prenote else _CREDIT_CODES):
        return f"unknown account type {payout.account_type!r}"
    return None


def _payee_entry(payout: Payout, trace: str, *, same_day: bool) -> EntryDetail:
    if (problem := _payout_problem(payout, same_day=same_day)) is not None:
        raise ValueError(f"payment {payout.payment_id!r}: {problem}")
    name = to_nacha_text(payout.payee_name)[: _INDIVIDUAL_NAME.width].rstrip()
    if not name:
        raise ValueError(f"payment {payout.payment_id!r}: payee name is empty")
    codes = _PRENOTE_CODES if payout.prenote else _CREDIT_CODES
    return EntryDetail(
        transaction_code=codes[payout.account_type],
        rdfi_routing=payout.routing_number[:8],
        check_digit=payout.routing_number[8],
        dfi_account_number=_account_number(payout.account_number, "payment", payout.payment_id),
        amount_cents=payout.amount_cents,
        individual_id_number=_individual_id(payout.payment_id),
        individual_name=name,
        discretionary_data="",
        addenda_indicator=0,
        trace_number=trace,
    )


def _offset_entry(
    offset: OffsetAccount, company_name: str, amount: int, trace: str, *, same_day: bool
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
        trace_number=trace,
    )


def _header_template(request: _Request) -> BatchHeader:
    """The batch header every batch of the file shares; each batch sets its SEC code and number."""
    originator = request.originator
    return BatchHeader(
        service_class_code=SERVICE_CLASS_MIXED
        if originator.offset_account is not None
        else SERVICE_CLASS_CREDITS,
        company_name=_config_text(originator.company_name, BATCH_HEADER.field("company_name")),
        company_discretionary_data="",
        company_id=originator.company_id,
        sec_code="",
        company_entry_description=_config_text(
            originator.company_entry_description, BATCH_HEADER.field("company_entry_description")
        ),
        company_descriptive_date=f"SD{request.local:%H%M}" if request.same_day else "",
        effective_entry_date=request.effective_date,
        settlement_date="",
        originator_status_code="1",
        odfi_routing=originator.odfi_routing,
        batch_number=0,
    )


def _batch(header: BatchHeader, group: Sequence[Payout], request: _Request, traces: Iterator[str]) -> Batch:
    same_day, offset = request.same_day, request.originator.offset_account
    entries = [_payee_entry(payout, next(traces), same_day=same_day) for payout in group]
    credit = sum(entry.amount_cents for entry in entries)
    if offset is not None and credit > 0:  # prenotes alone move no money: nothing to offset
        entries.append(_offset_entry(offset, header.company_name, credit, next(traces), same_day=same_day))
    control = batch_control(header, entries)
    _require(
        max(control.total_debit_cents, control.total_credit_cents) <= MAX_TOTAL_CENTS,
        "batch total does not fit the 12-digit field; split it",
    )
    return Batch(header, tuple(entries), control)


def _file_header(request: _Request) -> FileHeader:
    originator, local = request.originator, request.local
    return FileHeader(
        immediate_destination=originator.immediate_destination,
        immediate_origin=originator.immediate_origin,
        creation_date=local.date(),
        creation_time=time(local.hour, local.minute),
        file_id_modifier=request.file_id_modifier,
        immediate_destination_name=_config_text(
            originator.immediate_destination_name, FILE_HEADER.field("immediate_destination_name")
        ),
        immediate_origin_name=_config_text(
            originator.immediate_origin_name, FILE_HEADER.field("immediate_origin_name")
        ),
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

    A payout marked ``prenote`` is a zero-dollar prenotification to its account (23 checking, 33
    savings). One batch per SEC code present, PPD (individuals) then CCD (businesses); entries keep
    the input order. Trace numbers ascend through the file from ``first_trace_sequence``
    (the ODFI's running sequence, so a trace number is unique across files; the 7-digit
    sequence wraps from 9,999,999 to 1). `created_at` must be timezone-aware; the header
    carries its America/New_York date and time.
    """
    _require(created_at.utcoffset() is not None, "created_at must be timezone-aware")
    request = _Request(
        originator,
        created_at.astimezone(EASTERN),
        effective_date,
        file_id_modifier,
        same_day,
        first_trace_sequence,
    )
    _check_request(payouts, request)
    template = _header_template(request)
    traces = (trace_number(originator.odfi_routing, n) for n in itertools.count(first_trace_sequence))
    batches = tuple(
        _batch(replace(template, sec_code=sec_code, batch_number=number), group, request, traces)
        for number, (sec_code, group) in enumerate(_group_by_sec(payouts), start=1)
    )
    control = file_control(batches)
    _require(
        max(control.total_debit_cents, control.total_credit_cents) <= MAX_TOTAL_CENTS,
        "file total does not fit the 12-digit field; split it",
    )
    return AchFile(_file_header(request), batches, control)


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
