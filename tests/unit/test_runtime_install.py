"""The project installed with its runtime dependencies only (no dev extra), in a fresh venv: the
operator commands work and every Lambda entry point imports."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.handler_probe import import_handlers

pytestmark = pytest.mark.packaging

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A venv holding ``pip install <project>``; the project is copied first, so the build leaves
    nothing in the checkout."""
    root = tmp_path_factory.mktemp("runtime-install")
    project = root / "project"
    shutil.copytree(
        REPO_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, project / name)
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    pip = [
        str(root / "venv" / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, str(project)], check=True)
    return root / "venv"


def environment(tmp_path):
    """No AWS account of any kind: credentials, config files and instance metadata all absent."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def paypipe(venv, tmp_path, *argv):
    return subprocess.run(
        [str(venv / "bin" / "paypipe"), *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=environment(tmp_path),
    )


def test_no_dev_dependency_is_installed(venv):
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    assert "rich==" in listed and "boto3==" in listed
    for dev in ("moto", "pytest", "aws-sam-translator", "hypothesis", "stripe"):
        assert f"\n{dev}==" not in f"\n{listed}", dev


def test_cost_and_dlq_run_on_runtime_dependencies(venv, tmp_path):
    cost = paypipe(venv, tmp_path, "cost", "--volume", "250000")
    assert cost.returncode == 0, cost.stderr
    assert "250,000 payments/month" in cost.stdout and "per $100 of volume" in cost.stdout
    helped = paypipe(venv, tmp_path, "dlq", "--help")
    assert helped.returncode == 0 and "replay" in helped.stdout
    listed = paypipe(venv, tmp_path, "dlq", "list", "--stack", "s", "--endpoint-url", "http://127.0.0.1:9")
    assert listed.returncode == 3 and "Unable to locate credentials" in listed.stderr
    assert listed.stderr.count("\n") == 1


def test_run_names_the_extra_it_needs(venv, tmp_path):
    result = paypipe(venv, tmp_path, "run", "--payments", "1")
    assert result.returncode == 3
    assert "is not installed" in result.stderr and "paypipe[dev]" in result.stderr
    assert result.stderr.count("\n") == 1


def test_every_lambda_entry_point_imports(venv, tmp_path):
    python = str(venv / "bin" / "python")
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    probe = import_handlers(python, Path(site_packages), site_packages, env=environment(tmp_path))
    assert probe["rules"]
    assert all(path.startswith(site_packages) for path in probe["modules"].values())
    assert "paypipe.steps.ach_batch" in probe["modules"]
