"""Every metric the pipeline emits (CloudWatch namespace ``paypipe``), stated once.

The emitter (``paypipe.runtime.metrics``) refuses a metric or a dimension set not listed here;
the dashboard and alarms of the template (``paypipe.stack.observability``) and the metrics table
of docs/operations.md are generated from or checked against this table. Dimensions are small
fixed sets (the step, an outcome, a reason code, an ACH window, a score bucket, a milestone),
never ids, amounts or card data. ``step`` is the step that received the record (runtime metrics)
or published the event (the facts).

Adding a metric for a new event type is one entry here and one rule in
``paypipe.observability.facts``.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "paypipe"
COUNT, SECONDS, CENTS = "Count", "Seconds", "None"  # CloudWatch units (cents have none)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    dimensions: tuple[str, ...]
    description: str
    origin: str = "facts"  # runtime: the consumer runtime; facts: the published events; step: a step itself
    events: tuple[str, ...] = ()  # the event types its facts come from (their producers are its steps)


_STEP = ("step",)

METRICS = (
    Metric("RecordsReceived", COUNT, _STEP, "SQS records a step's consumer received", "runtime"),
    Metric("RecordsFailed", COUNT, _STEP, "Records reported back for redelivery", "runtime"),
    Metric(
        "RecordsParked", COUNT, ("step", "reason"), "Records parked in the step's DLQ, by reason", "runtime"
    ),
    Metric("EventsPublished", COUNT, ("step", "event_type"), "Events a step published, by type"),
    Metric(
        "PaymentsRejected", COUNT, _STEP, "Payment requests rejected (terminal)", events=("PaymentRejected",)
    ),
    Metric(
        "RejectReasons",
        COUNT,
        ("step", "reason"),
        "Reject reason codes (a rejection can carry several)",
        events=("PaymentRejected",),
    ),
    Metric(
        "RequestsRefused",
        COUNT,
        ("step", "reason"),
        "Requests refused, by refusal code",
        events=("RequestRefused",),
    ),
    Metric(
        "FraudDecisions",
        COUNT,
        ("step", "outcome"),
        "Fraud decisions: approve, review, decline",
        events=("PaymentScored", "PaymentDeclined"),
    ),
    Metric(
        "FraudScores",
        COUNT,
        ("step", "bucket"),
        "Fraud scores by bucket of 100 (000-099 .. 900-1000)",
        events=("PaymentScored", "PaymentDeclined"),
    ),
    Metric(
        "PaymentAge",
        SECONDS,
        ("step", "milestone"),
        "Seconds from the request's receipt at validate to the milestone event",
        events=("PaymentTokenized", "PaymentScored", "PaymentCharged", "FundsHeld", "FundsReleased"),
    ),
    Metric(
        "CardDeclines",
        COUNT,
        ("step", "reason"),
        "Cards the processor declined, by decline code",
        events=("PaymentDeclined",),
    ),
    Metric("ChargedCents", CENTS, _STEP, "Amounts captured from cards, in cents", events=("PaymentCharged",)),
    Metric("HeldCents", CENTS, _STEP, "Amounts put in escrow, in cents", events=("FundsHeld",)),
    Metric(
        "ReleasedCents", CENTS, _STEP, "Amounts released to providers, in cents", events=("FundsReleased",)
    ),
    Metric(
        "RefundedCents", CENTS, _STEP, "Amounts refunded to customers, in cents", events=("FundsRefunded",)
    ),
    Metric(
        "CardRefundedCents",
        CENTS,
        _STEP,
        "Amounts the card processor refunded to customers' cards, in cents",
        events=("CardRefunded",),
    ),
    Metric(
        "SettlementDiscrepancies",
        COUNT,
        _STEP,
        "Ways a day's settlement report and the card book disagree (a missing report counts once)",
        events=("SettlementReconciled",),
    ),
    Metric(
        "PaidOutCents", CENTS, _STEP, "Credits written to NACHA files, in cents", events=("AchBatchCreated",)
    ),
    Metric(
        "AchFiles",
        COUNT,
        ("step", "window"),
        "NACHA files written, by window (same_day, standard)",
        events=("AchBatchCreated",),
    ),
    Metric(
        "AchEntries",
        COUNT,
        ("step", "window"),
        "Entries in the NACHA files written, by window",
        events=("AchBatchCreated",),
    ),
    Metric(
        "AchFilesDeferred",
        COUNT,
        _STEP,
        "ACH cuts deferred (no file id modifier left)",
        events=("AchFilesDeferred",),
    ),
    Metric("ItemsSetAside", COUNT, _STEP, "Payouts or holds a job set aside", events=("ItemSetAside",)),
    Metric(
        "SetAsideReasons", COUNT, ("step", "reason"), "Set-aside items by reason", events=("ItemSetAside",)
    ),
    Metric(
        "DisputesPastAge",
        COUNT,
        _STEP,
        "Disputes open longer than DisputeMaxAgeDays",
        events=("DisputeAged",),
    ),
    Metric("PayoutReturns", COUNT, _STEP, "Payout entries the bank returned", events=("PayoutReturned",)),
    Metric(
        "ReturnCodes",
        COUNT,
        ("step", "reason"),
        "Returned payouts by Nacha return code",
        events=("PayoutReturned",),
    ),
    Metric(
        "PrenoteReturns",
        COUNT,
        ("step", "reason"),
        "Returned prenotes by Nacha return code",
        events=("PrenoteReturned",),
    ),
    Metric(
        "AccountCorrections",
        COUNT,
        ("step", "reason"),
        "Notifications of change applied, by change code",
        events=("PayeeAccountCorrected",),
    ),
    Metric(
        "BankEntriesParked",
        COUNT,
        ("step", "reason"),
        "Bank file entries parked, by reason",
        events=("AchInboundParked",),
    ),
    Metric("BankEntriesRead", COUNT, _STEP, "Entries read from the bank's files", "step"),
    Metric("ReviewsOpened", COUNT, _STEP, "Payments put in fraud review", events=("PaymentScored",)),
    Metric(
        "ReviewsDecided",
        COUNT,
        ("step", "outcome"),
        "Fraud reviews closed: approve, decline, expired",
        events=("PaymentScored", "PaymentDeclined"),
    ),
    Metric(
        "ReviewDecisionSeconds",
        SECONDS,
        _STEP,
        "Seconds from a review's opening to its decision or expiry",
        events=("PaymentScored", "PaymentDeclined"),
    ),
    Metric(
        "ReviewsOpen", COUNT, _STEP, "Open fraud reviews at each review sweep (up to its read limit)", "step"
    ),
    Metric(
        "OldestReviewAgeSeconds", SECONDS, _STEP, "Age of the oldest open review at each review sweep", "step"
    ),
)
CATALOGUE = {metric.name: metric for metric in METRICS}


def metric(name: str) -> Metric:
    """The catalogue entry; KeyError for a metric the catalogue does not list."""
    return CATALOGUE[name]
