"""Command line: ``paypipe [--debug] <command>``.

This module is argparse only; a command's implementation is imported when it runs, so ``paypipe
cost`` needs neither boto3, rich nor moto. Every command ends in :func:`main`: an expected failure
prints one line on stderr and exits with its status (see :mod:`paypipe.errors`); ``--debug``
prints the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from paypipe.errors import EXIT_ENVIRONMENT, EXIT_INTERNAL, EXIT_USAGE, CommandError
from paypipe.ops import DEFAULT_MAX_REPLAYS

EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, naming the help to read."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Each option's help ends with its default, when it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "%(default)" in text or action.default in (None, False, []):
            return text
        return text if action.default is argparse.SUPPRESS else f"{text} (default: %(default)s)"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


# -- the commands' arguments --------------------------------------------------------------------


def run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--payments", type=positive_int, default=50, help="PaymentRequested events to publish"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the sample traffic and the faults")
    parser.add_argument("--out", type=Path, default=Path("out"), help="where ACH files and logs are written")
    parser.add_argument(
        "--faults",
        action="store_true",
        help="inject duplicates, reordering, crashes, PutEvents partial failures, KMS/DynamoDB throttling",
    )
    parser.add_argument(
        "--prenote",
        action="store_true",
        help="prenote each new payee account before paying it (AchPrenote=on; a scenario sets it itself)",
    )
    parser.add_argument(
        "--scenario",
        type=Path,
        help="play this JSON-lines traffic file instead of the sample traffic (see README: scenarios)",
    )
    parser.add_argument(
        "--report", type=Path, help="with --scenario: where the JSON report goes (default: OUT/report.json)"
    )


def cost_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--volume", type=positive_int, required=True, help="payments per month")
    parser.add_argument("--avg-amount", type=positive_float, default=100.0, help="average payment in dollars")


def dlq_arguments(parser: argparse.ArgumentParser) -> None:
    common = Parser(add_help=False, parents=[debug_flag()])
    common.add_argument(
        "--stack", required=True, help="stack name (CloudFormation, or the paypipe:stack tag)"
    )
    common.add_argument(
        "--discover",
        choices=["auto", "outputs", "tags"],
        default="auto",
        help="find DLQs from stack outputs, queue tags, or (auto) outputs when the stack exists",
    )
    common.add_argument(
        "--region", help="AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's)"
    )
    common.add_argument("--profile", help="AWS profile (default: AWS_PROFILE, else the default profile)")
    common.add_argument("--endpoint-url", help="AWS endpoint (default: AWS_ENDPOINT_URL, else AWS's own)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="dlq_command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        made = sub.add_parser(name, parents=[common], help=help_text, formatter_class=HelpFormatter)
        if name != "list":
            made.add_argument("queue", help="DLQ: logical name (FraudDLQ), queue name, URL or kind:step")
        return made

    add("list", "every DLQ of the stack with depth and oldest message")
    show = add("show", "peek at messages (redacted), grouped by reason")
    show.add_argument("--limit", type=positive_int, default=50, help="messages to peek at")
    show.add_argument("--bodies", action="store_true", help="print each redacted event body")
    show.add_argument(
        "--visibility", type=positive_int, default=30, help="seconds peeked messages stay hidden"
    )
    replay_arguments(add("replay", "move messages back to their source"))


def replay_arguments(replay: argparse.ArgumentParser) -> None:
    replay.add_argument("--dry-run", action="store_true", help="show what would move; move nothing")
    replay.add_argument(
        "--detail-type", action="append", default=[], help="only this event type (repeatable)"
    )
    replay.add_argument("--reason", action="append", default=[], help="only this error reason (repeatable)")
    replay.add_argument("--payment-id", action="append", default=[], help="only this payment (repeatable)")
    replay.add_argument("--since", help="parked at or after: ISO 8601 or a duration ago (2h, 30m, 7d)")
    replay.add_argument("--until", help="parked at or before: ISO 8601 or a duration ago")
    replay.add_argument(
        "--max", type=positive_int, dest="max_messages", help="move at most this many messages"
    )
    replay.add_argument("--rate", type=positive_float, help="at most this many messages per second")
    replay.add_argument(
        "--max-replays",
        type=positive_int,
        default=DEFAULT_MAX_REPLAYS,
        help="refuse messages already replayed this many times",
    )
    replay.add_argument("--event-bus", help="bus for rule-target DLQs (default: the stack's EventBusName)")
    replay.add_argument(
        "--server-side",
        action="store_true",
        help="whole consumer DLQ via SQS StartMessageMoveTask (no replay counter, one audit record)",
    )
    replay.add_argument(
        "--audit-file", default="paypipe-dlq-audit.jsonl", help="JSON lines audit file, appended to"
    )
    replay.add_argument("--audit-s3", help="also write the audit to s3://bucket/prefix/<run>.jsonl")


def ach_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ach_command", required=True)
    show = sub.add_parser(
        "show",
        parents=[debug_flag()],
        formatter_class=HelpFormatter,
        help="entries, returns and notifications of change of a NACHA file, decoded",
    )
    show.add_argument("file", type=Path, help="the NACHA file (as a bank or ACH software wrote it)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument("--unmasked", action="store_true", help="show whole account numbers, not the last four")
    show.add_argument(
        "--strict", action="store_true", help="also refuse what the rules forbid but bank software writes"
    )


def status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("payment_id", help="the payment id (the events' payment_id)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed stack: its Timeline table and DLQs")
    where.add_argument(
        "--embedded", type=Path, metavar="OUT_DIR", help="the output directory of paypipe run (--out)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--region", help="with --stack: AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION)"
    )
    parser.add_argument("--profile", help="with --stack: AWS profile (default: AWS_PROFILE)")
    parser.add_argument("--endpoint-url", help="with --stack: AWS endpoint (default: AWS_ENDPOINT_URL)")


def review_arguments(parser: argparse.ArgumentParser) -> None:
    common = Parser(add_help=False, parents=[debug_flag()])
    where = common.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed stack: reads its Reviews table, publishes decisions")
    where.add_argument("--embedded", type=Path, metavar="OUT_DIR", help="an embedded run's output directory")
    common.add_argument("--region", help="AWS region (with --stack)")
    common.add_argument("--profile", help="AWS profile (with --stack)")
    common.add_argument("--endpoint-url", help="AWS endpoint (with --stack)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="review_command", required=True)
    sub.add_parser("list", parents=[common], help="open reviews, oldest first")
    sub.add_parser("show", parents=[common], help="one review").add_argument("id", help="payment id")
    for name in ("approve", "decline"):
        decide = sub.add_parser(name, parents=[common], help=f"{name} a payment under review")
        decide.add_argument("id", help="payment id")
        decide.add_argument("--reviewer", required=True, help="who decides (letters, digits, . _ @ + : -)")
        decide.add_argument("--note", help="why, in a few words (at most 280 characters; no card data)")


@dataclass(frozen=True)
class Command:
    module: str  # defines ``run(args) -> int``, imported when the command runs
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    install: str  # how to get the dependencies it imports


COMMANDS: dict[str, Command] = {
    "run": Command(
        "paypipe.embedded.console",
        "run the whole pipeline in this process (moto; no AWS, no Docker)",
        run_arguments,
        "pip install 'paypipe[dev]'",
    ),
    "dlq": Command(
        "paypipe.ops.dlq_cli",
        "list, inspect and replay the stack's dead-letter queues",
        dlq_arguments,
        "pip install paypipe",
    ),
    "ach": Command(
        "paypipe.ops.ach_show",
        "read a NACHA file: entries, returns and notifications of change",
        ach_arguments,
        "pip install paypipe",
    ),
    "status": Command(
        "paypipe.ops.status",
        "where a payment is: its state, its timeline and any DLQ message of it",
        status_arguments,
        "pip install paypipe",
    ),
    "review": Command(
        "paypipe.ops.review_cli",
        "list, show, approve and decline payments under fraud review",
        review_arguments,
        "pip install paypipe",
    ),
    "cost": Command(
        "paypipe.cost",
        "AWS cost per payment at your monthly volume (measured usage x list prices)",
        cost_arguments,
        "pip install paypipe",
    ),
}


def debug_flag() -> Parser:
    """``--debug``, accepted before or after the command."""
    flag = Parser(add_help=False)
    flag.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print the traceback of a failure"
    )
    return flag


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="paypipe", description="Event-driven escrow payment pipeline")
    parser.add_argument("--debug", action="store_true", help="print the traceback of a failure")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=command.help,
            description=command.help,
            formatter_class=HelpFormatter,
            parents=[debug_flag()],
        )
        command.add_arguments(sub)
    return parser


# -- the error boundary -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    try:
        result: int = importlib.import_module(command.module).run(args)
    except KeyboardInterrupt:
        print(f"paypipe {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        code, line = describe(error, command)
        if args.debug:
            traceback.print_exc()
        print(f"paypipe {args.command}: {line}", file=sys.stderr)
        return code
    return result


def describe(error: Exception, command: Command) -> tuple[int, str]:
    """Exit status and one line for a failure: what went wrong and what to do."""
    if isinstance(error, CommandError):
        return error.exit_code, f"error: {error}"
    if isinstance(error, ModuleNotFoundError) and not (error.name or "").startswith("paypipe"):
        return EXIT_ENVIRONMENT, f"error: module {error.name} is not installed; {command.install}"
    aws = aws_problem(error)
    if aws is not None:
        return EXIT_ENVIRONMENT, f"error: {aws}"
    return EXIT_INTERNAL, f"unexpected {type(error).__name__}: {error} (rerun with --debug for the traceback)"


CREDENTIALS_HINT = "set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
ENDPOINT_HINT = "check --endpoint-url / AWS_ENDPOINT_URL, --region and the network"
# botocore exception class -> what to do (the first match wins).
BOTOCORE_HINTS = (
    ("NoCredentialsError", CREDENTIALS_HINT),
    ("PartialCredentialsError", CREDENTIALS_HINT),
    ("ProfileNotFound", "check --profile / AWS_PROFILE against ~/.aws/config"),
    ("NoRegionError", "pass --region or set AWS_REGION"),
    ("TokenRetrievalError", "refresh the credentials (aws sso login)"),
    ("SSOTokenLoadError", "refresh the credentials (aws sso login)"),
    ("ConnectionError", ENDPOINT_HINT),
    ("HTTPClientError", ENDPOINT_HINT),
    ("BotoCoreError", "check the AWS configuration"),
)
# ClientError code -> what to do.
CLIENT_ERROR_HINTS = {
    "AccessDenied": "the credentials lack this permission",
    "AccessDeniedException": "the credentials lack this permission",
    "ExpiredToken": "refresh the credentials",
    "ExpiredTokenException": "refresh the credentials",
    "RequestExpired": "refresh the credentials (or check the clock)",
    "InvalidClientTokenId": "the credentials are not valid for this account or endpoint",
    "UnrecognizedClientException": "the credentials are not valid for this account or endpoint",
    "SignatureDoesNotMatch": "check the secret access key",
}


def aws_problem(error: Exception) -> str | None:
    """The line for a botocore failure; None for anything else (botocore is not imported here)."""
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is None:
        return None
    if isinstance(error, exceptions.ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "unknown")
        hint = CLIENT_ERROR_HINTS.get(code, "check --stack, --region and the account")
        return f"AWS refused {error.operation_name}: {code}: {details.get('Message', '')}; {hint}"
    for name, hint in BOTOCORE_HINTS:
        kind = getattr(exceptions, name, None)
        if kind is not None and isinstance(error, kind):
            return f"{error}; {hint}"
    return None


if __name__ == "__main__":
    sys.exit(main())
