"""Prenotes end to end in the embedded stack: the first payout to an account waits while the cut
prenotes the account, goes out once the waiting period is over, and waits for new details when the
bank returns the prenote; with ``AchPrenote=off`` the first payout is filed at once, as before."""

from datetime import date, datetime, time, timedelta
from typing import Any

import pytest

from paypipe.adapters.payee_accounts import PayeeAccounts
from paypipe.domain import nacha
from paypipe.domain.ach_calendar import EASTERN, banking_days_after, next_banking_day, settlement_day
from paypipe.domain.ledger import TransferKind
from paypipe.domain.prenotes import FiledPrenote, live_entries_from
from paypipe.embedded.evidence import ach_file_entries, ledger
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.events import models as ev
from paypipe.steps import ach_batch
from tests.integration.test_ach_cut_claims import payouts, released, status
from tests.integration.test_ach_returns import answer, entries, filed, seen

pytestmark = pytest.mark.embedded

PRENOTES_ON = {"AchPrenote": "on"}


def accounts(pipeline: EmbeddedPipeline) -> PayeeAccounts:
    return PayeeAccounts(pipeline.stack.outputs["PayoutsTableName"], pipeline.client("dynamodb"))


def cut_on(pipeline: EmbeddedPipeline, day: date) -> Any:
    result = pipeline.run_schedule("AchCutFunction", datetime.combine(day, time(12), tzinfo=EASTERN))
    pipeline.drain()
    return result


def files(pipeline: EmbeddedPipeline) -> dict[str, nacha.AchFile]:
    s3, bucket = pipeline.client("s3"), pipeline.stack.outputs["AchBucketName"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="ach/").get("Contents", [])
    return {
        item["Key"]: nacha.parse(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode())
        for item in listed
    }


def prenoted(pipeline: EmbeddedPipeline) -> tuple[str, nacha.AchFile, nacha.EntryDetail, date]:
    """Release one payout and cut: its payment id, the file, the file's only entry (the prenote) and
    the first day a live entry may follow it."""
    (payment_id,) = released(pipeline, 1)
    _key, original = filed(pipeline)
    (entry,) = entries(original)
    effective = original.batches[0].header.effective_entry_date
    assert effective is not None
    first_live_day = live_entries_from(FiledPrenote(entry.trace_number, effective))
    assert first_live_day == banking_days_after(settlement_day(effective), 3)
    return payment_id, original, entry, first_live_day


def test_a_first_payout_waits_for_its_accounts_prenote_and_goes_out_after_the_waiting_period():
    with EmbeddedPipeline(overrides=PRENOTES_ON) as pipeline:
        payment_id, _, prenote, first_live_day = prenoted(pipeline)

        assert (prenote.transaction_code, prenote.amount_cents, prenote.is_prenote) == (23, 0, True)
        assert status(pipeline, payment_id) == "pending"
        assert seen(pipeline, ev.PayoutBatched) == []
        (created,) = seen(pipeline, ev.AchBatchCreated)
        assert (created.data.entry_count, created.data.payment_ids, created.data.total_credit_cents) == (
            1,
            [],
            0,
        )
        filed_prenote = payouts(pipeline).entry(prenote.trace_number)
        assert filed_prenote is not None and filed_prenote.prenote
        assert (filed_prenote.payment_id, filed_prenote.amount_cents) == (payment_id, 0)
        (state,) = accounts(pipeline).states([filed_prenote.account_fingerprint]).values()
        assert state.prenote is not None and state.prenote.trace_number == prenote.trace_number
        assert state.paid_trace is None
        hold = ledger(pipeline).get_hold(payment_id)
        assert hold is not None and hold.payout_ref is None

        # The banking day before the waiting period ends the payout still waits, and no prenote again.
        day_before = first_live_day - timedelta(days=1)
        while next_banking_day(day_before) != first_live_day:
            day_before -= timedelta(days=1)
        cut_on(pipeline, day_before)
        assert len(files(pipeline)) == 1 and status(pipeline, payment_id) == "pending"

        cut_on(pipeline, first_live_day)
        (batched,) = seen(pipeline, ev.PayoutBatched)
        assert batched.payment_id == payment_id and status(pipeline, payment_id) == "assigned"
        latest = files(pipeline)[batched.data.file_key]
        (live,) = entries(latest)
        assert (live.transaction_code, live.amount_cents) == (22, batched.data.amount_cents)
        assert live.dfi_account_number == prenote.dfi_account_number
        (state,) = accounts(pipeline).states([filed_prenote.account_fingerprint]).values()
        assert state.paid_trace == live.trace_number

        # The account is known now: the next payout to it goes out in the next file.
        (later,) = released(pipeline, 1, prefix="later")
        cut_on(pipeline, next_banking_day(first_live_day))
        assert [e.payment_id for e in seen(pipeline, ev.PayoutBatched)] == [payment_id, later]
        assert [e.is_prenote for f in files(pipeline).values() for e in entries(f)].count(True) == 1


