import json
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from paypipe.events import models as ev
from paypipe.runtime.publisher import EventPublisher, chunk_entries, entry_for


def _events(count: int) -> list[ev.Event]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        ev.ServiceCompleted.create(
            payment_id=f"p{i}",
            data=ev.ServiceCompletedData(completed_at=at),
            producer="client",
            dedup_key=str(i),
        )
        for i in range(count)
    ]


class FakeEvents:
    """PutEvents double: fails the listed payment ids for the given number of attempts."""

    def __init__(self, failures: dict[str, int] | None = None, throttle_calls: int = 0) -> None:
        self.failures = dict(failures or {})
        self.throttle_calls = throttle_calls
        self.calls: list[list[str]] = []

    def put_events(self, Entries):
        ids = [json.loads(entry["Detail"])["payment_id"] for entry in Entries]
        self.calls.append(ids)
        if self.throttle_calls:
            self.throttle_calls -= 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutEvents")
        results = []
        for payment_id in ids:
            if self.failures.get(payment_id, 0) > 0:
                self.failures[payment_id] -= 1
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                results.append({"EventId": f"id-{payment_id}"})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_batches_of_ten():
    fake = FakeEvents()
    result = EventPublisher(fake, "bus", "test", max_backoff_seconds=0).publish(_events(25))
    assert result.ok and len(result.published) == 25
    assert [len(call) for call in fake.calls] == [10, 10, 5]


def test_retries_only_the_failed_entries():
    fake = FakeEvents(failures={"p3": 2, "p7": 1})
    result = EventPublisher(fake, "bus", "test", max_backoff_seconds=0).publish(_events(10))
    assert result.ok
    assert fake.calls[0] == [f"p{i}" for i in range(10)]
    assert fake.calls[1] == ["p3", "p7"]
    assert fake.calls[2] == ["p3"]


def test_reports_entries_that_never_succeed():
    fake = FakeEvents(failures={"p1": 99})
    result = EventPublisher(fake, "bus", "test", max_attempts=3, max_backoff_seconds=0).publish(_events(3))
    assert [failed.event.payment_id for failed in result.failed] == ["p1"]
    assert {event.payment_id for event in result.published} == {"p0", "p2"}
    assert len(fake.calls) == 3


def test_throttled_call_is_retried_whole():
    fake = FakeEvents(throttle_calls=2)
    result = EventPublisher(fake, "bus", "test", max_backoff_seconds=0).publish(_events(4))
    assert result.ok and len(fake.calls) == 3


def test_chunks_respect_the_size_limit():
    big = {"Source": "s", "DetailType": "t", "Detail": "x" * 100_000}
    assert chunk_entries([big, big, big]) == [[0, 1], [2]]


def test_entry_source_names_the_producer():
    entry = entry_for(_events(1)[0], "bus", "release")
    assert entry["Source"] == "paypipe.release" and entry["DetailType"] == "ServiceCompleted"


def test_entries_carry_the_invocations_trace_header(monkeypatch):
    (event,) = _events(1)
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    assert "TraceHeader" not in entry_for(event, "bus", "release")
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    entry = entry_for(event, "bus", "release")
    assert entry["TraceHeader"] == header
    assert chunk_entries([entry]) == [[0]]  # the header is not part of the entry's size


def test_only_published_step_events_become_metrics():
    from paypipe.runtime import metrics

    metrics._pending.clear()
    events = _events(3)
    EventPublisher(FakeEvents(failures={"p1": 99}), "bus", "client", max_backoff_seconds=0).publish(events)
    assert metrics.pending() == []
    steps = [event.model_copy(update={"producer": "release"}) for event in events]
    result = EventPublisher(FakeEvents(failures={"p1": 99}), "bus", "release", max_backoff_seconds=0).publish(
        steps
    )
    assert len(result.published) == 2
    counted = [fact for fact in metrics.pending() if fact.metric == "EventsPublished"]
    assert sum(fact.value for fact in counted) == 2
    metrics._pending.clear()
