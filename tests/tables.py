"""DynamoDB tables in the template's layout (pk/sk strings, optional gsi1), for moto tests."""

from typing import Any


def create_table(client: Any, name: str, *, gsi: bool = False, ttl_attribute: str | None = None) -> None:
    keys = ["pk", "sk", "gsi1pk", "gsi1sk"] if gsi else ["pk", "sk"]
    spec: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"} for key in keys],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if gsi:
        spec["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    client.create_table(**spec)
    if ttl_attribute:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute}
        )
