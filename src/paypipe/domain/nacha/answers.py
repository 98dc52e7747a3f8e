"""The files banks answer an ACH file with, and the ODFI's answers to those.

An RDFI returns an entry (addenda 99) or posts it and notifies a change (a COR entry, addenda 98);
`answer_file` builds the file the ODFI receives for an outbound file. The ODFI refuses a
notification (`refused_correction_file`, C61-C69) or dishonors a return (`dishonored_return_file`,
R61, R62, R67-R70) with a file back to the RDFI. Answers cover PPD and CCD entries (not CTX).

Pure: no I/O and no clock; the creation time is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Final

from paypipe.domain.nacha.ach_codes import (
    CHANGE_REASONS,
    CORRECTED_DATA_WIDTH,
    RETURN_REASONS,
    ReturnKind,
)
from paypipe.domain.nacha.builder import trace_block_wraps, trace_number
from paypipe.domain.nacha.layouts import (
    DISHONORED_RETURN_ADDENDA,
    FILE_HEADER,
    RETURN_ADDENDA,
)
from paypipe.domain.nacha.model import (
    EASTERN,
    SERVICE_CLASS_CREDITS,
    SERVICE_CLASS_DEBITS,
    SERVICE_CLASS_MIXED,
    AchFile,
    AddendaRecord,
    Batch,
    BatchHeader,
    DishonoredReturn,
    EntryCorrection,
    EntryDetail,
    EntryReturn,
    FileHeader,
    RefusedCorrection,
    is_valid_routing_number,
    routing_check_digit,
)
from paypipe.domain.nacha.text import to_nacha_text
from paypipe.domain.nacha.totals import batch_control, file_control

COR: Final = "COR"
# A forward entry's transaction code's last digit -> its return's and NOC's (live, prenote, zero dollar).
_ANSWER_DIGITS: Final = {"2": "1", "3": "1", "4": "1", "7": "6", "8": "6", "9": "6"}
_DEATH_CODES: Final = frozenset({"R14", "R15"})
_RETURN_INFORMATION: Final = RETURN_ADDENDA.field("information")
_DISHONOR_INFORMATION: Final = DISHONORED_RETURN_ADDENDA.field("information")
_FILE_ID_MODIFIER: Final = re.compile(r"[0-9A-Z]")
_CORRECTED_ACCOUNT: Final = re.compile(r"[0-9A-Z-]{1,17}")
_CORRECTED_TRANSACTION: Final = re.compile(r"[2345][234789]")


# --- What the banks answer -------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnAnswer:
    """The RDFI returns the entry with this trace number (R01-R53, R80-R85)."""

    original_trace_number: str
    code: str
    date_of_death: date | None = None  # R14 and R15 only
    information: str = ""  # up to 44 characters


@dataclass(frozen=True)
class ChangeAnswer:
    """The RDFI posts the entry and notifies a change (C01-C14).

    `corrected_data` is the addenda's field as is: see `encode_corrected_data` for the positions.
    """

    original_trace_number: str
    code: str
    corrected_data: str


Answer = ReturnAnswer | ChangeAnswer


@dataclass(frozen=True)
class Refusal:
    """The ODFI refuses the notification of change whose COR entry has this trace number (C61-C69)."""

    notification_trace_number: str
    code: str


@dataclass(frozen=True)
class Dishonor:
    """The ODFI dishonors the return entry with this trace number (R61, R62, R67-R70)."""

    return_trace_number: str
    code: str
    information: str = ""  # up to 21 characters; R69 lists the numbers of the fields in error


# --- Checks ----------------------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def is_forward(transaction_code: int) -> bool:
    """Whether the code is a forward entry's (a return or NOC of it can be sent), not a return's."""
    return f"{transaction_code:02d}"[-1] in _ANSWER_DIGITS


def answer_transaction_code(transaction_code: int) -> int:
    """The transaction code of a return or notification of change of an entry: 22 -> 21, 32 -> 31."""
    _require(is_forward(transaction_code), f"transaction code {transaction_code} is not a forward entry's")
    digits = f"{transaction_code:02d}"
    return int(digits[0] + _ANSWER_DIGITS[digits[-1]])


def corrected_data_problem(change_code: str, corrected_data: str) -> str | None:
    """Why a notification's corrected data is not formatted as its change code requires (None: it is).

    Routing numbers must pass their check digit, account numbers be 1-17 upper-case letters, digits or
    hyphens, transaction codes a forward entry's; every value left-justified in its part, blanks between.
    """
    reason = CHANGE_REASONS.get(change_code)
    if reason is None or reason.refused:
        return f"{change_code!r} is not a change code"
    padded = corrected_data.ljust(CORRECTED_DATA_WIDTH)
    if len(padded) > CORRECTED_DATA_WIDTH:
        return f"corrected data is longer than {CORRECTED_DATA_WIDTH} characters"
    if not reason.corrected:
        return None
    covered: set[int] = set()
    for part in reason.corrected:
        span = range(part.start - 1, part.start - 1 + part.width)
        covered.update(span)
        raw = padded[span.start : span.stop]
        value = raw.rstrip()
        if value == "":
            return f"{part.name} is missing"
        if raw[0] == " ":
            return f"{part.name} is not left-justified"
        if not _part_valid(part.name, value):
            return f"{part.name} is not valid"  # the value is not echoed: it may be an account number
    if any(padded[i] != " " for i in range(CORRECTED_DATA_WIDTH) if i not in covered):
        return "characters outside the corrected values"
    return None


def _part_valid(name: str, value: str) -> bool:
    if name == "routing number":
        return is_valid_routing_number(value)
    if name == "account number":
        return _CORRECTED_ACCOUNT.fullmatch(value) is not None
    if name == "transaction code":
        return _CORRECTED_TRANSACTION.fullmatch(value) is not None
    return value.isascii() and value.isprintable()


def correction_refusal(notification: EntryDetail, original: EntryDetail | None) -> str | None:
    """The refused COR code an ODFI answers a notification with (None: it accepts it).

    `original` is the entry of the ODFI's whose trace number the notification names (None: none
    has it). Checks, in order: C62 no such entry, C67 routing number, C68 account number, C64
    individual id, C69 transaction code (each as in the original entry), C65 corrected data format.
    """
    correction = notification.correction
    if not isinstance(correction, EntryCorrection):
        raise ValueError(f"{notification.trace_number} carries no notification of change")
    if original is None or original.trace_number != correction.original_trace_number:
        return "C62"
    routing = original.rdfi_routing
    if notification.rdfi_routing != routing or correction.original_rdfi != routing:
        return "C67"
    if notification.dfi_account_number != original.dfi_account_number:
        return "C68"
    if notification.individual_id_number != original.individual_id_number:
        return "C64"
    if notification.transaction_code != answer_transaction_code(original.transaction_code):
        return "C69"
    if corrected_data_problem(correction.code, correction.corrected_data) is not None:
        return "C65"
    return None


def _check_return(answer: ReturnAnswer) -> None:
    reason = RETURN_REASONS.get(answer.code)
    _require(
        reason is not None and reason.kind is ReturnKind.RETURN,
        f"{answer.original_trace_number}: {answer.code!r} is not a return reason code",
    )
    _require(
        answer.date_of_death is None or answer.code in _DEATH_CODES,
        f"{answer.original_trace_number}: a date of death goes only with R14 or R15",
    )
    _require(
        len(to_nacha_text(answer.information)) <= _RETURN_INFORMATION.width,
        f"{answer.original_trace_number}: information is longer than {_RETURN_INFORMATION.width}",
    )


def _check_change(answer: ChangeAnswer) -> None:
    reason = CHANGE_REASONS.get(answer.code)
    _require(
        reason is not None and not reason.refused,
        f"{answer.original_trace_number}: {answer.code!r} is not a change code",
    )
    data = answer.corrected_data
    _require(
        len(data) <= CORRECTED_DATA_WIDTH and data.isascii() and data.isprintable(),
        f"{answer.original_trace_number}: corrected data must be up to {CORRECTED_DATA_WIDTH} "
        "printable ASCII characters",
    )


def _check_created_at(created_at: datetime, file_id_modifier: str) -> datetime:
    _require(created_at.utcoffset() is not None, "created_at must be timezone-aware")
    _require(
        _FILE_ID_MODIFIER.fullmatch(file_id_modifier) is not None,
        f"file id modifier must be one character A-Z or 0-9, got {file_id_modifier!r}",
    )
    return created_at.astimezone(EASTERN)


def _answerable(entry: EntryDetail) -> None:
    _require(type(entry) is EntryDetail, f"{entry.trace_number}: answers cover PPD and CCD entries only")
    answer_transaction_code(entry.transaction_code)


# --- Files -----------------------------------------------------------------------------------


def _service_class(entries: Sequence[EntryDetail]) -> int:
    credits, debits = any(e.is_credit for e in entries), any(e.is_debit for e in entries)
    if credits and debits:
        return SERVICE_CLASS_MIXED
    return SERVICE_CLASS_DEBITS if debits else SERVICE_CLASS_CREDITS


def _julian(day: date | None) -> str:
    return "" if day is None else f"{day.timetuple().tm_yday:03d}"


def _batches(groups: Sequence[tuple[BatchHeader, Sequence[EntryDetail]]]) -> tuple[Batch, ...]:
    """Batches numbered from 1, each header's service class set from its entries."""
    batches = []
    for number, (template, entries) in enumerate(groups, start=1):
        header = replace(template, service_class_code=_service_class(entries), batch_number=number)
        batches.append(Batch(header, tuple(entries), batch_control(header, entries)))
    return tuple(batches)


