"""AWS cost per payment: measured request counts times list prices; ``paypipe cost``.

The usage profile (``data/cost/usage.json``) is written by ``make bench`` from an instrumented
embedded run: every AWS request the functions make is counted per service and operation, plus the
requests AWS itself makes on the pipeline's behalf (EventBridge delivering to the queues, Lambda's
pollers receiving and deleting). Prices (``data/cost/prices-us-east-1.json``) are hand-kept list
prices with their date and sources. Everything here is arithmetic on those two files.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

PRICES_FILE = "prices-us-east-1.json"
USAGE_FILE = "usage.json"
GIB = 1024**3


@dataclass(frozen=True)
class Prices:
    """USD per unit, plus the card processor baseline and the Lambda round-trip assumption."""

    lambda_request: float
    lambda_gb_second: float
    sqs_request: float
    eventbridge_event: float
    kms_request: float
    kms_key_month: float
    dynamodb_wru: float
    dynamodb_rru: float
    s3_put: float
    s3_get: float
    logs_ingested_gb: float
    card_percent: float
    card_fixed_usd: float
    aws_call_latency_ms: float
    as_of: str = ""
    region: str = ""


@dataclass(frozen=True)
class LambdaUsage:
    function: str
    memory_mb: int
    invocations: float
    compute_ms: float  # handler time summed over the invocations, AWS round trips excluded
    aws_calls: float  # each adds the assumed round trip to the billed duration


@dataclass(frozen=True)
class Usage:
    lambdas: tuple[LambdaUsage, ...] = ()
    sqs_requests: float = 0.0
    eventbridge_events: float = 0.0
    kms_requests: float = 0.0
    kms_keys: float = 0.0
    dynamodb_wru: float = 0.0
    dynamodb_rru: float = 0.0
    s3_puts: float = 0.0
    s3_gets: float = 0.0
    log_bytes: float = 0.0


@dataclass(frozen=True)
class Profile:
    """What one payment costs in requests, and what the stack costs per month at zero traffic."""

    per_payment: Usage
    fixed_monthly: Usage
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Projection:
    volume: int
    avg_amount_usd: float
    per_payment_items: dict[str, float]  # USD per payment, by line item
    fixed_monthly_items: dict[str, float]  # USD per month, by line item
    monthly_usd: float
    per_payment_usd: float
    per_100_usd: float
    card_per_payment_usd: float
    card_per_100_usd: float


def lambda_gb_seconds(usage: LambdaUsage, latency_ms: float) -> float:
    billed_ms = usage.compute_ms + usage.aws_calls * latency_ms
    return usage.memory_mb / 1024 * billed_ms / 1000


def usage_cost(usage: Usage, prices: Prices) -> dict[str, float]:
    """USD by line item for ``usage``."""
    invocations = sum(item.invocations for item in usage.lambdas)
    gb_seconds = sum(lambda_gb_seconds(item, prices.aws_call_latency_ms) for item in usage.lambdas)
    return {
        "Lambda requests": invocations * prices.lambda_request,
        "Lambda GB-s": gb_seconds * prices.lambda_gb_second,
        "SQS requests": usage.sqs_requests * prices.sqs_request,
        "EventBridge events": usage.eventbridge_events * prices.eventbridge_event,
        "KMS requests": usage.kms_requests * prices.kms_request,
        "KMS keys": usage.kms_keys * prices.kms_key_month,
        "DynamoDB writes": usage.dynamodb_wru * prices.dynamodb_wru,
        "DynamoDB reads": usage.dynamodb_rru * prices.dynamodb_rru,
        "S3 requests": usage.s3_puts * prices.s3_put + usage.s3_gets * prices.s3_get,
        "CloudWatch Logs": usage.log_bytes / GIB * prices.logs_ingested_gb,
    }


def card_fee(amount_usd: float, prices: Prices) -> float:
    return amount_usd * prices.card_percent / 100 + prices.card_fixed_usd


def project(profile: Profile, prices: Prices, volume: int, avg_amount_usd: float) -> Projection:
    """Monthly cost of ``volume`` payments of ``avg_amount_usd`` on average."""
    if volume < 1:
        raise ValueError("volume must be at least one payment per month")
    if avg_amount_usd <= 0:
        raise ValueError("average amount must be positive")
    per_payment = usage_cost(profile.per_payment, prices)
    fixed = usage_cost(profile.fixed_monthly, prices)
    monthly = sum(per_payment.values()) * volume + sum(fixed.values())
    per_payment_usd = monthly / volume
    card = card_fee(avg_amount_usd, prices)
    return Projection(
        volume=volume,
        avg_amount_usd=avg_amount_usd,
        per_payment_items=per_payment,
        fixed_monthly_items=fixed,
        monthly_usd=monthly,
        per_payment_usd=per_payment_usd,
        per_100_usd=per_payment_usd / avg_amount_usd * 100,
        card_per_payment_usd=card,
        card_per_100_usd=card / avg_amount_usd * 100,
    )


# -- data files ---------------------------------------------------------------------------------


def _read_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("paypipe.data").joinpath("cost", name).read_text())
    return data


def prices_from_dict(data: dict[str, Any]) -> Prices:
    return Prices(
        **data["usd"],  # the file's unit prices carry the field names
        card_percent=data["card_processor"]["percent"],
        card_fixed_usd=data["card_processor"]["fixed_usd"],
        aws_call_latency_ms=data["assumptions"]["aws_call_latency_ms"],
        as_of=data.get("as_of", ""),
        region=data.get("region", ""),
    )


def usage_from_dict(data: dict[str, Any]) -> Usage:
    fields = {key: float(value) for key, value in data.items() if key != "lambdas"}
    lambdas = tuple(LambdaUsage(**item) for item in data.get("lambdas", []))
    return Usage(lambdas=lambdas, **fields)


def profile_from_dict(data: dict[str, Any]) -> Profile:
    return Profile(
        per_payment=usage_from_dict(data["per_payment"]),
        fixed_monthly=usage_from_dict(data["fixed_monthly"]),
        meta=dict(data.get("meta", {})),
    )


def load_prices() -> Prices:
    return prices_from_dict(_read_json(PRICES_FILE))


def load_profile() -> Profile:
    return profile_from_dict(_read_json(USAGE_FILE))


# -- command ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    prices = load_prices()
    profile = load_profile()
    print(render(project(profile, prices, args.volume, args.avg_amount), prices, profile))
    return 0


def render(result: Projection, prices: Prices, profile: Profile) -> str:
    width = max(len(name) for name in result.per_payment_items) + 2
    measured = profile.meta.get("measured", "?")
    lines = [
        f"{result.volume:,} payments/month, average ${result.avg_amount_usd:,.2f} "
        f"({prices.region} list prices as of {prices.as_of}; usage measured {measured})",
        "",
        f"{'item':<{width}}{'USD/month':>14}{'USD/payment':>16}",
    ]
    for name, unit in result.per_payment_items.items():
        monthly = unit * result.volume + result.fixed_monthly_items.get(name, 0.0)
        if monthly:
            lines.append(f"{name:<{width}}{monthly:>14,.2f}{monthly / result.volume:>16.7f}")
    lines += [
        f"{'total':<{width}}{result.monthly_usd:>14,.2f}{result.per_payment_usd:>16.7f}",
        "",
        f"pipeline: ${result.per_payment_usd:.6f} per payment, ${result.per_100_usd:.6f} per $100 of volume",
        f"card processor ({prices.card_percent:g}% + ${prices.card_fixed_usd:.2f}): "
        f"${result.card_per_payment_usd:.4f} per payment, ${result.card_per_100_usd:.4f} per $100 of volume",
        f"(fixed part, independent of volume: ${sum(result.fixed_monthly_items.values()):,.2f}/month; "
        f"Lambda billed time assumes {prices.aws_call_latency_ms:g} ms per AWS call)",
    ]
    return "\n".join(lines)
