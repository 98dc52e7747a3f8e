"""Event contracts between pipeline steps.

Every event travels on EventBridge as ``detail`` = envelope + ``data``. The JSON Schema files in
``events/schemas/<EventType>/v<major>.json`` are generated from these models
(``scripts/gen_schemas.py``) and a test fails if the two drift.
"""

import re
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from paypipe.domain.reviews import MAX_NOTE_CHARS
from paypipe.runtime import clock

SCHEMA_MAJOR = 1  # the major of event types that never changed incompatibly (each type has its MAJOR)
EVENT_SOURCE_PREFIX = "paypipe"
CLIENT_PRODUCER = "client"
CLIENT_SOURCE = f"{EVENT_SOURCE_PREFIX}.{CLIENT_PRODUCER}"
PROCESSOR_PRODUCER = "processor"  # the card processor's notifications (chargebacks), relayed by its feed
OPERATOR_PRODUCER = "operator"  # a person deciding a fraud review (paypipe review)
OPERATOR_SOURCE = f"{EVENT_SOURCE_PREFIX}.{OPERATOR_PRODUCER}"

Cents = Annotated[int, Field(strict=True, description="Amount in minor units (cents)")]
PositiveCents = Annotated[int, Field(strict=True, gt=0, description="Amount in minor units (cents)")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
SchemaVersion = Annotated[str, StringConstraints(pattern=r"^1\.\d+$")]
SchemaVersion2 = Annotated[str, StringConstraints(pattern=r"^2\.\d+$")]

_EVENT_ID_NAMESPACE = uuid.UUID("7c0e6c52-4d0e-4b7e-9a55-0c2f5f5d8a11")


class Payload(BaseModel):
    """Event data. Unknown fields are ignored so minor versions can add optional fields."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class Customer(Payload):
    id: Identifier
    email: str | None = None
    billing_country: CountryCode


class CardInput(Payload):
    """Raw card data as the client sends it; exists only in PaymentRequested."""

    number: SecretStr = Field(description="Primary account number (never logged)")
    exp_month: int = Field(strict=True)
    exp_year: int = Field(strict=True)
    cvv: SecretStr | None = Field(default=None, description="Card verification value; never stored")
    holder_name: str = Field(min_length=1, max_length=128)
    issuing_country: CountryCode | None = None


class CardData(Payload):
    """The card on its way to the vault (PaymentValidated): no verification value travels on."""

    number: SecretStr = Field(description="Primary account number (never logged)")
    exp_month: int = Field(strict=True)
    exp_year: int = Field(strict=True)
    holder_name: str = Field(min_length=1, max_length=128)
    issuing_country: CountryCode | None = None


class CardRef(Payload):
    """What may travel after tokenization: token, BIN and last four only."""

    token: str = Field(pattern=r"^tok_[A-Za-z0-9]+$")
    fingerprint: str | None = Field(
        default=None,
        pattern=r"^fp_[a-z2-7]+$",
        description="The vault's keyed fingerprint of the card number: one per card, whatever the tenant",
    )
    bin6: str = Field(pattern=r"^\d{6}$")
    last4: str = Field(pattern=r"^\d{4}$")
    brand: str
    exp_month: int = Field(strict=True, ge=1, le=12)
    exp_year: int = Field(strict=True)
    issuing_country: CountryCode | None = None


class AccountType(StrEnum):
    CHECKING = "checking"
    SAVINGS = "savings"


class PayeeType(StrEnum):
    INDIVIDUAL = "individual"
    BUSINESS = "business"


class PayeeBankAccount(Payload):
    """The payee's bank account as the client sends it (PaymentRequested, PaymentValidated)."""

    name: str = Field(min_length=1, max_length=128)
    routing_number: str = Field(description="ABA routing number")
    account_number: str = Field(description="DFI account number")
    account_type: AccountType
    payee_type: PayeeType


class PayeeRef(Payload):
    """What may travel after tokenization: the account's vault token and last four, never its number."""

    name: str = Field(min_length=1, max_length=128)
    routing_number: str = Field(description="ABA routing number")
    account_token: str = Field(pattern=r"^acct_[A-Za-z0-9]+$", description="The account vault's token")
    account_last4: str = Field(pattern=r"^[A-Za-z0-9]{1,4}$")
    account_fingerprint: str = Field(
        pattern=r"^afp_[a-z2-7]+$", description="The vault's keyed fingerprint of routing and account number"
    )
    account_type: AccountType
    payee_type: PayeeType
    tenant_id: Identifier = Field(default="default", description="The tenant whose vault holds the account")


class Device(Payload):
    ip_address: str
    ip_country: CountryCode | None = None


class PaymentDetails(Payload):
    """Business fields common to every step before and after tokenization."""

    tenant_id: Identifier = "default"
    customer: Customer
    provider_id: Identifier = Field(description="Service provider paid out of escrow")
    amount_cents: Cents
    currency: CurrencyCode
    payee: PayeeBankAccount
    device: Device
    description: str | None = Field(default=None, max_length=256)


class PaymentRequestedData(PaymentDetails):
    card: CardInput


class PaymentValidatedData(PaymentDetails):
    card: CardData
    amount_cents: PositiveCents
    received_at: datetime | None = Field(
        default=None, description="Pipeline clock when the request was received (never the client's)"
    )


class Rejection(Payload):
    code: str = Field(description="Machine-readable reason code")
    field: str
    message: str


class PaymentRejectedData(Payload):
    reasons: list[Rejection] = Field(min_length=1)
    request_event_id: str


class PaymentTokenizedData(PaymentDetails):
    card: CardRef
    payee: PayeeRef  # type: ignore[assignment]
    amount_cents: PositiveCents
    received_at: datetime | None = Field(
        default=None, description="Pipeline clock when the request was received (never the client's)"
    )


class Decision(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


class FraudAssessment(Payload):
    score: int = Field(strict=True, ge=0, le=1000)
    decision: Decision
    reasons: list[str]
    rule_version: str


class ReviewRef(Payload):
    """A fraud review's times (pipeline clock), so its latency can be read from the events."""

    opened_at: datetime
    deadline: datetime
    decided_at: datetime | None = None
    reviewer: str | None = None


class PaymentScoredData(PaymentTokenizedData):
    assessment: FraudAssessment
    review: ReviewRef | None = Field(
        default=None, description="The review it opened (decision review) or that approved it"
    )


class CardCharge(Payload):
    """The card authorized and captured into the platform's escrow, as the processor booked it."""

    processor: str = Field(description="The card processor that captured it (e.g. simulator, stripe)")
    authorization_id: str = Field(min_length=1, max_length=255, description="The processor's reference")
    captured_cents: PositiveCents
    currency: CurrencyCode


class PaymentChargedData(PaymentScoredData):
    charge: CardCharge


class CardDecline(Payload):
    """Why the card processor refused the authorization (its code, normalized)."""

    processor: str
    code: str = Field(description="do_not_honor, insufficient_funds, expired_card, incorrect_cvc, ...")
    operation: str = Field(description="The refused operation: authorize or capture")


class PaymentDeclinedData(Payload):
    assessment: FraudAssessment
    reason_code: str | None = Field(
        default=None,
        description="REVIEW_DECLINED or REVIEW_EXPIRED after a review, CARD_DECLINED when the card "
        "processor refused it; none when scored so",
    )
    review: ReviewRef | None = None
    card: CardDecline | None = Field(default=None, description="The processor's decline (CARD_DECLINED)")


_CARD_LIKE = re.compile(r"\d(?:[ -]?\d){11,}")


def _no_card_number(text: str | None) -> str | None:
    if text is not None and _CARD_LIKE.search(text):
        raise ValueError("must not contain a card or account number (12 or more digits)")
    return text


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"


Reviewer = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@+:\-]+$")]
ReviewNote = Annotated[
    str | None, Field(default=None, max_length=MAX_NOTE_CHARS), AfterValidator(_no_card_number)
]


class ReviewDecidedData(Payload):
    decision: ReviewDecision
    reviewer: Reviewer
    note: ReviewNote = None


class ReviewExpiryDueData(Payload):
    opened_at: datetime
    deadline: datetime


class ReviewRefusal(StrEnum):
    UNKNOWN_REVIEW = "UNKNOWN_REVIEW"
    ALREADY_DECIDED = "ALREADY_DECIDED"


class ReviewDecisionRefusedData(Payload):
    decision_event_id: str = Field(description="The refused ReviewDecided")
    decision: ReviewDecision
    reviewer: str
    reason: ReviewRefusal
    message: str
    status: str | None = Field(default=None, description="The review's status, when there is one")


class HoldRef(Payload):
    hold_id: str
    amount_cents: PositiveCents
    currency: CurrencyCode
    held_at: datetime
    hold_until: datetime


class FundsHeldData(Payload):
    hold: HoldRef
    customer_id: Identifier
    provider_id: Identifier
    payee: PayeeRef
    received_at: datetime | None = Field(
        default=None, description="Pipeline clock when the request was received at validate (for its age)"
    )


class ServiceCompletedData(Payload):
    completed_at: datetime


class DisputeOpenedData(Payload):
    dispute_id: Identifier
    reason: str


class DisputeOutcome(StrEnum):
    RELEASE = "release"
    REFUND = "refund"


class DisputeResolvedData(Payload):
    dispute_id: Identifier
    outcome: DisputeOutcome


class ReleaseTrigger(StrEnum):
    SERVICE_COMPLETED = "service_completed"
    HOLD_EXPIRED = "hold_expired"
    DISPUTE_RESOLVED = "dispute_resolved"


class FundsReleasedData(Payload):
    hold_id: str
    amount_cents: PositiveCents
    currency: CurrencyCode
    provider_id: Identifier
    payee: PayeeRef
    trigger: ReleaseTrigger
    released_at: datetime
    received_at: datetime | None = Field(
        default=None, description="Pipeline clock when the request was received at validate (for its age)"
    )


class FundsRefundedData(Payload):
    hold_id: str
    amount_cents: PositiveCents
    currency: CurrencyCode
    customer_id: Identifier
    refunded_at: datetime
    dispute_id: str | None = None
    after_release: bool = Field(
        default=False, description="True when a dispute reversed a release before its payout was filed"
    )
    chargeback: bool = Field(
        default=False,
        description="True when a chargeback the network decided for the customer gave the money back: "
        "the card is not refunded again",
    )


class CardRefundedData(Payload):
    processor: str
    authorization_id: str = Field(min_length=1, max_length=255, description="The captured charge refunded")
    refund_id: str = Field(
        min_length=1, max_length=255, description="The processor's reference of the refund"
    )
    amount_cents: PositiveCents
    currency: CurrencyCode
    refund_of: str = Field(
        description="The event that refunded the customer: FundsRefunded or ClawbackResolved"
    )


class SettlementDiscrepancy(Payload):
    """One way the acquirer's report and the pipeline's booked card lines disagree."""

    kind: str = Field(
        description="not_booked (reported, never booked), not_reported (booked, on no report within "
        "the grace days) or fee (matched, but the reported fee is not the contracted one)"
    )
    payment_id: Identifier
    line_kind: str = Field(description="capture, refund or chargeback")
    reference: str = Field(max_length=255, description="The processor's reference of the charge")
    currency: CurrencyCode
    booked_minor: Cents | None = Field(description="The booked amount (fee: the contracted fee)")
    reported_minor: Cents | None = Field(description="The reported amount (fee: the reported fee)")


class SettlementCurrencyTotals(Payload):
    currency: CurrencyCode
    captured: Cents
    refunded: Cents
    charged_back: Cents
    chargebacks_reversed: Cents = Field(default=0, description="Chargebacks the platform won, given back")
    fees: Cents = Field(description="The acquirer's fees: the platform's expense")
    net: Cents = Field(
        description="captured - refunded - charged back + reversed - fees: what the acquirer pays out"
    )


class SettlementReconciledData(Payload):
    day: date = Field(description="The settlement day the acquirer reported")
    report_key: str = Field(description="The report's key in the bucket")
    report_error: str | None = Field(
        default=None, description="The report was missing or malformed: nothing could be matched"
    )
    lines: int = Field(strict=True, ge=0, description="Lines on the report")
    matched: int = Field(strict=True, ge=0, description="Reported lines matched to a booked line")
    discrepancy_count: int = Field(strict=True, ge=0)
    discrepancies: list[SettlementDiscrepancy] = Field(
        max_length=50, description="The first discrepancies (all of them are counted)"
    )
    reported: list[SettlementCurrencyTotals] = Field(description="The report's totals per currency")


class HoldExpiryDueData(Payload):
    hold_until: datetime


class HoldFrozenData(Payload):
    hold_id: str
    dispute_id: Identifier


class PayoutBatchedData(Payload):
    batch_id: str
    file_key: str
    trace_number: str = Field(pattern=r"^\d{15}$")
    amount_cents: PositiveCents
    effective_date: str
    window: Literal["same_day", "standard"]
    netted_cents: Cents = Field(
        default=0,
        description="Released cents kept to settle the provider's clawbacks (negative: paid back to them)",
    )


class PayoutNettedData(Payload):
    batch_id: str
    provider_id: Identifier
    released_cents: PositiveCents
    netted_cents: PositiveCents


class ItemSetAsideData(Payload):
    job: Literal["ach_cut", "release_sweep"]
    reason: str = Field(description="Machine-readable reason code")
    detail: str = Field(description="For humans; never card or account numbers")


class AchFilesDeferredData(Payload):
    creation_date: str = Field(description="The Eastern creation date whose 36 file id modifiers are used")
    batches: int = Field(strict=True, ge=1)
    payouts: int = Field(strict=True, ge=1)
    reason: str


class RefusalCode(StrEnum):
    DUPLICATE_PAYMENT_ID = "DUPLICATE_PAYMENT_ID"
    CLIENT_CLOCK_SKEW = "CLIENT_CLOCK_SKEW"
    IDENTIFIER_INVALID = "IDENTIFIER_INVALID"
    HOLD_FROZEN = "HOLD_FROZEN"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    ALREADY_RESOLVED = "ALREADY_RESOLVED"
    ALREADY_REFUNDED = "ALREADY_REFUNDED"
    DISPUTE_NOT_OPEN = "DISPUTE_NOT_OPEN"
    DISPUTE_ALREADY_RESOLVED = "DISPUTE_ALREADY_RESOLVED"
    DISPUTE_WINDOW_CLOSED = "DISPUTE_WINDOW_CLOSED"


class RequestRefusedData(Payload):
    request_event_id: str = Field(description="The refused client event")
    request_type: str
    code: RefusalCode
    field: str | None = None
    message: str
    original_event_id: str | None = Field(
        default=None, description="For a duplicate request: the request that owns the payment id"
    )


class DisputePhase(StrEnum):
    ESCROW = "escrow"
    PAYOUT = "payout"
    CLAWBACK = "clawback"


class DisputeClosedData(Payload):
    dispute_id: Identifier
    outcome: DisputeOutcome
    phase: DisputePhase
    still_open: list[str] = Field(description="Disputes of the same phase still open")


class PayoutHeldBackData(Payload):
    dispute_id: Identifier
    hold_id: str
    amount_cents: PositiveCents
    currency: CurrencyCode


class ClawbackBookedData(Payload):
    dispute_id: Identifier
    provider_id: Identifier
    amount_cents: PositiveCents
    currency: CurrencyCode
    payout_ref: str


class ClawbackResolvedData(Payload):
    dispute_id: Identifier = Field(description="The dispute that opened the clawback")
    provider_id: Identifier
    amount_cents: PositiveCents
    currency: CurrencyCode
    outcome: DisputeOutcome = Field(description="refund: the customer is paid; release: receivable cancelled")
    chargeback: bool = Field(
        default=False,
        description="True when a chargeback the network decided for the customer gave the money back: "
        "the card is not refunded again",
    )


class DisputeAgedData(Payload):
    dispute_id: Identifier
    phase: DisputePhase
    opened_at: datetime
    max_age_days: int = Field(strict=True, ge=1)


class AchBatchCreatedData(Payload):
    batch_id: str
    bucket: str
    file_key: str
    entry_count: int = Field(strict=True, ge=1)
    total_credit_cents: Cents
    total_debit_cents: Cents
    entry_hash: str = Field(pattern=r"^\d{10}$")
    effective_date: str
    window: Literal["same_day", "standard"]
    payment_ids: list[str]


TraceNumber = Annotated[str, StringConstraints(pattern=r"^\d{15}$")]


class PayoutReturnedData(Payload):
    original_trace_number: TraceNumber = Field(description="The trace number of the returned payout entry")
    return_code: str = Field(pattern=r"^R\d{2}$", description="Nacha return reason code")
    reason: str = Field(description="The return reason's title")
    amount_cents: PositiveCents
    provider_id: Identifier
    batch_id: str = Field(description="The batch that filed the returned entry")
    inbound_key: str = Field(description="The S3 key of the bank's file that carried the return")
    account_unusable: bool = Field(
        description="The payee account can take no further credits: payouts to it wait for new details"
    )
    next_step: Literal["resend", "await_account_update"]


class PrenoteReturnedData(Payload):
    original_trace_number: TraceNumber = Field(description="The trace number of the returned prenote entry")
    return_code: str = Field(pattern=r"^R\d{2}$", description="Nacha return reason code")
    reason: str = Field(description="The return reason's title")
    provider_id: Identifier
    batch_id: str = Field(description="The batch that filed the prenote")
    inbound_key: str = Field(description="The S3 key of the bank's file that carried the return")


class PayeeAccountCorrectedData(Payload):
    original_trace_number: TraceNumber
    change_code: str = Field(pattern=r"^C\d{2}$", description="Nacha change code of the notification")
    reason: str
    provider_id: Identifier
    inbound_key: str
    routing_number: str | None = Field(default=None, description="The corrected routing number, if changed")
    account_last4: str | None = Field(
        default=None, description="Last four of the corrected account, if changed"
    )
    account_type: AccountType | None = None
    apply_by: str = Field(description="ISO date: the correction is applied before any payout after it")


class AchInboundParkedData(Payload):
    inbound_key: str = Field(description="The S3 key of the bank's file")
    reason: str = Field(description="Machine-readable reason code")
    detail: str = Field(description="For humans; never account numbers")
    trace_number: TraceNumber | None = Field(default=None, description="The parked entry's own trace number")
    original_trace_number: TraceNumber | None = None
    code: str | None = Field(default=None, description="The entry's return or change code")
    answer: Literal["none", "dishonored_return", "refused_correction"] = Field(
        default="none", description="What the originator answers the bank, as the rules allow"
    )
    answer_code: str | None = Field(default=None, description="The dishonored return or refused COR code")
    answer_key: str | None = Field(default=None, description="The S3 key of the prepared answer file")


class PayeeAccountUpdatedData(Payload):
    """New bank details for a provider's payouts (after a return said the old ones take no credits)."""

    tenant_id: Identifier = "default"
    provider_id: Identifier
    payee: PayeeBankAccount


class PayeeAccountValidatedData(PayeeAccountUpdatedData):
    received_at: datetime = Field(description="Pipeline clock when the update was received")


class PayeeAccountReplacedData(Payload):
    tenant_id: Identifier = "default"
    provider_id: Identifier
    payee: PayeeRef
    replaced_at: datetime = Field(description="Pipeline clock when the update was received")


class Event(BaseModel):
    """Envelope shared by every event; subclasses pin ``event_type`` and ``data``."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    EVENT_TYPE: ClassVar[str] = ""
    PRODUCERS: ClassVar[frozenset[str]] = frozenset()  # who may publish it (source paypipe.<producer>)
    MAJOR: ClassVar[int] = SCHEMA_MAJOR  # the contract's major version; earlier majors are refused
    # Carries a card number, CVV or payee account number in clear: never archived, and held only
    # by queues that keep messages as long as redelivery needs.
    CARDHOLDER_DATA: ClassVar[bool] = False

    event_id: str = Field(min_length=1, max_length=64)
    event_type: str
    schema_version: SchemaVersion = "1.0"
    payment_id: Identifier
    correlation_id: str = Field(min_length=1, max_length=128)
    causation_id: str | None = Field(default=None, max_length=128)
    occurred_at: datetime
    producer: str = Field(min_length=1, max_length=64)
    data: Any

    @classmethod
    def create(
        cls,
        *,
        payment_id: str,
        data: Any,
        producer: str,
        cause: "Event | None" = None,
        occurred_at: datetime | None = None,
        dedup_key: str | None = None,
    ) -> Self:
        """Build an event caused by ``cause``, at ``occurred_at`` (default: the pipeline clock).

        The event id is derived from ``dedup_key`` (a business key, when the same fact can be
        reached from different causes) or else from the cause, so reprocessing the same input
        yields the same id, which lets every consumer recognise duplicates. A payment's journey
        is correlated by its payment id: a client's own correlation id is not carried on.
        """
        if dedup_key is not None:
            seed = f"{cls.EVENT_TYPE}|{payment_id}|key:{dedup_key}"
        elif cause is not None:
            seed = f"{cls.EVENT_TYPE}|{payment_id}|cause:{cause.event_id}"
        else:
            seed = ""
        event_id = str(uuid.uuid5(_EVENT_ID_NAMESPACE, seed)) if seed else str(uuid.uuid4())
        return cls(
            event_id=event_id,
            event_type=cls.EVENT_TYPE,
            payment_id=payment_id,
            correlation_id=cause.correlation_id
            if cause and cause.producer != CLIENT_PRODUCER
            else payment_id,
            causation_id=cause.event_id if cause else None,
            occurred_at=occurred_at or clock.now(),
            producer=producer,
            data=data,
        )

    @property
    def major_version(self) -> int:
        return int(self.schema_version.split(".", 1)[0])


# Declared explicitly (not generated) so type checkers see each event class.
class PaymentRequested(Event):
    """A client asks to pay a provider by card; funds are held in escrow."""

    EVENT_TYPE: ClassVar[str] = "PaymentRequested"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({CLIENT_PRODUCER})
    CARDHOLDER_DATA: ClassVar[bool] = True
    event_type: Literal["PaymentRequested"]
    data: PaymentRequestedData


class PaymentValidated(Event):
    """The request passed validation; the only event besides PaymentRequested with a PAN (v2: and
    the account number; no CVV, which validate checks and drops)."""

    EVENT_TYPE: ClassVar[str] = "PaymentValidated"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"validate"})
    MAJOR: ClassVar[int] = 2
    CARDHOLDER_DATA: ClassVar[bool] = True
    event_type: Literal["PaymentValidated"]
    schema_version: SchemaVersion2 = "2.0"
    data: PaymentValidatedData


class PaymentRejected(Event):
    """Terminal: the request failed validation."""

    EVENT_TYPE: ClassVar[str] = "PaymentRejected"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"validate"})
    event_type: Literal["PaymentRejected"]
    data: PaymentRejectedData


class PaymentTokenized(Event):
    """The card and the payee's account are in the vaults; only tokens and last fours travel on."""

    EVENT_TYPE: ClassVar[str] = "PaymentTokenized"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"tokenize"})
    MAJOR: ClassVar[int] = 2
    event_type: Literal["PaymentTokenized"]
    schema_version: SchemaVersion2 = "2.0"
    data: PaymentTokenizedData


