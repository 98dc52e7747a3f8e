"""Reconciliation after a run: prove the money invariants from what the pipeline left behind.

Inputs are the events seen on the bus (with the source EventBridge stamped and the time the
bus delivered them), the DLQ contents, the entries of every ACH file in S3, the ledger's
per-currency totals, its final holds and its journal; the checks are pure. Each check has a code (the
``Violation.code``) and a test that injects exactly its violation.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

from paypipe.domain.ach_calendar import next_window, settlement_problem
from paypipe.domain.ledger import (
    AccountId,
    AccountKind,
    DisputePhase,
    Hold,
    Transfer,
    TransferKind,
    balance_deltas,
)
from paypipe.domain.ledger import payout_return_transfer_id as ledger_return_id
from paypipe.domain.settlement import FeeSchedule, SettlementLine, compare, settlement_totals
from paypipe.events import models as ev
from paypipe.runtime.consumer import client_timestamps
from paypipe.steps.settlement import booked_line

PAYMENT_TERMINALS = ev.TERMINAL_EVENT_TYPES - {"AchBatchCreated"}
PAYOUT_TYPES = frozenset({"PayoutBatched", "PayoutNetted"})
REFUSALS = frozenset({"RequestRefused", "PaymentRejected"})
OUTSIDE_EVENT_TYPES = ev.CLIENT_EVENT_TYPES | ev.OPERATOR_EVENT_TYPES  # published from outside, by right
DISPUTE_ACKS = (ev.HoldFrozen, ev.PayoutHeldBack, ev.ClawbackBooked)


@dataclass(frozen=True)
class DlqRecord:
    queue: str
    payment_id: str | None
    detail_type: str | None
    reason: str  # the consumer's verdict, or "redriven" when SQS moved it after maxReceiveCount


@dataclass(frozen=True)
class AchEntry:
    file_key: str
    trace_number: str
    amount_cents: int
    is_credit: bool
    odfi: str = ""  # the file header's immediate destination
    file_id: str = ""  # the header's creation date and file id modifier
    created_at: datetime | None = None  # the header's creation date and time
    effective_date: date | None = None  # the batch's effective entry date
    same_day: bool = False
    prenote: bool = False  # a zero-dollar prenote to a payee account, not a payout


@dataclass(frozen=True)
class BankAnswer:
    """A return or notification of change in one of the bank's files."""

    file_key: str
    trace_number: str  # the bank's entry
    original_trace_number: str  # the payout (or prenote) entry it answers
    kind: str  # "return" or "correction"
    code: str


@dataclass(frozen=True)
class PayoutRow:
    """A payout as the ACH batch step recorded it, and where it stands."""

    payment_id: str
    amount_cents: int
    released_at: datetime
    status: str  # pending, assigned, blocked, set_aside, waiting, cancelled
    reason: str = ""


@dataclass(frozen=True)
class Observed:
    """An event as the bus carried it: its EventBridge source and when the bus delivered it."""

    event: ev.Event
    source: str | None = None  # None: unknown (the source checks are skipped)
    received_at: datetime | None = None  # None: unknown (the clock checks are skipped)


@dataclass(frozen=True)
class Violation:
    code: str
    payment_id: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.payment_id}: {self.message}" if self.payment_id else self.message


@dataclass(frozen=True)
class Context:
    """What the checks need to know beyond the evidence itself."""

    holds: Sequence[Hold] = ()
    transfers: Sequence[Transfer] = ()  # the ledger's journal
    stored_balances: Mapping[AccountId, int] = field(default_factory=dict)  # balances kept as items
    payouts: Sequence[PayoutRow] = ()
    external_event_ids: frozenset[str] = frozenset()  # events published from outside the pipeline
    as_of: datetime | None = None  # end of the run on the pipeline clock
    client_skew: timedelta = timedelta(minutes=5)
    dispute_max_age: timedelta = timedelta(days=30)
    submission_lead: timedelta = timedelta(minutes=15)
    bank_answers: Sequence[BankAnswer] = ()  # every return and correction in the bank's files
    review_sweep_period: timedelta = timedelta(minutes=5)  # how often the review sweep runs
    # The acquirer's settlement report lines of every day of the run (None: no report to match).
    settlement_lines: Sequence[SettlementLine] | None = None
    acquirer_fees: FeeSchedule = field(default_factory=FeeSchedule)  # the acquirer contract's fees


@dataclass
class Reconciliation:
    payments: int = 0
    states: Counter[str] = field(default_factory=Counter)
    payment_states: dict[str, str] = field(default_factory=dict)
    released_cents: int = 0
    ach_credit_cents: int = 0
    netted_cents: int = 0
    ach_entries: int = 0
    returned_cents: int = 0  # of ACH credits the bank returned
    paid_again: int = 0  # payments filed again after a return
    prenotes: int = 0  # prenote entries filed
    prenotes_returned: int = 0
    bank_answers: Counter[str] = field(default_factory=Counter)  # returns and corrections read
    duplicate_requests: int = 0
    refused_requests: Counter[str] = field(default_factory=Counter)
    dlq_reasons: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def flag(self, code: str, payment_id: str | None, message: str) -> None:
        self.violations.append(Violation(code, payment_id, message))


