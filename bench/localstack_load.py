"""Load test on LocalStack: 1,000 payments through the deployed template, then reconciled.

The template is deployed as the integration tests deploy it (``tests/integration/localstack.py``;
LocalStack started when not running and stopped again afterwards). Three phases, each published
as fast as the client can (PutEvents of 10 events from a few threads) and waited for:

1. PaymentRequested for every payment -> validated, tokenized, scored, FundsHeld;
2. ServiceCompleted for every hold -> FundsReleased, and the ACH batch step records the payout;
3. the ACH cut invoked (as its schedule would, at a business day's time) -> PayoutBatched.

A bench-only rule copies this run's events to a tap queue; each event's time is when LocalStack
delivered it there (SQS ``SentTimestamp``), so every stage includes that extra hop. At the end
what the stack left behind is reconciled with the embedded run's checks (every payment in one
state, ledger balanced, payouts matching the files) and the DLQs must be empty.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.localstack import REPO_ROOT, LocalStackUnavailable, aws, deployed_stack

from paypipe.embedded.evidence import ach_file_entries, dlq_records, ledger, payout_rows, stack_context
from paypipe.embedded.reconcile import Observed, PayoutRow, Reconciliation, reconcile
from paypipe.embedded.runtime import scheduled_event
from paypipe.embedded.scenario import card_number, payment_requested
from paypipe.events import models as ev
from paypipe.runtime import clock as pipeline_time
from paypipe.runtime.publisher import EventPublisher

STACK = "paypipe-load"
# The deploy script's short test timeouts would time out invocations that wait for a busy machine;
# the template's own guidance (visibility timeout 6x the function timeout) instead. LocalStack's bus
# delivers a burst minutes late (a thread per event, every rule in turn, in one process): past the
# default 300 s the requests are refused as CLIENT_CLOCK_SKEW, which measures LocalStack, not us.
PARAMETERS = {"FunctionTimeout": "60", "QueueVisibilityTimeout": "360", "ClientClockSkewSeconds": "3600"}
PUBLISH_THREADS = 4
TAP_THREADS = 2
STALL_SECONDS = 180  # a phase gives up when no awaited event arrived for this long
BUDGET_SECONDS = 3600  # the whole run's, after the deploy
CUT_ATTEMPTS = 5
# (stage, from event, to event): the time between the two tap deliveries of a payment.
STAGES = (
    ("validate", "requested", "PaymentValidated"),
    ("tokenize", "PaymentValidated", "PaymentTokenized"),
    ("fraud", "PaymentTokenized", "PaymentScored"),
    ("charge", "PaymentScored", "PaymentCharged"),
    ("escrow hold", "PaymentCharged", "FundsHeld"),
    ("request -> held", "requested", "FundsHeld"),
    ("completion -> released", "completed", "FundsReleased"),
    ("cut -> batched", "cut", "PayoutBatched"),
)
HELD_OR_DONE = ("FundsHeld", "PaymentRejected", "PaymentDeclined")
DOCUMENTATION_NETS = ("198.51.100", "203.0.113", "192.0.2")  # RFC 5737: 750 distinct addresses


@dataclass(frozen=True)
class Phase:
    name: str
    payments: int  # that reached the phase's goal
    seconds: float  # from the phase's first publish to the last awaited event


@dataclass
class LoadRun:
    payments: int
    phases: list[Phase]
    stages_ms: dict[str, list[float]]
    reconciliation: Reconciliation
    dlq_messages: int
    publish_per_second: float  # PaymentRequested PutEvents, client side
    environments: int  # Lambda execution environments (local processes) started
    load_average: float  # of the machine during the run (1 minute, at its end)
    seconds: float = 0.0  # first PaymentRequested to the last PayoutBatched
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reconciliation.ok and not self.dlq_messages and not self.notes


@dataclass(frozen=True)
class _Described:
    outputs: Mapping[str, str]
    parameters: Mapping[str, str]


class LocalStackDeployment:
    """The deployed stack as the evidence readers take it."""

    def __init__(self, stack: str, outputs: Mapping[str, str]) -> None:
        self._clients: dict[str, Any] = {}
        described = self.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        parameters = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
        self.stack = _Described(dict(outputs), parameters)
        self.name = stack

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = aws(service)
        return self._clients[service]

    def function(self, logical_id: str) -> str:
        resource = self.client("cloudformation").describe_stack_resource(
            StackName=self.name, LogicalResourceId=logical_id
        )
        return str(resource["StackResourceDetail"]["PhysicalResourceId"])


def measure(payments: int = 1000, budget_seconds: float = BUDGET_SECONDS) -> LoadRun | str:
    """The load run (cut short, and said so, past ``budget_seconds``), or why it could not be made."""
    try:
        with deployed_stack(STACK, PARAMETERS) as outputs:
            return _run(LocalStackDeployment(STACK, outputs), payments, budget_seconds)
    except LocalStackUnavailable as error:
        return f"{error.what}: {error.output.strip()[-200:]}"


class LoadTap:
    """This run's events, read off a tap queue by background threads as they arrive."""

    def __init__(self, deployment: LocalStackDeployment, run_id: str, budget_seconds: float) -> None:
        self.deadline = time.monotonic() + budget_seconds
        self.sqs, self.events = deployment.client("sqs"), deployment.client("events")
        self.bus = deployment.stack.outputs["EventBusName"]
        self.run_id = run_id
        self.name = f"paypipe-tap-{run_id}"
        self.url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        self.rules = {
            f"{self.name}-payments": {"detail": {"payment_id": [{"prefix": run_id}]}},
            f"{self.name}-ach-files": {"detail-type": ["AchBatchCreated"]},
        }
        for rule, pattern in self.rules.items():
            self.events.put_rule(Name=rule, EventBusName=self.bus, EventPattern=json.dumps(pattern))
            target = {"Id": "tap", "Arn": attributes["Attributes"]["QueueArn"]}
            self.events.put_targets(Rule=rule, EventBusName=self.bus, Targets=[target])
        self.observed: list[Observed] = []
        self.times: dict[str, dict[str, float]] = {}  # payment id -> event type -> first delivery
        self.last_arrival = time.time()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._drain, daemon=True) for _ in range(TAP_THREADS)]
        for thread in self._threads:
            thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            messages = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["SentTimestamp"]
            ).get("Messages", [])
            if not messages:
                continue
            for message in messages:
                body = json.loads(message["Body"])
                event = ev.parse_detail(body["detail-type"], body["detail"])
                attributes = message.get("Attributes", {})
                delivered = int(attributes["SentTimestamp"]) / 1000
                with self._lock:
                    self.observed.append(
                        Observed(event, body.get("source"), pipeline_time.received_at(attributes, {}))
                    )
                    self.times.setdefault(event.payment_id, {}).setdefault(event.event_type, delivered)
                    self.last_arrival = time.time()
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def of(self, event_type: type[ev.Event]) -> list[Any]:
        with self._lock:
            return [item.event for item in self.observed if isinstance(item.event, event_type)]

    def stamp(self, payment_id: str, what: str, at: float) -> None:
        with self._lock:
            self.times.setdefault(payment_id, {})[what] = at

    def reached(self, payment_ids: Sequence[str], *event_types: str) -> bool:
        """Each of ``payment_ids`` has one of ``event_types``."""
        with self._lock:
            return all(any(t in self.times.get(p, {}) for t in event_types) for p in payment_ids)

    def wait(
        self, what: str, payment_ids: Sequence[str], event_types: Sequence[str], notes: list[str]
    ) -> bool:
        """Until each payment has one of ``event_types``; False (noted) when nothing arrived for
        STALL_SECONDS or the run's budget is spent."""
        while not self.reached(payment_ids, *event_types):
            with self._lock:
                idle = time.time() - self.last_arrival
            if idle > STALL_SECONDS:
                notes.append(f"{what}: nothing arrived for {STALL_SECONDS} s")
                return False
            if time.monotonic() > self.deadline:
                notes.append(f"{what}: the run's time budget ran out")
                return False
            time.sleep(0.5)
        return True

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {payment_id: dict(times) for payment_id, times in self.times.items()}

    def client_event_ids(self) -> set[str]:
        """Events the client published (the only ones from outside the pipeline)."""
        with self._lock:
            return {o.event.event_id for o in self.observed if o.event.producer == ev.CLIENT_PRODUCER}

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for rule in self.rules:
            self.events.remove_targets(Rule=rule, EventBusName=self.bus, Ids=["tap"])
            self.events.delete_rule(Name=rule, EventBusName=self.bus)
        self.sqs.delete_queue(QueueUrl=self.url)


