"""The Stripe adapter against the local fake: how each Stripe answer is classified, retries and
lost replies with the same key, and card data kept out of results, exceptions and logs."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

stripe = pytest.importorskip("stripe")

from paypipe.adapters.stripe_processor import StripeProcessor  # noqa: E402
from paypipe.domain.card_processing import (  # noqa: E402
    Approved,
    AuthorizeRequest,
    CaptureRequest,
    Card,
    DeclineCode,
    Declined,
    Operation,
    ProcessorError,
    RefundRequest,
    UnknownOutcome,
    VoidRequest,
    operation_key,
    settle,
)
from tests.fakes.stripe_api import StripeFake, processor_for, running  # noqa: E402

GOOD_CARD = "4242424242424242"
CVC = "731"


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with running() as started:
        yield started


def authorization(payment_id: str, pan: str = GOOD_CARD, amount: int = 10_000) -> AuthorizeRequest:
    card = Card(pan=pan, expiry_month=12, expiry_year=2030, cvc=CVC)
    return AuthorizeRequest(operation_key(Operation.AUTHORIZE, payment_id), payment_id, amount, "USD", card)


def held(processor: StripeProcessor, payment_id: str) -> Approved:
    result = processor.authorize(authorization(payment_id))
    assert isinstance(result, Approved), result
    return result


def card(code: str, decline_code: str | None = None) -> dict[str, str]:
    error = {"type": "card_error", "code": code}
    return error if decline_code is None else {**error, "decline_code": decline_code}


SHOULD_RETRY = {"Stripe-Should-Retry": "true"}
STORED = {"Stripe-Should-Retry": "false"}
# (HTTP status, headers, error object) → the port's result: a decline's reason, or an error's kind.
CLASSIFICATION = [
    (402, {}, card("card_declined", "do_not_honor"), DeclineCode.DO_NOT_HONOR),
    (402, {}, card("card_declined", "generic_decline"), DeclineCode.DO_NOT_HONOR),
    (402, {}, card("card_declined", "insufficient_funds"), DeclineCode.INSUFFICIENT_FUNDS),
    (402, {}, card("expired_card"), DeclineCode.EXPIRED_CARD),
    (402, {}, card("incorrect_cvc"), DeclineCode.INCORRECT_CVC),
    (402, {}, card("card_declined", "lost_card"), DeclineCode.LOST_OR_STOLEN),
    (402, {}, card("card_declined", "stolen_card"), DeclineCode.LOST_OR_STOLEN),
    (402, {}, card("card_declined", "fraudulent"), DeclineCode.DO_NOT_HONOR),
    (402, {}, card("processing_error"), "final error"),
    (402, {}, card("card_declined", "try_again_later"), "final error"),
    (400, {}, {"type": "invalid_request_error", "code": "amount_too_large"}, DeclineCode.INVALID_REQUEST),
    (404, {}, {"type": "invalid_request_error", "code": "resource_missing"}, DeclineCode.INVALID_REQUEST),
    (400, {}, {"type": "idempotency_error"}, "final error"),
    (409, {}, {"type": "idempotency_error"}, "retryable error"),
    (429, {}, {"type": "invalid_request_error", "code": "rate_limit"}, "retryable error"),
    (429, {}, {"type": "invalid_request_error", "code": "lock_timeout"}, "retryable error"),
    (500, SHOULD_RETRY, {"type": "api_error"}, "retryable error"),
    (503, {}, {"type": "api_error"}, "retryable error"),
    (500, STORED, {"type": "api_error"}, "unknown outcome"),
    (401, {}, {"type": "invalid_request_error"}, "final error"),
    (403, {}, {"type": "invalid_request_error"}, "final error"),
]  # fmt: skip


def kind(result: object) -> object:
    if isinstance(result, Declined):
        return result.code
    if isinstance(result, ProcessorError):
        return "retryable error" if result.retryable else "final error"
    return "unknown outcome" if isinstance(result, UnknownOutcome) else result


@pytest.mark.parametrize(("status", "headers", "error", "expected"), CLASSIFICATION)
def test_each_stripe_answer_is_classified(
    fake: StripeFake, status: int, headers: dict[str, str], error: dict[str, str], expected: object
) -> None:
    fake.fail_next(status, headers, message="Stripe says no.", **error)
    result = processor_for(fake).authorize(authorization("p-class"))
    assert kind(result) == expected
    assert result.operation is Operation.AUTHORIZE and result.key == operation_key(
        Operation.AUTHORIZE, "p-class"
    )


def test_an_unreachable_stripe_is_a_retryable_error_and_a_lookup_finds_nothing() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    processor = StripeProcessor("sk_test_fake", base_url=f"http://127.0.0.1:{port}", read_timeout_seconds=0.5)
    result = processor.authorize(authorization("p-down"))
    assert isinstance(result, ProcessorError) and result.retryable
    assert processor.lookup(authorization("p-down")) is None


def test_a_retryable_500_is_retried_with_the_same_key_and_authorizes_once(fake: StripeFake) -> None:
    fake.fail_next(500, SHOULD_RETRY, type="api_error", message="An unknown error occurred")
    result = settle(processor_for(fake), authorization("p-500"))
    assert isinstance(result, Approved)
    key = operation_key(Operation.AUTHORIZE, "p-500")
    assert fake.keys_sent("/v1/payment_methods") == [f"{key}:payment_method"] * 2
    assert fake.keys_sent("/v1/payment_intents") == [key]
    assert list(fake.intents) == [result.reference]


def test_a_stored_500_is_an_unknown_outcome_the_lookup_resolves(fake: StripeFake) -> None:
    processor = processor_for(fake)
    auth = held(processor, "p-stored")
    fake.fail_next(500, STORED, execute=True, type="api_error", message="An unknown error occurred")
    capture = CaptureRequest("cap-stored", auth.reference, 4_000)
    result = settle(processor, capture)
    assert result == Approved(Operation.CAPTURE, "cap-stored", auth.reference, 4_000, "USD")
    assert fake.keys_sent(f"/v1/payment_intents/{auth.reference}/capture") == ["cap-stored"]
    assert isinstance(processor.capture(capture), UnknownOutcome)  # its replay: the stored 500


def test_a_lost_authorization_reply_missed_by_a_lagging_search_is_replayed_not_repeated() -> None:
    with running(search_lag=True) as fake:
        processor = processor_for(fake)
        request = authorization("p-lost")
        fake.drop_next_reply("/v1/payment_intents")
        assert isinstance(processor.authorize(request), UnknownOutcome)  # authorized, reply lost
        assert processor.lookup(request) is None  # not searchable yet: proves nothing
        again = processor.authorize(request)  # the same key: Stripe answers from its store
        assert isinstance(again, Approved)
        assert list(fake.intents) == [again.reference]
        fake.index()
        assert processor.lookup(request) == again


@pytest.mark.parametrize("operation", ["capture", "void", "refund"])
def test_a_lost_reply_is_found_by_lookup_and_not_repeated(fake: StripeFake, operation: str) -> None:
    processor = processor_for(fake)
    auth = held(processor, f"p-lost-{operation}")
    if operation == "refund":
        assert isinstance(processor.capture(CaptureRequest("cap", auth.reference, 10_000)), Approved)
    request = {
        "capture": CaptureRequest("op-key", auth.reference, 6_000),
        "void": VoidRequest("op-key", auth.reference),
        "refund": RefundRequest("op-key", auth.reference, 2_500),
    }[operation]
    assert processor.lookup(request) is None  # not yet
    fake.drop_next_reply()
    result = settle(processor, request)
    assert isinstance(result, Approved) and result.operation == Operation(operation)
    sent = [key for method, _, key in fake.requests if method == "POST" and key == "op-key"]
    assert sent == ["op-key"]  # found by the lookup, never asked again
    intent = fake.intents[auth.reference]
    assert (intent["status"], intent["amount_received"], len(fake.refunds)) == {
        "capture": ("succeeded", 6_000, 0),
        "void": ("canceled", 0, 0),
        "refund": ("succeeded", 10_000, 1),
    }[operation]


def test_no_card_data_in_results_exceptions_or_logs(
    fake: StripeFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    processor = processor_for(fake)
    declined_pan, bad_pan = "4000000000009995", "4242424242424241"
    fake.fail_next(402, type="card_error", code="card_declined", message=f"card {GOOD_CARD} refused")
    results = [
        processor.authorize(authorization("p-echo")),
        processor.authorize(authorization("p-ok")),
        processor.authorize(authorization("p-declined", declined_pan)),
        processor.authorize(authorization("p-bad", bad_pan)),
        processor.lookup(authorization("p-declined", declined_pan)),
    ]
    assert isinstance(results[0], Declined) and "[PAN]" in results[0].message
    assert isinstance(results[1], Approved)
    insufficient = DeclineCode.INSUFFICIENT_FUNDS
    assert [kind(r) for r in results[2:]] == [insufficient, DeclineCode.DO_NOT_HONOR, insufficient]
    texts = [caplog.text, repr(processor), *map(repr, results), *map(str, results)]
    assert "Request to Stripe api" in caplog.text  # stripe-python's records were captured
    for text in texts:
        for secret in (GOOD_CARD, declined_pan, bad_pan, "card[cvc]", "card%5Bcvc%5D"):
            assert secret not in text


def test_stripe_debug_console_logging_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe, "log", "debug")
    with pytest.raises(ValueError, match="card data"):
        StripeProcessor("sk_test_fake")


def test_a_key_with_quotes_is_found_by_search(fake: StripeFake) -> None:
    processor = processor_for(fake)
    request = authorization("p-o'brien-2")
    first = processor.authorize(request)
    assert isinstance(first, Approved)
    assert processor.lookup(request) == first
    assert processor.lookup(authorization("p-o'brien")) is None
