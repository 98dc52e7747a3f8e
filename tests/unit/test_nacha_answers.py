"""Answer files: returns and NOCs an RDFI sends for an outbound file, refused NOCs, dishonored returns."""

from dataclasses import replace
from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paypipe.domain.nacha import (
    CHANGE_REASONS,
    AchFile,
    ChangeAnswer,
    Dishonor,
    DishonoredReturn,
    EntryCorrection,
    EntryDetail,
    EntryReturn,
    Refusal,
    RefusedCorrection,
    ReturnAnswer,
    answer_file,
    answer_transaction_code,
    build_file,
    corrected_data_problem,
    correction_refusal,
    decode_corrected_data,
    dishonored_return_file,
    encode_corrected_data,
    parse,
    refused_correction_file,
    write,
)
from tests.unit.test_nacha import (
    EFFECTIVE,
    WITH_OFFSET,
    built_files,
    payout,
    read_fixture,
)

CREATED = datetime(2025, 6, 10, 14, 5, tzinfo=UTC)
ANSWERED = datetime(2025, 6, 13, 10, 0, tzinfo=UTC)  # 06:00 EDT
RDFI = "071000013"


def outbound() -> AchFile:
    """PPD (two payees) and CCD (one) batches, each with an offset debit; traces 41-45."""
    payouts = [
        payout("pay_1", 12_345),
        payout("pay_2", 50_000, name="Bob Jones", routing="026009593", account="555", account_type="savings"),
        payout("pay_3", 7_500, name="Acme LLC", account="777", payee_type="business"),
    ]
    return build_file(
        payouts, WITH_OFFSET, effective_date=EFFECTIVE, created_at=CREATED, first_trace_sequence=41
    )


def payee_entries(file: AchFile) -> list[EntryDetail]:
    return [entry for batch in file.batches for entry in batch.entries if entry.is_credit]


def answered(original: AchFile, answers: list[ReturnAnswer | ChangeAnswer], **kwargs: object) -> AchFile:
    file = answer_file(original, answers, created_at=ANSWERED, rdfi_routing=RDFI, rdfi_name="FED", **kwargs)  # type: ignore[arg-type]
    assert parse(write(file)) == file
    return file


# --- Corrected data ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "values", "encoded"),
    [
        ("C01", {"account number": "998877"}, "998877"),
        ("C02", {"routing number": "021000021"}, "021000021"),
        ("C03", {"routing number": "021000021", "account number": "998877"}, "021000021   998877"),
        ("C05", {"transaction code": "32"}, "32"),
        ("C06", {"account number": "998877", "transaction code": "37"}, "998877" + " " * 14 + "37"),
        ("C07", {"routing number": "021000021", "account number": "998877", "transaction code": "22"},
         "021000021" + "998877".ljust(17) + "22"),
    ],
)  # fmt: skip
def test_corrected_data_encoded_where_decoding_reads_it(
    code: str, values: dict[str, str], encoded: str
) -> None:
    assert encode_corrected_data(code, values) == encoded
    assert decode_corrected_data(code, encoded) == values
    assert corrected_data_problem(code, encoded) is None