def requests(run_id: str, payments: int, now: datetime) -> list[ev.PaymentRequested]:
    """Good payments, each its own customer, card, address and provider (no velocity rule fires)."""
    rng = random.Random(run_id)
    return [
        payment_requested(
            f"{run_id}-{index:05d}",
            customer_id=f"cust-{run_id}-{index}",
            amount_cents=rng.randrange(2_000, 50_000),
            pan=card_number(rng),
            occurred_at=now,
            ip_address=f"{DOCUMENTATION_NETS[index // 250 % 3]}.{index % 250 + 1}",
            provider_id=f"prov-{run_id}-{index}",
        )
        for index in range(payments)
    ]


def publish(publisher: EventPublisher, events: Sequence[ev.Event], tap: LoadTap, what: str) -> float:
    """Publish ``events`` 10 per PutEvents from PUBLISH_THREADS threads; stamps each payment's
    publish time as ``what``; returns the seconds it took."""

    def put(batch: Sequence[ev.Event]) -> None:
        at = time.time()
        if not publisher.publish(batch).ok:
            raise RuntimeError(f"{what}: PutEvents failed")
        for event in batch:
            tap.stamp(event.payment_id, what, at)

    started = time.perf_counter()
    with ThreadPoolExecutor(PUBLISH_THREADS) as pool:
        list(pool.map(put, [events[i : i + 10] for i in range(0, len(events), 10)]))
    return time.perf_counter() - started


