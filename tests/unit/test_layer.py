"""The shared Lambda layer holds what the functions import and nothing of the operator tools."""

import ast
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.handler_probe import SERVICES, import_handlers

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def test_the_layer_has_no_operator_tools_embedded_runner_or_cost_data(layer):
    shipped = {path.relative_to(layer).as_posix() for path in layer.rglob("*") if path.is_file()}
    for absent in ("paypipe/embedded/", "paypipe/ops/", "paypipe/data/cost/"):
        assert not [path for path in shipped if path.startswith(absent)], absent
    assert not {"paypipe/cli.py", "paypipe/cost.py"} & shipped
    assert not [path for path in shipped if "__pycache__" in path or path.endswith(".pyc")]
    assert "paypipe/runtime/entry.py" in shipped and "paypipe/data/fraud_rules" in " ".join(shipped)


def test_every_handler_imports_from_the_layer_alone(layer):
    probe = import_handlers(sys.executable, layer, sysconfig.get_paths()["purelib"])
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
