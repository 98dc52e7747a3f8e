"""What banks send: returns, dishonored and contested returns, NOCs, refused NOCs, CTX addenda."""

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paypipe.domain.nacha import (
    CHANGE_REASONS,
    RETURN_REASONS,
    AchFile,
    Addenda,
    AddendaRecord,
    Batch,
    BatchHeader,
    ContestedDishonoredReturn,
    CtxEntryDetail,
    DishonoredReturn,
    EntryCorrection,
    EntryDetail,
    EntryReturn,
    FileHeader,
    RawAddenda,
    RefusedCorrection,
    ReturnKind,
    decode_corrected_data,
    parse,
    write,
)
from paypipe.domain.nacha.layouts import (
    CONTESTED_DISHONORED_RETURN_ADDENDA,
    CORRECTION_ADDENDA,
    CTX_ENTRY_DETAIL,
    DISHONORED_RETURN_ADDENDA,
    REFUSED_CORRECTION_ADDENDA,
    RETURN_ADDENDA,
    Field,
    Kind,
    Layout,
)
from paypipe.domain.nacha.totals import batch_control, file_control
from tests.unit.test_nacha import edit, parse_error, read_fixture, routing_numbers

# --- The code table, as the Nacha Operating Rules publish it ----------------------------------

PUBLISHED_RETURN_CODES = (
    [f"R{n:02d}" for n in range(1, 48)]
    + ["R50", "R51", "R52", "R53", "R61", "R62"]
    + [f"R{n}" for n in range(67, 78)]
    + [f"R{n}" for n in range(80, 86)]
)


def test_every_published_return_code_and_no_other() -> None:
    assert list(RETURN_REASONS) == PUBLISHED_RETURN_CODES
    assert all(reason.title for reason in RETURN_REASONS.values())
    assert RETURN_REASONS["R02"].title == "Account Closed"
    assert RETURN_REASONS["R03"].title == "No Account/Unable to Locate Account"


def test_the_codes_after_which_the_account_takes_no_further_credit() -> None:
    stops = {code for code, reason in RETURN_REASONS.items() if reason.stops_credits}
    # Closed, not found, invalid, sold, bad routing, deceased payee or holder, frozen, non-transaction.
    assert stops == {"R02", "R03", "R04", "R12", "R13", "R14", "R15", "R16", "R20"}
    assert not RETURN_REASONS["R01"].stops_credits  # insufficient funds: try again later


def test_dishonored_and_contested_codes() -> None:
    kinds = {kind: {c for c, r in RETURN_REASONS.items() if r.kind is kind} for kind in ReturnKind}
    assert kinds[ReturnKind.DISHONORED] == {"R61", "R62", "R67", "R68", "R69", "R70"}
    assert kinds[ReturnKind.CONTESTED] == {f"R{n}" for n in range(71, 78)}


def test_change_codes_and_refused_change_codes() -> None:
    changes = [code for code, reason in CHANGE_REASONS.items() if not reason.refused]
    refused = [code for code, reason in CHANGE_REASONS.items() if reason.refused]
    assert changes == [f"C{n:02d}" for n in range(1, 15)]
    assert refused == [f"C{n}" for n in range(61, 70)]
    assert CHANGE_REASONS["C01"].title == "Incorrect DFI Account Number"
    assert all(part.start + part.width - 1 <= 29 for r in CHANGE_REASONS.values() for part in r.corrected)


@pytest.mark.parametrize(
    ("code", "corrected", "decoded"),
    [
        ("C01", "1234567890123", {"account number": "1234567890123"}),
        ("C02", "021000021", {"routing number": "021000021"}),
        ("C03", "021000021   998877", {"routing number": "021000021", "account number": "998877"}),
        ("C04", "JANE Q PUBLIC", {"name": "JANE Q PUBLIC"}),
        ("C05", "32", {"transaction code": "32"}),
        ("C06", "998877" + " " * 14 + "37", {"account number": "998877", "transaction code": "37"}),
        (
            "C07",
            "021000021" + "998877".ljust(17) + "22",
            {"routing number": "021000021", "account number": "998877", "transaction code": "22"},
        ),
        ("C13", "", {}),
        ("C99", "SOMETHING ELSE", {"corrected data": "SOMETHING ELSE"}),
    ],
)
def test_corrected_data_decoded_by_change_code(code: str, corrected: str, decoded: dict[str, str]) -> None:
    assert decode_corrected_data(code, corrected) == decoded


