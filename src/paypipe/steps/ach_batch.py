"""ach_batch: FundsReleased -> pending payout; scheduled cut -> NACHA files in S3.

The cut is written to be re-run safely after a crash at any point: a batch is stored (with
its members) before its payouts leave the pending set, each member's payout is claimed in the
ledger before the file is written (the ledger refuses a payout a dispute holds back, or whose
release was refunded: that member is excluded from the batch, durably, and set aside), the
file content is a pure function of the stored batch and the ledger's claims, and events carry
deterministic ids. Every open batch is finished first on the next run. A claim nets what the
provider owes on clawbacks: the entry pays the rest, and a payout netted in full has no entry
(``PayoutNetted``). The cut function runs with reserved concurrency 1, so one cut at a time plans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from functools import partial
from typing import Any

from paypipe.adapters.payouts_store import PayoutsStore, StoredBatch
from paypipe.domain import ledger, nacha
from paypipe.domain.ach_batching import PendingPayout, plan_files
from paypipe.domain.ach_calendar import submission_cutoffs
from paypipe.domain.ledger import Hold
from paypipe.events import models as ev
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, Receipt, Route
from paypipe.runtime.entry import LambdaHandler, build_consumer, publisher
from paypipe.runtime.logging import get_logger
from paypipe.runtime.publisher import EventPublisher
from paypipe.runtime.retry import retry_throttled
from paypipe.steps.common import LedgerPort, ledger_from_env, scheduled_time

STEP = "ach_batch"


@dataclass(frozen=True)
class CollectStep:
    payouts: PayoutsStore

    def on_released(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.FundsReleased)
        data = event.data
        payout = nacha.Payout(
            payment_id=event.payment_id,
            amount_cents=data.amount_cents,
            payee_name=data.payee.name,
            routing_number=data.payee.routing_number,
            account_number=data.payee.account_number,
            account_type=data.payee.account_type.value,
            payee_type=data.payee.payee_type.value,
        )
        self.payouts.add_pending(payout, data.released_at)
        return []


def file_key(batch: StoredBatch) -> str:
    return f"ach/{batch.effective_date:%Y/%m/%d}/{batch.batch_id}.ach"


@dataclass
class AchCutter:
    payouts: PayoutsStore
    ledger: LedgerPort
    s3: Any
    bucket: str
    kms_key_id: str
    originator: nacha.Originator
    events: EventPublisher
    max_entries_per_batch: int = 2500
    same_day_cutoffs: tuple[time, ...] = submission_cutoffs(timedelta(minutes=15))

    def cut(self, now: datetime) -> list[str]:
        """Finish open batches, then cut every due payout into files. Returns the S3 keys written."""
        log = get_logger(step="ach_cut")
        keys = [self._finish(batch) for batch in retry_throttled(self.payouts.open_batches)]
        released = self._recheck_blocked()
        plan = plan_files(
            retry_throttled(self.payouts.pending),
            now,
            max_entries_per_batch=self.max_entries_per_batch,
            same_day_deadlines=self.same_day_cutoffs,
        )
        for planned in plan:
            batch = retry_throttled(partial(self.payouts.open_batch, planned, created_at=now))
            keys.append(self._finish(batch))
        written = [key for key in keys if key]
        report = log.info if written or plan or released else log.debug
        report("ach cut finished", files=len(written), planned=len(plan), unblocked=released)
        return written

    def _finish(self, batch: StoredBatch) -> str | None:
        """Claim, write, upload and announce one batch; the file key, or None when nothing is paid."""
        self.payouts.assign(batch)  # retries each item itself
        claims = self._claim(batch, self.payouts.payouts(batch.payment_ids))
        entries = [
            replace(payout, amount_cents=hold.paid_out_cents)
            for payout, hold in claims
            if hold.paid_out_cents
        ]
        key: str | None = None
        ach_file: nacha.AchFile | None = None
        if entries:
            key = file_key(batch)
            ach_file = self._upload(batch, key, entries)
        self._announce(batch, key, claims, ach_file)
        retry_throttled(lambda: self.payouts.close_batch(batch.batch_id, key))
        return key

    def _claim(self, batch: StoredBatch, payouts: Sequence[nacha.Payout]) -> list[tuple[nacha.Payout, Hold]]:
        """Claim each member's payout in the ledger; members it refuses are excluded and set aside."""
        limit = nacha.SAME_DAY_LIMIT_CENTS if batch.kind == "same_day" else nacha.MAX_ENTRY_AMOUNT_CENTS
        claimed: list[tuple[nacha.Payout, Hold]] = []
        for payout in payouts:
            if payout.payment_id in batch.excluded:
                self._set_aside(payout)
                continue
            outcome = retry_throttled(
                partial(
                    self.ledger.record_payout,
                    payout.payment_id,
                    amount_cents=payout.amount_cents,
                    payout_ref=batch.batch_id,
                    at=batch.created_at,
                    max_entry_cents=limit,
                )
            )
            if isinstance(outcome, ledger.Rejected):  # never a reason to fail the cut for the others
                get_logger(step="ach_cut").info(
                    "payout set aside", payment_id=payout.payment_id, reason=outcome.reason.value
                )
                retry_throttled(partial(self.payouts.exclude, batch.batch_id, payout.payment_id))
                self._set_aside(payout)
                continue
            claimed.append((payout, outcome.hold))
        return claimed

    def _set_aside(self, payout: nacha.Payout) -> None:
        """Put a payout the batch excluded where the ledger says it belongs: blocked while a dispute
        holds it back, pending again once it may be paid, cancelled when it never will be (no
        hold, another amount than released, refunded, or paid already under another batch)."""
        hold = retry_throttled(partial(self.ledger.get_hold, payout.payment_id))
        payable = (
            hold is not None
            and hold.released_cents == payout.amount_cents
            and not hold.reversed_cents
            and hold.payout_ref is None
        )
        if not payable:
            self.payouts.cancel(payout.payment_id)
            return
        assert hold is not None
        pending = PendingPayout(payout, self.payouts.released_at(payout.payment_id))
        if hold.payout_blocked:
            self.payouts.block(pending)
        else:
            self.payouts.unblock(pending)

    def _recheck_blocked(self) -> int:
        """Payouts whose disputes ended go back to pending (or are cancelled); returns how many."""
        released = 0
        for pending in retry_throttled(self.payouts.blocked):
            hold = retry_throttled(partial(self.ledger.get_hold, pending.payout.payment_id))
            if hold is not None and hold.payout_blocked:
                continue
            self._set_aside(pending.payout)
            released += 1
        return released

    def _upload(self, batch: StoredBatch, key: str, entries: Sequence[nacha.Payout]) -> nacha.AchFile:
        ach_file = nacha.build_file(
            entries,
            self.originator,
            effective_date=batch.effective_date,
            created_at=batch.created_at,
            file_id_modifier=batch.file_id_modifier,
            same_day=batch.kind == "same_day",
        )
        body = nacha.write(ach_file).encode("ascii")
        retry_throttled(
            lambda: self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="text/plain",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self.kms_key_id,
                BucketKeyEnabled=True,
                Metadata={"batch-id": batch.batch_id, "entries": str(len(entries))},
            )
        )
        return ach_file

    def _announce(
        self,
        batch: StoredBatch,
        key: str | None,
        claims: Sequence[tuple[nacha.Payout, Hold]],
        ach_file: nacha.AchFile | None,
    ) -> None:
        window = "same_day" if batch.kind == "same_day" else "standard"
        filed = [
            replace(payout, amount_cents=hold.paid_out_cents)
            for payout, hold in claims
            if hold.paid_out_cents
        ]
        events: list[ev.Event] = [netted(batch, hold) for _, hold in claims if not hold.paid_out_cents]
        if key is not None and ach_file is not None:
            traces = nacha.payment_trace_numbers(filed, ach_file)
            events.extend(
                ev.PayoutBatched.create(
                    payment_id=hold.payment_id,
                    producer=STEP,
                    dedup_key=batch.batch_id,
                    occurred_at=batch.created_at,
                    data=ev.PayoutBatchedData(
                        batch_id=batch.batch_id,
                        file_key=key,
                        trace_number=traces[hold.payment_id],
                        amount_cents=hold.paid_out_cents,
                        effective_date=batch.effective_date.isoformat(),
                        window=window,
                        netted_cents=hold.netted_cents,
                    ),
                )
                for _, hold in claims
                if hold.paid_out_cents
            )
            events.append(batch_created(batch, key, ach_file, [p.payment_id for p in filed], self.bucket))
        result = self.events.publish(events)
        if not result.ok:
            raise RuntimeError(f"{len(result.failed)} batch events not published; the next cut retries")