class PaymentScored(Event):
    """Fraud assessment for an approved or review payment."""

    EVENT_TYPE: ClassVar[str] = "PaymentScored"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"fraud"})
    MAJOR: ClassVar[int] = 2
    event_type: Literal["PaymentScored"]
    schema_version: SchemaVersion2 = "2.0"
    data: PaymentScoredData


class PaymentCharged(Event):
    """The approved payment's card is authorized and captured: the money is the platform's to hold."""

    EVENT_TYPE: ClassVar[str] = "PaymentCharged"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"charge"})
    event_type: Literal["PaymentCharged"]
    data: PaymentChargedData


class PaymentDeclined(Event):
    """Terminal: fraud scoring declined the payment, or the card processor refused the card."""

    EVENT_TYPE: ClassVar[str] = "PaymentDeclined"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"fraud", "charge"})
    event_type: Literal["PaymentDeclined"]
    data: PaymentDeclinedData


class FundsHeld(Event):
    """Funds are reserved in escrow until released, refunded or expired."""

    EVENT_TYPE: ClassVar[str] = "FundsHeld"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"escrow_hold"})
    MAJOR: ClassVar[int] = 2
    event_type: Literal["FundsHeld"]
    schema_version: SchemaVersion2 = "2.0"
    data: FundsHeldData


