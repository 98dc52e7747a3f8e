"""Double-entry escrow ledger: the pure, deterministic core.

Sign convention: an account balance is ``credits - debits`` in integer cents. Every
transfer is balanced within one currency, so the balances of a currency always sum
to 0. Card clearing is debited when a card payment is captured; its negative
balance is the amount receivable from the card network, and it is the only kind of
account allowed below zero. All other balances are funds the platform holds for
someone: escrow (held), provider (released, not yet paid out), customer (refunds owed
back to the customer) and settlement (sent out by ACH).

A hold moves card clearing -> escrow and then resolves exactly once: release (escrow
-> provider), partial release (escrow -> provider + customer), refund (escrow ->
customer) or expiry release (escrow -> provider, once ``hold_until`` has passed and
the hold is not frozen). Commands on an unfrozen hold dated at or after
``hold_until`` are refused as expired, so the outcome does not depend on when the
expiry sweep runs. A payout moves provider -> settlement once per payment.

Transfer ids derive from the payment id and act as idempotency keys: a repeated
command with the same body is a ``Duplicate`` (no second effect) and one with a
different body is rejected as an ``IDEMPOTENCY_CONFLICT``. Timestamps are metadata
and not part of the compared body.

Every command takes a ``LedgerState`` and returns an ``Outcome``; nothing is mutated.
The state may be partial (only the items of one payment), which is how the storage
adapter uses it: ``Applied.hold`` and ``Applied.transfers`` are the write set.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

EXPIRY_RESOLUTION_ID = "hold-expiry"

_CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")


class AccountKind(StrEnum):
    CUSTOMER = "customer"
    PROVIDER = "provider"
    ESCROW = "escrow"
    SETTLEMENT = "settlement"
    CARD_CLEARING = "card_clearing"


NEGATIVE_ALLOWED_KINDS = frozenset({AccountKind.CARD_CLEARING})
_OWNED_KINDS = frozenset({AccountKind.CUSTOMER, AccountKind.PROVIDER})


def _require_currency(currency: str) -> None:
    if not _CURRENCY_PATTERN.fullmatch(currency):
        raise ValueError(f"currency must be an ISO 4217 code, got {currency!r}")


def _require_aware(name: str, moment: datetime) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True, slots=True, order=True)
class AccountId:
    kind: AccountKind
    currency: str
    owner: str = ""

    def __post_init__(self) -> None:
        _require_currency(self.currency)
        if (self.kind in _OWNED_KINDS) != bool(self.owner):
            raise ValueError(
                f"{self.kind} accounts {'need' if self.kind in _OWNED_KINDS else 'take no'} owner"
            )

    @property
    def may_go_negative(self) -> bool:
        return self.kind in NEGATIVE_ALLOWED_KINDS

    def __str__(self) -> str:
        owner = f":{self.owner}" if self.owner else ""
        return f"{self.kind}{owner}:{self.currency}"

    @classmethod
    def customer(cls, customer_id: str, currency: str) -> "AccountId":
        return cls(AccountKind.CUSTOMER, currency, customer_id)

    @classmethod
    def provider(cls, provider_id: str, currency: str) -> "AccountId":
        return cls(AccountKind.PROVIDER, currency, provider_id)

    @classmethod
    def escrow(cls, currency: str) -> "AccountId":
        return cls(AccountKind.ESCROW, currency)

    @classmethod
    def settlement(cls, currency: str) -> "AccountId":
        return cls(AccountKind.SETTLEMENT, currency)

    @classmethod
    def card_clearing(cls, currency: str) -> "AccountId":
        return cls(AccountKind.CARD_CLEARING, currency)


def payment_accounts(customer_id: str, provider_id: str, currency: str) -> tuple[AccountId, ...]:
    """Every account a payment's transfers can touch."""
    return (
        AccountId.card_clearing(currency),
        AccountId.escrow(currency),
        AccountId.customer(customer_id, currency),
        AccountId.provider(provider_id, currency),
        AccountId.settlement(currency),
    )


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class Posting:
    account: AccountId
    side: Side
    amount_cents: int

    def __post_init__(self) -> None:
        if self.amount_cents <= 0:
            raise ValueError(f"posting amount must be positive, got {self.amount_cents}")

    @property
    def signed_cents(self) -> int:
        return self.amount_cents if self.side is Side.CREDIT else -self.amount_cents


class TransferKind(StrEnum):
    HOLD = "hold"
    RELEASE = "release"
    PARTIAL_RELEASE = "partial_release"
    REFUND = "refund"
    EXPIRY_RELEASE = "expiry_release"
    PAYOUT = "payout"


