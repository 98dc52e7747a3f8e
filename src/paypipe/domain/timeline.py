"""A payment's timeline: every event of it, in order, with its key facts, and the state it is in.

The projector records each event once (by event id) as a ``TimelineEntry``; ``timeline`` orders
them and drops duplicates, so delivery order and redeliveries never change the answer, and
``current_state`` folds them into the payment's state.

What the timeline keeps of an event is its envelope and the fields its type lists in
``KEY_FACTS``: a whitelist, never card numbers, CVVs or account numbers. The card-bearing types
list only fields they always carry, since the projector's rule delivers exactly those fields (an
EventBridge input transformer) and nothing else of them. Adding an event type is one
``KEY_FACTS`` entry: its facts and, when it moves the payment, the state it moves it to.

Only events from their contract's producers move the state: an event from any other origin is
recorded (``untrusted`` says why) and shown, never believed; client commands are shown and the
state follows from what the steps made of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

type Fact = str | int | bool | list[str]
type StateOf = Callable[[Mapping[str, Fact]], str | None]

SENSITIVE_FIELDS: Final = frozenset({"number", "cvv", "account_number"})
CLIENT: Final = "client"


@dataclass(frozen=True)
class State:
    name: str
    terminal: bool
    meaning: str


# In pipeline order: among events at the same instant, the later stage wins.
STATES: Final = {
    state.name: state
    for state in (
        State("requested", False, "requested; not validated yet"),
        State("validated", False, "validated; card and account not vaulted yet"),
        State("tokenized", False, "card and account in the vaults; not scored yet"),
        State("approved", False, "approved by fraud scoring; funds not held yet"),
        State("in_review", False, "fraud scoring asked for a review; a person must decide"),
        State("charged", False, "the card is authorized and captured; funds not held yet"),
        State("held", False, "funds held in escrow"),
        State("disputed", False, "a dispute froze the hold"),
        State("released", False, "released to the provider; waiting for the next ACH cut"),
        State("payout_held_back", False, "a dispute after release holds the payout back"),
        State("set_aside", False, "the ACH cut set the payout aside; an operator must decide"),
        State("awaiting_account", False, "the prenote was returned; payouts wait for new account details"),
        State("returned_resend", False, "the bank returned the payout; it is paid again at the next cut"),
        State("returned", True, "the bank returned the payout; it waits for new account details"),
        State("disputed_after_payout", False, "a dispute after the payout: a clawback is booked"),
        State("rejected", True, "rejected by validation"),
        State("declined", True, "declined by fraud scoring or by the card processor"),
        State("refunded", True, "refunded to the customer"),
        State("netted", True, "the released amount settled the provider's clawbacks"),
        State("paid_out", True, "paid out: an entry of a NACHA file"),
    )
}
UNKNOWN_STATE: Final = State("unknown", False, "no event of the pipeline's steps recorded")
_RANK: Final = {name: index for index, name in enumerate(STATES)}


@dataclass(frozen=True)
class KeyFacts:
    """What the timeline keeps of one event type: ``paths`` into its data (``a.b``, ``a[].b`` for
    each item of a list, ``name=path`` to rename), and the state it moves a payment to."""

    paths: tuple[str, ...] = ()
    state: str | StateOf | None = None

    def state_for(self, facts: Mapping[str, Fact]) -> str | None:
        return self.state(facts) if callable(self.state) else self.state


def _decision(facts: Mapping[str, Fact]) -> str:
    return "in_review" if facts.get("decision") == "review" else "approved"


def _returned(facts: Mapping[str, Fact]) -> str:
    return "returned_resend" if facts.get("next_step") == "resend" else "returned"


def _clawback_resolved(facts: Mapping[str, Fact]) -> str:
    return "refunded" if facts.get("outcome") == "refund" else "paid_out"


def _set_aside(facts: Mapping[str, Fact]) -> str | None:
    return "set_aside" if facts.get("job") == "ach_cut" else None


_ASSESSMENT = ("assessment.decision", "assessment.score", "assessment.reasons", "assessment.rule_version")
_REJECTION = ("reason_codes=reasons[].code",)
_REVIEW = ("review_deadline=review.deadline", "reviewed_at=review.decided_at", "reviewer=review.reviewer")

KEY_FACTS: Final[Mapping[str, KeyFacts]] = {  # in pipeline order: it orders events of the same instant
    # Card-bearing types (PaymentRequested, PaymentValidated, PayeeAccountUpdated and -Validated):
    # required fields only, as the projector's rules' input transformers map exactly these.
    "PaymentRequested": KeyFacts(
        ("amount_cents", "currency", "provider_id", "customer_id=customer.id"), "requested"
    ),
    "PaymentValidated": KeyFacts(("amount_cents", "currency", "provider_id", "tenant_id"), "validated"),
    "PaymentRejected": KeyFacts(_REJECTION, "rejected"),
    "RequestRefused": KeyFacts(("request_type", "code", "field", "original_event_id")),
    "PaymentTokenized": KeyFacts(("card.brand", "card.last4", "payee.account_last4"), "tokenized"),
    "PaymentScored": KeyFacts((*_ASSESSMENT, *_REVIEW), _decision),
    "ReviewExpiryDue": KeyFacts(("opened_at", "deadline")),
    "ReviewDecided": KeyFacts(("decision", "reviewer")),  # not its note: free text stays in the table
    "ReviewDecisionRefused": KeyFacts(("decision", "reviewer", "reason", "status")),
    "PaymentCharged": KeyFacts(("charge.processor", "charge.captured_cents", "charge.currency"), "charged"),
    "PaymentDeclined": KeyFacts(
        (*_ASSESSMENT, "reason_code", "card_decline=card.code", *_REVIEW), "declined"
    ),
    "FundsHeld": KeyFacts(("hold.hold_id", "hold.amount_cents", "hold.currency", "hold.hold_until"), "held"),
    "ServiceCompleted": KeyFacts(("completed_at",)),
    "DisputeOpened": KeyFacts(("dispute_id", "reason")),
    "HoldFrozen": KeyFacts(("dispute_id",), "disputed"),
    "DisputeAged": KeyFacts(("dispute_id", "phase", "opened_at", "max_age_days")),
    "DisputeResolved": KeyFacts(("dispute_id", "outcome")),
    "DisputeClosed": KeyFacts(("dispute_id", "outcome", "phase", "still_open")),
    "HoldExpiryDue": KeyFacts(("hold_until",)),
    "FundsReleased": KeyFacts(("amount_cents", "currency", "trigger", "released_at"), "released"),
    "FundsRefunded": KeyFacts(
        ("amount_cents", "currency", "dispute_id", "after_release", "chargeback"), "refunded"
    ),
    "CardRefunded": KeyFacts(("amount_cents", "currency", "refund_of", "processor")),
    "SettlementReconciled": KeyFacts(("day", "lines", "matched", "discrepancy_count", "report_error")),
    "PayoutHeldBack": KeyFacts(("dispute_id", "amount_cents", "currency"), "payout_held_back"),
    "ItemSetAside": KeyFacts(("job", "reason"), _set_aside),
    "AchFilesDeferred": KeyFacts(("creation_date", "batches", "payouts", "reason")),
    "PayoutNetted": KeyFacts(("batch_id", "released_cents", "netted_cents"), "netted"),
    "PayoutBatched": KeyFacts(
        ("batch_id", "file_key", "trace_number", "amount_cents", "netted_cents", "effective_date", "window"),
        "paid_out",
    ),
    "AchBatchCreated": KeyFacts(("batch_id", "file_key", "entry_count", "total_credit_cents", "window")),
    "PayoutReturned": KeyFacts(
        ("original_trace_number", "return_code", "reason", "amount_cents", "batch_id", "next_step"), _returned
    ),
    "PrenoteReturned": KeyFacts(("original_trace_number", "return_code", "reason"), "awaiting_account"),
    "PayeeAccountCorrected": KeyFacts(("original_trace_number", "change_code", "reason", "apply_by")),
    "AchInboundParked": KeyFacts(("reason", "code", "original_trace_number", "answer", "answer_code")),
    "ClawbackBooked": KeyFacts(("dispute_id", "amount_cents", "payout_ref"), "disputed_after_payout"),
    "ClawbackResolved": KeyFacts(("dispute_id", "amount_cents", "outcome", "chargeback"), _clawback_resolved),
    "PayeeAccountUpdated": KeyFacts(("provider_id",)),
    "PayeeAccountValidated": KeyFacts(("provider_id", "received_at")),
    "PayeeAccountRejected": KeyFacts(_REJECTION),
    "PayeeAccountReplaced": KeyFacts(("provider_id", "payee.account_last4", "replaced_at")),
}
_TYPE_ORDER: Final = {name: index for index, name in enumerate(KEY_FACTS)}


@dataclass(frozen=True)
class TimelineEntry:
    """One recorded event of a payment."""

    payment_id: str
    event_id: str
    event_type: str
    occurred_at: datetime
    producer: str
    source: str | None = None
    facts: Mapping[str, Fact] = field(default_factory=dict)
    untrusted: str | None = None  # why its origin breaks the contract; None when it is trusted
    received_at: datetime | None = None  # when the projector's queue received it

    @property
    def sort_key(self) -> str:
        """Orders a payment's entries: the event's time (UTC, fixed width), then its id."""
        return f"{timestamp(self.occurred_at)}#{self.event_id}"

    @property
    def step(self) -> str:
        return self.producer

    def as_dict(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "payment_id": self.payment_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "occurred_at": timestamp(self.occurred_at),
            "step": self.producer,
            "source": self.source,
            "facts": dict(self.facts),
        }
        if self.untrusted:
            view["untrusted"] = self.untrusted
        if self.received_at:
            view["received_at"] = timestamp(self.received_at)
        return view


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key_facts(event_type: str, data: Any) -> dict[str, Fact]:
    """The type's key facts found in ``data`` (absent ones left out); never a sensitive field."""
    spec = KEY_FACTS.get(event_type)
    if spec is None or not isinstance(data, Mapping):
        return {}
    facts: dict[str, Fact] = {}
    for entry in spec.paths:
        name, _, path = entry.rpartition("=")
        parts = path.split(".")
        name = name or parts[-1]
        if SENSITIVE_FIELDS & {part.removesuffix("[]") for part in parts}:
            continue
        value = _fact(_lookup(data, parts), name)
        if value is not None:
            facts[name] = value
    return facts