def _file_header(
    local: datetime, modifier: str, *, destination: tuple[str, str], origin: tuple[str, str]
) -> FileHeader:
    """From `origin` to `destination`, each a (9-digit routing number, name)."""
    width = FILE_HEADER.field("immediate_destination_name").width
    for routing, name in (destination, origin):
        _require(is_valid_routing_number(routing), f"{routing!r} is not a valid 9-digit routing number")
        _require(len(name) <= width, f"bank name {name!r} is longer than {width} characters")
    return FileHeader(
        immediate_destination=destination[0],
        immediate_origin=origin[0],
        creation_date=local.date(),
        creation_time=time(local.hour, local.minute),
        file_id_modifier=modifier,
        immediate_destination_name=destination[1],
        immediate_origin_name=origin[1],
    )


def _trace_numbers(routing: str, first: int, count: int) -> Iterator[str]:
    _require(first >= 1, "trace sequence numbers start at 1")
    _require(not trace_block_wraps(first, count), "the block of trace sequence numbers may not wrap")
    return (trace_number(routing[:8], n) for n in range(first, first + count))


def _by_trace(file: AchFile) -> dict[str, tuple[BatchHeader, EntryDetail]]:
    return {entry.trace_number: (batch.header, entry) for batch in file.batches for entry in batch.entries}


