"""NACHA writer: each record formatted from its layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paypipe.domain.nacha.layouts import (
    ADDENDA_RECORDS,
    BATCH_CONTROL,
    BATCH_HEADER,
    ENTRY_DETAIL,
    ENTRY_LAYOUTS,
    FILE_CONTROL,
    FILE_HEADER,
    Field,
    Kind,
    Layout,
    NachaFieldError,
)
from paypipe.domain.nacha.model import BLOCKING_FACTOR, PADDING_RECORD, AchFile


class _Unfit(ValueError):
    """A value its field cannot hold; the record writer names the line and record."""

    def __init__(self, field: Field, message: str) -> None:
        super().__init__(message)
        self.field = field


def _numeric(field: Field, value: Any) -> str:
    if not (isinstance(value, int) and 0 <= value < 10**field.width):
        raise _Unfit(field, f"{value} does not fit {field.width} digits")
    return f"{value:0{field.width}d}"


def _digits(field: Field, value: Any) -> str:
    if not (isinstance(value, str) and len(value) == field.width and value.isascii() and value.isdigit()):
        raise _Unfit(field, f"expected {field.width} digits, got {value!r}")
    return value


def _fitting(field: Field, value: Any) -> str:
    if not isinstance(value, str) or len(value) > field.width:
        raise _Unfit(field, f"{value!r} is longer than {field.width} characters")
    return value


def _constant(field: Field, value: Any) -> str:
    if field.attr is not None and value != field.literal:
        raise _Unfit(field, f"expected {field.literal!r}, got {value!r}")
    return field.literal


_FORMATS: dict[Kind, Callable[[Field, Any], str]] = {
    Kind.NUMERIC: _numeric,
    Kind.DIGITS: _digits,
    Kind.ALPHANUMERIC: lambda field, value: _fitting(field, value).ljust(field.width),
    Kind.ROUTING: lambda field, value: _fitting(field, value).rjust(field.width),
    Kind.DATE: lambda field, value: f"{value:%y%m%d}",
    Kind.DATE_OR_BLANK: lambda field, value: " " * field.width if value is None else f"{value:%y%m%d}",
    Kind.TIME: lambda field, value: " " * field.width if value is None else f"{value:%H%M}",
    Kind.CONSTANT: _constant,
    Kind.BLANK: lambda field, value: " " * field.width,
}


class _RecordWriter[T]:
    """A layout made ready to write: each field with its formatter and the attribute it shows."""

    def __init__(self, layout: Layout[T]) -> None:
        self.layout = layout
        self.steps = tuple((field, _FORMATS[field.kind], field.attr) for field in layout.fields)

    def write(self, value: T, line: int) -> str:
        try:
            return "".join(
                [
                    form(field, None if attr is None else getattr(value, attr))
                    for field, form, attr in self.steps
                ]
            )
        except _Unfit as error:
            raise NachaFieldError(line, self.layout.name, error.field.name, str(error)) from None


_FILE_HEADER = _RecordWriter(FILE_HEADER)
_BATCH_HEADER = _RecordWriter(BATCH_HEADER)
# Entries and addenda by their model: each model has one layout.
_ENTRY_DETAIL: dict[Callable[..., Any], _RecordWriter[Any]] = {
    layout.model: _RecordWriter(layout) for layout in (ENTRY_DETAIL, *ENTRY_LAYOUTS.values())
}
_ADDENDA: dict[Callable[..., Any], _RecordWriter[Any]] = {
    layout.model: _RecordWriter(layout) for layout in ADDENDA_RECORDS
}
_BATCH_CONTROL = _RecordWriter(BATCH_CONTROL)
_FILE_CONTROL = _RecordWriter(FILE_CONTROL)


def write(file: AchFile) -> str:
    """The file as 94-character records with "\\n" endings, padded to a multiple of 10 records.

    Raises NachaFieldError naming the line, record type and field of a value that does not fit.
    """
    records = [_FILE_HEADER.write(file.header, 1)]
    for batch in file.batches:
        records.append(_BATCH_HEADER.write(batch.header, len(records) + 1))
        for entry in batch.entries:
            records.append(_ENTRY_DETAIL[type(entry)].write(entry, len(records) + 1))
            records.extend(
                _ADDENDA[type(addenda)].write(addenda, len(records) + 1) for addenda in entry.addenda
            )
        records.append(_BATCH_CONTROL.write(batch.control, len(records) + 1))
    records.append(_FILE_CONTROL.write(file.control, len(records) + 1))
    records.extend([PADDING_RECORD] * (-len(records) % BLOCKING_FACTOR))
    return "\n".join(records) + "\n"
