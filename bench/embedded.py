"""Benchmarks on the embedded pipeline: step CPU against its floor, latency, KMS calls, usage."""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bench.instrument import Invocation, Meter, payment_id_of
from paypipe.adapters import dynamo_index
from paypipe.embedded import runtime
from paypipe.embedded.demo import run_demo
from paypipe.embedded.evidence import schedule_period
from paypipe.embedded.runtime import EmbeddedPipeline, scheduled_event
from paypipe.embedded.scenario import build_scenario, card_number
from paypipe.embedded.template import load_template
from paypipe.events.models import parse_detail
from paypipe.runtime.aws import client
from paypipe.steps import vaults

MONTH_MINUTES = 30 * 24 * 60
CLOUDWATCH_EVENT_OVERHEAD = 26  # bytes CloudWatch Logs adds to each log event for billing
# Lambda's SQS pollers long-poll (20 s) each queue while it is idle; AWS runs several pollers per
# event source mapping. Assumed 5 pollers per queue: the only figure in the profile not measured.
IDLE_POLLERS_PER_QUEUE = 5
IDLE_RECEIVES_PER_POLLER_MINUTE = 3
FLOOR_REPEATS = 5
KMS_TOKENIZATIONS = 1000


# -- step CPU against a bare BatchProcessor ------------------------------------------------------


@dataclass(frozen=True)
class StepCpu:
    function: str
    messages: int
    invocations: int
    floor_us: float
    handler_us: float
    botocore_us: float
    handler_p25_us: float
    handler_p75_us: float

    @property
    def ratio(self) -> float:
        return self.handler_us / self.floor_us

    @property
    def ratio_without_botocore(self) -> float:
        return (self.handler_us - self.botocore_us) / self.floor_us


def floor_cpu_ns(event: Mapping[str, Any]) -> int:
    """Min CPU over repeats of a bare BatchProcessor parsing each record into its pydantic model."""

    def record_handler(record: SQSRecord) -> None:
        envelope = json.loads(record.body)
        parse_detail(envelope["detail-type"], envelope["detail"])

    best = None
    for _ in range(FLOOR_REPEATS):
        records = [dict(record) for record in event["Records"]]
        start = time.process_time_ns()
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        with processor(records=records, handler=record_handler):
            processor.process()
        processor.response()
        spent = time.process_time_ns() - start
        best = spent if best is None else min(best, spent)
    assert best is not None
    return best


def step_cpu(invocations: Sequence[Invocation]) -> list[StepCpu]:
    """Per SQS-fed function: median per-message CPU of warm invocations, moto excluded."""
    by_function: dict[str, list[Invocation]] = defaultdict(list)
    for invocation in invocations:
        if invocation.records:
            by_function[invocation.function].append(invocation)
    results = []
    for function, calls in by_function.items():
        warm = calls[1:] or calls  # the first one builds clients and loads config
        per_message = [c.handler_cpu_ns / c.records / 1000 for c in warm]
        floor = [floor_cpu_ns(c.event) / c.records / 1000 for c in warm]
        botocore = [c.botocore_cpu_ns / c.records / 1000 for c in warm]
        quartiles = statistics.quantiles(per_message, n=4) if len(per_message) > 1 else per_message * 3
        results.append(
            StepCpu(
                function=function,
                messages=sum(c.records for c in warm),
                invocations=len(warm),
                floor_us=statistics.median(floor),
                handler_us=statistics.median(per_message),
                botocore_us=statistics.median(botocore),
                handler_p25_us=quartiles[0],
                handler_p75_us=quartiles[2],
            )
        )
    return results


# -- lifecycle run: usage per payment -------------------------------------------------------------


@dataclass
class LifecycleRun:
    payments: int
    meter: Meter
    client_entries: int
    log_bytes: int
    log_events: int
    seconds: float


