"""The plots of the HTML report, drawn with matplotlib into PNG data URIs.

matplotlib is imported inside the drawing functions only, so importing this module (and
:mod:`edgeopt.report`) stays cheap; the pure helpers that decide what a plot shows
(:func:`pareto_front`, :func:`percent_limits`, :func:`latency_marks`, :func:`tensor_rows`) need no
matplotlib and are tested on their own. A plot without data in the report is left out (None). Each
figure is placed by :func:`edgeopt.report.layout.fit_margins` rather than a layout engine, so it is
measured and drawn once.
"""

from __future__ import annotations

import base64
import io
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgeopt.inspect import ROLE_WEIGHT  # loads numpy: only once plots are drawn
from edgeopt.report.cells import KB, fmt_time, is_percentage
from edgeopt.types import LatencyEntry, LatencyKey, Report, Task, TensorFacts, Variant, finite

PLOT_WIDTH_IN = 7.5
PLOT_DPI = 96
MAX_TENSORS_PLOTTED = 40
MAX_CONFUSION_VARIANTS = 6
MIN_PERCENT_SPAN = 5.0  # an accuracy axis spans at least this many points, so 0.3 points is not a cliff
QAT_PREFIX = "quant_"  # TFMOT's quantize wrapper renames layer X to quant_X
LABEL_LEFT_OF_POINT_BEYOND = 0.6  # a point past this fraction of the x axis has its label on its left


def new_figure(width: float = PLOT_WIDTH_IN, height: float = 4.0):
    from matplotlib.figure import Figure

    # No layout engine: figures() places the axes once with fit_margins, so savefig draws only once.
    return Figure(figsize=(width, height), dpi=PLOT_DPI, layout=None)


def png_data_uri(fig) -> str:
    buffer = io.BytesIO()
    # zlib level 1: the PNGs come out a few % larger and are written in about half the time
    fig.savefig(buffer, format="png", dpi=PLOT_DPI, pil_kwargs={"compress_level": 1})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _title(ax, text: str, size: float) -> None:
    # At y=1 explicitly: otherwise matplotlib places the title at each draw by measuring the whole
    # y axis for an offset text (1e-5) in its way; fit_margins keeps room above for one instead.
    ax.set_title(text, fontsize=size, y=1.0)


def _tflite_variants(report: Report) -> list[Variant]:
    return [v for v in report.variants if v.is_tflite and v.ok]


# -- metric versus size and latency --------------------------------------------------------------------


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


def percent_limits(values: Sequence[float], span: float = MIN_PERCENT_SPAN) -> tuple[float, float]:
    """Axis limits for percentages: the values with a margin, at least ``span`` points, within [0, 100].

    Matplotlib fits the axis to the data, so accuracies of 97.2 and 97.5 fill the plot and a third of
    a point looks like a cliff; a minimum span keeps the drawing in proportion.
    """
    lo, hi = min(values), max(values)
    margin = 0.1 * (hi - lo)
    lo, hi = lo - margin, hi + margin
    if hi - lo < span:
        middle = (lo + hi) / 2
        lo, hi = middle - span / 2, middle + span / 2
    if lo < 0:
        lo, hi = 0.0, min(100.0, hi - lo)
    if hi > 100:
        lo, hi = max(0.0, lo - (hi - 100)), 100.0
    return lo, hi


