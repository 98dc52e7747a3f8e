"""Index partition keys spread over shards, and reads that merge the shards back in sort order.

An index key every item of a kind shares is one partition taking every one of their writes; the
key ``<key>#<shard>`` (shard: CRC-32 of the item's id modulo ``INDEX_SHARDS``) spreads them over
``INDEX_SHARDS`` partitions, and a read queries each shard and merges them by sort key. Every
function of a stack must use the same count; an embedded run lowers it while it runs
(``index_shards``): moto has no partitions to spread, and each shard read is a round trip.
"""

from __future__ import annotations

import heapq
import itertools
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

INDEX_SHARDS = 32  # partition keys per index: 2 writes per item spread over them


@contextmanager
def index_shards(count: int) -> Iterator[None]:
    """Indexes spread over ``count`` shards inside (this process only), the count restored after."""
    global INDEX_SHARDS  # noqa: PLW0603 - one process-wide setting, as the deployed constant is
    if count < 1:
        raise ValueError("an index has at least one shard")
    saved, INDEX_SHARDS = INDEX_SHARDS, count
    try:
        yield
    finally:
        INDEX_SHARDS = saved


def shard_key(key: str, item_id: str) -> str:
    """The partition key of ``item_id``'s entry in the index ``key``."""
    return f"{key}#{zlib.crc32(item_id.encode()) % INDEX_SHARDS}"


def query_shards(
    client: Any,
    table: str,
    key: str,
    *,
    index: str = "gsi1",
    before: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The index's items over every shard of ``key`` in ``gsi1sk`` order (those sorting before
    ``before`` if given), at most ``limit`` of them."""
    values: dict[str, Any] = {}
    condition = "gsi1pk = :key"
    if before is not None:
        condition += " AND gsi1sk < :before"
        values[":before"] = {"S": before}
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": condition,
        **({"Limit": limit} if limit else {}),
    }
    shards = [
        _query(client, {**request, "ExpressionAttributeValues": {**values, ":key": {"S": f"{key}#{shard}"}}})
        for shard in range(INDEX_SHARDS)
    ]
    merged = heapq.merge(*shards, key=lambda item: str(item["gsi1sk"]["S"]))
    return list(itertools.islice(merged, limit))


def _query(client: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One shard's items in sort order, a page at a time (pages of ``limit`` items when given)."""
    while True:
        response = client.query(**request)
        yield from response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}