@pytest.mark.parametrize(
    ("code", "values", "message"),
    [
        ("C13", {}, "no corrected data format"),
        ("C61", {}, "no corrected data format"),
        ("C02", {"account number": "1"}, "carries"),
        ("C03", {"routing number": "021000021"}, "carries"),
        ("C05", {"transaction code": "322"}, "longer than 2"),
    ],
)
def test_encoding_refuses_what_the_field_cannot_carry(
    code: str, values: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode_corrected_data(code, values)


@pytest.mark.parametrize(
    ("code", "data", "problem"),
    [
        ("C02", "021000022", "routing number is not valid"),
        ("C02", "", "routing number is missing"),
        ("C01", " 998877", "account number is not left-justified"),
        ("C01", "99*88", "account number is not valid"),
        ("C03", "021000021 X 998877", "characters outside the corrected values"),
        ("C05", "21", "transaction code is not valid"),
        ("C06", "998877", "transaction code is missing"),
        ("C65", "X", "'C65' is not a change code"),
    ],
)
def test_corrected_data_problems(code: str, data: str, problem: str) -> None:
    assert corrected_data_problem(code, data) == problem


def test_transaction_codes_of_returns_and_notifications() -> None:
    assert [answer_transaction_code(code) for code in (22, 23, 32, 33, 27, 37)] == [21, 21, 31, 31, 26, 36]
    with pytest.raises(ValueError, match="not a forward entry's"):
        answer_transaction_code(21)


# --- The RDFI's answer file --------------------------------------------------------------------


def test_returns_and_notifications_of_change_for_an_outbound_file() -> None:
    original = outbound()
    pay_1, pay_2, pay_3 = payee_entries(original)
    file = answered(
        original,
        [
            ChangeAnswer(pay_2.trace_number, "C05", "22"),
            ReturnAnswer(pay_1.trace_number, "R03"),
            ReturnAnswer(pay_3.trace_number, "R15", date(2025, 5, 1), "estate of acme"),
        ],
        settlement_date=date(2025, 6, 13),
    )
    assert file.header.immediate_destination == "091000019"  # the ODFI, from the batches' ODFI routing
    assert (file.header.immediate_origin, file.header.immediate_origin_name) == (RDFI, "FED")
    assert file.header.immediate_destination_name == original.header.immediate_destination_name
    assert (file.header.creation_date, file.header.creation_time) == (date(2025, 6, 13), time(6, 0))
    returns_ppd, returns_ccd, cor = file.batches
    assert [b.header.sec_code for b in file.batches] == ["PPD", "CCD", "COR"]
    assert [b.header.batch_number for b in file.batches] == [1, 2, 3]
    for batch in file.batches:
        assert batch.header.service_class_code == 220  # the offsets are not answered: credits only
        assert batch.header.effective_entry_date is None and batch.header.settlement_date == "164"
        assert batch.header.odfi_routing == "07100001"
        assert batch.header.company_id == original.batches[0].header.company_id
    (r1,), (r3,), (c2,) = returns_ppd.entries, returns_ccd.entries, cor.entries
    assert replace(r1, addenda=()) == replace(
        pay_1, transaction_code=21, addenda_indicator=1, trace_number="071000010000041"
    )
    assert r1.addenda == (EntryReturn("R03", pay_1.trace_number, None, "02100002", "", r1.trace_number),)
    assert r3.entry_return == EntryReturn(
        "R15", pay_3.trace_number, date(2025, 5, 1), "02100002", "ESTATE OF ACME", "071000010000044"
    )
    assert (c2.transaction_code, c2.amount_cents, c2.dfi_account_number) == (31, 0, "555")
    assert c2.correction == EntryCorrection("C05", pay_2.trace_number, "02600959", "22", "071000010000042")
    assert (file.control.total_credit_cents, file.control.total_debit_cents) == (12_345 + 7_500, 0)
    assert file.control.entry_addenda_count == 6 and file.control.batch_count == 3


def test_answer_trace_numbers_may_run_from_a_sequence() -> None:
    original = outbound()
    traces = [entry.trace_number for entry in payee_entries(original)]
    file = answered(
        original,
        [ChangeAnswer(traces[0], "C01", "123"), ReturnAnswer(traces[2], "R02")],
        first_trace_sequence=9_000,
    )
    assert [e.trace_number for b in file.batches for e in b.entries] == ["071000010009000", "071000010009001"]
    with pytest.raises(ValueError, match="may not wrap"):
        answered(original, [ReturnAnswer(traces[0], "R02"), ReturnAnswer(traces[1], "R02")],
                 first_trace_sequence=9_999_999)  # fmt: skip


def test_the_same_answers_give_the_same_file() -> None:
    original = outbound()
    trace = payee_entries(original)[1].trace_number
    assert answered(original, [ReturnAnswer(trace, "R04")]) == answered(
        original, [ReturnAnswer(trace, "R04")]
    )


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([], "no answer to send"),
        ([ReturnAnswer("091000010000099", "R03")], "no entry in the file has trace number 091000010000099"),
        (
            [ReturnAnswer("091000010000041", "R03"), ChangeAnswer("091000010000041", "C01", "1")],
            "at most one",
        ),
        ([ReturnAnswer("091000010000041", "R69")], "'R69' is not a return reason code"),
        ([ReturnAnswer("091000010000041", "R99")], "'R99' is not a return reason code"),
        (
            [ReturnAnswer("091000010000041", "R03", date(2025, 1, 1))],
            "date of death goes only with R14 or R15",
        ),
        ([ReturnAnswer("091000010000041", "R03", information="X" * 45)], "longer than 44"),
        ([ChangeAnswer("091000010000041", "C65", "1")], "'C65' is not a change code"),
        ([ChangeAnswer("091000010000041", "C01", "1" * 30)], "up to 29"),
    ],
)
def test_answer_file_refuses_bad_answers(answers: list[ReturnAnswer | ChangeAnswer], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        answer_file(outbound(), answers, created_at=ANSWERED, rdfi_routing=RDFI)


def test_an_answer_file_cannot_be_answered_again() -> None:
    original = outbound()
    first = answered(original, [ReturnAnswer(payee_entries(original)[0].trace_number, "R03")])
    with pytest.raises(ValueError, match="not a forward entry's"):
        answer_file(first, [ReturnAnswer("071000010000041", "R03")], created_at=ANSWERED, rdfi_routing=RDFI)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rdfi_routing": "071000014"}, "not a valid 9-digit routing number"),
        ({"rdfi_name": "X" * 24}, "longer than 23"),
        ({"created_at": datetime(2025, 6, 13, 10, 0)}, "timezone-aware"),
        ({"file_id_modifier": "a"}, "file id modifier"),
    ],
)
def test_answer_file_refuses_bad_settings(kwargs: dict[str, object], message: str) -> None:
    settings_ = {"created_at": ANSWERED, "rdfi_routing": RDFI} | kwargs
    with pytest.raises(ValueError, match=message):
        answer_file(outbound(), [ReturnAnswer("091000010000041", "R03")], **settings_)  # type: ignore[arg-type]


