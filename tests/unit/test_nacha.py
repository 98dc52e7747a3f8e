import dataclasses
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paypipe.domain.nacha import (
    EASTERN,
    LAYOUTS,
    PADDING_RECORD,
    RECORD_NAMES,
    TRACE_SEQUENCE_SPAN,
    AccountType,
    AchFile,
    Addenda,
    NachaFieldError,
    NachaParseError,
    OffsetAccount,
    Originator,
    PayeeType,
    Payout,
    RawAddenda,
    build_file,
    is_valid_routing_number,
    parse,
    payment_trace_numbers,
    payout_problem,
    routing_check_digit,
    to_nacha_text,
    trace_block_wraps,
    trace_number,
    traces_needed,
    write,
)
from paypipe.domain.nacha.layouts import (
    ADDENDA,
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
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nacha"

ORIGINATOR = Originator(
    immediate_destination="091000019",
    immediate_destination_name="Wells Fargo",
    immediate_origin="1234567890",
    immediate_origin_name="PayPipe Inc",
    company_name="PayPipe Escrow",
    company_id="1234567890",
    odfi_routing="09100001",
    company_entry_description="Payout",
)
WITH_OFFSET = replace(ORIGINATOR, offset_account=OffsetAccount("091000019", "99887766", "checking"))
CREATED = datetime(2025, 6, 10, 14, 5, tzinfo=UTC)  # 10:05 EDT
EFFECTIVE = date(2025, 6, 11)


def payout(
    payment_id: str = "pay_1",
    amount_cents: int = 12_345,
    *,
    name: str = "José Müller",
    routing: str = "021000021",
    account: str = "123456789",
    account_type: AccountType = "checking",
    payee_type: PayeeType = "individual",
) -> Payout:
    return Payout(payment_id, amount_cents, name, routing, account, account_type, payee_type)


def read_fixture(name: str) -> str:
    # Bytes, so CRLF line endings reach the parser unchanged.
    return (FIXTURES / name).read_bytes().decode("ascii")


# --- Known-good vectors ------------------------------------------------------------------------


def test_single_credit_file_vector() -> None:
    text = write(build_file([payout()], ORIGINATOR, effective_date=EFFECTIVE, created_at=CREATED))
    assert text.split("\n") == [
        "101 09100001912345678902506101005A094101WELLS FARGO            PAYPIPE INC                    ",
        "5220PAYPIPE ESCROW                      1234567890PPDPAYOUT          250611   1091000010000001",
        "622021000021123456789        0000012345PAY1           JOSE MULLER             0091000010000001",
        "822000000100021000020000000000000000000123451234567890                         091000010000001",
        "9000001000001000000010002100002000000000000000000012345                                       ",
        *[PADDING_RECORD] * 5,
        "",
    ]
    assert all(len(line) == 94 for line in text.splitlines())


def test_balanced_two_batch_vector() -> None:
    payouts = [
        payout("pay_1", 12_345),
        payout("pay_2", 500_000, name="Acme Widgets LLC", routing="026009593", account="55-1234",
               account_type="savings", payee_type="business"),
    ]  # fmt: skip
    file = build_file(payouts, WITH_OFFSET, effective_date=EFFECTIVE, created_at=CREATED)
    lines = write(file).splitlines()
    assert lines == [
        "101 09100001912345678902506101005A094101WELLS FARGO            PAYPIPE INC                    ",
        "5200PAYPIPE ESCROW                      1234567890PPDPAYOUT          250611   1091000010000001",
        "622021000021123456789        0000012345PAY1           JOSE MULLER             0091000010000001",
        "62709100001999887766         0000012345OFFSET         PAYPIPE ESCROW          0091000010000002",
        "820000000200112000030000000123450000000123451234567890                         091000010000001",
        "5200PAYPIPE ESCROW                      1234567890CCDPAYOUT          250611   1091000010000002",
        "63202600959355-1234          0000500000PAY2           ACME WIDGETS LLC        0091000010000003",
        "62709100001999887766         0000500000OFFSET         PAYPIPE ESCROW          0091000010000004",
        "820000000200117009600000005000000000005000001234567890                         091000010000002",
        "9000002000001000000040022900963000000512345000000512345                                       ",
    ]
    # Entry hash: 02100002 + 09100001 + 02600959 + 09100001.
    assert file.control.entry_hash == 22_900_963
    assert payment_trace_numbers(payouts, file) == {"pay_1": "091000010000001", "pay_2": "091000010000003"}


def test_same_day_file_marks_descriptive_date() -> None:
    file = build_file(
        [payout()], ORIGINATOR, effective_date=date(2025, 6, 10), created_at=CREATED, same_day=True
    )
    assert file.batches[0].header.company_descriptive_date == "SD1005"
    assert file.batches[0].header.effective_entry_date == date(2025, 6, 10)


def test_header_uses_eastern_creation_time() -> None:
    # 03:30 UTC on 2025-01-15 is 22:30 EST on 2025-01-14.
    file = build_file(
        [payout()],
        ORIGINATOR,
        effective_date=date(2025, 1, 15),
        created_at=datetime(2025, 1, 15, 3, 30, tzinfo=UTC),
    )
    assert (file.header.creation_date, file.header.creation_time) == (date(2025, 1, 14), time(22, 30))


def test_routing_check_digit() -> None:
    assert routing_check_digit("02100002") == "1"
    assert is_valid_routing_number("091000019")
    assert not is_valid_routing_number("091000018")
    assert not is_valid_routing_number("09100001")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("José Müller", "JOSE MULLER"),
        ("  Łukasz   Østergaard ", "LUKASZ OSTERGAARD"),
        ("Straße & Söhne GmbH", "STRASSE & SOHNE GMBH"),
        ("O\u2019Brien-Smith", "O'BRIEN-SMITH"),
        ("\uff26\uff55\uff4c\uff4c \uff57\uff49\uff44\uff54\uff48", "FULL WIDTH"),
    ],
)
def test_to_nacha_text_transliterates(raw: str, expected: str) -> None:
    assert to_nacha_text(raw) == expected


