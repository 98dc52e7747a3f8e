"""NACHA reader: each record sliced and parsed from its layout, then every control total checked."""

from __future__ import annotations

import gc
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, is_dataclass, replace
from dataclasses import fields as dataclass_fields
from datetime import date, time
from typing import Any, NoReturn, cast

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
from paypipe.domain.nacha.totals import Tally, file_control

_PRINTABLE = frozenset(chr(code) for code in range(0x20, 0x7F))
_NO_DATE = frozenset((" " * 6, "0" * 6))
# SEC codes whose entries may carry more than one addenda record in strict mode: CTX counts up to
# 9,999 in the entry (IAT's are addenda types without a layout here).
_SEVERAL_ADDENDA = frozenset({"CTX"})


@dataclass(slots=True)
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


# --- The fast path: one compiled pattern per layout, the detailed path only to explain a failure ---


def _yymmdd(raw: str) -> date:
    return date(2000 + int(raw[:2]), int(raw[2:4]), int(raw[4:]))


def _hhmm_or_blank(raw: str) -> time | None:
    return None if raw.isspace() else time(int(raw[:2]), int(raw[2:]))


# What each kind's text converts to once the pattern matched (a ValueError sends it the detailed way).
_CONVERTERS: dict[Kind, Callable[[str], Any]] = {
    Kind.NUMERIC: int,
    Kind.ALPHANUMERIC: str.rstrip,
    Kind.ROUTING: str.strip,
    Kind.DATE: _yymmdd,
    Kind.DATE_OR_BLANK: lambda raw: None if raw in _NO_DATE else _yymmdd(raw),
    Kind.TIME: _hhmm_or_blank,
}


def _strict_pattern(field: Field) -> str:
    """The strict shape of ``field``'s text as the detailed parsers and checks accept it (grouped
    when read). Each check must match the field's whole span: the lookbehind pins its end."""
    width, end = field.width, field.start - 1 + field.width
    pinned = rf"(?<=\A.{{{end}}})"
    checks = "".join(f"(?=(?:{rule.pattern.pattern}){pinned})" for rule in field.checks)
    if field.kind is Kind.CONSTANT:
        shape = re.escape(field.literal)
    elif field.attr is None:
        shape = f".{{{width}}}"  # reserved space is not read
    elif field.kind is Kind.ALPHANUMERIC:
        shape = f"[ -~]{{{width}}}"  # printable ASCII
    elif field.kind is Kind.ROUTING:
        alnum = "[0-9A-Za-z]"
        shape = f" {alnum}{{{width - 1}}}|{alnum}{{{width - 1}}} |{alnum}{{{width}}}"
    elif field.kind is Kind.DATE_OR_BLANK:
        shape = f" {{{width}}}|[0-9]{{{width}}}"
    elif field.kind is Kind.TIME:
        shape = rf"\s{{{width}}}|[0-9]{{{width}}}"  # blank as str.strip() sees it
    else:
        shape = f"[0-9]{{{width}}}"
    return f"{checks}(?P<{field.attr}>{shape})" if field.attr is not None else f"{checks}(?:{shape})"


def _plain_dataclass(model: object) -> bool:
    """One whose instances can be given their values as ``__dict__`` (no slots, no ``__post_init__``)."""
    return (
        isinstance(model, type)
        and is_dataclass(model)
        and not hasattr(model, "__post_init__")
        and not any("__slots__" in vars(kind) for kind in model.__mro__)
    )


def _fast_reader[T](layout: Layout[T]) -> Callable[[str], T | None]:
    """A function reading a record of ``layout`` in strict mode, or returning None when anything is
    wrong with it: one match of the layout's pattern, then each value converted in place.

    Generated from the layout, as dataclasses generate ``__init__``: the values of a plain dataclass
    become its ``__dict__`` (converted and checked already); any other model is called.
    """
    read = [field for field in layout.fields if field.attr is not None]
    namespace: dict[str, Any] = {
        "fullmatch": re.compile("".join(map(_strict_pattern, layout.fields)), re.DOTALL).fullmatch,
        "model": layout.model,
        "new": object.__new__,
        "set_attribute": object.__setattr__,
    }
    items = []
    for number, field in enumerate(read):
        converter = _CONVERTERS.get(field.kind)
        namespace[f"convert{number}"] = converter
        items.append(f"{field.attr!r}: " + (f"convert{number}(v{number})" if converter else f"v{number}"))
    plain = _plain_dataclass(layout.model)
    if plain:
        attrs = {field.attr for field in read}
        for f in dataclass_fields(layout.model):  # type: ignore[arg-type]
            if f.name not in attrs:
                if f.default is MISSING:
                    raise TypeError(
                        f"{layout.name}: the layout leaves {f.name}, which has no default, unread"
                    )
                namespace[f"default_{f.name}"] = f.default
                items.append(f"{f.name!r}: default_{f.name}")
    unpack = "".join(f"v{number}, " for number in range(len(read)))
    made = (
        "instance = new(model)\n    set_attribute(instance, '__dict__', values)\n    return instance"
        if plain
        else "return model(**values)"
    )
    source = (
        "def read_fast(text):\n    match = fullmatch(text)\n    if match is None:\n        return None\n"
        f"    ({unpack}) = match.groups()\n    try:\n        values = {{{', '.join(items)}}}\n"
        f"    except ValueError:\n        return None\n    {made}\n"
    )
    exec(source, namespace)  # noqa: S102 - the source is made from the layout's own constants
    return cast(Callable[[str], T | None], namespace["read_fast"])


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
        self.read_fast = _fast_reader(layout)

    def read(self, record: _Record, strict: bool) -> T:
        if strict and (fast := self.read_fast(record.text)) is not None:
            return fast
        return self.read_detailed(record, strict)

    def read_detailed(self, record: _Record, strict: bool) -> T:
        """Field by field: the same result as ``read_fast``, and on a failure the error naming it."""
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
_ENTRY_CODE, _ADDENDA_CODE = ENTRY_DETAIL.type_code, ADDENDA.type_code


