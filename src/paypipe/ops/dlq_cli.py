"""``paypipe dlq list|show|replay``: inspect and replay a stack's dead-letter queues.

Arguments are defined in :mod:`paypipe.cli`. Exit status: 0 done; 1 some messages need attention
(errors, malformed, capped or mismatched messages left in the DLQ); 2 invalid input and 3 AWS or
the environment (region, credentials, endpoint, stack), in both cases with nothing moved.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paypipe.errors import EnvironmentProblem
from paypipe.ops.dlq import (
    DlqError,
    StackDlqs,
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
    check_options,
    depth,
    discover,
    peek,
)
from paypipe.runtime.aws import CLIENT_CONFIG

NO_REGION = "no AWS region: pass --region or set AWS_REGION (or AWS_DEFAULT_REGION)"


def region(args: argparse.Namespace) -> str | None:
    """``--region``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION`` (None: the profile decides)."""
    return args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


@dataclass
class Aws:
    """The session and one client per service, all with the project's timeouts and retries."""

    session: Any
    endpoint_url: str | None
    _clients: dict[str, Any] = field(default_factory=dict, init=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Aws:
        session = boto3.session.Session(region_name=region(args), profile_name=args.profile)
        if not session.region_name:
            raise EnvironmentProblem(NO_REGION)
        return cls(session, args.endpoint_url or None)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, config=CLIENT_CONFIG, endpoint_url=self.endpoint_url
            )
        return self._clients[service]


@dataclass(frozen=True)
class Plan:
    """A replay's options and audit target, checked before any AWS call."""

    options: ReplayOptions
    audit_s3: tuple[str, str] | None  # bucket, prefix
    started: datetime


def plan_replay(args: argparse.Namespace, started: datetime) -> Plan:
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
    check_options(options)
    audit_s3 = None
    if args.audit_s3:
        bucket, _, prefix = args.audit_s3.removeprefix("s3://").partition("/")
        if not args.audit_s3.startswith("s3://") or not bucket:
            raise DlqError(f"bad --audit-s3 {args.audit_s3!r}: use s3://bucket/prefix")
        audit_s3 = (bucket, prefix or "dlq-audit")
    return Plan(options, audit_s3, started)


def run(args: argparse.Namespace) -> int:
    plan = plan_replay(args, datetime.now(UTC)) if args.dlq_command == "replay" else None
    aws = Aws.from_args(args)
    stack = discover(
        args.stack,
        sqs=aws.client("sqs"),
        cloudformation=aws.client("cloudformation"),
        events=aws.client("events"),
        source=args.discover,
    )
    console = Console(stderr=False)
    if plan is not None:
        return _replay(aws, stack, args, plan, console)
    if args.dlq_command == "show":
        return _show(aws, stack, args, console)
    return _list(aws, stack, args, console)


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


def _list(aws: Aws, stack: StackDlqs, args: argparse.Namespace, console: Console) -> int:
    sqs = aws.client("sqs")
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
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


def _show(aws: Aws, stack: StackDlqs, args: argparse.Namespace, console: Console) -> int:
    dlq = resolve_queue(stack, args.queue)
    messages = peek(
        aws.client("sqs"), dlq.url, limit=args.limit, visibility_seconds=args.visibility, wait_seconds=1
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


def _replay(aws: Aws, stack: StackDlqs, args: argparse.Namespace, plan: Plan, console: Console) -> int:
    dlq = resolve_queue(stack, args.queue)
    total = depth(aws.client("sqs"), dlq.url).visible
    if args.max_messages:
        total = min(total, args.max_messages)
    verb = "planning" if args.dry_run else "replaying"
    progress = Progress(
        TextColumn(f"{verb} {dlq.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=args.json,
    )
    task = progress.add_task(verb, total=total or None)

    def advance(_record: dict[str, Any]) -> None:
        progress.start()  # on the first message moved: input the replay refuses draws no bar
        progress.advance(task)

    sinks = _audit_sinks(aws, args, plan)
    replayer = Replayer(sqs=aws.client("sqs"), events=aws.client("events"), audit=sinks)
    try:
        report = replayer.replay(stack, dlq, plan.options, progress=advance)
    finally:
        progress.stop()
        for sink in sinks:
            sink.close()
    _print_report(report, args, console)
    attention = report.errors or any(reason != "filtered" for reason in report.skipped)
    return 1 if attention else 0


def _audit_sinks(aws: Aws, args: argparse.Namespace, plan: Plan) -> list[AuditSink]:
    if args.dry_run:
        return []
    sinks: list[AuditSink] = []
    if plan.audit_s3:
        bucket, prefix = plan.audit_s3
        sinks.append(S3Audit(aws.client("s3"), bucket, prefix, plan.started))
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
