"""Fault injection for the embedded pipeline: what at-least-once delivery and AWS throw at a consumer.

Delivery faults act in the pollers (duplicates, reordering, crashes before or after a batch was
processed); service faults wrap the functions' AWS clients: PutEvents partial failures, KMS and
DynamoDB throttling (retried as the SDK does, occasionally outlasting its retries), and writes
whose response was lost, which the SDK sends again (so a conditional write meets its own earlier
success). Everything is drawn from one seeded generator, so a run is repeatable.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

DYNAMODB_WRITES = frozenset(
    {"put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"}
)
DYNAMODB_READS = frozenset({"get_item", "query", "scan", "batch_get_item", "transact_get_items"})
KMS_CALLS = frozenset({"generate_data_key", "decrypt", "encrypt"})


SDK_MAX_ATTEMPTS = 6  # botocore standard retry mode, as configured in paypipe.runtime.aws


@dataclass
class FaultPlan:
    seed: int = 1
    duplicate_delivery: float = 0.05  # a processed message is not deleted: delivered again
    reorder: float = 0.10  # a received message is held back to a later poll
    crash_before: float = 0.02  # the function dies before doing anything with the batch
    crash_after: float = 0.02  # the function did the work, but its response is lost
    put_events_entry_failure: float = 0.05  # per PutEvents entry
    # Per attempt; the SDK retries. High because the data-key cache leaves a run only a few KMS calls.
    kms_throttle: float = 0.5
    dynamodb_throttle: float = 0.05  # per attempt; the SDK retries
    retries_exhausted: float = 0.002  # per call: throttling outlasts the SDK's retries
    response_lost: float = 0.02  # per write: applied, response lost, the SDK sends it again
    # Per card processor call, by the simulated acquirer (seeded from ``seed``): a retryable error,
    # or a timeout (half of them after the operation happened), each looked up and retried.
    processor_error: float = 0.05
    processor_timeout: float = 0.05
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def roll(self, kind: str, probability: float) -> bool:
        with self._lock:
            hit = self._rng.random() < probability
            if hit:
                self.injected[kind] += 1
            return hit

    def environment(self) -> dict[str, str]:
        """What the functions' environment adds: the simulated acquirer's faults."""
        return {
            "ACQUIRER_FAULT_SEED": str(self.seed),
            "ACQUIRER_ERROR_RATE": str(self.processor_error),
            "ACQUIRER_TIMEOUT_RATE": str(self.processor_timeout),
        }

    def wrap_client(self, service: str, client: Any) -> Any:
        if service in {"events", "kms", "dynamodb"}:
            return FaultyClient(service, client, self)
        return client


def _throttled(service: str, operation: str) -> ClientError:
    code = "ProvisionedThroughputExceededException" if service == "dynamodb" else "ThrottlingException"
    return ClientError({"Error": {"Code": code, "Message": f"injected {service} throttling"}}, operation)


class FaultyClient:
    """A boto3 client proxy that fails some calls the way the real service can."""

    def __init__(self, service: str, inner: Any, plan: FaultPlan) -> None:
        self._service = service
        self._inner = inner
        self._plan = plan

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute
        if self._service == "events" and name == "put_events":
            return self._put_events
        if self._service == "kms" and name in KMS_CALLS:
            return self._throttling(name, attribute, self._plan.kms_throttle, is_write=False)
        if self._service == "dynamodb" and name in DYNAMODB_WRITES | DYNAMODB_READS:
            return self._throttling(
                name, attribute, self._plan.dynamodb_throttle, is_write=name in DYNAMODB_WRITES
            )
        return attribute

    def _throttling(self, name: str, call: Any, probability: float, is_write: bool) -> Any:
        plan = self._plan
        kind = f"{self._service}.{name}"

        def wrapped(**kwargs: Any) -> Any:
            if plan.roll(f"{kind}.retries_exhausted", plan.retries_exhausted):
                raise _throttled(self._service, name)
            for _ in range(SDK_MAX_ATTEMPTS - 1):  # throttled attempts the SDK retries
                if not plan.roll(f"{kind}.throttled", probability):
                    break
            result = call(**kwargs)
            if is_write and plan.roll(f"{kind}.response_lost", plan.response_lost):
                return call(**kwargs)  # the SDK re-sends a request whose response was lost
            return result

        return wrapped

    def _put_events(self, **kwargs: Any) -> Any:
        entries = kwargs["Entries"]
        failing = [
            self._plan.roll("events.put_events.entry_failed", self._plan.put_events_entry_failure)
            for _ in entries
        ]
        sent = [entry for entry, fail in zip(entries, failing, strict=True) if not fail]
        response = self._inner.put_events(**{**kwargs, "Entries": sent}) if sent else {"Entries": []}
        results = iter(response["Entries"])
        merged = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "injected partial failure"}
            if fail
            else next(results)
            for fail in failing
        ]
        return {"FailedEntryCount": sum("ErrorCode" in item for item in merged), "Entries": merged}
