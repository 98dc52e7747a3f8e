"""Imports every Lambda entry point (services/*/app.py) in a fresh interpreter, as Lambda would:
``library`` first on sys.path (the layer, or an installed site-packages), each handler's CodeUri,
then ``site_packages`` for third-party packages; ``-S`` keeps the editable install of src/ out."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

SERVICES = Path(__file__).resolve().parents[1] / "services"

SCRIPT = """
import importlib.util, json, pathlib, sys
library, services, site_packages = sys.argv[1:4]
sys.path[:] = [library, *(path for path in sys.path if path), site_packages]
for app in sorted(pathlib.Path(services).glob("*/app.py")):
    spec = importlib.util.spec_from_file_location(f"{app.parent.name}_app", app)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(1, str(app.parent))
    spec.loader.exec_module(module)
    sys.path.remove(str(app.parent))
    assert [name for name in vars(module) if name.endswith("handler")], app
from paypipe.domain import fraud
modules = {n: m.__file__ for n, m in sys.modules.items() if n.split(".")[0] == "paypipe"}
print(json.dumps({"modules": modules, "rules": fraud.available_versions()}))
"""


def import_handlers(python: str, library: Path, site_packages: str, env: dict[str, str] | None = None) -> Any:
    """The paypipe modules the handlers imported (name -> file) and the fraud rule sets found."""
    result = subprocess.run(
        [python, "-S", "-c", SCRIPT, str(library), str(SERVICES), site_packages],
        capture_output=True,
        text=True,
        check=False,
        cwd=library,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
