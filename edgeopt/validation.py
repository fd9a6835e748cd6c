"""One line per invalid setting: the one formatter of pydantic's validation errors.

Every place that validates user input with pydantic (recipes, a recipe's ``data:``, tolerances,
budgets, benchmark settings) turns the first error into ``field.path[0].name: what is wrong, got
VALUE`` here, so the same mistake reads the same wherever it is made. Imports no pydantic: it reads
the errors the way ``ValidationError.errors()`` gives them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

# Message prefixes pydantic adds to what a validator raised; the user needs only the reason.
_PREFIXES = ("Value error, ", "Assertion failed, ")
# Error types whose message already says it all: the input is not repeated after them.
_NO_INPUT = ("value_error", "union_tag_invalid", "missing")


def field_path(loc: Sequence[Any], *, root: str = "", names: Mapping[str, str] | None = None,
               tags: Collection[str] = ()) -> str:
    """The field an error's ``loc`` points at, spelt as a user writes it: ``stages[0].target_sparsity``.

    Args:
        loc: pydantic's location: field names and list indexes.
        root: the path of the validated object inside what the user wrote (``recipe.budgets``).
        names: how the user spells a top-level field (``{"threads": "--threads"}``): such a field is
            named alone, without the index inside it (one option takes the whole list).
        tags: a tagged union's tag values: pydantic puts the tag after a list index, where it is not
            a field (``stages, 0, prune, target_sparsity``).
    """
    if loc and names and str(loc[0]) in names:
        return names[str(loc[0])]
    path = root
    after_index = False
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            after_index = True
            continue
        text = str(part)
        if (after_index and text in tags) or text.startswith(("function-", "literal[")):
            after_index = False
            continue  # a validator's or a union's wrapper, not a field of the input
        after_index = False
        path += f".{text}" if path else text
    return path


def problem(error: Mapping[str, Any]) -> str:
    """What is wrong, lower-case first, with the value given unless the message says it already."""
    message = str(error.get("msg", ""))
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    if error.get("type") == "missing":
        return "required field is missing"
    message = message[:1].lower() + message[1:]
    if error.get("type") in _NO_INPUT or "unknown key" in message or "input" not in error:
        return message
    return f"{message}, got {error['input']!r}"


def describe_error(error: Mapping[str, Any], *, root: str = "", names: Mapping[str, str] | None = None,
                   tags: Collection[str] = (), whole: str = "") -> str:
    """One pydantic error as ``field.path: what is wrong, got VALUE`` (``whole``, or the problem
    alone, when the error is about the object as a whole)."""
    where = field_path(error.get("loc", ()), root=root, names=names, tags=tags) or whole
    return f"{where}: {problem(error)}" if where else problem(error)


def describe(exc: ValidationError, *, root: str = "", names: Mapping[str, str] | None = None,
             tags: Collection[str] = (), whole: str = "", count_more: bool = False) -> str:
    """The first error of ``exc`` on one line (see :func:`describe_error`); with ``count_more``,
    followed by `` (and N more)`` when there are others."""
    errors = exc.errors()
    line = describe_error(errors[0], root=root, names=names, tags=tags, whole=whole)
    if count_more and len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    return line
