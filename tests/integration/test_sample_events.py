"""The committed `sam local invoke` samples really work: each one, handed to its function's handler
on the embedded (moto) stack built from the template, succeeds and publishes what the next
function's sample holds."""

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from paypipe.adapters.account_vault import AccountVault, account_context
from paypipe.adapters.ledger_store import LedgerStore
from paypipe.adapters.payouts_store import PayoutsStore
from paypipe.adapters.vault import (
    CardVault,
    DataKeyCache,
    KmsKeyProvider,
    card_context,
    sealed_attributes,
    sealing_context,
)
from paypipe.domain import ledger, nacha, settlement
from paypipe.domain.tokenization import encrypt
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.samples import (
    PAYMENT_ID,
    SAMPLE_ACCOUNT_TOKEN,
    SAMPLE_PAN,
    SAMPLE_TOKEN,
    TENANT_ID,
    sample_chain,
    sqs_event,
)
from paypipe.embedded.template import load_template
from paypipe.events import models as ev

pytestmark = pytest.mark.embedded

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
SQS_FUNCTIONS = (
    "ValidateFunction",
    "TokenizeFunction",
    "FraudFunction",
    "ChargeFunction",
    "EscrowHoldFunction",
    "ReleaseFunction",
    "AchBatchFunction",
    "RefundFunction",
    "CardBookFunction",
)


