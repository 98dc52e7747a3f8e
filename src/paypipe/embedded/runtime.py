"""Runs the pipeline in this process on moto: the template's resources, its functions as pollers.

Each function of the template is loaded from its CodeUri and Handler like Lambda would, with its
own environment. Functions with an SQS event source are driven by a poller that mimics the event
source mapping (batches, ReportBatchItemFailures, failed records visible again for redelivery,
the queue's redrive policy moving them to the DLQ); scheduled functions run on demand with the
schedule's time, which lets a run fast-forward to hold expiry or an ACH window.

The run has its own pipeline clock (``clock``): the steps, SQS and EventBridge all read it, and
only the run moves it (publishing traffic at its time, firing schedules), never backwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import boto3
from moto import mock_aws
from moto.events.models import events_backends

from paypipe.adapters import dynamo_index
from paypipe.embedded.faults import FaultPlan
from paypipe.embedded.moto_patches import faster_transactions, linear_moto, pipeline_clock
from paypipe.embedded.reconcile import Observed
from paypipe.embedded.template import ACCOUNT_ID, REGION, FunctionSpec, Stack, provision_stack
from paypipe.events.models import CLIENT_PRODUCER, EVENT_TYPES, Event, parse_detail
from paypipe.runtime import clock as pipeline_time
from paypipe.runtime.aws import wrap_clients
from paypipe.runtime.clock import ManualClock
from paypipe.runtime.publisher import EventPublisher, PublishResult

_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "embedded",
    "AWS_SECRET_ACCESS_KEY": "embedded",
    "AWS_SESSION_TOKEN": "embedded",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class LambdaContext:
    function_name: str
    timeout_seconds: int
    aws_request_id: str = ""
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""

    def get_remaining_time_in_millis(self) -> int:
        # Pollers make failed messages visible again at once, where AWS waits out a visibility
        # timeout of at least 6x the function timeout. Reporting almost no time left keeps that
        # order of events: by a redelivery, an interrupted invocation's in-progress idempotency
        # record has expired, as it would have on AWS.
        return 1


@dataclass
class PollStats:
    invocations: int = 0
    records: int = 0
    failed_records: int = 0
    handler_errors: int = 0


class EmbeddedFunction:
    def __init__(self, spec: FunctionSpec, stack: Stack, sqs: Any, faults: FaultPlan | None = None) -> None:
        self.spec = spec
        self._stack = stack
        self._sqs = sqs
        self._faults = faults
        self._module: ModuleType | None = None
        self.stats = PollStats()

    @property
    def handler(self) -> Callable[[Mapping[str, Any], Any], Any]:
        module_name, _, attribute = self.spec.handler.rpartition(".")
        if self._module is None:
            path = self.spec.code_dir / (module_name.replace(".", "/") + ".py")
            spec = importlib.util.spec_from_file_location(f"paypipe_fn_{self.spec.logical_id}", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            with self.environment():
                spec.loader.exec_module(module)
            self._module = module
        handler: Callable[[Mapping[str, Any], Any], Any] = getattr(self._module, attribute)
        return handler

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        variables = {**self.spec.environment, **(self._faults.environment() if self._faults else {})}
        saved = {key: os.environ.get(key) for key in variables}
        os.environ.update(variables)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def invoke(self, event: Mapping[str, Any]) -> Any:
        context = LambdaContext(self.spec.environment["AWS_LAMBDA_FUNCTION_NAME"], self.spec.timeout_seconds)
        context.aws_request_id = str(uuid.uuid4())
        handler = self.handler
        with self.environment():
            self.stats.invocations += 1
            return handler(event, context)

    def invoke_async(self, event: Mapping[str, Any], attempts: int = 3) -> Any:
        """Invoke as Lambda's asynchronous invocation would: a failed run is retried (``attempts``
        in all); the last error is returned in place of a result."""
        result: Any = None
        for _ in range(attempts):
            try:
                return self.invoke(event)
            except Exception as error:
                result = error
        return result

    def poll_once(self) -> int:
        """One receive + invoke per SQS source, like one event source mapping poll."""
        handled = 0
        for source in self.spec.sqs_sources:
            queue_url = self._stack.queue_url_for_arn(source.queue_arn)
            messages = self._sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=source.batch_size,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                continue
            handled += len(messages)
            delivered, held_back = self._held_back(messages)
            failed = self._deliver(delivered, source.queue_arn, source.report_batch_item_failures)
            self.stats.records += len(delivered)
            self.stats.failed_records += len(failed)
            for message in messages:
                if message["MessageId"] in failed or message in held_back or self._duplicate(message):
                    # Visible again at once: the embedded run does not wait out visibility timeouts.
                    self._sqs.change_message_visibility(
                        QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    self._sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return handled

    def _held_back(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Reordering: some messages skip this poll and come back in a later one."""
        if self._faults is None:
            return messages, []
        held = [m for m in messages if self._faults.roll("delivery.reordered", self._faults.reorder)]
        delivered = [m for m in messages if m not in held]
        return delivered, held

    def _duplicate(self, message: Mapping[str, Any]) -> bool:
        """At-least-once: a processed message left on the queue is delivered again."""
        return self._faults is not None and self._faults.roll(
            "delivery.duplicated", self._faults.duplicate_delivery
        )

    def _deliver(self, messages: Sequence[Mapping[str, Any]], queue_arn: str, partial: bool) -> set[str]:
        all_ids = {message["MessageId"] for message in messages}
        if not messages:
            return set()
        if self._faults and self._faults.roll("function.crashed_before", self._faults.crash_before):
            return all_ids
        event = {"Records": [lambda_sqs_record(message, queue_arn) for message in messages]}
        try:
            response = self.invoke(event)
        except Exception:
            self.stats.handler_errors += 1
            return all_ids
        if self._faults and self._faults.roll("function.crashed_after", self._faults.crash_after):
            return all_ids
        if not partial or not response:
            return set()
        failures = response.get("batchItemFailures", []) if isinstance(response, dict) else []
        return {item["itemIdentifier"] for item in failures}


