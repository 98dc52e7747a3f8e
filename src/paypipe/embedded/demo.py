"""The embedded end-to-end run behind ``paypipe run``: traffic in, terminal states and ACH files out."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.scenario import TERMINAL_STATES, build_scenario, final_states
from paypipe.events import models as ev

Progress = Callable[[str, int, int], None]


@dataclass
class RunReport:
    payments: int
    states: Counter[str]
    intents: Counter[str]
    ach_files: list[Path] = field(default_factory=list)
    ach_entries: int = 0
    ach_credit_cents: int = 0
    released_cents: int = 0
    dlq_depths: dict[str, int] = field(default_factory=dict)
    terminal_events_per_payment: Counter[int] = field(default_factory=Counter)
    events_seen: int = 0

    @property
    def unfinished(self) -> int:
        return sum(count for state, count in self.states.items() if state not in TERMINAL_STATES)


def run_demo(
    payments: int = 50,
    *,
    seed: int = 7,
    out_dir: Path = Path("out"),
    progress: Progress | None = None,
    overrides: dict[str, str] | None = None,
) -> RunReport:
    notify = progress or (lambda _phase, _done, _total: None)
    now = datetime.now(UTC).replace(microsecond=0)
    scenario = build_scenario(payments, seed=seed, now=now, run_id=f"run{now:%H%M%S}")
    rng = random.Random(seed)
    with EmbeddedPipeline(overrides=overrides) as pipeline:
        hold_days = int(pipeline.stack.parameters["HoldDays"])

        notify("publish PaymentRequested", 0, payments)
        for start in range(0, payments, 50):
            chunk = scenario.requests[start : start + 50]
            result = pipeline.publish(chunk)
            if not result.ok:
                raise RuntimeError(f"{len(result.failed)} requests could not be published")
            notify("publish PaymentRequested", start + len(chunk), payments)
        _drain(pipeline, "validate -> tokenize -> fraud -> escrow hold", notify)

        held = [event for event in pipeline.observed() if isinstance(event, ev.FundsHeld)]
        follow_ups: list[ev.Event] = []
        for hold in held:
            roll = rng.random()
            if roll < 0.75:
                follow_ups.append(
                    _client_event(ev.ServiceCompleted, hold, ev.ServiceCompletedData(completed_at=now))
                )
            elif roll < 0.85:
                dispute = f"dsp-{hold.payment_id}"
                outcome = ev.DisputeOutcome.REFUND if roll < 0.80 else ev.DisputeOutcome.RELEASE
                follow_ups.append(
                    _client_event(
                        ev.DisputeOpened,
                        hold,
                        ev.DisputeOpenedData(dispute_id=dispute, reason="not as described"),
                    )
                )
                follow_ups.append(
                    _client_event(
                        ev.DisputeResolved, hold, ev.DisputeResolvedData(dispute_id=dispute, outcome=outcome)
                    )
                )
            # else: left alone, released by the sweep once the hold expires
        notify("service completions and disputes", 0, len(follow_ups))
        # Disputes are opened before they are resolved, as in life: publish in two waves.
        opened = [event for event in follow_ups if not isinstance(event, ev.DisputeResolved)]
        resolved = [event for event in follow_ups if isinstance(event, ev.DisputeResolved)]
        for wave in (opened, resolved):
            if wave and not pipeline.publish(wave).ok:
                raise RuntimeError("follow-up events could not be published")
            _drain(pipeline, "release", notify)

        notify(f"fast-forward {hold_days + 1} days: expired-hold sweep", 0, 1)
        pipeline.run_scheduled(now + timedelta(days=hold_days + 1))
        _drain(pipeline, "release sweep -> ACH batch", notify)

        notify("ACH cut", 0, 1)
        pipeline.run_scheduled(now + timedelta(days=hold_days + 3))
        _drain(pipeline, "ACH cut", notify)

        observed = pipeline.observed()
        report = RunReport(
            payments=payments,
            states=Counter(final_states(observed).values()),
            intents=scenario.mix(),
            dlq_depths={name: depth for name, depth in pipeline.queue_depths().items() if depth},
            events_seen=len(observed),
        )
        terminal = Counter(
            event.payment_id
            for event in observed
            if event.event_type in ev.TERMINAL_EVENT_TYPES and event.event_type != "AchBatchCreated"
        )
        report.terminal_events_per_payment = Counter(terminal.values())
        report.released_cents = sum(e.data.amount_cents for e in observed if isinstance(e, ev.FundsReleased))
        for batch in (event for event in observed if isinstance(event, ev.AchBatchCreated)):
            report.ach_entries += batch.data.entry_count
            report.ach_credit_cents += batch.data.total_credit_cents
            report.ach_files.append(
                pipeline.download(batch.data.bucket, batch.data.file_key, out_dir / batch.data.file_key)
            )
    return report


def _client_event(model: type[ev.Event], cause: ev.FundsHeld, data: ev.Payload) -> ev.Event:
    return model.create(payment_id=cause.payment_id, data=data, producer="client", cause=cause)


def _drain(pipeline: EmbeddedPipeline, phase: str, notify: Progress) -> None:
    handled = 0

    def on_round(count: int) -> None:
        nonlocal handled
        handled += count
        notify(phase, handled, 0)

    pipeline.drain(on_round=on_round)