class ServiceCompleted(Event):
    """The provider delivered the service; releases the hold."""

    EVENT_TYPE: ClassVar[str] = "ServiceCompleted"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({CLIENT_PRODUCER})
    event_type: Literal["ServiceCompleted"]
    data: ServiceCompletedData


class DisputeOpened(Event):
    """The customer disputes the payment (through the platform, or at the card network: a
    chargeback, relayed by the processor's feed); freezes the hold."""

    EVENT_TYPE: ClassVar[str] = "DisputeOpened"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({CLIENT_PRODUCER, PROCESSOR_PRODUCER})
    event_type: Literal["DisputeOpened"]
    data: DisputeOpenedData


class DisputeResolved(Event):
    """A dispute ended with release to the provider or refund to the customer (a chargeback's by
    the network alone, through the processor's feed)."""

    EVENT_TYPE: ClassVar[str] = "DisputeResolved"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({CLIENT_PRODUCER, PROCESSOR_PRODUCER})
    event_type: Literal["DisputeResolved"]
    data: DisputeResolvedData


class HoldExpiryDue(Event):
    """The sweep found a hold past its hold-until time; release releases it unless frozen."""

    EVENT_TYPE: ClassVar[str] = "HoldExpiryDue"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"release"})
    event_type: Literal["HoldExpiryDue"]
    data: HoldExpiryDueData


