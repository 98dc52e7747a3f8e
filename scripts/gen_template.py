"""Write infra/sam/template.yaml from infra/sam/shared.yaml and src/paypipe/stack/steps.py.

python scripts/gen_template.py           # rewrite the template
python scripts/gen_template.py --check   # exit 1 when the committed template differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paypipe.embedded.template import REPO_ROOT, TEMPLATE_PATH
from paypipe.stack.generate import SHARED_PATH, template_text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    parser.add_argument("--template", type=Path, default=TEMPLATE_PATH, help="the file to write or check")
    args = parser.parse_args()
    text = template_text(SHARED_PATH.read_text())
    path: Path = args.template
    if path.exists() and path.read_text() == text:
        return 0
    if args.check:
        print(f"{path} differs from its sources; run scripts/gen_template.py", file=sys.stderr)
        return 1
    path.write_text(text)
    print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