def _unique_traces(traces: Sequence[str], known: Mapping[str, object], what: str) -> None:
    _require(len(traces) > 0, f"no {what} to send")
    _require(len(set(traces)) == len(traces), f"at most one {what} per entry")
    for trace in traces:
        _require(trace in known, f"no entry in the file has trace number {trace}")


def _answer_entry(entry: EntryDetail, answer: Answer, trace: str) -> EntryDetail:
    addenda: AddendaRecord
    if isinstance(answer, ReturnAnswer):
        addenda = EntryReturn(
            answer.code,
            entry.trace_number,
            answer.date_of_death,
            entry.rdfi_routing,
            to_nacha_text(answer.information),
            trace,
        )
    else:
        addenda = EntryCorrection(
            answer.code, entry.trace_number, entry.rdfi_routing, answer.corrected_data.rstrip(), trace
        )
    return replace(
        entry,
        transaction_code=answer_transaction_code(entry.transaction_code),
        amount_cents=entry.amount_cents if isinstance(answer, ReturnAnswer) else 0,
        addenda_indicator=1,
        trace_number=trace,
        addenda=(addenda,),
    )


def _answer_groups(
    original: AchFile, by_trace: Mapping[str, Answer], rdfi: str, settlement: date | None
) -> list[tuple[BatchHeader, list[tuple[EntryDetail, Answer]]]]:
    """Return batches, then COR batches, each of one original batch's answered entries in its order."""
    groups: list[tuple[BatchHeader, list[tuple[EntryDetail, Answer]]]] = []
    for kind in (ReturnAnswer, ChangeAnswer):
        for batch in original.batches:
            answered = [
                (entry, by_trace[entry.trace_number])
                for entry in batch.entries
                if isinstance(by_trace.get(entry.trace_number), kind)
            ]
            if answered:
                header = replace(
                    batch.header,
                    sec_code=batch.header.sec_code if kind is ReturnAnswer else COR,
                    effective_entry_date=None,
                    settlement_date=_julian(settlement),
                    odfi_routing=rdfi[:8],
                )
                groups.append((header, answered))
    return groups