class HoldFrozen(Event):
    """A dispute froze the hold; it will not auto-release."""

    EVENT_TYPE: ClassVar[str] = "HoldFrozen"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"release"})
    event_type: Literal["HoldFrozen"]
    data: HoldFrozenData


class FundsReleased(Event):
    """Escrow released funds to the provider; they await an ACH payout."""

    EVENT_TYPE: ClassVar[str] = "FundsReleased"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"release"})
    MAJOR: ClassVar[int] = 2
    event_type: Literal["FundsReleased"]
    schema_version: SchemaVersion2 = "2.0"
    data: FundsReleasedData


class FundsRefunded(Event):
    """Terminal: escrow returned the funds to the customer."""

    EVENT_TYPE: ClassVar[str] = "FundsRefunded"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"release"})
    event_type: Literal["FundsRefunded"]
    data: FundsRefundedData


class CardRefunded(Event):
    """The card processor refunded the customer's card (after FundsRefunded or a lost clawback)."""

    EVENT_TYPE: ClassVar[str] = "CardRefunded"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"charge"})
    event_type: Literal["CardRefunded"]
    data: CardRefundedData


class SettlementReconciled(Event):
    """A day's settlement report matched against the pipeline's booked card lines; ``payment_id``
    is ``settlement-<YYYYMMDD>``. Discrepancies (or a report missing) alarm."""

    EVENT_TYPE: ClassVar[str] = "SettlementReconciled"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"settlement"})
    event_type: Literal["SettlementReconciled"]
    data: SettlementReconciledData