@pytest.mark.parametrize("raw", ["Zhang 张", "Café ☕", "A|B", 'Say "hi"'])
def test_to_nacha_text_rejects_other_characters(raw: str) -> None:
    with pytest.raises(ValueError, match="not allowed in a NACHA text field"):
        to_nacha_text(raw)


def test_long_names_are_truncated_to_field_width() -> None:
    file = build_file(
        [payout(name="Bartholomew Alexander Fitzgerald")],
        ORIGINATOR,
        effective_date=EFFECTIVE,
        created_at=CREATED,
    )
    assert file.batches[0].entries[0].individual_name == "BARTHOLOMEW ALEXANDER"  # 22 chars, right-trimmed


@pytest.mark.parametrize(
    ("payouts", "kwargs", "message"),
    [
        ([payout(amount_cents=0)], {}, "amount_cents must be between 1"),
        ([payout(amount_cents=-5)], {}, "amount_cents must be between 1"),
        ([payout(amount_cents=10**10)], {}, "amount_cents must be between 1"),
        ([payout(routing="021000022")], {}, "not a valid 9-digit routing number"),
        ([payout(account="12 34")], {}, "account number"),
        ([payout(account="123456789012345678")], {}, "account number"),
        ([payout(name="   ")], {}, "payee name is empty"),
        ([payout(name="王")], {}, "not allowed"),
        ([payout("a"), payout("a")], {}, "unique"),
        ([], {}, "at least one payout"),
        ([payout()], {"effective_date": date(2025, 6, 9)}, "before the creation date"),
        ([payout()], {"created_at": datetime(2025, 6, 10, 10, 0)}, "timezone-aware"),
        ([payout()], {"same_day": True}, "same-day file"),
        ([payout()], {"file_id_modifier": "a"}, "file id modifier"),
        (
            [payout(amount_cents=100_000_001)],
            {"same_day": True, "effective_date": date(2025, 6, 10)},
            "Same Day ACH limit",
        ),
    ],
)
def test_build_file_rejects_invalid_input(
    payouts: list[Payout], kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"effective_date": EFFECTIVE, "created_at": CREATED, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_file(payouts, ORIGINATOR, **arguments)  # type: ignore[arg-type]


def test_same_day_limit_is_inclusive() -> None:
    file = build_file(
        [payout(amount_cents=100_000_000)],
        ORIGINATOR,
        effective_date=date(2025, 6, 10),
        created_at=CREATED,
        same_day=True,
    )
    assert file.control.total_credit_cents == 100_000_000


@pytest.mark.parametrize(
    ("originator", "message"),
    [
        (replace(ORIGINATOR, company_name="A Very Long Company Name"), "company name"),
        (replace(ORIGINATOR, company_entry_description="Escrow payouts"), "company entry description"),
        (replace(ORIGINATOR, immediate_destination="091000018"), "immediate destination"),
        (replace(ORIGINATOR, odfi_routing="0910001"), "ODFI routing"),
        (replace(ORIGINATOR, company_id="12345678901"), "company id"),
        (
            replace(ORIGINATOR, offset_account=OffsetAccount("091000018", "1", "checking")),
            "offset account routing",
        ),
    ],
)
def test_build_file_rejects_invalid_originator(originator: Originator, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_file([payout()], originator, effective_date=EFFECTIVE, created_at=CREATED)


def test_offset_entry_must_fit_amount_field() -> None:
    payouts = [payout(f"p{i}", 9_000_000_000) for i in range(2)]
    with pytest.raises(ValueError, match="offset entry"):
        build_file(payouts, WITH_OFFSET, effective_date=EFFECTIVE, created_at=CREATED)


# --- Property tests ----------------------------------------------------------------------------


@st.composite
def routing_numbers(draw: st.DrawFn) -> str:
    first_eight = draw(st.from_regex(r"\A[0-9]{8}\Z"))
    return first_eight + routing_check_digit(first_eight)


NAME_ALPHABET = "ABCXYZabcxyz0189 &'-.,éüñçÅØßŁ"


@st.composite
def payouts_strategy(draw: st.DrawFn, max_amount: int) -> list[Payout]:
    def one(payment_id: str) -> Payout:
        return Payout(
            payment_id=payment_id,
            amount_cents=draw(st.integers(min_value=1, max_value=max_amount)),
            payee_name=draw(st.text(NAME_ALPHABET, min_size=1, max_size=40).filter(lambda s: s.strip())),
            routing_number=draw(routing_numbers()),
            account_number=draw(st.from_regex(r"\A[0-9A-Z-]{1,17}\Z")),
            account_type=draw(st.sampled_from(get_args(AccountType))),
            payee_type=draw(st.sampled_from(get_args(PayeeType))),
        )

    ids = draw(st.lists(st.from_regex(r"\A[a-z0-9_-]{1,40}\Z").filter(lambda s: any(c.isalnum() for c in s)),
                        min_size=1, max_size=25, unique=True))  # fmt: skip
    return [one(payment_id) for payment_id in ids]


@st.composite
def built_files(draw: st.DrawFn) -> tuple[list[Payout], AchFile]:
    same_day = draw(st.booleans())
    created = draw(
        st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2098, 1, 1), timezones=st.just(UTC))
    )
    originator = draw(st.sampled_from([ORIGINATOR, WITH_OFFSET]))
    # A same-day offset entry carries the batch total, which the same-day limit bounds too.
    per_entry = (100_000_000 // 25 if originator is WITH_OFFSET else 100_000_000) if same_day else 10**9
    payouts = draw(payouts_strategy(per_entry))
    local_date = created.astimezone(EASTERN).date()
    effective = local_date if same_day else local_date + timedelta(days=draw(st.integers(0, 10)))
    modifier = draw(st.sampled_from("AZ09"))
    first_trace = draw(st.sampled_from([1, 501, TRACE_SEQUENCE_SPAN - 30, TRACE_SEQUENCE_SPAN + 2]))
    file = build_file(
        payouts, originator, effective_date=effective, created_at=created, file_id_modifier=modifier,
        same_day=same_day, first_trace_sequence=first_trace,
    )  # fmt: skip
    return payouts, file


@settings(max_examples=150)
@given(built_files())
def test_round_trip(case: tuple[list[Payout], AchFile]) -> None:
    _, file = case
    text = write(file)
    assert parse(text) == file
    assert parse(text, strict=False) == file
    assert parse(text.replace("\n", "\r\n"), strict=False) == file


@settings(max_examples=150)
@given(built_files())
def test_built_file_invariants(case: tuple[list[Payout], AchFile]) -> None:
    payouts, file = case
    lines = write(file).splitlines()
    assert all(len(line) == 94 for line in lines)
    assert len(lines) % 10 == 0
    assert len(lines) == file.control.block_count * 10
    entries = [entry for batch in file.batches for entry in batch.entries]
    traces = [entry.trace_number for entry in entries]
    first = int(traces[0][8:])
    assert traces == [trace_number("09100001", first + i) for i in range(len(entries))]  # may wrap
    assert len(set(traces)) == len(traces)
    assert file.control.total_credit_cents == sum(p.amount_cents for p in payouts)
    assert file.control.entry_hash == sum(int(e.rdfi_routing) for e in entries) % 10**10
    offset = file.batches[0].header.service_class_code == 200
    assert file.control.total_debit_cents == (file.control.total_credit_cents if offset else 0)
    payee_type_by_trace = {
        trace: next(p.payee_type for p in payouts if p.payment_id == payment_id)
        for payment_id, trace in payment_trace_numbers(payouts, file).items()
    }
    assert len(payee_type_by_trace) == len(payouts)
    for batch in file.batches:
        expected_type = "individual" if batch.header.sec_code == "PPD" else "business"
        for entry in batch.entries:
            if entry.is_credit:
                assert payee_type_by_trace[entry.trace_number] == expected_type
            assert entry.individual_name == entry.individual_name.strip()
            assert all(c.isascii() and not c.islower() for c in entry.individual_name)


# --- Fixtures from other systems ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["ppd_credits_no_offset.ach", "ccd_addenda.ach"])
def test_strict_fixture_rewrites_byte_identical(name: str) -> None:
    text = read_fixture(name)
    assert write(parse(text)) == text


def test_fixture_without_offset() -> None:
    file = parse(read_fixture("ppd_credits_no_offset.ach"))
    assert file.header.immediate_destination == "021000021"
    assert file.header.reference_code == "PAY0612"
    (batch,) = file.batches
    assert batch.header.service_class_code == 220
    assert batch.header.company_descriptive_date == "JUN 25"
    assert [e.amount_cents for e in batch.entries] == [150_000, 98_765, 1]
    assert [e.transaction_code for e in batch.entries] == [22, 32, 22]
    assert batch.entries[1].individual_name == "BOB O'NEIL"
    assert file.control.total_credit_cents == 248_766
    assert file.control.total_debit_cents == 0


def test_fixture_with_offset_and_crlf() -> None:
    text = read_fixture("ppd_ccd_offset_crlf.ach")
    with pytest.raises(NachaParseError) as error:
        parse(text)
    assert (error.value.line, error.value.field) == (1, "line ending")
    file = parse(text, strict=False)
    assert [b.header.sec_code for b in file.batches] == ["PPD", "CCD"]
    assert all(b.header.service_class_code == 200 for b in file.batches)
    assert all(b.control.total_debit_cents == b.control.total_credit_cents for b in file.batches)
    assert file.control.total_credit_cents == 1_262_500
    assert parse(write(file)) == file


def test_fixture_with_addenda() -> None:
    file = parse(read_fixture("ccd_addenda.ach"))
    (batch,) = file.batches
    (entry,) = batch.entries
    (addenda,) = entry.addenda
    assert isinstance(addenda, Addenda)
    assert addenda.payment_related_information == "RMR*IV*778899**45000.00\\"
    assert addenda.entry_detail_sequence_number == 11
    assert batch.control.entry_addenda_count == 2
    assert batch.header.settlement_date == "216"
    assert file.header.creation_time is None


def test_lenient_fixture_unpadded_mixed_case() -> None:
    text = read_fixture("lenient_unpadded_mixed_case.ach")
    with pytest.raises(NachaParseError, match="record length"):
        parse(text)
    file = parse(text, strict=False)
    assert file.header.file_id_modifier == "A"
    assert file.batches[0].entries[0].individual_name == "ANA LOPEZ"
    assert file.batches[0].header.company_entry_description == "REFUND"
    assert parse(write(file)) == file


def test_lenient_fixture_without_line_breaks() -> None:
    text = read_fixture("lenient_no_line_breaks.ach")
    assert "\n" not in text
    file = parse(text, strict=False)
    assert file == replace(parse(read_fixture("ppd_credits_no_offset.ach")), header=file.header)
    assert file.header.file_id_modifier == "C"


@pytest.mark.parametrize(
    ("name", "line", "record_type", "field"),
    [
        ("malformed_amount.ach", 3, "entry detail", "amount"),
        ("malformed_entry_hash.ach", 6, "batch control", "entry hash"),
        ("malformed_file_credit_total.ach", 7, "file control", "total credit"),
        ("malformed_missing_batch_control.ach", 6, "file control", "record type"),
        ("malformed_padding.ach", 9, "padding", "record"),
        ("malformed_short_record.ach", 4, "entry detail", "record length"),
    ],
)
def test_malformed_fixtures_are_rejected(name: str, line: int, record_type: str, field: str) -> None:
    with pytest.raises(NachaParseError) as error:
        parse(read_fixture(name))
    assert (error.value.line, error.value.record_type, error.value.field) == (line, record_type, field)


def test_error_message_names_line_record_and_field() -> None:
    with pytest.raises(NachaParseError) as error:
        parse(read_fixture("malformed_amount.ach"))
    assert str(error.value) == "line 3 (entry detail) field amount: expected 10 digits, got '00000A1000'"


@pytest.mark.parametrize(
    "name", ["malformed_amount.ach", "malformed_entry_hash.ach", "malformed_file_credit_total.ach"]
)
def test_lenient_mode_still_rejects_bad_fields_and_totals(name: str) -> None:
    with pytest.raises(NachaParseError):
        parse(read_fixture(name), strict=False)


# --- Parser strictness on edited records -------------------------------------------------------


def good_lines() -> list[str]:
    return read_fixture("ppd_credits_no_offset.ach").split("\n")


def edit(lines: list[str], index: int, start: int, value: str) -> str:
    """Replace characters at 1-based `start` of line `index` (0-based) and return the text."""
    line = lines[index]
    lines[index] = line[: start - 1] + value + line[start - 1 + len(value) :]
    return "\n".join(lines)


def parse_error(text: str, *, strict: bool = True) -> tuple[int, str, str]:
    with pytest.raises(NachaParseError) as error:
        parse(text, strict=strict)
    return error.value.line, error.value.record_type, error.value.field


def test_rejects_bad_check_digit_in_strict_mode_only() -> None:
    text = edit(good_lines(), 2, 12, "9")  # 02100002 has check digit 1
    assert parse_error(text) == (3, "entry detail", "check digit")
    assert parse(text, strict=False).batches[0].entries[0].check_digit == "9"


def test_rejects_descending_trace_numbers() -> None:
    text = edit(good_lines(), 3, 80, "021000020000001")
    assert parse_error(text) == (4, "entry detail", "trace number")


def test_rejects_bad_dates_and_codes() -> None:
    assert parse_error(edit(good_lines(), 1, 70, "251332")) == (2, "batch header", "effective entry date")
    assert parse_error(edit(good_lines(), 1, 2, "210")) == (2, "batch header", "service class code")
    assert parse_error(edit(good_lines(), 2, 2, "20")) == (3, "entry detail", "transaction code")
    assert parse_error(edit(good_lines(), 0, 35, "095")) == (1, "file header", "record size")
    assert parse_error(edit(good_lines(), 0, 30, "2460")) == (1, "file header", "file creation time")


def test_rejects_debit_in_credit_only_batch() -> None:
    lines = good_lines()
    lines[2] = lines[2][:1] + "27" + lines[2][3:]
    # Totals fixed up so only the service class rule is violated.
    lines[5] = lines[5][:20] + "000000150000000000098766" + lines[5][44:]
    lines[6] = lines[6][:31] + "000000150000000000098766" + lines[6][55:]
    assert parse_error("\n".join(lines)) == (2, "batch header", "service class code")


def test_lower_case_text_is_kept_in_strict_mode_and_upper_cased_in_lenient_mode() -> None:
    text = edit(good_lines(), 2, 55, "alice")
    assert parse(text).batches[0].entries[0].individual_name == "alice SMITH"
    assert parse(text, strict=False).batches[0].entries[0].individual_name == "ALICE SMITH"
    assert parse_error(edit(good_lines(), 1, 51, "ppd")) == (2, "batch header", "SEC code")


def test_trailing_spaces_accepted_in_lenient_mode_only() -> None:
    text = "\n".join(line + "   " for line in good_lines()[:-1]) + "\n"
    assert parse_error(text) == (1, "file header", "record length")
    assert parse(text, strict=False) == parse(read_fixture("ppd_credits_no_offset.ach"))


def test_missing_padding_accepted_in_lenient_mode_only() -> None:
    text = "\n".join(good_lines()[:7]) + "\n"
    assert parse_error(text) == (7, "padding", "block count")
    assert parse(text, strict=False) == parse(read_fixture("ppd_credits_no_offset.ach"))


def test_extra_padding_block_rejected_in_strict_mode() -> None:
    text = read_fixture("ppd_credits_no_offset.ach") + (PADDING_RECORD + "\n") * 10
    assert parse_error(text) == (20, "padding", "block count")


def test_wrong_block_count_rejected_in_both_modes() -> None:
    text = edit(good_lines(), 6, 8, "000002")
    assert parse_error(text) == (7, "file control", "block count")
    assert parse_error(text, strict=False) == (7, "file control", "block count")


def test_addenda_must_match_indicator() -> None:
    lines = read_fixture("ccd_addenda.ach").split("\n")
    lines[2] = lines[2][:78] + "0" + lines[2][79:]
    assert parse_error("\n".join(lines)) == (4, "addenda", "record type")


def test_addenda_sequence_must_match_trace() -> None:
    lines = read_fixture("ccd_addenda.ach").split("\n")
    assert parse_error(edit(lines, 3, 88, "0000012")) == (4, "addenda", "entry detail sequence number")


def test_truncated_file_reports_end_of_file() -> None:
    text = "\n".join(good_lines()[:5]) + "\n"
    assert parse_error(text, strict=False) == (6, "batch control", "record type")


def test_empty_file() -> None:
    assert parse_error("") == (1, "file header", "record type")


def test_entry_hash_keeps_low_ten_digits() -> None:
    routing = "99999999" + routing_check_digit("99999999")
    payouts = [payout(f"p{i}", routing=routing) for i in range(200)]
    file = build_file(payouts, ORIGINATOR, effective_date=EFFECTIVE, created_at=CREATED)
    # 200 * 99,999,999 = 19,999,999,800, of which the low 10 digits remain.
    assert file.batches[0].control.entry_hash == 9_999_999_800
    assert file.control.entry_hash == 9_999_999_800
    text = write(file)
    assert text.splitlines()[202][10:20] == "9999999800"
    assert parse(text) == file


def test_leading_blanks_in_text_fields_are_preserved() -> None:
    text = edit(good_lines(), 2, 13, "   1234567890    ")  # right-justified account number
    file = parse(text)
    assert file.batches[0].entries[0].dfi_account_number == "   1234567890"
    assert write(file) == text


def test_trace_numbers_continue_the_odfis_sequence_and_wrap_past_seven_digits() -> None:
    assert trace_number("09100001", 1) == "091000010000001"
    assert trace_number("09100001", TRACE_SEQUENCE_SPAN) == "091000019999999"
    assert trace_number("09100001", TRACE_SEQUENCE_SPAN + 1) == "091000010000001"
    file = build_file(
        [payout("p1"), payout("p2")],
        WITH_OFFSET,
        effective_date=EFFECTIVE,
        created_at=CREATED,
        first_trace_sequence=42,
    )
    traces = [entry.trace_number for batch in file.batches for entry in batch.entries]
    assert traces == [trace_number("09100001", n) for n in range(42, 42 + len(traces))]
    assert traces_needed([payout("p1"), payout("p2")], WITH_OFFSET) == len(traces)
    assert traces_needed([payout("p1"), payout("p2")], ORIGINATOR) == 2
    assert trace_block_wraps(TRACE_SEQUENCE_SPAN - 1, 3) and not trace_block_wraps(TRACE_SEQUENCE_SPAN - 2, 3)
    with pytest.raises(ValueError, match="may not wrap"):
        build_file(
            [payout("p1"), payout("p2")],
            ORIGINATOR,
            effective_date=EFFECTIVE,
            created_at=CREATED,
            first_trace_sequence=TRACE_SEQUENCE_SPAN,
        )


def test_a_same_day_offset_entry_stays_within_the_same_day_limit() -> None:
    within = [payout("p1", amount_cents=60_000_000), payout("p2", amount_cents=40_000_000)]
    build_file(
        within,
        WITH_OFFSET,
        effective_date=CREATED.astimezone(EASTERN).date(),
        created_at=CREATED,
        same_day=True,
    )
    over = [*within, payout("p3", amount_cents=1)]
    with pytest.raises(ValueError, match="Same Day ACH limit for its offset entry"):
        build_file(
            over,
            WITH_OFFSET,
            effective_date=CREATED.astimezone(EASTERN).date(),
            created_at=CREATED,
            same_day=True,
        )


def test_payout_problem_names_what_no_file_could_carry() -> None:
    assert payout_problem(payout("p1")) is None
    assert "no letters or digits" in (payout_problem(payout("-._:")) or "")
    assert "between 1 and" in (payout_problem(payout("p1", amount_cents=10**10)) or "")
    assert "Same Day ACH limit" in (
        payout_problem(payout("p1", amount_cents=100_000_001), same_day=True) or ""
    )
    assert "routing number" in (payout_problem(replace(payout("p1"), routing_number="123456789")) or "")


# --- Record layouts ----------------------------------------------------------------------------

ALL_LAYOUTS = [*LAYOUTS, *ENTRY_LAYOUTS.values(), *ADDENDA_RECORDS]


@pytest.mark.parametrize("layout", ALL_LAYOUTS, ids=lambda layout: layout.name)
def test_each_layout_covers_94_characters_without_gaps_or_overlaps(layout: Layout[object]) -> None:
    positions = [position for f in layout.fields for position in range(f.start, f.start + f.width)]
    assert positions == list(range(1, 95))


@pytest.mark.parametrize("layout", ALL_LAYOUTS, ids=lambda layout: layout.name)
def test_each_layout_carries_exactly_its_models_record_fields(layout: Layout[object]) -> None:
    assert layout.fields[0].kind is Kind.CONSTANT and layout.fields[0].start == 1
    carried = [f.attr for f in layout.fields if f.attr is not None]
    model_fields = {f.name for f in dataclasses.fields(layout.model)} - {"addenda"}  # type: ignore[arg-type]
    assert len(carried) == len(set(carried))
    assert set(carried) == model_fields
    assert all(f.attr is None for f in layout.fields if f.kind is Kind.BLANK)


def test_record_names_come_from_the_layouts() -> None:
    assert RECORD_NAMES == {
        "1": "file header",
        "5": "batch header",
        "6": "entry detail",
        "7": "addenda",
        "8": "batch control",
        "9": "file control",
    }


def _digit_fields(layout: Layout[object]) -> list[Field]:
    return [f for f in layout.fields if f.kind in (Kind.NUMERIC, Kind.DIGITS, Kind.DATE, Kind.TIME)]


@pytest.mark.parametrize(
    ("fixture", "index", "layout", "field"),
    [
        (fixture, index, layout, field)
        for fixture, index, layout in [
            ("ppd_credits_no_offset.ach", 0, FILE_HEADER),
            ("ppd_credits_no_offset.ach", 1, BATCH_HEADER),
            ("ppd_credits_no_offset.ach", 2, ENTRY_DETAIL),
            ("ccd_addenda.ach", 3, ADDENDA),
            ("ppd_credits_no_offset.ach", 5, BATCH_CONTROL),
            ("ppd_credits_no_offset.ach", 6, FILE_CONTROL),
        ]
        for field in _digit_fields(layout)
    ],
    ids=lambda value: value.name if isinstance(value, Field) else None,
)
def test_a_letter_in_a_digit_field_names_its_line_record_and_field(
    fixture: str, index: int, layout: Layout[object], field: Field
) -> None:
    text = edit(read_fixture(fixture).split("\n"), index, field.start, "X")
    with pytest.raises(NachaParseError) as error:
        parse(text)
    assert (error.value.line, error.value.record_type, error.value.field) == (
        index + 1,
        layout.name,
        field.name,
    )
    assert error.value.message.startswith(f"expected {field.width} digits")


def test_an_addenda_type_without_a_layout_is_rejected() -> None:
    lines = read_fixture("ccd_addenda.ach").split("\n")
    text = edit(lines, 3, 2, "02")
    assert parse_error(text) == (4, "addenda", "addenda type code")
    (entry,) = parse(text, strict=False).batches[0].entries
    assert entry.addenda == (RawAddenda("02", lines[3][3:].rstrip()),)


def one_entry_file() -> AchFile:
    return build_file([payout()], ORIGINATOR, effective_date=EFFECTIVE, created_at=CREATED)


def write_error(file: AchFile) -> tuple[int, str, str, str]:
    with pytest.raises(NachaFieldError) as error:
        write(file)
    return error.value.line, error.value.record_type, error.value.field, error.value.message


def test_writer_errors_name_the_line_record_and_field() -> None:
    file = one_entry_file()
    (batch,) = file.batches
    (entry,) = batch.entries
    long_name = replace(batch, header=replace(batch.header, company_name="X" * 17))
    assert write_error(replace(file, batches=(long_name,))) == (
        2, "batch header", "company name", f"{'X' * 17!r} is longer than 16 characters"
    )  # fmt: skip
    too_much = replace(batch, entries=(replace(entry, amount_cents=10**10),))
    assert write_error(replace(file, batches=(too_much,))) == (
        3, "entry detail", "amount", "10000000000 does not fit 10 digits"
    )  # fmt: skip
    short_trace = replace(batch, entries=(replace(entry, trace_number="0910000100001"),))
    assert write_error(replace(file, batches=(short_trace,)))[:3] == (3, "entry detail", "trace number")
    assert write_error(replace(file, control=replace(file.control, batch_count=-1)))[:3] == (
        5, "file control", "batch count"
    )  # fmt: skip


def test_writer_rejects_an_addenda_type_without_a_layout() -> None:
    file = one_entry_file()
    (batch,) = file.batches
    (entry,) = batch.entries
    addenda = Addenda("RMR*IV*1", 1, 1, addenda_type_code="99")
    with_addenda = replace(batch, entries=(replace(entry, addenda_indicator=1, addenda=(addenda,)),))
    assert write_error(replace(file, batches=(with_addenda,)))[:3] == (4, "addenda", "addenda type code")
