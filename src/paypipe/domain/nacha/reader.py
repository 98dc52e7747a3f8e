"""NACHA reader: each record sliced and parsed from its layout, then every control total checked."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, time
from typing import Any, NoReturn

from paypipe.domain.nacha.layouts import (
    ADDENDA,
    ADDENDA_RECORDS,
    BATCH_CONTROL,
    BATCH_HEADER,
    ENTRY_DETAIL,
    ENTRY_LAYOUTS,
    FILE_CONTROL,
    FILE_HEADER,
    RAW_ADDENDA,
    RECORD_NAMES,
    Field,
    Kind,
    Layout,
    NachaParseError,
    addenda_layout,
)
from paypipe.domain.nacha.model import (
    BLOCKING_FACTOR,
    PADDING_RECORD,
    RECORD_LENGTH,
    SERVICE_CLASS_CREDITS,
    SERVICE_CLASS_DEBITS,
    AchFile,
    Addenda,
    AddendaRecord,
    Batch,
    BatchHeader,
    CtxEntryDetail,
    EntryDetail,
    RawAddenda,
    routing_check_digit,
)
from paypipe.domain.nacha.totals import batch_control, file_control

_PRINTABLE = frozenset(chr(code) for code in range(0x20, 0x7F))
_NO_DATE = frozenset((" " * 6, "0" * 6))
# SEC codes whose entries may carry more than one addenda record in strict mode: CTX counts up to
# 9,999 in the entry (IAT's are addenda types without a layout here).
_SEVERAL_ADDENDA = frozenset({"CTX"})


@dataclass(frozen=True)
class _Record:
    text: str
    line: int
    layout_name: str = ""  # once a layout is chosen: errors name it

    @property
    def name(self) -> str:
        return self.layout_name or RECORD_NAMES.get(self.text[:1], "unknown record")

    def fail(self, field: str, message: str) -> NoReturn:
        raise NachaParseError(self.line, self.name, field, message)


# --- Fields, by kind ---------------------------------------------------------------------------


def _digits(record: _Record, field: Field, raw: str) -> str:
    if not (raw.isascii() and raw.isdigit()):
        record.fail(field.name, f"expected {field.width} digits, got {raw!r}")
    return raw


def _number(record: _Record, field: Field, raw: str) -> int:
    return int(_digits(record, field, raw))


def _text(record: _Record, field: Field, raw: str) -> str:
    if not _PRINTABLE.issuperset(raw):
        bad = next(ch for ch in raw if ch not in _PRINTABLE)
        record.fail(field.name, f"character {bad!r} is not allowed, got {raw!r}")
    return raw.rstrip()


def _routing(record: _Record, field: Field, raw: str) -> str:
    value = raw.strip()
    if not (value.isascii() and value.isalnum() and len(value) in (field.width - 1, field.width)):
        record.fail(field.name, f"expected a 9-digit routing number or 10-character id, got {raw!r}")
    return value


def _date(record: _Record, field: Field, raw: str) -> date:
    _digits(record, field, raw)
    try:
        return date(2000 + int(raw[:2]), int(raw[2:4]), int(raw[4:]))
    except ValueError:
        record.fail(field.name, f"expected a YYMMDD date, got {raw!r}")


def _date_or_blank(record: _Record, field: Field, raw: str) -> date | None:
    return None if raw in _NO_DATE else _date(record, field, raw)


def _time(record: _Record, field: Field, raw: str) -> time | None:
    if not raw.strip():
        return None
    _digits(record, field, raw)
    if int(raw[:2]) > 23 or int(raw[2:]) > 59:
        record.fail(field.name, f"expected HHMM, got {raw!r}")
    return time(int(raw[:2]), int(raw[2:]))


# Constants are checked against their literals before any field is parsed.
_PARSERS: dict[Kind, Callable[[_Record, Field, str], Any]] = {
    Kind.NUMERIC: _number,
    Kind.DIGITS: _digits,
    Kind.ALPHANUMERIC: _text,
    Kind.ROUTING: _routing,
    Kind.DATE: _date,
    Kind.DATE_OR_BLANK: _date_or_blank,
    Kind.TIME: _time,
    Kind.CONSTANT: lambda record, field, raw: raw,
}


def _span(field: Field) -> tuple[int, int]:
    return field.start - 1, field.start - 1 + field.width


class _RecordReader[T]:
    """A layout made ready to read: its constants, the fields the model carries, their checks.

    Reserved space is not read, nor the record type code: the cursor checked it already.
    Each tuple of constants and checks is by mode (strict first).
    """

    def __init__(self, layout: Layout[T]) -> None:
        fields = layout.fields[1:]
        self.layout = layout
        self.constants = tuple(
            tuple(
                (
                    field,
                    *_span(field),
                    (field.literal,) if strict else (field.literal, *field.lenient_literals),
                )
                for field in fields
                if field.kind is Kind.CONSTANT
            )
            for strict in (True, False)
        )
        self.parsed = tuple(
            (field.attr, field, *_span(field), _PARSERS[field.kind])
            for field in fields
            if field.attr is not None
        )
        self.checks = tuple(
            tuple(
                (field, *_span(field), rule)
                for field in fields
                for rule in field.checks
                if strict or not rule.strict_only
            )
            for strict in (True, False)
        )

    def read(self, record: _Record, strict: bool) -> T:
        text, mode = record.text, 0 if strict else 1
        if record.name != self.layout.name:
            record = replace(record, layout_name=self.layout.name)
        for field, begin, end, allowed in self.constants[mode]:
            if text[begin:end] not in allowed:
                record.fail(
                    field.name, f"expected {' or '.join(map(repr, allowed))}, got {text[begin:end]!r}"
                )
        values = {
            attr: parse(record, field, text[begin:end]) for attr, field, begin, end, parse in self.parsed
        }
        for field, begin, end, rule in self.checks[mode]:
            if rule.pattern.fullmatch(text[begin:end]) is None:
                record.fail(field.name, f"expected {rule.expected}, got {text[begin:end]!r}")
        return self.layout.model(**values)


_FILE_HEADER = _RecordReader(FILE_HEADER)
_BATCH_HEADER = _RecordReader(BATCH_HEADER)
_ENTRY_DETAIL = _RecordReader(ENTRY_DETAIL)
_ENTRY_BY_SEC = {sec: _RecordReader(layout) for sec, layout in ENTRY_LAYOUTS.items()}
# By layout name (unique but for the raw record's, which is looked up only when no layout fits).
_ADDENDA = {layout.name: _RecordReader(layout) for layout in ADDENDA_RECORDS if layout is not RAW_ADDENDA}
_ADDENDA_FALLBACK = _RecordReader(ADDENDA)  # its type code check names what an unknown type lacks
_RAW_ADDENDA = _RecordReader(RAW_ADDENDA)
_BATCH_CONTROL = _RecordReader(BATCH_CONTROL)
_FILE_CONTROL = _RecordReader(FILE_CONTROL)


# --- Records -----------------------------------------------------------------------------------


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


class _Cursor:
    def __init__(self, records: list[_Record]) -> None:
        self.records = records
        self.index = 0

    def peek_type(self) -> str | None:
        return self.records[self.index].text[0] if self.index < len(self.records) else None

    def take(self, expected: Layout[Any]) -> _Record:
        code = expected.type_code
        if self.index >= len(self.records):
            last = self.records[-1]
            raise NachaParseError(last.line + 1, expected.name, "record type", "unexpected end of file")
        record = self.records[self.index]
        if record.text[0] != code:
            record.fail("record type", f"expected {expected.name} ({code}), got {record.text[0]!r}")
        self.index += 1
        return record


# --- Checks across records ---------------------------------------------------------------------


def _shown(field: Field, value: object) -> str:
    return f"{value:0{field.width}d}" if isinstance(value, int) else repr(value)


def _check_fields[T](record: _Record, layout: Layout[T], stated: T, expected: T, source: str) -> None:
    """Fail on the first field of `stated` (read from `record`) that differs from `expected`."""
    for field in layout.fields:
        if field.attr is None:
            continue
        want, got = getattr(expected, field.attr), getattr(stated, field.attr)
        if want != got:
            record.fail(field.name, f"expected {_shown(field, want)} ({source}), got {_shown(field, got)}")


def _check_batch(header_record: _Record, control_record: _Record, batch: Batch, strict: bool) -> None:
    header, entries = batch.header, batch.entries
    if not entries:
        control_record.fail("entry/addenda count", "a batch needs at least one entry")
    # The message authentication code is the only field the entries do not imply.
    expected = replace(
        batch_control(header, entries), message_authentication_code=batch.control.message_authentication_code
    )
    _check_fields(control_record, BATCH_CONTROL, batch.control, expected, "from the batch header and entries")
    if strict:
        if header.service_class_code == SERVICE_CLASS_CREDITS and any(e.is_debit for e in entries):
            header_record.fail("service class code", "220 (credits only) but the batch has debit entries")
        if header.service_class_code == SERVICE_CLASS_DEBITS and any(e.is_credit for e in entries):
            header_record.fail("service class code", "225 (debits only) but the batch has credit entries")


def _read_entry(
    record: _Record, header: BatchHeader, strict: bool, previous: EntryDetail | None
) -> EntryDetail:
    entry = _ENTRY_BY_SEC.get(header.sec_code, _ENTRY_DETAIL).read(record, strict)
    if not strict:
        return entry
    expected_check_digit = routing_check_digit(entry.rdfi_routing)
    if entry.check_digit != expected_check_digit:
        record.fail(
            "check digit",
            f"expected {expected_check_digit} for RDFI {entry.rdfi_routing}, got {entry.check_digit}",
        )
    if entry.trace_number[:8] != header.odfi_routing:
        record.fail(
            "trace number",
            f"expected to start with ODFI routing {header.odfi_routing}, got {entry.trace_number}",
        )
    if previous is not None and entry.trace_number <= previous.trace_number:
        record.fail(
            "trace number",
            f"expected ascending trace numbers, got {entry.trace_number} after {previous.trace_number}",
        )
    if entry.is_prenote and entry.amount_cents != 0:
        code, amount = entry.transaction_code, entry.amount_cents
        record.fail("amount", f"expected zero in a prenote (transaction code {code}), got {amount}")
    return entry


def _read_addenda(record: _Record, entry: EntryDetail, position: int, strict: bool) -> AddendaRecord:
    """The `position`th addenda record (from 1) of `entry`; strict mode checks its sequence or trace."""
    layout = addenda_layout(record.text)
    if layout is None:
        reader: _RecordReader[Any] = _ADDENDA_FALLBACK if strict else _RAW_ADDENDA
    else:
        reader = _ADDENDA[layout.name]
    addenda: AddendaRecord = reader.read(record, strict)
    record = replace(record, layout_name=reader.layout.name)
    if not strict or isinstance(addenda, RawAddenda):
        return addenda
    if not isinstance(addenda, Addenda):
        if addenda.trace_number != entry.trace_number:
            record.fail(
                "trace number", f"expected {entry.trace_number} (the entry's), got {addenda.trace_number}"
            )
        return addenda
    if addenda.addenda_sequence_number != position:
        record.fail(
            "addenda sequence number", f"expected {position:04d}, got {addenda.addenda_sequence_number:04d}"
        )
    if addenda.entry_detail_sequence_number != int(entry.trace_number[8:]):
        record.fail(
            "entry detail sequence number",
            f"expected {entry.trace_number[8:]} (from trace number), "
            f"got {addenda.entry_detail_sequence_number:07d}",
        )
    return addenda


def _with_addenda(
    cursor: _Cursor, entry_record: _Record, entry: EntryDetail, sec_code: str, strict: bool
) -> EntryDetail:
    """The entry with the addenda records that follow it, as many as there are."""
    if entry.addenda_indicator == 0:
        if cursor.peek_type() == ADDENDA.type_code:
            cursor.records[cursor.index].fail(
                "record type", "addenda record after an entry whose addenda indicator is 0"
            )
        return entry
    addenda = [_read_addenda(cursor.take(ADDENDA), entry, 1, strict)]
    while cursor.peek_type() == ADDENDA.type_code:
        record = cursor.take(ADDENDA)
        if strict and sec_code not in _SEVERAL_ADDENDA:
            record.fail("record type", f"a {sec_code} entry carries at most one addenda record")
        addenda.append(_read_addenda(record, entry, len(addenda) + 1, strict))
    if isinstance(entry, CtxEntryDetail) and entry.addenda_count != len(addenda):
        entry_record.fail(
            "number of addenda records",
            f"expected {len(addenda):04d} (the addenda records that follow), got {entry.addenda_count:04d}",
        )
    return replace(entry, addenda=tuple(addenda))


def _parse_batch(cursor: _Cursor, strict: bool) -> Batch:
    header_record = cursor.take(BATCH_HEADER)
    header = _BATCH_HEADER.read(header_record, strict)
    entries: list[EntryDetail] = []
    while cursor.peek_type() == ENTRY_DETAIL.type_code:
        record = cursor.take(ENTRY_DETAIL)
        entry = _read_entry(record, header, strict, entries[-1] if entries else None)
        entries.append(_with_addenda(cursor, record, entry, header.sec_code, strict))
    control_record = cursor.take(BATCH_CONTROL)
    batch = Batch(header, tuple(entries), _BATCH_CONTROL.read(control_record, strict))
    _check_batch(header_record, control_record, batch, strict)
    return batch


def _parse_batches(cursor: _Cursor, strict: bool) -> tuple[Batch, ...]:
    batches: list[Batch] = []
    while cursor.peek_type() == BATCH_HEADER.type_code:
        header_record = cursor.records[cursor.index]
        batch = _parse_batch(cursor, strict)
        if strict and batches and batch.header.batch_number <= batches[-1].header.batch_number:
            header_record.fail(
                "batch number",
                f"expected ascending batch numbers, got {batch.header.batch_number} "
                f"after {batches[-1].header.batch_number}",
            )
        batches.append(batch)
    return tuple(batches)


def _check_padding(records: list[_Record], file: AchFile, record_count: int, strict: bool) -> None:
    for record in records[record_count:]:
        if record.text != PADDING_RECORD:
            raise NachaParseError(
                record.line,
                "padding",
                "record",
                f"expected {RECORD_LENGTH} '9' characters after the file control, "
                f"got {record.text.rstrip()!r}",
            )
    expected_records = file.control.block_count * BLOCKING_FACTOR
    if strict and len(records) != expected_records:
        raise NachaParseError(
            records[-1].line,
            "padding",
            "block count",
            f"expected {expected_records} records "
            f"({file.control.block_count} blocks of {BLOCKING_FACTOR}), got {len(records)}",
        )


def parse(text: str, *, strict: bool = True) -> AchFile:
    """Parse an ACH file, checking record order, field formats and every control total.

    Returns (addenda 99), notifications of change (addenda 98), their dishonored, contested and
    refused kinds, and several addenda per entry are read into the model. Strict mode also
    requires exact 94-character "\\n"-terminated records, blocking with all-9 padding records,
    ascending trace numbers and batch numbers, valid RDFI check digits, known reason and change
    codes, and at most one addenda per entry but for CTX. Lenient mode accepts CRLF or CR
    endings, trailing whitespace, short records, lower case (upper-cased), records without line
    breaks, missing padding and addenda types without a layout (kept as `RawAddenda`); it never
    fixes totals. Raises NachaParseError.
    """
    records = _split_records(text, strict)
    if not records:
        raise NachaParseError(1, FILE_HEADER.name, "record type", "empty file")
    cursor = _Cursor(records)
    header = _FILE_HEADER.read(cursor.take(FILE_HEADER), strict)
    batches = _parse_batches(cursor, strict)
    control_record = cursor.take(FILE_CONTROL)
    file = AchFile(header, batches, _FILE_CONTROL.read(control_record, strict))
    _check_fields(control_record, FILE_CONTROL, file.control, file_control(batches), "from the batches")
    _check_padding(records, file, cursor.index, strict)
    return file
