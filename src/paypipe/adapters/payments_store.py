"""Payment registry: claims payment ids (duplicate detection) and keeps payout instructions."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from paypipe.events.models import PayeeBankAccount


class PaymentsStore:
    """Items: ``pk = payment#<id>``; ``sk = request`` (first request's fingerprint), ``sk = payee``."""

    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def claim(self, payment_id: str, fingerprint: str, request_event_id: str) -> bool:
        """True when this request owns the payment id: first seen, or the same content seen again."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"payment#{payment_id}"},
                    "sk": {"S": "request"},
                    "fingerprint": {"S": fingerprint},
                    "request_event_id": {"S": request_event_id},
                },
                ConditionExpression="attribute_not_exists(pk) OR fingerprint = :fingerprint",
                ExpressionAttributeValues={":fingerprint": {"S": fingerprint}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def save_payee(self, payment_id: str, payee: PayeeBankAccount) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": f"payment#{payment_id}"},
                "sk": {"S": "payee"},
                "payee": {"S": payee.model_dump_json()},
            },
        )

    def payee(self, payment_id: str) -> PayeeBankAccount | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"payment#{payment_id}"}, "sk": {"S": "payee"}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        return PayeeBankAccount.model_validate(json.loads(item["payee"]["S"]))
