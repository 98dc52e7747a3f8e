"""Sample invocation events for `sam local invoke`, one per function of the template.

They follow one payment from request to ACH file. Each is built from the event models (so it
validates against its contract) the way the producing step builds it, so the sample input of a
step is what the previous step publishes for the previous sample. `scripts/gen_sample_events.py`
writes them to ``events/``; a test fails if the files drift from what this module generates.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from paypipe.domain import fraud, ledger
from paypipe.domain.acquirer_simulator import SimulatedAcquirer
from paypipe.domain.validation import card_brand
from paypipe.embedded.scenario import payment_requested
from paypipe.embedded.template import (
    ACCOUNT_ID,
    REGION,
    Resolver,
    Stack,
    load_template,
    parameter_values,
)
from paypipe.events import models as ev
from paypipe.runtime.consumer import Receipt
from paypipe.steps.charge import SIMULATOR, ChargeStep
from paypipe.steps.fraud import transaction_of

EVENTS_DIR = Path(__file__).resolve().parents[3] / "events"
STACK_NAME = "paypipe-dev"
PAYMENT_ID = "sample-0001"
TENANT_ID = "default"
SAMPLE_PAN = "4111111111111111"  # the well-known test Visa number, never a real card
SAMPLE_TOKEN = "tok_samplecardtokenforsamlocalinvoke"  # noqa: S105 - a vault token, not a secret
# Shaped like the vault's keyed fingerprint; a real vault computes its own from its key.
SAMPLE_FINGERPRINT = (
    "fp_" + base64.b32encode(hashlib.sha256(b"sample card").digest()).decode().rstrip("=").lower()
)
SAMPLE_ACCOUNT_TOKEN = "acct_samplepayeeaccountforsamlocalrun"  # noqa: S105 - a vault token, not a secret
SAMPLE_ACCOUNT_FINGERPRINT = (
    "afp_" + base64.b32encode(hashlib.sha256(b"sample account").digest()).decode().rstrip("=").lower()
)
REQUESTED_AT = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)  # a Monday, 09:00 New York
COMPLETED_AT = datetime(2026, 11, 4, 16, 0, tzinfo=UTC)  # 11:00 New York: next same-day window 14:45
ACH_CUT_AT = datetime(2026, 11, 4, 20, 0, tzinfo=UTC)  # after that window closed, so the payout is due
SAMPLE_INBOUND_KEY = "inbound/2026/11/06/returns-0001.ach"  # a bank file (see docs/operations.md)
_NAMESPACE = uuid.UUID("3f1c9a56-0b7e-4d7e-8f63-5a1d2c7b9e40")


@dataclass(frozen=True)
class SampleChain:
    requested: ev.PaymentRequested
    validated: ev.PaymentValidated
    tokenized: ev.PaymentTokenized
    scored: ev.PaymentScored
    charged: ev.PaymentCharged
    held: ev.FundsHeld
    completed: ev.ServiceCompleted
    released: ev.FundsReleased


_STEP = timedelta(seconds=1)


def sample_chain(hold_days: int | None = None) -> SampleChain:
    """The sample payment's events, each derived from the previous one as its step derives it."""
    if hold_days is None:
        hold_days = int(parameter_values(load_template(), {})["HoldDays"])
    requested = payment_requested(
        PAYMENT_ID,
        customer_id="cust-sample",
        amount_cents=12_500,
        pan=SAMPLE_PAN,
        occurred_at=REQUESTED_AT,
        provider_id="prov-sample",
    )
    validated = _validated(requested)
    tokenized = _tokenized(validated)
    scored = _scored(tokenized)
    charged = _charged(scored)
    held = _held(charged, hold_days)
    completed = ev.ServiceCompleted.create(
        payment_id=PAYMENT_ID,
        data=ev.ServiceCompletedData(completed_at=COMPLETED_AT),
        producer="client",
        cause=held,
        occurred_at=COMPLETED_AT,
    )
    released = _released(held, completed)
    return SampleChain(requested, validated, tokenized, scored, charged, held, completed, released)