class PayoutBatched(Event):
    """Terminal: the payout is an entry in a NACHA file uploaded to S3."""

    EVENT_TYPE: ClassVar[str] = "PayoutBatched"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"ach_batch"})
    event_type: Literal["PayoutBatched"]
    data: PayoutBatchedData


class AchBatchCreated(Event):
    """A NACHA file was written; ``payment_id`` is the batch id."""

    EVENT_TYPE: ClassVar[str] = "AchBatchCreated"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"ach_batch"})
    event_type: Literal["AchBatchCreated"]
    data: AchBatchCreatedData


class RequestRefused(Event):
    """A client event the pipeline refused (duplicate request, clock skew, unknown dispute...)."""

    EVENT_TYPE: ClassVar[str] = "RequestRefused"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"validate", "release"})
    event_type: Literal["RequestRefused"]
    data: RequestRefusedData


class DisputeClosed(Event):
    """A dispute was resolved; the hold resolves when the last open dispute of its phase closes."""

    EVENT_TYPE: ClassVar[str] = "DisputeClosed"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"release"})
    event_type: Literal["DisputeClosed"]
    data: DisputeClosedData


class PayoutHeldBack(Event):
    """A dispute after release holds the payout back until it is resolved."""

    EVENT_TYPE: ClassVar[str] = "PayoutHeldBack"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"release"})
    event_type: Literal["PayoutHeldBack"]
    data: PayoutHeldBackData


