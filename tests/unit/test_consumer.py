import json
from datetime import UTC, datetime

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from paypipe.events import models as ev
from paypipe.runtime.consumer import Consumer, Route
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


def record(body, message_id="m1", receive_count=1):
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:source",
    }


def bus_body(event: ev.Event):
    return {"detail-type": event.event_type, "source": "paypipe.client", "detail": ev.to_detail(event)}


class Recorder:
    def __init__(self, fail_times=0):
        self.calls = 0
        self.fail_times = fail_times

    def __call__(self, event):
        self.calls += 1
        if self.calls <= self.fail_times:
            raise RuntimeError("transient failure")
        frozen = ev.HoldFrozenData(hold_id="h", dispute_id="d")
        return [ev.HoldFrozen.create(payment_id=event.payment_id, data=frozen, producer="t", cause=event)]


def make_consumer(infra, handler, idempotent=True, max_receive=3):
    store = (
        DynamoDBPersistenceLayer(table_name="idem", boto3_client=infra["dynamodb"]) if idempotent else None
    )
    return Consumer(
        "test",
        {"ServiceCompleted": Route(handler)},
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


def test_same_key_with_different_content_is_a_conflict(infra):
    consumer = make_consumer(infra, Recorder())
    first = completed()
    changed = ev.ServiceCompleted.create(
        payment_id="p1",
        data=ev.ServiceCompletedData(completed_at=datetime(2027, 1, 1, tzinfo=UTC)),
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
    consumer = make_consumer(infra, lambda event: [])
    body = bus_body(completed())
    assert consumer.handle({"Records": [record(body, "m1")]}) == {"batchItemFailures": []}
    assert consumer.handle({"Records": [record(body, "m2", receive_count=2)]}) == {"batchItemFailures": []}
    assert drain(infra["sqs"], infra["dlq"]) == []


def test_parked_bodies_keep_no_card_number(infra):
    consumer = make_consumer(infra, lambda event: (_ for _ in ()).throw(RuntimeError("down")), max_receive=1)
    body = bus_body(completed())
    body["detail"]["data"]["note"] = "card 4111111111111111 on file"
    consumer.handle({"Records": [record(body)]})
    [parked] = drain(infra["sqs"], infra["dlq"])
    assert "4111111111111111" not in parked["Body"]
    assert "[PAN]" in parked["Body"]
    assert parked["MessageAttributes"]["card_data_redacted"]["StringValue"] == "true"


def test_a_card_number_hidden_in_a_json_number_is_parked_as_valid_json(infra):
    consumer = make_consumer(infra, lambda event: [], max_receive=1)
    body = bus_body(completed())
    body["detail"]["schema_version"] = 4111111111111111  # not a known version: parked at once
    consumer.handle({"Records": [record(body)]})
    [parked] = drain(infra["sqs"], infra["dlq"])
    assert "4111111111111111" not in parked["Body"]
    detail = json.loads(parked["Body"])["detail"]
    assert detail["schema_version"] == "[PAN]"
    assert detail["event_id"] == body["detail"]["event_id"]
