"""The structure stays readable: short modules and functions, the layering probekit ← training ← analyses, and no
import-time side effects (a matplotlib backend or seaborn theme set at import breaks notebooks)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("probekit", "training", "analyses")
SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_and_function_sizes(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: over {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.lineno} {node.name} is {length} lines"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_layering_and_no_import_time_side_effects(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = path.relative_to(ROOT).parts[0]
    forbidden = {"probekit": ("training", "analyses"), "training": ("analyses",), "analyses": ()}[package]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            assert node.module.split(".")[0] not in forbidden, f"{path.name} imports {node.module}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] not in forbidden, f"{path.name} imports {alias.name}"
    for node in tree.body:  # module level only: calls made at import
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            call = ast.unparse(node.value.func)
            assert call not in ("matplotlib.use", "sns.set_theme", "seaborn.set_theme", "plt.style.use"), \
                f"{path.name} calls {call} at import"


FIGURE_MODULES = {p.stem for p in (ROOT / "analyses").glob("*.py")
                  if any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "ANALYSIS" for t in n.targets)
                         for n in ast.parse(p.read_text(encoding="utf-8")).body)}


@pytest.mark.parametrize("name", sorted(FIGURE_MODULES))
def test_no_figure_module_imports_another(name):
    """Shared plans and renderers live in analyses' catalogue and helper modules (runs, panels, accuracy_table), not
    in another figure's module."""
    tree = ast.parse((ROOT / "analyses" / f"{name}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            imported = [node.module] if node.module else [a.name for a in node.names]
            assert not set(imported) & (FIGURE_MODULES - {name}), f"{name} imports {imported}"
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("analyses."):
            assert node.module.split(".")[1] not in FIGURE_MODULES - {name}, f"{name} imports {node.module}"
