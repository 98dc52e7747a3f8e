"""What ``paypipe status --embedded OUT`` reads, written at the end of an embedded run: the
Timeline table's items (``timeline.jsonl``) and a card-free view of every DLQ message
(``dlq.jsonl``: payment, queue, type, reason; never a body)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from paypipe.adapters.timeline_store import decode
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.ops.dlq_aws import peek
from paypipe.ops.status import DLQ_FILE, TIMELINE_FILE, parked_of


def timeline_items(pipeline: EmbeddedPipeline) -> list[dict[str, str | int]]:
    dynamodb = pipeline.client("dynamodb")
    request: dict[str, Any] = {"TableName": pipeline.stack.outputs["TimelineTableName"]}
    items: list[dict[str, str | int]] = []
    while True:
        page = dynamodb.scan(**request)
        items += [decode(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: (str(item["pk"]), str(item["sk"])))
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def write_status_files(pipeline: EmbeddedPipeline, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(item, sort_keys=True) for item in timeline_items(pipeline)]
    (out_dir / TIMELINE_FILE).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    sqs = pipeline.client("sqs")
    parked = [
        parked_of(name.removesuffix("Url"), message)
        for name, url in pipeline.stack.outputs.items()
        if name.endswith("DLQUrl")
        for message in peek(sqs, url, limit=sys.maxsize, wait_seconds=0)
    ]
    (out_dir / DLQ_FILE).write_text(
        "".join(json.dumps(p.__dict__, sort_keys=True) + "\n" for p in parked), encoding="utf-8"
    )
