"""How the embedded run scales: cost per payment of ``paypipe run`` at a small and a large run, and
the large fault-injection run (``make faults``) end to end.

``python -m bench.scaling`` runs only these and prints the BENCHMARKS.md section.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from paypipe.domain.bank_simulator import BankSimulator
from paypipe.embedded.demo import run_demo
from paypipe.embedded.faults import FaultPlan

SMALL, LARGE = 200, 2000
GOAL_RATIO = 1.2  # cost per payment of the large run over the small one
GOAL_FAULT_MINUTES = 5.0
GOAL_LARGE_MINUTES = 3.0
SEED = 7  # paypipe run's default


@dataclass(frozen=True)
class ScaledRun:
    payments: int
    faults: bool
    wall_seconds: float
    cpu_seconds: float
    ok: bool

    @property
    def cpu_ms_per_payment(self) -> float:
        return self.cpu_seconds * 1000 / self.payments


def run(payments: int, *, faults: bool = False) -> ScaledRun:
    """``paypipe run --payments N [--faults]`` as the command runs it (the bank answering its files)."""
    with (
        tempfile.TemporaryDirectory() as scratch,
        mock.patch.dict(os.environ, LOG_FILE=f"{scratch}/pipeline.log.jsonl"),
    ):
        wall, cpu = time.perf_counter(), time.process_time()
        report = run_demo(
            payments,
            seed=SEED,
            out_dir=Path(scratch) / "out",
            faults=FaultPlan(seed=SEED) if faults else None,
            bank=BankSimulator(seed=SEED),
        )
        return ScaledRun(payments, faults, time.perf_counter() - wall, time.process_time() - cpu, report.ok)


def measure(small: int = SMALL, large: int = LARGE) -> list[ScaledRun]:
    runs = []
    for payments, faults in ((small, False), (large, False), (large, True)):
        runs.append(run(payments, faults=faults))
        print(f"scaling: {runs[-1]}", file=sys.stderr, flush=True)  # a long bench: progress as it goes
    return runs


def section(runs: Sequence[ScaledRun]) -> str:
    small, large, faults = runs
    ratio = large.cpu_ms_per_payment / small.cpu_ms_per_payment
    lines = [
        "## Embedded run at scale",
        "",
        "`paypipe run` in this process on moto (the bank simulator answering the payout files, "
        "the stored-data scan and the reconciliation included), one run each. Cost per payment is the "
        "process CPU time over the payments; wall times on this shared machine also count other work.",
        "",
        "| run | payments | CPU s | CPU ms per payment | wall minutes | reconciled, scan clean |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        name = "`paypipe run --faults`" if r.faults else "`paypipe run`"
        lines.append(
            f"| {name} | {r.payments:,} | {r.cpu_seconds:.0f} | {r.cpu_ms_per_payment:.0f} "
            f"| {r.wall_seconds / 60:.1f} | {'yes' if r.ok else 'no'} |"
        )
    lines += [
        "",
        f"Cost per payment at {large.payments:,} payments: **{ratio:.2f}x** that at {small.payments:,} "
        f"(goal <= {GOAL_RATIO}x). The {large.payments:,}-payment run: {large.cpu_seconds / 60:.1f} CPU "
        f"minutes (goal <= {GOAL_LARGE_MINUTES:g}); with faults: {faults.cpu_seconds / 60:.1f} CPU "
        f"minutes (goal <= {GOAL_FAULT_MINUTES:g}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=SMALL, help="payments in the small run")
    parser.add_argument("--large", type=int, default=LARGE, help="payments in the large runs")
    parser.add_argument(
        "--only", choices=("small", "large", "faults"), help="one run alone, printed (runs in parallel)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    if args.only:
        payments = args.small if args.only == "small" else args.large
        print(run(payments, faults=args.only == "faults"))
    else:
        print(section(measure(args.small, args.large)))


if __name__ == "__main__":
    main()
