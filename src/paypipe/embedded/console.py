"""Progress and summary for ``paypipe run`` (rich)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from paypipe.embedded.demo import RunReport, run_demo
from paypipe.embedded.scenario import TERMINAL_STATES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--payments", type=int, default=50, help="PaymentRequested events to publish")
    parser.add_argument("--seed", type=int, default=7, help="seed of the sample traffic")
    parser.add_argument("--out", type=Path, default=Path("out"), help="where ACH files and logs are written")


def run(args: argparse.Namespace) -> int:
    return run_with_console(args.payments, seed=args.seed, out_dir=args.out)


def run_with_console(payments: int, *, seed: int, out_dir: Path) -> int:
    console = Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_file = out_dir / "pipeline.log.jsonl"
    os.environ["LOG_FILE"] = str(log_file)  # step logs are JSON lines: keep them out of the summary
    logging.getLogger("botocore").setLevel(logging.WARNING)
    console.print(
        f"[bold]paypipe[/] embedded run: {payments} payments on moto (template: infra/sam/template.yaml)"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def notify(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total or None)
            progress.update(tasks[phase], completed=done, total=total or None)

        report = run_demo(payments, seed=seed, out_dir=out_dir, progress=notify)
        for task_id in tasks.values():
            progress.update(
                task_id,
                total=progress.tasks[task_id].completed or 1,
                completed=progress.tasks[task_id].completed or 1,
            )
    print_summary(console, report)
    console.print(f"step logs: {log_file}")
    return 0 if report.unfinished == 0 and not report.dlq_depths else 1


def print_summary(console: Console, report: RunReport) -> None:
    table = Table(title="Payments by final state")
    table.add_column("state")
    table.add_column("payments", justify="right")
    for state, count in sorted(report.states.items()):
        marker = "" if state in TERMINAL_STATES else " (not terminal)"
        table.add_row(state + marker, str(count))
    table.add_row("[bold]total", f"[bold]{sum(report.states.values())}")
    console.print(table)
    console.print(
        f"traffic mix: {dict(sorted(report.intents.items()))}; events on the bus: {report.events_seen}"
    )
    console.print(f"terminal events per payment: {dict(sorted(report.terminal_events_per_payment.items()))}")
    console.print(
        f"released ${report.released_cents / 100:,.2f}; ACH credits ${report.ach_credit_cents / 100:,.2f} "
        f"in {report.ach_entries} entries"
    )
    for path in report.ach_files:
        console.print(f"ACH file: {path}")
    if report.dlq_depths:
        console.print(f"[red]DLQ messages: {report.dlq_depths}")
    else:
        console.print("DLQs: empty")