def netted(batch: StoredBatch, hold: Hold) -> ev.Event:
    return ev.PayoutNetted.create(
        payment_id=hold.payment_id,
        producer=STEP,
        dedup_key=batch.batch_id,
        occurred_at=batch.created_at,
        data=ev.PayoutNettedData(
            batch_id=batch.batch_id,
            provider_id=hold.provider_id,
            released_cents=hold.released_cents,
            netted_cents=hold.netted_cents,
        ),
    )


def batch_created(
    batch: StoredBatch, key: str, ach_file: nacha.AchFile, payment_ids: list[str], bucket: str
) -> ev.Event:
    return ev.AchBatchCreated.create(
        payment_id=batch.batch_id,
        producer=STEP,
        dedup_key=batch.batch_id,
        occurred_at=batch.created_at,
        data=ev.AchBatchCreatedData(
            batch_id=batch.batch_id,
            bucket=bucket,
            file_key=key,
            entry_count=len(payment_ids),
            total_credit_cents=ach_file.control.total_credit_cents,
            total_debit_cents=ach_file.control.total_debit_cents,
            entry_hash=f"{ach_file.control.entry_hash:010d}",
            effective_date=batch.effective_date.isoformat(),
            window="same_day" if batch.kind == "same_day" else "standard",
            payment_ids=payment_ids,
        ),
    )