def reconcile(
    requested: Iterable[str],
    observed: Sequence[ev.Event | Observed],
    dlq: Sequence[DlqRecord],
    ach_entries: Sequence[AchEntry],
    ledger_totals: Mapping[str, int],
    *,
    context: Context | None = None,
) -> Reconciliation:
    context = context or Context()
    seen = [item if isinstance(item, Observed) else Observed(item) for item in observed]
    events = [item.event for item in seen]
    result = Reconciliation(dlq_reasons=Counter(record.reason for record in dlq))
    _check_terminal_states(result, set(requested), events, dlq, context)
    _check_payouts(result, events, ach_entries, context, dlq)
    _check_payout_returns(result, context.transfers)
    _check_bank_answers(result, events, context.bank_answers, context.transfers)
    _check_files(result, events, ach_entries)
    _check_payout_rows(result, events, context)
    for currency, total in sorted(ledger_totals.items()):
        if total != 0:
            result.flag("LEDGER_UNBALANCED", None, f"ledger unbalanced in {currency}: {total}")
    _check_ledger_accounts(result, context)
    _check_disputes(result, events, context)
    _check_reviews(result, events, context)
    foreign = {item.event.event_id for item in seen if _is_foreign(item, context)}
    _check_trust(result, seen, foreign, context)
    _check_time(result, events)
    unique = list({e.event_id: e for e in events}.values())  # each event once, however delivered
    _check_card_money(result, unique)
    _check_settlement(result, unique, context)
    _check_settled_days(result, unique)
    _check_card_fees(result, unique, context)
    _check_card_clearing(result, [e for e in unique if e.event_id not in foreign], dlq, context)
    return result


def _check_settlement(result: Reconciliation, unique: Sequence[ev.Event], context: Context) -> None:
    """The acquirer's reports over the run settle what the pipeline charged, refunded and was
    charged back, less the contracted fees: captured, refunded, charged back, fees and net per
    currency (``SETTLEMENT_MISMATCH``)."""
    if context.settlement_lines is None:
        return
    fees = context.acquirer_fees
    captures = {
        e.payment_id: line
        for e in unique
        if isinstance(e, ev.PaymentCharged) and (line := booked_line(e, None, fees))
    }
    booked = [line for e in unique if (line := booked_line(e, captures.get(e.payment_id), fees))]
    last_day = (context.as_of or datetime.now(UTC)).date()
    for mismatch in compare(last_day, settlement_totals(booked), settlement_totals(context.settlement_lines)):
        message = f"over the run, {mismatch.currency} {mismatch.kind}: booked {mismatch.booked_minor}, "
        result.flag("SETTLEMENT_MISMATCH", None, message + f"the acquirer reported {mismatch.reported_minor}")


def _check_settled_days(result: Reconciliation, unique: Sequence[ev.Event]) -> None:
    """Each day's match of the acquirer's report against the card book, as the deployed stack
    makes it (``SETTLEMENT_DISCREPANCY``: the discrepancies its SettlementReconciled counted)."""
    for event in unique:
        if isinstance(event, ev.SettlementReconciled) and event.data.discrepancy_count:
            data = event.data
            listed = [f"{d.kind} {d.line_kind} of {d.payment_id}" for d in data.discrepancies[:3]]
            detail = data.report_error or ", ".join(listed)
            message = f"{data.day}: {data.discrepancy_count} discrepancies ({detail})"
            result.flag("SETTLEMENT_DISCREPANCY", None, message)


def _check_card_fees(result: Reconciliation, unique: Sequence[ev.Event], context: Context) -> None:
    """Each held capture's contracted fee is booked in the ledger as the platform's expense, once
    (``CARD_FEE_NOT_BOOKED``)."""
    held = {hold.payment_id for hold in context.holds}
    fees = {t.payment_id: t for t in context.transfers if t.kind is TransferKind.CARD_FEE}
    for event in unique:
        if isinstance(event, ev.PaymentCharged) and event.payment_id in held:
            expected = context.acquirer_fees.fee(event.data.charge.captured_cents)
            fee = fees.get(event.payment_id)
            booked = -balance_deltas([fee]).get(AccountId.card_fees(fee.currency), 0) if fee else 0
            if booked != expected:
                message = f"card fee booked {booked} cents, the contract's is {expected}"
                result.flag("CARD_FEE_NOT_BOOKED", event.payment_id, message)


