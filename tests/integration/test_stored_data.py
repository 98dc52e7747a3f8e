"""Card numbers, CVVs and payee account numbers stay in the vaults: a payment taken to its ACH file
leaves none of them anywhere else (the NACHA file aside, which must carry the account), and the
stored-data scan finds each one planted in each kind of store it reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from paypipe.domain import nacha
from paypipe.embedded.data_scan import Leak, Secrets, pipeline_sources, scan
from paypipe.embedded.evidence import ach_file_entries
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.scenario import payment_requested
from paypipe.events import models as ev

pytestmark = pytest.mark.embedded

PAN = "378282246310005"  # American Express: a four-digit CVV
CVV = "7319"
ACCOUNT = "4400718293"
PLANTED = f"card {PAN} cvv: {CVV} account {ACCOUNT}"
KINDS = {"known card number", "CVV", "known account number"}


@dataclass
class Run:
    pipeline: EmbeddedPipeline
    log_file: Path
    secrets: Secrets

    def leaks(self, extra_log: str = "") -> list[Leak]:
        return scan(pipeline_sources(self.pipeline, self.log_file.read_text() + extra_log), self.secrets)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """One payment requested, held, completed and cut into an ACH file; logs captured."""
    log_file = tmp_path / "steps.jsonl"
    monkeypatch.setenv("LOG_FILE", str(log_file))
    with EmbeddedPipeline() as pipeline:
        request = payment_requested(
            "sd-1",
            customer_id="c-sd",
            amount_cents=4_200,
            pan=PAN,
            cvv=CVV,
            account_number=ACCOUNT,
            occurred_at=pipeline.clock.now(),
        )
        assert pipeline.publish([request]).ok
        pipeline.drain()
        (held,) = [e for e in pipeline.observed() if isinstance(e, ev.FundsHeld)]
        done = ev.ServiceCompleted.create(
            payment_id="sd-1",
            producer="client",
            cause=held,
            data=ev.ServiceCompletedData(completed_at=pipeline.clock.now()),
        )
        assert pipeline.publish([done]).ok
        pipeline.drain()
        pipeline.run_schedule("AchCutFunction", pipeline.clock.now() + timedelta(days=1))
        pipeline.drain()
        log_file.touch()
        yield Run(pipeline, log_file, Secrets.of([ev.to_detail(request)]))


def found(leaks: list[Leak], where: str) -> set[str]:
    return {leak.kind for leak in leaks if leak.where.startswith(where)}


def test_a_payment_paid_out_leaves_its_card_cvv_and_account_only_in_the_vaults_and_its_nacha_file(run: Run):
    pipeline = run.pipeline
    assert run.leaks() == []
    entries, _ = ach_file_entries(pipeline)
    assert [entry.amount_cents for entry in entries if entry.is_credit] == [4_200]
    # The NACHA file is the one place the account number is written in full (the cut detokenized it).
    bucket = pipeline.stack.outputs["AchBucketName"]
    (key,) = [o["Key"] for o in pipeline.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    text = pipeline.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    (batch,) = nacha.parse(text, strict=True).batches
    assert [entry.dfi_account_number.strip() for entry in batch.entries if entry.is_credit] == [ACCOUNT]
    # The archive holds the pipeline's events, never the request nor its validated form.
    archived = {event["detail-type"] for event in pipeline.archived()}
    assert {"PaymentTokenized", "FundsHeld", "FundsReleased", "PayoutBatched", "ServiceCompleted"} <= archived
    assert not archived & ev.CARDHOLDER_DATA_EVENT_TYPES
    # Every step after tokenize carries the account by token and last four.
    released = next(e for e in pipeline.observed() if isinstance(e, ev.FundsReleased))
    assert released.data.payee.account_token.startswith("acct_")
    assert released.data.payee.account_last4 == ACCOUNT[-4:]


def held_event(pipeline: EmbeddedPipeline) -> ev.FundsHeld:
    return next(e for e in pipeline.observed() if isinstance(e, ev.FundsHeld))


def plant_log(run: Run) -> str:
    return json.dumps({"event": "oops", "detail": PLANTED}) + "\n"


def plant_event(run: Run) -> str:
    opened = ev.DisputeOpened.create(
        payment_id="sd-1", producer="client", data=ev.DisputeOpenedData(dispute_id="d-1", reason=PLANTED)
    )
    assert run.pipeline.publish([opened]).ok
    run.pipeline.drain()
    return ""


def plant_archive(run: Run) -> str:
    """A field no contract has: the consumers never see it, the archive keeps it."""
    entry = {
        "EventBusName": run.pipeline.stack.outputs["EventBusName"],
        "Source": ev.CLIENT_SOURCE,
        "DetailType": "ServiceCompleted",
        "Detail": json.dumps({**ev.to_detail(_completed(run)), "note": PLANTED}),
    }
    assert run.pipeline.client("events").put_events(Entries=[entry])["FailedEntryCount"] == 0
    run.pipeline.drain()
    return ""


def _completed(run: Run) -> ev.ServiceCompleted:
    return ev.ServiceCompleted.create(
        payment_id="sd-1",
        producer="client",
        dedup_key="planted",
        data=ev.ServiceCompletedData(completed_at=run.pipeline.clock.now()),
    )


def plant_dlq(run: Run) -> str:
    url = run.pipeline.stack.outputs["FraudDLQUrl"]
    run.pipeline.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"detail": PLANTED}))
    return ""


def plant_table(run: Run) -> str:
    item: dict[str, Any] = {"pk": {"S": "payment#planted"}, "sk": {"S": "note"}, "note": {"S": PLANTED}}
    run.pipeline.client("dynamodb").put_item(
        TableName=run.pipeline.stack.outputs["PayoutsTableName"], Item=item
    )
    return ""


def plant_s3(run: Run) -> str:
    bucket = run.pipeline.stack.outputs["AchBucketName"]
    run.pipeline.client("s3").put_object(Bucket=bucket, Key="reports/planted.txt", Body=PLANTED.encode())
    return ""


@pytest.mark.parametrize(
    ("plant", "where"),
    [
        (plant_log, "log line"),
        (plant_event, "event DisputeOpened"),
        (plant_archive, "archive ServiceCompleted"),
        (plant_dlq, "DLQ FraudDLQUrl"),
        (plant_table, "DynamoDB"),
        (plant_s3, "S3"),
    ],
    ids=["logs", "events", "archive", "dlq", "table", "s3"],
)
def test_a_card_number_cvv_and_account_number_planted_in_a_store_are_each_found_there(run: Run, plant, where):
    assert run.leaks() == []
    extra_log = plant(run)
    leaks = run.leaks(extra_log)
    assert found(leaks, where) >= KINDS, leaks
    assert all(ACCOUNT not in str(leak) and PAN not in str(leak) for leak in leaks)  # reports mask them


def test_a_nacha_file_may_carry_the_account_number_but_never_a_card_number_or_cvv(run: Run):
    bucket = run.pipeline.stack.outputs["AchBucketName"]
    run.pipeline.client("s3").put_object(
        Bucket=bucket, Key="ach/2026/12/01/planted.ach", Body=PLANTED.encode()
    )
    assert found(run.leaks(), "S3") == {"known card number", "card-shaped digit run", "CVV"}


def test_a_run_with_anything_found_is_not_ok():
    from collections import Counter

    from paypipe.embedded.demo import RunReport
    from paypipe.embedded.reconcile import Reconciliation

    clean = RunReport(payments=1, intents=Counter(), reconciliation=Reconciliation())
    assert clean.ok
    assert not RunReport(1, Counter(), Reconciliation(), stored_data_leaks=["log line 3: CVV ***"]).ok


def test_the_scan_reads_the_timeline_table_the_projector_filled(run: Run):
    """The read model holds an entry per event of the payment, and the scan above read them all."""
    timeline = [text for where, text, _ in pipeline_sources(run.pipeline, "") if "TimelineTable" in where]
    assert len(timeline) >= 8  # request to payout
    assert all(PAN not in text and ACCOUNT not in text and f'"{CVV}"' not in text for text in timeline)
