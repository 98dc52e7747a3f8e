"""Write the `sam local invoke` sample events and env file to events/ (run after changing a model).

With ``--stack NAME`` it prints instead an env file filled with the physical ids of that deployed
stack (needs AWS credentials): ``python scripts/gen_sample_events.py --stack paypipe-dev > env.json``.
"""

from __future__ import annotations

import argparse
import sys

from paypipe.embedded.samples import EVENTS_DIR, env_vars, render, sample_files


def stack_physical_ids(stack_name: str) -> dict[str, str]:
    import boto3

    cloudformation = boto3.client("cloudformation")
    ids: dict[str, str] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for resource in page["StackResourceSummaries"]:
            ids[resource["LogicalResourceId"]] = resource.get("PhysicalResourceId", "")
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", help="print an env file for this deployed stack instead")
    args = parser.parse_args()
    if args.stack:
        sys.stdout.write(render(env_vars(stack_physical_ids(args.stack), stack_name=args.stack)))
        return 0
    EVENTS_DIR.mkdir(exist_ok=True)
    for path, text in sample_files().items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(EVENTS_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
