"""The stack's tables and functions, each stated once: how it is wired into infra/sam/template.yaml.

A function that ``consumes`` event types is a pipeline step: it gets an SQS queue filled by an
EventBridge rule (sources from the event contract), a consumer DLQ and a rule DLQ. One that
``observes`` gets the same for every event type from every source, the card-bearing types
through rules whose input transformers keep only their key facts. One with a
``schedule`` runs on an EventBridge schedule; one with neither is only invoked. See
``paypipe.stack.generate`` for everything an entry produces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paypipe.adapters.account_vault import ACCOUNT_FINGERPRINT_PURPOSE, ACCOUNT_PURPOSE
from paypipe.adapters.vault import CARD_VAULT_PURPOSE, FINGERPRINT_KEY_PURPOSE
from paypipe.domain.settlement import REPORT_PREFIX
from paypipe.stack.cfn import getatt, ref, sub
from paypipe.steps.ach_returns import ANSWERS_PREFIX, INBOUND_PREFIX


@dataclass(frozen=True)
class Table:
    keys: tuple[str, ...] = ("pk", "sk")  # hash key, then range key
    ttl: str | None = None  # the expiry attribute
    retain: bool = False  # kept when the stack goes (money and card data)
    index: bool = False  # gsi1 on gsi1pk/gsi1sk


TABLES = {
    "Idempotency": Table(keys=("id",), ttl="expiration"),
    "Payments": Table(ttl="expires_at"),
    "Vault": Table(retain=True),
    "Velocity": Table(ttl="expires_at"),
    "Ledger": Table(retain=True, index=True),
    "Payouts": Table(retain=True, index=True),
    "Timeline": Table(ttl="expires_at"),
    "Reviews": Table(index=True),  # fraud reviews; gsi1: the open ones by opened time
    "Acquirer": Table(index=True),  # the simulated acquirer's operations; gsi1: settlement lines by day
    "Settlement": Table(retain=True, index=True),  # the card book; gsi1: lines no report matched yet
}


@dataclass(frozen=True)
class Vault:
    """The vault table and key: decrypt (or, when ``encrypts``, envelope-encrypt) under these purposes."""

    sid: str
    purposes: tuple[str, ...]
    encrypts: bool = False


@dataclass(frozen=True)
class Function:
    name: str  # its service name; its logical ids are the CamelCase (escrow_hold -> EscrowHoldQueue)
    code: str  # services/<code>/, and the step whose source (paypipe.<code>) it publishes under
    consumes: tuple[str, ...] = ()  # event types its queue receives
    # Keeps idempotency records (a route with Route.idempotent): the Idempotency table, read-write.
    idempotency: bool = True
    objects: tuple[str, str] | None = None  # (bucket logical id, key prefix): S3 notifications it receives
    detail: dict[str, Any] | None = None  # what the rule also requires of the event detail
    schedule: tuple[str, str] | None = None  # (event name, schedule parameter)
    handler: str = "handler"
    description: str | None = None  # default: "paypipe <name> step"
    tables: dict[str, str] = field(default_factory=dict)  # table -> Crud | Read; sets <TABLE>_TABLE
    vault: Vault | None = None
    parameters: tuple[str, ...] = ()  # template parameters passed as UPPER_SNAKE variables
    environment: dict[str, Any] = field(default_factory=dict)
    statements: tuple[dict[str, Any], ...] = ()  # further IAM statements
    properties: dict[str, Any] = field(default_factory=dict)  # further function properties
    publishes: bool = True
    observes: bool = False  # every event type from every source, trusted for nothing (a read model)

    @property
    def queued(self) -> bool:
        """Fed by its own SQS queue (pipeline events or S3 object notifications)."""
        return bool(self.consumes or self.objects or self.observes)


FUNCTIONS = (
    Function(
        "validate",
        "validate",
        consumes=("PaymentRequested", "PayeeAccountUpdated"),
        idempotency=False,
        tables={"Payments": "Crud"},
        parameters=(
            "MaxAmountCents",
            "SupportedCurrencies",
            "AllowedTenants",
            "AchOdfiRouting",
            "AchAllowOdfiPayee",
        ),
    ),
    Function(
        "tokenize",
        "tokenize",
        consumes=("PaymentValidated", "PayeeAccountValidated"),
        vault=Vault(
            "VaultEnvelopeEncryption",
            (CARD_VAULT_PURPOSE, FINGERPRINT_KEY_PURPOSE, ACCOUNT_PURPOSE, ACCOUNT_FINGERPRINT_PURPOSE),
            encrypts=True,
        ),
        environment={"VAULT_DATA_KEY_MAX_AGE_SECONDS": 300, "VAULT_DATA_KEY_MAX_MESSAGES": 1000},
    ),
    Function(
        "fraud",
        "fraud",
        consumes=("PaymentTokenized", "ReviewDecided", "ReviewExpiryDue"),
        tables={"Velocity": "Crud", "Reviews": "Crud"},
        parameters=("FraudRulesVersion", "FraudReviewAt", "FraudDeclineAt", "ReviewDeadlineHours"),
    ),
    Function(
        "charge",
        "charge",
        consumes=("PaymentScored",),
        idempotency=False,
        detail={"data": {"assessment": {"decision": ["approve"]}}},
        tables={"Acquirer": "Crud"},
        # Detokenizes cards (in memory, for the processor's authorization): never account keys.
        vault=Vault("DecryptCards", (CARD_VAULT_PURPOSE,)),
        parameters=("CardProcessor",),
    ),
    Function(
        "refund",
        "charge",
        consumes=("FundsRefunded", "ClawbackResolved"),
        idempotency=False,
        handler="refund_handler",
        description="paypipe refund - refunds the card through the processor when escrow refunds a payment",
        tables={"Acquirer": "Crud", "Payments": "Read", "Ledger": "Crud"},
        parameters=("CardProcessor",),
    ),
    Function(
        "acquirer_report",
        "charge",
        schedule=("AcquirerReport", "SettlementReportSchedule"),
        handler="report_handler",
        description="paypipe simulated acquirer - its daily settlement report to S3, as an acquirer drops it",
        tables={"Acquirer": "Read"},
        parameters=("CardProcessor",),
        environment={"REPORT_BUCKET": ref("AchBucket"), "REPORT_KMS_KEY_ID": getatt("StorageKey.Arn")},
        statements=(
            {
                "Sid": "WriteSettlementReports",
                "Action": "s3:PutObject",
                "Resource": sub(f"${{AchBucket.Arn}}/{REPORT_PREFIX}*"),
            },
            {
                "Sid": "EncryptSettlementReports",
                "Action": "kms:GenerateDataKey",
                "Resource": getatt("StorageKey.Arn"),
            },
        ),
        publishes=False,
    ),
    Function(
        "processor_feed",
        "processor",
        schedule=("ProcessorFeed", "ProcessorFeedSchedule"),
        description="paypipe processor feed - the card processor's chargeback notices as dispute events",
        tables={"Acquirer": "Crud"},
        parameters=("CardProcessor",),
    ),
    Function(
        "card_book",
        "settlement",
        consumes=("PaymentCharged", "CardRefunded", "DisputeOpened", "DisputeResolved"),
        idempotency=False,
        description="paypipe card book - books the line each card event owes on the acquirer's report",
        tables={"Settlement": "Crud"},
        parameters=("CardFeeRateBps", "CardFeeFixedMinor", "ChargebackFeeMinor"),
        publishes=False,
    ),
    Function(
        "settlement_match",
        "settlement",
        schedule=("SettlementMatch", "SettlementMatchSchedule"),
        handler="match_handler",
        description="paypipe settlement match - each day's acquirer report against the card book",
        tables={"Settlement": "Crud"},
        environment={"REPORT_BUCKET": ref("AchBucket")},
        statements=(
            {
                "Sid": "ListSettlementReports",  # so a missing report reads as missing, not denied
                "Action": "s3:ListBucket",
                "Resource": getatt("AchBucket.Arn"),
                "Condition": {"StringLike": {"s3:prefix": f"{REPORT_PREFIX}*"}},
            },
            {
                "Sid": "ReadSettlementReports",
                "Action": "s3:GetObject",
                "Resource": sub(f"${{AchBucket.Arn}}/{REPORT_PREFIX}*"),
            },
            {
                "Sid": "DecryptSettlementReports",
                "Action": "kms:Decrypt",
                "Resource": getatt("StorageKey.Arn"),
            },
        ),
    ),
    Function(
        "escrow_hold",
        "escrow_hold",
        consumes=("PaymentCharged",),
        idempotency=False,
        tables={"Ledger": "Crud", "Payments": "Crud"},
        parameters=("HoldDays", "CardFeeRateBps", "CardFeeFixedMinor", "ChargebackFeeMinor"),
    ),
    Function(
        "release",
        "release",
        consumes=("ServiceCompleted", "DisputeOpened", "DisputeResolved", "HoldExpiryDue"),
        tables={"Ledger": "Crud", "Payments": "Read"},
        parameters=("DisputeWindowDays", "ChargebackFeeMinor"),
    ),
    Function(
        "ach_batch",
        "ach_batch",
        consumes=("FundsReleased", "PayeeAccountReplaced"),
        tables={"Payouts": "Crud"},
    ),
    Function(
        "release_sweep",
        "release",
        schedule=("Sweep", "SweepSchedule"),
        handler="sweep_handler",
        description="paypipe release sweep - publishes HoldExpiryDue for holds past their hold-until time",
        tables={"Ledger": "Crud"},
        parameters=("DisputeMaxAgeDays",),
    ),
    Function(
        "review_sweep",
        "fraud",
        schedule=("ReviewSweep", "SweepSchedule"),
        handler="sweep_handler",
        description="paypipe review sweep - publishes ReviewExpiryDue for open reviews past their deadline",
        tables={"Reviews": "Read"},
    ),
    Function(
        "ach_cut",
        "ach_batch",
        schedule=("Cut", "AchCutSchedule"),
        handler="cut_handler",
        description="paypipe ACH cut - writes due payouts to NACHA files in S3 at ACH windows",
        tables={"Payouts": "Crud", "Ledger": "Crud"},
        # Detokenizes payee accounts (in memory, to write the file): never card data keys.
        vault=Vault("DecryptPayeeAccounts", (ACCOUNT_PURPOSE,)),
        parameters=(
            "AchMaxEntriesPerBatch",
            "AchOdfiRouting",
            "AchCompanyId",
            "AchCompanyName",
            "AchSubmissionLeadMinutes",
            "AchPrenote",
        ),
        environment={"ACH_BUCKET": ref("AchBucket"), "ACH_KMS_KEY_ID": getatt("StorageKey.Arn")},
        statements=(
            {"Sid": "WriteAchFiles", "Action": "s3:PutObject", "Resource": sub("${AchBucket.Arn}/*")},
            {
                "Sid": "EncryptAchFiles",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": getatt("StorageKey.Arn"),
            },
        ),
        properties={"Timeout": 300, "MemorySize": 1024},
    ),
    Function(
        "ach_returns",
        "ach_returns",
        objects=("AchBucket", INBOUND_PREFIX),
        description="paypipe ACH returns - the bank's returns and notifications of change, from S3",
        tables={"Payouts": "Crud", "Ledger": "Crud"},
        # Vaults corrected payee accounts (a notification of change); never card data keys.
        vault=Vault("VaultCorrectedAccounts", (ACCOUNT_PURPOSE, ACCOUNT_FINGERPRINT_PURPOSE), encrypts=True),
        environment={"ACH_BUCKET": ref("AchBucket"), "ACH_INBOUND_PREFIX": INBOUND_PREFIX},
        statements=(
            {
                "Sid": "ReadBankFiles",
                "Action": "s3:GetObject",
                "Resource": sub(f"${{AchBucket.Arn}}/{INBOUND_PREFIX}*"),
            },
            {
                "Sid": "WriteAnswers",
                "Action": "s3:PutObject",
                "Resource": sub(f"${{AchBucket.Arn}}/{ANSWERS_PREFIX}*"),
            },
            {
                "Sid": "BankFilesKey",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": getatt("StorageKey.Arn"),
            },
        ),
    ),
    Function(
        "projector",
        "projector",
        observes=True,
        description="paypipe projector - every event of a payment into its timeline (a read model)",
        tables={"Timeline": "Crud"},
        parameters=("TimelineRetentionDays",),
        publishes=False,
    ),
    Function(
        "detokenize",
        "tokenize",
        handler="detokenize_handler",
        description="paypipe detokenize - returns a PAN for a token to authorised callers only",
        vault=Vault("VaultDecrypt", (CARD_VAULT_PURPOSE,)),
        publishes=False,
    ),
)