def _tradeoff_plot(report: Report, axis: str, target: LatencyKey | None = None):
    """Metric versus size (axis='size') or versus p50 latency on ``target`` (axis='latency')."""
    name = report.primary_metric()
    points, labels, entries = [], [], []
    higher, percent, unit = True, is_percentage(name, None), ""
    for v in _tflite_variants(report):
        metric = v.metric(name)
        entry = v.latency.get(target) if target is not None else None
        y = metric.number if metric else None
        x = finite(v.size_bytes) if axis == "size" else entry.value() if entry else None
        if y is None or x is None:
            continue
        higher, percent, unit = bool(metric.higher_is_better), is_percentage(name, metric), metric.unit or ""
        points.append((x / KB if axis == "size" else x, 100 * y if percent else y))
        labels.append(v.name)
        entries.append(entry)
    if not points:
        return None
    fig = new_figure(PLOT_WIDTH_IN / 2 + 0.5, 3.6)
    ax = fig.add_subplot()
    xs, ys = zip(*points, strict=True)
    ax.scatter(xs, ys, s=40, color="#3b6fb6", zorder=3, clip_on=False)
    merged: dict[tuple[float, float], list[str]] = {}  # identical points share one label
    for x, y, label in zip(xs, ys, labels, strict=True):
        merged.setdefault((x, y), []).append(label)
    x0, x1 = ax.get_xlim()
    for (x, y), names in merged.items():
        leftward = x - x0 > LABEL_LEFT_OF_POINT_BEYOND * (x1 - x0)  # keep the label inside the figure
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(-5 if leftward else 5, 4),
                    ha="right" if leftward else "left", fontsize=8)
    front = pareto_front(points, higher)
    if len(front) > 1:
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "--", color="#d1495b", lw=1.2,
                label="Pareto front", zorder=2)
    ax.scatter([xs[i] for i in front], [ys[i] for i in front], s=90, facecolors="none", clip_on=False,
               edgecolors="#d1495b", lw=1.5, zorder=4, label=None if len(front) > 1 else "Pareto front")
    ax.legend(fontsize=8, loc="best")
    if axis == "size":
        ax.set_xlabel("size on disk (KB)")
    else:
        ax.set_xlabel(f"p50 latency on {target} (ms, {entries[0].provenance or '?'})")
    if percent:
        ax.set_ylim(*percent_limits(ys))
    ax.set_ylabel(f"{name} ({'%' if percent else unit}, {'higher' if higher else 'lower'} is better)")
    ax.grid(alpha=0.3)
    _title(ax, f"{name} vs {'size' if axis == 'size' else 'latency'}", 10)
    return fig


# -- latency distribution -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyMarks:
    """What one latency row draws: whisker, box, median line, and the mean when it lies on the whisker."""

    low: float  # whisker start: the fastest invoke (p50 when min is unknown)
    high: float  # whisker end: p99 (p90 or p50 when unknown)
    p50: float
    p90: float | None
    mean: float | None  # drawn as a dot only when it lies within low..high
    mean_beyond: bool  # the mean lies past p99: outliers slower than p99 pull it there
    label: str  # the row's label: variant, runs, std with its unit, and where the mean is if not drawn


def latency_marks(name: str, entry: LatencyEntry) -> LatencyMarks | None:
    """The marks of one successful latency entry (None when it has no p50)."""
    p50 = entry.value("p50_ms")
    if p50 is None:
        return None
    p90 = entry.value("p90_ms")
    low = entry.value("min_ms") or p50
    high = entry.value("p99_ms") or p90 or p50
    mean = entry.value("mean_ms")
    beyond = mean is not None and mean > high
    std = entry.value("std_ms")
    details = [f"n={entry.runs}" if entry.runs else "", f"std {fmt_time(std)}" if std is not None else "",
               f"mean {fmt_time(mean)}, beyond p99" if beyond else ""]
    detail = ", ".join(d for d in details if d)
    inside = mean if mean is not None and low <= mean <= high else None
    return LatencyMarks(low=low, high=high, p50=p50, p90=p90, mean=inside, mean_beyond=beyond,
                        label=f"{name}\n({detail})" if detail else name)


