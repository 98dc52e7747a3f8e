"""The simulated receiving bank: fixed answers for the test accounts, seeded ones for the rest, timing."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from paypipe.domain.bank_simulator import (
    CHANGE_CODE_WEIGHTS,
    DEATH_BEFORE_EFFECTIVE,
    RETURN_CODE_WEIGHTS,
    SIMULATED_BANK_ROUTING,
    TEST_ACCOUNTS,
    BankSimulator,
    Delivery,
    banking_days_after,
)
from paypipe.domain.nacha import (
    CHANGE_REASONS,
    EASTERN,
    RETURN_REASONS,
    AchFile,
    ChangeAnswer,
    EntryCorrection,
    EntryDetail,
    EntryReturn,
    OffsetAccount,
    Payout,
    ReturnAnswer,
    build_file,
    corrected_data_problem,
    correction_refusal,
    decode_corrected_data,
    parse,
    write,
)
from paypipe.domain.validation import PaymentFacts, validate_payment
from tests.unit.test_nacha import ORIGINATOR, WITH_OFFSET, payout

CREATED = datetime(2025, 6, 10, 14, 5, tzinfo=UTC)
WEDNESDAY = date(2025, 6, 11)


def payout_file(payouts: list[Payout], *, effective: date = WEDNESDAY, first_trace: int = 1) -> AchFile:
    return build_file(
        payouts, WITH_OFFSET, effective_date=effective, created_at=CREATED, first_trace_sequence=first_trace
    )


def file_paying_test_accounts(effective: date = WEDNESDAY) -> AchFile:
    return payout_file(
        [
            payout(f"pay_{n}", 1_000 + n, account=account.account_number)
            for n, account in enumerate(TEST_ACCOUNTS)
        ]
        + [payout("pay_plain", 5_000, account="123456789")],
        effective=effective,
    )


def answered_entries(deliveries: list[Delivery]) -> dict[str, EntryDetail]:
    """The answer entries of all deliveries by the account number they answer."""
    entries = [entry for d in deliveries for batch in d.file.batches for entry in batch.entries]
    return {entry.dfi_account_number: entry for entry in entries}


QUIET = BankSimulator(return_rate=0, noc_rate=0)


# --- The test accounts -------------------------------------------------------------------------


def test_the_table_lists_each_account_once_with_a_known_code() -> None:
    numbers = [account.account_number for account in TEST_ACCOUNTS]
    assert len(set(numbers)) == len(numbers)
    assert {"R02", "R03", "R04", "R16", "C01", "C02", "C03", "C05"} <= {a.code for a in TEST_ACCOUNTS}


def test_each_test_account_gets_its_answer() -> None:
    original = file_paying_test_accounts()
    (delivery,) = QUIET.deliveries(original)
    answers = answered_entries([delivery])
    assert set(answers) == {account.account_number for account in TEST_ACCOUNTS}  # the plain one posts
    for account in TEST_ACCOUNTS:
        entry = answers[account.account_number]
        answer = entry.entry_return or entry.correction
        assert answer is not None and answer.code == account.code, account
        if isinstance(answer, EntryCorrection):
            assert decode_corrected_data(answer.code, answer.corrected_data) == dict(account.corrected)
            assert entry.amount_cents == 0 and entry.transaction_code == 21
        else:
            assert entry.transaction_code == 21 and entry.amount_cents > 0
    deceased = answers["SIMR15"].entry_return
    assert isinstance(deceased, EntryReturn) and deceased.date_of_death == WEDNESDAY - DEATH_BEFORE_EFFECTIVE
    assert f"{DEATH_BEFORE_EFFECTIVE.days} days" in next(a.note for a in TEST_ACCOUNTS if a.code == "R15")
    assert all(
        isinstance(entry.entry_return, EntryReturn) and entry.entry_return.date_of_death is None
        for number, entry in answers.items()
        if number != "SIMR15" and entry.entry_return is not None
    )


def test_only_the_invalid_notification_is_refused() -> None:
    original = file_paying_test_accounts()
    originals = {e.trace_number: e for batch in original.batches for e in batch.entries}
    refusals = {}
    for number, entry in answered_entries(QUIET.deliveries(original)).items():
        if isinstance(entry.correction, EntryCorrection):
            refusals[number] = correction_refusal(entry, originals[entry.correction.original_trace_number])
    assert refusals == {"SIMC01": None, "SIMC02": None, "SIMC03": None, "SIMC05": None, "SIMC65": "C65"}


def test_test_accounts_and_their_corrections_pass_payment_validation() -> None:
    """A demo can pay them, and pay the corrected details again."""

    def rejections(routing: str, account: str) -> list[object]:
        facts = PaymentFacts(1_000, "USD", "4242424242424242", 12, 2030, routing, account, "Test Payee")
        return list(validate_payment(facts, today=date(2025, 6, 10), max_amount_cents=10**6))

    for account in TEST_ACCOUNTS:
        assert rejections("021000021", account.account_number) == [], account
        corrected = dict(account.corrected)
        if account.account_number != "SIMC65":  # its corrected routing number is invalid on purpose
            routing = corrected.get("routing number", "021000021")
            assert rejections(routing, corrected.get("account number", account.account_number)) == [], account


def rendered_test_accounts_table() -> str:
    rows = ["| Account number | Answer | Corrected data | Note |", "| --- | --- | --- | --- |"]
    for account in TEST_ACCOUNTS:
        title = (RETURN_REASONS.get(account.code) or CHANGE_REASONS[account.code]).title
        corrected = ", ".join(f"{name} `{value}`" for name, value in account.corrected)
        rows.append(f"| `{account.account_number}` | {account.code} {title} | {corrected} | {account.note} |")
    return "\n".join(rows) + "\n"


def test_the_operations_doc_shows_the_table() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    assert rendered_test_accounts_table() in doc, (
        "docs/operations.md: paste the table rendered_test_accounts_table() renders"
    )


# --- Seeded answers ------------------------------------------------------------------------------


def many_payouts(count: int) -> list[Payout]:
    return [payout(f"pay_{n}", 100 + n, account=f"{10_000_000 + n * 7919}") for n in range(count)]


def test_seeded_rates_draw_realistic_codes() -> None:
    bank = BankSimulator(seed=7)
    answers = [answer for _, answer in bank.answers(payout_file(many_payouts(2_000)))]
    returns = Counter(a.code for a in answers if isinstance(a, ReturnAnswer))
    changes = Counter(a.code for a in answers if isinstance(a, ChangeAnswer))
    assert 20 <= sum(returns.values()) <= 60 and 20 <= sum(changes.values()) <= 60  # about 2% of 2,000
    assert set(returns) <= {code for code, _ in RETURN_CODE_WEIGHTS}
    assert set(changes) <= {code for code, _ in CHANGE_CODE_WEIGHTS}
    assert returns.most_common(1)[0][0] in ("R02", "R03")


def test_every_drawn_notification_is_well_formed_and_accepted() -> None:
    original = payout_file(
        [*many_payouts(200), payout("pay_savings", 100, account="4455667788", account_type="savings")]
    )
    deliveries = BankSimulator(seed=3, return_rate=0, noc_rate=1).deliveries(original)
    originals = {e.trace_number: e for batch in original.batches for e in batch.entries}
    entries = list(answered_entries(deliveries).values())
    assert len(entries) == 201
    codes = set()
    for entry in entries:
        correction = entry.correction
        assert isinstance(correction, EntryCorrection)
        codes.add(correction.code)
        assert corrected_data_problem(correction.code, correction.corrected_data) is None
        assert correction_refusal(entry, originals[correction.original_trace_number]) is None
        if "transaction code" in (
            decoded := decode_corrected_data(correction.code, correction.corrected_data)
        ):
            assert decoded["transaction code"] != str(
                originals[correction.original_trace_number].transaction_code
            )
    assert codes == {code for code, _ in CHANGE_CODE_WEIGHTS}


def test_a_decision_depends_only_on_seed_trace_and_account() -> None:
    bank = BankSimulator(seed=11, return_rate=0.3, noc_rate=0.3)
    first = payout_file(many_payouts(60), first_trace=500)
    # The same traces and accounts in another file, with other amounts and names: the same answers.
    again = payout_file(
        [replace(p, amount_cents=p.amount_cents * 3, payee_name="Someone Else") for p in many_payouts(60)],
        first_trace=500,
    )

    def decisions(file: AchFile, simulator: BankSimulator = bank) -> list[tuple[str, str]]:
        return [(a.original_trace_number, a.code) for _, a in simulator.answers(file)]

    assert decisions(first) and decisions(first) == decisions(again)
    assert bank.deliveries(first) == bank.deliveries(first)
    shifted = payout_file(many_payouts(60), first_trace=900)
    assert [code for _, code in decisions(shifted)] != [code for _, code in decisions(first)]
    assert decisions(first, replace(bank, seed=12)) != decisions(first)


def test_rates_of_one_and_zero() -> None:
    original = payout_file(many_payouts(30))
    assert all(isinstance(a, ReturnAnswer) for _, a in BankSimulator(return_rate=1).answers(original))
    assert len(BankSimulator(return_rate=1).answers(original)) == 30
    assert QUIET.answers(original) == []
    assert QUIET.deliveries(original) == []


def test_debits_are_never_answered() -> None:
    offset_at_a_test_account = replace(
        WITH_OFFSET, offset_account=OffsetAccount("091000019", "SIMR03", "checking")
    )
    original = build_file(
        [payout(account="SIMR02")], offset_at_a_test_account, effective_date=WEDNESDAY, created_at=CREATED
    )
    ((_, answer),) = BankSimulator(return_rate=1).answers(original)
    assert isinstance(answer, ReturnAnswer) and answer.code == "R02"


# --- When the answers arrive ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effective", "days", "delivered"),
    [
        (date(2025, 6, 11), 2, date(2025, 6, 13)),  # Wednesday -> Friday
        (date(2025, 6, 13), 2, date(2025, 6, 17)),  # Friday -> Tuesday
        (date(2025, 7, 2), 2, date(2025, 7, 7)),  # over Independence Day
        (date(2025, 6, 14), 2, date(2025, 6, 18)),  # a Saturday settles on Monday
        (date(2025, 6, 14), 0, date(2025, 6, 16)),
    ],
)
def test_banking_days_after_settlement(effective: date, days: int, delivered: date) -> None:
    assert banking_days_after(effective, days) == delivered


def test_returns_and_notifications_arrive_on_their_own_delays() -> None:
    bank = replace(QUIET, return_delay_days=1, noc_delay_days=3)
    returns, notifications = bank.deliveries(file_paying_test_accounts(), file_id_modifier="B")
    assert (returns.delivery_date, notifications.delivery_date) == (date(2025, 6, 12), date(2025, 6, 16))
    assert all(e.entry_return for b in returns.file.batches for e in b.entries)
    assert all(e.correction for b in notifications.file.batches for e in b.entries)
    for delivery in (returns, notifications):
        file = delivery.file
        assert parse(write(file)) == file
        assert file.header.immediate_origin == SIMULATED_BANK_ROUTING
        assert file.header.file_id_modifier == "B"
        created = datetime.combine(file.header.creation_date, file.header.creation_time or time(), EASTERN)
        assert created == datetime.combine(delivery.delivery_date, time(6, 0), EASTERN)
        julian = f"{delivery.delivery_date.timetuple().tm_yday:03d}"
        assert all(batch.header.settlement_date == julian for batch in file.batches)


def test_answers_of_one_date_share_a_file() -> None:
    (delivery,) = QUIET.deliveries(file_paying_test_accounts())
    assert delivery.delivery_date == date(2025, 6, 13)
    assert [batch.header.sec_code for batch in delivery.file.batches] == ["PPD", "COR"]


def test_a_file_without_an_effective_date_cannot_be_answered() -> None:
    original = payout_file([payout()])
    batch = original.batches[0]
    undated = replace(
        original, batches=(replace(batch, header=replace(batch.header, effective_entry_date=None)),)
    )
    with pytest.raises(ValueError, match="no effective entry date"):
        QUIET.answers(undated)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"return_rate": 1.5}, "between 0 and 1"),
        ({"noc_rate": -0.1}, "between 0 and 1"),
        ({"return_delay_days": -1}, "zero or more"),
        ({"routing_number": "071000014"}, "valid 9-digit routing number"),
    ],
)
def test_settings_are_checked(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BankSimulator(**settings)  # type: ignore[arg-type]


def test_originator_without_offset_is_answered_the_same() -> None:
    payouts = [payout("pay_1", account="SIMR03")]
    plain = build_file(payouts, ORIGINATOR, effective_date=WEDNESDAY, created_at=CREATED)
    with_offset = build_file(payouts, WITH_OFFSET, effective_date=WEDNESDAY, created_at=CREATED)
    assert QUIET.answers(plain) == QUIET.answers(with_offset)
