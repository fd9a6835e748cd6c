"""The canonical report.json and its renderings: terminal table, Markdown, self-contained HTML.

``report.json`` (schema in ``docs/report-schema.md``) is the single source of truth of a run; every
function here is a pure function of that dict. :func:`load_report` reads and validates one from disk
(bad input raises :class:`~edgeopt.errors.InputError`, never a traceback), :func:`write_report`
writes report.json plus the requested renderings into a folder. Nothing here imports TensorFlow;
matplotlib is imported only when HTML is rendered. A variant or target that failed renders as a row
with its status and reason; missing fields render as blanks, never as a crash.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from edgeopt.documents import load_json, read_text
from edgeopt.errors import InputError
from edgeopt.outputs import write_text_atomic

SCHEMA_VERSION = 1
REFERENCE_VARIANT = "trained_float32"
KERAS_VARIANT = "keras_float"
STATUS_OK = "ok"
FORMATS = ("json", "md", "html", "table")
FILE_NAMES = {"json": "report.json", "md": "report.md", "html": "report.html", "table": "report.txt"}
KB = 1024  # sizes are shown in KiB-based units (KB = 1024 bytes), the same unit as budgets.max_size_kb


# ----------------------------------------------------------------------------------------------------
# Loading


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid in report.json (write null for a missing metric)")


# Beyond these, numbers are not figures of a run but damage: a float that overflows to inf
# (1e400), an integer too big to become a float for the comparisons and renderings.
MAX_REPORT_INT = 2**63


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
        The report as a dict.

    Raises:
        InputError: not JSON, NaN/Infinity values, not an object, wrong schema version, or
            ``variants`` missing or malformed.
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


def validate_report(data: dict[str, Any], source: str = "report") -> None:
    """Check the schema version and the type of every field a reader uses (null allowed).

    Renderers and :func:`edgeopt.regress.compare` rely on this: after it passes they never meet a
    string where an object or number should be.

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
    problem = _shape_problem(data, _REPORT_SHAPE, "")
    if problem:
        raise InputError(f"{source}: {problem}; regenerate it with edgeopt compress")


# The types readers rely on. A type tuple: the value must be one of them (None always allowed).
# A dict: an object whose listed keys have those shapes; {"*": shape}: every value has that shape.
# A list [shape]: a list whose items have that shape.
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
                "per_tensor": {"*": {"sparsity": _NUM, "unique_values": _NUM}}},
    "evaluation": {"confusion_matrix": [[_NUM]], "scatter": {"true": [(list, int, float)],
                                                             "pred": [(list, int, float)]}},
}
# The recipe's budgets are read by `edgeopt check`; the rest of the recipe is shown, not computed on.
_BUDGETS = {"max_size_kb": _NUM, "max_accuracy_drop": _NUM, "max_latency_ms": {"*": _NUM},
            "variants": [_STR]}
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
            problem = _shape_problem(item, shape[0], f"{path}[{i}]")
            if problem:
                return problem
        return None
    if not isinstance(value, dict):
        return f"{path or 'report'} must be an object, got {type(value).__name__}"
    if "*" in shape:
        for key, item in value.items():
            problem = _shape_problem(item, shape["*"], f"{path}.{key}" if path else str(key))
            if problem:
                return problem
        return None
    for key, sub in shape.items():
        problem = _shape_problem(value.get(key), sub, f"{path}.{key}" if path else key)
        if problem:
            return problem
    return None


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a report.json (or a baseline written by ``edgeopt check``).

    Raises:
        InputError: missing, unreadable or invalid file (see :func:`parse_report`).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the path of its report.json")
    if not path.is_file():
        raise InputError(f"{path}: file not found (give the path to a report.json)")
    return parse_report(read_text(path), str(path))


# ----------------------------------------------------------------------------------------------------
# Field access and formatting shared by every rendering


