import pytest

from paypipe import cost
from paypipe.cli import main

PRICES = cost.Prices(
    lambda_request=1e-6,
    lambda_gb_second=1e-5,
    sqs_request=1e-6,
    eventbridge_event=2e-6,
    kms_request=3e-6,
    kms_key_month=1.0,
    dynamodb_wru=1e-6,
    dynamodb_rru=0.5e-6,
    s3_put=5e-6,
    s3_get=1e-6,
    logs_ingested_gb=0.5,
    card_percent=2.9,
    card_fixed_usd=0.30,
    aws_call_latency_ms=10,
)

PROFILE = cost.Profile(
    per_payment=cost.Usage(
        # 20 ms compute + 3 calls x 10 ms = 50 ms billed at 0.5 GB = 0.025 GB-s
        lambdas=(cost.LambdaUsage("validate", 512, invocations=0.5, compute_ms=20, aws_calls=3),),
        sqs_requests=10,
        eventbridge_events=4,
        kms_requests=0.01,
        dynamodb_wru=6,
        dynamodb_rru=2,
        s3_puts=0.001,
        log_bytes=1024**3 / 1e6,  # 1e-6 GiB
    ),
    fixed_monthly=cost.Usage(
        lambdas=(cost.LambdaUsage("sweep", 1024, invocations=1000, compute_ms=1000, aws_calls=1000),),
        kms_keys=2,
    ),
)


def test_usage_cost_by_line_item() -> None:
    items = cost.usage_cost(PROFILE.per_payment, PRICES)
    expected = {
        "Lambda requests": 0.5e-6,
        "Lambda GB-s": 0.025 * 1e-5,
        "SQS requests": 10e-6,
        "EventBridge events": 8e-6,
        "KMS requests": 0.03e-6,
        "KMS keys": 0.0,
        "DynamoDB writes": 6e-6,
        "DynamoDB reads": 1e-6,
        "S3 requests": 0.005e-6,
        "CloudWatch Logs": 0.5e-6,
    }
    assert items == pytest.approx(expected)
    assert sum(items.values()) == pytest.approx(26.285e-6)


def test_fixed_monthly_lambda_seconds_include_round_trips() -> None:
    # 1000 ms compute + 1000 calls x 10 ms = 11 s at 1 GB = 11 GB-s
    sweep = PROFILE.fixed_monthly.lambdas[0]
    assert cost.lambda_gb_seconds(sweep, PRICES.aws_call_latency_ms) == pytest.approx(11.0)
    items = cost.usage_cost(PROFILE.fixed_monthly, PRICES)
    assert sum(items.values()) == pytest.approx(2 + 11e-5 + 1e-3)


def test_projection_per_payment_per_100_and_card_baseline() -> None:
    result = cost.project(PROFILE, PRICES, volume=100_000, avg_amount_usd=50)
    # 100,000 x 26.285e-6 + 2.00111 fixed
    assert result.monthly_usd == pytest.approx(2.6285 + 2.00111)
    assert result.per_payment_usd == pytest.approx(4.62961e-5)
    assert result.per_100_usd == pytest.approx(4.62961e-5 * 2)
    assert result.card_per_payment_usd == pytest.approx(1.75)  # 2.9% of 50 + 0.30
    assert result.card_per_100_usd == pytest.approx(3.5)


def test_fixed_cost_dominates_at_tiny_volume() -> None:
    result = cost.project(PROFILE, PRICES, volume=1, avg_amount_usd=50)
    assert result.per_payment_usd == pytest.approx(26.285e-6 + 2.00111)


def test_projection_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        cost.project(PROFILE, PRICES, volume=0, avg_amount_usd=50)
    with pytest.raises(ValueError):
        cost.project(PROFILE, PRICES, volume=10, avg_amount_usd=0)


def test_shipped_data_files_load_and_project(capsys: pytest.CaptureFixture[str]) -> None:
    prices = cost.load_prices()
    assert prices.region == "us-east-1" and prices.as_of
    profile = cost.load_profile()
    assert profile.per_payment.eventbridge_events > 0
    assert main(["cost", "--volume", "1000000", "--avg-amount", "80"]) == 0
    out = capsys.readouterr().out
    assert "1,000,000 payments/month" in out
    assert "per $100 of volume" in out
    # 2.9% of $80 + $0.30
    assert "$2.6200 per payment" in out