class _CountingEvents:
    """An EventBridge client that counts the entries put on the bus."""

    def __init__(self, inner: Any, pipeline: EmbeddedPipeline) -> None:
        self._inner = inner
        self._pipeline = pipeline

    def put_events(self, **kwargs: Any) -> Any:
        self._pipeline.published_by_functions += len(kwargs.get("Entries", []))
        return self._inner.put_events(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def lambda_sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message in the shape Lambda's event source mapping hands to the function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {"stringValue": value.get("StringValue"), "dataType": value.get("DataType", "String")}
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def scheduled_event(at: datetime, rule: str = "embedded-schedule") -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule],
        "detail": {},
    }


# Template parameters the embedded stack takes unless its overrides say otherwise: no prenotes, so a
# run's first payouts are filed at once (``AchPrenote=on`` turns them on, as ``paypipe run --prenote``).
EMBEDDED_PARAMETERS: Mapping[str, str] = {"AchPrenote": "off"}
# Index shards in an embedded run (the deployed stack: dynamo_index.INDEX_SHARDS): still more than
# one, so every read merges shards, but not a moto round trip per deployed partition key.
EMBEDDED_INDEX_SHARDS = 2


class EmbeddedPipeline:
    """The whole stack on moto in this process. Use as a context manager.

    ``overrides`` are template parameter values, over ``EMBEDDED_PARAMETERS`` and the defaults.
    """

    def __init__(
        self,
        overrides: Mapping[str, str] | None = None,
        stack_name: str = "paypipe-embedded",
        faults: FaultPlan | None = None,
        start: datetime | None = None,
        index_shards: int | None = None,
    ) -> None:
        self._overrides = {**EMBEDDED_PARAMETERS, **(overrides or {})}
        self.faults = faults
        self._stack_name = stack_name
        self.clock = ManualClock(start or datetime.now(UTC).replace(microsecond=0))
        self._mock = mock_aws()
        self._transactions = faster_transactions()
        self._clock_patch = pipeline_clock(self.clock)
        self._linear = linear_moto()
        self._shards = dynamo_index.index_shards(index_shards or EMBEDDED_INDEX_SHARDS)
        self._saved_env: dict[str, str | None] = {}
        self.stack: Stack
        self.functions: dict[str, EmbeddedFunction] = {}
        self.session: Any = None
        self._tap_url = ""
        self._observed: list[Observed] = []
        self.unparseable_events = 0
        self.external_event_ids: set[str] = set()  # events published from outside the pipeline
        self.published_by_functions = 0  # events the functions put on the bus
        self._clients: dict[str, Any] = {}
        self.client_publisher: EventPublisher

    def __enter__(self) -> EmbeddedPipeline:
        self._saved_env = {key: os.environ.get(key) for key in _FAKE_CREDENTIALS}
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
            self._saved_env[key] = os.environ.pop(key)
        os.environ.update(_FAKE_CREDENTIALS)
        self._mock.start()
        self._transactions.__enter__()
        self._clock_patch.__enter__()
        self._linear.__enter__()
        self._shards.__enter__()
        pipeline_time.use(self.clock)
        wrap_clients(self._wrap_client)
        self.session = boto3.session.Session(region_name=REGION)
        self.stack = provision_stack(self.session, stack_name=self._stack_name, overrides=self._overrides)
        sqs = self.client("sqs")
        self.functions = {
            logical_id: EmbeddedFunction(spec, self.stack, sqs, self.faults)
            for logical_id, spec in self.stack.functions.items()
        }
        self._create_tap()
        self.client_publisher = EventPublisher(
            self.client("events"), self.stack.outputs["EventBusName"], producer=CLIENT_PRODUCER
        )
        return self

    def _wrap_client(self, service: str, made: Any) -> Any:
        """The functions' clients: their PutEvents counted, faults injected when planned."""
        if service == "events":
            made = _CountingEvents(made, self)
        return self.faults.wrap_client(service, made) if self.faults else made

    def client(self, service: str) -> Any:
        """The run's own client for ``service`` (made once: clients are slow to make)."""
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pipeline_time.use(None)
        self._shards.__exit__(None, None, None)
        self._linear.__exit__(None, None, None)
        self._clock_patch.__exit__(None, None, None)
        self._transactions.__exit__(None, None, None)
        self._mock.stop()
        wrap_clients(None)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # -- observation ---------------------------------------------------------------------------

    def _create_tap(self) -> None:
        """An observer queue on the bus (run harness only, not part of the stack)."""
        sqs = self.client("sqs")
        events = self.client("events")
        self._tap_url = sqs.create_queue(QueueName=f"{self._stack_name}-tap")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=self._tap_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        bus = self.stack.outputs["EventBusName"]
        events.put_rule(
            Name=f"{self._stack_name}-tap",
            EventBusName=bus,
            EventPattern=json.dumps({"detail-type": sorted(EVENT_TYPES)}),
        )
        events.put_targets(
            Rule=f"{self._stack_name}-tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": tap_arn}]
        )

    def observed(self) -> list[Event]:
        """Every event seen on the bus so far, in arrival order."""
        return [item.event for item in self.observations()]

    def observations(self) -> list[Observed]:
        """Every event seen on the bus so far with its source and delivery time, in arrival order."""
        self._read_tap()
        return list(self._observed)

    def _read_tap(self) -> None:
        """Move what the observer queue holds into the observations."""
        sqs = self.client("sqs")
        while True:
            messages = sqs.receive_message(
                QueueUrl=self._tap_url, MaxNumberOfMessages=10, AttributeNames=["SentTimestamp"]
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                try:
                    body = json.loads(message["Body"])
                    event = parse_detail(body["detail-type"], body["detail"])
                except (ValueError, KeyError, TypeError):  # malformed traffic: counted, not observed
                    self.unparseable_events += 1
                    continue
                received = pipeline_time.received_at(message.get("Attributes", {}), {})
                self._observed.append(Observed(event, body.get("source"), received))
            sqs.delete_message_batch(
                QueueUrl=self._tap_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def archived(self) -> list[dict[str, Any]]:
        """Every event the stack's archives hold, as EventBridge delivered it to them."""
        backend = events_backends[ACCOUNT_ID][REGION]
        names = {ids["ArchiveName"] for ids in self.stack.physical.values() if "ArchiveName" in ids}
        return [dict(event) for name in sorted(names) for event in backend.archives[name].events]

    # -- driving ------------------------------------------------------------------------------

    def publish(self, events: Sequence[Event]) -> PublishResult:
        """Publish as the client, now (pipeline time)."""
        self.external_event_ids.update(event.event_id for event in events)
        return self.client_publisher.publish(events)

    def publish_as(self, publisher: str, events: Sequence[Event]) -> PublishResult:
        """Publish from outside the pipeline under source ``paypipe.<publisher>`` (e.g. the operator)."""
        self.external_event_ids.update(event.event_id for event in events)
        bus = self.stack.outputs["EventBusName"]
        return EventPublisher(self.client("events"), bus, producer=publisher).publish(events)

    def play(self, events: Sequence[Event]) -> PublishResult:
        """Publish as the client, each event at its own time (the clock moves forward to it)."""
        result = PublishResult()
        for event in events:
            self.advance_to(event.occurred_at)
            one = self.publish([event])
            result.published.extend(one.published)
            result.failed.extend(one.failed)
        return result

    def advance_to(self, moment: datetime) -> None:
        """Move the pipeline clock forward to ``moment`` (never back)."""
        if moment > self.clock.now():
            self.clock.set(moment)

    def drain(self, max_rounds: int = 10_000, on_round: Callable[[int], None] | None = None) -> int:
        """Poll every SQS-fed function until all their queues are empty. Returns records handled."""
        total = 0
        for _ in range(max_rounds):
            handled = sum(function.poll_once() for function in self.functions.values())
            self._read_tap()  # keeps the observer queue short: moto's cost per send grows with it
            total += handled
            if on_round:
                on_round(handled)
            if handled == 0:
                return total
        raise RuntimeError(f"queues still busy after {max_rounds} rounds")

    def run_scheduled(self, at: datetime, attempts: int = 3) -> dict[str, Any]:
        """Invoke every scheduled function as its schedule would at ``at``.

        Like Lambda's asynchronous invocation, a failed run is retried (``attempts`` in all); the
        last error is returned in place of a result. The pipeline clock moves to ``at`` first.
        """
        return {
            logical_id: self.run_schedule(logical_id, at, attempts)
            for logical_id, function in self.functions.items()
            if function.spec.schedules
        }

    def run_schedule(self, logical_id: str, at: datetime, attempts: int = 3) -> Any:
        """Invoke one scheduled function as its schedule would at ``at`` (see ``run_scheduled``)."""
        self.advance_to(at)
        return self.functions[logical_id].invoke_async(
            scheduled_event(at, rule=f"{logical_id}-schedule"), attempts
        )

    def queue_depths(self, kind: str | None = None) -> dict[str, int]:
        """Visible + in-flight messages per DLQ output (``kind``: consumer, rule-target, scheduled)."""
        sqs = self.client("sqs")
        depths = {}
        for name, url in self.stack.outputs.items():
            if not name.endswith("DLQUrl"):
                continue
            attributes = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            depths[name] = int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
        return depths

    def download(self, bucket: str, key: str, destination: Path) -> Path:
        destination.parent.mkdir(parents=True, exist_ok=True)
        body = self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        destination.write_bytes(body)
        return destination