class ClawbackBooked(Event):
    """A dispute after the payout was filed: the provider owes the amount, netted from next payouts."""

    EVENT_TYPE: ClassVar[str] = "ClawbackBooked"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"release"})
    event_type: Literal["ClawbackBooked"]
    data: ClawbackBookedData


class ClawbackResolved(Event):
    """The disputes behind a clawback ended: the customer is refunded or the receivable cancelled."""

    EVENT_TYPE: ClassVar[str] = "ClawbackResolved"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"release"})
    event_type: Literal["ClawbackResolved"]
    data: ClawbackResolvedData


class DisputeAged(Event):
    """A dispute has been open longer than the configured age; someone must decide it."""

    EVENT_TYPE: ClassVar[str] = "DisputeAged"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"release"})
    event_type: Literal["DisputeAged"]
    data: DisputeAgedData


class PayoutNetted(Event):
    """Terminal: the whole released amount settled the provider's clawbacks; no ACH entry."""

    EVENT_TYPE: ClassVar[str] = "PayoutNetted"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"ach_batch"})
    event_type: Literal["PayoutNetted"]
    data: PayoutNettedData


class ItemSetAside(Event):
    """A batch job set one item aside (with its reason) and went on with the others."""

    EVENT_TYPE: ClassVar[str] = "ItemSetAside"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"ach_batch", "release"})
    event_type: Literal["ItemSetAside"]
    data: ItemSetAsideData


