"""The card processor port on Stripe PaymentIntents, through stripe-python's `StripeClient`.

Server-side card data: the card number reaches Stripe from this process, which needs Stripe's
enablement of the raw card data APIs and the platform's PCI DSS attestation (SAQ D). Not yet run
against the live service: it is tested against tests/fakes/stripe_api.py, a local fake of exactly
the endpoints below, built from the API reference.

- authorize: create a card PaymentMethod from the card (`POST /v1/payment_methods`, the API's
  documented place for raw card fields), then create and confirm a PaymentIntent with
  ``capture_method=manual`` and ``error_on_requires_action`` (no customer is there to pass 3-D
  Secure) (`POST /v1/payment_intents`); ``requires_capture`` is an approval.
- capture (partial through ``amount_to_capture``): `POST /v1/payment_intents/{id}/capture`.
- void: `POST /v1/payment_intents/{id}/cancel`.
- refund (partial through ``amount``): `POST /v1/refunds` on the PaymentIntent.

Every POST carries ``Idempotency-Key`` = the port's key (the PaymentMethod: key + ":payment_method",
so a retry confirms the same PaymentMethod and the PaymentIntent's parameters match); Stripe keeps
the first response of a key at least 24 hours, answers a retry with it, and refuses the key with
other parameters (``idempotency_error``). The key is also in the objects' metadata, which is how
`lookup` finds an operation without repeating it:

- authorize: `GET /v1/payment_intents/search` on ``metadata['paypipe_key']`` (no PaymentIntent id
  is known yet). Search is eventually consistent (searchable in under a minute, up to an hour in an
  outage), so a miss right after the request proves nothing; it is still sound here because the
  caller's next step after a miss is a retry with the same key, which Stripe answers from its
  idempotency store instead of authorizing again.
- capture: `GET /v1/payment_intents/{id}` (strongly consistent): succeeded and
  ``metadata['paypipe_capture_key']`` (set by the capture) is the key.
- void: the same retrieval: canceled (the cancel endpoint takes no metadata; a PaymentIntent is
  voided once, and Stripe's own cancel of an expired authorization releases the hold alike).
- refund: `GET /v1/refunds?payment_intent=` (a list, strongly consistent), matched on
  ``metadata['paypipe_key']``.
A lookup finds what happened (approvals, and card declines, which leave a PaymentIntent behind);
a refused request leaves nothing to find, and asking again with its key gets the refusal again. A
lookup that cannot reach Stripe answers None, which leads to the same safe same-key retry.

Errors, classified once (`classify`): a ``card_error`` is a decline with its ``decline_code``
(else ``code``) normalized, except ``processing_error`` and ``try_again_later``, processor errors
not worth retrying under the same key (Stripe stored them under it); ``invalid_request_error`` (an
amount too large, a capture of a canceled PaymentIntent) a decline ``invalid_request``;
``idempotency_error`` a processor error not worth retrying; 409, 429, connection errors and 5xx a
retryable error, except a 5xx with ``Stripe-Should-Retry: false``, whose result is stored under the
key and indeterminate, and a read timeout: both are unknown outcomes, for `lookup`. stripe-python's
own retries are off (the port retries, `settle_call`). Card data never reaches a result, an
exception's text or a log line: Stripe's messages go through `redact_pan`, the "stripe" logger's
request-body records are dropped (its others masked), and stripe-python's console debug logging
(which prints request bodies to stderr) is refused.

API reference: https://docs.stripe.com/api/payment_intents/create,
https://docs.stripe.com/api/payment_intents/capture, https://docs.stripe.com/api/payment_intents/cancel,
https://docs.stripe.com/api/payment_intents/search, https://docs.stripe.com/api/payment_methods/create,
https://docs.stripe.com/api/refunds/create, https://docs.stripe.com/api/refunds/list,
https://docs.stripe.com/api/errors, https://docs.stripe.com/api/idempotent_requests,
https://docs.stripe.com/error-low-level, https://docs.stripe.com/search#data-freshness,
https://docs.stripe.com/testing#declined-payments, https://docs.stripe.com/declines/codes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

import requests
import stripe

from paypipe.domain.card_processing import (
    Approved,
    AuthorizeRequest,
    CaptureRequest,
    Decided,
    DeclineCode,
    Declined,
    Operation,
    ProcessorError,
    RefundRequest,
    Request,
    Result,
    UnknownOutcome,
    VoidRequest,
)
from paypipe.domain.tokenization import redact_pan

KEY_FIELD: Final = "paypipe_key"
CAPTURE_KEY_FIELD: Final = "paypipe_capture_key"
PAYMENT_ID_FIELD: Final = "paypipe_payment_id"

# Stripe's decline_code (or error code) → the port's reason; any other card decline is generic.
DECLINE_CODES: Final[Mapping[str, DeclineCode]] = {
    "do_not_honor": DeclineCode.DO_NOT_HONOR,
    "generic_decline": DeclineCode.DO_NOT_HONOR,
    "card_declined": DeclineCode.DO_NOT_HONOR,
    "insufficient_funds": DeclineCode.INSUFFICIENT_FUNDS,
    "expired_card": DeclineCode.EXPIRED_CARD,
    "incorrect_cvc": DeclineCode.INCORRECT_CVC,
    "invalid_cvc": DeclineCode.INCORRECT_CVC,
    "lost_card": DeclineCode.LOST_OR_STOLEN,
    "stolen_card": DeclineCode.LOST_OR_STOLEN,
    "pickup_card": DeclineCode.LOST_OR_STOLEN,
}
STORED_CARD_ERRORS: Final = frozenset({"processing_error", "try_again_later"})


class _NoCardData(logging.Filter):
    """stripe-python logs each request's encoded parameters (the card number and CVC) at debug
    level: those records are dropped; any other is masked like every log line of the pipeline."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "Post details" in text:
            return False
        record.msg, record.args = redact_pan(text), ()
        return True