# --- Fixtures in the shapes banks and other ACH software write ---------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "returns_blank_effective_date.ach",
        "noc_corrections.ach",
        "refused_noc.ach",
        "dishonored_and_contested_returns.ach",
        "ctx_many_addenda.ach",
    ],
)
def test_inbound_fixture_rewrites_byte_identical(name: str) -> None:
    text = read_fixture(name)
    assert write(parse(text)) == text
    assert parse(text, strict=False) == parse(text)


TRACE_2 = "071000010000002"


def test_returns_with_blank_effective_date_and_date_of_death() -> None:
    file = parse(read_fixture("returns_blank_effective_date.ach"))
    (batch,) = file.batches
    assert batch.header.effective_entry_date is None and batch.header.settlement_date == ""
    returns = [entry.entry_return for entry in batch.entries]
    assert returns == [
        EntryReturn("R03", "091000010000001", None, "02100002", "", "071000010000001"),
        EntryReturn("R15", "091000010000002", date(2026, 2, 27), "02600959", "ESTATE OF BOB JONES", TRACE_2),
        EntryReturn("R02", "091000010000003", None, "01100001", "", "071000010000003"),
    ]
    assert [entry.transaction_code for entry in batch.entries] == [21, 21, 31]
    assert all(entry.is_credit and entry.correction is None for entry in batch.entries)
    assert batch.control.total_credit_cents == 12_345 + 50_000 + 7_500


def test_lower_case_crlf_return_file_with_zero_effective_date() -> None:
    text = read_fixture("lenient_returns_lower_case_crlf.ach")
    assert parse_error(text) == (1, "file header", "line ending")
    assert parse(text, strict=False) == parse(read_fixture("returns_blank_effective_date.ach"))


def test_notifications_of_change_decode_their_corrected_data() -> None:
    (batch,) = parse(read_fixture("noc_corrections.ach")).batches
    assert batch.header.sec_code == "COR"
    assert all(entry.amount_cents == 0 and entry.entry_return is None for entry in batch.entries)
    corrections = [entry.correction for entry in batch.entries]
    assert all(isinstance(c, EntryCorrection) for c in corrections)
    decoded = [decode_corrected_data(c.code, c.corrected_data) for c in corrections if c is not None]
    assert decoded == [
        {"account number": "987654321"},
        {"routing number": "011000015", "account number": "000222333444"},
        {"transaction code": "32"},
        {"account number": "88888888", "transaction code": "22"},
        {"routing number": "011000015", "account number": "000333444555", "transaction code": "32"},
    ]


def test_refused_notification_of_change() -> None:
    (batch,) = parse(read_fixture("refused_noc.ach")).batches
    (entry,) = batch.entries
    assert entry.correction == RefusedCorrection(
        "C65", "071000010000004", "02100002", "98765432X", "C01", "0000004", "091000010000101"
    )


def test_dishonored_and_contested_dishonored_returns() -> None:
    dishonored, contested = parse(read_fixture("dishonored_and_contested_returns.ach")).batches
    assert dishonored.entries[0].entry_return == DishonoredReturn(
        "R69", "071000010000001", "02100002", "071000010000001", "068", "03", "01 03", "091000010000201"
    )
    assert contested.entries[0].entry_return == ContestedDishonoredReturn(
        "R73", "091000010000201", date(2026, 3, 9), "09100001", "068", "071000010000001", "068", "03",
        "091000010000201", "070", "69", "071000010000011",
    )  # fmt: skip


def test_ctx_entry_with_many_addenda() -> None:
    file = parse(read_fixture("ctx_many_addenda.ach"))
    ((entry,),) = [batch.entries for batch in file.batches]
    assert isinstance(entry, CtxEntryDetail)
    assert entry.addenda_count == len(entry.addenda) == 25
    assert entry.individual_name == "ACME SUPPLY CO"
    assert [a.addenda_sequence_number for a in entry.addenda if isinstance(a, Addenda)] == list(range(1, 26))
    assert file.control.entry_addenda_count == 26 and file.control.block_count == 3


