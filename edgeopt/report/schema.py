"""Reading report.json: parse, validate the shape every reader relies on, and load it as a Report.

:func:`parse_report` turns text into the validated JSON object, :func:`load_report` reads a file
into a :class:`~edgeopt.types.Report`, and :func:`as_report` is the entry of every renderer and of
:mod:`edgeopt.regress`: a Report passes through, a plain dict is validated and converted. Bad input
raises :class:`~edgeopt.errors.InputError` with one line naming the file and the field path
(``variants[2].metrics must be an object``), never a traceback. No TensorFlow, no matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeopt.documents import load_json, read_text
from edgeopt.errors import InputError
from edgeopt.types import SCHEMA_VERSION, LatencyKey, Report

# Beyond these, numbers are not figures of a run but damage: a float that overflows to inf
# (1e400), an integer too big to become a float for the comparisons and renderings.
MAX_REPORT_INT = 2**63


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid in report.json (write null for a missing metric)")


def _shown(number_text: str) -> str:
    """A number as written, or its length when it is too long to be worth echoing."""
    return number_text if len(number_text) <= 40 else f"of {len(number_text):,} characters"


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {_shown(text)} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 19:  # decided on the text, before converting thousands of digits
        raise ValueError(f"integer {_shown(text)} is out of range")
    value = int(text)
    if abs(value) >= MAX_REPORT_INT:
        raise ValueError(f"integer {text} is out of range")
    return value


def parse_report(text: str, source: str = "report") -> dict[str, Any]:
    """Parse report.json text and check the minimum structure every reader relies on.

    Args:
        text: the JSON text.
        source: a name for messages (usually the path).

    Returns:
        The validated JSON object (:meth:`Report.from_json <edgeopt.types.Report.from_json>` reads it).

    Raises:
        InputError: not JSON, NaN/Infinity values, not an object, wrong schema version, or
            a field of the wrong type (see :func:`validate_report`).
    """
    try:
        data = load_json(text, source, parse_constant=_reject_constant, parse_float=_finite_float,
                         parse_int=_bounded_int)
    except ValueError as exc:
        raise InputError(
            f"{source}: not valid report JSON ({exc}); regenerate it with edgeopt compress"
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"{source}: a report must be a JSON object, got {type(data).__name__}")
    validate_report(data, source)
    return data


def validate_report(data: Mapping[str, Any], source: str = "report") -> None:
    """Check the schema version and the type of every field a reader uses (null allowed).

    Renderers, :class:`~edgeopt.types.Report` and :func:`edgeopt.regress.compare` rely on this: after
    it passes they never meet a string where an object or number should be, nor a null where a list
    or a mapping holds objects (a null figure is fine: it renders as a blank and fails a check).

    Raises:
        InputError: naming the first bad field path, e.g. ``variants[2].metrics must be an object``.
    """
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(
            f"{source}: schema_version {version!r} is not supported (this edgeopt reads {SCHEMA_VERSION}); "
            "regenerate it with this edgeopt version"
        )
    variants = data.get("variants")
    if not isinstance(variants, list) or not all(isinstance(v, dict) and isinstance(v.get("name"), str)
                                                  for v in variants):
        raise InputError(f"{source}: 'variants' must be a list of objects with a 'name'")
    names = [v["name"] for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{source}: variant names repeat: {', '.join(duplicates)}")
    problem = _shape_problem(data, _REPORT_SHAPE, "") or _latency_key_problem(variants)
    if problem:
        raise InputError(f"{source}: {problem}; regenerate it with edgeopt compress")


def _latency_key_problem(variants: list[dict[str, Any]]) -> str | None:
    """The first latency key that is not ``TARGET`` or ``TARGET#Nt`` (:class:`~edgeopt.types.LatencyKey`)."""
    for i, variant in enumerate(variants):
        for key in variant.get("latency") or {}:
            try:
                LatencyKey.parse(key)
            except ValueError:
                return f"variants[{i}].latency: key {key!r} is not TARGET or TARGET#Nt (e.g. local#4t)"
    return None


