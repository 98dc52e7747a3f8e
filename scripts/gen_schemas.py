"""Write events/schemas/ from the event models (run after changing a model)."""

from __future__ import annotations

import sys
from pathlib import Path

from paypipe.events.schemas import generated_schemas

ROOT = Path(__file__).resolve().parents[1] / "events" / "schemas"


def main() -> int:
    for path, text in generated_schemas(ROOT).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
