"""Reading YAML and JSON documents the user hands in, within limits, so a broken or hostile file is one error.

Every YAML reader in edgeopt (recipe files, ``--set`` values, tolerances files) parses through
:func:`load_yaml` and every report reader through :func:`load_json`; :func:`read_text` reads either
from disk. They raise :class:`~edgeopt.errors.InputError` (or the subclass the caller asks for) with
one line naming the file and the problem, for: text that is not UTF-8, a file over
:data:`MAX_DOCUMENT_BYTES`, nesting deeper than :data:`MAX_DEPTH` (which would otherwise exhaust
Python's recursion in the parser or in later code), and in YAML any alias that refers to its own
enclosing node or aliases that expand to more than :data:`MAX_EXPANDED_NODES` nodes (a "billion
laughs" document is a few hundred bytes on disk but billions of nodes to anything that walks it).
The YAML loader is PyYAML's safe loader with those limits added: it builds only plain data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from edgeopt.errors import InputError

MAX_DOCUMENT_BYTES = 256 * 1024 * 1024  # a report with plot data is a few MB; recipes a few KB
MAX_DEPTH = 64  # reports nest about 8 levels, recipes about 5
MAX_EXPANDED_NODES = 100_000  # a recipe is about 100 nodes; aliases may repeat sections, not explode


class DocumentLimitError(yaml.YAMLError):
    """A YAML document over one of the limits (raised inside the loader, reported by load_yaml)."""


class LimitedSafeLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that counts nesting depth and alias expansion while composing nodes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0  # nodes composed so far, counting each alias as the size of what it names
        self._sizes: dict[int, int] = {}  # id(finished node) -> its expanded size

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor
            node = self.anchors.get(anchor)
            if node is not None:
                if id(node) not in self._sizes:  # the anchored node is still being composed
                    raise DocumentLimitError(f"alias *{anchor} refers to the node that contains it; "
                                             "edgeopt files cannot hold a cycle")
                self._count(self._sizes[id(node)])
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise DocumentLimitError(_too_deep())
        start = self._expanded
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._count(1)
        self._sizes[id(node)] = self._expanded - start
        return node

    def _count(self, nodes: int) -> None:
        self._expanded += nodes
        if self._expanded > MAX_EXPANDED_NODES:
            raise DocumentLimitError(
                f"its aliases expand to more than {MAX_EXPANDED_NODES:,} values (an alias bomb?); "
                "write the values out or use fewer aliases")


def _too_deep() -> str:
    return (f"nested more than {MAX_DEPTH} levels deep, which no edgeopt file needs; "
            "check that it is the right file")


def read_text(path: Path, error: type[InputError] = InputError) -> str:
    """The UTF-8 text of ``path``; ``error`` naming the file when it is too big, binary or unreadable."""
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise error(f"{path}: {size:,} bytes is too big for this kind of file "
                        f"(the limit is {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB)")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a text file (byte {exc.start} is not UTF-8); "
                    "give the YAML or JSON file itself") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder; give the path of a file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None


def load_yaml(text: str, source: str, error: type[InputError] = InputError) -> Any:
    """Parse one YAML document into plain data (dicts, lists, strings, numbers, booleans, None).

    Raises:
        error: not valid YAML (naming the line), or over a limit of this module.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise error(f"{source}: too big ({len(text):,} characters)")
    loader = LimitedSafeLoader(text)
    try:
        return loader.get_single_data()
    except DocumentLimitError as exc:
        raise error(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise error(f"{source}: not valid YAML{where}: {' '.join(str(problem).split())}") from None
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot build: a 5,000-digit int, month 13
        reason = "a number has thousands of digits" if "digits" in str(exc) else " ".join(str(exc).split())
        raise error(f"{source}: not valid YAML: a value cannot be read ({reason})") from None
    except RecursionError:  # a limit above should come first; kept so no input can escape as a traceback
        raise error(f"{source}: {_too_deep()}") from None
    finally:
        loader.dispose()


def load_json(text: str, source: str, **json_options: Any) -> Any:
    """``json.loads`` with the nesting limit; ``ValueError`` for bad JSON as json raises it.

    Raises:
        InputError: nested deeper than :data:`MAX_DEPTH`.
        ValueError: not valid JSON (or a ``parse_constant``/``parse_float`` hook refused a value).
    """
    try:
        data = json.loads(text, **json_options)
    except RecursionError:
        raise InputError(f"{source}: {_too_deep()}") from None
    check_depth(data, source)
    return data


def check_depth(data: Any, source: str, error: type[InputError] = InputError) -> None:
    """Refuse plain data nested deeper than :data:`MAX_DEPTH` (checked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise error(f"{source}: {_too_deep()}")
        stack.extend((child, depth + 1) for child in children)
