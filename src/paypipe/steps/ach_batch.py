"""ach_batch: FundsReleased -> pending payout; scheduled cut -> NACHA files in S3.

The cut is written to be re-run safely after a crash at any point: a batch is stored (with
its members) before its payouts leave the pending set, its file content is a pure function of
the stored batch, and events carry deterministic ids. Every open batch is finished first on the
next run. The cut function runs with reserved concurrency 1, so one cut at a time plans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import partial
from typing import Any

from paypipe.adapters.payouts_store import PayoutsStore, StoredBatch
from paypipe.domain import ledger, nacha
from paypipe.domain.ach_batching import plan_files
from paypipe.domain.ach_calendar import submission_cutoffs
from paypipe.events import models as ev
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, Route
from paypipe.runtime.entry import LambdaHandler, build_consumer, publisher
from paypipe.runtime.logging import get_logger
from paypipe.runtime.publisher import EventPublisher
from paypipe.runtime.retry import retry_throttled
from paypipe.steps.common import LedgerPort, ledger_from_env, scheduled_time

STEP = "ach_batch"


@dataclass(frozen=True)
class CollectStep:
    payouts: PayoutsStore

    def on_released(self, event: ev.Event) -> Sequence[ev.Event]:
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
        plan = plan_files(
            retry_throttled(self.payouts.pending),
            now,
            max_entries_per_batch=self.max_entries_per_batch,
            same_day_deadlines=self.same_day_cutoffs,
        )
        for planned in plan:
            batch = retry_throttled(partial(self.payouts.open_batch, planned, created_at=now))
            keys.append(self._finish(batch))
        log.info("ach cut finished", files=len(keys), planned=len(plan))
        return keys

    def _finish(self, batch: StoredBatch) -> str:
        self.payouts.assign(batch)  # retries each item itself
        payouts = self.payouts.payouts(batch.payment_ids)
        ach_file = nacha.build_file(
            payouts,
            self.originator,
            effective_date=batch.effective_date,
            created_at=batch.created_at,
            file_id_modifier=batch.file_id_modifier,
            same_day=batch.kind == "same_day",
        )
        key = file_key(batch)
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
                Metadata={"batch-id": batch.batch_id, "entries": str(len(payouts))},
            )
        )
        traces = nacha.payment_trace_numbers(payouts, ach_file)
        for payout in payouts:
            outcome = retry_throttled(
                partial(
                    self.ledger.record_payout,
                    payout.payment_id,
                    amount_cents=payout.amount_cents,
                    payout_ref=batch.batch_id,
                    at=batch.created_at,
                )
            )
            if isinstance(outcome, ledger.Rejected):
                raise RuntimeError(f"ledger refused the payout of {payout.payment_id}: {outcome.message}")
        self._announce(batch, key, payouts, traces, ach_file)
        retry_throttled(lambda: self.payouts.close_batch(batch.batch_id, key))
        return key

    def _announce(
        self,
        batch: StoredBatch,
        key: str,
        payouts: Sequence[nacha.Payout],
        traces: Mapping[str, str],
        ach_file: nacha.AchFile,
    ) -> None:
        window = "same_day" if batch.kind == "same_day" else "standard"
        created = ev.AchBatchCreated.create(
            payment_id=batch.batch_id,
            producer=STEP,
            dedup_key=batch.batch_id,
            occurred_at=batch.created_at,
            data=ev.AchBatchCreatedData(
                batch_id=batch.batch_id,
                bucket=self.bucket,
                file_key=key,
                entry_count=len(payouts),
                total_credit_cents=ach_file.control.total_credit_cents,
                total_debit_cents=ach_file.control.total_debit_cents,
                entry_hash=f"{ach_file.control.entry_hash:010d}",
                effective_date=batch.effective_date.isoformat(),
                window=window,
                payment_ids=list(batch.payment_ids),
            ),
        )
        batched = [
            ev.PayoutBatched.create(
                payment_id=payout.payment_id,
                producer=STEP,
                dedup_key=batch.batch_id,
                occurred_at=batch.created_at,
                data=ev.PayoutBatchedData(
                    batch_id=batch.batch_id,
                    file_key=key,
                    trace_number=traces[payout.payment_id],
                    amount_cents=payout.amount_cents,
                    effective_date=batch.effective_date.isoformat(),
                    window=window,
                ),
            )
            for payout in payouts
        ]
        result = self.events.publish([*batched, created])
        if not result.ok:
            raise RuntimeError(f"{len(result.failed)} batch events not published; the next cut retries")


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
