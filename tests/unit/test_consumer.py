import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from paypipe.events import models as ev
from paypipe.runtime.consumer import CompressedEvents, Consumer, Receipt, Route
from paypipe.runtime.publisher import EventPublisher

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.fixture
def infra(aws):
    sqs = boto3.client("sqs")
    events = boto3.client("events")
    dynamodb = boto3.client("dynamodb")
    events.create_event_bus(Name="bus")
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    tap = sqs.create_queue(QueueName="tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="bus", EventPattern=json.dumps({"source": [{"prefix": ""}]}))
    events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "tap", "Arn": tap_arn}])
    dynamodb.create_table(
        TableName="idem",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return {"sqs": sqs, "events": events, "dynamodb": dynamodb, "dlq": dlq, "tap": tap}


def completed(payment_id="p1", **overrides):
    return ev.ServiceCompleted.create(
        payment_id=payment_id,
        data=ev.ServiceCompletedData(completed_at=AT),
        producer="client",
        occurred_at=AT,
        dedup_key=payment_id,
        **overrides,
    )


def record(body, message_id="m1", receive_count=1, sent_at=AT, message_attributes=None):
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(int(sent_at.timestamp() * 1000)),
        },
        "messageAttributes": {
            name: {"stringValue": value, "dataType": "String"}
            for name, value in (message_attributes or {}).items()
        },
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:source",
    }


def bus_body(event: ev.Event, source=None):
    source = source or f"paypipe.{event.producer}"
    return {"detail-type": event.event_type, "source": source, "detail": ev.to_detail(event)}


class Recorder:
    def __init__(self, fail_times=0):
        self.calls = 0
        self.fail_times = fail_times
        self.receipts: list[Receipt] = []

    def __call__(self, event, receipt):
        self.calls += 1
        self.receipts.append(receipt)
        if self.calls <= self.fail_times:
            raise RuntimeError("transient failure")
        frozen = ev.HoldFrozenData(hold_id="h", dispute_id="d")
        return [ev.HoldFrozen.create(payment_id=event.payment_id, data=frozen, producer="t", cause=event)]


def make_consumer(
    infra, handler, idempotent=True, max_receive=3, on_refused=None, event_type="ServiceCompleted"
):
    store = (
        DynamoDBPersistenceLayer(table_name="idem", boto3_client=infra["dynamodb"]) if idempotent else None
    )
    return Consumer(
        "test",
        {event_type: Route(handler, on_refused=on_refused)},
        publisher=EventPublisher(infra["events"], "bus", "test", max_backoff_seconds=0),
        sqs_client=infra["sqs"],
        dlq_url=infra["dlq"],
        max_receive_count=max_receive,
        idempotency_store=store,
    )


def drain(sqs, url):
    bodies = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in messages:
            bodies.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_success_publishes_and_reports_no_failures(infra):
    handler = Recorder()
    response = make_consumer(infra, handler).handle({"Records": [record(bus_body(completed()))]})
    assert response == {"batchItemFailures": []}
    published = [json.loads(m["Body"]) for m in drain(infra["sqs"], infra["tap"])]
    assert [p["detail-type"] for p in published] == ["HoldFrozen"]
    assert published[0]["source"] == "paypipe.test"


def test_redelivery_replays_cached_events_without_rerunning_the_step(infra):
    handler = Recorder()
    consumer = make_consumer(infra, handler)
    body = bus_body(completed())
    consumer.handle({"Records": [record(body, "m1")]})
    consumer.handle({"Records": [record(body, "m2", receive_count=2)]})
    assert handler.calls == 1
    ids = [json.loads(m["Body"])["detail"]["event_id"] for m in drain(infra["sqs"], infra["tap"])]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_only_the_failing_record_is_reported(infra):
    handler = Recorder(fail_times=1)
    consumer = make_consumer(infra, handler, idempotent=False)
    records = [record(bus_body(completed("p1")), "m1"), record(bus_body(completed("p2")), "m2")]
    response = consumer.handle({"Records": records})
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


