"""Every memwatch module imports on its own, and no two of memwatch's modules import each other.

The graph counts every import in a module: at the top, inside functions (a lazy import
still runs, and a cycle through one breaks as soon as the function is called first) and
under TYPE_CHECKING (mypy follows those). It leaves out the implicit import of a module's
parent package: Python runs a package's ``__init__`` before its submodules, so
``commands/__init__.py`` importing ``commands/run.py`` is no cycle.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

import memwatch

PACKAGE_DIR = Path(memwatch.__file__).parent


def module_names(package_dir: Path) -> dict[str, Path]:
    """{dotted module name: file} for every .py file under ``package_dir``."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, read from each file's syntax tree."""
    modules = module_names(package_dir)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    base = f"{anchor}.{base}" if base else anchor
                # `from . import run` imports the module run; `from .x import name` imports x.
                targets.update(
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                )
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        return list(err.args[1])
    return None


def test_no_import_cycle_among_memwatchs_modules():
    graph = import_graph(PACKAGE_DIR)
    assert cycle_in(graph) is None, " -> ".join(cycle_in(graph) or [])


def test_the_backends_and_the_chooser_import_one_way():
    graph = import_graph(PACKAGE_DIR)
    assert {"memwatch.proc_backend", "memwatch.psutil_backend"} <= graph["memwatch.backend"]
    assert "memwatch.backend" not in graph["memwatch.psutil_backend"]
    assert "memwatch.backend" not in graph["memwatch.proc_backend"]


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .. import a\n")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("from .sub import c\n")
    (pkg / "sub" / "c.py").write_text("")
    graph = import_graph(pkg)
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.sub.c"},
        "pkg.sub": {"pkg.a"},
        "pkg.sub.c": set(),
    }
    assert cycle_in(graph) is None
    (pkg / "sub" / "c.py").write_text("from ..a import f\n")
    assert set(cycle_in(import_graph(pkg)) or []) == {"pkg.a", "pkg.b", "pkg.sub.c"}


# memwatch.__main__ runs the CLI when imported; tests/integration runs `python -m memwatch`.
@pytest.mark.parametrize("module", sorted(set(module_names(PACKAGE_DIR)) - {"memwatch.__main__"}))
def test_each_module_imports_on_its_own_in_a_fresh_interpreter(module):
    # From the directory holding the package under test: that copy, not an installed one.
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PACKAGE_DIR.parent,
    )
    assert proc.returncode == 0, proc.stderr
