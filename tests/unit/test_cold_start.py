"""Cold-start guards on every Lambda entry point, each imported in a fresh interpreter as Lambda does.

Powertools batch imports its pydantic event-source models (``aws_lambda_powertools.utilities.
parser``, about a hundred models the pipeline never uses) when pydantic is already imported at the
moment batch is first imported; ``paypipe.runtime.startup`` imports batch first. Figures are in
``bench/coldstart.py``, never here.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APPS = sorted((REPO / "services").glob("*/app.py"))
PARSER = "aws_lambda_powertools.utilities.parser"

PROBE = """
import gc, importlib.util, json, sys
app = sys.argv[1]
sys.path.insert(0, str(__import__("pathlib").Path(app).parent))
spec = importlib.util.spec_from_file_location("app", app)
spec.loader.exec_module(importlib.util.module_from_spec(spec))
from paypipe.events import models
state = {
    "parser": any(name.startswith("PARSER") for name in sys.modules),
    "collecting": gc.isenabled(),
    "built": sorted(name for name, model in models.EVENT_TYPES.items() if model.__pydantic_complete__),
}
from paypipe.runtime import startup
startup.finish()
state["collecting_after"], state["frozen"] = gc.isenabled(), gc.get_freeze_count()
print(json.dumps(state))
""".replace("PARSER", PARSER)


def run(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_hazard_is_real_pydantic_first_makes_powertools_batch_import_its_parser_models():
    pydantic_first = "import pydantic, sys\nimport aws_lambda_powertools.utilities.batch\n"
    batch_first = "import sys\nimport aws_lambda_powertools.utilities.batch\nimport pydantic\n"
    check = f"print(any(name.startswith({PARSER!r}) for name in sys.modules))"
    assert run(pydantic_first + check).strip() == "True"
    assert run(batch_first + check).strip() == "False"


@pytest.mark.parametrize("app", APPS, ids=lambda path: path.parent.name)
def test_an_entry_point_never_imports_the_parser_models_and_builds_no_event_model_at_import(app):
    state = json.loads(run(PROBE, str(app)).splitlines()[-1])
    assert not state["parser"], f"{app}: something imported pydantic before paypipe.runtime.startup"
    assert state["built"] == []  # each model builds its validator on first use
    assert not state["collecting"]  # paused through start-up...
    assert state["collecting_after"] and state["frozen"] > 0  # ...then frozen and resumed
