"""The embedded end-to-end run behind ``paypipe run``: traffic in, terminal states and ACH files out.

Every run ends with a reconciliation (see ``reconcile``); with a ``FaultPlan`` the same run is
the fault-injection proof.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from paypipe.adapters.payouts_store import PayoutsStore
from paypipe.domain.ach_calendar import EASTERN
from paypipe.domain.acquirer_simulator import CHARGEBACK_DECIDED_AFTER, CHARGEBACK_OPENS_AFTER
from paypipe.domain.bank_simulator import BankSimulator
from paypipe.domain.settlement import SettlementTotals, settlement_totals
from paypipe.embedded.bank import SimulatedBank
from paypipe.embedded.data_scan import Secrets, pipeline_sources, scan
from paypipe.embedded.evidence import ach_file_entries, dlq_records, ledger, run_context
from paypipe.embedded.faults import FaultPlan
from paypipe.embedded.reconcile import Reconciliation, reconcile
from paypipe.embedded.reviews import recorded_decisions, review_counts, write_reviews
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.scenario import Scenario, build_scenario
from paypipe.embedded.status_files import write_status_files
from paypipe.events import models as ev

Progress = Callable[[str, int, int], None]
SCHEDULE_RUNS_AFTER_EXPIRY = 3  # the schedules keep firing; a failed run is caught up by the next
BANK_ROUNDS = 3  # payout files answered, then the files of what was sent again, and so on
PRENOTE_WAIT = timedelta(days=7)  # past the 3 banking days after any prenote's settlement date


@dataclass
class RunReport:
    payments: int
    intents: Counter[str]
    reconciliation: Reconciliation
    ach_files: list[Path] = field(default_factory=list)
    events_seen: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    stored_data_leaks: list[str] = field(default_factory=list)
    reviews: dict[str, int] = field(default_factory=dict)  # opened, approved, declined, expired
    card_declines: Counter[str] = field(default_factory=Counter)  # by the processor's decline code
    settled: dict[str, SettlementTotals] = field(default_factory=dict)  # the acquirer's reports, per currency
    settlement_match: dict[str, int] = field(default_factory=dict)  # days, lines matched, discrepancies

    @property
    def ok(self) -> bool:
        """Reconciled, and no card number, CVV or account number found outside the vaults."""
        return self.reconciliation.ok and not self.stored_data_leaks


def run_demo(
    payments: int = 50,
    *,
    seed: int = 7,
    out_dir: Path = Path("out"),
    progress: Progress | None = None,
    overrides: dict[str, str] | None = None,
    faults: FaultPlan | None = None,
    bank: BankSimulator | None = None,
    prenote: bool = False,
) -> RunReport:
    """The run; ``bank`` answers the payout files (returns, notifications of change), when given.

    Prenotes are off unless ``prenote`` (or ``overrides``) turns them on.
    """
    notify = progress or (lambda _phase, _done, _total: None)
    now = datetime.now(UTC).replace(microsecond=0)
    scenario = build_scenario(payments, seed=seed, now=now, run_id=f"run{now:%H%M%S}")
    rng = random.Random(seed)
    parameters = {"AchPrenote": "on" if prenote else "off", **(overrides or {})}
    with EmbeddedPipeline(overrides=parameters, faults=faults, start=now) as pipeline:
        _publish_requests(pipeline, scenario, notify)
        _decide_reviews(pipeline, out_dir, notify)
        write_reviews(pipeline, out_dir)  # as they stand before the run fast-forwards past deadlines
        _complete_and_dispute(pipeline, rng, notify)
        _relay_chargebacks(pipeline, now, notify)
        _run_schedules(pipeline, now, notify)
        if bank is not None:
            _bank_answers(pipeline, bank, notify)
        else:
            _cut_after_prenotes(pipeline, notify)
        report = _report(pipeline, scenario, out_dir, faults)
        write_status_files(pipeline, out_dir)
    return report


def _publish_requests(pipeline: EmbeddedPipeline, scenario: Scenario, notify: Progress) -> None:
    payments = len(scenario.requests)
    notify("publish PaymentRequested", 0, payments)
    for start in range(0, payments, 50):
        chunk = scenario.requests[start : start + 50]
        if not pipeline.play(chunk).ok:  # each request at its own time on the pipeline clock
            raise RuntimeError("requests could not be published")
        notify("publish PaymentRequested", start + len(chunk), payments)
    _drain(pipeline, "validate -> tokenize -> fraud -> escrow hold", notify)


def _decide_reviews(pipeline: EmbeddedPipeline, out_dir: Path, notify: Progress) -> None:
    """Publish the review decisions recorded for this run (``paypipe review --embedded``) as the operator."""
    decisions = recorded_decisions(pipeline, out_dir)
    if not decisions:
        return
    notify("operator review decisions", 0, len(decisions))
    if not pipeline.publish_as(ev.OPERATOR_PRODUCER, decisions).ok:
        raise RuntimeError("review decisions could not be published")
    _drain(pipeline, "fraud review decisions -> escrow hold", notify)


def _complete_and_dispute(pipeline: EmbeddedPipeline, rng: random.Random, notify: Progress) -> None:
    held = {e.payment_id: e for e in pipeline.observed() if isinstance(e, ev.FundsHeld)}
    opened, resolved = _follow_ups(list(held.values()), rng, pipeline.clock.now())
    notify("service completions and disputes", 0, len(opened) + len(resolved))
    # Disputes are opened before they are resolved, as in life: publish in two waves.
    for wave in (opened, resolved):
        if wave and not pipeline.publish(wave).ok:
            raise RuntimeError("follow-up events could not be published")
        _drain(pipeline, "release", notify)


PROCESSOR_FEED_FUNCTION = "ProcessorFeedFunction"


def _relay_chargebacks(pipeline: EmbeddedPipeline, now: datetime, notify: Progress) -> None:
    """The processor's feed when the network's chargebacks open and when it decides them, while
    the holds still stand (later notices are relayed by the schedules after the holds expire)."""
    charged = [e.occurred_at for e in pipeline.observed() if isinstance(e, ev.PaymentCharged)]
    if not charged:
        return
    expiry = now + timedelta(days=int(pipeline.stack.parameters["HoldDays"]))
    for after in (CHARGEBACK_OPENS_AFTER, CHARGEBACK_DECIDED_AFTER):
        at = max(charged) + after + timedelta(minutes=15)
        if at >= expiry:
            return
        notify("processor feed: chargebacks", 0, 0)
        pipeline.run_schedule(PROCESSOR_FEED_FUNCTION, at)
        _drain(pipeline, "processor feed -> release", notify)


def _run_schedules(pipeline: EmbeddedPipeline, now: datetime, notify: Progress) -> None:
    """Fast-forward past hold expiry (sweep and ACH cut), then past the next ACH window."""
    hold_days = int(pipeline.stack.parameters["HoldDays"])
    for run in range(SCHEDULE_RUNS_AFTER_EXPIRY):
        notify(f"fast-forward {hold_days + 1} days: sweep and ACH cut", run, SCHEDULE_RUNS_AFTER_EXPIRY)
        pipeline.run_scheduled(now + timedelta(days=hold_days + 1, minutes=5 * run))
        _drain(pipeline, "release sweep -> ACH batch", notify)
    for run in range(SCHEDULE_RUNS_AFTER_EXPIRY):
        notify("ACH cut after the next window", run, SCHEDULE_RUNS_AFTER_EXPIRY)
        pipeline.run_scheduled(now + timedelta(days=hold_days + 3, minutes=5 * run))
        _drain(pipeline, "ACH cut", notify)


def _bank_answers(pipeline: EmbeddedPipeline, simulator: BankSimulator, notify: Progress) -> None:
    """Let the bank answer every payout file on its delivery days, then cut again (payouts sent
    again or to corrected accounts), until the bank has nothing more to say."""
    bucket = pipeline.stack.outputs["AchBucketName"]
    bank = SimulatedBank(pipeline.client("s3"), simulator)
    for round_number in range(BANK_ROUNDS):
        bank.answer_new_files(bucket)
        if not bank.planned:
            if _cut_after_prenotes(pipeline, notify):
                continue
            return
        for day in sorted({planned.delivery_date for planned in bank.planned}):
            notify("bank answers: returns and notifications of change", round_number, BANK_ROUNDS)
            morning = datetime.combine(day, time(9), tzinfo=EASTERN)
            pipeline.advance_to(morning)
            bank.deliver_due(day, bucket)
            _drain(pipeline, "ACH returns", notify)
        after = pipeline.clock.now()
        for run in range(SCHEDULE_RUNS_AFTER_EXPIRY):
            pipeline.run_scheduled(after + timedelta(hours=8, minutes=5 * run))
            _drain(pipeline, "ACH cut after the bank's answers", notify)
        _cut_after_prenotes(pipeline, notify)


def _cut_after_prenotes(pipeline: EmbeddedPipeline, notify: Progress) -> bool:
    """With prenotes on, cut again once payouts still pending (waiting for their account's prenote)
    may go out; True when it cut."""
    if pipeline.stack.parameters["AchPrenote"] != "on":
        return False
    store = PayoutsStore(pipeline.stack.outputs["PayoutsTableName"], pipeline.client("dynamodb"))
    if not store.pending():
        return False
    notify("ACH cut after the prenotes' waiting period", 0, 1)
    pipeline.run_scheduled(pipeline.clock.now() + PRENOTE_WAIT)
    _drain(pipeline, "ACH cut after the prenotes' waiting period", notify)
    return True


def _report(
    pipeline: EmbeddedPipeline, scenario: Scenario, out_dir: Path, faults: FaultPlan | None
) -> RunReport:
    """Reconcile what the pipeline left behind and scan it for stored card and account data."""
    observed = pipeline.observed()
    log_file = os.environ.get("LOG_FILE")
    leaks = scan(
        pipeline_sources(
            pipeline, Path(log_file).read_text() if log_file and Path(log_file).exists() else ""
        ),
        Secrets.of(ev.to_detail(request) for request in scenario.requests),
    )
    entries, files = ach_file_entries(pipeline, out_dir)
    context = run_context(pipeline)
    return RunReport(
        payments=len(scenario.requests),
        intents=scenario.mix(),
        reconciliation=reconcile(
            (request.payment_id for request in scenario.requests),
            pipeline.observations(),
            dlq_records(pipeline),
            [entry.as_ach_entry() for entry in entries],
            ledger(pipeline).verify_balanced(),
            context=context,
        ),
        ach_files=files,
        events_seen=len(observed),
        injected=Counter(faults.injected) if faults else Counter(),
        stored_data_leaks=[str(leak) for leak in leaks],
        reviews=review_counts(observed),
        card_declines=card_declines(observed),
        settled=settlement_totals(context.settlement_lines or ()),
        settlement_match=settlement_matches(pipeline.observed()),  # the matches run_context made too
    )


def settlement_matches(events: Iterable[ev.Event]) -> dict[str, int]:
    """The days the settlement match reported, the lines it matched and its discrepancies (each
    day's last result)."""
    days = {e.data.day: e.data for e in events if isinstance(e, ev.SettlementReconciled)}
    return {
        "days": len(days),
        "matched": sum(data.matched for data in days.values()),
        "discrepancies": sum(data.discrepancy_count for data in days.values()),
    }


def card_declines(events: Iterable[ev.Event]) -> Counter[str]:
    """The card processor's declines by decline code (each payment once)."""
    codes = {
        e.payment_id: e.data.card.code for e in events if isinstance(e, ev.PaymentDeclined) and e.data.card
    }
    return Counter(codes.values())


def _follow_ups(held: list[ev.FundsHeld], rng: random.Random, now: datetime) -> tuple[list[ev.Event], ...]:
    """75% service completed, 10% disputed (half refunded), the rest left to expire."""
    opened: list[ev.Event] = []
    resolved: list[ev.Event] = []
    for hold in held:
        roll = rng.random()
        if roll < 0.75:
            opened.append(_client_event(ev.ServiceCompleted, hold, ev.ServiceCompletedData(completed_at=now)))
        elif roll < 0.85:
            dispute = f"dsp-{hold.payment_id}"
            outcome = ev.DisputeOutcome.REFUND if roll < 0.80 else ev.DisputeOutcome.RELEASE
            opened.append(
                _client_event(
                    ev.DisputeOpened,
                    hold,
                    ev.DisputeOpenedData(dispute_id=dispute, reason="not as described"),
                )
            )
            resolved.append(
                _client_event(
                    ev.DisputeResolved, hold, ev.DisputeResolvedData(dispute_id=dispute, outcome=outcome)
                )
            )
    return opened, resolved


def _client_event(model: type[ev.Event], cause: ev.FundsHeld, data: ev.Payload) -> ev.Event:
    return model.create(payment_id=cause.payment_id, data=data, producer="client", cause=cause)


def _drain(pipeline: EmbeddedPipeline, phase: str, notify: Progress) -> None:
    handled = 0

    def on_round(count: int) -> None:
        nonlocal handled
        handled += count
        notify(phase, handled, 0)

    pipeline.drain(on_round=on_round)
