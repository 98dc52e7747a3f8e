"""Fraud reviews of an embedded run, in its output directory.

The run writes its reviews as they stand once its requests and recorded decisions are through,
before it fast-forwards past their deadlines (``OUT/reviews.jsonl``, one JSON object a line, no
card data);
``paypipe review approve|decline --embedded OUT`` appends decisions to
``OUT/review-decisions.jsonl``, which the next ``paypipe run`` with the same seed and payment
count publishes as operator events (``ReviewDecided``, source ``paypipe.operator``) once the
payments it names are in review. A run's payment ids carry the run's prefix
(``run<HHMMSS>-000012``): decisions match on the part after it, which the seed fixes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paypipe.adapters.reviews_store import ReviewsStore, from_item
from paypipe.events import models as ev
from paypipe.steps.reviews import review_summary

if TYPE_CHECKING:  # the operator CLI reads these files without the embedded run's dependencies
    from paypipe.embedded.runtime import EmbeddedPipeline

REVIEWS_FILE = "reviews.jsonl"
DECISIONS_FILE = "review-decisions.jsonl"


def payment_key(payment_id: str) -> str:
    """The part of a run's payment id the seed fixes (after the run's prefix)."""
    return payment_id.rsplit("-", 1)[-1]


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            if isinstance(item, dict):
                yield item


def write_reviews(pipeline: EmbeddedPipeline, out_dir: Path) -> list[dict[str, Any]]:
    """Every review in the run's Reviews table, written to ``OUT/reviews.jsonl`` (oldest first)."""
    dynamodb = pipeline.client("dynamodb")
    table = pipeline.stack.outputs["ReviewsTableName"]
    rows = [
        review_summary(from_item(item))
        for page in dynamodb.get_paginator("scan").paginate(TableName=table)
        for item in page.get("Items", [])
    ]
    rows.sort(key=lambda row: (row["opened_at"], row["payment_id"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REVIEWS_FILE).write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    return rows


def recorded_decisions(pipeline: EmbeddedPipeline, out_dir: Path) -> list[ev.Event]:
    """The decisions recorded in ``OUT/review-decisions.jsonl`` for payments of this run in review."""
    store = ReviewsStore(pipeline.stack.outputs["ReviewsTableName"], pipeline.client("dynamodb"))
    open_by_key = {payment_key(review.payment_id): review.payment_id for review in store.open_reviews()}
    decisions: list[ev.Event] = []
    for index, line in enumerate(read_lines(out_dir / DECISIONS_FILE)):
        payment_id = open_by_key.get(payment_key(str(line.get("payment_id", ""))))
        if payment_id is None:
            continue
        data = ev.ReviewDecidedData.model_validate(
            {key: line.get(key) for key in ("decision", "reviewer", "note")}
        )
        decisions.append(
            ev.ReviewDecided.create(
                payment_id=payment_id,
                data=data,
                producer=ev.OPERATOR_PRODUCER,
                dedup_key=f"recorded:{index}",
                occurred_at=pipeline.clock.now(),
            )
        )
    return decisions


def review_counts(events: Sequence[ev.Event]) -> dict[str, int]:
    """Reviews opened, approved, declined and expired, from the fraud step's events."""
    counts = {"opened": 0, "approved": 0, "declined": 0, "expired": 0}
    for event in events:
        if isinstance(event, ev.PaymentScored) and event.data.review is not None:
            counts["opened" if event.data.assessment.decision is ev.Decision.REVIEW else "approved"] += 1
        elif isinstance(event, ev.PaymentDeclined) and event.data.reason_code == "REVIEW_DECLINED":
            counts["declined"] += 1
        elif isinstance(event, ev.PaymentDeclined) and event.data.reason_code == "REVIEW_EXPIRED":
            counts["expired"] += 1
    return counts