def _card_facts(
    unique: Sequence[ev.Event],
) -> tuple[dict[str, int], Counter[str], Counter[str], Counter[str]]:
    """Per payment: what its card gave, the refunds that reached the card, and the chargebacks the
    network opened and the ones it decided for the customer (each dispute once)."""
    captured = {
        e.payment_id: e.data.charge.captured_cents for e in unique if isinstance(e, ev.PaymentCharged)
    }
    at_card: Counter[str] = Counter()
    opened: set[tuple[str, str]] = set()  # (payment, dispute): each dispute once
    lost: set[tuple[str, str]] = set()
    for event in unique:
        if isinstance(event, ev.CardRefunded):
            at_card[event.payment_id] += event.data.amount_cents
        elif event.producer != ev.PROCESSOR_PRODUCER:
            continue
        elif isinstance(event, ev.DisputeOpened):
            opened.add((event.payment_id, event.data.dispute_id))
        elif isinstance(event, ev.DisputeResolved) and event.data.outcome is ev.DisputeOutcome.REFUND:
            lost.add((event.payment_id, event.data.dispute_id))
    return captured, at_card, Counter(p for p, _ in opened), Counter(p for p, _ in lost)


def _check_card_clearing(
    result: Reconciliation, unique: Sequence[ev.Event], dlq: Sequence[DlqRecord], context: Context
) -> None:
    """Each held payment's share of card clearing is minus what the network settles for it, from
    the pipeline's card facts and the contract's fees: the capture less its fee, less the refunds
    that reached the card and the captures lost to chargebacks, less each chargeback's fee
    (``CARD_CLEARING_MISMATCH``). A payment with a message in a DLQ waits there, with its reason."""
    fees = context.acquirer_fees
    captured, at_card, opened, lost = _card_facts(unique)
    parked = _parked(dlq)
    transfers = _by_payment(context.transfers)
    for hold in context.holds:
        cents = captured.get(hold.payment_id)
        if cents is None or hold.payment_id in parked:
            continue
        pid = hold.payment_id
        settled = (
            cents - fees.fee(cents) - at_card[pid] - fees.chargeback_minor * opened[pid] - cents * lost[pid]
        )
        share = balance_deltas(transfers[pid]).get(AccountId.card_clearing(hold.currency), 0)
        if share != -settled:
            message = f"its card clearing share is {share} cents; the network settles {settled} for it"
            result.flag("CARD_CLEARING_MISMATCH", pid, message)


def _parked(dlq: Sequence[DlqRecord]) -> set[str]:
    """The payments with a message in a DLQ: they wait there, with its reason."""
    return {record.payment_id for record in dlq if record.payment_id is not None}


def _by_payment(transfers: Iterable[Transfer]) -> dict[str, list[Transfer]]:
    grouped: dict[str, list[Transfer]] = defaultdict(list)
    for transfer in transfers:
        grouped[transfer.payment_id].append(transfer)
    return grouped


def _check_card_money(result: Reconciliation, unique: Sequence[ev.Event]) -> None:
    """A charged payment's hold is what its card gave (``HELD_NOT_CAPTURED``), and its card gets
    back exactly what escrow and lost clawbacks refunded the customer (``REFUND_NOT_AT_CARD``):
    through the processor, or already through a lost chargeback (the network gave it back)."""
    captured = {
        e.payment_id: e.data.charge.captured_cents for e in unique if isinstance(e, ev.PaymentCharged)
    }
    for event in unique:
        if isinstance(event, ev.FundsHeld) and event.payment_id in captured:
            held, card = event.data.hold.amount_cents, captured[event.payment_id]
            if held != card:
                result.flag("HELD_NOT_CAPTURED", event.payment_id, f"held {held} cents, the card gave {card}")
    owed: Counter[str] = Counter()
    returned: Counter[str] = Counter()
    for event in unique:
        if isinstance(event, ev.FundsRefunded) or (
            isinstance(event, ev.ClawbackResolved) and event.data.outcome is ev.DisputeOutcome.REFUND
        ):
            owed[event.payment_id] += event.data.amount_cents
            if event.data.chargeback:
                returned[event.payment_id] += event.data.amount_cents
        elif isinstance(event, ev.CardRefunded):
            returned[event.payment_id] += event.data.amount_cents
    for payment_id in sorted((owed | returned).keys() & captured.keys()):
        if owed[payment_id] != returned[payment_id]:
            message = f"refunded {owed[payment_id]} cents, the card got back {returned[payment_id]}"
            result.flag("REFUND_NOT_AT_CARD", payment_id, message)


# -- pools are the sum of the payments' journals -----------------------------------------------


def _pool_shares(hold: Hold) -> dict[AccountKind, int]:
    """What a payment's journal must leave in each pool account, from its hold alone."""
    clawbacks = {d.episode for d in hold.open_disputes(DisputePhase.CLAWBACK)}
    return {
        AccountKind.ESCROW: 0 if hold.is_resolved else hold.amount_cents,
        AccountKind.SETTLEMENT: hold.paid_out_cents if hold.payout_ref is not None else 0,
        AccountKind.DISPUTES: hold.released_cents * len(clawbacks),
    }


