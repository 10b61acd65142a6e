"""The package's layers: imports point downwards only, no cycle, no private name imported from another module, and
the notebooks' imports load no compiled kernel."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sketchlaw.workflow import registry

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "sketchlaw"
# Lowest first: a module may import its own layer and the layers below it, never one above.
LAYERS = ["base", "engine", "theory", "workflow", "analysis", "api", "present", "cli"]
BASE = {"sketchlaw", "sketchlaw.errors", "sketchlaw.atomic", "sketchlaw.seeds"}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    if module in BASE:
        return "base"
    top = module.split(".")[1]
    return top if top in LAYERS else "base"


def _is_module(dotted: str) -> bool:
    path = SRC.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every sketchlaw import in the file, at any depth (lazy imports inside functions too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sketchlaw":
            names = [a.name for a in node.names]
            # "from sketchlaw.analysis import estimators" imports a module, not a name
            modules = [f"{node.module}.{n}" for n in names if _is_module(f"{node.module}.{n}")]
            out += [(m, []) for m in modules]
            out.append((node.module, [n for n in names if f"{node.module}.{n}" not in modules]))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (the package uses absolute imports)")
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] == "sketchlaw"]
    return out


MODULES = {_module(p): p for p in sorted(SRC.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    own = LAYERS.index(_layer(module))
    for target, _ in _imports(MODULES[module]):
        assert LAYERS.index(_layer(target)) <= own, f"{module} ({_layer(module)}) imports {target} ({_layer(target)})"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_is_imported_from_another_module(module):
    for target, names in _imports(MODULES[module]):
        private = [n for n in names if n.startswith("_") and not n.endswith("__")]
        assert not private or target == module, f"{module} imports {private} from {target}"


def test_no_import_cycle():
    graph = {m: {t for t, _ in _imports(p) if t in MODULES and t != m and not m.startswith(t + ".")}
             for m, p in MODULES.items()}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        path.append(m)
        for t in sorted(graph[m]):
            visit(t)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_the_layer_check_fails_on_a_violation(tmp_path):
    """The checks above can fail: an engine module importing the analysis is caught."""
    bad = SRC / "engine" / "_layer_probe.py"
    bad.write_text("from sketchlaw.analysis.estimators import _transformed\n")
    try:
        imports = _imports(bad)
        assert LAYERS.index(_layer(imports[0][0])) > LAYERS.index(_layer("sketchlaw.engine._layer_probe"))
        assert imports[0][1] == ["_transformed"]
    finally:
        bad.unlink()


def _notebook_imports() -> set[str]:
    found = set()
    for nb in registry.figure_notebook_paths(REPO / "notebooks"):  # the explorer app computes: tests/test_explore.py
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":
                tree = ast.parse("".join(cell["source"]))
                for node in ast.walk(tree):
                    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sketchlaw"):
                        found |= {f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                                  for a in node.names}
                    elif isinstance(node, ast.Import):
                        found |= {a.name for a in node.names if a.name.startswith("sketchlaw")}
    return found


def test_notebooks_load_no_compiled_kernel():
    """What the figure notebooks import from sketchlaw (the presentation helpers and the theory's rates) leaves numba
    unloaded: a notebook that only reads tables pays for no compiler."""
    modules = sorted(_notebook_imports())
    assert modules and all(m.split(".")[1] in ("present", "theory") for m in modules), modules
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC.parent), "PATH": ""})
    assert out.stdout.strip() == "False", (modules, out.stdout, out.stderr)
