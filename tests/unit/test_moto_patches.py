"""The embedded run's moto patches: each gives moto's own results, and stands for moto's source as checked."""

import importlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import moto
import pytest
from moto import mock_aws
from moto.events.utils import EventTemplateParser
from moto.sqs.models import sqs_backends

from paypipe.embedded.moto_patches import REPLACED, fingerprint, linear_moto, parse_template, retained

REGION = "us-east-1"


def moto_original(qualified: str) -> Callable[..., Any]:
    module, owner, name = qualified.rsplit(".", 2)
    function: Callable[..., Any] = getattr(getattr(importlib.import_module(module), owner), name)
    return function


@pytest.mark.parametrize("qualified", sorted(REPLACED))
def test_each_replaced_moto_function_is_the_source_its_patch_was_checked_against(qualified):
    found = fingerprint(moto_original(qualified))
    assert found in REPLACED[qualified], (
        f"moto {moto.__version__} changed {qualified} (fingerprint {found}): check that the patch in "
        "paypipe.embedded.moto_patches still gives moto's results, then add the fingerprint to REPLACED"
    )


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def test_the_retention_check_answers_as_moto_for_fresh_and_expired_messages(aws):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    for body in ("fresh", "old", "edge"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    backend = sqs_backends["123456789012"][REGION]
    messages = list(backend.get_queue("q")._messages)
    messages[1].sent_timestamp -= 61_000
    messages[2].sent_timestamp -= 60_000
    moto_check = moto_original("moto.sqs.models.SQSBackend.is_message_valid_based_on_retention_period")
    answers = [retained(backend, "q", message) for message in messages]
    assert answers == [moto_check(backend, "q", message) for message in messages]
    assert answers[:2] == [True, False]


def _queries(ddb: Any) -> list[dict[str, Any]]:
    pages = []
    for kwargs in (
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "b"}}},
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "none"}}},
        {
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": {"S": "b"}, ":s": {"S": "x#"}, ":v": {"N": "2"}},
            "FilterExpression": "v >= :v",
            "ScanIndexForward": False,
        },
        {
            "KeyConditionExpression": "g = :g",
            "IndexName": "gsi",
            "ExpressionAttributeValues": {":g": {"S": "even"}},
        },
    ):
        pages.append(ddb.query(TableName="t", **kwargs))
    first = ddb.query(
        TableName="t",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "a"}},
        Limit=2,
    )
    following = ddb.query(
        TableName="t",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "a"}},
        ExclusiveStartKey=first["LastEvaluatedKey"],
    )
    pages.extend(
        [
            first,
            following,
            ddb.query(
                TableName="single",
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "b"}},
            ),
        ]
    )
    for page in pages:
        page.pop("ResponseMetadata")
    return pages


def test_a_table_query_reads_its_partition_with_moto_results_and_order(aws):
    ddb = boto3.client("dynamodb", region_name=REGION)
    string = {"AttributeType": "S"}
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, **string} for n in ("pk", "sk", "g")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.create_table(
        TableName="single",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", **string}],
        BillingMode="PAY_PER_REQUEST",
    )
    for index in range(12):  # written out of order, across partitions
        pk, sk = "abc"[index % 3], f"{'xy'[index % 2]}#{(7 * index) % 12:02d}"
        item = {
            "pk": {"S": pk},
            "sk": {"S": sk},
            "v": {"N": str(index % 5)},
            "g": {"S": "odd" if index % 2 else "even"},
        }
        ddb.put_item(TableName="t", Item=item)
        ddb.put_item(TableName="single", Item={"pk": {"S": pk}, "v": {"N": str(index)}})
    ddb.delete_item(TableName="t", Key={"pk": {"S": "b"}, "sk": {"S": "x#04"}})
    unpatched = _queries(ddb)
    with linear_moto():
        patched = _queries(ddb)
    assert patched == unpatched
    assert [item["sk"]["S"] for item in patched[0]["Items"]] == ["x#10", "y#01", "y#07"]


def test_input_templates_are_rendered_as_moto_renders_them():
    event = {
        "id": "e1",
        "time": 1700000000,
        "version": "0",
        "detail-type": "FundsHeld",
        "source": "paypipe.escrow",
        "account": "123456789012",
        "region": REGION,
        "resources": ["arn:a", "arn:b"],
        "detail": {"payment_id": "p1", "amount": {"minor": 1250}, "tags": ["x"]},
        "ingestion-time": 1700000001.5,
    }
    cases = [
        ("", {}),
        (
            '{"p": "<pid>", "amount": <amount>, "missing": "<nothing>", "whole": <aws.events.event.json>}',
            {"pid": "$.detail.payment_id", "amount": "$.detail.amount.minor", "nothing": "$.detail.absent"},
        ),
        ('{"tags": <tags>, "at": "<aws.events.event.ingestion-time>"}', {"tags": "$.detail.tags"}),
    ]
    for template, paths in cases:
        for _ in range(2):  # the second time from the parsed paths kept
            assert parse_template(template, paths, event) == EventTemplateParser.parse(template, paths, event)
    assert json.dumps(parse_template(*cases[1], event)["p"]) == '"p1"'


def test_queue_attributes_count_messages_as_moto_counts_them(aws):
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
    url = sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    fifo = sqs.create_queue(
        QueueName="f.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )
    for index in range(6):
        sqs.send_message(QueueUrl=url, MessageBody=str(index), DelaySeconds=900 if index == 5 else 0)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=600)
    sqs.send_message(QueueUrl=fifo["QueueUrl"], MessageBody="x", MessageGroupId="g")

    def everything() -> list[dict[str, Any]]:
        return [
            sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["All"])["Attributes"]
            for u in (url, dlq, fifo["QueueUrl"])
        ]

    unpatched = everything()
    with linear_moto():
        patched = everything()
    assert patched == unpatched
    counts = [unpatched[0][f"ApproximateNumberOfMessages{kind}"] for kind in ("", "Delayed", "NotVisible")]
    assert counts == ["3", "1", "2"]


def test_a_message_older_than_twelve_hours_is_released_after_a_peek_as_sqs_allows(aws):
    from datetime import UTC, datetime, timedelta

    from botocore.exceptions import ClientError

    from paypipe.embedded.moto_patches import pipeline_clock
    from paypipe.runtime.clock import ManualClock

    # A day before the wall clock, which moto reads outside the pipeline clock: within the
    # queue's retention, and past the visibility timeouts set on the pipeline clock.
    clock = ManualClock(datetime.now(UTC) - timedelta(days=1))
    with pipeline_clock(clock):
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="parked")
        clock.advance(timedelta(hours=13))
        (message,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
        handle = message["ReceiptHandle"]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["parked"]
        with pytest.raises(ClientError, match="beyond the limit"):  # an extension is still moto's to judge
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=60)
    (again,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    with pytest.raises(ClientError, match="beyond the limit"):  # unpatched moto refuses even a release
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0)
