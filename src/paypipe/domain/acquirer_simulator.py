"""A simulated acquirer behind the card processor port, and the daily settlement report it writes.

Deterministic: a test card in `TEST_CARDS` always gets its answer (the numbers are the ones card
processors publish for testing, plus one of ours that never answers); any other card is approved.
The disputed cards are captured, then charged back by the network a day later (a chargeback line
with the network's dispute fee, and an ``opened`` notice) and decided two days after that: lost
(a ``lost`` notice), or won (a ``won`` notice and a chargeback reversal line giving the captured
amount back; the dispute fee stays charged).
In a fault run, `Faults` makes a seeded share of calls fail with a retryable error or time out
(half of the timeouts after the operation happened, as a lost reply does), drawn from a SHA-256
of the seed, the key and the attempt, never `random`. A key asked again returns the operation's
first outcome; the same key with other content is refused.

Pure: no I/O; the clock (for the settlement day) is passed in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Final

from paypipe.domain.card_processing import (
    Approved,
    AuthorizeRequest,
    CaptureRequest,
    Decided,
    DeclineCode,
    Declined,
    DisputeNotice,
    NoticeKind,
    Operation,
    ProcessorError,
    RefundRequest,
    Request,
    Result,
    UnknownOutcome,
    VoidRequest,
)
from paypipe.domain.settlement import FeeSchedule, LineKind, SettlementLine


class Behaviour(Enum):
    TIMEOUT = "always times out"
    PROCESSING_ERROR = "always a retryable processing error"
    CHARGEBACK = "approved, then charged back as fraudulent and lost"
    CHARGEBACK_WON = "approved, then charged back as not received and won by the platform"


# fmt: off
TEST_CARDS: Final[dict[str, DeclineCode | Behaviour]] = {
    "4000000000000002": DeclineCode.DO_NOT_HONOR,
    "4000000000009995": DeclineCode.INSUFFICIENT_FUNDS,
    "4000000000000069": DeclineCode.EXPIRED_CARD,
    "4000000000000127": DeclineCode.INCORRECT_CVC,
    "4000000000009987": DeclineCode.LOST_OR_STOLEN,  # lost
    "4000000000009979": DeclineCode.LOST_OR_STOLEN,  # stolen
    "4000000000000119": Behaviour.PROCESSING_ERROR,
    "4000000000008005": Behaviour.TIMEOUT,
    "4000000000000259": Behaviour.CHARGEBACK,
    "4000000000002685": Behaviour.CHARGEBACK_WON,
}
# fmt: on
CHARGEBACK_OPENS_AFTER: Final = timedelta(days=1)  # after the capture
CHARGEBACK_DECIDED_AFTER: Final = timedelta(days=3)
CHARGEBACK_REASONS: Final = {
    Behaviour.CHARGEBACK: "fraudulent",
    Behaviour.CHARGEBACK_WON: "product_not_received",
}


@dataclass(frozen=True)
class Faults:
    """Seeded transient failures: ``error_rate`` retryable errors, ``timeout_rate`` timeouts."""

    seed: int = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0

    def draw(self, key: str, attempt: int) -> float:
        digest = hashlib.sha256(f"{self.seed}:{key}:{attempt}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Authorization:
    reference: str
    payment_id: str
    currency: str
    authorized: int
    captured: int = 0
    refunded: int = 0
    voided: bool = False
    disputed: bool = False  # the card will be charged back once captured
    dispute_won: bool = False  # and the platform wins the chargeback


@dataclass
class SimulatorState:
    """What the acquirer remembers: each key's request fingerprint and decided outcome, the
    attempts per key (fault draws), the authorizations, and the settlement lines and chargeback
    notices booked (an adapter that stores them apart keeps here only those of the call)."""

    decided: dict[str, tuple[str, Decided]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    authorizations: dict[str, Authorization] = field(default_factory=dict)
    lines: list[SettlementLine] = field(default_factory=list)
    notices: list[DisputeNotice] = field(default_factory=list)


def request_fingerprint(request: Request) -> str:
    """A SHA-256 of the request's fields, telling a key's reuse with other content. Of a card, only
    what may be kept in clear (first six, last four, expiry): an unkeyed hash of a card number can
    be reversed by trying the numbers its BIN and last four leave, and nothing of a CVC is kept."""
    fields = asdict(request)
    if isinstance(request, AuthorizeRequest):
        card = request.card
        fields["card"] = {
            "bin6": card.pan[:6],
            "last4": card.pan[-4:],
            "expiry": [card.expiry_month, card.expiry_year],
        }
    canonical = json.dumps({"type": type(request).__name__, **fields}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def authorization_reference(authorize_key: str) -> str:
    """The reference the simulator gives the authorization asked for under ``authorize_key``."""
    return f"sim_auth_{hashlib.sha256(authorize_key.encode()).hexdigest()[:20]}"


@dataclass
class SimulatedAcquirer:
    """The card processor port answered from ``state`` (in memory unless an adapter loads and
    saves it; see the module's docstring)."""

    now: Callable[[], datetime]
    faults: Faults = Faults()
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    state: SimulatorState = field(default_factory=SimulatorState)

    def authorize(self, request: AuthorizeRequest) -> Result:
        return self._call(Operation.AUTHORIZE, request.key, request, lambda: self._authorize(request))

    def capture(self, request: CaptureRequest) -> Result:
        return self._call(Operation.CAPTURE, request.key, request, lambda: self._capture(request))

    def void(self, request: VoidRequest) -> Result:
        return self._call(Operation.VOID, request.key, request, lambda: self._void(request))

    def refund(self, request: RefundRequest) -> Result:
        return self._call(Operation.REFUND, request.key, request, lambda: self._refund(request))

    def lookup(self, request: Request) -> Decided | None:
        found = self.state.decided.get(request.key)
        return None if found is None else found[1]

    def settlement_lines(self, day: date) -> list[SettlementLine]:
        """The day's report lines, in the order the operations happened."""
        return [line for line in self.state.lines if line.day == day]

    def settlement_days(self) -> list[date]:
        return sorted({line.day for line in self.state.lines})

    def due_notices(self, as_of: datetime, limit: int | None = None) -> list[DisputeNotice]:
        """The chargeback notices due by ``as_of`` and not acknowledged, oldest first."""
        due = sorted((n for n in self.state.notices if n.due_at <= as_of), key=lambda n: n.due_at)
        return due[:limit]

    def acknowledge(self, notice: DisputeNotice) -> None:
        self.state.notices = [n for n in self.state.notices if n.notice_id != notice.notice_id]

    def _call(self, operation: Operation, key: str, request: Request, apply: Callable[[], Decided]) -> Result:
        fingerprint = request_fingerprint(request)
        known = self.state.decided.get(key)
        if known is not None:
            if known[0] != fingerprint:
                return ProcessorError(operation, key, "idempotency key reused with other parameters", False)
            return known[1]
        attempt = self.state.attempts.get(key, 0) + 1
        self.state.attempts[key] = attempt
        failure, applied = self._injected(operation, key, request, attempt)
        if not applied:
            assert failure is not None
            return failure
        decided = apply()
        self.state.decided[key] = (fingerprint, decided)
        return failure or decided

    def _injected(
        self, operation: Operation, key: str, request: Request, attempt: int
    ) -> tuple[ProcessorError | UnknownOutcome | None, bool]:
        """The failure this call gets, if any, and whether the operation happens all the same
        (a lost reply: the processor did it, the answer never came back)."""
        pan = request.card.pan if isinstance(request, AuthorizeRequest) else ""
        behaviour = TEST_CARDS.get(pan)
        if behaviour is Behaviour.TIMEOUT:
            return UnknownOutcome(operation, key), False
        if behaviour is Behaviour.PROCESSING_ERROR:
            return ProcessorError(operation, key, "processing error"), False
        draw = self.faults.draw(key, attempt)
        if draw < self.faults.error_rate:
            return ProcessorError(operation, key, "injected processor error"), False
        timeout_cut = self.faults.error_rate + self.faults.timeout_rate
        if draw < timeout_cut:
            lost_reply = draw >= self.faults.error_rate + self.faults.timeout_rate / 2
            return UnknownOutcome(operation, key), lost_reply
        return None, True

    def _authorize(self, request: AuthorizeRequest) -> Decided:
        op = Operation.AUTHORIZE
        code = TEST_CARDS.get(request.card.pan)
        if isinstance(code, DeclineCode):
            return Declined(op, request.key, code, f"the card was declined ({code})")
        if request.amount_cents <= 0:
            return Declined(op, request.key, DeclineCode.INVALID_REQUEST, "amount must be positive")
        reference = authorization_reference(request.key)
        self.state.authorizations[reference] = Authorization(
            reference,
            request.payment_id,
            request.currency,
            request.amount_cents,
            disputed=code in CHARGEBACK_REASONS,
            dispute_won=code is Behaviour.CHARGEBACK_WON,
        )
        return Approved(op, request.key, reference, request.amount_cents, request.currency)

    def _capture(self, request: CaptureRequest) -> Decided:
        op = Operation.CAPTURE
        auth = self.state.authorizations.get(request.authorization_id)
        problem = _capture_problem(auth, request.amount_cents)
        if auth is None or problem:
            return Declined(op, request.key, DeclineCode.INVALID_REQUEST, problem or "no such authorization")
        auth.captured = request.amount_cents
        self._book(LineKind.CAPTURE, auth, request.amount_cents, self.fees.fee(request.amount_cents))
        if auth.disputed:
            self._charge_back(auth)
        return Approved(op, request.key, auth.reference, request.amount_cents, auth.currency)

    def _void(self, request: VoidRequest) -> Decided:
        op = Operation.VOID
        auth = self.state.authorizations.get(request.authorization_id)
        if auth is None or auth.captured:
            problem = "no such authorization" if auth is None else "the authorization is captured: refund it"
            return Declined(op, request.key, DeclineCode.INVALID_REQUEST, problem)
        auth.voided = True
        return Approved(op, request.key, auth.reference, auth.authorized, auth.currency)

    def _refund(self, request: RefundRequest) -> Decided:
        op = Operation.REFUND
        auth = self.state.authorizations.get(request.authorization_id)
        refundable = 0 if auth is None else auth.captured - auth.refunded
        if auth is None or not 0 < request.amount_cents <= refundable:
            problem = "no such authorization" if auth is None else f"refundable is {refundable}"
            return Declined(op, request.key, DeclineCode.INVALID_REQUEST, problem)
        auth.refunded += request.amount_cents
        self._book(LineKind.REFUND, auth, request.amount_cents, 0)
        reference = f"sim_refund_{hashlib.sha256(request.key.encode()).hexdigest()[:20]}"
        return Approved(op, request.key, reference, request.amount_cents, auth.currency)

    def _charge_back(self, auth: Authorization) -> None:
        """The cardholder disputes the capture at the network, which takes it back and decides."""
        captured_at = self.now()
        opened_at, decided_at = captured_at + CHARGEBACK_OPENS_AFTER, captured_at + CHARGEBACK_DECIDED_AFTER
        dispute_id = f"sim_dp_{auth.reference.removeprefix('sim_auth_')}"
        behaviour = Behaviour.CHARGEBACK_WON if auth.dispute_won else Behaviour.CHARGEBACK
        for kind, due_at in (
            (NoticeKind.OPENED, opened_at),
            (NoticeKind.WON if auth.dispute_won else NoticeKind.LOST, decided_at),
        ):
            self.state.notices.append(
                DisputeNotice(
                    dispute_id,
                    kind,
                    due_at,
                    auth.payment_id,
                    auth.reference,
                    auth.captured,
                    auth.currency,
                    CHARGEBACK_REASONS[behaviour],
                )
            )
        self._book(LineKind.CHARGEBACK, auth, auth.captured, self.fees.chargeback_minor, opened_at.date())
        if auth.dispute_won:
            self._book(LineKind.CHARGEBACK_REVERSAL, auth, auth.captured, 0, decided_at.date())

    def _book(
        self, kind: LineKind, auth: Authorization, amount: int, fee: int, day: date | None = None
    ) -> None:
        self.state.lines.append(
            SettlementLine(
                day or self.now().date(), kind, auth.reference, auth.payment_id, auth.currency, amount, fee
            )
        )


def _capture_problem(auth: Authorization | None, amount: int) -> str:
    if auth is None:
        return "no such authorization"
    if auth.voided:
        return "the authorization is voided"
    if auth.captured:
        return "the authorization is already captured"
    if not 0 < amount <= auth.authorized:
        return f"capture must be 1..{auth.authorized}"
    return ""