_stripe_logger = logging.getLogger("stripe")
if not any(isinstance(existing, _NoCardData) for existing in _stripe_logger.filters):
    _stripe_logger.addFilter(_NoCardData())


class StripeProcessor:
    """`CardProcessor` on Stripe (see the module's docstring)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        read_timeout_seconds: float = 30.0,
        connect_timeout_seconds: float = 5.0,
    ) -> None:
        if "debug" in (stripe.log, os.environ.get("STRIPE_LOG")):
            raise ValueError("stripe-python's debug logging prints request bodies (card data): unset it")
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": base_url} if base_url else None,
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=(connect_timeout_seconds, read_timeout_seconds)),
        )

    def __repr__(self) -> str:
        return "StripeProcessor()"

    def authorize(self, request: AuthorizeRequest) -> Result:
        def call() -> Result:
            method = self._client.v1.payment_methods.create(
                params=_card_params(request),
                options={"idempotency_key": f"{request.key}:payment_method"},
            )
            intent = self._client.v1.payment_intents.create(
                params={
                    "amount": request.amount_cents,
                    "currency": request.currency.lower(),
                    "payment_method": method.id,
                    "allowed_payment_method_types": ["card"],
                    "capture_method": "manual",
                    "confirm": True,
                    "error_on_requires_action": True,  # no customer here to pass 3-D Secure
                    "metadata": {KEY_FIELD: request.key, PAYMENT_ID_FIELD: request.payment_id},
                },
                options={"idempotency_key": request.key},
            )
            return _authorization(request.key, intent)

        return _guarded(Operation.AUTHORIZE, request.key, call)

    def capture(self, request: CaptureRequest) -> Result:
        def call() -> Result:
            intent = self._client.v1.payment_intents.capture(
                request.authorization_id,
                params={
                    "amount_to_capture": request.amount_cents,
                    "metadata": {CAPTURE_KEY_FIELD: request.key},
                },
                options={"idempotency_key": request.key},
            )
            return _approved(Operation.CAPTURE, request.key, intent, intent.amount_received)

        return _guarded(Operation.CAPTURE, request.key, call)

    def void(self, request: VoidRequest) -> Result:
        def call() -> Result:
            intent = self._client.v1.payment_intents.cancel(
                request.authorization_id, options={"idempotency_key": request.key}
            )
            return _approved(Operation.VOID, request.key, intent, intent.amount)

        return _guarded(Operation.VOID, request.key, call)

    def refund(self, request: RefundRequest) -> Result:
        def call() -> Result:
            refund = self._client.v1.refunds.create(
                params={
                    "payment_intent": request.authorization_id,
                    "amount": request.amount_cents,
                    "metadata": {KEY_FIELD: request.key},
                },
                options={"idempotency_key": request.key},
            )
            return _refunded(request.key, refund)

        return _guarded(Operation.REFUND, request.key, call)

    def lookup(self, request: Request) -> Decided | None:
        try:
            return self._lookup(request)
        except stripe.StripeError:
            return None  # not found for now: the caller retries with the same key, which Stripe replays

    def _lookup(self, request: Request) -> Decided | None:
        if isinstance(request, AuthorizeRequest):
            query = f"metadata['{KEY_FIELD}']:'{_quoted(request.key)}'"
            found = self._client.v1.payment_intents.search(params={"query": query, "limit": 1}).data
            return _authorization_found(request.key, found[0]) if found else None
        if isinstance(request, RefundRequest):
            refunds = self._client.v1.refunds.list(
                params={"payment_intent": request.authorization_id, "limit": 100}
            )
            for refund in refunds.auto_paging_iter():
                if _metadata(refund.metadata, KEY_FIELD) == request.key:
                    return _refunded(request.key, refund)
            return None
        intent = self._client.v1.payment_intents.retrieve(request.authorization_id)
        if isinstance(request, CaptureRequest):
            if intent.status == "succeeded" and _metadata(intent.metadata, CAPTURE_KEY_FIELD) == request.key:
                return _approved(Operation.CAPTURE, request.key, intent, intent.amount_received)
            return None
        return (
            _approved(Operation.VOID, request.key, intent, intent.amount)
            if intent.status == "canceled"
            else None
        )


def _card_params(request: AuthorizeRequest) -> stripe.params.PaymentMethodCreateParams:
    card = request.card
    details: stripe.params.PaymentMethodCreateParamsCard = {
        "number": card.pan,
        "exp_month": card.expiry_month,
        "exp_year": card.expiry_year,
    }
    if card.cvc:
        details["cvc"] = card.cvc
    return {"type": "card", "card": details}


def _metadata(metadata: Any, name: str) -> str | None:
    return str(metadata[name]) if metadata is not None and name in metadata else None


def _quoted(value: str) -> str:
    """A value inside single quotes of Stripe's search query language (quotes escaped by a backslash)."""
    return value.replace("'", "\\'")


