"""Fail when a schema file changed incompatibly since a git revision.

    python scripts/check_schema_compat.py [--base REV]

Compares every events/schemas/<Type>/v<major>.json in the working tree with the same file at
REV (default HEAD). New files (new types or new major versions) are always allowed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from paypipe.events.compat import breaking_changes

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "events" / "schemas"


def file_at(rev: str, path: Path) -> str | None:
    result = subprocess.run(
        ["git", "show", f"{rev}:{path.relative_to(REPO).as_posix()}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout if result.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision holding the published schemas")
    args = parser.parse_args(argv)
    failures = 0
    for path in sorted(SCHEMAS.glob("*/v*.json")):
        before = file_at(args.base, path)
        if before is None:
            continue
        problems = breaking_changes(json.loads(before), json.loads(path.read_text()))
        for problem in problems:
            print(f"{path.relative_to(REPO)}: {problem}")
        failures += len(problems)
    if failures:
        print(f"{failures} breaking change(s): publish a new major version file instead")
        return 1
    print("event schemas compatible with", args.base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
