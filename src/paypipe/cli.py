"""Command line: ``paypipe run`` (embedded pipeline)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paypipe", description="Event-driven escrow payment pipeline")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the whole pipeline in this process (moto; no AWS, no Docker)")
    run.add_argument("--payments", type=int, default=50, help="PaymentRequested events to publish")
    run.add_argument("--seed", type=int, default=7)
    run.add_argument("--out", type=Path, default=Path("out"), help="where ACH files are written")

    args = parser.parse_args(argv)
    if args.command == "run":
        from paypipe.embedded.console import run_with_console

        return run_with_console(args.payments, seed=args.seed, out_dir=args.out)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