def _run(deployment: LocalStackDeployment, payments: int, budget_seconds: float) -> LoadRun:
    run_id = f"load{uuid.uuid4().hex[:8]}"
    s3, bucket = deployment.client("s3"), deployment.stack.outputs["AchBucketName"]
    files_before = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    logs_before = set((REPO_ROOT / ".localstack" / "lambda").glob("*.log"))
    publisher = EventPublisher(
        deployment.client("events"), deployment.stack.outputs["EventBusName"], "client"
    )
    tap = LoadTap(deployment, run_id, budget_seconds)
    notes: list[str] = []
    try:
        wanted = requests(run_id, payments, datetime.now(UTC).replace(microsecond=0))
        phases, publish_seconds, cut_at = _phases(deployment, tap, publisher, wanted, notes)
        time.sleep(2)  # the last deliveries to the tap
    finally:
        tap.close()
    ids = [request.payment_id for request in wanted]
    result = _reconcile(deployment, run_id, ids, tap, files_before=files_before, as_of=cut_at)
    logs = set((REPO_ROOT / ".localstack" / "lambda").glob("*.log")) - logs_before
    run = LoadRun(
        payments=payments,
        phases=phases,
        stages_ms=stage_latencies(tap.snapshot()),
        reconciliation=result[0],
        dlq_messages=result[1],
        publish_per_second=payments / publish_seconds,
        environments=len(logs),
        load_average=os.getloadavg()[0],
        notes=notes,
    )
    times = tap.snapshot().values()
    batched = [t["PayoutBatched"] for t in times if "PayoutBatched" in t]
    first = min(t["requested"] for t in times if "requested" in t)
    run.seconds = (max(batched) if batched else time.time()) - first
    return run


