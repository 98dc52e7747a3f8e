"""Double-entry escrow ledger: the pure, deterministic core.

Sign convention: an account balance is ``credits - debits`` in integer cents. Every
transfer is balanced within one currency, so the balances of a currency always sum
to 0. Card clearing is debited when a card payment is captured; its negative
balance is the amount receivable from the card network. The acquirer's fee on the capture
(``HoldRequest.card_fee_cents``, the contract's) is booked with the hold as the platform's
expense: card fees -> card clearing, so clearing holds what the network will pay and card fees
(negative) what the platform paid for card acceptance. A refund that reaches the card
(``return_to_card``) moves customer -> card clearing: the network nets it against what it pays.
A chargeback (a ``network`` dispute) costs the network's fee when it opens (card fees -> card
clearing); lost, the network has given the card the captured amount back: what the resolution
refunds the customer goes on to the card (customer -> card clearing) and the rest, refunded to
the customer before (a chargeback of a payment already refunded), is the platform's loss
(chargeback losses -> card clearing). A provider's clawback
account is debited when a payout already filed is disputed: its negative balance is
owed by the provider and netted against their next payouts (positive: owed back to
them). These, card fees and chargeback losses are the only kinds of account allowed below zero. All other
balances are funds the platform holds for someone: escrow (held), provider
(released, not yet paid out), customer (refunds owed back to the customer),
disputes (filed payouts under dispute) and settlement (sent out by ACH).

A hold moves card clearing -> escrow and then resolves exactly once: release (escrow
-> provider), partial release (escrow -> provider + customer), refund (escrow ->
customer) or expiry release (escrow -> provider, once ``hold_until`` has passed and
the hold is not frozen). Commands on an unfrozen hold dated at or after
``hold_until`` are refused as expired, so the outcome does not depend on when the
expiry sweep runs. A payout moves provider -> settlement (less what it nets against the
provider's clawback, see ``record_payout``); a payment has at most one payout outstanding.

The receiving bank may return a payout's ACH credit (``return_payout``, reason codes
R01-R85). The return undoes that payout with its mirror image (settlement -> provider, and
what it netted back to clawback), so the provider is owed the released share again and the
payment may be paid out once more under a new reference. Payout transfers are numbered by
attempt: ``<payment>:payout`` for the first, ``<payment>:payout:<n>`` after ``n - 1``
returns; a return is ``<payment>:payout-return:<trace number>``, its reference the payout it
undoes. The ledger does not know trace numbers (a payout is claimed before its file is
built; its reference is the batch), so it takes a return to be of the outstanding payout:
the caller matches the trace to the payout's entry first. A trace already returned is a
``Duplicate`` (another return code: ``IDEMPOTENCY_CONFLICT``); a return is refused when
nothing was filed (``NOT_PAID_OUT``: no payout, or one netted entirely, which has no entry)
or the last payout was already returned and not yet paid out again (``ALREADY_RETURNED``).

Disputes (``open_dispute`` / ``resolve_dispute``) act by the phase the payment was in
when one opened:
- ``escrow``: before the hold resolved. The hold is frozen; only the resolution of its
  last open escrow dispute resolves it (refund if any of them ended in refund, else
  release). Release, refund and expiry of a frozen hold are refused.
- ``payout``: after release (or after ``hold_until``), before the payout was filed. The
  payout is held back; when the last such dispute ends, a refund reverses the release
  (provider -> customer) and the payout never happens, a release lets it go.
- ``clawback``: after the payout was filed. The released amount becomes a receivable
  from the provider (clawback -> disputes); when the last such dispute ends it goes to
  the customer (refund) or the receivable is cancelled (release).
After a returned payout the money is back at the provider, so a dispute opened then is in
the ``payout`` phase again (it holds the new payout back; a refund reverses the release),
unless a clawback episode is still open: the dispute joins it, and the new payout nets the
clawback's receivable, so the customer is refunded once and the provider not paid twice.
A dispute id is opened once and resolved once; resolving an unknown dispute, or one
already resolved with another outcome, is refused.

Time never runs backwards for a payment: a command dated before the hold's last change
takes effect at that change's time, so ``released_at >= held_at`` and a freeze is never
dated before the dispute that caused it.

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
from datetime import datetime, timedelta
from enum import StrEnum

EXPIRY_RESOLUTION_ID = "hold-expiry"
DISPUTE_RESOLUTION_PREFIX = "dispute:"

_CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")
_RETURN_CODE_PATTERN = re.compile(r"R(0[1-9]|[1-7][0-9]|8[0-5])")
_TRACE_NUMBER_PATTERN = re.compile(r"[0-9]{15}")


class AccountKind(StrEnum):
    CUSTOMER = "customer"
    PROVIDER = "provider"
    CLAWBACK = "clawback"
    ESCROW = "escrow"
    DISPUTES = "disputes"
    SETTLEMENT = "settlement"
    CARD_CLEARING = "card_clearing"
    CARD_FEES = "card_fees"  # the platform's expense: the acquirer's fees on its captures
    CHARGEBACK_LOSSES = "chargeback_losses"  # the platform's expense: chargebacks of refunded payments


NEGATIVE_ALLOWED_KINDS = frozenset(
    {AccountKind.CARD_CLEARING, AccountKind.CLAWBACK, AccountKind.CARD_FEES, AccountKind.CHARGEBACK_LOSSES}
)
_OWNED_KINDS = frozenset({AccountKind.CUSTOMER, AccountKind.PROVIDER, AccountKind.CLAWBACK})


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
    def clawback(cls, provider_id: str, currency: str) -> "AccountId":
        return cls(AccountKind.CLAWBACK, currency, provider_id)

    @classmethod
    def escrow(cls, currency: str) -> "AccountId":
        return cls(AccountKind.ESCROW, currency)

    @classmethod
    def disputes(cls, currency: str) -> "AccountId":
        return cls(AccountKind.DISPUTES, currency)

    @classmethod
    def settlement(cls, currency: str) -> "AccountId":
        return cls(AccountKind.SETTLEMENT, currency)

    @classmethod
    def card_clearing(cls, currency: str) -> "AccountId":
        return cls(AccountKind.CARD_CLEARING, currency)

    @classmethod
    def card_fees(cls, currency: str) -> "AccountId":
        return cls(AccountKind.CARD_FEES, currency)

    @classmethod
    def chargeback_losses(cls, currency: str) -> "AccountId":
        return cls(AccountKind.CHARGEBACK_LOSSES, currency)


def payment_accounts(customer_id: str, provider_id: str, currency: str) -> tuple[AccountId, ...]:
    """Every account a payment's transfers can touch."""
    return (
        AccountId.card_clearing(currency),
        AccountId.escrow(currency),
        AccountId.customer(customer_id, currency),
        AccountId.provider(provider_id, currency),
        AccountId.clawback(provider_id, currency),
        AccountId.disputes(currency),
        AccountId.settlement(currency),
        AccountId.card_fees(currency),
        AccountId.chargeback_losses(currency),
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
    REVERSAL = "reversal"
    CLAWBACK = "clawback"
    CLAWBACK_REFUND = "clawback_refund"
    CLAWBACK_CANCEL = "clawback_cancel"
    PAYOUT_RETURN = "payout_return"
    CARD_FEE = "card_fee"
    CARD_REFUND = "card_refund"  # a refund reached the card (the platform's, or the network's)
    CHARGEBACK_FEE = "chargeback_fee"
    CHARGEBACK_LOSS = "chargeback_loss"


@dataclass(frozen=True, slots=True)
class Transfer:
    transfer_id: str
    kind: TransferKind
    payment_id: str
    currency: str
    postings: tuple[Posting, ...]
    at: datetime
    reference: str | None = None  # resolution id, payout reference or dispute id

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


def card_fee_transfer_id(payment_id: str) -> str:
    return f"{payment_id}:card-fee"


def card_refund_transfer_id(payment_id: str, refund_id: str) -> str:
    return f"{payment_id}:card-refund:{refund_id}"


def chargeback_fee_transfer_id(payment_id: str, dispute_id: str) -> str:
    return f"{payment_id}:chargeback-fee:{dispute_id}"


def chargeback_loss_transfer_id(payment_id: str, dispute_id: str) -> str:
    return f"{payment_id}:chargeback-loss:{dispute_id}"


def resolution_transfer_id(payment_id: str) -> str:
    return f"{payment_id}:resolution"


def payout_transfer_id(payment_id: str, attempt: int = 1) -> str:
    """The id of a payment's ``attempt``-th payout (the first keeps the id it always had)."""
    return f"{payment_id}:payout" if attempt == 1 else f"{payment_id}:payout:{attempt}"


def payout_return_transfer_id(payment_id: str, trace_number: str) -> str:
    return f"{payment_id}:payout-return:{trace_number}"


def reversal_transfer_id(payment_id: str) -> str:
    return f"{payment_id}:reversal"


def clawback_transfer_id(payment_id: str, episode: str) -> str:
    return f"{payment_id}:clawback:{episode}"


def clawback_end_transfer_id(payment_id: str, episode: str) -> str:
    return f"{payment_id}:clawback-end:{episode}"


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


class DisputePhase(StrEnum):
    ESCROW = "escrow"
    PAYOUT = "payout"
    CLAWBACK = "clawback"


class DisputeOutcome(StrEnum):
    RELEASE = "release"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class Dispute:
    dispute_id: str
    phase: DisputePhase
    opened_at: datetime
    episode: str  # the dispute whose opening began this phase's episode (clawbacks book once each)
    outcome: DisputeOutcome | None = None
    closed_at: datetime | None = None
    aged_at: datetime | None = None  # when the sweep signalled it open past its age
    # A chargeback: opened at the card network, which took the money back from the platform and
    # alone decides it; no dispute window applies and a lost one is not refunded at the card again.
    network: bool = False
    # A chargeback of a payment already refunded to the customer: it changes nothing of the hold;
    # lost, the card got its money twice and the platform bears it (chargeback losses).
    after_refund: bool = False

    @property
    def is_open(self) -> bool:
        return self.outcome is None


@dataclass(frozen=True, slots=True)
class ReturnedPayout:
    """A payout whose ACH entry the receiving bank returned, as it stood when it was filed."""

    attempt: int
    payout_ref: str
    trace_number: str
    return_code: str
    paid_out_cents: int
    netted_cents: int
    paid_out_at: datetime
    returned_at: datetime


@dataclass(frozen=True, slots=True)
class PayoutReturn:
    """The receiving bank returned a payout's ACH credit (return reason code R01-R85)."""

    payment_id: str
    return_code: str
    original_trace_number: str  # the trace number of the returned entry
    returned_at: datetime
    payout_ref: str | None = None  # the payout that filed the entry (None: the outstanding one)


@dataclass(frozen=True, slots=True)
class HoldRequest:
    payment_id: str
    customer_id: str
    provider_id: str
    amount_cents: int
    currency: str
    hold_until: datetime
    held_at: datetime
    card_fee_cents: int = 0  # the acquirer's fee on the capture, booked as the platform's expense


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
    updated_at: datetime | None = None  # time of the last change (None: held_at)
    disputes: tuple[Dispute, ...] = ()
    resolution_id: str | None = None
    resolved_at: datetime | None = None
    released_cents: int = 0
    refunded_cents: int = 0
    reversed_cents: int = 0  # a released amount given back to the customer before any payout
    reversed_at: datetime | None = None
    payout_ref: str | None = None  # the outstanding payout (None: none, or it was returned)
    paid_out_cents: int = 0  # the ACH entry: released - netted
    netted_cents: int = 0  # kept at payout to settle the provider's clawback (negative: paid back)
    paid_out_at: datetime | None = None
    returned_payouts: tuple[ReturnedPayout, ...] = ()  # oldest first
    card_fee_cents: int = 0

    @property
    def payout_attempt(self) -> int:
        """The number of the outstanding payout, or of the last one returned (0: never paid out)."""
        return len(self.returned_payouts) + (self.payout_ref is not None)

    @property
    def is_resolved(self) -> bool:
        return self.status not in UNRESOLVED_STATUSES

    def is_due(self, as_of: datetime) -> bool:
        return self.status is HoldStatus.HELD and self.hold_until <= as_of

    @property
    def last_change(self) -> datetime:
        return self.updated_at or self.held_at

    @property
    def accounts(self) -> tuple[AccountId, ...]:
        return payment_accounts(self.customer_id, self.provider_id, self.currency)

    def dispute(self, dispute_id: str) -> Dispute | None:
        return next((d for d in self.disputes if d.dispute_id == dispute_id), None)

    def open_disputes(self, phase: DisputePhase | None = None) -> tuple[Dispute, ...]:
        """The open disputes; of ``phase``: those that act on the money in it (not a chargeback
        after the refund)."""
        if phase is None:
            return tuple(d for d in self.disputes if d.is_open)
        return tuple(d for d in self.disputes if d.is_open and d.phase is phase and not d.after_refund)

    @property
    def payout_blocked(self) -> bool:
        return bool(self.open_disputes(DisputePhase.PAYOUT))

    @property
    def charged_back(self) -> bool:
        """A chargeback was decided for the customer: the network gave the card its money back."""
        return any(
            d.network and not d.after_refund and d.outcome is DisputeOutcome.REFUND for d in self.disputes
        )


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
    REFUNDED = "REFUNDED"
    DISPUTED = "DISPUTED"
    DISPUTE_NOT_OPEN = "DISPUTE_NOT_OPEN"
    DISPUTE_ALREADY_RESOLVED = "DISPUTE_ALREADY_RESOLVED"
    DISPUTE_WINDOW_CLOSED = "DISPUTE_WINDOW_CLOSED"
    DISPUTE_OF_ANOTHER_PARTY = "DISPUTE_OF_ANOTHER_PARTY"  # a chargeback resolved by a client, or vice versa
    ALREADY_PAID_OUT = "ALREADY_PAID_OUT"
    NOT_PAID_OUT = "NOT_PAID_OUT"
    ALREADY_RETURNED = "ALREADY_RETURNED"
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


def _changed(hold: Hold, at: datetime) -> Hold:
    """The hold as the next version, last changed at ``at`` (already no earlier than the last change)."""
    return replace(hold, version=hold.version + 1, updated_at=at)


def _effective(hold: Hold, at: datetime) -> datetime:
    """When a command dated ``at`` takes effect: never before the hold's last change."""
    return max(at, hold.last_change)


def _existing(state: LedgerState, *transfer_ids: str) -> tuple[Transfer, ...]:
    return tuple(state.transfers[t] for t in transfer_ids if t in state.transfers)


def _not_found(payment_id: str) -> Rejected:
    return Rejected(Rejection.NOT_FOUND, f"no hold for payment {payment_id}")


def _hold_request_problem(request: HoldRequest) -> str | None:
    if not (request.payment_id and request.customer_id and request.provider_id):
        return "payment, customer and provider ids are required"
    if not _CURRENCY_PATTERN.fullmatch(request.currency):
        return f"currency must be an ISO 4217 code, got {request.currency!r}"
    if request.amount_cents <= 0:
        return f"amount must be positive, got {request.amount_cents}"
    if request.card_fee_cents < 0:
        return f"the card fee cannot be negative, got {request.card_fee_cents}"
    if request.hold_until.utcoffset() is None or request.held_at.utcoffset() is None:
        return "hold_until and held_at must be timezone-aware"
    if request.hold_until <= request.held_at:
        return "hold_until must be after held_at"
    return None


def _same_terms(hold: Hold, request: HoldRequest) -> bool:
    terms = (hold.customer_id, hold.provider_id, hold.amount_cents, hold.currency, hold.hold_until)
    asked = (request.customer_id, request.provider_id, request.amount_cents, request.currency)
    return (*terms, hold.card_fee_cents) == (*asked, request.hold_until, request.card_fee_cents)


def place_hold(state: LedgerState, request: HoldRequest) -> Outcome:
    """Capture the card payment into escrow until ``hold_until``, and book its card fee."""
    problem = _hold_request_problem(request)
    if problem is not None:
        return Rejected(Rejection.INVALID_REQUEST, problem)
    existing = state.holds.get(request.payment_id)
    if existing is not None:
        if _same_terms(existing, request):
            ids = (hold_transfer_id(request.payment_id), card_fee_transfer_id(request.payment_id))
            return Duplicate(existing, _existing(state, *ids))
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
        card_fee_cents=request.card_fee_cents,
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
    if not request.card_fee_cents:
        return _commit(state, hold, (transfer,))
    fee = _to_clearing(
        hold,
        AccountId.card_fees(request.currency),
        request.card_fee_cents,
        kind=TransferKind.CARD_FEE,
        transfer_id=card_fee_transfer_id(request.payment_id),
        at=request.held_at,
    )
    return _commit(state, hold, (transfer, fee))


def _to_clearing(
    hold: Hold,
    source: AccountId,
    amount_cents: int,
    *,
    kind: TransferKind,
    transfer_id: str,
    at: datetime,
    reference: str | None = None,
) -> Transfer:
    """``source`` -> card clearing: what the network keeps (a fee, a chargeback) or gives the card
    (a refund) out of what it owes the platform."""
    return Transfer(
        transfer_id=transfer_id,
        kind=kind,
        payment_id=hold.payment_id,
        currency=hold.currency,
        postings=(
            Posting(source, Side.DEBIT, amount_cents),
            Posting(AccountId.card_clearing(hold.currency), Side.CREDIT, amount_cents),
        ),
        at=at,
        reference=reference,
    )


def _customer_share(state: LedgerState, hold: Hold) -> int:
    """What the payment owes its customer: its refunds less what already reached the card."""
    journal = (t for t in state.transfers.values() if t.payment_id == hold.payment_id)
    return balance_deltas(journal).get(AccountId.customer(hold.customer_id, hold.currency), 0)


def return_to_card(
    state: LedgerState, payment_id: str, *, refund_id: str, amount_cents: int, at: datetime
) -> Outcome:
    """A refund reached the customer's card through the processor (customer -> card clearing),
    never more than the payment owes its customer; ``refund_id`` makes it once."""
    _require_aware("at", at)
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    if not refund_id or amount_cents <= 0:
        return Rejected(
            Rejection.INVALID_REQUEST, f"a card refund needs an id and cents > 0, got {amount_cents}"
        )
    at = _effective(hold, at)
    customer = AccountId.customer(hold.customer_id, hold.currency)
    transfer_id = card_refund_transfer_id(payment_id, refund_id)
    transfer = _to_clearing(
        hold,
        customer,
        amount_cents,
        kind=TransferKind.CARD_REFUND,
        transfer_id=transfer_id,
        at=at,
        reference=refund_id,
    )
    existing = state.transfers.get(transfer_id)
    if existing is not None:
        if existing.same_body(transfer):
            return Duplicate(hold, (existing,))
        return Rejected(
            Rejection.IDEMPOTENCY_CONFLICT, f"card refund {refund_id} was booked with other terms"
        )
    owed = _customer_share(state, hold)
    if amount_cents > owed:
        message = f"payment {payment_id} owes its customer {owed} cents, not {amount_cents}"
        return Rejected(Rejection.INSUFFICIENT_FUNDS, message)
    return _commit(state, _changed(hold, at), (transfer,))


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


def _unresolvable(hold: Hold, at: datetime) -> Rejected | None:
    """Why a release or refund may not resolve the hold now (frozen, or past hold-until)."""
    if hold.status is HoldStatus.FROZEN:
        return Rejected(
            Rejection.FROZEN, f"hold {hold.payment_id} is frozen by a dispute; only its resolution decides"
        )
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
    resolved = _changed(
        replace(
            hold,
            status=status,
            resolution_id=resolution_id,
            resolved_at=at,
            released_cents=released_cents,
            refunded_cents=refunded_cents,
        ),
        at,
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
    at = _effective(hold, at)
    if (refused := _unresolvable(hold, at)) is not None:
        return refused
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
    at = _effective(hold, at)
    if (refused := _unresolvable(hold, at)) is not None:
        return refused
    return _resolve(state, hold, HoldStatus.REFUNDED, released_cents=0, resolution_id=resolution_id, at=at)


def expire(state: LedgerState, payment_id: str, *, as_of: datetime) -> Outcome:
    """Release a due, unfrozen hold to the provider, dated at its hold-until time."""
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
        at=_effective(hold, hold.hold_until),
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


# --- disputes ------------------------------------------------------------------------------------


def dispute_phase(hold: Hold, at: datetime) -> DisputePhase:
    """The phase a dispute opened at ``at`` belongs to (see the module docstring)."""
    if hold.status is HoldStatus.FROZEN or (hold.status is HoldStatus.HELD and at < hold.hold_until):
        return DisputePhase.ESCROW
    if hold.payout_ref is None and not hold.open_disputes(DisputePhase.CLAWBACK):
        return DisputePhase.PAYOUT
    return DisputePhase.CLAWBACK


def _dispute_refusal(hold: Hold, at: datetime, window: timedelta | None) -> Rejected | None:
    if hold.refunded_cents == hold.amount_cents or hold.reversed_cents:
        return Rejected(Rejection.REFUNDED, f"payment {hold.payment_id} was already refunded")
    closes = (hold.resolved_at or hold.hold_until) + window if window is not None else None
    if closes is not None and hold.is_resolved and at > closes:
        return Rejected(
            Rejection.DISPUTE_WINDOW_CLOSED,
            f"disputes of payment {hold.payment_id} were accepted until {closes.isoformat()}",
        )
    return None


def _clawback_booking(hold: Hold, episode: str, at: datetime) -> Transfer:
    amount = hold.released_cents
    return Transfer(
        transfer_id=clawback_transfer_id(hold.payment_id, episode),
        kind=TransferKind.CLAWBACK,
        payment_id=hold.payment_id,
        currency=hold.currency,
        postings=(
            Posting(AccountId.clawback(hold.provider_id, hold.currency), Side.DEBIT, amount),
            Posting(AccountId.disputes(hold.currency), Side.CREDIT, amount),
        ),
        at=at,
        reference=episode,
    )


def open_dispute(
    state: LedgerState,
    payment_id: str,
    *,
    dispute_id: str,
    at: datetime,
    window: timedelta | None = None,
    network: bool = False,
    network_fee_cents: int = 0,
) -> Outcome:
    """Open a dispute: freeze the hold, hold the payout back or book a clawback, by phase.

    ``window`` is how long after the hold resolved disputes are still accepted (None: always); a
    ``network`` dispute (a chargeback) is accepted whenever it comes: the money is already gone,
    with the network's fee (``network_fee_cents``, booked as a card fee). A chargeback of a payment
    already refunded is recorded ``after_refund``: it only books the fee and, lost, the loss.
    """
    _require_aware("at", at)
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    known = hold.dispute(dispute_id)
    if known is not None:
        booked = [chargeback_fee_transfer_id(payment_id, dispute_id)]
        if known.episode == dispute_id:
            booked.append(clawback_transfer_id(payment_id, known.episode))
        return Duplicate(hold, _existing(state, *booked))
    if network_fee_cents < 0 or (network_fee_cents and not network):
        return Rejected(Rejection.INVALID_REQUEST, f"invalid network fee {network_fee_cents}")
    at = _effective(hold, at)
    refused = _dispute_refusal(hold, at, None if network else window)
    after_refund = network and refused is not None and refused.reason is Rejection.REFUNDED
    if refused is not None and not after_refund:
        return refused
    phase = dispute_phase(hold, at)
    running = () if after_refund else hold.open_disputes(phase)
    episode = running[0].episode if running else dispute_id
    dispute = Dispute(dispute_id, phase, at, episode, network=network, after_refund=after_refund)
    status = HoldStatus.FROZEN if phase is DisputePhase.ESCROW and not after_refund else hold.status
    changed = _changed(replace(hold, status=status, disputes=(*hold.disputes, dispute)), at)
    transfers: list[Transfer] = []
    if phase is DisputePhase.CLAWBACK and not running and not after_refund:
        transfers.append(_clawback_booking(hold, episode, at))
    if network_fee_cents:
        fee_id = chargeback_fee_transfer_id(payment_id, dispute_id)
        fees = AccountId.card_fees(hold.currency)
        transfers.append(
            _to_clearing(
                hold,
                fees,
                network_fee_cents,
                kind=TransferKind.CHARGEBACK_FEE,
                transfer_id=fee_id,
                at=at,
                reference=dispute_id,
            )
        )
    return _commit(state, changed, tuple(transfers))


def _settled_dispute(state: LedgerState, hold: Hold, dispute: Dispute, outcome: DisputeOutcome) -> Outcome:
    if dispute.outcome is outcome:
        payment_id = hold.payment_id
        transfer_ids = (
            (chargeback_loss_transfer_id(payment_id, dispute.dispute_id),)
            if dispute.after_refund
            else (
                resolution_transfer_id(payment_id),
                reversal_transfer_id(payment_id),
                clawback_end_transfer_id(payment_id, dispute.episode),
                card_refund_transfer_id(payment_id, dispute.dispute_id),
                chargeback_loss_transfer_id(payment_id, dispute.dispute_id),
            )
        )
        return Duplicate(hold, _existing(state, *transfer_ids))
    return Rejected(
        Rejection.DISPUTE_ALREADY_RESOLVED,
        f"dispute {dispute.dispute_id} of payment {hold.payment_id} was already resolved: {dispute.outcome}",
    )


def resolve_dispute(
    state: LedgerState,
    payment_id: str,
    *,
    dispute_id: str,
    outcome: DisputeOutcome,
    at: datetime,
    network: bool = False,
) -> Outcome:
    """Close an open dispute; the last open one of its phase decides what the money does. Only
    the network resolves a chargeback (``network``), and it resolves nothing else."""
    _require_aware("at", at)
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    dispute = hold.dispute(dispute_id)
    if dispute is None:
        return Rejected(
            Rejection.DISPUTE_NOT_OPEN, f"payment {payment_id} has no dispute {dispute_id} to resolve"
        )
    if dispute.network is not network:
        decider = "the card network" if dispute.network else "the platform's client"
        return Rejected(
            Rejection.DISPUTE_OF_ANOTHER_PARTY,
            f"dispute {dispute_id} of payment {payment_id} is {decider}'s to resolve",
        )
    if not dispute.is_open:
        return _settled_dispute(state, hold, dispute, outcome)
    at = _effective(hold, at)
    closed = replace(dispute, outcome=outcome, closed_at=at)
    disputes = tuple(closed if d.dispute_id == dispute_id else d for d in hold.disputes)
    hold = replace(hold, disputes=disputes)
    if dispute.after_refund:
        lost = outcome is DisputeOutcome.REFUND
        return _commit(state, _changed(hold, at), _network_refund(hold, closed, 0, at) if lost else ())
    if hold.open_disputes(dispute.phase):
        return _commit(state, _changed(hold, at), ())
    episode = [
        d
        for d in disputes
        if d.phase is dispute.phase and d.episode == dispute.episode and not d.after_refund
    ]
    refund_wins = any(d.outcome is DisputeOutcome.REFUND for d in episode)
    ended: Applied | Rejected
    match dispute.phase:
        case DisputePhase.ESCROW:
            ended = _end_escrow_dispute(state, hold, dispute_id, refund_wins, at)
        case DisputePhase.PAYOUT:
            ended = _end_payout_dispute(state, hold, dispute_id, refund_wins, at)
        case DisputePhase.CLAWBACK:
            ended = _end_clawback(state, hold, dispute.episode, refund_wins, at)
    network_lost = next((d for d in episode if d.network and d.outcome is DisputeOutcome.REFUND), None)
    if network_lost is None or not isinstance(ended, Applied):
        return ended
    customer = AccountId.customer(hold.customer_id, hold.currency)
    credited = balance_deltas(ended.transfers).get(customer, 0)
    return _commit(
        state, ended.hold, (*ended.transfers, *_network_refund(ended.hold, network_lost, credited, at))
    )


def _network_refund(hold: Hold, lost: Dispute, credited_cents: int, at: datetime) -> tuple[Transfer, ...]:
    """A lost chargeback: the network gave the card the captured amount. What the dispute's end
    credited the customer went to the card with it; the rest the platform had refunded already
    (its loss)."""
    payment_id, dispute_id, currency = hold.payment_id, lost.dispute_id, hold.currency
    credited = max(credited_cents, 0)
    parts = (
        (
            AccountId.customer(hold.customer_id, currency),
            credited,
            TransferKind.CARD_REFUND,
            card_refund_transfer_id(payment_id, dispute_id),
        ),
        (
            AccountId.chargeback_losses(currency),
            hold.amount_cents - credited,
            TransferKind.CHARGEBACK_LOSS,
            chargeback_loss_transfer_id(payment_id, dispute_id),
        ),
    )
    return tuple(
        _to_clearing(hold, source, cents, kind=kind, transfer_id=transfer_id, at=at, reference=dispute_id)
        for source, cents, kind, transfer_id in parts
        if cents > 0
    )


def _end_escrow_dispute(
    state: LedgerState, hold: Hold, dispute_id: str, refund_wins: bool, at: datetime
) -> Applied | Rejected:
    thawed = replace(hold, status=HoldStatus.HELD)
    status = HoldStatus.REFUNDED if refund_wins else HoldStatus.RELEASED
    released = 0 if refund_wins else hold.amount_cents
    resolution_id = f"{DISPUTE_RESOLUTION_PREFIX}{dispute_id}"
    return _resolve(state, thawed, status, released_cents=released, resolution_id=resolution_id, at=at)


def _end_payout_dispute(
    state: LedgerState, hold: Hold, dispute_id: str, refund_wins: bool, at: datetime
) -> Applied | Rejected:
    if not refund_wins:
        return _commit(state, _changed(hold, at), ())
    if not hold.is_resolved:  # disputed after hold-until, before the sweep released it
        resolution_id = f"{DISPUTE_RESOLUTION_PREFIX}{dispute_id}"
        return _resolve(
            state, hold, HoldStatus.REFUNDED, released_cents=0, resolution_id=resolution_id, at=at
        )
    amount = hold.released_cents
    transfer = Transfer(
        transfer_id=reversal_transfer_id(hold.payment_id),
        kind=TransferKind.REVERSAL,
        payment_id=hold.payment_id,
        currency=hold.currency,
        postings=(
            Posting(AccountId.provider(hold.provider_id, hold.currency), Side.DEBIT, amount),
            Posting(AccountId.customer(hold.customer_id, hold.currency), Side.CREDIT, amount),
        ),
        at=at,
        reference=dispute_id,
    )
    reversed_hold = replace(hold, reversed_cents=amount, reversed_at=at)
    return _commit(state, _changed(reversed_hold, at), (transfer,))


def _end_clawback(
    state: LedgerState, hold: Hold, episode: str, refund_wins: bool, at: datetime
) -> Applied | Rejected:
    amount = hold.released_cents
    to = (
        AccountId.customer(hold.customer_id, hold.currency)
        if refund_wins
        else AccountId.clawback(hold.provider_id, hold.currency)
    )
    transfer = Transfer(
        transfer_id=clawback_end_transfer_id(hold.payment_id, episode),
        kind=TransferKind.CLAWBACK_REFUND if refund_wins else TransferKind.CLAWBACK_CANCEL,
        payment_id=hold.payment_id,
        currency=hold.currency,
        postings=(
            Posting(AccountId.disputes(hold.currency), Side.DEBIT, amount),
            Posting(to, Side.CREDIT, amount),
        ),
        at=at,
        reference=episode,
    )
    return _commit(state, _changed(hold, at), (transfer,))


def mark_dispute_aged(state: LedgerState, payment_id: str, *, dispute_id: str, at: datetime) -> Outcome:
    """Note that the sweep signalled an open dispute as past its age (it signals each once)."""
    _require_aware("at", at)
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    dispute = hold.dispute(dispute_id)
    if dispute is None or not dispute.is_open:
        return Rejected(Rejection.DISPUTE_NOT_OPEN, f"payment {payment_id} has no open dispute {dispute_id}")
    if dispute.aged_at is not None:
        return Duplicate(hold, ())
    aged = replace(dispute, aged_at=at)
    disputes = tuple(aged if d.dispute_id == dispute_id else d for d in hold.disputes)
    return _commit(state, replace(hold, version=hold.version + 1, disputes=disputes), ())


# --- payouts -------------------------------------------------------------------------------------


def _payout_refusal(hold: Hold, payout_ref: str, amount_cents: int) -> Rejected | None:
    if hold.reversed_cents or hold.status is HoldStatus.REFUNDED:
        return Rejected(Rejection.REFUNDED, f"payment {hold.payment_id} was refunded to the customer")
    if hold.released_cents == 0:
        return Rejected(
            Rejection.NOT_RELEASED, f"nothing of payment {hold.payment_id} is released ({hold.status})"
        )
    if hold.payout_blocked:
        disputes = ", ".join(d.dispute_id for d in hold.open_disputes(DisputePhase.PAYOUT))
        return Rejected(Rejection.DISPUTED, f"payout of {hold.payment_id} is held back by dispute {disputes}")
    if amount_cents != hold.released_cents:
        return Rejected(
            Rejection.INVALID_REQUEST,
            f"payout must equal the released {hold.released_cents} cents, got {amount_cents}",
        )
    return None


def _netting(state: LedgerState, hold: Hold, max_entry_cents: int) -> int:
    """What a payout keeps to settle the provider's clawback balance (negative: pays it back)."""
    owed = -state.balance(AccountId.clawback(hold.provider_id, hold.currency))
    if owed >= 0:
        return min(owed, hold.released_cents)
    return -min(-owed, max(0, max_entry_cents - hold.released_cents))


def _payout_postings(hold: Hold, netted: int) -> tuple[Posting, ...]:
    """A payout's postings: provider -> settlement (the entry) and clawback (what is netted)."""
    entry = hold.released_cents - netted
    postings = [Posting(AccountId.provider(hold.provider_id, hold.currency), Side.DEBIT, hold.released_cents)]
    if entry:
        postings.append(Posting(AccountId.settlement(hold.currency), Side.CREDIT, entry))
    if netted:
        side = Side.CREDIT if netted > 0 else Side.DEBIT
        postings.append(Posting(AccountId.clawback(hold.provider_id, hold.currency), side, abs(netted)))
    return tuple(postings)


def _payout_transfer(hold: Hold, netted: int, payout_ref: str, at: datetime) -> Transfer:
    return Transfer(
        transfer_id=payout_transfer_id(hold.payment_id, hold.payout_attempt + 1),
        kind=TransferKind.PAYOUT,
        payment_id=hold.payment_id,
        currency=hold.currency,
        postings=_payout_postings(hold, netted),
        at=at,
        reference=payout_ref,
    )


def _settled_payout(
    state: LedgerState, hold: Hold, payout_ref: str, amount_cents: int
) -> Duplicate | Rejected | None:
    """The answer for a payout already recorded (outstanding or returned), or None."""
    attempt = next((r.attempt for r in hold.returned_payouts if r.payout_ref == payout_ref), None)
    if hold.payout_ref == payout_ref:
        attempt = hold.payout_attempt
    elif hold.payout_ref is not None and attempt is None:
        return Rejected(
            Rejection.ALREADY_PAID_OUT,
            f"payment {hold.payment_id} was already paid out by {hold.payout_ref}",
        )
    if attempt is None:
        return None
    if hold.released_cents != amount_cents:
        return Rejected(
            Rejection.IDEMPOTENCY_CONFLICT,
            f"payout {payout_ref} of payment {hold.payment_id} was of {hold.released_cents} cents",
        )
    return Duplicate(hold, _existing(state, payout_transfer_id(hold.payment_id, attempt)))


def record_payout(
    state: LedgerState,
    payment_id: str,
    *,
    amount_cents: int,
    payout_ref: str,
    at: datetime,
    max_entry_cents: int | None = None,
) -> Outcome:
    """Claim the provider's released share for a payout (before the file is written).

    The entry pays the share less what the provider owes on clawbacks (``Hold.netted_cents``),
    or plus what is owed back to them, up to ``max_entry_cents`` (default: the share itself).
    A payout held back by a dispute, or of a payment refunded, is refused. After a return the
    payment is paid out again under a new reference (a returned reference is a ``Duplicate``).
    """
    _require_aware("at", at)
    if not payout_ref:
        return Rejected(Rejection.INVALID_REQUEST, "payout reference is required")
    hold = state.holds.get(payment_id)
    if hold is None:
        return _not_found(payment_id)
    if (settled := _settled_payout(state, hold, payout_ref, amount_cents)) is not None:
        return settled
    if (refused := _payout_refusal(hold, payout_ref, amount_cents)) is not None:
        return refused
    at = _effective(hold, at)
    netted = _netting(state, hold, max_entry_cents if max_entry_cents is not None else amount_cents)
    paid = _changed(
        replace(
            hold,
            payout_ref=payout_ref,
            paid_out_cents=amount_cents - netted,
            netted_cents=netted,
            paid_out_at=at,
        ),
        at,
    )
    return _commit(state, paid, (_payout_transfer(hold, netted, payout_ref, at),))


# --- payout returns ------------------------------------------------------------------------------


def _return_problem(command: PayoutReturn) -> Rejected | None:
    if not _RETURN_CODE_PATTERN.fullmatch(command.return_code):
        return Rejected(
            Rejection.INVALID_REQUEST, f"return code must be R01-R85, got {command.return_code!r}"
        )
    if not _TRACE_NUMBER_PATTERN.fullmatch(command.original_trace_number):
        return Rejected(
            Rejection.INVALID_REQUEST,
            f"trace number must be 15 digits, got {command.original_trace_number!r}",
        )
    return None


def _settled_return(state: LedgerState, hold: Hold, command: PayoutReturn) -> Duplicate | Rejected | None:
    """The answer for a return already booked under this trace number, or None."""
    trace = command.original_trace_number
    known = next((r for r in hold.returned_payouts if r.trace_number == trace), None)
    if known is None:
        return None
    if known.return_code != command.return_code:
        return Rejected(
            Rejection.IDEMPOTENCY_CONFLICT,
            f"entry {trace} of payment {hold.payment_id} was returned as {known.return_code}",
        )
    return Duplicate(hold, _existing(state, payout_return_transfer_id(hold.payment_id, trace)))


def _unreturnable(hold: Hold, payout_ref: str | None) -> Rejected | None:
    if payout_ref is not None and hold.payout_ref not in (None, payout_ref):
        return Rejected(
            Rejection.NOT_PAID_OUT,
            f"payout {payout_ref} of payment {hold.payment_id} is not outstanding "
            f"(the outstanding payout is {hold.payout_ref})",
        )
    if hold.payout_ref is None and hold.returned_payouts:
        last = hold.returned_payouts[-1]
        return Rejected(
            Rejection.ALREADY_RETURNED,
            f"payout {last.attempt} of payment {hold.payment_id} was returned (entry {last.trace_number}) "
            "and not paid out again",
        )
    if hold.payout_ref is None or not hold.paid_out_cents:
        return Rejected(Rejection.NOT_PAID_OUT, f"payment {hold.payment_id} has no ACH entry outstanding")
    return None


def return_payout(state: LedgerState, command: PayoutReturn) -> Outcome:
    """Reverse the outstanding payout whose ACH entry came back: the provider is owed it again.

    The whole payout is undone (settlement -> provider, and what it netted back to the
    clawback account), so paying the payment out again nets against the clawback as it then is.
    """
    _require_aware("returned_at", command.returned_at)
    if (problem := _return_problem(command)) is not None:
        return problem
    hold = state.holds.get(command.payment_id)
    if hold is None:
        return _not_found(command.payment_id)
    if (settled := _settled_return(state, hold, command)) is not None:
        return settled
    if (refused := _unreturnable(hold, command.payout_ref)) is not None:
        return refused
    assert hold.payout_ref is not None
    at = _effective(hold, command.returned_at)
    record = ReturnedPayout(
        attempt=hold.payout_attempt,
        payout_ref=hold.payout_ref,
        trace_number=command.original_trace_number,
        return_code=command.return_code,
        paid_out_cents=hold.paid_out_cents,
        netted_cents=hold.netted_cents,
        paid_out_at=hold.paid_out_at or at,
        returned_at=at,
    )
    mirrored = tuple(
        replace(p, side=Side.CREDIT if p.side is Side.DEBIT else Side.DEBIT)
        for p in _payout_postings(hold, hold.netted_cents)
    )
    transfer = Transfer(
        transfer_id=payout_return_transfer_id(hold.payment_id, command.original_trace_number),
        kind=TransferKind.PAYOUT_RETURN,
        payment_id=hold.payment_id,
        currency=hold.currency,
        postings=mirrored,
        at=at,
        reference=payout_transfer_id(hold.payment_id, record.attempt),
    )
    reopened = replace(
        hold,
        payout_ref=None,
        paid_out_cents=0,
        netted_cents=0,
        paid_out_at=None,
        returned_payouts=(*hold.returned_payouts, record),
    )
    return _commit(state, _changed(reopened, at), (transfer,))