def test_several_addenda_only_for_ctx_in_strict_mode() -> None:
    lines = read_fixture("ctx_many_addenda.ach").split("\n")
    ccd = edit(lines, 1, 51, "CCD")
    assert parse_error(ccd) == (5, "addenda", "record type")
    (entry,) = parse(ccd, strict=False).batches[0].entries
    assert type(entry) is EntryDetail and len(entry.addenda) == 25


def test_an_addenda_type_without_a_layout_is_kept_raw_in_lenient_mode() -> None:
    text = read_fixture("lenient_pos_addenda_02.ach")
    assert parse_error(text) == (4, "addenda", "addenda type code")
    ((entry,),) = [batch.entries for batch in parse(text, strict=False).batches]
    (raw,) = entry.addenda
    assert isinstance(raw, RawAddenda) and raw.addenda_type_code == "02"
    assert raw.text.startswith("TERM0001 MAIN ST STORE") and raw.text.endswith("SEATTLE      WA")


@pytest.mark.parametrize(
    ("name", "line", "record_type", "field"),
    [
        ("malformed_return_date_of_death.ach", 6, "return addenda", "date of death"),
        ("malformed_noc_change_code.ach", 6, "notification of change addenda", "change code"),
        ("malformed_ctx_addenda_count.ach", 3, "entry detail", "number of addenda records"),
        (
            "malformed_refused_noc_trace_sequence.ach",
            4,
            "refused notification of change addenda",
            "trace sequence number",
        ),
    ],
)
def test_malformed_inbound_files_are_refused(name: str, line: int, record_type: str, field: str) -> None:
    assert parse_error(read_fixture(name)) == (line, record_type, field)


def test_strict_mode_refuses_unknown_codes_and_a_return_trace_not_the_entrys() -> None:
    lines = read_fixture("returns_blank_effective_date.ach").split("\n")
    unknown = edit(list(lines), 3, 4, "R99")
    assert parse_error(unknown) == (4, "return addenda", "return reason code")
    assert parse(unknown, strict=False).batches[0].entries[0].entry_return.code == "R99"  # type: ignore[union-attr]
    assert parse_error(edit(list(lines), 3, 80, "071000010000009")) == (4, "return addenda", "trace number")


# --- Every digit field of the inbound layouts names its line, record and field ----------------


@pytest.mark.parametrize(
    ("fixture", "index", "layout", "field"),
    [
        (fixture, index, layout, field)
        for fixture, index, layout in [
            ("returns_blank_effective_date.ach", 3, RETURN_ADDENDA),
            ("noc_corrections.ach", 3, CORRECTION_ADDENDA),
            ("refused_noc.ach", 3, REFUSED_CORRECTION_ADDENDA),
            ("dishonored_and_contested_returns.ach", 3, DISHONORED_RETURN_ADDENDA),
            ("dishonored_and_contested_returns.ach", 7, CONTESTED_DISHONORED_RETURN_ADDENDA),
            ("ctx_many_addenda.ach", 2, CTX_ENTRY_DETAIL),
        ]
        for field in layout.fields
        if field.kind in (Kind.NUMERIC, Kind.DIGITS, Kind.DATE_OR_BLANK)
    ],
    ids=lambda value: value.name if isinstance(value, Field) else None,
)
def test_a_letter_in_an_inbound_digit_field_names_its_line_record_and_field(
    fixture: str, index: int, layout: Layout[object], field: Field
) -> None:
    text = edit(read_fixture(fixture).split("\n"), index, field.start, "X")
    assert parse_error(text) == (index + 1, layout.name, field.name)


# --- Round trip of what the writer can write for the returns and NOCs it sends -----------------

TEXT = st.text("ABCXYZ0189 &*-./\\", max_size=20).map(str.rstrip)
DIGITS = st.from_regex(r"\A[0-9]{15}\Z")
JULIAN = st.sampled_from(["", "001", "068", "365"])
CODES = {kind: [c for c, r in RETURN_REASONS.items() if r.kind is kind] for kind in ReturnKind}
CHANGES = [c for c, r in CHANGE_REASONS.items() if not r.refused]
REFUSALS = [c for c, r in CHANGE_REASONS.items() if r.refused]
DATES = st.none() | st.dates(date(2001, 1, 1), date(2098, 12, 31))