@pytest.mark.parametrize(
    "body, reason",
    [
        ("not json{", "MalformedJson"),
        ({"hello": "world"}, "NotAnEventBridgeEvent"),
        ({"detail-type": "Nope", "detail": {"event_type": "Nope", "schema_version": "1.0"}}, "UnknownEvent"),
    ],
)
def test_malformed_input_is_parked_with_its_reason(infra, body, reason):
    response = make_consumer(infra, Recorder()).handle({"Records": [record(body)]})
    assert response == {"batchItemFailures": []}
    parked = drain(infra["sqs"], infra["dlq"])
    assert len(parked) == 1
    attributes = {k: v["StringValue"] for k, v in parked[0]["MessageAttributes"].items()}
    assert attributes["error_reason"] == reason
    assert attributes["failed_step"] == "test"
    assert parked[0]["Body"] == (body if isinstance(body, str) else json.dumps(body))


def test_schema_violation_names_fields_but_not_values(infra):
    body = bus_body(completed())
    body["detail"]["data"]["completed_at"] = "4111111111111111"
    make_consumer(infra, Recorder()).handle({"Records": [record(body)]})
    [parked] = drain(infra["sqs"], infra["dlq"])
    message = parked["MessageAttributes"]["error_message"]["StringValue"]
    assert parked["MessageAttributes"]["error_reason"]["StringValue"] == "SchemaViolation"
    assert "data.completed_at" in message and "4111111111111111" not in message


def test_unknown_major_version_is_parked(infra):
    body = bus_body(completed())
    body["detail"]["schema_version"] = "2.0"
    make_consumer(infra, Recorder()).handle({"Records": [record(body)]})
    [parked] = drain(infra["sqs"], infra["dlq"])
    assert "major 1 only" in parked["MessageAttributes"]["error_message"]["StringValue"]


def test_last_receive_parks_instead_of_failing(infra):
    handler = Recorder(fail_times=10)
    consumer = make_consumer(infra, handler, max_receive=3)
    body = bus_body(completed())
    assert consumer.handle({"Records": [record(body, receive_count=2)]})["batchItemFailures"]
    assert consumer.handle({"Records": [record(body, receive_count=3)]}) == {"batchItemFailures": []}
    [parked] = drain(infra["sqs"], infra["dlq"])
    assert parked["MessageAttributes"]["error_reason"]["StringValue"] == "RuntimeError"
    assert parked["MessageAttributes"]["receive_count"]["StringValue"] == "3"


def test_a_record_keeps_its_events_compressed_and_a_plain_record_from_before_still_replays(infra):
    handler = Recorder()
    consumer = make_consumer(infra, handler)
    body = bus_body(completed())
    consumer.handle({"Records": [record(body, "m1")]})
    [item] = infra["dynamodb"].scan(TableName="idem")["Items"]
    stored = json.loads(item["data"]["S"])
    assert list(stored) == ["events_zlib"]
    first = [json.loads(m["Body"])["detail"] for m in drain(infra["sqs"], infra["tap"])]
    assert CompressedEvents().from_dict(stored) == first
    # A record written before the events were compressed: the plain list replays as it is.
    infra["dynamodb"].update_item(
        TableName="idem",
        Key={"id": item["id"]},
        UpdateExpression="SET #d = :plain",
        ExpressionAttributeNames={"#d": "data"},
        ExpressionAttributeValues={":plain": {"S": json.dumps(first)}},
    )
    consumer.handle({"Records": [record(body, "m2", receive_count=2)]})
    assert handler.calls == 1
    assert [json.loads(m["Body"])["detail"] for m in drain(infra["sqs"], infra["tap"])] == first


