"""The card processor port: authorize, capture, void, refund and look an operation up by its key.

Every call carries an idempotency key derived from the business key (`operation_key`), so a
redelivered command asks the processor for the same operation and never charges or refunds twice.
Results are classified once here, whatever the processor: approved; declined with a reason code;
a processor error (retryable or not); or an unknown outcome (a timeout), which is resolved by
looking the operation up before any retry (`settle_call`; `settle` for one request).

A processor also tells of chargebacks (`DisputeNotice`: a dispute opened at the card network,
then won or lost), through its `DisputeFeed`; the processor's feed relays each as an event.

Pure: the adapters (a simulated acquirer, a real processor) implement `CardProcessor`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol


class Operation(StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


class DeclineCode(StrEnum):
    """Why the card network or issuer said no (the processor's code, normalized)."""

    DO_NOT_HONOR = "do_not_honor"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    INCORRECT_CVC = "incorrect_cvc"
    LOST_OR_STOLEN = "lost_or_stolen"
    INVALID_REQUEST = "invalid_request"  # the processor refused the operation itself (e.g. over-refund)


def operation_key(operation: Operation, payment_id: str, qualifier: str = "") -> str:
    """The idempotency key of one operation of one payment: the same business step always asks
    for the same key (``qualifier`` tells apart operations of one kind, e.g. two refunds)."""
    suffix = f":{qualifier}" if qualifier else ""
    return f"paypipe:{payment_id}:{operation}{suffix}"


@dataclass(frozen=True)
class Card:
    """Card data for one authorization; its repr never shows the number or the CVC."""

    pan: str = field(repr=False)
    expiry_month: int
    expiry_year: int
    cvc: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AuthorizeRequest:
    key: str
    payment_id: str
    amount_cents: int
    currency: str
    card: Card


@dataclass(frozen=True)
class CaptureRequest:
    key: str
    authorization_id: str
    amount_cents: int  # up to the authorized amount: a partial capture releases the rest


@dataclass(frozen=True)
class VoidRequest:
    key: str
    authorization_id: str


@dataclass(frozen=True)
class RefundRequest:
    key: str
    authorization_id: str
    amount_cents: int  # up to what is captured and not yet refunded


@dataclass(frozen=True)
class Approved:
    operation: Operation
    key: str
    reference: str  # the processor's id of the authorization (or of the refund)
    amount_cents: int
    currency: str


@dataclass(frozen=True)
class Declined:
    operation: Operation
    key: str
    code: DeclineCode
    message: str


@dataclass(frozen=True)
class ProcessorError:
    """The processor failed to answer; ``retryable`` when asking again may succeed."""

    operation: Operation
    key: str
    message: str
    retryable: bool = True


@dataclass(frozen=True)
class UnknownOutcome:
    """No answer (a timeout): the operation may or may not have happened."""

    operation: Operation
    key: str


type Decided = Approved | Declined  # asking again with the same key returns it
type Result = Approved | Declined | ProcessorError | UnknownOutcome
type Request = AuthorizeRequest | CaptureRequest | VoidRequest | RefundRequest


class CardProcessor(Protocol):
    def authorize(self, request: AuthorizeRequest) -> Result: ...
    def capture(self, request: CaptureRequest) -> Result: ...
    def void(self, request: VoidRequest) -> Result: ...
    def refund(self, request: RefundRequest) -> Result: ...
    def lookup(self, request: Request) -> Decided | None:
        """The decided outcome of the operation ``request`` asked for (found by its key), or None
        if the processor has none. The whole request, not the key alone: a processor may need
        the operation and the authorization to find it (a real one keeps no index by our key)."""
        ...


DEFAULT_ATTEMPTS: Final = 3


def settle_call(
    call: Callable[[], Result], lookup: Callable[[], Decided | None], attempts: int = DEFAULT_ATTEMPTS
) -> Result:
    """Make ``call`` until it is decided: an unknown outcome is looked up before any retry (the
    operation may have happened); a retryable error is retried with the same key. After
    ``attempts`` the last undecided result is returned, for the caller to retry later."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    result: Result = ProcessorError(Operation.AUTHORIZE, "", "not called")
    for _ in range(attempts):
        result = call()
        if isinstance(result, UnknownOutcome):
            found = lookup()
            if found is not None:
                return found
            continue
        if isinstance(result, ProcessorError) and result.retryable:
            continue
        return result
    return result


def settle(processor: CardProcessor, request: Request, attempts: int = DEFAULT_ATTEMPTS) -> Result:
    """`settle_call` for one request: its operation, looked up by the same request."""
    call: Callable[[], Result]
    match request:
        case AuthorizeRequest():
            call = lambda: processor.authorize(request)  # noqa: E731
        case CaptureRequest():
            call = lambda: processor.capture(request)  # noqa: E731
        case VoidRequest():
            call = lambda: processor.void(request)  # noqa: E731
        case RefundRequest():
            call = lambda: processor.refund(request)  # noqa: E731
    return settle_call(call, lambda: processor.lookup(request), attempts)


class NoticeKind(StrEnum):
    OPENED = "opened"  # the network took the payment back for the cardholder, pending its decision
    WON = "won"  # decided for the platform: the money comes back
    LOST = "lost"  # decided for the cardholder: the money stays with the card


@dataclass(frozen=True)
class DisputeNotice:
    """One thing the processor tells of a chargeback, due at ``due_at`` (its time at the network)."""

    dispute_id: str
    kind: NoticeKind
    due_at: datetime
    payment_id: str
    authorization_id: str
    amount_cents: int
    currency: str
    reason: str

    @property
    def notice_id(self) -> str:
        return f"{self.dispute_id}#{self.kind}"


class DisputeFeed(Protocol):
    """The processor's chargeback notices: those due by a time (the oldest ``limit`` of them),
    each acknowledged once relayed."""

    def due_notices(self, as_of: datetime, limit: int | None = None) -> list[DisputeNotice]: ...
    def acknowledge(self, notice: DisputeNotice) -> None: ...
