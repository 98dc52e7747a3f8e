"""``paypipe dlq list|show|replay``: inspect and replay a stack's dead-letter queues.

Exit status: 0 done; 1 some messages need attention (errors, malformed, capped or mismatched
messages left in the DLQ); 2 invalid input, nothing moved.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paypipe.ops.dlq import (
    DEFAULT_MAX_REPLAYS,
    DlqError,
    build_filters,
    group_messages,
    oldest_age,
    redacted_view,
    resolve_queue,
)
from paypipe.ops.dlq_aws import (
    AuditSink,
    JsonlAudit,
    Replayer,
    ReplayOptions,
    ReplayReport,
    S3Audit,
    depth,
    discover,
    peek,
)

DEFAULT_AUDIT_FILE = "paypipe-dlq-audit.jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--stack", required=True, help="stack name (CloudFormation, or the paypipe:stack tag)"
    )
    common.add_argument(
        "--discover",
        choices=["auto", "outputs", "tags"],
        default="auto",
        help="find DLQs from stack outputs, queue tags, or outputs when the stack exists (default)",
    )
    common.add_argument("--region", help="AWS region (default: the environment's)")
    common.add_argument("--profile", help="AWS profile")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="dlq_command", required=True)
    sub.add_parser("list", parents=[common], help="every DLQ of the stack with depth and oldest message")

    show = sub.add_parser("show", parents=[common], help="peek at messages (redacted), grouped by reason")
    show.add_argument("queue", help="DLQ: logical name (FraudDLQ), queue name, URL or kind:step")
    show.add_argument("--limit", type=int, default=50, help="messages to peek at (default 50)")
    show.add_argument("--bodies", action="store_true", help="print each redacted event body")
    show.add_argument("--visibility", type=int, default=30, help="seconds peeked messages stay hidden")

    replay = sub.add_parser("replay", parents=[common], help="move messages back to their source")
    replay.add_argument("queue", help="DLQ: logical name (FraudDLQ), queue name, URL or kind:step")
    replay.add_argument("--dry-run", action="store_true", help="show what would move; move nothing")
    replay.add_argument(
        "--detail-type", action="append", default=[], help="only this event type (repeatable)"
    )
    replay.add_argument("--reason", action="append", default=[], help="only this error reason (repeatable)")
    replay.add_argument("--payment-id", action="append", default=[], help="only this payment (repeatable)")
    replay.add_argument("--since", help="parked at or after: ISO 8601 or a duration ago (2h, 30m, 7d)")
    replay.add_argument("--until", help="parked at or before: ISO 8601 or a duration ago")
    replay.add_argument("--max", type=int, dest="max_messages", help="move at most this many messages")
    replay.add_argument("--rate", type=float, help="at most this many messages per second")
    replay.add_argument(
        "--max-replays",
        type=int,
        default=DEFAULT_MAX_REPLAYS,
        help=f"refuse messages already replayed this many times (default {DEFAULT_MAX_REPLAYS})",
    )
    replay.add_argument("--event-bus", help="bus for rule-target DLQs (default: the stack's EventBusName)")
    replay.add_argument(
        "--server-side",
        action="store_true",
        help="whole consumer DLQ via SQS StartMessageMoveTask (no replay counter, one audit record)",
    )
    replay.add_argument("--audit-file", default=DEFAULT_AUDIT_FILE, help="JSON lines audit file (appended)")
    replay.add_argument("--audit-s3", help="also write the audit to s3://bucket/prefix/<run>.jsonl")


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=False)
    try:
        session = boto3.session.Session(region_name=args.region, profile_name=args.profile)
        stack = discover(
            args.stack,
            sqs=session.client("sqs"),
            cloudformation=session.client("cloudformation"),
            events=session.client("events"),
            source=args.discover,
        )
        if args.dlq_command == "list":
            return _list(session, stack, args, console)
        if args.dlq_command == "show":
            return _show(session, stack, args, console)
        return _replay(session, stack, args, console)
    except DlqError as error:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}\nNothing was moved.")
        return 2


def _age(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60}s"
    return f"{seconds}s"


def _list(session: Any, stack: Any, args: argparse.Namespace, console: Console) -> int:
    sqs = session.client("sqs")
    now = datetime.now(UTC)
    rows = []
    for dlq in stack.dlqs:
        counts = depth(sqs, dlq.url)
        sample = peek(sqs, dlq.url, limit=100, visibility_seconds=10) if counts.visible else []
        age = oldest_age(sample, now)
        rows.append(
            {
                "name": dlq.name,
                "kind": dlq.kind,
                "step": dlq.step,
                "url": dlq.url,
                "visible": counts.visible,
                "in_flight": counts.in_flight,
                "delayed": counts.delayed,
                "oldest_age_seconds": int(age.total_seconds()) if age else None,
                "oldest_sampled": counts.visible > len(sample),
            }
        )
    if args.json:
        print(json.dumps({"stack": stack.stack, "source": stack.source, "dlqs": rows}, indent=2))
        return 0
    table = Table(title=f"DLQs of {stack.stack} (from {stack.source})")
    for column in ("DLQ", "kind", "step", "visible", "in flight", "oldest"):
        table.add_column(column, justify="right" if column in {"visible", "in flight", "oldest"} else "left")
    for row in rows:
        age = row["oldest_age_seconds"]
        oldest = _age(timedelta(seconds=age) if age is not None else None)
        table.add_row(
            row["name"],
            row["kind"],
            row["step"],
            str(row["visible"]),
            str(row["in_flight"]),
            ("~" if row["oldest_sampled"] else "") + oldest,
        )
    console.print(table)
    return 0


def _show(session: Any, stack: Any, args: argparse.Namespace, console: Console) -> int:
    dlq = resolve_queue(stack, args.queue)
    if args.limit < 1 or args.visibility < 1:
        raise DlqError("--limit and --visibility must be at least 1")
    messages = peek(
        session.client("sqs"), dlq.url, limit=args.limit, visibility_seconds=args.visibility, wait_seconds=1
    )
    groups = group_messages(messages)
    if args.json:
        out = [
            {
                "reason": group.reason,
                "detail_type": group.detail_type,
                "count": len(group.messages),
                "messages": [redacted_view(message) for message in group.messages],
            }
            for group in groups
        ]
        print(json.dumps({"queue": dlq.name, "peeked": len(messages), "groups": out}, indent=2))
        return 0
    console.print(f"[bold]{dlq.name}[/bold] ({dlq.address}): {len(messages)} message(s) peeked")
    for group in groups:
        console.print(
            f"\n[bold]{escape(group.reason)}[/bold] / {escape(group.detail_type)}: {len(group.messages)}"
        )
        for message in group.messages:
            view = redacted_view(message)
            line = (
                f"  {view['message_id']}  payment={view['payment_id']}  parked={view['parked_at']}"
                f"  replays={view['replay_count']}  {view['problem'] or view['error_message']}"
            )
            console.print(escape(line))
            if args.bodies:
                console.print(escape(json.dumps(view["body"], indent=2, ensure_ascii=False)))
    return 0


def _replay(session: Any, stack: Any, args: argparse.Namespace, console: Console) -> int:
    dlq = resolve_queue(stack, args.queue)
    started = datetime.now(UTC)
    filters = build_filters(
        detail_types=args.detail_type,
        reasons=args.reason,
        payment_ids=args.payment_id,
        since=args.since,
        until=args.until,
        now=started,
    )
    options = ReplayOptions(
        filters=filters,
        max_messages=args.max_messages,
        rate=args.rate,
        max_replays=args.max_replays,
        dry_run=args.dry_run,
        event_bus=args.event_bus,
        server_side=args.server_side,
    )
    sinks = _audit_sinks(session, args, started)
    replayer = Replayer(sqs=session.client("sqs"), events=session.client("events"), audit=sinks)
    total = depth(session.client("sqs"), dlq.url).visible
    if args.max_messages:
        total = min(total, args.max_messages)
    verb = "planning" if args.dry_run else "replaying"
    try:
        with Progress(
            TextColumn(f"{verb} {dlq.name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=args.json,
        ) as progress:
            task = progress.add_task(verb, total=total or None)
            report = replayer.replay(stack, dlq, options, progress=lambda _record: progress.advance(task))
    finally:
        for sink in sinks:
            sink.close()
    _print_report(report, args, console)
    attention = report.errors or any(reason != "filtered" for reason in report.skipped)
    return 1 if attention else 0


def _audit_sinks(session: Any, args: argparse.Namespace, started: datetime) -> list[AuditSink]:
    if args.dry_run:
        return []
    sinks: list[AuditSink] = []
    if args.audit_s3:
        bucket, _, prefix = args.audit_s3.removeprefix("s3://").partition("/")
        if not args.audit_s3.startswith("s3://") or not bucket:
            raise DlqError(f"bad --audit-s3 {args.audit_s3!r}: use s3://bucket/prefix")
        sinks.append(S3Audit(session.client("s3"), bucket, prefix or "dlq-audit", started))
    if args.audit_file:
        sinks.append(JsonlAudit(Path(args.audit_file)))
    return sinks


def _print_report(report: ReplayReport, args: argparse.Namespace, console: Console) -> None:
    summary = {
        "queue": report.dlq.name,
        "destination": report.destination,
        "mode": report.mode,
        "replayed" if report.mode != "dry-run" else "would_replay": len(report.replayed),
        "skipped": dict(report.skipped),
        "problems": report.problems,
        "errors": report.errors,
        "notes": report.notes,
    }
    if args.json:
        if report.mode == "dry-run":
            summary["plan"] = report.replayed
        print(json.dumps(summary, indent=2))
        return
    moved = "would replay" if report.mode == "dry-run" else "replayed"
    console.print(
        f"{report.dlq.name} -> {escape(report.destination)} ({report.mode}): "
        f"{len(report.replayed)} {moved}, skipped {dict(report.skipped) or 0}"
    )
    if report.mode == "dry-run":
        for record in report.replayed:
            console.print(
                escape(f"  {record['message_id']}  {record['detail_type']}  payment={record['payment_id']}")
            )
    for line in report.notes:
        console.print(f"[yellow]note:[/yellow] {escape(line)}")
    for line in report.problems:
        console.print(f"[yellow]left in DLQ:[/yellow] {escape(line)}")
    for line in report.errors:
        console.print(f"[red]error:[/red] {escape(line)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="replay_dlq", description="Inspect and replay paypipe DLQs")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