def load_report(path: str | Path) -> Report:
    """Read and validate a report.json (or a baseline written by ``edgeopt check``).

    Raises:
        InputError: missing, unreadable or invalid file (see :func:`parse_report`).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the path of its report.json")
    if not path.is_file():
        raise InputError(f"{path}: file not found (give the path to a report.json)")
    return Report.from_json(parse_report(read_text(path), str(path)))


def as_report(report: Report | Mapping[str, Any], source: str = "report") -> Report:
    """``report`` as a Report: a Report as it is, a plain dict (scripts, older callers) validated first.

    Raises:
        InputError: the dict does not validate (see :func:`validate_report`).
    """
    if isinstance(report, Report):
        return report
    validate_report(report, source)
    return Report.from_json(report)


# The types readers rely on. A type tuple: the value must be one of them (None always allowed).
# A dict: an object whose listed keys have those shapes; {"*": shape}: every value has that shape.
# A list [shape]: a list whose items have that shape. Inside a list or a {"*": ...} mapping, an item
# that must be an object or a list may not be null: a null there is damage, not a missing figure.
_NUM = (int, float)
_STR = (str,)
_OBJ = (dict,)
_METRIC = {"value": _NUM, "unit": _STR, "higher_is_better": (bool,), "provenance": _STR}
_LATENCY = {**{f: _NUM for f in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "cv",
                                 "init_ms", "first_invoke_ms", "peak_rss_mb")},
            "runs": _NUM, "warmup": _NUM, "threads": _NUM, "status": _STR, "reason": _STR,
            "provenance": _STR, "runtime": _STR, "delegate": _STR}
_VARIANT = {
    "name": _STR, "format": _STR, "path": _STR, "status": _STR, "reason": _STR, "note": _STR,
    "size_bytes": _NUM, "gzip_bytes": _NUM, "params": _NUM, "sparsity": _NUM,
    "metrics": {"*": _METRIC}, "latency": {"*": _LATENCY},
    "inspect": {"ops": {"*": _NUM}, "int8_op_coverage": _NUM, "float_ops": [(dict, str)],
                "per_tensor": {"*": {"sparsity": _NUM, "unique_values": _NUM, "role": _STR}}},
    "evaluation": {"confusion_matrix": [[_NUM]], "scatter": {"true": [(list, int, float)],
                                                             "pred": [(list, int, float)]}},
}
# The recipe's budgets are read by `edgeopt check`; the rest of the recipe is shown, not computed on.
_BUDGETS = {"max_size_kb": _NUM, "max_gzip_kb": _NUM, "max_accuracy_drop": _NUM, "max_error_increase": _NUM,
            "max_latency_ms": {"*": _NUM}, "variants": [_STR]}
_REPORT_SHAPE = {
    "name": _STR, "task": _STR, "status": _STR, "created_utc": _STR, "recipe": {"budgets": _BUDGETS},
    "environment": _OBJ, "data": _OBJ,
    "training": {"history": {"*": [_NUM]}},
    "stages": [{"kind": _STR, "summary": _STR, "achieved": _OBJ, "history": {"*": [_NUM]}}],
    "variants": [_VARIANT],
    "checks": [{"variant": _STR, "check": _STR, "status": _STR}],
}
_TYPE_NAMES = {int: "a number", float: "a number", str: "a string", dict: "an object", list: "a list",
               bool: "true or false"}


def _item_problem(item: Any, shape: Any, path: str) -> str | None:
    """Like :func:`_shape_problem`, for an item of a list or mapping: a null object or list is refused."""
    if item is None and not isinstance(shape, tuple):
        return f"{path} must be {'a list' if isinstance(shape, list) else 'an object'}, got null"
    return _shape_problem(item, shape, path)


def _shape_problem(value: Any, shape: Any, path: str) -> str | None:
    """The first place ``value`` does not have ``shape``, as ``path must be ..., got ...``; else None."""
    if value is None:
        return None
    if isinstance(shape, tuple):
        ok = isinstance(value, shape) and not (isinstance(value, bool) and bool not in shape)
        if ok:
            return None
        wanted = " or ".join(dict.fromkeys(_TYPE_NAMES.get(t, t.__name__) for t in shape))
        return f"{path or 'report'} must be {wanted}, got {type(value).__name__}"
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{path} must be a list, got {type(value).__name__}"
        for i, item in enumerate(value):
            problem = _item_problem(item, shape[0], f"{path}[{i}]")
            if problem:
                return problem
        return None
    if not isinstance(value, dict):
        return f"{path or 'report'} must be an object, got {type(value).__name__}"
    if "*" in shape:
        for key, item in value.items():
            problem = _item_problem(item, shape["*"], f"{path}.{key}" if path else str(key))
            if problem:
                return problem
        return None
    for key, sub in shape.items():
        problem = _shape_problem(value.get(key), sub, f"{path}.{key}" if path else key)
        if problem:
            return problem
    return None