def test_same_key_with_different_content_is_a_conflict(infra):
    consumer = make_consumer(infra, Recorder())
    first = completed()
    changed = ev.ServiceCompleted.create(
        payment_id="p1",
        data=ev.ServiceCompletedData(completed_at=AT + timedelta(minutes=1)),
        producer="client",
        occurred_at=AT,
    )
    consumer.handle({"Records": [record(bus_body(first), "m1")]})
    consumer.handle({"Records": [record(bus_body(changed), "m2")]})
    [parked] = drain(infra["sqs"], infra["dlq"])
    assert parked["MessageAttributes"]["error_reason"]["StringValue"] == "IdempotencyConflict"


def test_publish_failure_fails_the_record_for_redelivery(infra):
    class BrokenEvents:
        def put_events(self, Entries):
            return {
                "FailedEntryCount": len(Entries),
                "Entries": [{"ErrorCode": "InternalFailure"}] * len(Entries),
            }

    consumer = make_consumer(infra, Recorder())
    consumer.publisher = EventPublisher(BrokenEvents(), "bus", "test", max_attempts=2, max_backoff_seconds=0)
    response = consumer.handle({"Records": [record(bus_body(completed()), "m1")]})
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


def test_redelivery_of_a_record_with_no_output_is_a_quiet_success(infra):
    consumer = make_consumer(infra, lambda event, receipt: [])
    body = bus_body(completed())
    assert consumer.handle({"Records": [record(body, "m1")]}) == {"batchItemFailures": []}
    assert consumer.handle({"Records": [record(body, "m2", receive_count=2)]}) == {"batchItemFailures": []}
    assert drain(infra["sqs"], infra["dlq"]) == []


def test_parked_bodies_keep_no_card_number(infra):
    consumer = make_consumer(
        infra, lambda event, receipt: (_ for _ in ()).throw(RuntimeError("down")), max_receive=1
    )
    body = bus_body(completed())
    body["detail"]["data"]["note"] = "card 4111111111111111 on file"
    consumer.handle({"Records": [record(body)]})
    [parked] = drain(infra["sqs"], infra["dlq"])
    assert "4111111111111111" not in parked["Body"]
    assert "[PAN]" in parked["Body"]
    assert parked["MessageAttributes"]["card_data_redacted"]["StringValue"] == "true"


def test_a_card_number_hidden_in_a_json_number_is_parked_as_valid_json(infra):
    consumer = make_consumer(infra, lambda event, receipt: [], max_receive=1)
    body = bus_body(completed())
    body["detail"]["schema_version"] = 4111111111111111  # not a known version: parked at once
    consumer.handle({"Records": [record(body)]})
    [parked] = drain(infra["sqs"], infra["dlq"])
    assert "4111111111111111" not in parked["Body"]
    detail = json.loads(parked["Body"])["detail"]
    assert detail["schema_version"] == "[PAN]"
    assert detail["event_id"] == body["detail"]["event_id"]


# -- trust boundary and the pipeline's clock ---------------------------------------------------


def parked_reasons(infra):
    return [m["MessageAttributes"]["error_reason"]["StringValue"] for m in drain(infra["sqs"], infra["dlq"])]


@pytest.mark.parametrize(
    "source, producer",
    [
        ("paypipe.release", "client"),  # a client event from another publisher's source
        ("paypipe.client", "release"),  # the envelope claims a producer its source is not
        ("paypipe.release", "release"),  # consistent, but not a producer of ServiceCompleted
        (None, "client"),  # no source at all
    ],
)
def test_an_event_from_a_source_or_producer_not_allowed_for_its_type_is_parked(infra, source, producer):
    handler = Recorder()
    event = completed().model_copy(update={"producer": producer})
    body = bus_body(event, source=source or "x")
    if source is None:
        body.pop("source")
    make_consumer(infra, handler).handle({"Records": [record(body)]})
    assert handler.calls == 0
    assert parked_reasons(infra) == ["UntrustedSource"]


