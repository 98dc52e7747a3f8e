"""The returns consumer, end to end in the embedded stack: payout -> NACHA file -> the bank's answer
file in S3 -> S3 notification on the default bus -> ach_returns -> ledger, payee accounts, events."""

from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any

import pytest

from paypipe.domain import nacha
from paypipe.domain.ach_calendar import EASTERN, banking_days_after, settlement_day
from paypipe.domain.ledger import TransferKind
from paypipe.embedded.evidence import ach_file_entries, ledger
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.events import models as ev
from tests.integration.test_ach_cut_claims import payouts, released, status

pytestmark = pytest.mark.embedded


def filed(pipeline: EmbeddedPipeline) -> tuple[str, nacha.AchFile]:
    """Cut the released payouts into a file; its key and content."""
    pipeline.run_schedule("AchCutFunction", pipeline.clock.now() + timedelta(days=1))
    pipeline.drain()
    s3, bucket = pipeline.client("s3"), pipeline.stack.outputs["AchBucketName"]
    (key,) = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix="ach/")["Contents"]]
    return key, nacha.parse(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def entries(ach_file: nacha.AchFile) -> list[nacha.EntryDetail]:
    return [entry for batch in ach_file.batches for entry in batch.entries if entry.is_credit]


def answer(
    pipeline: EmbeddedPipeline, original: nacha.AchFile, answers: list[nacha.Answer], key: str, days: int = 2
) -> str:
    """Put the bank's answer file under inbound/ ``days`` banking days after settlement, and drain."""
    effective = original.batches[0].header.effective_entry_date
    assert effective is not None
    day = banking_days_after(settlement_day(effective), days)
    pipeline.advance_to(datetime.combine(day, time(9), tzinfo=EASTERN))
    bank_file = nacha.answer_file(
        original, answers, created_at=pipeline.clock.now(), rdfi_routing="071000013"
    )
    inbound = f"inbound/{key}"
    pipeline.client("s3").put_object(
        Bucket=pipeline.stack.outputs["AchBucketName"], Key=inbound, Body=nacha.write(bank_file).encode()
    )
    pipeline.drain()
    return inbound


def seen(pipeline: EmbeddedPipeline, model: type[ev.Event]) -> list[Any]:
    return [e for e in pipeline.observed() if isinstance(e, model)]


def test_a_return_reverses_the_payout_once_and_an_unusable_account_makes_its_payouts_wait():
    with EmbeddedPipeline() as pipeline:
        paid = released(pipeline, 3, own_accounts=True)
        _key, original = filed(pipeline)
        first, second, third = entries(original)
        answers: list[nacha.Answer] = [
            nacha.ReturnAnswer(first.trace_number, "R03"),
            nacha.ReturnAnswer(second.trace_number, "R01"),
        ]
        inbound = answer(pipeline, original, answers, "returns-1.ach")
        unknown = "011000019999999"  # no payout has this trace number
        stranger = replace(
            original,
            batches=tuple(
                replace(b, entries=tuple(replace(e, trace_number=unknown) for e in b.entries[:1]))
                for b in original.batches[:1]
            ),
        )
        answer(pipeline, stranger, [nacha.ReturnAnswer(unknown, "R02")], "returns-unknown.ach")

        returned = {e.data.original_trace_number: e for e in seen(pipeline, ev.PayoutReturned)}
        assert set(returned) == {first.trace_number, second.trace_number}
        assert returned[first.trace_number].data.account_unusable
        assert returned[first.trace_number].data.next_step == "await_account_update"
        assert returned[second.trace_number].data.next_step == "resend"
        (parked,) = seen(pipeline, ev.AchInboundParked)
        assert (parked.data.reason, parked.data.answer) == ("UNMATCHED_TRACE", "dishonored_return")
        store = ledger(pipeline)
        reversals = [t for t in store.all_transfers() if t.kind is TransferKind.PAYOUT_RETURN]
        assert len(reversals) == 2 and store.verify_balanced() == {"USD": 0}
        by_trace = {e.data.trace_number: e.payment_id for e in seen(pipeline, ev.PayoutBatched)}
        assert status(pipeline, by_trace[first.trace_number]) == "waiting"
        assert status(pipeline, by_trace[second.trace_number]) == "pending"
        assert status(pipeline, by_trace[third.trace_number]) == "assigned"

        # The same object delivered again and the same content under another key change nothing.
        bucket = pipeline.stack.outputs["AchBucketName"]
        body = pipeline.client("s3").get_object(Bucket=bucket, Key=inbound)["Body"].read()
        pipeline.client("s3").put_object(Bucket=bucket, Key="inbound/copy-of-returns-1.ach", Body=body)
        pipeline.drain()
        assert len([t for t in store.all_transfers() if t.kind is TransferKind.PAYOUT_RETURN]) == 2
        assert len({e.event_id for e in seen(pipeline, ev.PayoutReturned)}) == 2

        # R01 is sent again in the next cut; R03's payout waits for new details.
        pipeline.run_schedule("AchCutFunction", pipeline.clock.now() + timedelta(days=1))
        pipeline.drain()
        batched = [
            e for e in seen(pipeline, ev.PayoutBatched) if e.payment_id == by_trace[second.trace_number]
        ]
        assert len(batched) == 2 and len({e.data.trace_number for e in batched}) == 2
        assert status(pipeline, by_trace[first.trace_number]) == "waiting"
        assert sorted(paid) == sorted(by_trace.values())


def test_a_correction_is_applied_to_the_next_payout_to_that_account():
    with EmbeddedPipeline() as pipeline:
        released(pipeline, 1)  # one payee account (one per provider)
        key, original = filed(pipeline)
        (entry,) = entries(original)
        correction = nacha.ChangeAnswer(
            entry.trace_number, "C01", nacha.encode_corrected_data("C01", {"account number": "55512345"})
        )
        refused = nacha.ChangeAnswer(
            entry.trace_number, "C02", nacha.encode_corrected_data("C02", {"routing number": "021000022"})
        )
        answer(pipeline, original, [correction], "noc-1.ach")
        answer(pipeline, original, [refused], "noc-2.ach")

        (corrected,) = seen(pipeline, ev.PayeeAccountCorrected)
        assert (corrected.data.change_code, corrected.data.account_last4) == ("C01", "2345")
        (parked,) = seen(pipeline, ev.AchInboundParked)
        assert (parked.data.reason, parked.data.answer) == ("REFUSED_CORRECTION", "refused_correction")

        # The next payment to the same payee goes to the corrected account.
        released(pipeline, 1, prefix="later")
        pipeline.run_schedule("AchCutFunction", pipeline.clock.now() + timedelta(days=1))
        pipeline.drain()
        files, _ = ach_file_entries(pipeline)
        keys = sorted({e.file_key for e in files})
        assert len(keys) == 2
        (later,) = [k for k in keys if k != key]
        s3, bucket = pipeline.client("s3"), pipeline.stack.outputs["AchBucketName"]
        latest = nacha.parse(s3.get_object(Bucket=bucket, Key=later)["Body"].read().decode())
        (next_entry,) = entries(latest)
        assert next_entry.dfi_account_number.strip() == "55512345"


def test_a_file_failing_half_way_is_applied_exactly_once_when_read_again(monkeypatch):
    from paypipe.steps import ach_returns

    with EmbeddedPipeline() as pipeline:
        released(pipeline, 3, own_accounts=True)
        _, original = filed(pipeline)
        answers = [nacha.ReturnAnswer(e.trace_number, "R03") for e in entries(original)]
        calls = {"n": 0}
        real = ach_returns.ReturnsStep._return

        def failing_once(self: Any, inbound: Any, code: str, trace: str) -> Any:
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("lost the connection half way")
            return real(self, inbound, code, trace)

        monkeypatch.setattr(ach_returns.ReturnsStep, "_return", failing_once)
        answer(pipeline, original, answers, "returns-2.ach")
        # The message came back after its visibility timeout: the consumer reads the file again.
        for _ in range(3):
            pipeline.advance_to(pipeline.clock.now() + timedelta(minutes=10))
            pipeline.drain()

        store = ledger(pipeline)
        assert len([t for t in store.all_transfers() if t.kind is TransferKind.PAYOUT_RETURN]) == 3
        assert len(seen(pipeline, ev.PayoutReturned)) == 3
        assert pipeline.queue_depths() == dict.fromkeys(pipeline.queue_depths(), 0)


def test_malformed_files_and_untimely_returns_are_parked_with_their_reason():
    with EmbeddedPipeline() as pipeline:
        released(pipeline, 2, own_accounts=True)
        _key, original = filed(pipeline)
        first, _ = entries(original)
        bucket = pipeline.stack.outputs["AchBucketName"]
        answer(pipeline, original, [nacha.ReturnAnswer(first.trace_number, "R03")], "late.ach", days=6)
        pipeline.client("s3").put_object(Bucket=bucket, Key="inbound/garbage.ach", Body=b"not a nacha file\n")
        pipeline.drain()

        reasons = sorted(e.data.reason for e in seen(pipeline, ev.AchInboundParked))
        assert reasons == ["LATE_RETURN", "MALFORMED_FILE"]
        assert seen(pipeline, ev.PayoutReturned) == []
        assert [t for t in ledger(pipeline).all_transfers() if t.kind is TransferKind.PAYOUT_RETURN] == []
        assert payouts(pipeline).pending() == []


def payee_update(pipeline: EmbeddedPipeline, update_id: str, account_number: str, **changes: Any) -> ev.Event:
    data = ev.PayeeAccountUpdatedData(
        provider_id=changes.pop("provider_id", "prov-1"),
        payee=ev.PayeeBankAccount(
            name="Jordan Lee",
            routing_number=changes.pop("routing_number", "026009593"),
            account_number=account_number,
            account_type=ev.AccountType.SAVINGS,
            payee_type=ev.PayeeType.INDIVIDUAL,
        ),
    )
    return ev.PayeeAccountUpdated.create(
        payment_id=update_id, data=data, producer="client", occurred_at=pipeline.clock.now()
    )


def test_payouts_waiting_for_an_unusable_account_go_to_the_new_details_the_client_sends():
    with EmbeddedPipeline() as pipeline:
        (payment,) = released(pipeline, 1)  # payee of provider prov-1
        _, original = filed(pipeline)
        (entry,) = entries(original)
        answer(pipeline, original, [nacha.ReturnAnswer(entry.trace_number, "R02")], "closed.ach")
        assert status(pipeline, payment) == "waiting"

        # Details no ACH file can carry are refused with the reason; the payout keeps waiting.
        assert pipeline.publish([payee_update(pipeline, "upd-1", "12", routing_number="123456789")]).ok
        pipeline.drain()
        (refused,) = seen(pipeline, ev.PayeeAccountRejected)
        assert {r.code for r in refused.data.reasons} == {
            "ROUTING_NUMBER_INVALID",
            "ACCOUNT_NUMBER_IMPLAUSIBLE",
        }
        assert status(pipeline, payment) == "waiting"

        assert pipeline.publish([payee_update(pipeline, "upd-2", "77001234")]).ok
        pipeline.drain()
        (replaced,) = seen(pipeline, ev.PayeeAccountReplaced)
        assert replaced.data.payee.account_last4 == "1234"
        assert "77001234" not in replaced.model_dump_json()  # the vault keeps the number
        assert status(pipeline, payment) == "pending"

        pipeline.run_schedule("AchCutFunction", pipeline.clock.now() + timedelta(days=1))
        pipeline.drain()
        repaid = [e for e in seen(pipeline, ev.PayoutBatched) if e.payment_id == payment]
        assert len(repaid) == 2
        s3, bucket = pipeline.client("s3"), pipeline.stack.outputs["AchBucketName"]
        later = next(e.data.file_key for e in repaid if e.data.trace_number != entry.trace_number)
        (sent,) = entries(nacha.parse(s3.get_object(Bucket=bucket, Key=later)["Body"].read().decode()))
        assert (sent.dfi_account_number.strip(), sent.rdfi_routing, sent.transaction_code) == (
            "77001234",
            "02600959",
            32,
        )
        store = ledger(pipeline)
        assert store.verify_balanced() == {"USD": 0}
        hold = store.get_hold(payment)
        assert hold is not None and hold.payout_attempt == 2 and hold.payout_ref is not None


def test_hostile_or_confused_bank_answers_change_nothing_and_are_parked_with_the_answer_the_rules_allow():
    with EmbeddedPipeline() as pipeline:
        released(pipeline, 2, own_accounts=True)
        _, original = filed(pipeline)
        first, _ = entries(original)
        store = ledger(pipeline)

        # R01 sends the payout again; after that, the same return again and one under another code.
        answer(pipeline, original, [nacha.ReturnAnswer(first.trace_number, "R01")], "r01.ach")
        pipeline.run_schedule("AchCutFunction", pipeline.clock.now() + timedelta(hours=8))
        pipeline.drain()
        (payment,) = [e.payment_id for e in seen(pipeline, ev.PayoutReturned)]
        hold = store.get_hold(payment)
        assert hold is not None and hold.payout_attempt == 2 and hold.payout_ref is not None
        answer(pipeline, original, [nacha.ReturnAnswer(first.trace_number, "R01")], "r01-again.ach")
        answer(pipeline, original, [nacha.ReturnAnswer(first.trace_number, "R02")], "r02-instead.ach")
        # A notification of change for an entry nobody filed.
        unknown = "011000019999998"
        stranger = replace(
            original,
            batches=tuple(
                replace(b, entries=tuple(replace(e, trace_number=unknown) for e in b.entries[:1]))
                for b in original.batches[:1]
            ),
        )
        noc = nacha.ChangeAnswer(
            unknown, "C01", nacha.encode_corrected_data("C01", {"account number": "4455667788"})
        )
        answer(pipeline, stranger, [noc], "stranger-noc.ach")

        parked = sorted(
            (e.data.reason, e.data.answer, e.data.code) for e in seen(pipeline, ev.AchInboundParked)
        )
        # The same return from another file is a duplicate return, as is one under another code.
        assert parked == [
            ("DUPLICATE_RETURN", "dishonored_return", "R01"),
            ("DUPLICATE_RETURN", "dishonored_return", "R02"),
            ("UNMATCHED_TRACE", "refused_correction", "C01"),
        ]
        assert len({e.event_id for e in seen(pipeline, ev.PayoutReturned)}) == 1
        # Each answer is prepared as the ODFI's file: a dishonored return, a refused notification.
        s3, bucket = pipeline.client("s3"), pipeline.stack.outputs["AchBucketName"]
        prepared = {e.data.answer_key for e in seen(pipeline, ev.AchInboundParked)}
        assert prepared == {
            "answers/dishonored_return/r01-again.ach",
            "answers/dishonored_return/r02-instead.ach",
            "answers/refused_correction/stranger-noc.ach",
        }
        refusal = nacha.parse(
            s3.get_object(Bucket=bucket, Key="answers/refused_correction/stranger-noc.ach")["Body"]
            .read()
            .decode()
        )
        (refused_entry,) = refusal.batches[0].entries
        assert (
            isinstance(refused_entry.correction, nacha.RefusedCorrection)
            and refused_entry.correction.code == "C61"
        )
        dishonor = nacha.parse(
            s3.get_object(Bucket=bucket, Key="answers/dishonored_return/r02-instead.ach")["Body"]
            .read()
            .decode()
        )
        (dishonored,) = dishonor.batches[0].entries
        assert (
            isinstance(dishonored.entry_return, nacha.DishonoredReturn)
            and dishonored.entry_return.code == "R67"
        )
        assert seen(pipeline, ev.PayeeAccountCorrected) == []
        after = store.get_hold(payment)
        assert after is not None and after.payout_ref == hold.payout_ref and after.payout_attempt == 2
        assert status(pipeline, payment) == "assigned"  # the re-sent payout was not queued a third time
        assert store.verify_balanced() == {"USD": 0}


def test_an_object_notification_from_anywhere_but_s3_for_the_inbound_prefix_is_parked():
    import json

    with EmbeddedPipeline() as pipeline:
        queue_arn = pipeline.stack.functions["AchReturnsFunction"].sqs_sources[0].queue_arn
        queue = pipeline.stack.queue_url_for_arn(queue_arn)
        bucket = pipeline.stack.outputs["AchBucketName"]
        detail = {"bucket": {"name": bucket}, "object": {"key": "inbound/x.ach", "etag": "e", "size": 1}}
        forged = {"source": "paypipe.client", "detail-type": "Object Created", "detail": detail}
        elsewhere = {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {**detail, "object": {**detail["object"], "key": "ach/x.ach"}},
        }
        for body in (forged, elsewhere):
            pipeline.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(body))
        pipeline.drain()
        from paypipe.embedded.evidence import dlq_records

        reasons = sorted(r.reason for r in dlq_records(pipeline) if r.queue == "AchReturnsDLQUrl")
        assert reasons == ["UnexpectedObject", "UntrustedSource"]