def run_lifecycle(payments: int) -> LifecycleRun:
    """The ``paypipe run`` scenario, every AWS call of the functions counted."""
    meter = Meter()
    published: Counter[str] = Counter()
    meter.on_put_events = lambda entries: published.update(["all"] * len(entries))
    with (
        tempfile.TemporaryDirectory() as scratch,
        mock.patch.dict(os.environ, LOG_FILE=f"{scratch}/log.jsonl"),
        # Requests counted at the deployed stack's index shards, not the embedded run's.
        mock.patch.object(runtime, "EMBEDDED_INDEX_SHARDS", dynamo_index.INDEX_SHARDS),
    ):
        start = time.perf_counter()
        with meter.installed():
            run_demo(payments, out_dir=Path(scratch) / "out")
        seconds = time.perf_counter() - start
        log = Path(scratch, "log.jsonl").read_bytes() if Path(scratch, "log.jsonl").exists() else b""
    function_entries = sum(meter.eventbridge_entries.values())
    return LifecycleRun(
        payments=payments,
        meter=meter,
        client_entries=published["all"] - function_entries,
        log_bytes=len(log),
        log_events=log.count(b"\n"),
        seconds=seconds,
    )


def function_memory_mb() -> dict[str, int]:
    template = load_template()
    default = int(template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    return {
        name: int(resource.get("Properties", {}).get("MemorySize", default))
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def kms_keys_in_template() -> int:
    return sum(1 for r in load_template()["Resources"].values() if r["Type"] == "AWS::KMS::Key")


def schedule_per_month(function: str) -> float:
    """Invocations per month of a scheduled function (a cron schedule counts as daily)."""
    template = load_template()
    for event in template["Resources"][function]["Properties"].get("Events", {}).values():
        if event["Type"] != "Schedule":
            continue
        schedule = event["Properties"]["Schedule"]
        if isinstance(schedule, dict) and "Ref" in schedule:
            schedule = template["Parameters"][schedule["Ref"]]["Default"]
        return MONTH_MINUTES / (schedule_period(str(schedule)).total_seconds() / 60)
    return 0.0


def usage_profile(
    run: LifecycleRun, idle: Mapping[str, Invocation], idle_units: Mapping[str, tuple[float, float]]
) -> dict[str, Any]:
    """Per-payment usage and fixed monthly usage, in the shape ``paypipe.cost`` reads."""
    memory = function_memory_mb()
    lambdas, sqs_by_aws, queues = _lambda_usage(run, idle, memory)
    return {
        "meta": _usage_meta(run),
        "per_payment": _per_payment_usage(run, lambdas, sqs_by_aws),
        "fixed_monthly": _fixed_monthly_usage(idle, idle_units, memory, queues),
    }


def _lambda_usage(
    run: LifecycleRun, idle: Mapping[str, Invocation], memory: Mapping[str, int]
) -> tuple[list[dict[str, Any]], int, int]:
    """Per-payment usage of each function, SQS requests made by AWS itself, and the consumer queues."""
    n = run.payments
    per_function: dict[str, list[Invocation]] = defaultdict(list)
    for invocation in run.meter.invocations:
        per_function[invocation.function].append(invocation)
    lambdas = []
    sqs_by_aws = 0
    queues = 0
    for function, invocations in sorted(per_function.items()):
        compute_ms = sum(i.handler_wall_ns for i in invocations) / 1e6
        aws_calls = float(sum(i.calls for i in invocations))
        count = float(len(invocations))
        if function in idle:  # scheduled: invocations are per month; only the work above idle scales
            compute_ms -= count * idle[function].handler_wall_ns / 1e6
            aws_calls -= count * idle[function].calls
            count = 0.0
        else:
            queues += 1
            messages = {r["messageId"] for i in invocations for r in i.event["Records"]}
            # EventBridge's SendMessage per delivered message; the poller's Receive and DeleteMessageBatch.
            sqs_by_aws += len(messages) + 2 * len(invocations)
        lambdas.append(
            {
                "function": function,
                "memory_mb": memory[function],
                "invocations": count / n,
                "compute_ms": max(compute_ms, 0.0) / n,
                "aws_calls": max(aws_calls, 0.0) / n,
            }
        )
    return lambdas, sqs_by_aws, queues


def _per_payment_usage(run: LifecycleRun, lambdas: list[dict[str, Any]], sqs_by_aws: int) -> dict[str, Any]:
    n = run.payments
    calls = run.meter.calls
    kms = sum(count for (_, service, _), count in calls.items() if service == "kms")
    s3_puts = sum(c for (_, svc, op), c in calls.items() if svc == "s3" and op in ("PutObject", "CopyObject"))
    s3_gets = sum(c for (_, svc, op), c in calls.items() if svc == "s3" and op in ("GetObject", "HeadObject"))
    sqs_by_functions = sum(c for (_, svc, _), c in calls.items() if svc == "sqs")
    return {
        "lambdas": lambdas,
        "sqs_requests": (sqs_by_aws + sqs_by_functions) / n,
        "eventbridge_events": (sum(run.meter.eventbridge_entries.values()) + run.client_entries) / n,
        "kms_requests": kms / n,
        "dynamodb_wru": run.meter.dynamodb_wru / n,
        "dynamodb_rru": run.meter.dynamodb_rru / n,
        "s3_puts": s3_puts / n,
        "s3_gets": s3_gets / n,
        "log_bytes": (run.log_bytes + CLOUDWATCH_EVENT_OVERHEAD * run.log_events) / n,
    }


def _fixed_monthly_usage(
    idle: Mapping[str, Invocation],
    idle_units: Mapping[str, tuple[float, float]],
    memory: Mapping[str, int],
    queues: int,
) -> dict[str, Any]:
    return {
        "lambdas": [
            {
                "function": function,
                "memory_mb": memory[function],
                "invocations": schedule_per_month(function),
                "compute_ms": schedule_per_month(function) * invocation.handler_wall_ns / 1e6,
                "aws_calls": schedule_per_month(function) * invocation.calls,
            }
            for function, invocation in sorted(idle.items())
        ],
        "sqs_requests": queues * IDLE_POLLERS_PER_QUEUE * IDLE_RECEIVES_PER_POLLER_MINUTE * MONTH_MINUTES,
        "kms_keys": kms_keys_in_template(),
        "dynamodb_rru": sum(schedule_per_month(f) * idle_units[f][0] for f in idle),
        "dynamodb_wru": sum(schedule_per_month(f) * idle_units[f][1] for f in idle),
    }


def _usage_meta(run: LifecycleRun) -> dict[str, Any]:
    n = run.payments
    batch_sizes = [i.records for i in run.meter.invocations if i.records]
    return {
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
        "how": (
            f"make bench: embedded run of {n} payments (the paypipe run scenario), every AWS call of "
            "the functions counted per service and operation; DynamoDB units from measured item sizes"
        ),
        "mean_records_per_sqs_invocation": round(statistics.mean(batch_sizes), 2),
        "assumption": (
            f"idle SQS polling: {IDLE_POLLERS_PER_QUEUE} pollers per consumer queue, "
            f"{IDLE_RECEIVES_PER_POLLER_MINUTE} long-poll receives per minute each"
        ),
        "calls_per_payment": {
            f"{svc}:{op}": round(c / n, 4) for (svc, op), c in sorted(run.meter.calls_by().items())
        },
    }


# -- scheduled functions at idle, KMS calls per 1,000 tokenizations ------------------------------


@dataclass
class QuietFigures:
    idle: dict[str, Invocation]
    idle_units: dict[str, tuple[float, float]]  # (RRU, WRU) of one idle run
    kms_first_1000: Counter[str]
    kms_next_1000: Counter[str]
    kms_repeat_1000: Counter[str]


def quiet_figures() -> QuietFigures:
    """On an empty stack: one idle run of each scheduled function; KMS calls of tokenizations."""
    meter = Meter()
    idle: dict[str, Invocation] = {}
    idle_units: dict[str, tuple[float, float]] = {}
    with mock.patch.dict(os.environ, LOG_FILE=os.devnull), meter.installed(), EmbeddedPipeline() as pipeline:
        for name, function in pipeline.functions.items():
            if not function.spec.schedules:
                continue
            function.invoke(scheduled_event(datetime.now(UTC)))  # the first one builds clients
            meter.dynamodb_rru = meter.dynamodb_wru = 0.0
            function.invoke(scheduled_event(datetime.now(UTC)))
            idle[name] = meter.invocations[-1]
            idle_units[name] = (meter.dynamodb_rru, meter.dynamodb_wru)

    with EmbeddedPipeline() as pipeline:
        # KMS on moto; the vault table in memory (only KMS calls are counted here).
        function = pipeline.functions["TokenizeFunction"]
        with function.environment():
            vault = vaults.vault_from_env()
        vault._ddb = MemoryVaultTable()  # type: ignore[assignment]
        kms_calls: Counter[str] = Counter()
        client("kms").meta.events.register(
            "before-call.kms.*", lambda model, **_: kms_calls.update([model.name])
        )
        rng = random.Random(1)
        cards = [card_number(rng) for _ in range(2 * KMS_TOKENIZATIONS)]

        def kms_for(batch: list[str]) -> Counter[str]:
            kms_calls.clear()
            for pan in batch:
                vault.tokenize(pan, 12, 2030, tenant="default")
            return Counter(kms_calls)

        first = kms_for(cards[:KMS_TOKENIZATIONS])
        following = kms_for(cards[KMS_TOKENIZATIONS:])
        repeat = kms_for(cards[:KMS_TOKENIZATIONS])
    return QuietFigures(idle, idle_units, first, following, repeat)


class MemoryVaultTable:
    """The DynamoDB calls the card vault makes, on a dict (conditions: attribute_not_exists only)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    @staticmethod
    def _key(key: Mapping[str, Any]) -> tuple[str, str]:
        return key["pk"]["S"], key["sk"]["S"]

    def get_item(self, *, Key: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        item = self.items.get(self._key(Key))
        return {"Item": item} if item else {}

    def put_item(self, *, Item: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.items[self._key(Item)] = Item
        return {}

    def transact_write_items(self, *, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        puts = [entry["Put"]["Item"] for entry in TransactItems]
        if any(self._key(item) in self.items for item in puts):
            raise RuntimeError("conditional put on an existing item")
        for item in puts:
            self.items[self._key(item)] = item
        return {}

    def update_item(self, **_: Any) -> dict[str, Any]:
        return {}


# -- latency and throughput to FundsHeld ------------------------------------------------------------


@dataclass
class LatencyRun:
    payments: int
    held: int
    seconds: float
    moto_seconds: float
    latencies_ms: list[float]


def run_latency(payments: int, wave: int = 10) -> LatencyRun:
    """Requests arrive ``wave`` at a time, one poll round of every function between waves."""
    meter = Meter()
    requested: dict[str, float] = {}
    held: dict[str, float] = {}
    moto_at_last_hold = [0]  # moto's wall time up to the last FundsHeld: the measured window

    def on_put(entries: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        for entry in entries:
            if entry["DetailType"] == "PaymentRequested":
                requested.setdefault(payment_id_of(entry), now)
            elif entry["DetailType"] == "FundsHeld":
                held.setdefault(payment_id_of(entry), now)
                moto_at_last_hold[0] = meter.moto_wall_ns

    meter.on_put_events = on_put
    scenario = build_scenario(payments, seed=11, run_id="lat")
    with (
        tempfile.TemporaryDirectory() as scratch,
        mock.patch.dict(os.environ, LOG_FILE=f"{scratch}/log.jsonl"),
        meter.installed(),
        EmbeddedPipeline() as pipeline,
    ):
        sqs_functions = [f for f in pipeline.functions.values() if f.spec.sqs_sources]
        for function in sqs_functions:  # cold start outside the measurement
            _ = function.handler
        moto_start = meter.moto_wall_ns
        start = time.perf_counter()
        for index in range(0, payments, wave):
            chunk = scenario.requests[index : index + wave]
            pipeline.advance_to(chunk[0].occurred_at)  # each wave at its own time on the pipeline clock
            pipeline.publish(chunk)
            for function in sqs_functions:
                function.poll_once()
        pipeline.drain()
        moto_ns = moto_at_last_hold[0] - moto_start
    end = max(held.values())
    latencies = [(held[p] - requested[p]) * 1000 for p in held]
    return LatencyRun(payments, len(held), end - start, moto_ns / 1e9, latencies)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
