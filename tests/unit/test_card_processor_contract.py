"""The card processor port's contract, run against every implementation of it; the simulated
acquirer's own faults and settlement report after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from paypipe.adapters.acquirer_store import DynamoAcquirer
from paypipe.domain.acquirer_simulator import (
    TEST_CARDS,
    Faults,
    SimulatedAcquirer,
)
from paypipe.domain.card_processing import (
    Approved,
    AuthorizeRequest,
    CaptureRequest,
    Card,
    CardProcessor,
    DeclineCode,
    Declined,
    Operation,
    ProcessorError,
    RefundRequest,
    UnknownOutcome,
    VoidRequest,
    operation_key,
    settle,
    settle_call,
)
from paypipe.domain.settlement import FeeSchedule, settlement_totals
from tests.fakes.stripe_api import fake_stripe_processor
from tests.tables import create_table

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)
GOOD_CARD = "4242424242424242"
TIMEOUT_CARD = "4000000000008005"

Factory = Callable[[], AbstractContextManager[CardProcessor]]


@contextmanager
def dynamo_acquirer() -> Iterator[CardProcessor]:
    """The simulated acquirer with its state in a (moto) acquirer table."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "acquirer", gsi=True)
        yield DynamoAcquirer("acquirer", client, lambda: NOW)


IMPLEMENTATIONS: dict[str, Factory] = {
    "simulated acquirer": lambda: nullcontext(SimulatedAcquirer(now=lambda: NOW)),
    "simulated acquirer on DynamoDB": dynamo_acquirer,
    "stripe (local fake)": fake_stripe_processor,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def processor(request: pytest.FixtureRequest) -> Iterator[CardProcessor]:
    with IMPLEMENTATIONS[request.param]() as implementation:
        yield implementation


def authorization(payment_id: str, amount: int = 10_000, pan: str = GOOD_CARD) -> AuthorizeRequest:
    card = Card(pan=pan, expiry_month=12, expiry_year=2030, cvc="123")
    return AuthorizeRequest(operation_key(Operation.AUTHORIZE, payment_id), payment_id, amount, "USD", card)


def authorize(
    processor: CardProcessor, payment_id: str, amount: int = 10_000, pan: str = GOOD_CARD
) -> object:
    return processor.authorize(authorization(payment_id, amount, pan))


def approved(result: object) -> Approved:
    assert isinstance(result, Approved), result
    return result


def test_an_approved_card_is_captured_and_refunded_in_parts(processor: CardProcessor) -> None:
    auth = approved(authorize(processor, "p-1"))
    assert (auth.amount_cents, auth.currency) == (10_000, "USD")
    captured = approved(processor.capture(CaptureRequest("cap-1", auth.reference, 10_000)))
    assert captured.amount_cents == 10_000
    first = approved(processor.refund(RefundRequest("ref-1", auth.reference, 4_000)))
    second = approved(processor.refund(RefundRequest("ref-2", auth.reference, 6_000)))
    assert first.reference != second.reference
    over = processor.refund(RefundRequest("ref-3", auth.reference, 1))
    assert isinstance(over, Declined) and over.code is DeclineCode.INVALID_REQUEST


@pytest.mark.parametrize("pan", sorted(p for p, code in TEST_CARDS.items() if isinstance(code, DeclineCode)))
def test_each_test_card_is_declined_with_its_reason(processor: CardProcessor, pan: str) -> None:
    result = authorize(processor, f"p-decline-{pan[-4:]}", pan=pan)
    assert isinstance(result, Declined)
    assert result.code is TEST_CARDS[pan]
    assert pan not in repr(result) and pan not in result.message


def test_asking_again_with_the_key_returns_the_first_outcome_and_charges_once(
    processor: CardProcessor,
) -> None:
    first = approved(authorize(processor, "p-2"))
    again = approved(authorize(processor, "p-2"))
    assert again == first
    capture = CaptureRequest("cap-2", first.reference, 10_000)
    approved(processor.capture(capture))
    assert processor.capture(capture) == processor.lookup(capture)
    assert processor.lookup(authorization("p-2")) == first
    second_capture = processor.capture(CaptureRequest("cap-2b", first.reference, 10_000))
    assert isinstance(second_capture, Declined)


def test_a_key_reused_with_other_content_is_refused(processor: CardProcessor) -> None:
    approved(authorize(processor, "p-3", amount=10_000))
    reused = authorize(processor, "p-3", amount=20_000)
    assert isinstance(reused, ProcessorError) and not reused.retryable


def test_a_partial_capture_bounds_what_can_be_refunded(processor: CardProcessor) -> None:
    auth = approved(authorize(processor, "p-4", amount=10_000))
    approved(processor.capture(CaptureRequest("cap-4", auth.reference, 6_000)))
    too_much = processor.refund(RefundRequest("ref-4", auth.reference, 6_001))
    assert isinstance(too_much, Declined)
    approved(processor.refund(RefundRequest("ref-4b", auth.reference, 6_000)))


def test_a_void_cancels_an_uncaptured_authorization_only(processor: CardProcessor) -> None:
    auth = approved(authorize(processor, "p-5"))
    approved(processor.void(VoidRequest("void-5", auth.reference)))
    assert isinstance(processor.capture(CaptureRequest("cap-5", auth.reference, 10_000)), Declined)
    captured = approved(authorize(processor, "p-6"))
    approved(processor.capture(CaptureRequest("cap-6", captured.reference, 10_000)))
    assert isinstance(processor.void(VoidRequest("void-6", captured.reference)), Declined)


def test_a_timeout_is_looked_up_before_any_retry_and_stays_unknown_when_nothing_happened(
    processor: CardProcessor,
) -> None:
    calls: list[str] = []

    def call() -> object:
        calls.append("call")
        return authorize(processor, "p-7", pan=TIMEOUT_CARD)

    def lookup() -> object:
        calls.append("lookup")
        return processor.lookup(authorization("p-7", pan=TIMEOUT_CARD))

    result = settle_call(call, lookup, attempts=3)  # type: ignore[arg-type]
    assert isinstance(result, UnknownOutcome)
    assert calls == ["call", "lookup"] * 3
    assert processor.lookup(authorization("p-7", pan=TIMEOUT_CARD)) is None


def test_lost_replies_are_found_by_lookup_and_nothing_is_authorized_twice() -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW, faults=Faults(seed=7, timeout_rate=1.0))
    requests = [authorization(f"lost-{index}", 500) for index in range(40)]
    outcomes = {request: settle(acquirer, request) for request in requests}
    found = [o for o in outcomes.values() if isinstance(o, Approved)]
    unknown = [r for r, o in outcomes.items() if isinstance(o, UnknownOutcome)]
    assert found and unknown and len(found) + len(unknown) == 40
    assert len({o.reference for o in found}) == len(found)
    for request in unknown:
        assert acquirer.lookup(request) is None  # never happened: safe to ask again later