def test_the_sweeps_expiry_command_is_accepted_only_from_the_sweep(infra):
    handler = Recorder()
    consumer = make_consumer(infra, handler, event_type="HoldExpiryDue")
    due = ev.HoldExpiryDue.create(
        payment_id="p1",
        data=ev.HoldExpiryDueData(hold_until=AT),
        producer="release",
        occurred_at=AT,
        dedup_key="d",
    )
    forged = due.model_copy(update={"producer": "client"})
    consumer.handle({"Records": [record(bus_body(forged), "m1"), record(bus_body(due), "m2")]})
    assert handler.calls == 1 and handler.receipts[0].source == "paypipe.release"
    assert parked_reasons(infra) == ["UntrustedSource"]


def test_steps_get_the_receipt_time_never_the_clients_time(infra):
    handler = Recorder()
    sent = AT + timedelta(minutes=2)
    make_consumer(infra, handler).handle({"Records": [record(bus_body(completed()), sent_at=sent)]})
    assert handler.receipts[0].received_at == sent


def test_a_replayed_record_keeps_its_first_receipt_time(infra):
    handler = Recorder()
    body = bus_body(completed())
    replayed = record(
        body, sent_at=AT + timedelta(days=3), message_attributes={"received_at": AT.isoformat()}
    )
    make_consumer(infra, handler).handle({"Records": [replayed]})
    assert handler.receipts[0].received_at == AT


def test_a_parked_record_carries_its_receipt_time_for_replay(infra):
    consumer = make_consumer(infra, Recorder(fail_times=9), max_receive=1)
    consumer.handle({"Records": [record(bus_body(completed()), sent_at=AT + timedelta(seconds=7))]})
    [parked] = drain(infra["sqs"], infra["dlq"])
    assert (
        parked["MessageAttributes"]["received_at"]["StringValue"] == (AT + timedelta(seconds=7)).isoformat()
    )


def refuse_with_event(event, refusal, receipt):
    data = ev.HoldFrozenData(hold_id=refusal.code, dispute_id=refusal.field)
    return [ev.HoldFrozen.create(payment_id=event.payment_id, data=data, producer="t", cause=event)]


@pytest.mark.parametrize(
    "sent_at, completed_at, field",
    [
        (AT + timedelta(minutes=6), AT, "occurred_at"),  # sent late: the client's clock is behind
        (AT - timedelta(minutes=6), AT, "occurred_at"),  # back-dated to the future of the pipeline
        (AT, AT - timedelta(days=1), "completed_at"),  # a data timestamp far from now
    ],
)
def test_client_timestamps_outside_the_skew_are_refused_before_the_step(infra, sent_at, completed_at, field):
    handler = Recorder()
    event = ev.ServiceCompleted.create(
        payment_id="p1",
        data=ev.ServiceCompletedData(completed_at=completed_at),
        producer="client",
        occurred_at=AT,
        dedup_key="p1",
    )
    consumer = make_consumer(infra, handler, on_refused=refuse_with_event)
    consumer.handle({"Records": [record(bus_body(event), sent_at=sent_at)]})
    assert handler.calls == 0
    [published] = [json.loads(m["Body"]) for m in drain(infra["sqs"], infra["tap"])]
    assert published["detail"]["data"] == {"hold_id": "CLIENT_CLOCK_SKEW", "dispute_id": field}


def test_client_timestamps_within_the_skew_reach_the_step(infra):
    handler = Recorder()
    make_consumer(infra, handler).handle(
        {"Records": [record(bus_body(completed()), sent_at=AT + timedelta(minutes=4))]}
    )
    assert handler.calls == 1


def test_without_a_refusal_route_a_skewed_client_event_is_parked(infra):
    handler = Recorder()
    make_consumer(infra, handler).handle(
        {"Records": [record(bus_body(completed()), sent_at=AT + timedelta(hours=1))]}
    )
    assert handler.calls == 0
    assert parked_reasons(infra) == ["CLIENT_CLOCK_SKEW"]