def _check_ledger_accounts(result: Reconciliation, context: Context) -> None:
    """Each balance kept as an item equals the sum of the journals' postings to it
    (``LEDGER_ACCOUNT_MISMATCH``), and each payment's journal leaves in every pool exactly what
    its hold says (``LEDGER_SHARE_MISMATCH``), so each pool total is the sum over the payments."""
    journal = balance_deltas(context.transfers)
    for account, cents in sorted(context.stored_balances.items()):
        if cents != journal.get(account, 0):
            message = f"{account} is stored as {cents} cents, the journals sum to {journal.get(account, 0)}"
            result.flag("LEDGER_ACCOUNT_MISMATCH", None, message)
    by_payment = _by_payment(context.transfers)
    for hold in context.holds:
        if hold.payment_id not in by_payment:
            continue
        shares = balance_deltas(by_payment[hold.payment_id])
        for kind, expected in _pool_shares(hold).items():
            share = shares.get(AccountId(kind, hold.currency), 0)
            if share != expected:
                message = f"its journal leaves {share} cents in {kind}, its hold {expected}"
                result.flag("LEDGER_SHARE_MISMATCH", hold.payment_id, message)


# -- payments end once ---------------------------------------------------------------------------


def _check_terminal_states(
    result: Reconciliation,
    payment_ids: set[str],
    events: Sequence[ev.Event],
    dlq: Sequence[DlqRecord],
    context: Context,
) -> None:
    result.payments = len(payment_ids)
    by_payment: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for event in events:
        by_payment[event.payment_id][event.event_type].add(event.event_id)
    parked = _parked(dlq)
    in_review = {
        e.payment_id
        for e in events
        if isinstance(e, ev.PaymentScored) and e.data.assessment.decision is ev.Decision.REVIEW
    }
    disputed = {hold.payment_id for hold in context.holds if hold.open_disputes() and not hold.payout_ref}
    waiting = [
        ("review", in_review),
        ("set_aside", _set_aside(events)),
        ("disputed", disputed),
        ("awaiting_account", _awaiting_account(context.payouts)),
        ("dlq", parked),
    ]
    awaiting = _awaiting_after_return(events)
    refusals = [e for e in events if isinstance(e, ev.RequestRefused)]
    result.refused_requests = Counter(e.data.code.value for e in refusals)
    result.duplicate_requests = sum(1 for e in refusals if e.data.code is ev.RefusalCode.DUPLICATE_PAYMENT_ID)
    for payment_id in sorted(payment_ids):
        seen = by_payment.get(payment_id, {})
        terminal_types = sorted(t for t in seen if t in PAYMENT_TERMINALS)
        if len(terminal_types) > 1:
            result.flag("SEVERAL_TERMINAL_STATES", payment_id, f"several terminal states {terminal_types}")
        for event_type in terminal_types:
            # A payout the bank returned may be filed again: one PayoutBatched more per return.
            allowed = 1 + (len(seen.get("PayoutReturned", ())) if event_type == "PayoutBatched" else 0)
            if len(seen[event_type]) > allowed:
                count = len(seen[event_type])
                result.flag("TERMINAL_ANNOUNCED_TWICE", payment_id, f"{count} distinct {event_type} events")
        state = _state(payment_id, terminal_types, waiting)
        if state == "PayoutBatched" and payment_id in awaiting:
            state = "returned"  # the bank returned its payout; it waits for new account details
        if state == "lost":
            result.flag("PAYMENT_LOST", payment_id, f"neither terminal nor in a DLQ (last: {sorted(seen)})")
        result.states[state] += 1
        result.payment_states[payment_id] = state


def _awaiting_account(rows: Sequence[PayoutRow]) -> set[str]:
    """Payments whose payout waits for new account details (its account takes no credits)."""
    return {row.payment_id for row in rows if row.status == "waiting"}


def _set_aside(events: Sequence[ev.Event]) -> set[str]:
    """Payments whose payout the ACH cut set aside (an operator must decide)."""
    return {e.payment_id for e in events if isinstance(e, ev.ItemSetAside) and e.data.job == "ach_cut"}


def _state(payment_id: str, terminal_types: Sequence[str], waiting: Sequence[tuple[str, set[str]]]) -> str:
    """A payment's state at the end: its terminal event type, else the first state that waits for
    it (review, set aside, disputed, dlq), else lost."""
    if terminal_types:
        return terminal_types[0]
    return next((state for state, payments in waiting if payment_id in payments), "lost")


# -- fraud reviews are decided once, by their deadline ------------------------------------------

REVIEW_REASON_CODES = frozenset({"REVIEW_DECLINED", "REVIEW_EXPIRED"})


def review_outcome(event: ev.Event) -> bool:
    """An event that closes a fraud review: approved (PaymentScored after review) or declined."""
    if isinstance(event, ev.PaymentScored):
        return event.data.review is not None and event.data.assessment.decision is ev.Decision.APPROVE
    return isinstance(event, ev.PaymentDeclined) and event.data.reason_code in REVIEW_REASON_CODES


