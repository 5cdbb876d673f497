"""The import graph has slo/ at the bottom, delivery/ above it, components/ above both and
__main__.py on top, with no arrow back up."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["slo", "delivery", "components", "__main__"]  # each may import only those before it


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(LAYERS)


def layer_files(layer: str) -> list[Path]:
    return [ROOT / "__main__.py"] if layer == "__main__" else sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", LAYERS)
def test_no_module_imports_a_layer_above_its_own(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - allowed)
        for path in layer_files(layer)
        if imported_packages(path) - allowed
    }
    assert wrong == {}


def test_the_engine_and_the_renderer_do_not_import_pulumi():
    for layer in ("slo", "delivery"):
        for path in layer_files(layer):
            tree = ast.parse(path.read_text())
            nodes = list(ast.walk(tree))
            names = {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module}
            assert not any(n.split(".")[0].startswith("pulumi") for n in names), path
