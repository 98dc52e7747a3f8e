"""Command line: ``paypipe <command>``. Each command lives in its own module, imported on use."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help). The module defines ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("paypipe.embedded.console", "run the whole pipeline in this process (moto; no AWS, no Docker)"),
    "dlq": ("paypipe.ops.dlq_cli", "list, inspect and replay the stack's dead-letter queues"),
    "cost": ("paypipe.cost", "AWS cost per payment at your monthly volume (measured usage x list prices)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paypipe", description="Event-driven escrow payment pipeline")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(module=module_name)
        _module(module_name).add_arguments(sub)
    args = parser.parse_args(argv)
    result: int = _module(args.module).run(args)
    return result


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(name)


if __name__ == "__main__":
    sys.exit(main())
