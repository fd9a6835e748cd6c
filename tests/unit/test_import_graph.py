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