def sample(logical_id: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{logical_id}.json").read_text())


def sample_event(logical_id: str) -> ev.Event:
    """The pipeline event inside a function's SQS sample."""
    (record,) = sample(logical_id)["Records"]
    body = json.loads(record["body"])
    return ev.parse_detail(body["detail-type"], body["detail"])


def without_time(event: ev.Event) -> dict[str, Any]:
    """The event minus ``occurred_at``, which a step stamps with the time it runs, and minus the
    card and account fingerprints, which each vault computes with its own key."""
    detail = ev.to_detail(event) | {"occurred_at": None}
    card = detail["data"].get("card")
    if isinstance(card, dict) and "fingerprint" in card:
        card["fingerprint"] = None
    payee = detail["data"].get("payee")
    if isinstance(payee, dict) and "account_fingerprint" in payee:
        payee["account_fingerprint"] = None
    return detail


def invoke(pipeline: EmbeddedPipeline, logical_id: str) -> Any:
    return pipeline.functions[logical_id].invoke(sample(logical_id))


def invoke_sqs(pipeline: EmbeddedPipeline, logical_id: str) -> list[ev.Event]:
    """Invoke an SQS-fed function with its sample; the events it published."""
    seen = len(pipeline.observed())
    assert invoke(pipeline, logical_id) == {"batchItemFailures": []}
    return pipeline.observed()[seen:]


def seed_vaults_with_sample_card_and_account(pipeline: EmbeddedPipeline) -> None:
    """Vaults that hold the sample card and payee account under the sample tokens, as a vault from
    before tokens were keyed holds them: the item under its random token and a link naming it."""
    env = pipeline.functions["DetokenizeFunction"].spec.environment
    table, ddb = env["VAULT_TABLE"], pipeline.session.client("dynamodb")
    keys = KmsKeyProvider(pipeline.session.client("kms"), env["VAULT_KEY_ID"])
    vault = CardVault(table, ddb, keys, DataKeyCache())
    card = vault.tokenize(SAMPLE_PAN, 12, 2030, tenant=TENANT_ID)
    context = card_context(TENANT_ID)
    reseal = Reseal(ddb, table, keys, SAMPLE_PAN, context)
    reseal.move(
        (f"token#{card.token}", "card"), f"token#{SAMPLE_TOKEN}", sealing_context(TENANT_ID, SAMPLE_TOKEN)
    )
    reseal.link((f"fingerprint#{card.fingerprint_ref}", f"tenant#{TENANT_ID}"), SAMPLE_TOKEN)
    assert vault.tokenize(SAMPLE_PAN, 12, 2030, tenant=TENANT_ID).token == SAMPLE_TOKEN
    payee = sample_chain().validated.data.payee
    accounts = AccountVault(table, ddb, keys, DataKeyCache())
    account = accounts.tokenize(payee.routing_number, payee.account_number, tenant=TENANT_ID)
    context = account_context(TENANT_ID)
    reseal = Reseal(ddb, table, keys, payee.account_number, context)
    sealing = {**context, "token": SAMPLE_ACCOUNT_TOKEN}
    reseal.move((f"account#{account.token}", "account"), f"account#{SAMPLE_ACCOUNT_TOKEN}", sealing)
    reseal.link((f"accountfp#{account.fingerprint}", f"tenant#{TENANT_ID}"), SAMPLE_ACCOUNT_TOKEN)
    token = accounts.tokenize(payee.routing_number, payee.account_number, tenant=TENANT_ID).token
    assert token == SAMPLE_ACCOUNT_TOKEN


@dataclass(frozen=True)
class Reseal:
    """Moves a vaulted value to another token's item (sealed again for it) and links it there."""

    ddb: Any
    table: str
    keys: KmsKeyProvider
    value: str
    context: dict[str, str]

    def move(self, key: tuple[str, str], pk: str, sealing: dict[str, str]) -> None:
        item_key = {"pk": {"S": key[0]}, "sk": {"S": key[1]}}
        item = self.ddb.get_item(TableName=self.table, Key=item_key)["Item"]
        self.ddb.delete_item(TableName=self.table, Key=item_key)
        data_key = DataKeyCache().encryption_key(self.context, self.keys)
        sealed = encrypt(self.value.encode("ascii"), data_key.plaintext, sealing)
        moved = {**item, "pk": {"S": pk}, **sealed_attributes(sealed, data_key, self.context)}
        self.ddb.put_item(TableName=self.table, Item=moved)

    def link(self, key: tuple[str, str], token: str) -> None:
        link = {"pk": {"S": key[0]}, "sk": {"S": key[1]}, "token": {"S": token}}
        self.ddb.put_item(TableName=self.table, Item=link)


def assert_nothing_parked(pipeline: EmbeddedPipeline) -> None:
    depths = pipeline.queue_depths()
    assert depths and set(depths.values()) == {0}, depths


def test_there_is_a_sample_for_every_function_and_each_sqs_sample_matches_its_rule():
    template = load_template()
    functions = {lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert {path.stem for path in EVENTS_DIR.glob("*Function.json")} == functions
    env = json.loads((EVENTS_DIR / "env.json").read_text())
    assert set(env) == functions | {"Parameters"}

    # Put on the bus, each SQS sample's EventBridge event reaches that function's queue by the
    # template's rule (so its source, detail-type and detail are what the rule expects).
    with EmbeddedPipeline() as pipeline:
        events, sqs = pipeline.session.client("events"), pipeline.session.client("sqs")
        sqs_functions = {lid for lid, spec in pipeline.stack.functions.items() if spec.sqs_sources}
        assert sqs_functions == {*SQS_FUNCTIONS, "AchReturnsFunction", "ProjectorFunction"}
        for logical_id in SQS_FUNCTIONS:
            (record,) = sample(logical_id)["Records"]
            body = json.loads(record["body"])
            entry = {
                "EventBusName": pipeline.stack.outputs["EventBusName"],
                "Source": body["source"],
                "DetailType": body["detail-type"],
                "Detail": json.dumps(body["detail"]),
            }
            queue_arn = pipeline.stack.functions[logical_id].sqs_sources[0].queue_arn
            queue_url = pipeline.stack.queue_url_for_arn(queue_arn)
            sqs.purge_queue(QueueUrl=queue_url)  # the card book also got an earlier sample's charge
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
            delivered = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            assert [json.loads(m["Body"])["detail"] for m in delivered] == [body["detail"]], logical_id
        # The projector's queue got every one of them (card-bearing ones reduced to their key
        # facts) and its own sample (the held funds) as it is.
        (record,) = sample("ProjectorFunction")["Records"]
        body = json.loads(record["body"])
        entry = {"EventBusName": pipeline.stack.outputs["EventBusName"], "Source": body["source"]}
        entry |= {"DetailType": body["detail-type"], "Detail": json.dumps(body["detail"])}
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        queue_url = pipeline.stack.outputs["ProjectorQueueUrl"]
        delivered = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        projected = [json.loads(m["Body"])["detail"] for m in delivered]
        assert len(projected) == len(SQS_FUNCTIONS) + 1 and body["detail"] in projected
        assert not [d for d in projected if "card" in d["data"] and "number" in d["data"]["card"]]

        # The bank-file sample is S3's notification: on the default bus, for the stack's bucket.
        (record,) = sample("AchReturnsFunction")["Records"]
        body = json.loads(record["body"])
        body["detail"]["bucket"]["name"] = pipeline.stack.ref("AchBucket")
        entry = {"Source": "aws.s3", "DetailType": body["detail-type"], "Detail": json.dumps(body["detail"])}
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        queue_arn = pipeline.stack.functions["AchReturnsFunction"].sqs_sources[0].queue_arn
        delivered = sqs.receive_message(QueueUrl=pipeline.stack.queue_url_for_arn(queue_arn)).get(
            "Messages", []
        )
        assert [json.loads(m["Body"])["detail"] for m in delivered] == [body["detail"]]


def test_samples_take_one_payment_from_request_to_an_ach_file():
    with EmbeddedPipeline() as pipeline:
        seed_vaults_with_sample_card_and_account(pipeline)

        # Each step publishes exactly the event the next step's sample holds.
        for logical_id, next_id in itertools.pairwise(SQS_FUNCTIONS[:5]):
            (published,) = invoke_sqs(pipeline, logical_id)
            assert without_time(published) == without_time(sample_event(next_id)), logical_id
        # The hold is what the samples expect, and the ServiceCompleted sample follows it.
        (held,) = invoke_sqs(pipeline, "EscrowHoldFunction")
        assert without_time(held) == without_time(sample_chain().held)
        assert held.data.hold.held_at == sample_event("EscrowHoldFunction").occurred_at
        assert sample_event("ReleaseFunction").causation_id == held.event_id

        (released,) = invoke_sqs(pipeline, "ReleaseFunction")
        assert ev.to_detail(released) == ev.to_detail(sample_event("AchBatchFunction"))

        # ACH batch only records the pending payout; the scheduled cut writes the file.
        assert invoke_sqs(pipeline, "AchBatchFunction") == []
        env = pipeline.functions["AchCutFunction"].spec.environment
        payouts = PayoutsStore(env["PAYOUTS_TABLE"], pipeline.session.client("dynamodb"))
        assert [p.payout.payment_id for p in payouts.pending()] == [PAYMENT_ID]

        seen = len(pipeline.observed())
        result = invoke(pipeline, "AchCutFunction")
        assert len(result["files"]) == 1
        batched = pipeline.observed()[seen:]
        assert sorted(e.event_type for e in batched) == ["AchBatchCreated", "PayoutBatched"]
        (created,) = [e for e in batched if isinstance(e, ev.AchBatchCreated)]
        assert created.data.payment_ids == [PAYMENT_ID]
        assert created.data.window == "same_day"
        text = pipeline.session.client("s3").get_object(Bucket=env["ACH_BUCKET"], Key=result["files"][0])
        ach_file = nacha.parse(text["Body"].read().decode(), strict=True)
        assert ach_file.control.total_credit_cents == released.data.amount_cents
        assert payouts.pending() == []

        assert invoke(pipeline, "DetokenizeFunction") == {"token": SAMPLE_TOKEN, "pan": SAMPLE_PAN}
        assert_nothing_parked(pipeline)


def test_release_sweep_sample_auto_releases_the_sample_hold_once_expired():
    with EmbeddedPipeline() as pipeline:
        (held,) = invoke_sqs(pipeline, "EscrowHoldFunction")
        assert isinstance(held, ev.FundsHeld)

        seen = len(pipeline.observed())
        assert invoke(pipeline, "ReleaseSweepFunction") == {
            "expiries_published": 1,
            "disputes_aged": 0,
            "set_aside": 0,
        }
        pipeline.drain()  # the release consumer resolves the expiry
        due, released = pipeline.observed()[seen:][:2]
        assert isinstance(due, ev.HoldExpiryDue)
        assert isinstance(released, ev.FundsReleased)
        assert released.payment_id == PAYMENT_ID
        assert released.data.trigger is ev.ReleaseTrigger.HOLD_EXPIRED
        assert released.data.amount_cents == held.data.hold.amount_cents

        assert invoke(pipeline, "ReleaseSweepFunction") == {
            "expiries_published": 0,
            "disputes_aged": 0,
            "set_aside": 0,
        }
        assert_nothing_parked(pipeline)


def test_charge_refund_and_report_samples_charge_refund_and_settle_the_sample_card():
    with EmbeddedPipeline() as pipeline:
        seed_vaults_with_sample_card_and_account(pipeline)
        (charged,) = invoke_sqs(pipeline, "ChargeFunction")
        assert isinstance(charged, ev.PaymentCharged)
        assert without_time(charged) == without_time(sample_event("EscrowHoldFunction"))
        (held,) = invoke_sqs(pipeline, "EscrowHoldFunction")  # keeps the charge with the payout instructions
        # The ledger refunds the hold, as release does when the customer wins the sample's dispute.
        books = LedgerStore(pipeline.stack.outputs["LedgerTableName"], pipeline.session.client("dynamodb"))
        at = held.data.hold.held_at
        assert isinstance(books.refund(PAYMENT_ID, resolution_id="dispute:dsp-sample", at=at), ledger.Applied)
        (refunded,) = invoke_sqs(pipeline, "RefundFunction")
        assert isinstance(refunded, ev.CardRefunded)
        assert refunded.data.authorization_id == charged.data.charge.authorization_id
        assert refunded.data.amount_cents == sample_event("RefundFunction").data.amount_cents
        card_refunds = [t for t in books.transfers(PAYMENT_ID) if t.kind is ledger.TransferKind.CARD_REFUND]
        assert [t.postings[0].amount_cents for t in card_refunds] == [refunded.data.amount_cents]

        day = pipeline.clock.now().date()  # the acquirer books on the pipeline's clock
        report = pipeline.functions["AcquirerReportFunction"].invoke({"day": day.isoformat()})
        text = (
            pipeline.session.client("s3")
            .get_object(Bucket=pipeline.stack.outputs["AchBucketName"], Key=report["key"])["Body"]
            .read()
        )
        lines = settlement.parse_report(text.decode(), day).lines
        assert [(line.kind.value, line.amount_minor) for line in lines] == [
            ("capture", 12_500),
            ("refund", 12_500),
        ]

        # The card book takes its sample (a card refund) and books the charge and the refund the
        # steps published; the day's match finds each reported line booked.
        assert invoke(pipeline, "CardBookFunction") == {"batchItemFailures": []}
        for event in (charged, refunded):
            booked = pipeline.functions["CardBookFunction"].invoke(sqs_event(event, "card-book"))
            assert booked == {"batchItemFailures": []}
        matched = pipeline.functions["SettlementMatchFunction"].invoke({"day": day.isoformat()})
        assert matched == {"days": [day.isoformat()], "discrepancies": 0}
        assert invoke(pipeline, "SettlementMatchFunction")["days"]  # its scheduled sample runs too
        assert_nothing_parked(pipeline)