def originator_from_env() -> nacha.Originator:
    odfi = setting("ACH_ODFI_ROUTING", "011000015")
    return nacha.Originator(
        immediate_destination=odfi,
        immediate_destination_name=setting("ACH_ODFI_NAME", "ODFI"),
        immediate_origin=setting("ACH_COMPANY_ID", "1234567890"),
        immediate_origin_name=setting("ACH_COMPANY_NAME", "PAYPIPE ESCROW"),
        company_name=setting("ACH_COMPANY_NAME", "PAYPIPE ESCROW"),
        company_id=setting("ACH_COMPANY_ID", "1234567890"),
        odfi_routing=odfi[:8],
        company_entry_description=setting("ACH_ENTRY_DESCRIPTION", "PAYOUT"),
    )


def build() -> Consumer:
    step = CollectStep(PayoutsStore(setting("PAYOUTS_TABLE"), client("dynamodb")))
    return build_consumer(STEP, {"FundsReleased": Route(step.on_released)})


def build_cut() -> LambdaHandler:
    lead = timedelta(minutes=int_setting("ACH_SUBMISSION_LEAD_MINUTES", 15))
    cutter = AchCutter(
        payouts=PayoutsStore(setting("PAYOUTS_TABLE"), client("dynamodb")),
        ledger=ledger_from_env(),
        s3=client("s3"),
        bucket=setting("ACH_BUCKET"),
        kms_key_id=setting("ACH_KMS_KEY_ID"),
        originator=originator_from_env(),
        events=publisher(STEP),
        max_entries_per_batch=int_setting("ACH_MAX_ENTRIES_PER_BATCH", 2500),
        same_day_cutoffs=submission_cutoffs(lead),
    )

    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, Any]:
        now = scheduled_time(event)
        return {"files": cutter.cut(now)}

    return handler