def _check_reviews(result: Reconciliation, events: Sequence[ev.Event], context: Context) -> None:
    """REVIEW_DECIDED_TWICE: more than one outcome for a review; REVIEW_PAST_DEADLINE: a review
    still open at the end of the run though its deadline passed more than a sweep period ago."""
    outcomes: dict[str, set[str]] = defaultdict(set)
    deadlines: dict[str, datetime] = {}
    for event in events:
        if review_outcome(event):
            outcomes[event.payment_id].add(event.event_id)
        elif isinstance(event, ev.PaymentScored) and event.data.review is not None:
            deadlines[event.payment_id] = event.data.review.deadline
    for payment_id, ids in sorted(outcomes.items()):
        if len(ids) > 1:
            result.flag("REVIEW_DECIDED_TWICE", payment_id, f"{len(ids)} outcome events for one review")
    if context.as_of is None:
        return
    for payment_id, deadline in sorted(deadlines.items()):
        if payment_id not in outcomes and deadline + context.review_sweep_period < context.as_of:
            result.flag(
                "REVIEW_PAST_DEADLINE",
                payment_id,
                f"review still open at {context.as_of.isoformat()}, deadline {deadline.isoformat()}",
            )


# -- payouts match releases ----------------------------------------------------------------------


def _check_payouts(
    result: Reconciliation,
    events: Sequence[ev.Event],
    ach_entries: Sequence[AchEntry],
    context: Context,
    dlq: Sequence[DlqRecord],
) -> None:
    released = {e.payment_id: e.data.amount_cents for e in events if isinstance(e, ev.FundsReleased)}
    reversed_ = {e.payment_id for e in events if isinstance(e, ev.FundsRefunded) and e.data.after_release}
    batched = {(e.data.file_key, e.data.trace_number): e for e in events if isinstance(e, ev.PayoutBatched)}
    netted = [e for e in events if isinstance(e, ev.PayoutNetted)]
    # Released to be paid out: a release a dispute reversed before its payout was filed is refunded.
    result.released_cents = sum(
        cents for payment_id, cents in released.items() if payment_id not in reversed_
    )
    credits = [entry for entry in ach_entries if entry.is_credit and not entry.prenote]
    result.prenotes = sum(1 for entry in ach_entries if entry.prenote)
    result.ach_entries = len(credits)
    result.ach_credit_cents = sum(entry.amount_cents for entry in credits)
    for entry in credits:
        payout = batched.get((entry.file_key, entry.trace_number))
        if payout is None:
            message = f"{entry.file_key} #{entry.trace_number}: entry without PayoutBatched"
            result.flag("ACH_ENTRY_UNANNOUNCED", None, message)
        elif payout.data.amount_cents != entry.amount_cents:
            result.flag(
                "ACH_AMOUNT_MISMATCH", payout.payment_id, f"file pays {entry.amount_cents}, event differs"
            )
    returned = _returned_traces(events)
    outstanding = {key: p for key, p in batched.items() if p.data.trace_number not in returned}
    result.returned_cents = sum(e.amount_cents for e in credits if e.trace_number in returned)
    filings = Counter(p.payment_id for p in batched.values())
    result.paid_again = sum(1 for count in filings.values() if count > 1)
    result.ach_credit_cents -= result.returned_cents
    paid = Counter([*(p.payment_id for p in outstanding.values()), *(n.payment_id for n in netted)])
    for payment_id, count in sorted(paid.items()):
        if count > 1:
            result.flag("PAID_OUT_TWICE", payment_id, f"paid out {count} times, none of them returned")
    result.netted_cents = sum(p.data.netted_cents for p in outstanding.values()) + sum(
        n.data.netted_cents for n in netted
    )
    for payout in outstanding.values():
        expected = released.get(payout.payment_id, 0) - payout.data.netted_cents
        if payout.data.amount_cents != expected:
            message = f"entry pays {payout.data.amount_cents}, released less netted is {expected}"
            result.flag("PAYOUT_NOT_RELEASED_AMOUNT", payout.payment_id, message)
    waiting = {hold.payment_id for hold in context.holds if hold.payout_blocked} | _set_aside(events)
    waiting |= _awaiting_after_return(events) | _awaiting_account(context.payouts)
    waiting |= {r.payment_id for r in dlq if r.detail_type == "FundsReleased" and r.payment_id}  # parked
    for payment_id in sorted(set(released) - set(paid) - reversed_ - waiting):
        result.flag("RELEASED_NOT_PAID", payment_id, "released but never paid out, set aside nor refunded")
    filed = sum(released.get(pid, 0) for pid in paid if pid not in reversed_) - result.netted_cents
    if result.ach_credit_cents != filed:
        message = f"ACH credits {result.ach_credit_cents} != released {filed} cents (net of clawbacks)"
        result.flag("ACH_CREDITS_NOT_RELEASED", None, message)


def _returned_traces(events: Sequence[ev.Event]) -> set[str]:
    return {e.data.original_trace_number for e in events if isinstance(e, ev.PayoutReturned)}


def _awaiting_after_return(events: Sequence[ev.Event]) -> set[str]:
    """Payments whose last ACH entry the bank returned (not sent again yet)."""
    returned = _returned_traces(events)
    last: dict[str, str] = {}
    for event in events:
        if isinstance(event, ev.PayoutBatched):
            last[event.payment_id] = event.data.trace_number
    return {payment_id for payment_id, trace in last.items() if trace in returned}