def _answer_traces(rdfi: str, first: int | None, count: int) -> Callable[[EntryDetail], str]:
    """The trace number of each answer: the original's sequence, or a running one from `first`."""
    if first is None:
        return lambda entry: rdfi[:8] + entry.trace_number[8:]
    running = _trace_numbers(rdfi, first, count)
    return lambda _: next(running)


def answer_file(
    original: AchFile,
    answers: Sequence[Answer],
    *,
    created_at: datetime,
    rdfi_routing: str,
    rdfi_name: str = "RDFI",
    file_id_modifier: str = "A",
    settlement_date: date | None = None,
    first_trace_sequence: int | None = None,
) -> AchFile:
    """The file the ODFI receives from the RDFI (or ACH operator) `rdfi_routing` answering `original`.

    One batch of returns, then one of COR entries, per original batch answered, each under that
    batch's header with the returning bank's routing as its ODFI, a blank effective date and
    `settlement_date` as the settlement day (blank when None). An entry keeps the original's fields
    but its transaction code (22 -> 21, 32 -> 31; see `answer_transaction_code`), amount (zero in
    a COR entry) and trace number: the returning bank's routing and either the original's sequence
    (`first_trace_sequence` None: unique across the answers to one ODFI's entries, stable when a file is
    answered again) or a running sequence from `first_trace_sequence`. The file goes to the ODFI of
    the original batches (named as `original`'s immediate destination) from `rdfi_routing`.
    Raises ValueError for an answer that names no entry of `original`, two answers for one entry,
    an unknown code, or an entry that cannot be answered (a return or CTX entry).
    """
    local = _check_created_at(created_at, file_id_modifier)
    entries = _by_trace(original)
    _unique_traces([answer.original_trace_number for answer in answers], entries, "answer")
    for answer in answers:
        _answerable(entries[answer.original_trace_number][1])
        if isinstance(answer, ReturnAnswer):
            _check_return(answer)
        else:
            _check_change(answer)
    odfis = {batch.header.odfi_routing for batch in original.batches}
    _require(len(odfis) == 1, "the original batches must come from one ODFI")
    (odfi,) = odfis
    groups = _answer_groups(
        original, {a.original_trace_number: a for a in answers}, rdfi_routing, settlement_date
    )
    trace_for = _answer_traces(rdfi_routing, first_trace_sequence, len(answers))
    batches = _batches(
        [(header, [_answer_entry(e, a, trace_for(e)) for e, a in answered]) for header, answered in groups]
    )
    header = _file_header(
        local,
        file_id_modifier,
        destination=(odfi + routing_check_digit(odfi), original.header.immediate_destination_name),
        origin=(rdfi_routing, rdfi_name),
    )
    return AchFile(header, batches, file_control(batches))


# --- The ODFI's answers ------------------------------------------------------------------------

_Reply = Callable[[BatchHeader, EntryDetail, str], AddendaRecord]


def _reply_file(
    received: AchFile,
    replies: Mapping[str, _Reply],
    *,
    created_at: datetime,
    file_id_modifier: str,
    first_trace_sequence: int,
) -> AchFile:
    """Back to the sender of `received`: each entry in `replies` with its reply's addenda, in file order."""
    local = _check_created_at(created_at, file_id_modifier)
    odfi = received.header.immediate_destination
    traces = _trace_numbers(odfi, first_trace_sequence, len(replies))
    groups = []
    for batch in received.batches:
        replied = []
        for entry in batch.entries:
            if entry.trace_number in replies:
                trace = next(traces)
                addenda = replies[entry.trace_number](batch.header, entry, trace)
                replied.append(replace(entry, trace_number=trace, addenda=(addenda,)))
        if replied:
            template = replace(
                batch.header, effective_entry_date=None, settlement_date="", odfi_routing=odfi[:8]
            )
            groups.append((template, replied))
    batches = _batches(groups)
    header = _file_header(
        local,
        file_id_modifier,
        destination=(received.header.immediate_origin, received.header.immediate_origin_name),
        origin=(odfi, received.header.immediate_destination_name),
    )
    return AchFile(header, batches, file_control(batches))


