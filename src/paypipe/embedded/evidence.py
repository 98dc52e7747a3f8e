"""What a run leaves behind, read for reconciliation and reports.

DLQ contents (peeked, so they stay for the card number scan and for replays), every entry of
every NACHA file in the ACH bucket, the ledger, and the run's context (final holds, settings,
the pipeline clock at the end). Read from an embedded pipeline or from any deployed stack
(``Deployment``: its clients, outputs and parameters), e.g. the template on LocalStack.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

from paypipe.adapters.ledger_store import LedgerStore
from paypipe.domain import nacha
from paypipe.domain.ach_calendar import EASTERN
from paypipe.domain.settlement import REPORT_PREFIX, FeeSchedule, SettlementLine, parse_report, report_day
from paypipe.embedded.reconcile import AchEntry, BankAnswer, Context, DlqRecord, PayoutRow
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.ops.dlq_aws import peek
from paypipe.steps.ach_batch import PAYOUT_FILES_PREFIX
from paypipe.steps.ach_returns import INBOUND_PREFIX
from paypipe.steps.charge import STEP as CHARGE_STEP


class StackDescription(Protocol):
    @property
    def outputs(self) -> Mapping[str, str]: ...

    @property
    def parameters(self) -> Mapping[str, str]: ...


class Deployment(Protocol):
    """A deployed stack as the readers here need it (an ``EmbeddedPipeline`` is one)."""

    @property
    def stack(self) -> StackDescription: ...

    def client(self, service: str) -> Any: ...


@dataclass(frozen=True)
class FileEntry:
    """One entry of a NACHA file in the bucket, with its file's identity."""

    file_key: str
    trace_number: str
    amount_cents: int
    is_credit: bool
    file_id: str  # the header's creation date and file id modifier, e.g. "2026-11-04/A"
    effective_date: str
    same_day: bool
    odfi: str = ""  # the header's immediate destination
    created_at: datetime | None = None  # the header's creation date and time (Eastern)
    prenote: bool = False

    def as_ach_entry(self) -> AchEntry:
        return AchEntry(
            self.file_key,
            self.trace_number,
            self.amount_cents,
            self.is_credit,
            odfi=self.odfi,
            file_id=self.file_id,
            created_at=self.created_at,
            effective_date=date.fromisoformat(self.effective_date),
            same_day=self.same_day,
            prenote=self.prenote,
        )

    def as_report(self, payment_id: str | None) -> dict[str, Any]:
        return {
            "payment_id": payment_id,
            "amount_cents": self.amount_cents,
            "trace_number": self.trace_number,
            "file_key": self.file_key,
            "file_id": self.file_id,
            "effective_date": self.effective_date,
            "same_day": self.same_day,
            "credit": self.is_credit,
            **({"prenote": True} if self.prenote else {}),
        }


def dlq_records(pipeline: Deployment) -> list[DlqRecord]:
    sqs = pipeline.client("sqs")
    return [
        DlqRecord(name, message.payment_id, message.detail_type if message.event else None, message.reason)
        for name, url in pipeline.stack.outputs.items()
        if name.endswith("DLQUrl")
        for message in peek(sqs, url, limit=sys.maxsize, wait_seconds=0)
    ]


def file_entries(text: str, key: str) -> list[FileEntry]:
    parsed = nacha.parse(text, strict=True)
    header = parsed.header
    file_id = f"{header.creation_date.isoformat()}/{header.file_id_modifier}"
    created = datetime.combine(header.creation_date, header.creation_time or time(0), tzinfo=EASTERN)
    return [
        FileEntry(
            key,
            entry.trace_number,
            entry.amount_cents,
            entry.is_credit,
            file_id,
            str(batch.header.effective_entry_date),  # always set in the files the pipeline writes
            batch.header.company_descriptive_date.startswith("SD"),
            odfi=header.immediate_destination,
            created_at=created,
            prenote=entry.is_prenote,
        )
        for batch in parsed.batches
        for entry in batch.entries
    ]


def payout_rows(pipeline: Deployment) -> list[PayoutRow]:
    """Every payout the ACH batch step recorded, with its status (pending, assigned, blocked...)."""
    dynamodb = pipeline.client("dynamodb")
    rows: list[PayoutRow] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=pipeline.stack.outputs["PayoutsTableName"]):
        for item in page["Items"]:
            if item["sk"]["S"] != "payout":
                continue
            payout = json.loads(item["payout"]["S"])
            rows.append(
                PayoutRow(
                    payment_id=payout["payment_id"],
                    amount_cents=int(payout["amount_cents"]),
                    released_at=datetime.fromisoformat(item["released_at"]["S"]),
                    status=item["status"]["S"],
                    reason=item.get("reason", {}).get("S", ""),
                )
            )
    return rows