def variants(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's variants (possibly empty)."""
    return [v for v in report.get("variants") or [] if isinstance(v, dict)]


def find_variant(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The variant called ``name``, or None."""
    return next((v for v in variants(report) if v.get("name") == name), None)


def primary_metric_name(report: dict[str, Any]) -> str:
    """``accuracy`` for classification, ``mae`` for regression (falls back to what variants hold)."""
    task = report.get("task")
    if task == "classification":
        return "accuracy"
    if task == "regression":
        return "mae"
    for v in variants(report):
        for name in ("accuracy", "mae"):
            if name in (v.get("metrics") or {}):
                return name
    return "accuracy"


def metric(variant: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The metric entry ``name`` of a variant, or None."""
    entry = (variant.get("metrics") or {}).get(name)
    return entry if isinstance(entry, dict) else None


def metric_value(variant: dict[str, Any], name: str) -> float | None:
    """A metric's finite value, or None."""
    entry = metric(variant, name)
    return finite(entry.get("value")) if entry else None


def finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite number, else None (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def targets(report: dict[str, Any]) -> list[str]:
    """Every latency target in the report, in first-seen order."""
    seen: list[str] = []
    for v in variants(report):
        for target in v.get("latency") or {}:
            if target not in seen:
                seen.append(target)
    return seen


def latency(variant: dict[str, Any], target: str) -> dict[str, Any] | None:
    """The latency entry of ``variant`` on ``target``, or None."""
    entry = (variant.get("latency") or {}).get(target)
    return entry if isinstance(entry, dict) else None


def latency_ok(entry: dict[str, Any] | None, field: str = "p50_ms") -> float | None:
    """A latency field's value when the measurement succeeded, else None."""
    if not entry or entry.get("status", STATUS_OK) != STATUS_OK:
        return None
    return finite(entry.get(field))


def fmt_bytes(n: Any) -> str:
    """Human size: ``812 B``, ``12.4 KB``, ``3.10 MB`` (KB = 1024 bytes)."""
    value = finite(n)
    if value is None:
        return "-"
    if value < KB:
        return f"{int(value)} B"
    if value < KB * KB:
        return f"{value / KB:.1f} KB"
    return f"{value / KB / KB:.2f} MB"


def fmt_ms(value: Any) -> str:
    """Milliseconds with 3 significant digits: ``0.0412``, ``1.23``, ``45.6``."""
    v = finite(value)
    if v is None:
        return "-"
    if v == 0:
        return "0"
    return f"{v:.3g}" if v < 1000 else f"{v:,.0f}"


def fmt_metric(name: str, entry: dict[str, Any] | None) -> str:
    """A metric for a table: accuracy as a percentage, others with their unit."""
    if not entry:
        return "-"
    value = finite(entry.get("value"))
    if value is None:
        return "-"
    if name == "accuracy" or entry.get("unit") == "fraction":
        return f"{100 * value:.2f}%"
    unit = entry.get("unit") or ""
    unit = {"degrees": "deg", "degree": "deg"}.get(unit, unit)
    return f"{value:.3g} {unit}".strip()


def fmt_ratio(value: float | None) -> str:
    """A ratio like ``4.1x``."""
    return "-" if value is None else f"{value:.1f}x" if value < 100 else f"{value:,.0f}x"


def fmt_fraction(value: Any) -> str:
    """A fraction as a percentage with one decimal."""
    v = finite(value)
    return "-" if v is None else f"{100 * v:.1f}%"


def smaller_ratio(report: dict[str, Any], variant: dict[str, Any]) -> float | None:
    """How many times smaller (gzip bytes) ``variant`` is than the trained float32 .tflite."""
    ref = find_variant(report, REFERENCE_VARIANT)
    ref_gz = finite(ref.get("gzip_bytes")) if ref else None
    gz = finite(variant.get("gzip_bytes"))
    if not ref_gz or not gz:
        return None
    return ref_gz / gz


def speedup(report: dict[str, Any], variant: dict[str, Any], target: str) -> float | None:
    """Reference p50 / variant p50 on ``target`` (>1 means faster than trained float32)."""
    ref = find_variant(report, REFERENCE_VARIANT)
    ref_p50 = latency_ok(latency(ref, target)) if ref else None
    p50 = latency_ok(latency(variant, target))
    if not ref_p50 or not p50:
        return None
    return ref_p50 / p50


def status_text(item: dict[str, Any]) -> str:
    """``ok``, ``ok (<note>)`` or ``failed: <reason>``."""
    status = item.get("status") or "unknown"
    if status == STATUS_OK:
        return f"{STATUS_OK} ({item['note']})" if item.get("note") else STATUS_OK
    reason = item.get("reason")
    return f"{status}: {reason}" if reason else str(status)


def _latency_cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    if entry.get("status", STATUS_OK) != STATUS_OK:
        return "failed"
    mark = {"estimated": "~", "emulated": "(emu) "}.get(str(entry.get("provenance")), "")
    return f"{mark}{fmt_ms(entry.get('p50_ms'))}/{fmt_ms(entry.get('p90_ms'))}"


def failed_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Checks whose status is not ok."""
    return [c for c in report.get("checks") or [] if isinstance(c, dict) and c.get("status") != STATUS_OK]


def provenance_lines(report: dict[str, Any]) -> list[str]:
    """One line per metric source and per target saying where and how the figures were obtained."""
    lines: list[str] = []
    name = primary_metric_name(report)
    seen: set[str] = set()
    for v in variants(report):
        entry = metric(v, name)
        if v.get("name") == KERAS_VARIANT:
            continue
        if entry and entry.get("provenance") and entry["provenance"] not in seen:
            seen.add(entry["provenance"])
            lines.append(f"{name}: {entry['provenance']}")
    for target in targets(report):
        entry = next((latency(v, target) for v in variants(report)
                      if latency_ok(latency(v, target)) is not None), None)
        if entry is None:
            lines.append(f"{target}: no successful measurement")
            continue
        parts = [str(entry.get("provenance") or "unknown provenance")]
        for key, label in (("runtime", ""), ("delegate", "delegate "), ("cpu", "")):
            if entry.get(key):
                parts.append(f"{label}{entry[key]}")
        if entry.get("threads") is not None:
            parts.append(f"{entry['threads']} thread{'s' if entry['threads'] != 1 else ''}")
        if entry.get("runs") is not None:
            parts.append(f"{entry['runs']} runs after {entry.get('warmup', '?')} warm-up")
        lines.append(f"{target}: " + ", ".join(parts))
    return lines


# ----------------------------------------------------------------------------------------------------
# Terminal table


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the variant table (shared by the terminal and Markdown renderings)."""
    name = primary_metric_name(report)
    tgts = targets(report)
    headers = ["variant", "format", "size", "gzip", "x smaller", "params", "sparsity", name]
    headers += [f"{t} p50/p90 ms" for t in tgts]
    headers.append("status")
    rows = []
    for v in variants(report):
        row = [
            str(v.get("name")),
            str(v.get("format") or "-"),
            fmt_bytes(v.get("size_bytes")),
            fmt_bytes(v.get("gzip_bytes")),
            fmt_ratio(smaller_ratio(report, v)) if v.get("format") != "keras" else "-",
            f"{int(v['params']):,}" if finite(v.get("params")) is not None else "-",
            fmt_fraction(v.get("sparsity")),
            fmt_metric(name, metric(v, name)),
        ]
        row += [_latency_cell(latency(v, t)) for t in tgts]
        row.append(status_text(v))
        rows.append(row)
    return headers, rows


def render_table(report: dict[str, Any]) -> str:
    """The terminal rendering: one row per variant, then failed checks and provenance.

    ``x smaller`` is the trained float32 .tflite's gzip size divided by the variant's; latency cells
    are p50/p90 in milliseconds (``~`` marks an estimate, ``(emu)`` an emulation).
    """
    from edgeopt.render import table

    headers, rows = table_rows(report)
    title = f"{report.get('name', '?')} ({report.get('task', '?')}): {report.get('status', '?')}"
    lines = [table(headers, rows, title=title)]
    for c in failed_checks(report):
        lines.append(f"FAILED check {c.get('variant', '?')}/{c.get('check', '?')}: {c.get('message', '')}")
    for stage in report.get("stages") or []:
        if isinstance(stage, dict) and stage.get("summary"):
            lines.append(f"{stage.get('kind', 'stage')}: {stage['summary']}")
    prov = provenance_lines(report)
    if prov:
        lines.append("")
        lines += [f"  {line}" for line in prov]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Markdown (fits a CI job summary)


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    out = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _metric_delta(report: dict[str, Any], v: dict[str, Any], name: str) -> str:
    ref = find_variant(report, REFERENCE_VARIANT)
    value, ref_value = metric_value(v, name), (metric_value(ref, name) if ref else None)
    if value is None or ref_value is None or v.get("name") in (REFERENCE_VARIANT, KERAS_VARIANT):
        return ""
    delta = value - ref_value
    if name == "accuracy":
        return f" ({100 * delta:+.2f} pp)"
    return f" ({delta:+.3g})"


def render_markdown(report: dict[str, Any]) -> str:
    """The Markdown rendering: one table with status marks and the key deltas versus trained float32.

    Deltas: size as ``x smaller`` (gzip), the metric in percentage points (accuracy) or label units
    (MAE), latency as speed-up on each target. Failed checks and provenance follow the table.
    """
    name = primary_metric_name(report)
    tgts = targets(report)
    ok = report.get("status") == STATUS_OK
    mark = "✅" if ok else "❌"
    out = [f"### {mark} edgeopt: {_md_cell(report.get('name', '?'))} ({report.get('task', '?')})", ""]
    headers = ["", "variant", "size", "gzip", "x smaller", "sparsity", name]
    headers += [f"{t} p50 ms (speed-up)" for t in tgts]
    headers.append("status")
    rows = []
    for v in variants(report):
        v_ok = v.get("status") == STATUS_OK
        row = ["✅" if v_ok else "❌", f"`{v.get('name')}`", fmt_bytes(v.get("size_bytes")),
               fmt_bytes(v.get("gzip_bytes")),
               fmt_ratio(smaller_ratio(report, v)) if v.get("format") != "keras" else "",
               fmt_fraction(v.get("sparsity")),
               fmt_metric(name, metric(v, name)) + _metric_delta(report, v, name)]
        for t in tgts:
            entry = latency(v, t)
            cell = _latency_cell(entry).split("/")[0] if entry else "-"
            s = speedup(report, v, t)
            if s is not None and v.get("name") != REFERENCE_VARIANT:
                cell += f" ({s:.2f}x)"
            row.append(cell)
        row.append(status_text(v))
        rows.append(row)
    out.append(markdown_table(headers, rows))
    bad = failed_checks(report)
    if bad:
        out += ["", "**Failed checks**", ""]
        out += [f"- ❌ `{c.get('variant', '?')}` {c.get('check', '?')}: {_md_cell(c.get('message', ''))}"
                for c in bad]
    summaries = [f"- {s.get('kind', 'stage')}: {_md_cell(s['summary'])}"
                 for s in report.get("stages") or [] if isinstance(s, dict) and s.get("summary")]
    if summaries:
        out += [""] + summaries
    prov = provenance_lines(report)
    if prov:
        out += ["", "<details><summary>Provenance</summary>", ""]
        out += [f"- {_md_cell(line)}" for line in prov]
        out += ["", "</details>"]
    out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------------
# HTML (self-contained, plots embedded as PNG data URIs)

PLOT_WIDTH_IN = 7.5
PLOT_DPI = 96
MAX_TENSORS_PLOTTED = 40
MAX_CONFUSION_VARIANTS = 6


def _figure(width: float = PLOT_WIDTH_IN, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=PLOT_DPI, layout="constrained")


def _png_data_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PLOT_DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the points no other point beats on both cost (x, lower is better) and quality (y).

    Args:
        points: (cost, quality) pairs.
        higher_is_better: direction of quality.

    Returns:
        Indices of the non-dominated points, sorted by cost.
    """
    def better_or_equal(a: float, b: float) -> bool:
        return a >= b if higher_is_better else a <= b

    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any(
            xj <= xi and better_or_equal(yj, yi) and (xj < xi or yj != yi)
            for j, (xj, yj) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _tflite_variants(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in variants(report) if v.get("format") != "keras" and v.get("status") == STATUS_OK]


def _tradeoff_plot(report: dict[str, Any], axis: str, target: str | None = None):
    """Metric versus size (axis='size') or versus p50 latency on ``target`` (axis='latency')."""
    name = primary_metric_name(report)
    points, labels = [], []
    higher = True
    for v in _tflite_variants(report):
        entry = metric(v, name)
        y = metric_value(v, name)
        x = finite(v.get("size_bytes")) if axis == "size" else latency_ok(latency(v, target or ""))
        if y is None or x is None:
            continue
        higher = bool(entry.get("higher_is_better", name == "accuracy")) if entry else higher
        points.append((x / KB if axis == "size" else x, 100 * y if name == "accuracy" else y))
        labels.append(str(v.get("name")))
    if not points:
        return None
    fig = _figure(PLOT_WIDTH_IN / 2 + 0.5, 3.6)
    ax = fig.add_subplot()
    xs, ys = zip(*points, strict=True)
    ax.scatter(xs, ys, s=40, color="#3b6fb6", zorder=3)
    merged: dict[tuple[float, float], list[str]] = {}  # identical points share one label
    for x, y, label in zip(xs, ys, labels, strict=True):
        merged.setdefault((x, y), []).append(label)
    for (x, y), names in merged.items():
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    front = pareto_front(points, higher)
    if len(front) > 1:
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "--", color="#d1495b", lw=1.2,
                label="Pareto front", zorder=2)
    ax.scatter([xs[i] for i in front], [ys[i] for i in front], s=90, facecolors="none",
               edgecolors="#d1495b", lw=1.5, zorder=4, label=None if len(front) > 1 else "Pareto front")
    ax.legend(fontsize=8, loc="best")
    if axis == "size":
        ax.set_xlabel("size on disk (KB)")
    else:
        entry = next((latency(v, target or "") for v in _tflite_variants(report)), None) or {}
        ax.set_xlabel(f"p50 latency on {target} (ms, {entry.get('provenance', '?')})")
    first_metric = metric(_tflite_variants(report)[0], name) or {}
    unit = "%" if name == "accuracy" else (first_metric.get("unit") or "")
    ax.set_ylabel(f"{name} ({unit}, {'higher' if higher else 'lower'} is better)")
    ax.grid(alpha=0.3)
    ax.set_title(f"{name} vs {'size' if axis == 'size' else 'latency'}", fontsize=10)
    return fig


def _latency_plot(report: dict[str, Any], target: str):
    """Per variant on one target: min-p99 whisker, p50-p90 box, mean ± std marker."""
    rows = []
    for v in variants(report):
        entry = latency(v, target)
        if latency_ok(entry) is None:
            continue
        rows.append((str(v.get("name")), entry))
    if not rows:
        return None
    fig = _figure(PLOT_WIDTH_IN, 0.9 + 0.45 * len(rows))
    ax = fig.add_subplot()
    for i, (_, e) in enumerate(rows):
        p50, p90 = finite(e.get("p50_ms")), finite(e.get("p90_ms"))
        lo = finite(e.get("min_ms")) or p50
        hi = finite(e.get("p99_ms")) or p90 or p50
        ax.plot([lo, hi], [i, i], color="#555555", lw=1, zorder=1)
        ax.plot([lo, lo], [i - 0.15, i + 0.15], color="#555555", lw=1)
        ax.plot([hi, hi], [i - 0.15, i + 0.15], color="#555555", lw=1)
        if p90 is not None:
            ax.barh(i, p90 - p50, left=p50, height=0.5, color="#8fb3de", edgecolor="#3b6fb6", zorder=2)
        ax.plot([p50, p50], [i - 0.25, i + 0.25], color="#1d3d6b", lw=2, zorder=3)
        mean = finite(e.get("mean_ms"))
        if mean is not None:
            # no ±std bar: timings are heavy-tailed, so std often exceeds the mean and would go negative
            ax.plot([mean], [i], "o", color="#d1495b", ms=4, zorder=4)
    lows = [x for _, e in rows if (x := finite(e.get("min_ms")) or finite(e.get("p50_ms")))]
    highs = [x for _, e in rows if (x := finite(e.get("p99_ms")) or finite(e.get("p90_ms")))]
    if lows and highs and min(lows) > 0 and max(highs) / min(lows) > 8:
        ax.set_xscale("log")  # a long tail (p99 of a busy machine) would squash the boxes
    labels = []
    for name, e in rows:
        std, runs = finite(e.get("std_ms")), e.get("runs")
        parts = (f"n={runs}" if runs else "", f"std {fmt_ms(std)}" if std is not None else "")
        detail = ", ".join(x for x in parts if x)
        labels.append(f"{name}\n({detail})" if detail else name)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    first = rows[0][1]
    ax.set_xlabel("latency (ms): whisker min-p99, box p50-p90, line p50, dot mean; "
                  f"{first.get('provenance', '?')}, {first.get('threads', '?')} thread(s)", fontsize=8)
    ax.set_title(f"latency on {target}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _per_tensor(v: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pt = (v.get("inspect") or {}).get("per_tensor") or {}
    return {str(k): e for k, e in pt.items() if isinstance(e, dict)} if isinstance(pt, dict) else {}


def _tensor_plot(report: dict[str, Any], field: str):
    """Per weight tensor, ``field`` (sparsity or unique_values) for every .tflite variant."""
    vs = [v for v in _tflite_variants(report) if _per_tensor(v)]
    if not vs:
        return None
    names: list[str] = []
    for v in vs:
        for n, e in _per_tensor(v).items():
            if n not in names and finite(e.get(field)) is not None:
                names.append(n)
    if not names:
        return None
    names = names[:MAX_TENSORS_PLOTTED]
    fig = _figure(PLOT_WIDTH_IN, 1.2 + 0.22 * len(names) * max(1, min(len(vs), 3)) / 1.5)
    ax = fig.add_subplot()
    height = 0.8 / len(vs)
    for k, v in enumerate(vs):
        pt = _per_tensor(v)
        values = [finite((pt.get(n) or {}).get(field)) for n in names]
        ys = [i + (k - (len(vs) - 1) / 2) * height for i in range(len(names))]
        xs = [(100 * x if field == "sparsity" else x) if x is not None else 0 for x in values]
        ax.barh(ys, xs, height=height, label=str(v.get("name")))
    ax.set_yticks(range(len(names)), [n if len(n) <= 40 else "…" + n[-39:] for n in names], fontsize=7)
    ax.invert_yaxis()
    if field == "sparsity":
        ax.set_xlabel("exactly-zero weights (%) read from the .tflite")
        ax.set_title("per-tensor sparsity", fontsize=10)
    else:
        ax.set_xscale("log")
        ax.set_xlabel("distinct values per tensor (cluster count), read from the .tflite")
        ax.set_title("per-tensor unique values", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _histories(report: dict[str, Any]) -> list[tuple[str, dict[str, list[float]]]]:
    phases = []
    training = report.get("training") or {}
    if isinstance(training, dict) and isinstance(training.get("history"), dict):
        phases.append(("initial training", training["history"]))
    for i, stage in enumerate(report.get("stages") or []):
        if isinstance(stage, dict) and isinstance(stage.get("history"), dict):
            phases.append((f"stage {i + 1}: {stage.get('kind', '?')}", stage["history"]))
    out = []
    for title, history in phases:
        clean = {str(k): [finite(x) for x in vals] for k, vals in history.items() if isinstance(vals, list)}
        clean = {k: vals for k, vals in clean.items() if any(x is not None for x in vals)}
        if clean:
            out.append((title, clean))
    return out


def _training_plot(report: dict[str, Any]):
    phases = _histories(report)
    if not phases:
        return None
    fig = _figure(PLOT_WIDTH_IN, 4.6)
    axes = fig.subplots(2, len(phases), squeeze=False)
    for col, (title, history) in enumerate(phases):
        loss_ax, metric_ax = axes[0][col], axes[1][col]
        for key, vals in history.items():
            epochs = [i + 1 for i, x in enumerate(vals) if x is not None]
            ys = [x for x in vals if x is not None]
            target_ax = loss_ax if "loss" in key else metric_ax
            target_ax.plot(epochs, ys, marker="o" if len(ys) < 15 else None, ms=3,
                           ls="--" if key.startswith("val_") else "-", label=key)
        loss_ax.set_title(title, fontsize=9)
        for ax, label in ((loss_ax, "loss"), (metric_ax, "metric")):
            ax.set_xlabel("epoch", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=6)
            else:
                ax.set_axis_off()
    return fig


def _confusion_plot(report: dict[str, Any]):
    vs = [v for v in _tflite_variants(report)
          if isinstance((v.get("evaluation") or {}).get("confusion_matrix"), list)][:MAX_CONFUSION_VARIANTS]
    if not vs:
        return None
    cols = min(3, len(vs))
    rows = math.ceil(len(vs) / cols)
    fig = _figure(PLOT_WIDTH_IN, 2.7 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in (a for row in axes for a in row):
        ax.set_axis_off()
    for k, v in enumerate(vs):
        matrix = [[finite(x) or 0.0 for x in row] for row in v["evaluation"]["confusion_matrix"]]
        width = max((len(row) for row in matrix), default=0)
        if not width:
            continue
        matrix = [row + [0.0] * (width - len(row)) for row in matrix]  # a damaged, ragged matrix still draws
        ax = axes[k // cols][k % cols]
        ax.set_axis_on()
        ax.imshow(matrix, cmap="Blues")
        n = len(matrix)
        if n <= 12:
            peak = max((x for row in matrix for x in row), default=0) or 1
            for i, row in enumerate(matrix):
                for j, x in enumerate(row):
                    if x:
                        ax.text(j, i, f"{x:g}", ha="center", va="center", fontsize=6,
                                color="white" if x > peak / 2 else "black")
        ax.set_title(str(v.get("name")), fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.tick_params(labelsize=6)
    return fig


def _scatter_plot(report: dict[str, Any]):
    vs = [v for v in _tflite_variants(report) if isinstance((v.get("evaluation") or {}).get("scatter"), dict)]
    if not vs:
        return None

    def columns(rows: Any) -> list[list[float]]:
        rows = [r if isinstance(r, list) else [r] for r in rows or []]
        width = max((len(r) for r in rows), default=0)
        return [[finite(r[d]) if d < len(r) else None for r in rows] for d in range(width)]

    dims = max(len(columns(v["evaluation"]["scatter"].get("true"))) for v in vs)
    if dims == 0:
        return None
    names = (report.get("data") or {}).get("output_names") or [f"output {d}" for d in range(dims)]
    if dims == 2 and (report.get("data") or {}).get("name") == "facepose":
        names = ["yaw", "pitch"]
    fig = _figure(PLOT_WIDTH_IN, 3.6)
    axes = fig.subplots(1, dims, squeeze=False)[0]
    for d, ax in enumerate(axes):
        lo, hi = math.inf, -math.inf
        for v in vs:
            true = columns(v["evaluation"]["scatter"].get("true"))
            pred = columns(v["evaluation"]["scatter"].get("pred"))
            if d >= len(true) or d >= len(pred):
                continue
            pairs = [(t, p) for t, p in zip(true[d], pred[d], strict=False)
                     if t is not None and p is not None]
            if not pairs:
                continue
            ts, ps = zip(*pairs, strict=True)
            ax.scatter(ts, ps, s=8, alpha=0.5, label=str(v.get("name")))
            lo, hi = min(lo, *ts, *ps), max(hi, *ts, *ps)
        if math.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], color="#555555", lw=1, ls=":", label="ideal")
        ax.set_title(str(names[d]) if d < len(names) else f"output {d}", fontsize=9)
        ax.set_xlabel("true", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Every plot of the HTML report as (caption, PNG data URI); plots without data are left out."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # headless; Figure objects below never touch pyplot state
    name = primary_metric_name(report)
    specs: list[tuple[str, Any]] = [
        (f"{name} vs size, Pareto front marked", lambda: _tradeoff_plot(report, "size")),
    ]
    for t in targets(report):
        specs.append((f"{primary_metric_name(report)} vs latency on {t}, Pareto front marked",
                      lambda t=t: _tradeoff_plot(report, "latency", t)))
    for t in targets(report):
        specs.append((f"latency distribution on {t}", lambda t=t: _latency_plot(report, t)))
    specs += [
        ("per-tensor sparsity", lambda: _tensor_plot(report, "sparsity")),
        ("per-tensor cluster counts (distinct values)", lambda: _tensor_plot(report, "unique_values")),
        ("training curves per stage", lambda: _training_plot(report)),
    ]
    if primary_metric_name(report) == "accuracy":
        specs.append(("confusion matrices (test split, LiteRT)", lambda: _confusion_plot(report)))
    else:
        specs.append(("predicted vs true (test split, LiteRT)", lambda: _scatter_plot(report)))
    out = []
    for caption, make in specs:
        fig = make()
        if fig is not None:
            out.append((caption, _png_data_uri(fig)))
    return out


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1f2328;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:right}
th{background:#f6f8fa}td.l,th.l{text-align:left}
.ok{color:#1a7f37;font-weight:600}.failed{color:#cf222e;font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}figcaption{font-size:.8rem;color:#57606a}
figure img{max-width:100%;border:1px solid #d0d7de}
.note{font-size:.8rem;color:#57606a}code{font-size:.85em}
"""


def _brief(value: Any) -> str:
    """A short rendering of an achieved figure: numbers to 3 digits, mappings as a range."""
    number = finite(value)
    if number is not None:
        return f"{number:.3g}"
    if isinstance(value, dict):
        numbers = [n for n in (finite(v) for v in value.values()) if n is not None]
        if numbers and len(numbers) == len(value):
            return f"{len(numbers)} layers, {min(numbers):.3g} to {max(numbers):.3g}"
        return f"{len(value)} entries"
    return str(value)


def _number_like(text: str) -> bool:
    """Whether a table cell is a figure (right-aligned): ``12.4 KB``, ``97.5%``, ``0.04/0.05``, ``-``."""
    cleaned = text.replace(",", "").replace("%", "").replace("x", "").replace("~", "")
    cleaned = cleaned.replace("(emu)", "").strip()
    for unit in (" KB", " MB", " B"):
        cleaned = cleaned.removesuffix(unit)
    for part in cleaned.split("/"):
        try:
            float(part)
        except ValueError:
            if part.strip() not in ("", "-"):
                return False
    return True


def _html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    esc = html.escape
    out = ["<table><thead><tr>"]
    out += [f"<th class='l'>{esc(str(h))}</th>" if i < left else f"<th>{esc(str(h))}</th>"
            for i, h in enumerate(headers)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            text = str(cell)
            cls = []
            if i < left or i == len(row) - 1 or not _number_like(text):
                cls.append("l")
            if i == len(row) - 1 and text in ("ok", "fail") or text.startswith("failed"):
                cls.append("ok" if text == "ok" else "failed")
            attr = f" class='{' '.join(cls)}'" if cls else ""
            out.append(f"<td{attr}>{esc(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page: summary table, checks, plots (PNG data URIs), provenance.

    It loads nothing from the network, so it reads offline and can be published as a CI artifact.
    """
    esc = html.escape
    title = f"edgeopt report: {report.get('name', '?')}"
    status = str(report.get("status", "?"))
    status_class = "ok" if status == STATUS_OK else "failed"
    meta = (f"task {report.get('task', '?')}; created {report.get('created_utc', '?')}; "
            f"edgeopt {report.get('edgeopt_version', '?')}; seed {report.get('seed', '?')}")
    headers, rows = table_rows(report)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)} <span class='{status_class}'>{esc(status)}</span></h1>",
        f"<p class='note'>{esc(meta)}</p>",
        "<h2>Variants</h2>",
        _html_table(headers, rows, left=2),
        "<p class='note'>x smaller: gzip size of the trained float32 .tflite divided by the variant's. "
        "Latency cells: p50/p90 in ms (~ estimated, (emu) emulated). Every .tflite figure comes from running "
        "that file through LiteRT; keras_float is shown for reference.</p>",
    ]
    checks = [c for c in report.get("checks") or [] if isinstance(c, dict)]
    if checks:
        parts.append("<h2>Checks</h2>")
        parts.append(_html_table(
            ["variant", "check", "expected", "measured", "message", "status"],
            [[c.get("variant", ""), c.get("check", ""), c.get("expected", ""), c.get("measured", ""),
              c.get("message", ""), c.get("status", "")] for c in checks], left=2))
    summaries = [s for s in report.get("stages") or [] if isinstance(s, dict)]
    if summaries:
        parts.append("<h2>Stages</h2><ul>")
        for s in summaries:
            achieved = ", ".join(f"{k} {_brief(v)}" for k, v in (s.get("achieved") or {}).items())
            parts.append(f"<li><b>{esc(str(s.get('kind', '?')))}</b> {esc(achieved)}"
                         f" <span class='note'>{esc(str(s.get('summary') or ''))}</span></li>")
        parts.append("</ul>")
    parts.append("<h2>Plots</h2><div class='plots'>")
    for caption, uri in plots(report):
        parts.append(f"<figure class='plot'><img alt='{esc(caption)}' src='{uri}'>"
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("</div>")
    prov = provenance_lines(report)
    if prov:
        parts.append("<h2>Provenance</h2><ul>" + "".join(f"<li>{esc(p)}</li>" for p in prov) + "</ul>")
    env = report.get("environment") or {}
    if isinstance(env, dict) and env:
        parts.append("<h2>Environment</h2>")
        parts.append(_html_table(["key", "value"], [[k, v] for k, v in env.items()], left=2))
    data = report.get("data") or {}
    if isinstance(data, dict) and data:
        parts.append("<h2>Data</h2>")
        parts.append(_html_table(["key", "value"], [[k, v] for k, v in data.items()], left=2))
    parts.append("</body></html>\n")
    return "".join(parts)


# ----------------------------------------------------------------------------------------------------
# Writing


def render(report: dict[str, Any], fmt: str) -> str:
    """Render ``report`` as ``json``, ``md``, ``html`` or ``table``."""
    if fmt == "json":
        return json.dumps(report, indent=2, allow_nan=False) + "\n"
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    if fmt == "table":
        return render_table(report) + "\n"
    raise InputError(f"unknown report format '{fmt}' (choose from {', '.join(FORMATS)})")


def write_report(
    report: dict[str, Any], out_dir: Path, formats: Sequence[str] = ("json", "md", "html")
) -> None:
    """Write report.json and its renderings (report.md, report.html, report.txt) into ``out_dir``.

    Every rendering is produced in memory first, so a failure leaves no partial files. Raises
    ``ValueError`` if the report holds NaN or Infinity (the schema forbids them: write null).
    """
    texts = {fmt: render(report, fmt) for fmt in formats}
    for fmt, text in texts.items():
        write_text_atomic(Path(out_dir) / FILE_NAMES[fmt], text)
