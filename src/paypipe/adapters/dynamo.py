"""DynamoDB helpers the stores share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from botocore.exceptions import ClientError


def put_once(client: Any, table: str, item: Mapping[str, Any]) -> dict[str, Any] | None:
    """Put ``item`` unless its key is taken: None when written, else the item stored there."""
    try:
        client.put_item(
            TableName=table,
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return cast("dict[str, Any]", error.response.get("Item") or {})
    return None
