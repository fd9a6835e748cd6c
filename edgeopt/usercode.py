"""The one guard around the user's own code: data loaders and ``custom_objects`` modules.

Whatever the user's code does on its way out, raising any exception (``SyntaxError`` on import
included) or calling ``sys.exit()``, becomes one :class:`~edgeopt.errors.InputError` naming the module
and function, so it reaches the terminal as one line with exit 2 and never decides edgeopt's exit
code. Only Ctrl-C (``KeyboardInterrupt``) keeps its meaning. What the code prints goes to stderr, so a
``--json`` document on stdout stays parseable.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from edgeopt.errors import InputError


@contextlib.contextmanager
def guarded(what: str) -> Iterator[None]:
    """Run the body as the user's code called ``what`` (``data.loader mypkg:load``)."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:
        raise InputError(f"{what} called sys.exit({exc.code!r}); user code must return or raise, "
                         "not end the process") from None
    except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything at all
        raise InputError(f"{what} raised {type(exc).__name__}: {' '.join(str(exc).split())[:500]}") from None


def call(what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` behind the guard."""
    with guarded(what):
        return function(*args, **kwargs)


def import_module(given: str, where: str) -> ModuleType:
    """Import the user's module: a dotted name on ``sys.path`` or the path of a ``.py`` file.

    Raises:
        InputError: the module cannot be found, or importing it raised or exited (one line).
    """
    if given.endswith(".py"):
        path = Path(given)
        if not path.is_file():
            raise InputError(f"{where}: {given} not found (or not a regular file)")
        spec = importlib.util.spec_from_file_location(f"edgeopt_user_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise InputError(f"{where}: {given} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            with guarded(f"{where}: importing {given}"):
                spec.loader.exec_module(module)
        except InputError:
            sys.modules.pop(spec.name, None)
            raise
        return module
    try:  # the top-level name only: finding it imports nothing
        found = importlib.util.find_spec(given.split(".")[0])
    except (ImportError, ValueError):  # a relative or empty name
        found = None
    if found is None:
        raise InputError(f"{where}: cannot import {given} (no module named {given.split('.')[0]!r}); give a "
                         "module on the Python path (e.g. PYTHONPATH) or the path of a .py file")
    with guarded(f"{where}: importing {given}"):
        return importlib.import_module(given)