def test_a_returned_prenote_makes_the_payout_wait_and_books_nothing_in_the_ledger():
    with EmbeddedPipeline(overrides=PRENOTES_ON) as pipeline:
        payment_id, original, prenote, first_live_day = prenoted(pipeline)
        answer(pipeline, original, [nacha.ReturnAnswer(prenote.trace_number, "R03")], "prenote-r03.ach")
        # The same return again changes nothing; another return of the prenote is dishonored.
        answer(pipeline, original, [nacha.ReturnAnswer(prenote.trace_number, "R03")], "prenote-r03-again.ach")
        answer(pipeline, original, [nacha.ReturnAnswer(prenote.trace_number, "R04")], "prenote-r04.ach")

        (returned,) = {e.event_id: e for e in seen(pipeline, ev.PrenoteReturned)}.values()
        assert returned.payment_id == payment_id
        assert (returned.data.original_trace_number, returned.data.return_code) == (
            prenote.trace_number,
            "R03",
        )
        assert seen(pipeline, ev.PayoutReturned) == []
        store = ledger(pipeline)
        assert [t for t in store.all_transfers() if t.kind is TransferKind.PAYOUT_RETURN] == []
        assert store.verify_balanced() == {"USD": 0}

        # Past the waiting period the payout does not go out: it waits for new account details.
        cut_on(pipeline, first_live_day)
        assert seen(pipeline, ev.PayoutBatched) == [] and len(files(pipeline)) == 1
        assert status(pipeline, payment_id) == "waiting"
        assert payouts(pipeline).waiting_reason(payment_id) == "ACCOUNT_UNUSABLE_R03"
        # Returned again by other files (the same code or another): duplicate returns.
        parked = seen(pipeline, ev.AchInboundParked)
        assert sorted((p.data.reason, p.data.answer, p.data.code) for p in parked) == [
            ("DUPLICATE_RETURN", "dishonored_return", "R03"),
            ("DUPLICATE_RETURN", "dishonored_return", "R04"),
        ]


def test_a_correction_to_a_prenote_sends_the_payout_to_the_corrected_account_without_another_prenote():
    with EmbeddedPipeline(overrides=PRENOTES_ON) as pipeline:
        payment_id, original, prenote, _ = prenoted(pipeline)
        correction = nacha.ChangeAnswer(
            prenote.trace_number, "C01", nacha.encode_corrected_data("C01", {"account number": "55512345"})
        )
        answer(pipeline, original, [correction], "prenote-noc.ach")
        (corrected,) = seen(pipeline, ev.PayeeAccountCorrected)
        assert (corrected.payment_id, corrected.data.original_trace_number) == (
            payment_id,
            prenote.trace_number,
        )

        cut_on(pipeline, pipeline.clock.now().astimezone(EASTERN).date())
        (batched,) = seen(pipeline, ev.PayoutBatched)
        (live,) = entries(files(pipeline)[batched.data.file_key])
        assert (live.transaction_code, live.dfi_account_number) == (22, "55512345")
        assert len(files(pipeline)) == 2  # the prenote's file and the payout's: no second prenote


def test_with_prenotes_off_the_first_payout_is_filed_at_once_as_before():
    with EmbeddedPipeline(overrides={"AchPrenote": "off"}) as pipeline:
        assert pipeline.stack.parameters["AchPrenote"] == "off"
        (payment_id,) = released(pipeline, 1)
        _key, original = filed(pipeline)
        (entry,) = entries(original)
        (batched,) = seen(pipeline, ev.PayoutBatched)
        assert batched.payment_id == payment_id and batched.data.trace_number == entry.trace_number
        assert (entry.transaction_code, entry.amount_cents) == (22, batched.data.amount_cents)
        filed_entry = payouts(pipeline).entry(entry.trace_number)
        assert filed_entry is not None and not filed_entry.prenote
        (state,) = accounts(pipeline).states([filed_entry.account_fingerprint]).values()
        assert (state.prenote, state.paid_trace) == (None, entry.trace_number)
        listed, _ = ach_file_entries(pipeline)
        assert [(e.amount_cents, e.is_credit) for e in listed] == [(batched.data.amount_cents, True)]


def test_a_prenote_whose_file_keeps_failing_is_filed_once_when_its_batch_is_finished(monkeypatch):
    uploads = {"failing": True}
    real = ach_batch.AchCutter._upload

    def upload(self: Any, *args: Any) -> None:
        if uploads["failing"]:
            raise RuntimeError("S3 is down")
        real(self, *args)

    monkeypatch.setattr(ach_batch.AchCutter, "_upload", upload)
    with EmbeddedPipeline(overrides=PRENOTES_ON) as pipeline:
        (payment_id,) = released(pipeline, 1)
        day = next_banking_day(pipeline.clock.now().astimezone(EASTERN).date())
        assert isinstance(cut_on(pipeline, day), RuntimeError)
        (stuck,) = payouts(pipeline).open_batches()
        assert [p.payment_id for p in stuck.prenotes] == [payment_id]
        # Its batch still open, the next cut plans no second prenote for the account.
        assert isinstance(cut_on(pipeline, next_banking_day(day)), RuntimeError)
        assert [b.batch_id for b in payouts(pipeline).open_batches()] == [stuck.batch_id]

        uploads["failing"] = False
        cut_on(pipeline, next_banking_day(next_banking_day(day)))
        assert payouts(pipeline).open_batches() == []
        (only,) = files(pipeline).values()
        (prenote,) = entries(only)
        assert prenote.is_prenote and status(pipeline, payment_id) == "pending"