@dataclass(frozen=True, slots=True)
class Transfer:
    transfer_id: str
    kind: TransferKind
    payment_id: str
    currency: str
    postings: tuple[Posting, ...]
    at: datetime
    reference: str | None = None  # resolution id or payout reference

    def __post_init__(self) -> None:
        _require_currency(self.currency)
        _require_aware("at", self.at)
        if not self.postings:
            raise ValueError("a transfer needs postings")
        if any(p.account.currency != self.currency for p in self.postings):
            raise ValueError(f"transfer {self.transfer_id} mixes currencies")
        if sum(p.signed_cents for p in self.postings) != 0:
            raise ValueError(f"transfer {self.transfer_id} is unbalanced")

    def same_body(self, other: "Transfer") -> bool:
        return replace(self, at=other.at) == other


def hold_transfer_id(payment_id: str) -> str:
    return f"{payment_id}:hold"


def resolution_transfer_id(payment_id: str) -> str:
    return f"{payment_id}:resolution"


def payout_transfer_id(payment_id: str) -> str:
    return f"{payment_id}:payout"


class HoldStatus(StrEnum):
    HELD = "HELD"
    FROZEN = "FROZEN"
    RELEASED = "RELEASED"
    PARTIALLY_RELEASED = "PARTIALLY_RELEASED"
    REFUNDED = "REFUNDED"
    EXPIRED_RELEASED = "EXPIRED_RELEASED"


UNRESOLVED_STATUSES = frozenset({HoldStatus.HELD, HoldStatus.FROZEN})

_RESOLUTION_KINDS = {
    HoldStatus.RELEASED: TransferKind.RELEASE,
    HoldStatus.PARTIALLY_RELEASED: TransferKind.PARTIAL_RELEASE,
    HoldStatus.REFUNDED: TransferKind.REFUND,
    HoldStatus.EXPIRED_RELEASED: TransferKind.EXPIRY_RELEASE,
}


@dataclass(frozen=True, slots=True)
class HoldRequest:
    payment_id: str
    customer_id: str
    provider_id: str
    amount_cents: int
    currency: str
    hold_until: datetime
    held_at: datetime


@dataclass(frozen=True, slots=True)
class Hold:
    payment_id: str
    customer_id: str
    provider_id: str
    amount_cents: int
    currency: str
    hold_until: datetime
    held_at: datetime
    status: HoldStatus = HoldStatus.HELD
    version: int = 1  # bumped on every change; the store's optimistic lock
    open_disputes: frozenset[str] = frozenset()
    closed_disputes: frozenset[str] = frozenset()
    resolution_id: str | None = None
    resolved_at: datetime | None = None
    released_cents: int = 0
    refunded_cents: int = 0
    payout_ref: str | None = None
    paid_out_cents: int = 0
    paid_out_at: datetime | None = None

    @property
    def is_resolved(self) -> bool:
        return self.status not in UNRESOLVED_STATUSES

    def is_due(self, as_of: datetime) -> bool:
        return self.status is HoldStatus.HELD and self.hold_until <= as_of

    @property
    def accounts(self) -> tuple[AccountId, ...]:
        return payment_accounts(self.customer_id, self.provider_id, self.currency)