def _validated(requested: ev.PaymentRequested) -> ev.PaymentValidated:
    """Validate decides at its receipt time (the sample record's SentTimestamp) and drops the CVV."""
    data = requested.data.model_dump()
    del data["card"]["cvv"]
    return ev.PaymentValidated.create(
        payment_id=PAYMENT_ID,
        data=ev.PaymentValidatedData.model_validate({**data, "received_at": REQUESTED_AT}),
        producer="validate",
        cause=requested,
        occurred_at=REQUESTED_AT,
    )


def _tokenized(validated: ev.PaymentValidated) -> ev.PaymentTokenized:
    card, payee = validated.data.card, validated.data.payee
    brand = card_brand(SAMPLE_PAN)
    account = payee.account_number
    card_ref = ev.CardRef(
        token=SAMPLE_TOKEN,
        fingerprint=SAMPLE_FINGERPRINT,
        bin6=SAMPLE_PAN[:6],
        last4=SAMPLE_PAN[-4:],
        brand=brand.value if brand else "UNKNOWN",
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        issuing_country=card.issuing_country,
    )
    payee_ref = ev.PayeeRef(
        name=payee.name,
        routing_number=payee.routing_number,
        account_token=SAMPLE_ACCOUNT_TOKEN,
        account_last4=account[-4:],
        account_fingerprint=SAMPLE_ACCOUNT_FINGERPRINT,
        account_type=payee.account_type,
        payee_type=payee.payee_type,
        tenant_id=TENANT_ID,
    )
    fields = validated.data.model_dump(exclude={"card", "payee"})
    return ev.PaymentTokenized.create(
        payment_id=PAYMENT_ID,
        data=ev.PaymentTokenizedData.model_validate({**fields, "card": card_ref, "payee": payee_ref}),
        producer="tokenize",
        cause=validated,
        occurred_at=REQUESTED_AT + 2 * _STEP,
    )


def _scored(tokenized: ev.PaymentTokenized) -> ev.PaymentScored:
    """Scored as the fraud step scores a first payment (no history) with the shipped rules."""
    txn = transaction_of(tokenized)
    result = fraud.evaluate(fraud.compute_features(txn, [], txn.occurred_at), fraud.load_ruleset())
    if result.decision is not fraud.Decision.APPROVE:
        raise ValueError(f"the sample payment must be approved, the rules say {result.decision}")
    assessment = ev.FraudAssessment(
        score=result.score,
        decision=ev.Decision.APPROVE,
        reasons=list(result.reasons),
        rule_version=result.rule_version,
    )
    return ev.PaymentScored.create(
        payment_id=PAYMENT_ID,
        data=ev.PaymentScoredData.model_validate({**tokenized.data.model_dump(), "assessment": assessment}),
        producer="fraud",
        cause=tokenized,
        occurred_at=REQUESTED_AT + 3 * _STEP,
    )


def _charged(scored: ev.PaymentScored) -> ev.PaymentCharged:
    """Authorized and captured by the simulated acquirer, as the charge step asks it."""
    acquirer = SimulatedAcquirer(now=lambda: scored.occurred_at)
    step = ChargeStep(acquirer, SIMULATOR, _SampleCards())
    (charged,) = step.on_scored(scored, Receipt(received_at=scored.occurred_at))
    assert isinstance(charged, ev.PaymentCharged)
    return charged


class _SampleCards:
    def detokenize(self, token: str, *, tenant: str) -> str:
        return SAMPLE_PAN


def _held(charged: ev.PaymentCharged, hold_days: int) -> ev.FundsHeld:
    data = charged.data
    hold = ev.HoldRef(
        hold_id=ledger.hold_transfer_id(PAYMENT_ID),
        amount_cents=data.amount_cents,
        currency=data.currency,
        held_at=charged.occurred_at,
        hold_until=charged.occurred_at + timedelta(days=hold_days),
    )
    return ev.FundsHeld.create(
        payment_id=PAYMENT_ID,
        data=ev.FundsHeldData(
            hold=hold,
            customer_id=data.customer.id,
            provider_id=data.provider_id,
            payee=data.payee,
            received_at=data.received_at,
        ),
        producer="escrow_hold",
        cause=charged,
        dedup_key="hold",
        occurred_at=REQUESTED_AT + 4 * _STEP,
    )


