"""``paypipe status --stack``: the payment's Timeline items and its messages in the stack's DLQs.

The table is the stack's ``TimelineTableName`` output; the DLQs are found as ``paypipe dlq`` finds
them and peeked (received with a short visibility timeout and made visible again, never deleted).
"""

from __future__ import annotations

import argparse

from botocore.exceptions import ClientError

from paypipe.adapters.timeline_store import decode
from paypipe.ops.dlq import DlqStackError
from paypipe.ops.dlq_aws import discover, peek
from paypipe.ops.dlq_cli import Aws
from paypipe.ops.status import Parked, Status, parked_of, status_of

MAX_PEEKED_PER_QUEUE = 1000


def timeline_table(aws: Aws, stack: str) -> str:
    try:
        described = aws.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        raise DlqStackError(f"cannot read stack {stack} from CloudFormation: {error}") from None
    for output in described.get("Outputs", []):
        if output["OutputKey"] == "TimelineTableName":
            return str(output["OutputValue"])
    raise DlqStackError(f"stack {stack} has no TimelineTableName output (deployed before the timeline?)")


def read_stack(args: argparse.Namespace, payment_id: str) -> Status:
    aws = Aws.from_args(args)
    table = timeline_table(aws, args.stack)
    dynamodb = aws.client("dynamodb")
    request = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": payment_id}},
    }
    items = []
    while True:
        page = dynamodb.query(**request)
        items += [decode(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    sqs = aws.client("sqs")
    stack = discover(args.stack, sqs=sqs, cloudformation=aws.client("cloudformation"))
    parked: list[Parked] = []
    for dlq in stack.dlqs:
        for message in peek(sqs, dlq.url, limit=MAX_PEEKED_PER_QUEUE, visibility_seconds=10, wait_seconds=0):
            if message.payment_id == payment_id:
                parked.append(parked_of(dlq.name, message))
    return status_of(payment_id, items, parked)
