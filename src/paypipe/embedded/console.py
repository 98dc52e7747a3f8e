"""``paypipe run``: progress and summary of an embedded run (rich)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from paypipe.domain.bank_simulator import BankSimulator
from paypipe.embedded.demo import RunReport, run_demo
from paypipe.embedded.faults import FaultPlan
from paypipe.embedded.playback import ScenarioError, play_file

STATE_NAMES = {
    "PaymentRejected": "rejected",
    "PaymentDeclined": "declined",
    "FundsRefunded": "refunded",
    "PayoutBatched": "paid out (ACH)",
    "returned": "returned by the bank (awaiting new details)",
    "awaiting_account": "waiting for new account details (never filed)",
    "review": "fraud review",
    "disputed": "in dispute",
    "PayoutNetted": "netted against clawbacks",
    "dlq": "in a DLQ",
    "lost": "LOST",
}


def run(args: argparse.Namespace) -> int:
    if args.scenario is not None:
        return run_scenario(
            args.scenario, report_path=args.report or args.out / "report.json", out_dir=args.out
        )
    faults = FaultPlan(seed=args.seed) if args.faults else None
    return run_with_console(
        args.payments, seed=args.seed, out_dir=args.out, faults=faults, prenote=args.prenote
    )


def run_scenario(path: Path, *, report_path: Path, out_dir: Path) -> int:
    """Exit 0 when the run reconciles, 1 on violations, 2 for a scenario file that cannot be played."""
    console = Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["LOG_FILE"] = str(out_dir / "pipeline.log.jsonl")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        report = play_file(path, out_dir)
    except ScenarioError as error:
        print(f"paypipe run: {path}: {error}", file=sys.stderr)
        return 2
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    console.print(
        f"payments by final state: {report['states']}; requests refused: {report['refused_requests']}"
    )
    for violation in report["violations"][:20]:
        console.print(f"[red]  {violation['code']}[/] {violation['payment_id'] or ''} {violation['message']}")
    verdict = "[green]reconciled[/]" if report["ok"] else f"[red]{len(report['violations'])} violations[/]"
    console.print(f"{verdict}; report: {report_path}")
    return 0 if report["ok"] else 1


def run_with_console(
    payments: int, *, seed: int, out_dir: Path, faults: FaultPlan | None = None, prenote: bool = False
) -> int:
    console = Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_file = out_dir / "pipeline.log.jsonl"
    os.environ["LOG_FILE"] = str(log_file)  # step logs are JSON lines: keep them out of the summary
    logging.getLogger("botocore").setLevel(logging.WARNING)
    mode = ("with fault injection " if faults else "") + ("with prenotes " if prenote else "")
    console.print(
        f"[bold]paypipe[/] embedded run {mode}: {payments} payments on moto (infra/sam/template.yaml)"
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

        bank = BankSimulator(seed=seed)  # answers every payout file, as the ODFI's test harness would
        report = run_demo(
            payments, seed=seed, out_dir=out_dir, progress=notify, faults=faults, bank=bank, prenote=prenote
        )
        for task_id in tasks.values():
            done = progress.tasks[task_id].completed or 1
            progress.update(task_id, total=done, completed=done)
    print_summary(console, report)
    console.print(f"step logs: {log_file}")
    return 0 if report.ok else 1


def print_card_money(console: Console, report: RunReport) -> None:
    """The card processor's declines by reason and the acquirer's settlement of the run."""
    if report.card_declines:
        console.print(f"card declines by reason: {dict(sorted(report.card_declines.items()))}")
    for currency, totals in sorted(report.settled.items()):
        console.print(
            f"acquirer settlement ({currency}): captured {totals.captured / 100:,.2f}, refunded "
            f"{totals.refunded / 100:,.2f}, charged back {totals.charged_back / 100:,.2f} (won back "
            f"{totals.chargebacks_reversed / 100:,.2f}), fees "
            f"{totals.fees / 100:,.2f}, net {totals.net / 100:,.2f}"
        )
    if report.settlement_match.get("days"):
        match = report.settlement_match
        console.print(
            f"settlement matched against the card book: {match['days']} days, {match['matched']} lines, "
            f"{match['discrepancies']} discrepancies"
        )


def print_summary(console: Console, report: RunReport) -> None:
    recon = report.reconciliation
    table = Table(title="Payments by final state")
    table.add_column("state")
    table.add_column("payments", justify="right")
    for state, count in sorted(recon.states.items()):
        table.add_row(STATE_NAMES.get(state, state), str(count))
    table.add_row("[bold]total", f"[bold]{sum(recon.states.values())}")
    console.print(table)
    console.print(
        f"traffic mix: {dict(sorted(report.intents.items()))}; events on the bus: {report.events_seen}"
    )
    if report.injected:
        console.print(f"faults injected: {dict(sorted(report.injected.items()))}")
    console.print(
        f"released ${recon.released_cents / 100:,.2f}; ACH credits ${recon.ach_credit_cents / 100:,.2f} "
        f"in {recon.ach_entries} entries, {len(report.ach_files)} files"
    )
    answers = recon.bank_answers
    console.print(
        f"bank answers: {answers['return']} returns (${recon.returned_cents / 100:,.2f} back), "
        f"{answers['correction']} notifications of change; {recon.paid_again} payouts sent again"
    )
    if report.reviews:
        counts = report.reviews
        console.print(
            f"fraud reviews: {counts['opened']} opened, {counts['approved']} approved, "
            f"{counts['declined']} declined, {counts['expired']} expired"
        )
    print_card_money(console, report)
    if recon.prenotes:
        console.print(f"prenotes: {recon.prenotes} filed, {recon.prenotes_returned} returned by the bank")
    for path in report.ach_files:
        console.print(f"ACH file: {path}")
    console.print(f"DLQ messages by reason: {dict(recon.dlq_reasons) or 'none'}")
    if report.stored_data_leaks:
        console.print(
            f"[red]{len(report.stored_data_leaks)} card numbers, CVVs or account numbers "
            "found outside the vaults:"
        )
        for leak in report.stored_data_leaks[:20]:
            console.print(f"  {leak}")
    else:
        console.print(
            "stored-data scan: no card number, CVV or account number in logs, events past the step "
            "that removed it, the archive, DLQs, tables or S3 (NACHA files aside)"
        )
    if recon.ok:
        console.print(
            "[green]reconciled:[/] every payment in one terminal state or a DLQ, no payout twice, "
            "ACH credits (net of returns) = released funds, every bank answer booked or parked, "
            "ledger balanced per currency"
        )
    else:
        console.print(f"[red]{len(recon.violations)} reconciliation violations:")
        for violation in recon.violations[:20]:
            console.print(f"  {violation}")
