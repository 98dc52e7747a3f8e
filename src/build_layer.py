"""The shared Lambda layer: what the functions import, under ``python/``.

``sam build`` runs it through src/Makefile (SharedLayer, ``BuildMethod: makefile``) and
scripts/localstack_deploy.py calls it, so both ship the same files:

    python3 src/build_layer.py TARGET_DIR [--python-version 3.12]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent
REQUIREMENTS = SRC / "requirements.txt"
# No function imports or reads these: the operator tools, the embedded runner and its simulated
# bank, the template's step table, the CLI and its cost data, the schema generator and compatibility
# check (development tools), and the Stripe adapter (its stripe-python is an optional extra that
# src/requirements.txt does not hold).
EXCLUDED = (
    "paypipe/adapters/stripe_processor.py",
    "paypipe/domain/bank_simulator.py",
    "paypipe/embedded",
    "paypipe/ops",
    "paypipe/stack",
    "paypipe/data/cost",
    "paypipe/cli.py",
    "paypipe/cost.py",
    "paypipe/errors.py",
    "paypipe/events/schemas.py",
    "paypipe/events/compat.py",
)


def library_files() -> list[Path]:
    """The layer's paypipe files, relative to src/."""
    files = []
    for path in sorted((SRC / "paypipe").rglob("*")):
        relative = path.relative_to(SRC)
        if path.is_dir() or "__pycache__" in relative.parts or path.suffix == ".pyc":
            continue
        if not any(relative.is_relative_to(excluded) for excluded in EXCLUDED):
            files.append(relative)
    return files


def copy_library(target: Path) -> None:
    for relative in library_files():
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SRC / relative, target / relative)


def install_requirements(target: Path, python_version: str) -> None:
    """src/requirements.txt as Lambda wheels (manylinux x86_64) for ``python_version``."""
    subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-warn-conflicts", "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
         "--implementation", "cp", "--python-version", python_version,
         "--target", str(target), "-r", str(REQUIREMENTS)],
        check=True,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="the layer's python/ directory")
    parser.add_argument("--python-version", default="3.12", help="the Lambda runtime's Python")
    args = parser.parse_args(argv)
    install_requirements(args.target, args.python_version)
    copy_library(args.target)


if __name__ == "__main__":
    main()