def _latency_plot(report: Report, target: LatencyKey):
    """Per variant on one target: whisker min to p99, box p50 to p90, line p50, dot mean (when within)."""
    rows = [(marks, entry) for v in report.variants
            if (entry := v.latency.get(target)) and (marks := latency_marks(v.name, entry))]
    if not rows:
        return None
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = new_figure(PLOT_WIDTH_IN, 1.4 + 0.45 * len(rows))
    ax = fig.add_subplot()
    whisker, box, median, dot = "#555555", "#8fb3de", "#1d3d6b", "#d1495b"
    for i, (m, _) in enumerate(rows):
        ax.plot([m.low, m.high], [i, i], color=whisker, lw=1, zorder=1)
        for end in (m.low, m.high):
            ax.plot([end, end], [i - 0.15, i + 0.15], color=whisker, lw=1)
        if m.p90 is not None:
            ax.barh(i, m.p90 - m.p50, left=m.p50, height=0.5, color=box, edgecolor="#3b6fb6", zorder=2)
        ax.plot([m.p50, m.p50], [i - 0.25, i + 0.25], color=median, lw=2, zorder=3)
        if m.mean is not None:
            # no ±std bar: timings are heavy-tailed, so std often exceeds the mean and would go negative
            ax.plot([m.mean], [i], "o", color=dot, ms=4, zorder=4)
    lows, highs = [m.low for m, _ in rows], [m.high for m, _ in rows]
    if min(lows) > 0 and max(highs) / min(lows) > 8:
        ax.set_xscale("log")  # a long tail (p99 of a busy machine) would squash the boxes
    ax.set_yticks(range(len(rows)), [m.label for m, _ in rows], fontsize=8)
    ax.invert_yaxis()
    first = rows[0][1]
    ax.set_xlabel(f"latency (ms); {first.provenance or '?'}, {first.threads or '?'} thread(s)", fontsize=8)
    _title(ax, f"latency on {target}", 10)
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], color=whisker, lw=1, label="whisker: fastest invoke to p99"),
               Patch(facecolor=box, edgecolor="#3b6fb6", label="box: p50 to p90"),
               Line2D([], [], color=median, lw=2, label="line: p50 (median)"),
               Line2D([], [], ls="", marker="o", color=dot, ms=4, label="dot: mean, if within the whisker")]
    fig.legend(handles=handles, loc="lower center", ncols=2, fontsize=7, frameon=False)  # room: fit_margins
    return fig


# -- per layer ------------------------------------------------------------------------------------------


def layer_name(tensor: str) -> str:
    """The Keras layer a TFLite weight tensor belongs to, read from its name.

    The converter names a tensor by the ops it feeds, ``model/layer/Op`` (several joined by ``;``): the
    layer is the path component after the model's name. TFMOT's QAT wrapper renames ``conv1`` to
    ``quant_conv1``; the prefix is dropped so an int8 bar sits next to its float layer.
    """
    parts = [p for p in tensor.split(";")[0].split("/") if p]
    if len(parts) >= 3:
        name = parts[1]
    elif len(parts) == 2:
        name = parts[0]
    else:
        return tensor
    return name.removeprefix(QAT_PREFIX) or name


def _op_of(tensor: str) -> str:
    return tensor.split(";")[0].rstrip("/").rsplit("/", 1)[-1]


def layer_labels(tensors: Sequence[str]) -> dict[str, str]:
    """A unique label per tensor of one model: its layer, with the op where a layer has several."""
    labels = {t: layer_name(t) for t in tensors}
    counts = Counter(labels.values())
    labels = {t: f"{label} ({_op_of(t)})" if counts[label] > 1 else label for t, label in labels.items()}
    seen: Counter[str] = Counter()
    unique = {}
    for t, label in labels.items():
        seen[label] += 1
        unique[t] = label if seen[label] == 1 else f"{label} #{seen[label]}"
    return unique


def _weights(v: Variant) -> dict[str, TensorFacts]:
    """The per-tensor entries of the variant's weights (every tensor in reports without roles)."""
    entries = {str(k): e for k, e in v.inspect.per_tensor.items()}
    if any(e.role is not None for e in entries.values()):
        entries = {k: e for k, e in entries.items() if e.role == ROLE_WEIGHT}
    return entries


def tensor_rows(report: Report, field: str) -> tuple[list[str], dict[str, list[float | None]]]:
    """Layer labels (first seen first) and, per .tflite variant, ``field`` of each layer's weights."""
    per_variant: dict[str, dict[str, float | None]] = {}
    labels: list[str] = []
    for v in _tflite_variants(report):
        weights = _weights(v)
        named = layer_labels(list(weights))
        values = {named[t]: finite(getattr(e, field)) for t, e in weights.items()}
        values = {label: x for label, x in values.items() if x is not None}
        if values:
            per_variant[v.name] = values
            labels += [label for label in values if label not in labels]
    labels = labels[:MAX_TENSORS_PLOTTED]
    return labels, {name: [values.get(label) for label in labels] for name, values in per_variant.items()}


