"""No import circles among edgeopt's modules (STYLE.md section 10: a type that has to be imported back
up lives in the wrong module; move it down rather than import lazily around it).

The graph is built by grimp (the engine of import-linter) from the source, without importing it, and
counts every import of an edgeopt module: at module level, under ``if TYPE_CHECKING:``, and inside
functions. A function-level import is a circle all the same, only one that waits until the call to
show itself. The one import left out is the package's own ``edgeopt/__init__.py`` loading
:mod:`edgeopt.api` in its ``__getattr__`` (the lazy facade that keeps ``import edgeopt`` cheap): the
package sits on top of everything by design, and no edgeopt module imports the package itself (the
version lives in :mod:`edgeopt.version` for that reason), which the second test checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")  # in the test extras (setup.cfg)

PACKAGE = "edgeopt"
FACADE = (PACKAGE, "edgeopt.api")  # the package's lazy __getattr__, see the module docstring


def import_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    edges = {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    edges[FACADE[0]].discard(FACADE[1])
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (or a module importing itself), each as
    one closed path through it: ``[a, b, c, a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, iterative: no recursion limit to meet
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1 or node in edges.get(node, ()):
                    groups.append(group)

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return [_closed_path(group, edges) for group in groups]


def _closed_path(group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest circle through the group's first module (breadth first, inside the group)."""
    first = min(group)
    previous: dict[str, str] = {}
    frontier = [first]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges.get(node, ()) & group):
                if child == first:
                    path = [node]
                    while path[-1] != first:
                        path.append(previous[path[-1]])
                    return [first, *reversed(path[:-1]), first]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return sorted(group)


def describe(found: list[list[str]]) -> str:
    return (f"{len(found)} import circle(s) among edgeopt's modules (move the type that is imported back up "
            "down to a module below both; do not import it inside a function):\n"
            + "\n".join(" -> ".join(path) for path in found))


def test_no_import_circles():
    edges = import_graph()
    found = circles(edges)
    assert not found, describe(found)


def test_no_module_imports_the_package_itself():
    """``from edgeopt import __version__`` would run back up through the package's facade to the API."""
    edges = import_graph()
    importers = sorted(module for module, imported in edges.items() if PACKAGE in imported)
    assert not importers, f"these import the package edgeopt itself (import its modules instead): {importers}"


def test_the_circle_finder_finds_circles():
    """The check can fail: a planted circle (and a module importing itself) is reported as a path."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    found = circles(edges)
    assert sorted(map(tuple, found)) == [("a", "b", "c", "a"), ("e", "e")]
    assert "a -> b -> c -> a" in describe(found)


# -- function-level imports: only for what is slow to load -------------------------------------------

# Libraries that take a noticeable part of a second (or a native runtime) to load: importing them
# inside the function that needs them keeps `edgeopt --help`, `check` and `import edgeopt` fast.
HEAVY = {"tensorflow", "tf_keras", "tensorflow_model_optimization", "keras", "matplotlib", "ray", "sklearn",
         "scipy", "optuna", "ai_edge_litert", "litert_quantizer", "tflite_runtime", "h5py"}
# The benchmark runner is copied to boards and run on its own: its lazy numpy and runtime imports are
# how it reports a host without them (exit 3) instead of dying on import.
STANDALONE = {"edgeopt.bench.runner"}


def _module_name(path, root) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node) -> list[str]:
    """What an import statement may load: ``from a import b`` is ``a``, or module ``a.b`` when b is one."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    module = "." * node.level + (node.module or "")  # relative imports are not used in edgeopt
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def imports_by_place(root) -> tuple[dict[str, set[str]], list[tuple[str, int, tuple[str, ...]]]]:
    """Per edgeopt module, what it imports at module level (outside functions, TYPE_CHECKING left out);
    and every import statement inside a function as (module, line, what it may load)."""
    top: dict[str, set[str]] = {}
    inner: list[tuple[str, int, tuple[str, ...]]] = []
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root.parent)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top[name] = set()
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        in_functions = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if id(node) in in_functions:
                inner.append((name, node.lineno, tuple(_imported(node))))
            else:
                top[name].update(_imported(node))
        checking = (n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
        for block in checking:
            for node in ast.walk(block):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    top[name].difference_update(_imported(node))
    return top, inner


def heavy_modules(top: dict[str, set[str]]) -> set[str]:
    """edgeopt modules that load a heavy library when imported, directly or through other modules."""
    heavy: set[str] = set()
    changed = True
    while changed:
        changed = False
        for module, imported in top.items():
            if module in heavy:
                continue
            if any(i.split(".")[0] in HEAVY or i in heavy for i in imported):
                heavy.add(module)
                changed = True
    return heavy


def light_imports_in_functions(root) -> list[str]:
    top, inner = imports_by_place(root)
    heavy = heavy_modules(top)
    found = []
    for module, line, loads in inner:
        if module in STANDALONE or any((module, name) == FACADE for name in loads):
            continue
        if any(name.split(".")[0] in HEAVY or name in heavy for name in loads):
            continue
        found.append(f"{module}:{line} imports {loads[0]}")
    return found


def test_function_level_imports_are_only_for_heavy_libraries():
    """STYLE.md section 10: an import inside a function is for a library slow to load (TensorFlow,
    matplotlib, Ray...), or an edgeopt module that loads one; anything else goes at the top."""
    found = light_imports_in_functions(Path(__file__).resolve().parents[2] / PACKAGE)
    assert not found, "imports inside functions of modules that load fast (move them to the top):\n" + \
        "\n".join(found)


def test_the_import_placement_check_can_fail(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "slow.py").write_text("import tensorflow\n")
    (package / "user.py").write_text("import json\n\ndef f():\n    import os\n    import matplotlib\n"
                                      "    from pkg import slow\n    return os\n")
    assert light_imports_in_functions(package) == ["pkg.user:4 imports os"]