@st.composite
def answered_files(draw: st.DrawFn) -> tuple[AchFile, AchFile]:
    _, original = draw(built_files())
    entries = [entry for batch in original.batches for entry in batch.entries if entry.is_credit]
    chosen = draw(st.lists(st.sampled_from(entries), min_size=1, unique_by=lambda e: e.trace_number))
    returns = st.builds(
        ReturnAnswer,
        st.none(),
        st.sampled_from(["R02", "R03", "R16", "R23"]),
        st.none(),
        st.sampled_from(["", "SEE NOTE"]),
    )
    changes = st.builds(ChangeAnswer, st.none(), st.sampled_from(["C01", "C02", "C05"]),
                        st.from_regex(r"\A[0-9A-Z ]{0,29}\Z"))  # fmt: skip
    answers: list[ReturnAnswer | ChangeAnswer] = [
        replace(draw(returns | changes), original_trace_number=entry.trace_number) for entry in chosen
    ]
    first = draw(st.none() | st.integers(1, 9_000_000))
    file = answer_file(original, answers, created_at=ANSWERED, rdfi_routing=RDFI, first_trace_sequence=first)
    return original, file


@settings(max_examples=100)
@given(answered_files())
def test_every_answer_file_passes_the_strict_reader(case: tuple[AchFile, AchFile]) -> None:
    original, file = case
    assert parse(write(file)) == file
    answers = [entry for batch in file.batches for entry in batch.entries]
    originals = {entry.trace_number: entry for batch in original.batches for entry in batch.entries}
    for entry in answers:
        answered_entry = entry.entry_return or entry.correction
        assert answered_entry is not None
        source = originals[answered_entry.original_trace_number]
        assert entry.transaction_code == source.transaction_code - 1
        assert entry.amount_cents == (source.amount_cents if entry.entry_return else 0)
    assert file.control.total_credit_cents == sum(e.amount_cents for e in answers)


# --- The ODFI's refused notifications and dishonored returns -----------------------------------

REPLIED = datetime(2025, 6, 16, 14, 0, tzinfo=UTC)


def test_refused_notification_of_change_goes_back_to_the_rdfi() -> None:
    original = outbound()
    pay_1, pay_2, _ = payee_entries(original)
    received = answered(
        original,
        [ChangeAnswer(pay_1.trace_number, "C02", "021000022"), ReturnAnswer(pay_2.trace_number, "R02")],
    )
    (notification,) = received.batches[1].entries
    file = refused_correction_file(
        received, [Refusal(notification.trace_number, "C65")], created_at=REPLIED, first_trace_sequence=700
    )
    assert parse(write(file)) == file
    assert (file.header.immediate_destination, file.header.immediate_origin) == (RDFI, "091000019")
    assert (file.header.immediate_destination_name, file.header.immediate_origin_name) == (
        "FED",
        "WELLS FARGO",
    )
    (batch,) = file.batches
    assert (batch.header.sec_code, batch.header.odfi_routing) == ("COR", "09100001")
    (entry,) = batch.entries
    assert replace(entry, addenda=(), trace_number="") == replace(notification, addenda=(), trace_number="")
    assert entry.correction == RefusedCorrection(
        "C65", pay_1.trace_number, "02100002", "021000022", "C02", "0000041", "091000010000700"
    )


