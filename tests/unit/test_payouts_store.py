"""The payouts store's file identities: modifiers per ODFI and Eastern creation date, and trace
numbers from one persisted sequence per ODFI; prenotes in batches, entries and account items."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import boto3
import pytest

from paypipe.adapters.dynamo_index import INDEX_SHARDS
from paypipe.adapters.payee_accounts import PayeeAccounts
from paypipe.adapters.payouts_store import (
    BLOCKED_INDEX_KEY,
    FILE_ID_MODIFIERS,
    PENDING_INDEX_KEY,
    FileIdsExhaustedError,
    PayoutsStore,
)
from paypipe.domain.ach_batching import PayoutRecord, PlannedBatch
from paypipe.domain.ach_returns import FiledEntry
from paypipe.domain.nacha import TRACE_SEQUENCE_SPAN, Payout, trace_block_wraps
from paypipe.domain.prenotes import FiledPrenote
from tests.tables import create_table

ODFI = "01100001"


@pytest.fixture
def store(aws):
    dynamodb = boto3.client("dynamodb")
    create_table(dynamodb, "payouts", gsi=True)
    return PayoutsStore("payouts", dynamodb)


def plan(batch_id: str, count: int = 1) -> PlannedBatch:
    payouts = tuple(
        Payout(f"{batch_id}-{i}", 100, "JANE DOE", "021000021", "12345", "checking", "individual")
        for i in range(count)
    )
    return PlannedBatch(batch_id, "standard", date(2026, 11, 3), "PPD", payouts)


def test_modifiers_count_per_eastern_creation_date_not_per_utc_day(store):
    evening = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)  # 18:30 in New York, Monday
    after_midnight_utc = datetime(2026, 11, 3, 1, 30, tzinfo=UTC)  # 20:30 in New York, still Monday
    next_morning = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)  # Tuesday in New York

    first = store.open_batch(plan("b1"), evening, odfi=ODFI, traces=1)
    second = store.open_batch(plan("b2"), after_midnight_utc, odfi=ODFI, traces=1)
    tuesday = store.open_batch(plan("b3"), next_morning, odfi=ODFI, traces=1)
    other_odfi = store.open_batch(plan("b4"), evening, odfi="02100002", traces=1)

    assert (first.file_id_modifier, second.file_id_modifier, tuesday.file_id_modifier) == ("A", "B", "A")
    assert other_odfi.file_id_modifier == "A"


def test_the_37th_file_of_a_date_is_refused_not_given_a_reused_modifier(store):
    at = datetime(2026, 11, 2, 20, tzinfo=UTC)
    modifiers = [store.open_batch(plan(f"b{i}"), at, odfi=ODFI, traces=1).file_id_modifier for i in range(36)]
    assert modifiers == list(FILE_ID_MODIFIERS)
    assert store.files_left(at, ODFI) == 0
    with pytest.raises(FileIdsExhaustedError):
        store.open_batch(plan("b36"), at, odfi=ODFI, traces=1)
    assert store.batch("b36") is None
    assert store.open_batch(plan("b37"), at + timedelta(days=1), odfi=ODFI, traces=1).file_id_modifier == "A"


def test_trace_blocks_never_overlap_across_files_and_days(store):
    at = datetime(2026, 11, 2, 20, tzinfo=UTC)
    blocks = []
    for day in range(3):
        for index, size in enumerate((3, 1, 2500)):
            batch = store.open_batch(
                plan(f"d{day}-{index}", size), at + timedelta(days=day), odfi=ODFI, traces=size
            )
            blocks.append(range(batch.first_trace, batch.first_trace + size))
    numbers = [n for block in blocks for n in block]
    assert len(numbers) == len(set(numbers)) == 3 * (3 + 1 + 2500)
    assert blocks[0].start == 1
    # A reopened batch keeps its block (a cut finishing it after a crash writes the same file).
    assert store.open_batch(plan("d0-0", 3), at, odfi=ODFI, traces=3).first_trace == 1


def test_a_block_that_would_pass_the_seven_digit_sequence_starts_the_next_cycle(store):
    store._count(f"trace#{ODFI}", TRACE_SEQUENCE_SPAN - 2)  # two numbers left in this cycle
    batch = store.open_batch(plan("wrap", 5), datetime(2026, 11, 2, 20, tzinfo=UTC), odfi=ODFI, traces=5)
    assert not trace_block_wraps(batch.first_trace, 5)
    assert batch.first_trace > TRACE_SEQUENCE_SPAN  # in the next cycle: its trace numbers start over


def test_two_cuts_allocating_at_once_never_share_a_trace_number(aws):
    dynamodb = boto3.client("dynamodb")
    create_table(dynamodb, "shared", gsi=True)
    first, second = PayoutsStore("shared", dynamodb), PayoutsStore("shared", dynamodb)
    at = datetime(2026, 11, 2, 20, tzinfo=UTC)
    blocks = [
        (store.open_batch(plan(f"c{index}", 4), at, odfi=ODFI, traces=4).first_trace, 4)
        for index, store in enumerate([first, second] * 5)
    ]
    numbers = [start + offset for start, count in blocks for offset in range(count)]
    assert len(numbers) == len(set(numbers)) == 40


def test_a_batch_keeps_the_payouts_it_prenotes_and_a_prenote_entry_says_it_is_one(store):
    held = PayoutRecord("held-1", 100, "JANE DOE", "021000021", "tok", "2345", "checking", "individual")
    held = replace(held, provider_id="prov-1", account_fingerprint="fp-1")
    at = datetime(2026, 11, 2, 20, tzinfo=UTC)
    opened = store.open_batch(replace(plan("pn"), prenotes=(held,)), at, odfi=ODFI, traces=2)
    assert opened.prenotes == (held,) == store.batch("pn").prenotes
    assert store.batch("pn").payment_ids == ("pn-0",)
    assert store.open_batch(plan("plain"), at, odfi=ODFI, traces=1).prenotes == ()

    entry = FiledEntry(
        "011000010000002", "held-1", "pn", "prov-1", "fp-1", 0, date(2026, 11, 3), prenote=True
    )
    store.record_entries([entry], "ach/2026/11/03/pn.ach")
    assert store.entry(entry.trace_number) == entry
    first, second = "inbound/one.ach", "inbound/two.ach"
    assert store.mark_returned(entry.trace_number, "R03", first) == first
    assert store.mark_returned(entry.trace_number, "R03", first) == first  # the same file read again
    assert store.mark_returned(entry.trace_number, "R04", second) == first  # a second return
    assert store.entry(entry.trace_number) == entry

    accounts = PayeeAccounts("payouts", boto3.client("dynamodb"))
    accounts.record_prenote("fp-1", FiledPrenote(entry.trace_number, date(2026, 11, 3)), batch_id="pn", at=at)
    accounts.mark_paid("fp-2", trace_number="011000010000009", at=at)
    accounts.mark_paid("fp-2", trace_number="011000010000010", at=at)  # the first one stays
    accounts.mark_given_by_bank("fp-3", original_trace_number="011000010000011", at=at)
    states = accounts.states(["fp-1", "fp-2", "fp-3", "fp-4"])
    assert sorted(states) == ["fp-1", "fp-2", "fp-3"]
    assert states["fp-1"].prenote == FiledPrenote(entry.trace_number, date(2026, 11, 3))
    assert not states["fp-1"].history().verified
    assert states["fp-2"].paid_trace == "011000010000009" and states["fp-2"].history().verified
    assert states["fp-3"].history(prenote_in_flight=True).verified


def index_items() -> list[dict]:
    return [item for item in boto3.client("dynamodb").scan(TableName="payouts")["Items"] if "gsi1pk" in item]


def payout_record(payment_id: str) -> PayoutRecord:
    return PayoutRecord(payment_id, 100, "JANE DOE", "021000021", "tok", "2345", "checking", "individual")


def test_pending_payouts_spread_over_the_index_shards_and_read_back_oldest_first(store):
    start = datetime(2026, 11, 2, 12, tzinfo=UTC)
    released = {f"pay-{i:03}": start + timedelta(seconds=(i * 37) % 200) for i in range(200)}
    for payment_id, at in released.items():
        store.add_pending(payout_record(payment_id), at)
    in_order = sorted(released, key=lambda pid: (released[pid], pid))

    index_keys = {item["gsi1pk"]["S"] for item in index_items()}
    assert len(index_keys) == INDEX_SHARDS and all(k.startswith(f"{PENDING_INDEX_KEY}#") for k in index_keys)
    assert [p.payout.payment_id for p in store.pending()] == in_order
    assert [p.payout.payment_id for p in store.pending(limit=25)] == in_order[:25]


def test_blocked_and_waiting_payouts_are_sharded_too_and_read_in_order(store):
    start = datetime(2026, 11, 2, 12, tzinfo=UTC)
    for i in range(40):
        store.add_pending(payout_record(f"pay-{i:02}"), start - timedelta(minutes=i))
    for pending in store.pending():
        if pending.payout.payment_id < "pay-20":
            store.block(pending)
        else:
            store.wait(pending, "R01")
    blocked = [p.payout.payment_id for p in store.blocked()]
    waiting = [p.payout.payment_id for p in store.waiting()]
    assert blocked == [f"pay-{i:02}" for i in reversed(range(20))]
    assert waiting == [f"pay-{i:02}" for i in reversed(range(20, 40))]
    assert store.pending() == []
    index_keys = {item["gsi1pk"]["S"] for item in index_items()}
    assert len({k for k in index_keys if k.startswith(f"{BLOCKED_INDEX_KEY}#")}) > 1
