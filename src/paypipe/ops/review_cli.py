"""``paypipe review``: list, show, approve and decline payments under fraud review.

Against a deployed stack (``--stack NAME``) it reads the Reviews table named by the stack's
outputs and publishes ``ReviewDecided`` under source ``paypipe.operator`` (the caller needs the
stack's ``OperatorPublisherPolicy``); the fraud step decides once and answers with the payment's
outcome or a ``ReviewDecisionRefused``. Against an embedded run (``--embedded OUT``) it reads
``OUT/reviews.jsonl`` and records decisions in ``OUT/review-decisions.jsonl`` for the next
``paypipe run`` with the same seed.

Exit status: 0 done; 1 no review for that id, or it is already decided (nothing done); 2 bad
usage; 3 AWS or the environment.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from paypipe.embedded.reviews import DECISIONS_FILE, REVIEWS_FILE, payment_key, read_lines
from paypipe.errors import EXIT_NOT_CLEAN, EXIT_OK, CommandError, EnvironmentProblem
from paypipe.events import models as ev
from paypipe.runtime.consumer import summarize_validation_error

RECORDED = "decision recorded"  # embedded: open, with a decision for the next run


class ReviewUnavailable(CommandError):
    """No review for the id, or it is no longer open: nothing was done."""

    exit_code = EXIT_NOT_CLEAN


class Reviews(Protocol):
    def all(self) -> list[dict[str, Any]]: ...

    def get(self, payment_id: str) -> dict[str, Any]: ...

    def decide(self, review: dict[str, Any], data: ev.ReviewDecidedData) -> str: ...


def run(args: argparse.Namespace) -> int:
    reviews: Reviews = EmbeddedReviews(args.embedded) if args.embedded else StackReviews.from_args(args)
    if args.review_command == "list":
        rows = [row for row in reviews.all() if row["status"] in {"open", RECORDED}]
        _print(rows, args.json, header="payment_id status score opened_at deadline")
        return EXIT_OK
    review = reviews.get(args.id)
    if args.review_command == "show":
        _print([review], args.json)
        return EXIT_OK
    data = decision_data(args.review_command, args.reviewer, args.note)
    if review["status"] == RECORDED:
        raise ReviewUnavailable(f"a decision on {review['payment_id']} is already recorded for the next run")
    if review["status"] != "open":
        raise ReviewUnavailable(f"the review of {review['payment_id']} is already {review['status']}")
    print(reviews.decide(review, data))
    return EXIT_OK


def decision_data(decision: str, reviewer: str, note: str | None) -> ev.ReviewDecidedData:
    try:
        return ev.ReviewDecidedData(decision=ev.ReviewDecision(decision), reviewer=reviewer, note=note)
    except ValidationError as error:
        raise CommandError(summarize_validation_error(error)) from None


def find(rows: Sequence[dict[str, Any]], wanted: str) -> dict[str, Any]:
    for row in rows:
        if row["payment_id"] == wanted:
            return row
    matches = [row for row in rows if payment_key(row["payment_id"]) == wanted]
    if len(matches) == 1:
        return matches[0]
    raise ReviewUnavailable(f"no fraud review for payment {wanted}")


def _print(rows: Sequence[dict[str, Any]], as_json: bool, header: str | None = None) -> None:
    if as_json:
        print(json.dumps(rows if header else rows[0], indent=2, sort_keys=True))
        return
    if header is None:
        for name, value in rows[0].items():
            print(f"{name}: {', '.join(value) if isinstance(value, list) else value}")
        return
    if not rows:
        print("no open reviews")
        return
    print(header)
    for row in rows:
        print(" ".join(str(row[name]) for name in header.split()))


class EmbeddedReviews:
    """The reviews an embedded run wrote, and the decisions recorded for its next run."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        if not (out_dir / REVIEWS_FILE).exists():
            raise CommandError(f"no {REVIEWS_FILE} in {out_dir}: run `paypipe run --out {out_dir}` first")

    def all(self) -> list[dict[str, Any]]:
        recorded = {payment_key(str(line.get("payment_id"))) for line in self._decisions()}
        rows = list(read_lines(self.out_dir / REVIEWS_FILE))
        for row in rows:
            if row["status"] == "open" and payment_key(row["payment_id"]) in recorded:
                row["status"] = RECORDED
        return rows

    def get(self, payment_id: str) -> dict[str, Any]:
        return find(self.all(), payment_id)

    def _decisions(self) -> list[dict[str, Any]]:
        return list(read_lines(self.out_dir / DECISIONS_FILE))

    def decide(self, review: dict[str, Any], data: ev.ReviewDecidedData) -> str:
        line = {"payment_id": review["payment_id"], **data.model_dump(mode="json")}
        with (self.out_dir / DECISIONS_FILE).open("a") as decisions:
            decisions.write(json.dumps(line, sort_keys=True) + "\n")
        return (
            f"recorded {data.decision.value} of {review['payment_id']} in {self.out_dir / DECISIONS_FILE}; "
            "the next `paypipe run` with the same seed publishes it"
        )


class StackReviews:
    """A deployed stack's Reviews table, and its bus for the operator's decisions."""

    def __init__(self, aws: Any, outputs: dict[str, str]) -> None:
        from paypipe.adapters.reviews_store import ReviewsStore

        self.aws = aws
        self.bus = outputs["EventBusName"]
        self.store = ReviewsStore(outputs["ReviewsTableName"], aws.client("dynamodb"))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StackReviews:
        from paypipe.ops.dlq_cli import Aws

        aws = Aws.from_args(args)
        stack = aws.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
        missing = {"EventBusName", "ReviewsTableName"} - set(outputs)
        if missing:
            raise EnvironmentProblem(f"stack {args.stack} has no {', '.join(sorted(missing))} output")
        return cls(aws, outputs)

    def all(self) -> list[dict[str, Any]]:
        from paypipe.steps.reviews import review_summary

        return [review_summary(review) for review in self.store.open_reviews()]

    def get(self, payment_id: str) -> dict[str, Any]:
        from paypipe.steps.reviews import review_summary

        review = self.store.get(payment_id)
        if review is None:
            raise ReviewUnavailable(f"no fraud review for payment {payment_id}")
        return review_summary(review)

    def decide(self, review: dict[str, Any], data: ev.ReviewDecidedData) -> str:
        from paypipe.runtime.publisher import EventPublisher

        event = ev.ReviewDecided.create(
            payment_id=review["payment_id"], data=data, producer=ev.OPERATOR_PRODUCER
        )
        publisher = EventPublisher(self.aws.client("events"), self.bus, producer=ev.OPERATOR_PRODUCER)
        result = publisher.publish([event])
        if not result.ok:
            (failed,) = result.failed
            raise EnvironmentProblem(f"ReviewDecided not published: {failed.error_code}")
        return (
            f"published ReviewDecided {event.event_id} ({data.decision.value} {review['payment_id']}); "
            "the fraud step answers with the payment's outcome or ReviewDecisionRefused"
        )