# --- Records -----------------------------------------------------------------------------------


def _strict_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" in text or any(len(line) != RECORD_LENGTH for line in lines):
        for number, line in enumerate(lines, start=1):
            record = _Record(line, number)
            if "\r" in line:
                record.fail("line ending", 'expected "\\n" line endings, found "\\r"')
            if len(line) != RECORD_LENGTH:
                record.fail("record length", f"expected {RECORD_LENGTH} characters, got {len(line)}")
    return lines


def _lenient_lines(text: str) -> tuple[list[str], list[int]]:
    """The records, upper-cased and padded, and their line numbers."""
    numbered = [(n, line.rstrip()) for n, line in enumerate(text.splitlines(), start=1)]
    numbered = [(n, line) for n, line in numbered if line]
    if len(numbered) == 1 and len(numbered[0][1]) > RECORD_LENGTH:
        # A file written without line breaks: fixed-width records back to back.
        stream = numbered[0][1].ljust(math.ceil(len(numbered[0][1]) / RECORD_LENGTH) * RECORD_LENGTH)
        numbered = [
            (i // RECORD_LENGTH + 1, stream[i : i + RECORD_LENGTH].rstrip())
            for i in range(0, len(stream), RECORD_LENGTH)
        ]
    for number, line in numbered:
        if len(line) > RECORD_LENGTH:
            _Record(line.upper(), number).fail(
                "record length", f"expected {RECORD_LENGTH} characters, got {len(line)}"
            )
    return [line.upper().ljust(RECORD_LENGTH) for _, line in numbered], [number for number, _ in numbered]


class _Cursor:
    """The records in order; a record's `_Record` (its line, for errors) is made when asked for."""

    def __init__(self, text: str, strict: bool) -> None:
        self.lines: list[int] | None = None  # line numbers when not one record per line
        if strict:
            self.texts = _strict_lines(text)
        else:
            self.texts, self.lines = _lenient_lines(text)
        self.index = 0

    def __len__(self) -> int:
        return len(self.texts)

    def record_at(self, index: int) -> _Record:
        return _Record(self.texts[index], index + 1 if self.lines is None else self.lines[index])

    def peek_type(self) -> str | None:
        return self.texts[self.index][0] if self.index < len(self.texts) else None

    def take_text(self, expected: Layout[Any]) -> str:
        """The next record's text, which must be of the expected type."""
        if self.index >= len(self.texts):
            last = self.record_at(len(self.texts) - 1)
            raise NachaParseError(last.line + 1, expected.name, "record type", "unexpected end of file")
        text = self.texts[self.index]
        if text[0] != expected.type_code:
            self.record_at(self.index).fail(
                "record type", f"expected {expected.name} ({expected.type_code}), got {text[0]!r}"
            )
        self.index += 1
        return text

    def take(self, expected: Layout[Any]) -> _Record:
        self.take_text(expected)
        return self.record_at(self.index - 1)


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


def _check_batch(
    header_record: _Record, control_record: _Record, batch: Batch, tally: Tally, strict: bool
) -> None:
    header = batch.header
    if not batch.entries:
        control_record.fail("entry/addenda count", "a batch needs at least one entry")
    # The message authentication code is the only field the entries do not imply.
    expected = replace(
        tally.control(header), message_authentication_code=batch.control.message_authentication_code
    )
    _check_fields(control_record, BATCH_CONTROL, batch.control, expected, "from the batch header and entries")
    if strict:
        if header.service_class_code == SERVICE_CLASS_CREDITS and tally.debits:
            header_record.fail("service class code", "220 (credits only) but the batch has debit entries")
        if header.service_class_code == SERVICE_CLASS_DEBITS and tally.credits:
            header_record.fail("service class code", "225 (debits only) but the batch has credit entries")


def _entry_problem(
    entry: EntryDetail, header: BatchHeader, previous: EntryDetail | None
) -> tuple[str, str] | None:
    """What strict mode finds wrong with an entry in its batch (field, message), if anything."""
    expected_check_digit = routing_check_digit(entry.rdfi_routing)
    if entry.check_digit != expected_check_digit:
        return (
            "check digit",
            f"expected {expected_check_digit} for RDFI {entry.rdfi_routing}, got {entry.check_digit}",
        )
    if entry.trace_number[:8] != header.odfi_routing:
        return (
            "trace number",
            f"expected to start with ODFI routing {header.odfi_routing}, got {entry.trace_number}",
        )
    if previous is not None and entry.trace_number <= previous.trace_number:
        return (
            "trace number",
            f"expected ascending trace numbers, got {entry.trace_number} after {previous.trace_number}",
        )
    if entry.is_prenote and entry.amount_cents != 0:
        code, amount = entry.transaction_code, entry.amount_cents
        return "amount", f"expected zero in a prenote (transaction code {code}), got {amount}"
    return None


def _parse_entries(cursor: _Cursor, header: BatchHeader, tally: Tally, strict: bool) -> list[EntryDetail]:
    """The batch's entries with their addenda, tallied; strict mode reads each by its pattern first."""
    reader = _ENTRY_BY_SEC.get(header.sec_code, _ENTRY_DETAIL)
    entries: list[EntryDetail] = []
    previous: EntryDetail | None = None
    texts, entry_code = cursor.texts, _ENTRY_CODE
    while cursor.index < len(texts) and (text := texts[cursor.index])[0] == entry_code:
        index = cursor.index
        cursor.index += 1
        entry = reader.read_fast(text) if strict else None
        if entry is None:
            entry = reader.read_detailed(cursor.record_at(index), strict)
        if strict and (problem := _entry_problem(entry, header, previous)) is not None:
            cursor.record_at(index).fail(*problem)
        if entry.addenda_indicator or cursor.peek_type() == _ADDENDA_CODE:
            entry = _with_addenda(cursor, index, entry, header.sec_code, strict)
        tally.add(entry)
        entries.append(entry)
        previous = entry
    return entries


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
    cursor: _Cursor, index: int, entry: EntryDetail, sec_code: str, strict: bool
) -> EntryDetail:
    """The entry (the record at ``index``) with the addenda records that follow it, as many as there are."""
    if entry.addenda_indicator == 0:
        if cursor.peek_type() == _ADDENDA_CODE:
            cursor.record_at(cursor.index).fail(
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
        cursor.record_at(index).fail(
            "number of addenda records",
            f"expected {len(addenda):04d} (the addenda records that follow), got {entry.addenda_count:04d}",
        )
    return replace(entry, addenda=tuple(addenda))


def _parse_batch(cursor: _Cursor, strict: bool) -> Batch:
    header_record = cursor.take(BATCH_HEADER)
    header = _BATCH_HEADER.read(header_record, strict)
    tally = Tally()
    entries = _parse_entries(cursor, header, tally, strict)
    control_record = cursor.take(BATCH_CONTROL)
    batch = Batch(header, tuple(entries), _BATCH_CONTROL.read(control_record, strict))
    _check_batch(header_record, control_record, batch, tally, strict)
    return batch


def _parse_batches(cursor: _Cursor, strict: bool) -> tuple[Batch, ...]:
    batches: list[Batch] = []
    while cursor.peek_type() == BATCH_HEADER.type_code:
        header_record = cursor.record_at(cursor.index)
        batch = _parse_batch(cursor, strict)
        if strict and batches and batch.header.batch_number <= batches[-1].header.batch_number:
            header_record.fail(
                "batch number",
                f"expected ascending batch numbers, got {batch.header.batch_number} "
                f"after {batches[-1].header.batch_number}",
            )
        batches.append(batch)
    return tuple(batches)


def _check_padding(cursor: _Cursor, file: AchFile, strict: bool) -> None:
    """The records after the file control (from the cursor on)."""
    for index in range(cursor.index, len(cursor)):
        if cursor.texts[index] != PADDING_RECORD:
            record = cursor.record_at(index)
            raise NachaParseError(
                record.line,
                "padding",
                "record",
                f"expected {RECORD_LENGTH} '9' characters after the file control, "
                f"got {record.text.rstrip()!r}",
            )
    expected_records = file.control.block_count * BLOCKING_FACTOR
    if strict and len(cursor) != expected_records:
        raise NachaParseError(
            cursor.record_at(len(cursor) - 1).line,
            "padding",
            "block count",
            f"expected {expected_records} records "
            f"({file.control.block_count} blocks of {BLOCKING_FACTOR}), got {len(cursor)}",
        )


@contextmanager
def _collection_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a file is read: its records form no cycles, and the
    collections their allocations trigger would only re-scan the entries read so far."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    with _collection_paused():
        cursor = _Cursor(text, strict)
        if not len(cursor):
            raise NachaParseError(1, FILE_HEADER.name, "record type", "empty file")
        header = _FILE_HEADER.read(cursor.take(FILE_HEADER), strict)
        batches = _parse_batches(cursor, strict)
        control_record = cursor.take(FILE_CONTROL)
        file = AchFile(header, batches, _FILE_CONTROL.read(control_record, strict))
        _check_fields(control_record, FILE_CONTROL, file.control, file_control(batches), "from the batches")
        _check_padding(cursor, file, strict)
        return file