def _released(held: ev.FundsHeld, completed: ev.ServiceCompleted) -> ev.FundsReleased:
    data = held.data
    return ev.FundsReleased.create(
        payment_id=PAYMENT_ID,
        data=ev.FundsReleasedData(
            hold_id=data.hold.hold_id,
            amount_cents=data.hold.amount_cents,
            currency=data.hold.currency,
            provider_id=data.provider_id,
            payee=data.payee,
            trigger=ev.ReleaseTrigger.SERVICE_COMPLETED,
            released_at=COMPLETED_AT,
            received_at=data.received_at,
        ),
        producer="release",
        cause=completed,
        dedup_key="resolution",
        occurred_at=COMPLETED_AT,
    )


def sample_refund(held: ev.FundsHeld) -> ev.FundsRefunded:
    """The sample hold refunded in full, as release refunds a hold whose dispute the customer won."""
    data = held.data
    return ev.FundsRefunded.create(
        payment_id=PAYMENT_ID,
        data=ev.FundsRefundedData(
            hold_id=data.hold.hold_id,
            amount_cents=data.hold.amount_cents,
            currency=data.hold.currency,
            customer_id=data.customer_id,
            refunded_at=COMPLETED_AT,
            dispute_id="dsp-sample",
        ),
        producer="release",
        cause=held,
        dedup_key="resolution",
        occurred_at=COMPLETED_AT,
    )


def sample_card_refund(charged: ev.PaymentCharged, refund: ev.FundsRefunded) -> ev.CardRefunded:
    """The sample refund back on the sample card, as the refund function publishes it."""
    charge = charged.data.charge
    data = ev.CardRefundedData(
        processor=charge.processor,
        authorization_id=charge.authorization_id,
        refund_id="sim_refund_sample",
        amount_cents=refund.data.amount_cents,
        currency=refund.data.currency,
        refund_of=refund.event_type,
    )
    return ev.CardRefunded.create(
        payment_id=PAYMENT_ID, data=data, producer="charge", cause=refund, occurred_at=refund.occurred_at
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def eventbridge_event(event: ev.Event) -> dict[str, Any]:
    """The event as EventBridge delivers it to a rule target."""
    return {
        "version": "0",
        "id": str(uuid.uuid5(_NAMESPACE, f"eventbridge:{event.event_id}")),
        "detail-type": event.event_type,
        "source": f"{ev.EVENT_SOURCE_PREFIX}.{event.producer}",
        "account": ACCOUNT_ID,
        "time": _iso(event.occurred_at),
        "region": REGION,
        "resources": [],
        "detail": ev.to_detail(event),
    }


def sqs_event(event: ev.Event, queue_name: str) -> dict[str, Any]:
    """One SQS record holding ``event``, as Lambda's event source mapping hands it over."""
    body = json.dumps(eventbridge_event(event), ensure_ascii=False, separators=(",", ":"))
    return _sqs_records(body, event.occurred_at, f"{queue_name}:{event.event_id}", queue_name)


def _sqs_records(body: str, sent_at: datetime, message_key: str, queue_name: str) -> dict[str, Any]:
    """The event source mapping's batch of one record holding ``body``, sent at ``sent_at``."""
    sent_ms = str(int(sent_at.timestamp() * 1000))
    message_id = str(uuid.uuid5(_NAMESPACE, f"sqs:{message_key}"))
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": base64.b64encode(f"sample-receipt:{message_id}".encode()).decode(),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": sent_ms,
                    "SenderId": "AIDAEXAMPLEEVENTBRIDGE",
                    "ApproximateFirstReceiveTimestamp": sent_ms,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue_name}",
                "awsRegion": REGION,
            }
        ]
    }


