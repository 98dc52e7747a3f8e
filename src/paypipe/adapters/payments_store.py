"""Payment registry: claims payment ids (duplicate detection) and keeps payout instructions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from paypipe.events.models import CardCharge, PayeeRef


@dataclass(frozen=True)
class Claim:
    """Who owns a payment id: the first request (event id and content) that reached validate."""

    owned: bool  # True: this request is the owner (first seen, or the owner redelivered)
    request_event_id: str
    received_at: datetime  # the pipeline's receipt time of the owning request


@dataclass(frozen=True)
class Instructions:
    """A payment's payout instructions and its request's receipt time (None when not kept)."""

    payee: PayeeRef | None
    received_at: datetime | None
    charge: CardCharge | None = None  # the card charge a refund goes back to


class PaymentsStore:
    """Items: ``pk = payment#<id>``; ``sk = request`` (the owning request), ``sk = payee``."""

    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def claim(self, payment_id: str, fingerprint: str, request_event_id: str, received_at: datetime) -> Claim:
        """Claim the payment id for this request; the same request again (same event id and content)
        keeps its claim and its first receipt time, any other request finds the owner."""
        key = {"pk": {"S": f"payment#{payment_id}"}, "sk": {"S": "request"}}
        try:
            item = self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET fingerprint = :fingerprint, request_event_id = :request, "
                "received_at = if_not_exists(received_at, :received)",
                ConditionExpression="attribute_not_exists(pk) OR "
                "(fingerprint = :fingerprint AND request_event_id = :request)",
                ExpressionAttributeValues={
                    ":fingerprint": {"S": fingerprint},
                    ":request": {"S": request_event_id},
                    ":received": {"S": received_at.astimezone(UTC).isoformat()},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
            owned = True
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)["Item"]
            owned = False
        received = item.get("received_at", {}).get("S")
        return Claim(
            owned=owned,
            request_event_id=item["request_event_id"]["S"],
            received_at=datetime.fromisoformat(received) if received else received_at,
        )

    def save_payee(self, payment_id: str, payee: PayeeRef, received_at: datetime | None = None) -> None:
        """The payout instructions, with the request's receipt time (for the payment's age)."""
        item = {
            "pk": {"S": f"payment#{payment_id}"},
            "sk": {"S": "payee"},
            "payee": {"S": payee.model_dump_json()},
        }
        if received_at is not None:
            item["received_at"] = {"S": received_at.astimezone(UTC).isoformat()}
        self._client.put_item(TableName=self._table, Item=item)

    def keep_payee(
        self,
        payment_id: str,
        payee: PayeeRef,
        received_at: datetime | None,
        *,
        fingerprint: str,
        at: datetime,
        charge: CardCharge | None = None,
    ) -> datetime | None:
        """Save the payout instructions of the event with this content fingerprint and return when
        they were first saved (``at``, the first time); None when an event of other content for
        the payment gave them (nothing written)."""
        values = {
            ":payee": {"S": payee.model_dump_json()},
            ":fingerprint": {"S": fingerprint},
            ":at": {"S": at.astimezone(UTC).isoformat()},
        }
        update = "SET payee = :payee, fingerprint = :fingerprint, kept_at = if_not_exists(kept_at, :at)"
        if charge is not None:
            update += ", charge = :charge"
            values[":charge"] = {"S": charge.model_dump_json()}
        if received_at is not None:
            update += ", received_at = :received"
            values[":received"] = {"S": received_at.astimezone(UTC).isoformat()}
        try:
            item = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"payment#{payment_id}"}, "sk": {"S": "payee"}},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(pk) OR fingerprint = :fingerprint",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return None
        return datetime.fromisoformat(item["kept_at"]["S"])

    def payee(self, payment_id: str) -> PayeeRef | None:
        return self.instructions(payment_id).payee

    def instructions(self, payment_id: str) -> Instructions:
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"payment#{payment_id}"}, "sk": {"S": "payee"}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return Instructions(None, None)
        received = item.get("received_at", {}).get("S")
        charge = item.get("charge", {}).get("S")
        return Instructions(
            PayeeRef.model_validate(json.loads(item["payee"]["S"])),
            datetime.fromisoformat(received) if received else None,
            CardCharge.model_validate_json(charge) if charge else None,
        )
