"""A local fake of exactly the Stripe API endpoints `StripeProcessor` calls, from the API reference.

stdlib only: an `http.server` on 127.0.0.1 (a free port) in a thread. Form-encoded requests,
Stripe's error object (``{"error": {"type", "code", "decline_code", "message", "param",
"payment_intent"}}``), ``Idempotency-Key`` replay (the same key and parameters get the stored
response; the same key with other parameters or on another endpoint a 400 ``idempotency_error``;
refusals before the endpoint runs are not stored), the published test cards' declines (the numbers
of `TEST_CARDS`), and 4000000000008005, whose authorization never answers (the client times out
and nothing happens). Partial captures and refunds are bounded like the API's.

Faults for the adapter's tests: `fail_next` answers the next POST with an injected error (after
the operation happened and stored under its key, or before anything ran); `drop_next_reply` runs
the next POST and never answers it (a lost reply); ``search_lag`` keeps new PaymentIntents out of
search until `index` (the Search API's eventual consistency).

Endpoints: POST /v1/payment_methods, POST /v1/payment_intents, GET /v1/payment_intents/{id},
POST /v1/payment_intents/{id}/capture, POST /v1/payment_intents/{id}/cancel,
GET /v1/payment_intents/search, POST /v1/refunds, GET /v1/refunds.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from paypipe.domain.acquirer_simulator import TEST_CARDS, Behaviour
from paypipe.domain.tokenization import luhn_valid

READ_TIMEOUT_SECONDS = 0.5  # the client's, in tests: a hung request costs this much
HANG_SECONDS = 10.0  # how long an unanswered request holds its connection (released at stop)
API_KEY = "sk_test_fake"
MAX_AMOUNT = 99_999_999
MIN_AMOUNT = 50
CANCELABLE = {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"}

# Published test card → (error code, decline_code, message), as docs.stripe.com/testing lists them.
DECLINES: dict[str, tuple[str, str | None, str]] = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": ("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": ("expired_card", None, "Your card has expired."),
    "4000000000000127": ("incorrect_cvc", None, "Your card's security code is incorrect."),
    "4000000000000119": ("processing_error", None, "An error occurred while processing your card."),
}
TIMEOUT_CARDS = {pan for pan, behaviour in TEST_CARDS.items() if behaviour is Behaviour.TIMEOUT}
_SEARCH = re.compile(r"^metadata\['(?P<field>[a-z_]+)'\]:'(?P<value>(?:[^'\\]|\\')*)'$")


class Refused(Exception):
    """An error answer; ``stored`` when the endpoint had started (kept under the key)."""

    def __init__(self, status: int, stored: bool = True, **error: Any) -> None:
        super().__init__(error.get("message"))
        self.status, self.stored = status, stored
        self.body = {"error": {name: value for name, value in error.items() if value is not None}}


@dataclass
class Injected:
    status: int
    error: dict[str, Any]
    headers: dict[str, str]
    execute: bool


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class StripeFake:
    search_lag: bool = False
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, key
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    _cards: dict[str, str] = field(default_factory=dict)  # payment method → number (the fake's own)
    _methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stored: dict[str, tuple[str, list[tuple[str, str]], Answer]] = field(default_factory=dict)
    _indexed: set[str] = field(default_factory=set)
    _injected: list[Injected] = field(default_factory=list)
    _drops: list[str | None] = field(default_factory=list)  # the next POSTs (to a path) to leave unanswered
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def fail_next(
        self, status: int, headers: dict[str, str] | None = None, execute: bool = False, **error: Any
    ) -> None:
        self._injected.append(Injected(status, error, headers or {}, execute))

    def drop_next_reply(self, path: str | None = None) -> None:
        self._drops.append(path)

    def index(self) -> None:
        self._indexed |= set(self.intents)

    def keys_sent(self, path: str) -> list[str | None]:
        return [key for method, sent, key in self.requests if method == "POST" and sent == path]

    def answer(
        self, method: str, path: str, params: list[tuple[str, str]], headers: dict[str, str]
    ) -> Answer:
        key = headers.get("idempotency-key")
        with self._lock:
            self.requests.append((method, path, key))
            if headers.get("authorization") != f"Bearer {API_KEY}":
                return _error(Refused(401, type="invalid_request_error", message="Invalid API Key provided"))
            if method == "GET":
                return self._run(method, path, dict(params))
            return self._post(path, params, key)

    def _post(self, path: str, params: list[tuple[str, str]], key: str | None) -> Answer:
        ordered = sorted(params)
        if key is not None and key in self._stored:
            stored_path, stored_params, stored = self._stored[key]
            if (stored_path, stored_params) != (path, ordered):
                return _error(Refused(400, type="idempotency_error", message=_REUSED))
            return Answer(stored.status, stored.body, {**stored.headers, "Idempotent-Replayed": "true"})
        injected = self._injected.pop(0) if self._injected else None
        if injected is not None and not injected.execute:
            return Answer(injected.status, {"error": injected.error}, injected.headers)
        if self._hangs(path, dict(params)):
            return Answer(0, {}, hang=True)  # never answers and never happens
        answer = self._run("POST", path, dict(params))
        if injected is not None:
            answer = Answer(injected.status, {"error": injected.error}, injected.headers)
        if key is not None and (answer.status < 400 or answer.body.get("stored", True)):
            answer.body.pop("stored", None)
            self._stored[key] = (path, ordered, Answer(answer.status, answer.body, answer.headers))
        answer.body.pop("stored", None)
        if self._drops and self._drops[0] in (None, path):
            self._drops.pop(0)
            answer.hang = True
        return answer

    def _hangs(self, path: str, params: dict[str, str]) -> bool:
        method = params.get("payment_method", "")
        return path == "/v1/payment_intents" and self._cards.get(method) in TIMEOUT_CARDS

    def _run(self, method: str, path: str, params: dict[str, str]) -> Answer:
        try:
            try:
                return Answer(200, self._route(method, path, params))
            except KeyError as missing:
                message = f"Missing required param: {missing.args[0]}."
                raise Refused(400, False, type="invalid_request_error", code="parameter_missing",
                              param=missing.args[0], message=message) from None  # fmt: skip
        except Refused as refused:
            answer = _error(refused)
            answer.body["stored"] = refused.stored
            return answer

    def _route(self, method: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        parts = path.strip("/").split("/")[1:]  # after "v1"
        match method, parts:
            case "POST", ["payment_methods"]:
                return self._create_method(params)
            case "POST", ["payment_intents"]:
                return self._create_intent(params)
            case "GET", ["payment_intents", "search"]:
                return self._search(params)
            case "GET", ["payment_intents", intent_id]:
                return self._intent(intent_id)
            case "POST", ["payment_intents", intent_id, "capture"]:
                return self._capture(self._intent(intent_id), params)
            case "POST", ["payment_intents", intent_id, "cancel"]:
                return self._cancel(self._intent(intent_id), params)
            case "POST", ["refunds"]:
                return self._refund(params)
            case "GET", ["refunds"]:
                return self._list_refunds(params)
        raise Refused(404, False, type="invalid_request_error", message=f"Unrecognized request URL ({path})")

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):08d}"

    def _create_method(self, params: dict[str, str]) -> dict[str, Any]:
        number = params.get("card[number]", "")
        if params.get("type") != "card":
            raise Refused(400, False, type="invalid_request_error", param="type", message="Invalid type")
        if not (number.isdigit() and luhn_valid(number)):
            raise Refused(402, type="card_error", code="incorrect_number", message=_INCORRECT_NUMBER)
        method_id = self._new_id("pm")
        self._cards[method_id] = number
        card = {"brand": "visa", "last4": number[-4:], "exp_month": int(params["card[exp_month]"])}
        card["exp_year"] = int(params["card[exp_year]"])
        self._methods[method_id] = {"id": method_id, "object": "payment_method", "type": "card", "card": card}
        return self._methods[method_id]

    def _create_intent(self, params: dict[str, str]) -> dict[str, Any]:
        amount = _amount(params, "amount")
        if amount < MIN_AMOUNT or amount > MAX_AMOUNT:
            code = "amount_too_small" if amount < MIN_AMOUNT else "amount_too_large"
            raise Refused(400, False, type="invalid_request_error", code=code, param="amount", message=code)
        method_id = params.get("payment_method", "")
        if method_id not in self._methods or params.get("confirm") != "true":
            raise Refused(400, False, type="invalid_request_error", message="confirm a card payment_method")
        intent = self._intent_object(params, amount)
        self.intents[intent["id"]] = intent
        if not self.search_lag:
            self._indexed.add(intent["id"])
        decline = DECLINES.get(self._cards[method_id])
        if decline is None:
            manual = params.get("capture_method") == "manual"
            intent.update(status="requires_capture" if manual else "succeeded")
            intent["amount_capturable" if manual else "amount_received"] = amount
            return intent
        code, decline_code, message = decline
        error = {"type": "card_error", "code": code, "decline_code": decline_code, "message": message}
        intent["last_payment_error"] = {name: value for name, value in error.items() if value}
        raise Refused(402, **error, payment_intent=dict(intent))

    def _intent_object(self, params: dict[str, str], amount: int) -> dict[str, Any]:
        metadata = _nested(params, "metadata")
        return {
            "id": self._new_id("pi"), "object": "payment_intent", "amount": amount,
            "amount_capturable": 0, "amount_received": 0, "currency": params["currency"],
            "capture_method": params.get("capture_method", "automatic"), "status": "requires_payment_method",
            "payment_method": params["payment_method"], "payment_method_types": ["card"],
            "metadata": metadata, "last_payment_error": None, "canceled_at": None,
            "cancellation_reason": None, "livemode": False,
        }  # fmt: skip

    def _intent(self, intent_id: str) -> dict[str, Any]:
        if intent_id not in self.intents:
            message = f"No such payment_intent: '{intent_id}'"
            raise Refused(404, False, type="invalid_request_error", code="resource_missing", message=message)
        return self.intents[intent_id]

    def _capture(self, intent: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        if intent["status"] != "requires_capture":
            raise _unexpected_state(intent, "captured")
        amount = _amount(params, "amount_to_capture", intent["amount_capturable"])
        if not 0 < amount <= intent["amount_capturable"]:
            message = "The amount to capture must be at most the amount capturable."
            raise Refused(400, type="invalid_request_error", param="amount_to_capture", message=message)
        intent["metadata"].update(_nested(params, "metadata"))
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        return intent

    def _cancel(self, intent: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        if intent["status"] not in CANCELABLE:
            raise _unexpected_state(intent, "canceled")
        intent.update(status="canceled", amount_capturable=0, canceled_at=1)
        intent["cancellation_reason"] = params.get("cancellation_reason")
        return intent

    def _refund(self, params: dict[str, str]) -> dict[str, Any]:
        intent = self._intent(params.get("payment_intent", ""))
        if intent["status"] != "succeeded":
            raise _unexpected_state(intent, "refunded")
        refunded = sum(r["amount"] for r in self.refunds if r["payment_intent"] == intent["id"])
        refundable = intent["amount_received"] - refunded
        amount = _amount(params, "amount", refundable)
        if refundable == 0:
            message = f"Charge for {intent['id']} has already been refunded."
            raise Refused(400, type="invalid_request_error", code="charge_already_refunded", message=message)
        if not 0 < amount <= refundable:
            message = f"Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})"
            raise Refused(400, type="invalid_request_error", param="amount", message=message)
        refund = {
            "id": self._new_id("re"), "object": "refund", "amount": amount, "currency": intent["currency"],
            "payment_intent": intent["id"], "status": "succeeded", "metadata": _nested(params, "metadata"),
        }  # fmt: skip
        self.refunds.append(refund)
        return refund

    def _search(self, params: dict[str, str]) -> dict[str, Any]:
        match = _SEARCH.match(params.get("query", ""))
        if match is None:
            raise Refused(
                400, False, type="invalid_request_error", param="query", message="query not supported"
            )
        name, value = match["field"], match["value"].replace("\\'", "'")
        found = [
            intent for intent_id, intent in self.intents.items()
            if intent_id in self._indexed and intent["metadata"].get(name) == value
        ]  # fmt: skip
        limit = int(params.get("limit", "10"))
        return {"object": "search_result", "url": "/v1/payment_intents/search", "data": found[:limit],
                "has_more": len(found) > limit, "next_page": None}  # fmt: skip

    def _list_refunds(self, params: dict[str, str]) -> dict[str, Any]:
        matching = [r for r in reversed(self.refunds) if r["payment_intent"] == params.get("payment_intent")]
        if "starting_after" in params:
            ids = [r["id"] for r in matching]
            matching = matching[ids.index(params["starting_after"]) + 1 :]
        limit = int(params.get("limit", "10"))
        return {
            "object": "list",
            "url": "/v1/refunds",
            "data": matching[:limit],
            "has_more": len(matching) > limit,
        }


_REUSED = "Keys for idempotent requests can only be used with the same parameters they were first used with."
_INCORRECT_NUMBER = "Your card number is incorrect."


def _error(refused: Refused) -> Answer:
    return Answer(refused.status, refused.body)


def _unexpected_state(intent: dict[str, Any], verb: str) -> Refused:
    message = f"This PaymentIntent could not be {verb} because it has a status of {intent['status']}."
    return Refused(400, type="invalid_request_error", code="payment_intent_unexpected_state", message=message)


def _amount(params: dict[str, str], name: str, default: int | None = None) -> int:
    text = params.get(name)
    if text is None and default is not None:
        return default
    if text is None or not text.lstrip("-").isdigit():
        raise Refused(
            400, False, type="invalid_request_error", param=name, message=f"Invalid integer: {text}"
        )
    return int(text)


def _nested(params: dict[str, str], name: str) -> dict[str, str]:
    prefix = f"{name}["
    return {key[len(prefix) : -1]: value for key, value in params.items() if key.startswith(prefix)}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self._respond(self.server.fake.answer("GET", parts.path, parse_qsl(parts.query), self._headers()))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        path = urlsplit(self.path).path
        self._respond(self.server.fake.answer("POST", path, parse_qsl(body), self._headers()))

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _respond(self, answer: Answer) -> None:
        if answer.hang:
            self.server.fake.released.wait(HANG_SECONDS)
            self.close_connection = True
            return
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", f"req_fake{len(self.server.fake.requests):06d}")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no request lines on stderr
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: StripeFake


@contextmanager
def running(search_lag: bool = False) -> Iterator[StripeFake]:
    """A fresh fake serving on 127.0.0.1 at a free port, stopped on exit."""
    fake = StripeFake(search_lag=search_lag)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.released.set()
        server.shutdown()
        server.server_close()
        thread.join()


def processor_for(fake: StripeFake) -> Any:
    """A `StripeProcessor` pointed at ``fake`` (imported here: stripe is an optional extra)."""
    from paypipe.adapters.stripe_processor import StripeProcessor

    return StripeProcessor(API_KEY, base_url=fake.url, read_timeout_seconds=READ_TIMEOUT_SECONDS)


@contextmanager
def fake_stripe_processor() -> Iterator[Any]:
    pytest.importorskip("stripe")  # the contract runs on the simulator alone without the extra
    with running() as fake:
        yield processor_for(fake)