def _phases(
    deployment: LocalStackDeployment,
    tap: LoadTap,
    publisher: EventPublisher,
    wanted: Sequence[ev.PaymentRequested],
    notes: list[str],
) -> tuple[list[Phase], float, datetime]:
    ids = [request.payment_id for request in wanted]
    publish_seconds = publish(publisher, wanted, tap, "requested")
    if not tap.wait("holds", ids, HELD_OR_DONE, notes):  # measured as far as it got, not reconciled
        return (
            [_phase("request -> held", tap, ids, "requested", "FundsHeld")],
            publish_seconds,
            datetime.now(UTC),
        )
    phases = [_phase("request -> held", tap, ids, "requested", "FundsHeld")]
    holds = tap.of(ev.FundsHeld)
    completions = [
        ev.ServiceCompleted.create(
            payment_id=hold.payment_id,
            producer="client",
            cause=hold,
            data=ev.ServiceCompletedData(completed_at=datetime.now(UTC)),
        )
        for hold in holds
    ]
    held = [hold.payment_id for hold in holds]
    publish(publisher, completions, tap, "completed")
    tap.wait("releases", held, ("FundsReleased",), notes)
    _wait_payouts_recorded(deployment, tap.run_id, len(held), notes)
    phases.append(_phase("completion -> released", tap, held, "completed", "FundsReleased"))
    cut_at = _cut(deployment, tap, held, notes)
    phases.append(_phase("ACH cut -> batched", tap, held, "cut", "PayoutBatched"))
    return phases, publish_seconds, cut_at


def _phase(name: str, tap: LoadTap, ids: Sequence[str], start: str, goal: str) -> Phase:
    snapshot = tap.snapshot()
    times = [snapshot.get(p, {}) for p in ids]
    starts = [t[start] for t in times if start in t]
    ends = [t[goal] for t in times if goal in t]
    seconds = max(ends) - min(starts) if starts and ends else 0.0
    return Phase(name, len(ends), seconds)


def _wait_payouts_recorded(
    deployment: LocalStackDeployment, run_id: str, released: int, notes: list[str]
) -> None:
    """The ACH batch step records each released payout (no event says so): wait for the rows."""
    rows: list[PayoutRow] = []
    deadline = time.monotonic() + STALL_SECONDS
    while time.monotonic() < deadline:
        rows = [row for row in payout_rows(deployment) if row.payment_id.startswith(run_id)]
        if len(rows) >= released:
            return
        time.sleep(2)
    notes.append(f"payouts recorded: {len(rows)} of {released} after {STALL_SECONDS} s")


def _cut(deployment: LocalStackDeployment, tap: LoadTap, held: Sequence[str], notes: list[str]) -> datetime:
    """Invoke the ACH cut as its schedule would, a day later (every payout due), until every
    released payment is batched; returns the cut's time."""
    cut_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    function = deployment.function("AchCutFunction")
    for payment_id in held:
        tap.stamp(payment_id, "cut", time.time())
    for _ in range(CUT_ATTEMPTS):
        response = deployment.client("lambda").invoke(
            FunctionName=function, Payload=json.dumps(scheduled_event(cut_at)).encode()
        )
        if "FunctionError" in response:  # what it finished stays; the next cut does the rest
            notes.append(f"ACH cut failed: {response['Payload'].read()[:300]!r}")
            continue
        if tap.wait("payouts batched", held, ("PayoutBatched",), []):
            return cut_at
    notes.append(f"not every payout batched after {CUT_ATTEMPTS} cuts")
    return cut_at


def _reconcile(
    deployment: LocalStackDeployment,
    run_id: str,
    ids: Sequence[str],
    tap: LoadTap,
    *,
    files_before: set[str],
    as_of: datetime,
) -> tuple[Reconciliation, int]:
    """The embedded run's reconciliation over what this run left in the stack, and its DLQ messages."""
    entries, _ = ach_file_entries(deployment)
    dlq = [record for record in dlq_records(deployment) if (record.payment_id or run_id).startswith(run_id)]
    reconciliation = reconcile(
        ids,
        tap.observed,
        dlq,
        [entry.as_ach_entry() for entry in entries if entry.file_key not in files_before],
        ledger(deployment).verify_balanced(),
        context=stack_context(
            deployment, as_of=as_of, external_event_ids=tap.client_event_ids(), only=run_id
        ),
    )
    return reconciliation, len(dlq)


def stage_latencies(times: Mapping[str, Mapping[str, float]]) -> dict[str, list[float]]:
    """Per stage, each payment's time from the stage's start to its end, in milliseconds."""
    return {
        stage: [(t[end] - t[start]) * 1000 for t in times.values() if start in t and end in t]
        for stage, start, end in STAGES
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS, help="seconds the run may take")
    args = parser.parse_args()
    from bench.run import load_section

    print(load_section(measure(args.payments, args.budget)))


if __name__ == "__main__":
    main()
