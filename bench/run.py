"""``make bench``: run every benchmark once on this machine and write BENCHMARKS.md.

Also writes the measured usage profile that ``paypipe cost`` projects from.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench import coldstart, embedded, localstack_latency, localstack_load, nacha_bench, sampling, scaling
from paypipe import cost

REPO = Path(__file__).resolve().parents[1]
USAGE_PATH = REPO / "src" / "paypipe" / "data" / "cost" / "usage.json"
REPORT_PATH = REPO / "BENCHMARKS.md"
GOAL_RATIO = 1.5
COLDSTART_GOAL = 1.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, default=150, help="payments in the lifecycle (cost) run")
    parser.add_argument("--latency-payments", type=int, default=200, help="payments in the latency run")
    parser.add_argument("--profile-payments", type=int, default=100, help="payments in the sampled run")
    parser.add_argument("--runs", type=int, default=7, help="subprocesses per cold-start figure")
    parser.add_argument(
        "--load-payments", type=int, default=1000, help="payments in the LocalStack load test"
    )
    args = parser.parse_args()
    logging.getLogger("botocore").setLevel(logging.WARNING)
    started = time.perf_counter()
    sections: list[str] = []

    quiet = embedded.quiet_figures()
    life = embedded.run_lifecycle(args.payments)
    profile = embedded.usage_profile(life, quiet.idle, quiet.idle_units)
    USAGE_PATH.write_text(json.dumps(profile, indent=2) + "\n")
    breakdown = sampling.handler_time_breakdown(args.profile_payments)
    sections.append(steps_section(embedded.step_cpu(life.meter.invocations), breakdown))
    dev_venv = coldstart.measure(args.runs, sys.executable)
    sections.append(coldstart_section(coldstart.measure(args.runs), args.runs, dev_venv))
    localstack = localstack_latency.measure(((60, 5.0), (100, None)))
    sections.append(latency_section(embedded.run_latency(args.latency_payments), localstack))
    sections.append(scaling.section(scaling.measure()))
    sections.append(load_section(localstack_load.measure(args.load_payments)))
    with tempfile.TemporaryDirectory() as scratch:
        sections.append(nacha_section(nacha_bench.run(Path(scratch))))
    sections.append(kms_section(quiet))
    sections.append(cost_section(profile, life))
    elapsed = time.perf_counter() - started
    REPORT_PATH.write_text(header(elapsed) + "\n".join(sections))
    print(f"wrote {REPORT_PATH.name} and {USAGE_PATH.relative_to(REPO)} in {elapsed:.0f} s")


def header(elapsed: float) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, as make uses it
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    ).stdout.strip()
    return (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d} at commit `{commit}`, one run on this "
        f"machine ({platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
        f"shared with other work: CPU times rather than wall times wherever possible); the run took "
        f"{elapsed / 60:.1f} minutes. Regenerate with `make bench`.\n\n"
    )


def steps_section(steps: list[embedded.StepCpu], breakdown: Counter[str]) -> str:
    lines = [
        "## Step handler CPU per message",
        "",
        "Handler CPU per SQS message, warm invocations of the embedded run (median; p25-p75 shows the "
        "spread), AWS calls answered by moto in-process with **moto's own CPU subtracted** (moto's "
        "request handler is timed and removed), so the figure keeps botocore's request serialisation "
        "and response parsing, as in Lambda, minus the network. Floor: a bare Powertools "
        "`BatchProcessor` over the same records whose handler only parses the EventBridge envelope "
        "into the same pydantic model (min of 5 repeats per batch). Goal: within "
        f"{GOAL_RATIO}x of the floor.",
        "",
        "| step | messages | floor µs | handler µs (p25-p75) | of which botocore µs | ratio "
        "| ratio w/o botocore |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in sorted(steps, key=lambda s: s.function):
        lines.append(
            f"| {s.function} | {s.messages} | {s.floor_us:.0f} | {s.handler_us:.0f} "
            f"({s.handler_p25_us:.0f}-{s.handler_p75_us:.0f}) | {s.botocore_us:.0f} | "
            f"{s.ratio:.1f}x | {s.ratio_without_botocore:.1f}x |"
        )
    met = [s.function for s in steps if s.ratio <= GOAL_RATIO]
    low = min(s.botocore_us / s.floor_us for s in steps)
    high = max(s.botocore_us / s.floor_us for s in steps)
    lines += [
        "",
        f"Goal met by: {', '.join(met) or 'no step'}. The floor parses one model per record; every step "
        "also makes several AWS calls per message (DynamoDB reads and conditional or transactional "
        "writes, Powertools idempotency records, PutEvents), and botocore's client-side work for those "
        f"alone is {low:.0f}-{high:.0f}x the floor. A 1.5x goal is reachable only for a step that "
        "makes no AWS call, so it is not met. Where the rest goes, from a sampling profile of the "
        "records' processing in the same scenario (moto's frames dropped; each sample attributed to "
        "the first library our code called):",
        "",
        "| where | share of handler time |",
        "| --- | ---: |",
    ]
    total = sum(breakdown.values()) or 1
    lines += [f"| {label} | {count / total:.1%} |" for label, count in breakdown.most_common()]
    lines += ["", f"({total:,} samples at 0.5 ms.)", ""]
    return "\n".join(lines)


def coldstart_section(
    results: list[coldstart.ColdStart], runs: int, dev: list[coldstart.ColdStart] | None = None
) -> str:
    """``results`` from the runtime-only venv; ``dev``, the same in the development venv."""
    base = results[0]
    met = [r.name for r in results[1:] if r.init_s / base.init_s <= COLDSTART_GOAL]
    lines = [
        "## Cold start",
        "",
        f"CPU time to import each Lambda entry point in a fresh interpreter (min of {runs} rounds, each "
        "sampling every figure once; interpreter "
        "start-up excluded; bytecode cache warm), in a venv with the runtime dependencies alone "
        "(`.bench/venvs/runtime`: the layer's `src/requirements.txt` and boto3, at the development "
        "venv's versions). *init* adds what the first event builds (logging, clients, settings); the "
        "baseline's init builds one boto3 client. The models a function parses or publishes are built "
        "on first use, during its first record, so they are not in these figures.",
        "",
        "| module | import ms | vs baseline | import + init ms | vs baseline |"
        + (" development venv: import + init ms | vs baseline |" if dev else ""),
        "| --- | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if dev else ""),
    ]
    for index, r in enumerate(results):
        row = (
            f"| {r.name} | {r.import_s * 1000:.0f} | {r.import_s / base.import_s:.2f}x | "
            f"{r.init_s * 1000:.0f} | {r.init_s / base.init_s:.2f}x |"
        )
        if dev:
            row += f" {dev[index].init_s * 1000:.0f} | {dev[index].init_s / dev[0].init_s:.2f}x |"
        lines.append(row)
    lines += ["", f"Goal (import + init <= {COLDSTART_GOAL}x): met by {', '.join(met) or 'no function'}.", ""]
    return "\n".join(lines)


def latency_section(
    run: embedded.LatencyRun, localstack: list[localstack_latency.LocalStackRun] | str
) -> str:
    busy = run.seconds - run.moto_seconds
    lines = [
        "## Throughput and latency: PaymentRequested -> FundsHeld",
        "",
        f"**Embedded** (one thread, moto in-process): {run.payments} requests arriving 10 at a time, one "
        "poll round of every function between arrivals, then drained. Latency is wall time from the "
        "client's PutEvents of a PaymentRequested to escrow hold's PutEvents of its FundsHeld "
        "(instrumented; the events' own timestamps are business times, not usable here). "
        f"moto took {run.moto_seconds / run.seconds:.0%} of the run's wall time.",
        "",
        "**LocalStack**: the template deployed by `scripts/localstack_deploy.py` (functions as local "
        "processes, LocalStack's event source mappings), requests paced at 5/s or published at once; "
        "latency runs to FundsHeld arriving on a bench-only tap queue, so it includes that extra hop. "
        "These figures are LocalStack's pollers and process start-ups on this machine, not AWS.",
        "",
        "| where | requests | held | throughput payments/s | p50 ms | p95 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        _latency_row("embedded (moto)", run.payments, run.held, run.seconds, run.latencies_ms),
        f"| embedded, moto's time removed | {run.payments} | {run.held} | {run.held / busy:.1f} "
        "| - | - | - |",
    ]
    if isinstance(localstack, str):
        lines.append(f"| LocalStack | not measured: {localstack} | | | | | |")
    else:
        for r in localstack:
            where = f"LocalStack, {r.per_second:g}/s offered" if r.per_second else "LocalStack, all at once"
            lines.append(_latency_row(where, r.payments, r.held, r.seconds, r.latencies_ms))
    lines.append("")
    return "\n".join(lines)


def _latency_row(where: str, requests: int, held: int, seconds: float, latencies: list[float]) -> str:
    if not latencies:
        return f"| {where} | {requests} | 0 | - | - | - | - |"
    p = {q: embedded.percentile(latencies, q) for q in (50, 95, 99)}
    return (
        f"| {where} | {requests} | {held} | {held / seconds:.1f} | {p[50]:.0f} | {p[95]:.0f} | {p[99]:.0f} |"
    )


def load_section(run: localstack_load.LoadRun | str) -> str:
    lines = [
        "## Load test on LocalStack",
        "",
        "The template deployed by `scripts/localstack_deploy.py` on LocalStack (functions as local "
        "processes, LocalStack's event source mappings, DynamoDB in a moto server; FunctionTimeout 60 s, "
        "visibility timeout 360 s), in three phases, each published as fast as the client can "
        f"(PutEvents of 10 from {localstack_load.PUBLISH_THREADS} threads) and waited for: "
        "PaymentRequested -> FundsHeld; ServiceCompleted -> FundsReleased and the payout recorded; the "
        "ACH cut invoked -> PayoutBatched. Then reconciled with the embedded run's checks. Each event's "
        "time is its delivery to a bench-only tap queue (SQS `SentTimestamp`), so every stage includes "
        "that hop. The machine's 2 cores run LocalStack, the moto server, every function process and the "
        "client: these are this machine's figures, not AWS's.",
        "",
    ]
    if isinstance(run, str):
        return "\n".join([*lines, f"Not measured: {run}", ""])
    result = run.reconciliation
    states = ", ".join(f"{state} {count}" for state, count in sorted(result.states.items()))
    verdict = "reconciled" if run.ok else "NOT reconciled"
    violations = "".join(f"; {v}" for v in result.violations[:3])
    batched = result.states["PayoutBatched"]
    lines += [
        f"{run.payments:,} payments, {verdict}: {states}; DLQ messages {run.dlq_messages}; "
        f"violations {len(result.violations)}{violations}. "
        f"Requests published at {run.publish_per_second:.0f}/s; {run.environments} execution environments "
        f"started; load average {run.load_average:.1f} at the end. End to end (first request to last "
        f"payout batched): {run.seconds:.0f} s, {batched / run.seconds:.1f} payments batched/s."
        + "".join(f" {note}." for note in run.notes),
        "",
        "| phase | payments | seconds | payments/s |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {p.name} | {p.payments} | {p.seconds:.0f} | {p.payments / p.seconds:.1f} |"
            if p.seconds
            else f"| {p.name} | {p.payments} | - | - |"
            for p in run.phases
        ),
        "",
        "| stage (tap to tap) | payments | p50 ms | p90 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for stage, values in run.stages_ms.items():
        if values:
            p = {q: embedded.percentile(values, q) for q in (50, 90, 99)}
            lines.append(f"| {stage} | {len(values)} | {p[50]:.0f} | {p[90]:.0f} | {p[99]:.0f} |")
        else:
            lines.append(f"| {stage} | 0 | - | - | - |")
    lines.append("")
    return "\n".join(lines)


def nacha_section(results: list[nacha_bench.NachaResult]) -> str:
    ours = results[0]
    lines = [
        "## NACHA writer and parser, 100,000 entries",
        "",
        "Entries per CPU second, one PPD batch of 100,000 credits: each library's best of 3 rounds "
        "(each round runs every library in turn, min of 3 repeats each). Writing includes building "
        "the file model from the payouts. Each library runs in its own throwaway venv "
        "(`.bench/venvs`, pinned; never a paypipe dependency). *Same file*: paypipe's strict parser "
        "accepts the library's output and finds the same entries, totals and entry hash. paypipe's "
        "parser is strict (every field, count, total and hash checked); the others only slice fields.",
        "",
        "| library | write entries/s | vs paypipe | parse entries/s | vs paypipe | same file |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]

    def rate(value: float | None, reference: float | None) -> tuple[str, str]:
        if value is None or reference is None:
            return "failed", "-"
        return f"{value:,.0f}", f"{value / reference:.2f}x"

    for r in results:
        write, write_ratio = rate(r.write_eps, ours.write_eps)
        parse, parse_ratio = rate(r.parse_eps, ours.parse_eps)
        lines.append(f"| {r.library} | {write} | {write_ratio} | {parse} | {parse_ratio} | {r.equivalent} |")
    lines += [
        "",
        "Candidates installed but not benchmarked: `ach-file` 0.1.6b0, `comanage-nacha` 0.2.7, `nacha3` "
        "0.0.2 (no adapter written yet). `ach` 0.2 and `carta-ach` share one API (carta-ach is its fork).",
        "",
    ]
    return "\n".join(lines)


def kms_section(quiet: embedded.QuietFigures) -> str:
    def total(counter: dict[str, int]) -> str:
        return (
            f"{sum(counter.values())} ({', '.join(f'{k} {v}' for k, v in sorted(counter.items())) or 'none'})"
        )

    return "\n".join(
        [
            "## KMS calls per 1,000 tokenizations",
            "",
            "One warm tokenize container, default cache settings from the template (data key reused "
            "for up to 1,000 encryptions and 300 s), distinct cards, counted with a botocore hook on the "
            "KMS client.",
            "",
            "| tokenizations | KMS calls |",
            "| --- | --- |",
            f"| first 1,000 (cold: includes loading the fingerprint key) | {total(quiet.kms_first_1000)} |",
            f"| next 1,000 new cards | {total(quiet.kms_next_1000)} |",
            f"| the first 1,000 cards again (existing tokens) | {total(quiet.kms_repeat_1000)} |",
            "",
            "Each concurrent Lambda container keeps its own cache, and a key older than 300 s is "
            "replaced: at low traffic expect one GenerateDataKey per container per 5 minutes instead.",
            "",
        ]
    )


def cost_section(profile: dict[str, object], life: embedded.LifecycleRun) -> str:
    prices = cost.load_prices()
    per_payment = profile["per_payment"]
    assert isinstance(per_payment, dict)
    meta = profile["meta"]
    assert isinstance(meta, dict)
    lines = [
        "## Cost per payment",
        "",
        f"AWS requests counted in an instrumented embedded run of {life.payments} payments "
        "(the `paypipe run` scenario: validation rejects, fraud reviews and declines, completions, disputes, "
        "expiry sweep, "
        "ACH cut): every boto3 call the functions make, per service and operation "
        "(`BaseClient._make_api_call`), DynamoDB units from the measured size of each item read or "
        "written (transactions count double, gsi1 writes add index units), plus the requests AWS makes "
        "for the pipeline: EventBridge's SendMessage per delivered message, Lambda's pollers' "
        "ReceiveMessage and DeleteMessageBatch per invocation. Prices: "
        f"`src/paypipe/data/cost/prices-us-east-1.json` ({prices.region}, as of {prices.as_of}); usage: "
        "`src/paypipe/data/cost/usage.json`. Project your own volume with "
        "`paypipe cost --volume <payments/month> [--avg-amount <dollars>]`.",
        "",
        "Per payment (measured): "
        + ", ".join(
            f"{name} {per_payment[key]:.3g}"
            for name, key in (
                ("SQS requests", "sqs_requests"),
                ("EventBridge events", "eventbridge_events"),
                ("KMS requests", "kms_requests"),
                ("DynamoDB WRU", "dynamodb_wru"),
                ("DynamoDB RRU", "dynamodb_rru"),
                ("S3 PUTs", "s3_puts"),
                ("log bytes", "log_bytes"),
            )
        )
        + f", Lambda invocations {sum(f['invocations'] for f in per_payment['lambdas']):.3g} "
        f"({meta['mean_records_per_sqs_invocation']} records per SQS batch on average in this run).",
        "",
        *_projection_table(cost.profile_from_dict(profile), prices),
    ]
    calls = meta["calls_per_payment"]
    assert isinstance(calls, dict)
    lines += [
        "",
        "Calls per payment by operation: " + ", ".join(f"{k} {v}" for k, v in calls.items()) + ".",
        "",
        "Not included: card network and interchange fees and ACH bank fees (the pipeline's cost is "
        "infrastructure only); Lambda platform log lines; KMS calls DynamoDB and S3 make with the "
        "storage key (cached per table, bucket key on); data transfer and storage. Lambda billed time "
        f"is the handler time measured here plus an assumed {prices.aws_call_latency_ms:g} ms per AWS "
        f"call. Fixed part: {meta['assumption']}; two KMS keys; the schedules' idle invocations.",
        "",
    ]
    return "\n".join(lines)


def _projection_table(model: cost.Profile, prices: cost.Prices) -> list[str]:
    """Pipeline cost against card fees at a few volumes and average amounts."""
    lines = [
        "| payments/month | avg amount | pipeline $/payment | pipeline $ per $100 "
        "| card 2.9% + 30c per $100 | ratio |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for volume in (10_000, 100_000, 1_000_000, 10_000_000):
        for amount in (20.0, 100.0):
            p = cost.project(model, prices, volume, amount)
            lines.append(
                f"| {volume:,} | ${amount:,.0f} | {p.per_payment_usd:.6f} | {p.per_100_usd:.6f} | "
                f"{p.card_per_100_usd:.2f} | {p.per_100_usd / p.card_per_100_usd:.4%} |"
            )
    return lines


if __name__ == "__main__":
    main()