def s3_object_sqs_event(bucket: str, key: str, at: datetime, queue_name: str) -> dict[str, Any]:
    """One SQS record holding S3's ``Object Created`` notification, as the default bus delivers it."""
    notification = {
        "version": "0",
        "id": str(uuid.uuid5(_NAMESPACE, f"s3:{bucket}/{key}")),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT_ID,
        "time": _iso(at),
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": 940,
                "etag": hashlib.md5(key.encode(), usedforsecurity=False).hexdigest(),
            },
            "reason": "PutObject",
        },
    }
    body = json.dumps(notification, separators=(",", ":"))
    return _sqs_records(body, at, f"{queue_name}:{bucket}/{key}", queue_name)


def scheduled_event(at: datetime, rule_name: str) -> dict[str, Any]:
    """A scheduled EventBridge event, as a Schedule event source invokes its function."""
    return {
        "version": "0",
        "id": str(uuid.uuid5(_NAMESPACE, f"schedule:{rule_name}:{_iso(at)}")),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": _iso(at),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule_name}"],
        "detail": {},
    }


def _functions(template: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _queue_of(function: Mapping[str, Any]) -> str | None:
    for source in function.get("Properties", {}).get("Events", {}).values():
        if source["Type"] == "SQS":
            target = source["Properties"]["Queue"]["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else target.split(".", 1)[0])
    return None


def sample_events(template: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The sample invocation event of every function in the template, by logical id."""
    template = template or load_template()
    chain = sample_chain(int(parameter_values(template, {})["HoldDays"]))
    consumed: dict[str, ev.Event] = {
        "ValidateFunction": chain.requested,
        "TokenizeFunction": chain.validated,
        "FraudFunction": chain.tokenized,
        "ChargeFunction": chain.scored,
        "EscrowHoldFunction": chain.charged,
        "RefundFunction": sample_refund(chain.held),
        "ReleaseFunction": chain.completed,
        "AchBatchFunction": chain.released,
        "ProjectorFunction": chain.held,  # it records every event; a card-bearing one arrives reduced
        "CardBookFunction": sample_card_refund(chain.charged, sample_refund(chain.held)),
    }
    scheduled = {
        # Past the sample hold's hold-until time: auto-releases it (when nothing released it before).
        "ReleaseSweepFunction": (chain.held.data.hold.hold_until + timedelta(hours=1)).replace(
            minute=0, second=0
        ),
        "AchCutFunction": ACH_CUT_AT,
        # Past the default review deadline (72 hours) of a review opened when the sample was scored.
        "ReviewSweepFunction": (REQUESTED_AT + timedelta(hours=73)).replace(minute=0, second=0),
        # 00:30 the day after the sample was charged: the settlement report of its capture.
        "AcquirerReportFunction": (REQUESTED_AT + timedelta(days=1)).replace(hour=0, minute=30),
        # A day after the sample was charged: the notices the processor has by then (none for it).
        "ProcessorFeedFunction": REQUESTED_AT + timedelta(days=1),
        # 02:00 the day after the sample was charged: that day's report against the card book.
        "SettlementMatchFunction": (REQUESTED_AT + timedelta(days=1)).replace(hour=2, minute=0),
    }
    samples: dict[str, dict[str, Any]] = {}
    for logical_id, function in _functions(template).items():
        queue = _queue_of(function)
        if logical_id in consumed and queue is not None:
            samples[logical_id] = sqs_event(consumed[logical_id], f"{STACK_NAME}-{queue}")
        elif logical_id in scheduled:
            rule = f"{STACK_NAME}-{logical_id}Schedule"
            samples[logical_id] = scheduled_event(scheduled[logical_id], rule)
        elif logical_id == "AchReturnsFunction" and queue is not None:
            bucket = placeholder_ids(template)["AchBucket"]
            samples[logical_id] = s3_object_sqs_event(
                bucket, SAMPLE_INBOUND_KEY, ACH_CUT_AT + timedelta(days=2), f"{STACK_NAME}-{queue}"
            )
        elif logical_id == "DetokenizeFunction":
            samples[logical_id] = {"token": SAMPLE_TOKEN, "tenant_id": TENANT_ID}
        else:
            raise ValueError(f"no sample event for {logical_id}; add one to {__name__}")
    return samples


def _resource_refs(value: Any, resources: Mapping[str, Any]) -> bool:
    """True when ``value`` references a stack resource (which `sam local` cannot resolve)."""
    if isinstance(value, list):
        return any(_resource_refs(item, resources) for item in value)
    if not isinstance(value, dict):
        return False
    if value.keys() == {"Ref"}:
        return value["Ref"] in resources
    if value.keys() == {"Fn::GetAtt"}:
        return True
    return any(_resource_refs(item, resources) for item in value.values())


def placeholder_ids(template: Mapping[str, Any], stack_name: str = STACK_NAME) -> dict[str, str]:
    """Physical ids shaped like a deployed stack's, for the committed env file."""
    ids: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind == "AWS::SQS::Queue":
            ids[logical_id] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{stack_name}-{logical_id}"
        elif kind == "AWS::Events::EventBus":
            stack = Stack(stack_name, parameter_values(template, {}))
            ids[logical_id] = str(Resolver(template, stack).resolve(resource["Properties"]["Name"]))
        else:
            ids[logical_id] = f"{stack_name}-{logical_id}"
    return ids


def env_vars(
    physical_ids: Mapping[str, str] | None = None,
    template: Mapping[str, Any] | None = None,
    stack_name: str = STACK_NAME,
) -> dict[str, dict[str, str]]:
    """The `sam local invoke --env-vars` file: every variable that names a stack resource.

    Resources missing from ``physical_ids`` get placeholder names shaped like a deployed stack's.
    ``Parameters`` holds the global ones (SAM applies it to every function). Only variables the
    template declares can be overridden this way, and these are the ones `sam local` cannot
    resolve itself; parameters keep their template defaults.
    """
    template = template or load_template()
    resources = template["Resources"]
    ids = placeholder_ids(template, stack_name) | dict(physical_ids or {})
    stack = Stack(stack_name, parameter_values(template, {}))
    stack.physical = {
        logical_id: {"Ref": physical, "Arn": _placeholder_arn(resources.get(logical_id, {}), physical)}
        for logical_id, physical in ids.items()
    }
    resolver = Resolver(template, stack)

    def overrides(variables: Mapping[str, Any]) -> dict[str, str]:
        return {
            name: str(resolver.resolve(value))
            for name, value in variables.items()
            if _resource_refs(value, resources)
        }

    global_vars = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    result = {"Parameters": overrides(global_vars)}
    for logical_id, function in _functions(template).items():
        variables = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
        result[logical_id] = overrides(variables)
    return result


def _placeholder_arn(resource: Mapping[str, Any], physical: str) -> str:
    if resource.get("Type") == "AWS::KMS::Key":
        return f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{physical}"
    return f"arn:aws:{REGION}:{ACCOUNT_ID}:{physical}"


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def sample_files(root: Path = EVENTS_DIR) -> dict[Path, str]:
    """Every sample file under ``root`` with its content."""
    files = {root / f"{logical_id}.json": render(event) for logical_id, event in sample_events().items()}
    files[root / "env.json"] = render(env_vars())
    queue = f"{STACK_NAME}-FraudQueue"
    for name, event in review_samples().items():
        files[root / f"FraudFunction.{name}.json"] = render(sqs_event(event, queue))
    return files


def review_samples() -> dict[str, ev.Event]:
    """The fraud step's review inputs: an operator's approval and the sweep's expiry notice."""
    decided_at = REQUESTED_AT + timedelta(hours=2)
    deadline = REQUESTED_AT + timedelta(hours=72)
    decided = ev.ReviewDecided.create(
        payment_id=PAYMENT_ID,
        data=ev.ReviewDecidedData(
            decision=ev.ReviewDecision.APPROVE, reviewer="analyst-1", note="known buyer"
        ),
        producer=ev.OPERATOR_PRODUCER,
        dedup_key="sample-decision",
        occurred_at=decided_at,
    )
    expiry = ev.ReviewExpiryDue.create(
        payment_id=PAYMENT_ID,
        data=ev.ReviewExpiryDueData(opened_at=REQUESTED_AT, deadline=deadline),
        producer="fraud",
        dedup_key=f"review-expiry:{deadline.isoformat()}",
        occurred_at=deadline,
    )
    return {"ReviewDecided": decided, "ReviewExpiryDue": expiry}