def test_retryable_errors_are_retried_with_the_same_key() -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW, faults=Faults(seed=3, error_rate=0.5))
    results = [settle(acquirer, authorization(f"err-{index}", 500)) for index in range(30)]
    assert sum(isinstance(r, Approved) for r in results) > 20  # 1 - 0.5**3 of them
    assert all(isinstance(r, Approved | ProcessorError) for r in results)


def test_the_settlement_report_nets_captures_refunds_and_fees() -> None:
    acquirer = SimulatedAcquirer(now=lambda: NOW, fees=FeeSchedule(rate_bps=290, fixed_minor=30))
    first = approved(authorize(acquirer, "s-1", amount=10_000))
    second = approved(authorize(acquirer, "s-2", amount=2_550))
    approved(acquirer.capture(CaptureRequest("cap-s1", first.reference, 10_000)))
    approved(acquirer.capture(CaptureRequest("cap-s2", second.reference, 2_550)))
    approved(acquirer.refund(RefundRequest("ref-s1", first.reference, 2_500)))
    lines = acquirer.settlement_lines(NOW.date())
    assert [line.kind for line in lines] == ["capture", "capture", "refund"]
    totals = settlement_totals(lines)["USD"]
    fees = (290 + 30) + (74 + 30)  # 2.9 % of 100.00 and of 25.50 (73.95, half up), plus 30 each
    assert (totals.captured, totals.refunded, totals.fees) == (12_550, 2_500, fees)
    assert totals.net == 12_550 - 2_500 - fees
    assert acquirer.settlement_days() == [NOW.date()]