def _refuse(code: str) -> _Reply:
    def reply(_: BatchHeader, entry: EntryDetail, trace: str) -> AddendaRecord:
        correction = entry.correction
        assert isinstance(correction, EntryCorrection)
        return RefusedCorrection(
            code,
            correction.original_trace_number,
            correction.original_rdfi,
            correction.corrected_data,
            correction.code,
            entry.trace_number[8:],
            trace,
        )

    return reply


def refused_correction_file(
    received: AchFile,
    refusals: Sequence[Refusal],
    *,
    created_at: datetime,
    first_trace_sequence: int,
    file_id_modifier: str = "A",
) -> AchFile:
    """The ODFI's file refusing notifications of change it received in `received`.

    Each refused COR entry goes back under its batch's header with its fields, the ODFI's trace
    number (the ODFI's running sequence from `first_trace_sequence`) and a refused COR addenda: the
    refusal code, the notification's change code, corrected data, original trace number and RDFI,
    and the last 7 digits of the notification's trace number. From `received`'s destination to
    its origin. Raises ValueError for a refusal naming no COR entry of `received` or an unknown code.
    """
    entries = _by_trace(received)
    _unique_traces([r.notification_trace_number for r in refusals], entries, "refusal")
    for refusal in refusals:
        reason = CHANGE_REASONS.get(refusal.code)
        _require(reason is not None and reason.refused, f"{refusal.code!r} is not a refused COR code")
        _, entry = entries[refusal.notification_trace_number]
        _require(
            isinstance(entry.correction, EntryCorrection),
            f"{entry.trace_number} is not a notification of change",
        )
    return _reply_file(
        received,
        {r.notification_trace_number: _refuse(r.code) for r in refusals},
        created_at=created_at,
        file_id_modifier=file_id_modifier,
        first_trace_sequence=first_trace_sequence,
    )


def _dishonor(dishonor: Dishonor) -> _Reply:
    def reply(header: BatchHeader, entry: EntryDetail, trace: str) -> AddendaRecord:
        returned = entry.entry_return
        assert isinstance(returned, EntryReturn)
        return DishonoredReturn(
            dishonor.code,
            returned.original_trace_number,
            returned.original_rdfi,
            entry.trace_number,
            header.settlement_date,
            returned.code[1:],
            to_nacha_text(dishonor.information),
            trace,
        )

    return reply


def dishonored_return_file(
    received: AchFile,
    dishonors: Sequence[Dishonor],
    *,
    created_at: datetime,
    first_trace_sequence: int,
    file_id_modifier: str = "A",
) -> AchFile:
    """The ODFI's file dishonoring returns it received in `received`.

    Each dishonored return entry goes back under its batch's header with its fields and amount, the
    ODFI's trace number (its running sequence from `first_trace_sequence`) and a dishonored return
    addenda: the dishonor code, the original trace number and RDFI, the return's trace number,
    settlement day and reason code. From `received`'s destination to its origin. Raises ValueError
    for a dishonor naming no return entry of `received`, an unknown code or information too long.
    """
    entries = _by_trace(received)
    _unique_traces([d.return_trace_number for d in dishonors], entries, "dishonor")
    for dishonor in dishonors:
        reason = RETURN_REASONS.get(dishonor.code)
        _require(
            reason is not None and reason.kind is ReturnKind.DISHONORED,
            f"{dishonor.code!r} is not a dishonored return code",
        )
        _, entry = entries[dishonor.return_trace_number]
        _require(isinstance(entry.entry_return, EntryReturn), f"{entry.trace_number} is not a return entry")
        _require(
            len(to_nacha_text(dishonor.information)) <= _DISHONOR_INFORMATION.width,
            f"{entry.trace_number}: information is longer than {_DISHONOR_INFORMATION.width}",
        )
    return _reply_file(
        received,
        {d.return_trace_number: _dishonor(d) for d in dishonors},
        created_at=created_at,
        file_id_modifier=file_id_modifier,
        first_trace_sequence=first_trace_sequence,
    )
