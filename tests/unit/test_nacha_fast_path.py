"""The strict reader's compiled patterns read a record exactly as its field-by-field path does."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypipe.domain.nacha import NachaParseError, parse
from paypipe.domain.nacha import reader as nacha_reader
from tests.unit.test_nacha import FIXTURES

READERS: list[nacha_reader._RecordReader[Any]] = [
    nacha_reader._FILE_HEADER,
    nacha_reader._BATCH_HEADER,
    nacha_reader._ENTRY_DETAIL,
    *nacha_reader._ENTRY_BY_SEC.values(),
    *nacha_reader._ADDENDA.values(),
    nacha_reader._ADDENDA_FALLBACK,
    nacha_reader._BATCH_CONTROL,
    nacha_reader._FILE_CONTROL,
]
RECORDS = sorted(
    {
        line
        for path in FIXTURES.glob("*.ach")
        for line in path.read_bytes().decode("ascii").split("\n")
        if len(line) == 94 and not line.startswith("9999")
    }
)
# Digits, letters of both cases, blanks, punctuation, a control character and non-ASCII.
REPLACEMENTS = st.sampled_from("0123456789 AZaz-*/\t\x0b\x00é٣\u3000")


def detailed_or_none(reader: nacha_reader._RecordReader[Any], text: str) -> object:
    try:
        return reader.read_detailed(nacha_reader._Record(text, 1), strict=True)
    except NachaParseError:
        return None


def assert_same_reading(text: str) -> None:
    for reader in READERS:
        if text[0] == reader.layout.type_code:
            fast, detailed = reader.read_fast(text), detailed_or_none(reader, text)
            assert fast == detailed, (reader.layout.name, text)
            assert type(fast) is type(detailed)


def test_every_fixture_record_reads_the_same_both_ways() -> None:
    assert len(RECORDS) > 50
    read = 0
    for text in RECORDS:
        assert_same_reading(text)
        read += any(
            reader.read_fast(text) is not None for reader in READERS if text[0] == reader.layout.type_code
        )
    assert read > len(RECORDS) // 2  # the fast path reads most of them (the malformed ones aside)


@given(
    st.sampled_from(RECORDS), st.lists(st.tuples(st.integers(1, 93), REPLACEMENTS), min_size=1, max_size=3)
)
def test_an_edited_record_reads_the_same_both_ways(text: str, edits: list[tuple[int, str]]) -> None:
    for position, replacement in edits:
        text = text[:position] + replacement + text[position + 1 :]
    assert_same_reading(text)


def test_a_parse_leaves_the_garbage_collector_as_it_found_it() -> None:
    text = (FIXTURES / "ppd_credits_no_offset.ach").read_text()
    assert gc.isenabled()
    parse(text)
    assert gc.isenabled()
    with pytest.raises(NachaParseError):
        parse(text.replace("\n", "\r\n", 1))
    assert gc.isenabled()
    gc.disable()
    try:
        parse(text)
        assert not gc.isenabled()
    finally:
        gc.enable()
