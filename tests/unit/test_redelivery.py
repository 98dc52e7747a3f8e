"""Steps without an idempotency record, on moto: a redelivery publishes the same events again and
changes no stored item; the same payment with other content is parked as a conflict.

Each consumer is given an idempotency table, which must stay empty: the step's own conditional
write decides once (fraud: the payment's velocity marker keeps its decision).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from pydantic import SecretStr

from paypipe.adapters.account_vault import AccountVault
from paypipe.adapters.ledger_store import LedgerStore
from paypipe.adapters.payments_store import PaymentsStore
from paypipe.adapters.payouts_store import PayoutsStore
from paypipe.adapters.reviews_store import ReviewsStore
from paypipe.adapters.vault import CardVault, DataKeyCache, KmsKeyProvider
from paypipe.adapters.velocity_store import VelocityStore
from paypipe.domain import fraud
from paypipe.domain import ledger as ledger_module
from paypipe.embedded.samples import SampleChain, sample_chain
from paypipe.events import models as ev
from paypipe.runtime.consumer import Consumer, Route
from paypipe.steps import ach_batch, escrow_hold, release, tokenize
from paypipe.steps import fraud as fraud_step
from paypipe.steps.reviews import ReviewDesk
from tests.tables import create_table
from tests.unit.test_consumer import bus_body, record
from tests.unit.test_reviews import Capture

HOLD_DAYS = 7
TABLES = {"idem": None, "vault": False, "velocity": False, "reviews": True, "ledger": True}
TABLES |= {"payments": False, "payouts": True}


@dataclass
class Step:
    consumer: Consumer
    capture: Capture
    sqs: Any
    dlq: str
    dynamodb: Any

    def deliver(
        self, event: ev.Event, message_id: str = "m1", later: timedelta = timedelta(0)
    ) -> list[ev.Event]:
        at = event.occurred_at + timedelta(seconds=1) + later
        self.consumer.process([record(bus_body(event), message_id, sent_at=at)])
        out, self.capture.events = self.capture.events, []
        return out

    def parked(self) -> list[str]:
        messages = self.sqs.receive_message(
            QueueUrl=self.dlq, MessageAttributeNames=["All"], MaxNumberOfMessages=10
        ).get("Messages", [])
        return [m["MessageAttributes"]["error_reason"]["StringValue"] for m in messages]

    def stored(self) -> dict[str, list[dict[str, Any]]]:
        """Every item of every table (the idempotency table included)."""
        return {
            table: sorted(
                self.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"],
                key=lambda item: sorted((k, str(v)) for k, v in item.items()),
            )
            for table in TABLES
        }


@pytest.fixture
def aws_tables(aws: None) -> Any:
    dynamodb = boto3.client("dynamodb")
    for table, gsi in TABLES.items():
        if gsi is None:
            dynamodb.create_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        else:
            create_table(dynamodb, table, gsi=gsi)
    return dynamodb


@pytest.fixture
def make_step(aws_tables: Any) -> Callable[[str, Mapping[str, Route]], Step]:
    sqs = boto3.client("sqs")

    def make(name: str, routes: Mapping[str, Route]) -> Step:
        dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        capture = Capture()
        consumer = Consumer(
            name,
            routes,
            publisher=capture,  # type: ignore[arg-type]
            sqs_client=sqs,
            dlq_url=dlq,
            max_receive_count=3,
            idempotency_store=DynamoDBPersistenceLayer(table_name="idem", boto3_client=aws_tables),
        )
        return Step(consumer, capture, sqs, dlq, aws_tables)

    return make


@pytest.fixture
def chain() -> SampleChain:
    return sample_chain(HOLD_DAYS)


def fraud_routes(dynamodb: Any, decline_at: int | None = None) -> dict[str, Route]:
    desk = ReviewDesk(ReviewsStore("reviews", dynamodb), deadline_hours=72)
    velocity = VelocityStore("velocity", dynamodb)
    step = fraud_step.FraudStep(velocity, fraud.load_ruleset(None), decline_at, decline_at, desk)
    return fraud_step.routes(step, desk)


def tokenize_routes(dynamodb: Any) -> dict[str, Route]:
    kms = boto3.client("kms")
    keys = KmsKeyProvider(kms, kms.create_key(Description="vault")["KeyMetadata"]["Arn"])
    vault = CardVault("vault", dynamodb, keys, DataKeyCache())
    return tokenize.routes(
        tokenize.TokenizeStep(vault, AccountVault("vault", dynamodb, keys, DataKeyCache()))
    )


def assert_redelivery_repeats_itself(step: Step, event: ev.Event) -> list[ev.Event]:
    """The same message again, then a second copy later: the same events, nothing stored anew."""
    first = step.deliver(event)
    after_first = step.stored()
    assert step.deliver(event) == first  # same ids, same content, same times
    assert step.deliver(event, "m2", later=timedelta(minutes=5)) == first  # a later copy too
    assert step.stored() == after_first
    assert after_first["idem"] == []
    assert step.parked() == []
    return first


def test_tokenize_redelivered_publishes_the_same_tokens_and_vaults_nothing_twice(make_step, chain):
    step = make_step("tokenize", tokenize_routes(boto3.client("dynamodb")))
    (tokenized,) = assert_redelivery_repeats_itself(step, chain.validated)
    assert isinstance(tokenized, ev.PaymentTokenized)
    assert step.stored()["vault"]  # the card and the account, vaulted by the first delivery only


def test_tokenize_other_content_for_the_payment_is_refused_by_fraud(make_step, chain):
    dynamodb = boto3.client("dynamodb")
    tokenizer = make_step("tokenize", tokenize_routes(dynamodb))
    scorer = make_step("fraud", fraud_routes(dynamodb))
    (tokenized,) = tokenizer.deliver(chain.validated)
    (scored,) = scorer.deliver(tokenized)
    other_card = chain.validated.data.card.model_copy(update={"number": SecretStr("4000056655665556")})
    changed = chain.validated.model_copy(
        update={"data": chain.validated.data.model_copy(update={"card": other_card})}
    )
    (other,) = tokenizer.deliver(changed, "m2")
    assert other.data.card.token != tokenized.data.card.token
    assert scorer.deliver(other, "m2") == []
    assert scorer.parked() == ["IdempotencyConflict"]
    assert scorer.deliver(tokenized, "m3") == [scored]  # the first content still gets its answer


def test_fraud_redelivered_publishes_the_stored_decision_and_records_velocity_once(make_step, chain):
    dynamodb = boto3.client("dynamodb")
    step = make_step("fraud", fraud_routes(dynamodb))
    (scored,) = assert_redelivery_repeats_itself(step, chain.tokenized)
    assert isinstance(scored, ev.PaymentScored) and scored.data.assessment.decision is ev.Decision.APPROVE
    velocity = step.stored()["velocity"]
    assert sorted(item["pk"]["S"].split("#")[0] for item in velocity) == ["card", "customer", "ip", "payment"]


def test_fraud_redelivery_keeps_the_first_decision_whatever_the_history_says_now(make_step, chain):
    dynamodb = boto3.client("dynamodb")
    step = make_step("fraud", fraud_routes(dynamodb))
    (scored,) = step.deliver(chain.tokenized)
    # Declining everything by the time of the redelivery: the stored decision is published.
    step.consumer.routes = fraud_routes(dynamodb, decline_at=0)
    assert step.deliver(chain.tokenized, "m2", later=timedelta(hours=1)) == [scored]


def test_fraud_other_content_for_the_payment_is_parked(make_step, chain):
    step = make_step("fraud", fraud_routes(boto3.client("dynamodb")))
    step.deliver(chain.tokenized)
    before = step.stored()
    changed = chain.tokenized.model_copy(
        update={"data": chain.tokenized.data.model_copy(update={"amount_cents": 99_999})}
    )
    assert step.deliver(changed, "m2") == []
    assert step.parked() == ["IdempotencyConflict"]
    assert step.stored() == before


def escrow_routes(dynamodb: Any) -> dict[str, Route]:
    hold = escrow_hold.EscrowHoldStep(
        LedgerStore("ledger", dynamodb), PaymentsStore("payments", dynamodb), timedelta(days=HOLD_DAYS)
    )
    return escrow_hold.routes(hold)


def test_escrow_redelivered_publishes_the_same_hold_and_holds_once(make_step, chain):
    dynamodb = boto3.client("dynamodb")
    step = make_step("escrow_hold", escrow_routes(dynamodb))
    (held,) = assert_redelivery_repeats_itself(step, chain.charged)
    assert isinstance(held, ev.FundsHeld) and held.data.hold.amount_cents == chain.charged.data.amount_cents
    hold = LedgerStore("ledger", dynamodb).get_hold(chain.charged.payment_id)
    assert hold is not None and hold.amount_cents == chain.charged.data.amount_cents


def test_escrow_other_content_for_the_payment_is_parked_before_any_money_moves(make_step, chain):
    dynamodb = boto3.client("dynamodb")
    step = make_step("escrow_hold", escrow_routes(dynamodb))
    step.deliver(chain.charged)
    before = step.stored()
    other_payee = chain.charged.data.payee.model_copy(update={"name": "Someone Else"})
    changed = chain.charged.model_copy(
        update={"data": chain.charged.data.model_copy(update={"payee": other_payee})}
    )
    assert step.deliver(changed, "m2") == []
    assert step.parked() == ["IdempotencyConflict"]
    assert step.stored() == before
    assert PaymentsStore("payments", dynamodb).payee(chain.charged.payment_id) == chain.charged.data.payee


def collect_routes(dynamodb: Any) -> dict[str, Route]:
    return ach_batch.collect_routes(ach_batch.CollectStep(PayoutsStore("payouts", dynamodb)))


def test_ach_collect_redelivered_records_the_payout_once(make_step, chain):
    dynamodb = boto3.client("dynamodb")
    step = make_step("ach_batch", collect_routes(dynamodb))
    assert assert_redelivery_repeats_itself(step, chain.released) == []
    (pending,) = PayoutsStore("payouts", dynamodb).pending()
    assert (pending.payout.payment_id, pending.payout.amount_cents) == (
        chain.released.payment_id,
        chain.released.data.amount_cents,
    )


def test_ach_collect_other_content_for_the_payment_is_parked(make_step, chain):
    dynamodb = boto3.client("dynamodb")
    step = make_step("ach_batch", collect_routes(dynamodb))
    step.deliver(chain.released)
    before = step.stored()
    changed = chain.released.model_copy(
        update={"data": chain.released.data.model_copy(update={"amount_cents": 1})}
    )
    assert step.deliver(changed, "m2") == []
    assert step.parked() == ["IdempotencyConflict"]
    assert step.stored() == before


def test_hold_expiry_redelivered_releases_once_and_publishes_the_same_release(make_step, chain):
    dynamodb = boto3.client("dynamodb")
    make_step("escrow_hold", escrow_routes(dynamodb)).deliver(chain.charged)
    ledger = LedgerStore("ledger", dynamodb)
    hold = ledger.get_hold(chain.charged.payment_id)
    assert hold is not None
    step = make_step(
        "release", release.routes(release.ReleaseStep(ledger, PaymentsStore("payments", dynamodb)))
    )
    (released,) = assert_redelivery_repeats_itself(step, release.expiry_due(hold))
    assert isinstance(released, ev.FundsReleased)
    assert released.data.trigger is ev.ReleaseTrigger.HOLD_EXPIRED
    assert released.data.amount_cents == hold.amount_cents
    resolved = ledger.get_hold(chain.charged.payment_id)
    assert resolved is not None and resolved.status is ledger_module.HoldStatus.EXPIRED_RELEASED