def _check_bank_answers(
    result: Reconciliation,
    events: Sequence[ev.Event],
    answers: Sequence[BankAnswer],
    transfers: Sequence[Transfer],
) -> None:
    """Every answer in the bank's files is applied (return booked or prenote returned, correction
    stored) or parked, and every return in the journal answers a return in a bank file."""
    returned = {e.data.original_trace_number: e for e in events if isinstance(e, ev.PayoutReturned)}
    prenotes_returned = {e.data.original_trace_number for e in events if isinstance(e, ev.PrenoteReturned)}
    result.prenotes_returned = len(prenotes_returned)
    corrected = {e.data.original_trace_number for e in events if isinstance(e, ev.PayeeAccountCorrected)}
    parked = {(e.data.inbound_key, e.data.trace_number) for e in events if isinstance(e, ev.AchInboundParked)}
    booked = {t.transfer_id for t in transfers if t.kind is TransferKind.PAYOUT_RETURN}
    result.bank_answers = Counter(answer.kind for answer in answers)
    for answer in answers:
        applied = returned.keys() | prenotes_returned if answer.kind == "return" else corrected
        if (
            answer.original_trace_number not in applied
            and (answer.file_key, answer.trace_number) not in parked
        ):
            entry = f"{answer.file_key} #{answer.trace_number}"
            message = f"{entry}: {answer.kind} {answer.code} neither applied nor parked"
            result.flag("BANK_ANSWER_UNAPPLIED", None, message)
    for trace, event in sorted(returned.items()):
        if ledger_return_id(event.payment_id, trace) not in booked:
            result.flag(
                "RETURN_NOT_BOOKED", event.payment_id, f"PayoutReturned for {trace} without its reversal"
            )
    in_files = {a.original_trace_number for a in answers if a.kind == "return"}
    for transfer_id in sorted(booked):
        trace = transfer_id.rsplit(":", 1)[-1]
        if trace not in in_files:
            result.flag(
                "RETURN_WITHOUT_BANK_FILE", None, f"{transfer_id} books a return no bank file carries"
            )


def _check_payout_returns(result: Reconciliation, transfers: Sequence[Transfer]) -> None:
    """In the journal, each return undoes one payout of its payment with its mirror image, and a
    payment's next payout comes only once the one before was returned."""
    payouts = {t.transfer_id: t for t in transfers if t.kind is TransferKind.PAYOUT}
    returns: dict[str, Transfer] = {}
    for back in (t for t in transfers if t.kind is TransferKind.PAYOUT_RETURN):
        payout = payouts.get(back.reference or "")
        if payout is None or payout.payment_id != back.payment_id or payout.transfer_id in returns:
            message = f"{back.transfer_id} returns {back.reference}, not an outstanding payout of the payment"
            result.flag("RETURN_WITHOUT_PAYOUT", back.payment_id, message)
            continue
        returns[payout.transfer_id] = back
        undone = {account: -cents for account, cents in balance_deltas([payout]).items()}
        if balance_deltas([back]) != undone:
            message = f"{back.transfer_id} does not move back what {payout.transfer_id} paid"
            result.flag("RETURN_AMOUNT_MISMATCH", back.payment_id, message)
    by_payment: dict[str, list[Transfer]] = defaultdict(list)
    for payout in payouts.values():
        by_payment[payout.payment_id].append(payout)
    for payment_id, attempts in sorted(by_payment.items()):
        _check_one_payout_outstanding(result, payment_id, attempts, returns)


def _check_one_payout_outstanding(
    result: Reconciliation, payment_id: str, attempts: list[Transfer], returns: Mapping[str, Transfer]
) -> None:
    def order(payout: Transfer) -> tuple[datetime, bool, datetime]:
        back = returns.get(payout.transfer_id)
        return payout.at, back is None, back.at if back is not None else payout.at

    attempts = sorted(attempts, key=order)
    for earlier, later in pairwise(attempts):
        back = returns.get(earlier.transfer_id)
        if back is None or back.at > later.at:
            message = f"{later.transfer_id} while {earlier.transfer_id} was outstanding"
            result.flag("PAYOUTS_OUTSTANDING_AT_ONCE", payment_id, message)


# -- files and the payouts behind them ----------------------------------------------------------


