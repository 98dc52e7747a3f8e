"""The shared Lambda layer holds what the functions import and nothing of the operator tools."""

import ast
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = REPO_ROOT / "services"


def builder():
    """src/build_layer.py, loaded the way scripts/localstack_deploy.py loads it."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import localstack_deploy
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    return localstack_deploy.layer_builder()


@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    target = tmp_path_factory.mktemp("layer") / "python"
    builder().copy_library(target)
    return target


# Each handler imported from the layer and its own CodeUri only, third-party packages from this
# interpreter's site-packages (``-S``: not the editable install of src/); prints the paypipe
# modules imported and the fraud rule sets found.
PROBE = """
import importlib.util, json, sys
layer, services, site_packages = sys.argv[1:4]
sys.path[:] = [layer, *(path for path in sys.path if path)]
sys.path.append(site_packages)
for app in sorted(__import__("pathlib").Path(services).glob("*/app.py")):
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


def test_the_layer_has_no_operator_tools_embedded_runner_or_cost_data(layer):
    shipped = {path.relative_to(layer).as_posix() for path in layer.rglob("*") if path.is_file()}
    for absent in ("paypipe/embedded/", "paypipe/ops/", "paypipe/data/cost/"):
        assert not [path for path in shipped if path.startswith(absent)], absent
    assert not {"paypipe/cli.py", "paypipe/cost.py"} & shipped
    assert not [path for path in shipped if "__pycache__" in path or path.endswith(".pyc")]
    assert "paypipe/runtime/entry.py" in shipped and "paypipe/data/fraud_rules" in " ".join(shipped)


def test_every_handler_imports_from_the_layer_alone(layer):
    site_packages = sysconfig.get_paths()["purelib"]
    result = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, str(layer), str(SERVICES), site_packages],
        capture_output=True,
        text=True,
        check=False,
        cwd=layer,
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert probe["rules"], "no fraud rule set in the layer"
    imported = probe["modules"]
    assert "paypipe.steps.validate" in imported and "paypipe.runtime.entry" in imported
    outside = {name: path for name, path in imported.items() if not path.startswith(str(layer))}
    assert not outside, outside
    assert set(imported) <= layer_modules(layer)


def layer_modules(layer):
    return {
        ".".join(path.relative_to(layer).with_suffix("").parts).removesuffix(".__init__")
        for path in layer.rglob("*.py")
    }


def imports_of(source):
    """The paypipe modules and packages ``source`` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    parents = {".".join(name.split(".")[:end]) for name in names for end in range(1, name.count(".") + 1)}
    return {name for name in names | parents if name.split(".")[0] == "paypipe"}


def test_the_layer_ships_exactly_the_modules_the_functions_import(layer):
    shipped = layer_modules(layer)
    needed, missing, pending = set(), set(), [*SERVICES.glob("*/app.py")]
    while pending:
        imported = imports_of(pending.pop())
        missing |= {name for name in imported - shipped if name.rpartition(".")[0] not in shipped}
        for name in imported & shipped - needed:
            needed.add(name)
            module = layer.joinpath(*name.split("."))
            pending.append(module / "__init__.py" if module.is_dir() else module.with_suffix(".py"))
    assert "paypipe.adapters.ledger_store" in needed  # imported inside a build function
    assert not missing, f"imported, not shipped: {missing}"
    assert shipped == needed, f"shipped, not imported: {shipped - needed}"