class AchFilesDeferred(Event):
    """Planned files wait for the next creation date (no file id modifier left); ``payment_id``: the cut."""

    EVENT_TYPE: ClassVar[str] = "AchFilesDeferred"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"ach_batch"})
    event_type: Literal["AchFilesDeferred"]
    data: AchFilesDeferredData


class PayoutReturned(Event):
    """The receiving bank returned a payout's ACH entry; the ledger reversed the payout."""

    EVENT_TYPE: ClassVar[str] = "PayoutReturned"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"ach_returns"})
    event_type: Literal["PayoutReturned"]
    data: PayoutReturnedData


class PrenoteReturned(Event):
    """The receiving bank returned the prenote to a payee account: no money moved, and payouts to the
    account wait for new details. ``payment_id``: the payout the prenote was filed for."""

    EVENT_TYPE: ClassVar[str] = "PrenoteReturned"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"ach_returns"})
    event_type: Literal["PrenoteReturned"]
    data: PrenoteReturnedData


class PayeeAccountCorrected(Event):
    """A notification of change: the payee's account details are corrected before the next payout."""

    EVENT_TYPE: ClassVar[str] = "PayeeAccountCorrected"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"ach_returns"})
    event_type: Literal["PayeeAccountCorrected"]
    data: PayeeAccountCorrectedData


class AchInboundParked(Event):
    """An entry (or a whole file) from the bank the pipeline could not apply; ``payment_id``: its payment,
    or the inbound file's id when no payment matches."""

    EVENT_TYPE: ClassVar[str] = "AchInboundParked"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"ach_returns"})
    event_type: Literal["AchInboundParked"]
    data: AchInboundParkedData


class PayeeAccountUpdated(Event):
    """A client gives a provider new bank details; ``payment_id`` is the update's own id."""

    EVENT_TYPE: ClassVar[str] = "PayeeAccountUpdated"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({CLIENT_PRODUCER})
    CARDHOLDER_DATA: ClassVar[bool] = True  # the account number, in clear
    event_type: Literal["PayeeAccountUpdated"]
    data: PayeeAccountUpdatedData


class PayeeAccountValidated(Event):
    """The new bank details are ones an ACH file can carry."""

    EVENT_TYPE: ClassVar[str] = "PayeeAccountValidated"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"validate"})
    CARDHOLDER_DATA: ClassVar[bool] = True
    event_type: Literal["PayeeAccountValidated"]
    data: PayeeAccountValidatedData


class PayeeAccountRejected(Event):
    """New bank details refused (no ACH file could carry them, or the update came too late or early)."""

    EVENT_TYPE: ClassVar[str] = "PayeeAccountRejected"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"validate"})
    event_type: Literal["PayeeAccountRejected"]
    data: PaymentRejectedData


class PayeeAccountReplaced(Event):
    """The new bank details are in the account vault: the provider's payouts now go there."""

    EVENT_TYPE: ClassVar[str] = "PayeeAccountReplaced"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"tokenize"})
    event_type: Literal["PayeeAccountReplaced"]
    data: PayeeAccountReplacedData


class ReviewDecided(Event):
    """An operator approved or declined a payment under fraud review (source paypipe.operator only)."""

    EVENT_TYPE: ClassVar[str] = "ReviewDecided"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({OPERATOR_PRODUCER})
    event_type: Literal["ReviewDecided"]
    data: ReviewDecidedData


class ReviewExpiryDue(Event):
    """The review sweep found an open review past its deadline; fraud declines it (REVIEW_EXPIRED)."""

    EVENT_TYPE: ClassVar[str] = "ReviewExpiryDue"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"fraud"})
    event_type: Literal["ReviewExpiryDue"]
    data: ReviewExpiryDueData