def _lookup(data: Any, parts: Sequence[str]) -> Any:
    for index, part in enumerate(parts):
        if part.endswith("[]"):
            items = data.get(part[:-2]) if isinstance(data, Mapping) else None
            if not isinstance(items, list):
                return None
            return [_lookup(item, parts[index + 1 :]) for item in items]
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def _fact(value: Any, name: str) -> Fact | None:
    if isinstance(value, list):
        items = [
            str(item) for item in value if isinstance(item, str | int | float) and not isinstance(item, bool)
        ]
        return items
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        # An input transformer hands every value over as text: amounts become numbers again.
        if (name.endswith("_cents") or name == "score") and value.lstrip("-").isdigit():
            return int(value)
        return value
    return None


def timeline(entries: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """A payment's entries in order, each event once (a trusted record of an id over an untrusted
    one, else the earliest), whatever order and however often they were delivered."""
    chosen: dict[str, TimelineEntry] = {}
    for entry in entries:
        held = chosen.get(entry.event_id)
        if held is None or _preference(entry) < _preference(held):
            chosen[entry.event_id] = entry
    return sorted(chosen.values(), key=_order)


def _order(entry: TimelineEntry) -> tuple[str, int, str]:
    """Time, then (at the same instant) pipeline order, then event id."""
    return timestamp(entry.occurred_at), _TYPE_ORDER.get(entry.event_type, len(_TYPE_ORDER)), entry.event_id


def _preference(entry: TimelineEntry) -> tuple[bool, str, str]:
    return entry.untrusted is not None, entry.sort_key, repr(sorted(entry.facts.items()))


def current_state(entries: Iterable[TimelineEntry]) -> State:
    """The payment's state: where its latest trusted step event moved it (at the same instant,
    the later stage). Client commands move nothing themselves: a request only starts a payment
    that no step has answered yet."""
    moves: list[tuple[str, int, str]] = []
    requested = False
    for entry in timeline(entries):
        spec = KEY_FACTS.get(entry.event_type)
        name = spec.state_for(entry.facts) if spec and entry.untrusted is None else None
        if name is None:
            continue
        if entry.producer == CLIENT:
            requested = requested or name == "requested"
            continue
        moves.append((timestamp(entry.occurred_at), _RANK[name], name))
    if moves:
        return STATES[max(moves)[2]]
    return STATES["requested"] if requested else UNKNOWN_STATE


def describe_facts(facts: Mapping[str, Fact]) -> str:
    """``name=value`` pairs for a line of text."""
    parts = []
    for name, value in facts.items():
        shown = (
            ",".join(value)
            if isinstance(value, list)
            else str(value).lower()
            if isinstance(value, bool)
            else value
        )
        parts.append(f"{name}={shown}")
    return " ".join(parts)