SPARSITY_SHOWN = 0.01  # a sparsity plot whose every tensor has fewer zeros than this shows nothing
CLUSTERS_SHOWN = 64  # a tensor with at most this many distinct values (and 4x as many weights) is clustered


def has_something(report: Report, field: str) -> bool:
    """Whether a per-tensor plot of ``field`` would show anything: a tensor with zeros (sparsity), or
    one holding far fewer distinct values than weights, as clustering leaves it (unique_values). A
    model nobody pruned or clustered gives bars of 0 % and of every int8 value: left out."""
    for v in _tflite_variants(report):
        for entry in _weights(v).values():
            if field == "sparsity" and (finite(entry.sparsity) or 0) >= SPARSITY_SHOWN:
                return True
            unique, size = finite(entry.unique_values), finite(entry.size)
            if field == "unique_values" and unique is not None and unique <= CLUSTERS_SHOWN and (
                    size is None or size >= 4 * unique):
                return True
    return False


def _tensor_plot(report: Report, field: str):
    """Per layer's weight tensor, ``field`` (sparsity or unique_values) for every .tflite variant;
    None when there is nothing to show (:func:`has_something`)."""
    labels, series = tensor_rows(report, field)
    if not labels or not has_something(report, field):
        return None
    fig = new_figure(PLOT_WIDTH_IN, 1.2 + 0.22 * len(labels) * max(1, min(len(series), 3)) / 1.5)
    ax = fig.add_subplot()
    height = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        ys = [i + (k - (len(series) - 1) / 2) * height for i in range(len(labels))]
        xs = [(100 * x if field == "sparsity" else x) if x is not None else 0 for x in values]
        ax.barh(ys, xs, height=height, label=name)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("layer (its weight tensor)", fontsize=8)
    ax.invert_yaxis()
    if field == "sparsity":
        ax.set_xlabel("exactly-zero weights (%) read from the .tflite")
        _title(ax, "per-tensor sparsity", 10)
    else:
        ax.set_xscale("log")
        ax.set_xlabel("distinct values per tensor (cluster count), read from the .tflite")
        _title(ax, "per-tensor unique values", 10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(axis="x", alpha=0.3)
    return fig


# -- training, confusion, scatter -----------------------------------------------------------------------


def _histories(report: Report) -> list[tuple[str, dict[str, list[float | None]]]]:
    phases = []
    if isinstance(report.training.get("history"), dict):
        phases.append(("initial training", report.training["history"]))
    for i, stage in enumerate(report.stages):
        if isinstance(stage.history, dict):
            phases.append((f"stage {i + 1}: {stage.kind or '?'}", stage.history))
    out = []
    for title, history in phases:
        clean = {str(k): [finite(x) for x in vals] for k, vals in history.items() if isinstance(vals, list)}
        clean = {k: vals for k, vals in clean.items() if any(x is not None for x in vals)}
        if clean:
            out.append((title, clean))
    return out


def _diagnosis_plot(v: Variant):
    """Each diagnosed layer's error in int8 steps (its own ops', and its input's), worst first."""
    layers = [layer for layer in v.extra["diagnosis"]["layers"] if isinstance(layer, Mapping)]
    if not layers:
        return None
    names = [str(layer.get("name")) for layer in layers]
    floor = 1e-3  # a log axis: a layer with no error shows at the floor
    own = [max(finite(layer.get("rmse_over_scale")) or 0.0, floor) for layer in layers]
    given = [max(finite(layer.get("input_rmse_over_scale")) or 0.0, floor) for layer in layers]
    fig = new_figure(PLOT_WIDTH_IN, 0.6 + 0.32 * len(names))
    ax = fig.subplots()
    rows = range(len(names))
    ax.barh([r + 0.2 for r in rows], own, height=0.4, label="its ops (RMS error, int8 steps)")
    ax.barh([r - 0.2 for r in rows], given, height=0.4, label="its input (RMS error, int8 steps)")
    ax.set_yticks(list(rows), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1 / 12 ** 0.5, color="grey", ls=":", lw=1, label="rounding alone")
    ax.set_xlabel("RMS error in steps of the int8 scale (log)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=6)
    return fig


def _training_plot(report: Report):
    phases = _histories(report)
    if not phases:
        return None
    fig = new_figure(PLOT_WIDTH_IN, 4.6)
    axes = fig.subplots(2, len(phases), squeeze=False)
    for col, (title, history) in enumerate(phases):
        loss_ax, metric_ax = axes[0][col], axes[1][col]
        for key, vals in history.items():
            epochs = [i + 1 for i, x in enumerate(vals) if x is not None]
            ys = [x for x in vals if x is not None]
            target_ax = loss_ax if "loss" in key else metric_ax
            target_ax.plot(epochs, ys, marker="o" if len(ys) < 15 else None, ms=3,
                           ls="--" if key.startswith("val_") else "-", label=key)
        _title(loss_ax, title, 9)
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


def _evaluation(v: Variant, output: str | None) -> Mapping[str, Any]:
    """A variant's plot data: of one named output (``evaluation.outputs.<name>``), or its own."""
    if output is None:
        return v.evaluation
    outputs = v.evaluation.get("outputs")
    found = outputs.get(output) if isinstance(outputs, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _confusion_plot(report: Report, output: str | None = None):
    pairs = [(v, _evaluation(v, output)) for v in _tflite_variants(report)]
    vs = [v.replace(evaluation=e) for v, e in pairs
          if isinstance(e.get("confusion_matrix"), list)][:MAX_CONFUSION_VARIANTS]
    if not vs:
        return None
    cols = min(3, len(vs))
    rows = math.ceil(len(vs) / cols)
    fig = new_figure(PLOT_WIDTH_IN, 2.7 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in (a for row in axes for a in row):
        ax.set_axis_off()
    for k, v in enumerate(vs):
        matrix = [[finite(x) or 0.0 for x in row] for row in v.evaluation["confusion_matrix"]]
        width = max((len(row) for row in matrix), default=0)
        if not width:
            continue
        matrix = [row + [0.0] * (width - len(row)) for row in matrix]  # a damaged, ragged matrix still draws
        ax = axes[k // cols][k % cols]
        ax.set_axis_on()
        ax.imshow(matrix, cmap="Blues")
        if len(matrix) <= 12:
            peak = max((x for row in matrix for x in row), default=0) or 1
            for i, row in enumerate(matrix):
                for j, x in enumerate(row):
                    if x:
                        ax.text(j, i, f"{x:g}", ha="center", va="center", fontsize=6,
                                color="white" if x > peak / 2 else "black")
        _title(ax, v.name, 9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.tick_params(labelsize=6)
    return fig


def _columns(rows: Any) -> list[list[float | None]]:
    """Per output dimension, the values of a scatter's rows (a scalar row is one dimension)."""
    rows = [r if isinstance(r, list) else [r] for r in rows or []]
    width = max((len(r) for r in rows), default=0)
    return [[finite(r[d]) if d < len(r) else None for r in rows] for d in range(width)]


def output_names(report: Report, variants: Sequence[Variant], dims: int) -> list[str]:
    """What each of ``dims`` regression outputs is called, as the report records it: the data's names
    (CSV label columns; facepose's yaw and pitch), else the model's output layer (``<layer>[i]``, in
    each variant's evaluation), else ``output i``."""
    recorded = [report.data.get("output_names"), *(v.evaluation.get("output_names") for v in variants)]
    for names in recorded:
        if isinstance(names, list) and len(names) == dims:
            return [str(n) for n in names]
    if dims == 2 and report.recipe.get("data") == "facepose":  # the built-in, in reports from before names
        return ["yaw", "pitch"]
    return [f"output {d}" for d in range(dims)]


def _scatter_plot(report: Report, output: str | None = None):
    pairs = [(v, _evaluation(v, output)) for v in _tflite_variants(report)]
    vs = [v.replace(evaluation=e) for v, e in pairs if isinstance(e.get("scatter"), dict)]
    if not vs:
        return None
    dims = max(len(_columns(v.evaluation["scatter"].get("true"))) for v in vs)
    if dims == 0:
        return None
    names = output_names(report, vs, dims)
    fig = new_figure(PLOT_WIDTH_IN, 3.6)
    axes = fig.subplots(1, dims, squeeze=False)[0]
    for d, ax in enumerate(axes):
        lo, hi = math.inf, -math.inf
        for v in vs:
            true = _columns(v.evaluation["scatter"].get("true"))
            pred = _columns(v.evaluation["scatter"].get("pred"))
            if d >= len(true) or d >= len(pred):
                continue
            pairs = [(t, p) for t, p in zip(true[d], pred[d], strict=False)
                     if t is not None and p is not None]
            if not pairs:
                continue
            ts, ps = zip(*pairs, strict=True)
            ax.scatter(ts, ps, s=8, alpha=0.5, label=v.name)
            lo, hi = min(lo, *ts, *ps), max(hi, *ts, *ps)
        if math.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], color="#555555", lw=1, ls=":", label="ideal")
        _title(ax, names[d], 9)
        ax.set_xlabel("true", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


# -- all of them ----------------------------------------------------------------------------------------


def plots(report: Report) -> list[tuple[str, str]]:
    """Every plot of the HTML report as (caption, PNG data URI); plots without data are left out."""
    return [(caption, png_data_uri(fig)) for caption, fig in figures(report)]


def figures(report: Report) -> list[tuple[str, Any]]:
    """Every plot of the HTML report as (caption, matplotlib Figure), laid out to fit its texts."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # headless; Figure objects below never touch pyplot state
    from edgeopt.report.layout import fit_margins

    name = report.primary_metric()
    specs: list[tuple[str, Callable[[], Any]]] = [
        (f"{name} vs size, Pareto front marked", lambda: _tradeoff_plot(report, "size")),
    ]
    for t in report.targets():
        specs.append((f"{name} vs latency on {t}, Pareto front marked",
                      lambda t=t: _tradeoff_plot(report, "latency", t)))
    for t in report.targets():
        specs.append((f"latency distribution on {t}", lambda t=t: _latency_plot(report, t)))
    for v in report.variants:
        if (v.extra.get("diagnosis") or {}).get("layers"):
            specs.append((f"{v.name}: int8 error per Keras layer, worst first (edgeopt diagnose)",
                          lambda v=v: _diagnosis_plot(v)))
    specs += [
        ("per-tensor sparsity", lambda: _tensor_plot(report, "sparsity")),
        ("per-tensor cluster counts (distinct values)", lambda: _tensor_plot(report, "unique_values")),
        ("training curves per stage", lambda: _training_plot(report)),
    ]
    outputs = report.data.get("outputs") if report.task == Task.MULTI_OUTPUT else None
    if isinstance(outputs, Mapping):  # one plot per output, by the output's task
        for output, about in outputs.items():
            if isinstance(about, Mapping) and about.get("task") == Task.CLASSIFICATION:
                specs.append((f"confusion matrices of output {output} (test split, LiteRT)",
                              lambda o=output: _confusion_plot(report, o)))
            else:
                specs.append((f"predicted vs true of output {output} (test split, LiteRT)",
                              lambda o=output: _scatter_plot(report, o)))
    elif name == "accuracy":
        specs.append(("confusion matrices (test split, LiteRT)", lambda: _confusion_plot(report)))
    else:
        specs.append(("predicted vs true (test split, LiteRT)", lambda: _scatter_plot(report)))
    out = []
    for caption, make in specs:
        fig = make()
        if fig is not None:
            fit_margins(fig, legend=fig.legends[0] if fig.legends else None)  # a figure legend goes below
            out.append((caption, fig))
    return out