def _check_files(result: Reconciliation, events: Sequence[ev.Event], ach_entries: Sequence[AchEntry]) -> None:
    currencies = {e.payment_id: e.data.currency for e in events if isinstance(e, ev.FundsReleased)}
    for payout in (e for e in events if isinstance(e, ev.PayoutBatched)):
        currency = currencies.get(payout.payment_id)
        if currency is not None and currency != "USD":
            result.flag(
                "ACH_NOT_USD", payout.payment_id, f"filed by ACH, which pays USD, for a {currency} payment"
            )
    files: dict[tuple[str, str], set[str]] = defaultdict(set)
    traces: dict[tuple[str, str], set[str]] = defaultdict(set)
    settlement: dict[tuple[str, date, bool], AchEntry] = {}
    for entry in ach_entries:
        if entry.file_id:
            files[(entry.odfi, entry.file_id)].add(entry.file_key)
        traces[(entry.odfi, entry.trace_number)].add(entry.file_key)
        if entry.created_at is not None and entry.effective_date is not None:
            settlement.setdefault((entry.file_key, entry.effective_date, entry.same_day), entry)
    for (odfi, file_id), keys in sorted(files.items()):
        if len(keys) > 1:
            result.flag(
                "DUPLICATE_FILE_ID", None, f"{len(keys)} files of ODFI {odfi} share file id {file_id}"
            )
    for (odfi, trace), keys in sorted(traces.items()):
        if len(keys) > 1:
            result.flag("TRACE_REUSED", None, f"trace number {trace} of ODFI {odfi} in {len(keys)} files")
    for (key, effective, same_day), entry in sorted(settlement.items(), key=lambda item: item[0][0]):
        assert entry.created_at is not None
        problem = settlement_problem(entry.created_at, effective, same_day=same_day)
        if problem is not None:
            result.flag("SETTLEMENT_DATE_INVALID", None, f"{key}: {problem}")


def _check_payout_rows(result: Reconciliation, events: Sequence[ev.Event], context: Context) -> None:
    announced = _set_aside(events)
    for row in context.payouts:
        if row.status == "set_aside" and row.payment_id not in announced:
            result.flag(
                "SET_ASIDE_UNANNOUNCED", row.payment_id, f"set aside ({row.reason}) without ItemSetAside"
            )
        if row.status == "pending" and context.as_of is not None:
            _check_stale(result, row, context.as_of, context.submission_lead)


def _check_stale(result: Reconciliation, row: PayoutRow, as_of: datetime, lead: timedelta) -> None:
    """A pending payout whose window's Fed deadline has passed was neither filed nor set aside."""
    window = next_window(row.released_at, amount_cents=max(1, row.amount_cents), lead=lead)
    if as_of >= window.deadline:
        message = f"still pending after its {window.kind} deadline {window.deadline.isoformat()}"
        result.flag("STALE_PAYOUT", row.payment_id, message)


# -- disputes ------------------------------------------------------------------------------------


def _check_disputes(result: Reconciliation, events: Sequence[ev.Event], context: Context) -> None:
    opened = {(e.payment_id, e.data.dispute_id) for e in events if isinstance(e, ev.DisputeOpened)}
    by_id = {e.event_id: e for e in events}
    earlier: dict[str, list[ev.Event]] = defaultdict(list)  # each payment's events so far
    aged: dict[str, set[str]] = defaultdict(set)
    for event in events:
        before = earlier[event.payment_id]
        dispute_id = _resolved_dispute(event, by_id)
        if dispute_id is not None and (event.payment_id, dispute_id) not in opened:
            message = f"{event.event_type} resolves dispute {dispute_id}, which was never opened"
            result.flag("RESOLUTION_WITHOUT_DISPUTE", event.payment_id, message)
        if isinstance(event, ev.FundsReleased | ev.FundsRefunded) and not _after_release(event):
            _check_frozen_resolution(result, before, event, dispute_id)
        if event.event_type in PAYOUT_TYPES:
            _check_disputed_payout(result, before, event)
        if isinstance(event, ev.DisputeAged):
            aged[event.payment_id].add(event.data.dispute_id)
        before.append(event)
    for hold in context.holds:
        _check_hold_disputes(result, hold, aged[hold.payment_id], context)


def _resolved_dispute(event: ev.Event, by_id: Mapping[str, ev.Event]) -> str | None:
    """The dispute an event says it resolves, if any."""
    if isinstance(event, ev.DisputeClosed):
        return event.data.dispute_id
    if isinstance(event, ev.FundsRefunded) and event.data.dispute_id:
        return event.data.dispute_id
    cause = by_id.get(event.causation_id or "")
    if isinstance(event, ev.FundsReleased) and isinstance(cause, ev.DisputeResolved):
        return cause.data.dispute_id
    return None


def _after_release(event: ev.Event) -> bool:
    return isinstance(event, ev.FundsRefunded) and event.data.after_release


def _open_before(before: Sequence[ev.Event], payment_id: str, acks: tuple[type[ev.Event], ...]) -> set[str]:
    """Disputes of a payment acknowledged (by the given events) and not closed, in ``before``."""
    open_: set[str] = set()
    for event in before:
        if event.payment_id != payment_id:
            continue
        if isinstance(event, acks):
            open_.add(str(event.data.dispute_id))
        elif isinstance(event, ev.DisputeClosed):
            open_.discard(event.data.dispute_id)
    return open_


def _check_frozen_resolution(
    result: Reconciliation, before: Sequence[ev.Event], event: ev.Event, resolves: str | None
) -> None:
    frozen = _open_before(before, event.payment_id, (ev.HoldFrozen,)) - {resolves}
    if frozen:
        message = f"{event.event_type} while dispute {sorted(frozen)} froze the hold"
        result.flag("FROZEN_HOLD_RELEASED", event.payment_id, message)