@st.composite
def addenda_for(draw: st.DrawFn, trace: str) -> AddendaRecord:
    original, rdfi = draw(DIGITS), draw(st.from_regex(r"\A[0-9]{8}\Z"))
    two = st.from_regex(r"\A[0-9]{2}\Z")
    kind = draw(st.sampled_from(["return", "dishonored", "contested", "noc", "refused"]))
    if kind == "return":
        return EntryReturn(
            draw(st.sampled_from(CODES[ReturnKind.RETURN])), original, draw(DATES), rdfi, draw(TEXT), trace
        )
    if kind == "dishonored":
        return DishonoredReturn(
            draw(st.sampled_from(CODES[ReturnKind.DISHONORED])),
            original,
            rdfi,
            draw(DIGITS),
            draw(JULIAN),
            draw(two),
            draw(TEXT),
            trace,
        )
    if kind == "contested":
        return ContestedDishonoredReturn(
            draw(st.sampled_from(CODES[ReturnKind.CONTESTED])),
            original,
            draw(DATES),
            rdfi,
            draw(JULIAN),
            draw(DIGITS),
            draw(JULIAN),
            draw(two),
            draw(DIGITS),
            draw(JULIAN),
            draw(two),
            trace,
        )
    if kind == "noc":
        return EntryCorrection(draw(st.sampled_from(CHANGES)), original, rdfi, draw(TEXT), trace)
    return RefusedCorrection(
        draw(st.sampled_from(REFUSALS)), original, rdfi, draw(TEXT), draw(st.sampled_from(CHANGES)),
        draw(st.from_regex(r"\A[0-9]{7}\Z")), trace,
    )  # fmt: skip


@st.composite
def return_files(draw: st.DrawFn) -> AchFile:
    odfi = "07100001"
    effective = draw(DATES)
    header = BatchHeader(
        220, "PAYPIPE ESCROW", "", "1234567890", "PPD", "RETURNS", "", effective, "", "1", odfi, 1
    )
    entries = []
    for sequence in range(1, draw(st.integers(1, 12)) + 1):
        routing, trace = draw(routing_numbers()), f"{odfi}{sequence:07d}"
        addenda = draw(addenda_for(trace))
        correction = isinstance(addenda, EntryCorrection | RefusedCorrection)
        entries.append(EntryDetail(
            draw(st.sampled_from([21, 31] if correction else [21, 31, 22])), routing[:8], routing[8],
            draw(st.from_regex(r"\A[0-9A-Z]{1,17}\Z")), 0 if correction else draw(st.integers(1, 10**9)),
            draw(TEXT.map(lambda s: s[:15].rstrip())), draw(TEXT), "", 1, trace, (addenda,),
        ))  # fmt: skip
    file_header = FileHeader("091000019", "071000013", date(2026, 3, 9), None, "A", "PAYPIPE", "FED")
    batches = [Batch(header, tuple(entries), batch_control(header, entries))]
    if draw(st.booleans()):
        batches.append(draw(ctx_batches(replace(header, sec_code="CTX", batch_number=2))))
    return AchFile(file_header, tuple(batches), file_control(batches))


@st.composite
def ctx_batches(draw: st.DrawFn, header: BatchHeader) -> Batch:
    """One CTX entry with its remittance in as many addenda as drawn."""
    routing, trace = draw(routing_numbers()), f"{header.odfi_routing}0000100"
    remittance = draw(st.lists(TEXT, min_size=1, max_size=40))
    addenda = tuple(Addenda(text, n, 100) for n, text in enumerate(remittance, start=1))
    entry = CtxEntryDetail(
        22, routing[:8], routing[8], "998877", draw(st.integers(1, 10**9)), "INV-1", "ACME SUPPLY CO", "", 1,
        trace, addenda, addenda_count=len(addenda),
    )  # fmt: skip
    return Batch(header, (entry,), batch_control(header, [entry]))


@settings(max_examples=150)
@given(return_files())
def test_returns_and_nocs_round_trip(file: AchFile) -> None:
    text = write(file)
    assert parse(text) == file
    assert parse(text, strict=False) == file
    assert parse(text.replace("\n", "\r\n"), strict=False) == file