def _approved(operation: Operation, key: str, intent: stripe.PaymentIntent, amount: int) -> Approved:
    return Approved(operation, key, intent.id, amount, intent.currency.upper())


def _authorization(key: str, intent: stripe.PaymentIntent) -> Result:
    """A confirmed PaymentIntent's answer: held (approved), a decline, or still undecided."""
    decided = _authorization_found(key, intent)
    return UnknownOutcome(Operation.AUTHORIZE, key) if decided is None else decided


def _authorization_found(key: str, intent: stripe.PaymentIntent) -> Decided | None:
    op = Operation.AUTHORIZE
    if intent.status in ("requires_capture", "succeeded", "canceled"):
        return _approved(op, key, intent, intent.amount)
    if intent.status == "requires_action":  # 3-D Secure: no customer to authenticate server-side
        return Declined(
            op, key, DeclineCode.DO_NOT_HONOR, "authentication_required: the card needs 3-D Secure"
        )
    error = intent.last_payment_error
    if intent.status == "requires_payment_method" and error is not None:
        reason = _decline_reason(error.code, error.decline_code)
        return None if reason is None else Declined(op, key, reason, _message(error.code, error.message))
    return None  # processing: not decided yet


def _refunded(key: str, refund: stripe.Refund) -> Decided:
    if refund.status in ("succeeded", "pending"):
        return Approved(Operation.REFUND, key, refund.id, refund.amount, refund.currency.upper())
    return Declined(Operation.REFUND, key, DeclineCode.INVALID_REQUEST, f"the refund is {refund.status}")


def _guarded(operation: Operation, key: str, call: Callable[[], Result]) -> Result:
    try:
        return call()
    except stripe.StripeError as error:
        return classify(operation, key, error)


def classify(operation: Operation, key: str, error: stripe.StripeError) -> Result:
    """The port's result for one of stripe-python's exceptions (see the module's docstring)."""
    message = _message(error.code, error.user_message)
    if isinstance(error, stripe.CardError):
        reason = _decline_reason(error.code, error.error.decline_code if error.error else None)
        if reason is None:  # asking again with the key replays it: a new key may pass
            return ProcessorError(operation, key, message, retryable=False)
        return Declined(operation, key, reason, message)
    if isinstance(error, stripe.IdempotencyError):
        return ProcessorError(operation, key, message, retryable=False)
    if isinstance(error, stripe.InvalidRequestError):
        return Declined(operation, key, DeclineCode.INVALID_REQUEST, message)
    if isinstance(error, stripe.APIConnectionError):
        return _connection_failure(operation, key, error)
    if isinstance(error, stripe.RateLimitError):
        return ProcessorError(operation, key, message)
    if isinstance(error, stripe.APIError):
        return _server_failure(operation, key, error, message)
    return ProcessorError(operation, key, message, retryable=False)  # authentication, permission


def _decline_reason(code: str | None, decline_code: str | None) -> DeclineCode | None:
    """The port's reason for a card error, or None for a processing error (not a decline)."""
    if {code, decline_code} & STORED_CARD_ERRORS:
        return None
    return DECLINE_CODES.get(decline_code or "") or DECLINE_CODES.get(code or "") or DeclineCode.DO_NOT_HONOR


def _connection_failure(operation: Operation, key: str, error: stripe.APIConnectionError) -> Result:
    cause = error.__cause__
    if isinstance(cause, requests.exceptions.Timeout) and not isinstance(
        cause, requests.exceptions.ConnectTimeout
    ):
        return UnknownOutcome(operation, key)  # sent, no answer: it may have happened
    return ProcessorError(operation, key, "could not reach Stripe")


def _server_failure(operation: Operation, key: str, error: stripe.APIError, message: str) -> Result:
    headers = {name.lower(): value for name, value in (error.headers or {}).items()}
    if (error.http_status or 500) >= 500 and headers.get("stripe-should-retry") == "false":
        return UnknownOutcome(operation, key)  # executed and stored under the key: indeterminate
    return ProcessorError(operation, key, message)


def _message(code: str | None, text: Any) -> str:
    prefix = f"{code}: " if code else ""
    return redact_pan(f"{prefix}{text or 'no message'}")