class ReviewDecisionRefused(Event):
    """A review decision that changed nothing: no review for the payment, or it was already decided."""

    EVENT_TYPE: ClassVar[str] = "ReviewDecisionRefused"
    PRODUCERS: ClassVar[frozenset[str]] = frozenset({"fraud"})
    event_type: Literal["ReviewDecisionRefused"]
    data: ReviewDecisionRefusedData


EVENT_TYPES: dict[str, type[Event]] = {
    cls.EVENT_TYPE: cls
    for cls in (
        PaymentRequested,
        PaymentValidated,
        PaymentRejected,
        PaymentTokenized,
        PaymentScored,
        PaymentCharged,
        PaymentDeclined,
        FundsHeld,
        ServiceCompleted,
        DisputeOpened,
        DisputeResolved,
        HoldExpiryDue,
        HoldFrozen,
        FundsReleased,
        FundsRefunded,
        CardRefunded,
        SettlementReconciled,
        PayoutBatched,
        AchBatchCreated,
        RequestRefused,
        DisputeClosed,
        PayoutHeldBack,
        ClawbackBooked,
        ClawbackResolved,
        DisputeAged,
        PayoutNetted,
        ItemSetAside,
        AchFilesDeferred,
        PayoutReturned,
        PayeeAccountCorrected,
        AchInboundParked,
        PayeeAccountUpdated,
        PayeeAccountValidated,
        PayeeAccountRejected,
        PayeeAccountReplaced,
        PrenoteReturned,
        ReviewDecided,
        ReviewExpiryDue,
        ReviewDecisionRefused,
    )
}

# Events that end a payment's journey through the pipeline (review awaits a person).
TERMINAL_EVENT_TYPES = frozenset(
    {"PaymentRejected", "PaymentDeclined", "FundsRefunded", "PayoutBatched", "PayoutNetted"}
)
# What an operator may publish (the operator publisher policy allows exactly these detail-types).
OPERATOR_EVENT_TYPES = frozenset(
    name for name, model in EVENT_TYPES.items() if OPERATOR_PRODUCER in model.PRODUCERS
)
# What a client may publish (the client publisher policy allows exactly these detail-types).
CLIENT_EVENT_TYPES = frozenset(
    name for name, model in EVENT_TYPES.items() if CLIENT_PRODUCER in model.PRODUCERS
)

CARDHOLDER_DATA_EVENT_TYPES = frozenset(name for name, model in EVENT_TYPES.items() if model.CARDHOLDER_DATA)


def source_of(producer: str) -> str:
    return f"{EVENT_SOURCE_PREFIX}.{producer}"


def untrusted_origin(event_type: str, source: str | None, producer: str) -> str | None:
    """Why an event of this type may not come from this source and envelope producer (None: it may).

    The contract names each type's producers; the EventBridge source is the one IAM lets each
    publisher set (``paypipe.<producer>``), and the envelope must name the same producer.
    """
    allowed = EVENT_TYPES[event_type].PRODUCERS
    if producer not in allowed:
        return f"{event_type} is published only by {sorted(allowed)}, not by {producer!r}"
    if source is not None and source != source_of(producer):
        return (
            f"{event_type} from producer {producer!r} must come from {source_of(producer)!r}, not {source!r}"
        )
    return None


class UnknownEventError(ValueError):
    """The event type or its major schema version is not one this code understands."""


def model_for(event_type: str, schema_version: str) -> type[Event]:
    try:
        model = EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventError(f"unknown event type {event_type!r}") from None
    major = schema_version.split(".", 1)[0]
    if major != str(model.MAJOR):
        retired = major.isdigit() and int(major) < model.MAJOR
        raise UnknownEventError(
            f"{event_type} schema version {schema_version!r} is "
            f"{'retired' if retired else 'not supported'} (major {model.MAJOR} only)"
        )
    return model


def parse_detail(detail_type: str, detail: dict[str, Any]) -> Event:
    """Validate an EventBridge ``detail`` against the contract for its type and version."""
    if not isinstance(detail, dict):
        raise UnknownEventError("event detail is not a JSON object")
    declared = detail.get("event_type")
    if declared != detail_type:
        raise UnknownEventError(f"detail-type {detail_type!r} does not match event_type {declared!r}")
    version = detail.get("schema_version", "")
    model = model_for(detail_type, version if isinstance(version, str) else "")
    return model.model_validate(detail)


def to_detail(event: Event) -> dict[str, Any]:
    """The JSON-ready detail, with secrets revealed: only for the bus, never for logs."""
    raw: dict[str, Any] = event.model_dump(mode="json")
    data = event.data
    card = getattr(data, "card", None)
    if isinstance(card, CardInput | CardData):
        raw["data"]["card"]["number"] = card.number.get_secret_value()
    if isinstance(card, CardInput):
        raw["data"]["card"]["cvv"] = card.cvv.get_secret_value() if card.cvv else None
    return raw
