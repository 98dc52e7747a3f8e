"""Package infra/sam/template.yaml and deploy it to LocalStack through CloudFormation.

What ``sam build`` + ``sam package`` + ``sam deploy`` do, offline: the shared layer (what
src/build_layer.py puts in it, src/requirements.txt installed for this interpreter) and one zip
per function CodeUri go to an artifacts bucket; CodeUri/ContentUri are pointed at them; the stack
is created or updated with the SAM transform. Prints the stack outputs as JSON (also written to
.localstack/outputs-<stack>.json).

    python scripts/localstack_deploy.py [--stack NAME] [--param Key=Value ...]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPO_ROOT / "infra" / "sam" / "template.yaml"
STATE_DIR = REPO_ROOT / ".localstack"
BUILD_DIR = STATE_DIR / "build"
ARTIFACTS_BUCKET = "paypipe-deploy-artifacts"
DEFAULT_STACK = "paypipe-localstack"
# Short timeouts so a failed record is redelivered within seconds; schedules far apart so they
# never fire during a test run (the tests invoke the scheduled functions themselves).
DEFAULT_PARAMETERS = {
    "Stage": "dev",
    "FunctionTimeout": "10",
    "QueueVisibilityTimeout": "10",
    "MaxReceiveCount": "3",
    "SweepSchedule": "rate(1 day)",
    "AchCutSchedule": "rate(1 day)",
    "AchPrenote": "off",  # the tests expect a first payout in the first file, as the embedded stack does
}
DEPLOY_DEADLINE_SECONDS = 600
_CODE_URI = re.compile(r"^(?P<indent>\s+)(?P<key>CodeUri|ContentUri): (?P<path>\S+)\s*$", re.MULTILINE)
_FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def endpoint_url() -> str:
    port = os.environ.get("LOCALSTACK_PORT", "4566")
    return os.environ.get("LOCALSTACK_ENDPOINT", f"http://127.0.0.1:{port}")


def aws_client(service: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint_url(),
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - LocalStack's fixed test credentials
    )


def zip_tree(root: Path, prefix: str = "") -> bytes:
    """A reproducible zip of ``root``: same content, same bytes (so unchanged code is no update)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if path.is_dir() or "__pycache__" in relative.parts or path.suffix == ".pyc":
                continue
            info = zipfile.ZipInfo(f"{prefix}{relative.as_posix()}", _FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def layer_builder() -> ModuleType:
    """src/build_layer.py, which ``sam build`` runs for the layer too."""
    spec = importlib.util.spec_from_file_location("build_layer", REPO_ROOT / "src" / "build_layer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_layer() -> Path:
    """The shared layer as src/build_layer.py makes it, for this interpreter (LocalStack runs the
    functions with it); the installed requirements are cached by content and Python version."""
    builder = layer_builder()
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    deps_key = hashlib.sha256(builder.REQUIREMENTS.read_bytes() + python_version.encode()).hexdigest()[:16]
    deps_dir = BUILD_DIR / f"layer-deps-{deps_key}"
    if not deps_dir.exists():
        staging = deps_dir.with_suffix(".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        builder.install_requirements(staging, python_version)
        staging.rename(deps_dir)
    layer_dir = BUILD_DIR / "layer" / "python"
    shutil.rmtree(layer_dir.parent, ignore_errors=True)
    shutil.copytree(deps_dir, layer_dir)
    builder.copy_library(layer_dir)
    return layer_dir.parent


def upload(s3: Any, body: bytes, name: str) -> str:
    key = f"{name}-{hashlib.sha256(body).hexdigest()[:20]}.zip"
    s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=key, Body=body)
    return f"s3://{ARTIFACTS_BUCKET}/{key}"


def package_template(s3: Any) -> str:
    """The template text with every CodeUri/ContentUri replaced by its uploaded zip."""
    text = TEMPLATE.read_text()
    uploaded: dict[tuple[str, str], str] = {}

    def replace(match: re.Match[str]) -> str:
        source = (TEMPLATE.parent / match["path"]).resolve()
        cache_key = (match["key"], str(source))
        if cache_key not in uploaded:
            root = build_layer() if match["key"] == "ContentUri" else source
            uploaded[cache_key] = upload(s3, zip_tree(root), source.name)
        return f"{match['indent']}{match['key']}: {uploaded[cache_key]}"

    return _CODE_URI.sub(replace, text)


def stack_status(cfn: Any, stack: str) -> str | None:
    try:
        return str(cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"])
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def wait_for_stack(cfn: Any, stack: str) -> str:
    deadline = time.monotonic() + DEPLOY_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        status = stack_status(cfn, stack) or "MISSING"
        if not status.endswith("_IN_PROGRESS"):
            return status
        time.sleep(1)
    raise TimeoutError(f"stack {stack} still in progress after {DEPLOY_DEADLINE_SECONDS}s")


def failure_reasons(cfn: Any, stack: str) -> list[str]:
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    return [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
        for e in events
        if e["ResourceStatus"].endswith("FAILED")
    ]


def deploy(stack: str, parameters: dict[str, str]) -> dict[str, str]:
    s3 = aws_client("s3")
    cfn = aws_client("cloudformation")
    s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    template_key = "template.packaged.yaml"
    s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=template_key, Body=package_template(s3).encode())
    arguments = {
        "StackName": stack,
        "TemplateURL": f"{endpoint_url()}/{ARTIFACTS_BUCKET}/{template_key}",
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    }
    status = stack_status(cfn, stack)
    if status in {"ROLLBACK_COMPLETE", "CREATE_FAILED", "DELETE_FAILED"}:
        cfn.delete_stack(StackName=stack)
        wait_for_stack(cfn, stack)
        status = None
    if status is None:
        cfn.create_stack(**arguments)
    else:
        try:
            cfn.update_stack(**arguments)
        except ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
    final = wait_for_stack(cfn, stack)
    if final not in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}:
        reasons = "\n  ".join(failure_reasons(cfn, stack))
        raise RuntimeError(f"stack {stack} ended in {final}:\n  {reasons}")
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default=DEFAULT_STACK)
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    parameters = dict(DEFAULT_PARAMETERS)
    parameters.update(item.split("=", 1) for item in args.param)
    started = time.monotonic()
    outputs = deploy(args.stack, parameters)
    STATE_DIR.mkdir(exist_ok=True)
    (STATE_DIR / f"outputs-{args.stack}.json").write_text(json.dumps(outputs, indent=2, sort_keys=True))
    print(json.dumps(outputs, indent=2, sort_keys=True))
    print(f"deployed {args.stack} in {time.monotonic() - started:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