def ach_file_entries(pipeline: Deployment, out_dir: Path | None = None) -> tuple[list[FileEntry], list[Path]]:
    """Every entry of every file in the ACH bucket (not only those announced by events); with
    ``out_dir``, the files are copied there too."""
    s3 = pipeline.client("s3")
    bucket = pipeline.stack.outputs["AchBucketName"]
    entries: list[FileEntry] = []
    files: list[Path] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            text = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("ascii")
            if out_dir is not None and not item["Key"].startswith(REPORT_PREFIX):  # not the acquirer's
                path = out_dir / item["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                files.append(path)
            if item["Key"].startswith(PAYOUT_FILES_PREFIX):  # not the bank's answers under inbound/
                entries.extend(file_entries(text, item["Key"]))
    return entries, files


def bank_answers(pipeline: Deployment) -> list[BankAnswer]:
    """Every return and notification of change in the bank's files under the inbound prefix."""
    s3 = pipeline.client("s3")
    bucket = pipeline.stack.outputs["AchBucketName"]
    answers: list[BankAnswer] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=INBOUND_PREFIX):
        for item in page.get("Contents", []):
            text = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("ascii")
            try:
                parsed = nacha.parse(text, strict=False)
            except nacha.NachaParseError:
                continue  # parked whole by the returns consumer; its event says so
            answers.extend(_answers(item["Key"], parsed))
    return answers


def _answers(key: str, parsed: nacha.AchFile) -> list[BankAnswer]:
    found = []
    for batch in parsed.batches:
        for entry in batch.entries:
            if (returned := entry.entry_return) is not None:
                found.append(
                    BankAnswer(
                        key, entry.trace_number, returned.original_trace_number, "return", returned.code
                    )
                )
            elif isinstance(correction := entry.correction, nacha.EntryCorrection):
                found.append(
                    BankAnswer(
                        key,
                        entry.trace_number,
                        correction.original_trace_number,
                        "correction",
                        correction.code,
                    )
                )
    return found


def ledger(pipeline: Deployment) -> LedgerStore:
    return LedgerStore(pipeline.stack.outputs["LedgerTableName"], pipeline.client("dynamodb"))


def run_context(pipeline: EmbeddedPipeline) -> Context:
    """What reconciliation needs besides the evidence: final holds, journal and payouts, the run's
    settings and its end, and every day of it settled by the simulated acquirer."""
    context = stack_context(
        pipeline, as_of=pipeline.clock.now(), external_event_ids=pipeline.external_event_ids
    )
    return replace(context, settlement_lines=settle_the_run(pipeline))


SETTLEMENT_REPORT_FUNCTION = "AcquirerReportFunction"
SETTLEMENT_MATCH_FUNCTION = "SettlementMatchFunction"


def settle_the_run(pipeline: EmbeddedPipeline) -> list[SettlementLine]:
    """The simulated acquirer's report of each day from the first card charged to the end of the
    run (written again when it was already), read back from the bucket as it dropped them, and
    each day's match against the card book (its SettlementReconciled). Each function is invoked
    as its schedule would (retried on failure); a day still unwritten after the retries is
    missing from the lines, and reconciliation reports its mismatch."""
    charges = [e.occurred_at for e in pipeline.observed() if e.producer == CHARGE_STEP]
    if not charges:
        return []
    first, last = min(charges).date(), pipeline.clock.now().date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    for function in (SETTLEMENT_REPORT_FUNCTION, SETTLEMENT_MATCH_FUNCTION):
        for day in days:
            pipeline.functions[function].invoke_async({"day": day.isoformat()})
    s3, bucket = pipeline.client("s3"), pipeline.stack.outputs["AchBucketName"]
    lines: list[SettlementLine] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=REPORT_PREFIX):
        for item in page.get("Contents", []):
            text = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            lines.extend(parse_report(text, report_day(item["Key"])).lines)
    return lines


def stack_context(
    deployment: Deployment, *, as_of: datetime, external_event_ids: Iterable[str], only: str = ""
) -> Context:
    """``run_context`` for any deployed stack; with ``only``, of the payments whose id starts with it
    (a stack that served other runs before)."""
    parameters = deployment.stack.parameters
    store = ledger(deployment)
    return Context(
        holds=[hold for hold in store.holds() if hold.payment_id.startswith(only)],
        transfers=[transfer for transfer in store.all_transfers() if transfer.payment_id.startswith(only)],
        payouts=[row for row in payout_rows(deployment) if row.payment_id.startswith(only)],
        # A clawback item sums every run's payments: matched against the journals of all of them only.
        stored_balances={} if only else store.stored_balances(),
        external_event_ids=frozenset(external_event_ids),
        as_of=as_of,
        client_skew=timedelta(seconds=int(parameters["ClientClockSkewSeconds"])),
        dispute_max_age=timedelta(days=int(parameters["DisputeMaxAgeDays"])),
        submission_lead=timedelta(minutes=int(parameters["AchSubmissionLeadMinutes"])),
        bank_answers=bank_answers(deployment),
        review_sweep_period=schedule_period(parameters["SweepSchedule"]),
        acquirer_fees=FeeSchedule(
            rate_bps=int(parameters["CardFeeRateBps"]),
            fixed_minor=int(parameters["CardFeeFixedMinor"]),
            chargeback_minor=int(parameters["ChargebackFeeMinor"]),
        ),
    )


def schedule_period(expression: str) -> timedelta:
    """The period of a ``rate(N unit)`` schedule; a cron schedule counts as a day."""
    match = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression.strip())
    if match is None:
        return timedelta(days=1)
    return timedelta(**{f"{match[2]}s": int(match[1])})