@dataclass(frozen=True, slots=True)
class LedgerState:
    holds: Mapping[str, Hold] = field(default_factory=dict)
    balances: Mapping[AccountId, int] = field(default_factory=dict)
    transfers: Mapping[str, Transfer] = field(default_factory=dict)

    def balance(self, account: AccountId) -> int:
        return self.balances.get(account, 0)

    def totals_by_currency(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for account, cents in self.balances.items():
            totals[account.currency] = totals.get(account.currency, 0) + cents
        return totals


class Rejection(StrEnum):
    INVALID_REQUEST = "INVALID_REQUEST"
    NOT_FOUND = "NOT_FOUND"  # the hold may not have arrived yet: retry later
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    ALREADY_RESOLVED = "ALREADY_RESOLVED"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    FROZEN = "FROZEN"
    NOT_DUE = "NOT_DUE"
    NOT_RELEASED = "NOT_RELEASED"
    ALREADY_PAID_OUT = "ALREADY_PAID_OUT"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"


@dataclass(frozen=True, slots=True)
class Applied:
    state: LedgerState
    hold: Hold
    transfers: tuple[Transfer, ...]

    @property
    def expected_hold_version(self) -> int:
        """Version the hold must still have for this change to apply (0: must not exist)."""
        return self.hold.version - 1


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The command was already applied; carries the original result."""

    hold: Hold
    transfers: tuple[Transfer, ...]


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Rejection
    message: str

    @property
    def retryable(self) -> bool:
        return self.reason is Rejection.NOT_FOUND


type Outcome = Applied | Duplicate | Rejected


@dataclass(frozen=True, slots=True)
class ExpirySweep:
    state: LedgerState
    outcomes: tuple[Applied | Rejected, ...]


def balance_deltas(transfers: Iterable[Transfer]) -> dict[AccountId, int]:
    deltas: dict[AccountId, int] = {}
    for transfer in transfers:
        for posting in transfer.postings:
            deltas[posting.account] = deltas.get(posting.account, 0) + posting.signed_cents
    return {account: delta for account, delta in deltas.items() if delta}


def _commit(state: LedgerState, hold: Hold, transfers: tuple[Transfer, ...]) -> Applied | Rejected:
    for transfer in transfers:
        if transfer.transfer_id in state.transfers:
            return Rejected(Rejection.IDEMPOTENCY_CONFLICT, f"transfer {transfer.transfer_id} already exists")
    balances = dict(state.balances)
    for account, delta in sorted(balance_deltas(transfers).items()):
        new_balance = balances.get(account, 0) + delta
        if new_balance < 0 and not account.may_go_negative:
            return Rejected(
                Rejection.INSUFFICIENT_FUNDS,
                f"{account} would go to {new_balance} cents; it may not go negative",
            )
        balances[account] = new_balance
    return Applied(
        LedgerState(
            holds={**state.holds, hold.payment_id: hold},
            balances=balances,
            transfers={**state.transfers, **{t.transfer_id: t for t in transfers}},
        ),
        hold,
        transfers,
    )


def _existing(state: LedgerState, transfer_id: str) -> tuple[Transfer, ...]:
    transfer = state.transfers.get(transfer_id)
    return () if transfer is None else (transfer,)


def _not_found(payment_id: str) -> Rejected:
    return Rejected(Rejection.NOT_FOUND, f"no hold for payment {payment_id}")


def _hold_request_problem(request: HoldRequest) -> str | None:
    if not (request.payment_id and request.customer_id and request.provider_id):
        return "payment, customer and provider ids are required"
    if not _CURRENCY_PATTERN.fullmatch(request.currency):
        return f"currency must be an ISO 4217 code, got {request.currency!r}"
    if request.amount_cents <= 0:
        return f"amount must be positive, got {request.amount_cents}"
    if request.hold_until.utcoffset() is None or request.held_at.utcoffset() is None:
        return "hold_until and held_at must be timezone-aware"
    if request.hold_until <= request.held_at:
        return "hold_until must be after held_at"
    return None


def place_hold(state: LedgerState, request: HoldRequest) -> Outcome:
    """Capture the card payment into escrow until ``hold_until``."""
    problem = _hold_request_problem(request)
    if problem is not None:
        return Rejected(Rejection.INVALID_REQUEST, problem)
    existing = state.holds.get(request.payment_id)
    if existing is not None:
        same_terms = (
            existing.customer_id,
            existing.provider_id,
            existing.amount_cents,
            existing.currency,
            existing.hold_until,
        ) == (
            request.customer_id,
            request.provider_id,
            request.amount_cents,
            request.currency,
            request.hold_until,
        )
        if same_terms:
            return Duplicate(existing, _existing(state, hold_transfer_id(request.payment_id)))
        return Rejected(
            Rejection.IDEMPOTENCY_CONFLICT, f"payment {request.payment_id} was already held with other terms"
        )
    hold = Hold(
        payment_id=request.payment_id,
        customer_id=request.customer_id,
        provider_id=request.provider_id,
        amount_cents=request.amount_cents,
        currency=request.currency,
        hold_until=request.hold_until,
        held_at=request.held_at,
    )
    transfer = Transfer(
        transfer_id=hold_transfer_id(request.payment_id),
        kind=TransferKind.HOLD,
        payment_id=request.payment_id,
        currency=request.currency,
        postings=(
            Posting(AccountId.card_clearing(request.currency), Side.DEBIT, request.amount_cents),
            Posting(AccountId.escrow(request.currency), Side.CREDIT, request.amount_cents),
        ),
        at=request.held_at,
    )
    return _commit(state, hold, (transfer,))


def _settled_resolution(
    state: LedgerState, hold: Hold, status: HoldStatus, released_cents: int, resolution_id: str
) -> Duplicate | Rejected | None:
    """The answer for a hold that is already resolved, or None if it is still open."""
    if not hold.is_resolved:
        return None
    if hold.resolution_id != resolution_id:
        return Rejected(
            Rejection.ALREADY_RESOLVED,
            f"hold {hold.payment_id} was already resolved as {hold.status} by {hold.resolution_id}",
        )
    if (hold.status, hold.released_cents) != (status, released_cents):
        return Rejected(
            Rejection.IDEMPOTENCY_CONFLICT,
            f"resolution {resolution_id} of hold {hold.payment_id} was {hold.status} "
            f"releasing {hold.released_cents} cents",
        )
    return Duplicate(hold, _existing(state, resolution_transfer_id(hold.payment_id)))


def _expired_problem(hold: Hold, at: datetime) -> Rejected | None:
    if hold.status is HoldStatus.HELD and at >= hold.hold_until:
        return Rejected(
            Rejection.HOLD_EXPIRED,
            f"hold {hold.payment_id} expired at {hold.hold_until.isoformat()}; the expiry sweep releases it",
        )
    return None


def _resolve(
    state: LedgerState,
    hold: Hold,
    status: HoldStatus,
    *,
    released_cents: int,
    resolution_id: str,
    at: datetime,
) -> Applied | Rejected:
    refunded_cents = hold.amount_cents - released_cents
    postings = [Posting(AccountId.escrow(hold.currency), Side.DEBIT, hold.amount_cents)]
    if released_cents:
        postings.append(
            Posting(AccountId.provider(hold.provider_id, hold.currency), Side.CREDIT, released_cents)
        )
    if refunded_cents:
        postings.append(
            Posting(AccountId.customer(hold.customer_id, hold.currency), Side.CREDIT, refunded_cents)
        )
    transfer = Transfer(
        transfer_id=resolution_transfer_id(hold.payment_id),
        kind=_RESOLUTION_KINDS[status],
        payment_id=hold.payment_id,
        currency=hold.currency,
        postings=tuple(postings),
        at=at,
        reference=resolution_id,
    )
    resolved = replace(
        hold,
        status=status,
        version=hold.version + 1,
        resolution_id=resolution_id,
        resolved_at=at,
        released_cents=released_cents,
        refunded_cents=refunded_cents,
    )
    return _commit(state, resolved, (transfer,))


def _resolution_id_problem(resolution_id: str) -> Rejected | None:
    if not resolution_id or resolution_id == EXPIRY_RESOLUTION_ID:
        return Rejected(Rejection.INVALID_REQUEST, f"invalid resolution id {resolution_id!r}")
    return None


def release(
    state: LedgerState, payment_id: str, *, amount_cents: int | None = None, resolution_id: str, at: datetime
) -> Outcome:
    """Release the hold to the provider; a partial amount refunds the rest to the customer."""
    _require_aware("at", at)
    if (problem := _resolution_id_problem(resolution_id)) is not None:
        return problem
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    released = hold.amount_cents if amount_cents is None else amount_cents
    status = HoldStatus.RELEASED if released == hold.amount_cents else HoldStatus.PARTIALLY_RELEASED
    if (settled := _settled_resolution(state, hold, status, released, resolution_id)) is not None:
        return settled
    if not 0 < released <= hold.amount_cents:
        return Rejected(
            Rejection.INVALID_REQUEST,
            f"release amount must be in 1..{hold.amount_cents} cents, got {released}",
        )
    if (expired := _expired_problem(hold, at)) is not None:
        return expired
    return _resolve(state, hold, status, released_cents=released, resolution_id=resolution_id, at=at)


def refund(state: LedgerState, payment_id: str, *, resolution_id: str, at: datetime) -> Outcome:
    """Void the hold: the full amount goes back to the customer."""
    _require_aware("at", at)
    if (problem := _resolution_id_problem(resolution_id)) is not None:
        return problem
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    if (settled := _settled_resolution(state, hold, HoldStatus.REFUNDED, 0, resolution_id)) is not None:
        return settled
    if (expired := _expired_problem(hold, at)) is not None:
        return expired
    return _resolve(state, hold, HoldStatus.REFUNDED, released_cents=0, resolution_id=resolution_id, at=at)


def expire(state: LedgerState, payment_id: str, *, as_of: datetime) -> Outcome:
    """Release a due, unfrozen hold to the provider."""
    _require_aware("as_of", as_of)
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    settled = _settled_resolution(
        state, hold, HoldStatus.EXPIRED_RELEASED, hold.amount_cents, EXPIRY_RESOLUTION_ID
    )
    if settled is not None:
        return settled
    if hold.status is HoldStatus.FROZEN:
        return Rejected(Rejection.FROZEN, f"hold {payment_id} is frozen by a dispute")
    if hold.hold_until > as_of:
        return Rejected(Rejection.NOT_DUE, f"hold {payment_id} is held until {hold.hold_until.isoformat()}")
    return _resolve(
        state,
        hold,
        HoldStatus.EXPIRED_RELEASED,
        released_cents=hold.amount_cents,
        resolution_id=EXPIRY_RESOLUTION_ID,
        at=as_of,
    )


def expire_due(state: LedgerState, as_of: datetime) -> ExpirySweep:
    """Expire every due hold, oldest first."""
    due = sorted(
        (hold for hold in state.holds.values() if hold.is_due(as_of)),
        key=lambda hold: (hold.hold_until, hold.payment_id),
    )
    outcomes: list[Applied | Rejected] = []
    for hold in due:
        outcome = expire(state, hold.payment_id, as_of=as_of)
        if isinstance(outcome, Applied):
            state = outcome.state
        if not isinstance(outcome, Duplicate):
            outcomes.append(outcome)
    return ExpirySweep(state, tuple(outcomes))


def _update_hold(state: LedgerState, hold: Hold) -> Applied | Rejected:
    return _commit(state, replace(hold, version=hold.version + 1), ())


def freeze(state: LedgerState, payment_id: str, *, dispute_id: str, at: datetime) -> Outcome:
    """Open a dispute: the hold cannot expire until it is closed or the hold is resolved."""
    _require_aware("at", at)
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    if dispute_id in hold.open_disputes or dispute_id in hold.closed_disputes:
        return Duplicate(hold, ())  # already open, or closed by an earlier-delivered unfreeze
    if hold.is_resolved:
        return Rejected(Rejection.ALREADY_RESOLVED, f"hold {payment_id} is already {hold.status}")
    if (expired := _expired_problem(hold, at)) is not None:
        return expired
    return _update_hold(
        state, replace(hold, status=HoldStatus.FROZEN, open_disputes=hold.open_disputes | {dispute_id})
    )


def unfreeze(state: LedgerState, payment_id: str, *, dispute_id: str, at: datetime) -> Outcome:
    """Close a dispute without resolving the hold; it thaws once no dispute is open."""
    _require_aware("at", at)
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    if dispute_id in hold.closed_disputes:
        return Duplicate(hold, ())
    if hold.is_resolved:
        return Rejected(Rejection.ALREADY_RESOLVED, f"hold {payment_id} is already {hold.status}")
    still_open = hold.open_disputes - {dispute_id}
    return _update_hold(
        state,
        replace(
            hold,
            status=HoldStatus.FROZEN if still_open else HoldStatus.HELD,
            open_disputes=still_open,
            closed_disputes=hold.closed_disputes | {dispute_id},
        ),
    )


def record_payout(
    state: LedgerState, payment_id: str, *, amount_cents: int, payout_ref: str, at: datetime
) -> Outcome:
    """Record that the provider's released share of a payment was paid out by ACH."""
    _require_aware("at", at)
    if not payout_ref:
        return Rejected(Rejection.INVALID_REQUEST, "payout reference is required")
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    if hold.payout_ref is not None:
        if hold.payout_ref != payout_ref:
            return Rejected(
                Rejection.ALREADY_PAID_OUT, f"payment {payment_id} was already paid out by {hold.payout_ref}"
            )
        if hold.paid_out_cents != amount_cents:
            return Rejected(
                Rejection.IDEMPOTENCY_CONFLICT,
                f"payout {payout_ref} of payment {payment_id} was {hold.paid_out_cents} cents",
            )
        return Duplicate(hold, _existing(state, payout_transfer_id(payment_id)))
    if hold.released_cents == 0:
        return Rejected(
            Rejection.NOT_RELEASED, f"nothing of payment {payment_id} is released ({hold.status})"
        )
    if amount_cents != hold.released_cents:
        return Rejected(
            Rejection.INVALID_REQUEST,
            f"payout must equal the released {hold.released_cents} cents, got {amount_cents}",
        )
    transfer = Transfer(
        transfer_id=payout_transfer_id(payment_id),
        kind=TransferKind.PAYOUT,
        payment_id=payment_id,
        currency=hold.currency,
        postings=(
            Posting(AccountId.provider(hold.provider_id, hold.currency), Side.DEBIT, amount_cents),
            Posting(AccountId.settlement(hold.currency), Side.CREDIT, amount_cents),
        ),
        at=at,
        reference=payout_ref,
    )
    paid = replace(
        hold, version=hold.version + 1, payout_ref=payout_ref, paid_out_cents=amount_cents, paid_out_at=at
    )
    return _commit(state, paid, (transfer,))
