"""Reconciliation after a run: prove the money invariants from what the pipeline left behind.

Inputs are the events seen on the bus, the DLQ contents, the entries of every ACH file in S3 and
the ledger's per-currency totals; the checks are pure.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from paypipe.events import models as ev

PAYMENT_TERMINALS = ev.TERMINAL_EVENT_TYPES - {"AchBatchCreated"}


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


@dataclass
class Reconciliation:
    payments: int = 0
    states: Counter[str] = field(default_factory=Counter)
    released_cents: int = 0
    ach_credit_cents: int = 0
    ach_entries: int = 0
    dlq_reasons: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def reconcile(
    requested: Iterable[str],
    observed: Sequence[ev.Event],
    dlq: Sequence[DlqRecord],
    ach_entries: Sequence[AchEntry],
    ledger_totals: Mapping[str, int],
) -> Reconciliation:
    result = Reconciliation()
    payment_ids = set(requested)
    result.payments = len(payment_ids)
    by_payment: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for event in observed:
        by_payment[event.payment_id][event.event_type].add(event.event_id)
    parked = {record.payment_id for record in dlq if record.payment_id}
    result.dlq_reasons = Counter(record.reason for record in dlq)

    in_review = {
        e.payment_id
        for e in observed
        if isinstance(e, ev.PaymentScored) and e.data.assessment.decision is ev.Decision.REVIEW
    }
    for payment_id in sorted(payment_ids):
        seen = by_payment.get(payment_id, {})
        terminal_types = [t for t in seen if t in PAYMENT_TERMINALS]
        review = payment_id in in_review
        if len(terminal_types) > 1:
            result.violations.append(f"{payment_id}: several terminal states {sorted(terminal_types)}")
        for event_type in terminal_types:
            if len(seen[event_type]) > 1:
                count = len(seen[event_type])
                result.violations.append(f"{payment_id}: {count} distinct {event_type} events")
        if terminal_types:
            result.states[terminal_types[0]] += 1
        elif review:
            result.states["review"] += 1
        elif payment_id in parked:
            result.states["dlq"] += 1
        else:
            result.violations.append(f"{payment_id}: neither terminal nor in a DLQ (last: {sorted(seen)})")
            result.states["lost"] += 1

    released = {e.payment_id: e.data.amount_cents for e in observed if isinstance(e, ev.FundsReleased)}
    result.released_cents = sum(released.values())
    batched = {(e.data.file_key, e.data.trace_number): e for e in observed if isinstance(e, ev.PayoutBatched)}
    credits = [entry for entry in ach_entries if entry.is_credit]
    result.ach_entries = len(credits)
    result.ach_credit_cents = sum(entry.amount_cents for entry in credits)
    for entry in credits:
        payout = batched.get((entry.file_key, entry.trace_number))
        if payout is None:
            result.violations.append(f"{entry.file_key} #{entry.trace_number}: entry without PayoutBatched")
        elif payout.data.amount_cents != entry.amount_cents:
            result.violations.append(f"{payout.payment_id}: file pays {entry.amount_cents}, event differs")
    paid = Counter(payout.payment_id for payout in batched.values())
    result.violations.extend(f"{pid}: paid out {count} times" for pid, count in paid.items() if count > 1)
    unpaid = set(released) - set(paid)
    result.violations.extend(f"{pid}: released but never paid out" for pid in sorted(unpaid))
    if result.ach_credit_cents != result.released_cents:
        result.violations.append(
            f"ACH credits {result.ach_credit_cents} != released {result.released_cents} cents"
        )
    for currency, total in ledger_totals.items():
        if total != 0:
            result.violations.append(f"ledger unbalanced in {currency}: {total}")
    return result