def _check_disputed_payout(result: Reconciliation, before: Sequence[ev.Event], event: ev.Event) -> None:
    held_back = _open_before(before, event.payment_id, (ev.HoldFrozen, ev.PayoutHeldBack))
    if held_back:
        message = f"{event.event_type} filed while dispute {sorted(held_back)} was open"
        result.flag("PAYOUT_WHILE_DISPUTED", event.payment_id, message)


def _check_hold_disputes(result: Reconciliation, hold: Hold, aged_events: set[str], context: Context) -> None:
    """``aged_events``: the disputes of the hold's payment a DisputeAged signalled."""
    pid = hold.payment_id
    for dispute in hold.open_disputes(DisputePhase.PAYOUT):
        if hold.payout_ref is not None:
            message = f"paid out by {hold.payout_ref} with dispute {dispute.dispute_id} open"
            result.flag("PAYOUT_WHILE_DISPUTED", pid, message)
    for dispute in hold.open_disputes(DisputePhase.ESCROW):
        if hold.is_resolved:
            message = f"hold {hold.status} with dispute {dispute.dispute_id} open"
            result.flag("FROZEN_HOLD_RELEASED", pid, message)
    if context.as_of is None:
        return
    for dispute in hold.open_disputes():
        if dispute.opened_at + context.dispute_max_age > context.as_of:
            continue
        age = context.as_of - dispute.opened_at
        result.flag("DISPUTE_PAST_AGE", pid, f"dispute {dispute.dispute_id} open for {age.days} days")
        if dispute.dispute_id not in aged_events:
            result.flag("DISPUTE_AGE_UNSIGNALLED", pid, f"no DisputeAged for dispute {dispute.dispute_id}")


# -- trust boundary and the pipeline's clock -----------------------------------------------------


def _effects(events: Sequence[ev.Event], foreign: set[str]) -> dict[str, list[ev.Event]]:
    """Events each event caused, refusals left out (a refusal is the pipeline saying no).

    A payout acts on its payment's release without naming it as cause (a cut caused it): it is
    counted against the payment's trusted releases, or against a foreign one only if there is
    no other.
    """
    caused: dict[str, list[ev.Event]] = defaultdict(list)
    releases: dict[str, list[str]] = defaultdict(list)
    for event in events:
        if event.causation_id and event.event_type not in REFUSALS:
            caused[event.causation_id].append(event)
        if isinstance(event, ev.FundsReleased):
            releases[event.payment_id].append(event.event_id)
    for event in events:
        if event.event_type in PAYOUT_TYPES:
            candidates = releases.get(event.payment_id, [])
            trusted = [release for release in candidates if release not in foreign]
            for release_id in trusted or candidates:
                caused[release_id].append(event)
    return caused


def _is_foreign(item: Observed, context: Context) -> bool:
    """From a source its type does not allow, or an internal event published from outside."""
    event = item.event
    if item.source is not None and ev.untrusted_origin(event.event_type, item.source, event.producer):
        return True
    return event.event_id in context.external_event_ids and event.event_type not in OUTSIDE_EVENT_TYPES


def _check_trust(
    result: Reconciliation, seen: Sequence[Observed], foreign: set[str], context: Context
) -> None:
    effects = _effects([item.event for item in seen], foreign)
    for item in seen:
        event = item.event
        acted_on = effects.get(event.event_id, [])
        if not acted_on:
            continue
        if event.event_id in foreign:
            origin = item.source or "outside the pipeline"
            message = f"{event.event_type} from {origin} caused {acted_on[0].event_type}"
            result.flag("FOREIGN_SOURCE_ACTED_ON", event.payment_id, message)
        if event.producer == ev.CLIENT_PRODUCER and item.received_at is not None:
            _check_client_time(result, item, acted_on[0], context.client_skew)


def _check_client_time(result: Reconciliation, item: Observed, effect: ev.Event, skew: timedelta) -> None:
    assert item.received_at is not None
    for name, moment in client_timestamps(item.event):
        off = abs(moment - item.received_at)
        if off > skew:
            message = (
                f"{effect.event_type} acted on {item.event.event_type}.{name}, {off} off the pipeline clock"
            )
            result.flag("CLIENT_TIME_TRUSTED", item.event.payment_id, message)
            return


def _check_time(result: Reconciliation, events: Sequence[ev.Event]) -> None:
    held = {e.payment_id: e.data.hold.held_at for e in events if isinstance(e, ev.FundsHeld)}
    by_id = {e.event_id: e for e in events}
    for event in events:
        held_at = held.get(event.payment_id)
        if isinstance(event, ev.FundsReleased) and held_at is not None and event.data.released_at < held_at:
            result.flag("TIME_NOT_MONOTONE", event.payment_id, "released before it was held")
        cause = by_id.get(event.causation_id or "")
        if (
            cause is not None
            and cause.producer != ev.CLIENT_PRODUCER
            and event.occurred_at < cause.occurred_at
        ):
            message = f"{event.event_type} dated before its cause {cause.event_type}"
            result.flag("TIME_NOT_MONOTONE", event.payment_id, message)