def test_refused_notification_of_a_bank_fixture() -> None:
    received = parse(read_fixture("noc_corrections.ach"))
    traces = [entry.trace_number for entry in received.batches[0].entries]
    file = refused_correction_file(
        received,
        [Refusal(traces[1], "C68"), Refusal(traces[4], "C61")],
        created_at=REPLIED,
        first_trace_sequence=1,
    )
    assert parse(write(file)) == file
    refused = [entry.correction for entry in file.batches[0].entries]
    assert [
        (c.code, c.change_code, c.trace_sequence_number) for c in refused if isinstance(c, RefusedCorrection)
    ] == [
        ("C68", "C03", "0000005"),
        ("C61", "C07", "0000008"),
    ]


def test_dishonored_return_goes_back_to_the_rdfi() -> None:
    original = outbound()
    pay_1, _, pay_3 = payee_entries(original)
    received = answered(
        original,
        [ReturnAnswer(pay_1.trace_number, "R03"), ReturnAnswer(pay_3.trace_number, "R02")],
        settlement_date=date(2025, 6, 13),
    )
    ppd_return = received.batches[0].entries[0]
    file = dishonored_return_file(
        received,
        [Dishonor(ppd_return.trace_number, "R69", "01 03")],
        created_at=REPLIED,
        first_trace_sequence=800,
    )
    assert parse(write(file)) == file
    (batch,) = file.batches
    assert (batch.header.sec_code, batch.header.service_class_code) == ("PPD", 220)
    (entry,) = batch.entries
    assert (entry.transaction_code, entry.amount_cents) == (21, 12_345)
    assert entry.entry_return == DishonoredReturn(
        "R69",
        pay_1.trace_number,
        "02100002",
        ppd_return.trace_number,
        "164",
        "03",
        "01 03",
        "091000010000800",
    )
    assert file.control.total_credit_cents == 12_345


def test_refusals_and_dishonors_name_entries_of_their_kind() -> None:
    original = outbound()
    pay_1, pay_2, _ = payee_entries(original)
    received = answered(
        original, [ReturnAnswer(pay_1.trace_number, "R03"), ChangeAnswer(pay_2.trace_number, "C01", "9")]
    )
    returned, notified = (batch.entries[0].trace_number for batch in received.batches)
    cases = [
        (refused_correction_file, [Refusal(returned, "C65")], "is not a notification of change"),
        (refused_correction_file, [Refusal(notified, "C01")], "'C01' is not a refused COR code"),
        (refused_correction_file, [Refusal(notified, "C65")] * 2, "at most one refusal"),
        (dishonored_return_file, [Dishonor(notified, "R69")], "is not a return entry"),
        (dishonored_return_file, [Dishonor(returned, "R03")], "'R03' is not a dishonored return code"),
        (dishonored_return_file, [Dishonor(returned, "R69", "X" * 22)], "longer than 21"),
        (dishonored_return_file, [Dishonor("1" * 15, "R69")], "no entry in the file"),
    ]
    for build, items, message in cases:
        with pytest.raises(ValueError, match=message):
            build(received, items, created_at=REPLIED, first_trace_sequence=1)  # type: ignore[operator]


# --- Whether an ODFI accepts a notification -----------------------------------------------------


def notification_for(original: AchFile, code: str, data: str) -> EntryDetail:
    entry = payee_entries(original)[0]
    (batch,) = [b for b in answered(original, [ChangeAnswer(entry.trace_number, code, data)]).batches]
    return batch.entries[0]


def test_a_well_formed_notification_of_the_odfis_entry_is_accepted() -> None:
    original = outbound()
    assert correction_refusal(notification_for(original, "C01", "998877"), payee_entries(original)[0]) is None


def test_refusal_codes_for_notifications() -> None:
    original = outbound()
    entry = payee_entries(original)[0]
    notification = notification_for(original, "C02", "021000021")
    correction = notification.correction
    assert isinstance(correction, EntryCorrection)
    assert correction_refusal(notification, None) == "C62"
    assert correction_refusal(notification, payee_entries(original)[1]) == "C62"
    assert correction_refusal(replace(notification, rdfi_routing="02600959"), entry) == "C67"
    wrong_rdfi = replace(correction, original_rdfi="02600959")
    assert correction_refusal(replace(notification, addenda=(wrong_rdfi,)), entry) == "C67"
    assert correction_refusal(replace(notification, dfi_account_number="1"), entry) == "C68"
    assert correction_refusal(replace(notification, individual_id_number="OTHER"), entry) == "C64"
    assert correction_refusal(replace(notification, transaction_code=31), entry) == "C69"
    assert correction_refusal(notification_for(original, "C02", "021000022"), entry) == "C65"
    assert all(CHANGE_REASONS[code].refused for code in ("C62", "C64", "C65", "C67", "C68", "C69"))
    with pytest.raises(ValueError, match="carries no notification of change"):
        correction_refusal(entry, entry)
