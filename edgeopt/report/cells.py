"""The figures every rendering shows, formatted once: sizes, times, metrics, and deltas vs the reference.

The terminal table, the Markdown and the HTML all show the same cells: ``x smaller`` (the reference's
gzip size over the variant's), the metric with its change against the reference (the task's metric
first, then :func:`secondary_metrics` such as top-5 accuracy or RMSE), latency with its speed-up, a
status with its reason, and one provenance line per metric and target. Each is a pure
function of a :class:`~edgeopt.types.Report` and one of its variants; a missing figure is ``-``.
No TensorFlow, no matplotlib.
"""

from __future__ import annotations

from typing import Any

from edgeopt.types import (
    KERAS_VARIANT,
    OUTPUT_SEPARATOR,
    REFERENCES,
    Check,
    LatencyEntry,
    LatencyKey,
    Metric,
    Provenance,
    Report,
    Status,
    Task,
    Variant,
    base_metric,
    finite,
)

KB = 1024  # sizes are shown in KiB-based units (KB = 1024 bytes), the same unit as budgets.max_size_kb
PROVENANCE_MARKS = {Provenance.ESTIMATED: "~", Provenance.EMULATED: "(emu) "}


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


# The one latency formatter: the reports, `edgeopt benchmark`'s table and tune's text and HTML all print
# latencies through fmt_ms (a column headed "ms") or fmt_time (a figure in a sentence).
MICROSECONDS_BELOW_MS = 0.1  # shorter latencies read in µs: "45.2 µs", not "0.0452"


def fmt_ms(value: Any) -> str:
    """A latency for a column in ms, with 3 significant digits: ``1.23``, ``45.6``, ``1,234``; below
    0.1 ms in µs with its unit (``45.2 µs``), which a row of tiny figures reads more easily."""
    v = finite(value)
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if v < MICROSECONDS_BELOW_MS:
        return f"{v * 1000:.3g} µs"
    return f"{v:.3g}" if v < 1000 else f"{v:,.0f}"


def fmt_time(value: Any) -> str:
    """A latency given in ms, with its unit: ``1.23 ms``, or ``45.2 µs`` below 0.1 ms."""
    text = fmt_ms(value)
    return text if text == "-" or text.endswith("µs") else f"{text} ms"


def is_percentage(name: str, metric: Metric | None) -> bool:
    """Whether a metric is shown in percent (accuracy, any fraction)."""
    return name == "accuracy" or (metric is not None and metric.unit == "fraction")


def fmt_metric(name: str, metric: Metric | None) -> str:
    """A metric for a table: accuracy as a percentage, others with their unit."""
    value = metric.number if metric else None
    if value is None:
        return "-"
    if is_percentage(name, metric):
        return f"{100 * value:.2f}%"
    unit = metric.unit or ""
    unit = {"degrees": "deg", "degree": "deg"}.get(unit, unit)
    return f"{value:.3g} {unit}".strip()


def fmt_ratio(value: float | None) -> str:
    """A ratio like ``4.1x``."""
    return "-" if value is None else f"{value:.1f}x" if value < 100 else f"{value:,.0f}x"


def fmt_fraction(value: Any) -> str:
    """A fraction as a percentage with one decimal."""
    v = finite(value)
    return "-" if v is None else f"{100 * v:.1f}%"


def fmt_params(value: Any) -> str:
    v = finite(value)
    return "-" if v is None else f"{int(v):,}"


def fmt_macs(variant: Variant) -> str:
    """The multiply-accumulates of a variant's ``.tflite`` (its inspection), compact: ``812``, ``1.25M``."""
    v = finite(variant.inspect.macs)
    if v is None:
        return "-"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= limit:
            return f"{v / limit:.3g}{suffix}"
    return f"{int(v)}"


# -- against the reference ------------------------------------------------------------------------------


def size_ratio(report: Report, variant: Variant) -> float | None:
    """How many times smaller (gzip bytes) ``variant`` is than the trained float32 .tflite."""
    ref = report.reference
    ref_gz = finite(ref.gzip_bytes) if ref else None
    gz = finite(variant.gzip_bytes)
    if not ref_gz or not gz:
        return None
    return ref_gz / gz


def size_ratio_cell(report: Report, variant: Variant, blank: str = "-") -> str:
    """``x smaller`` of a .tflite variant; ``blank`` for the Keras model (another kind of file)."""
    return fmt_ratio(size_ratio(report, variant)) if variant.is_tflite else blank


def speedup(report: Report, variant: Variant, target: LatencyKey) -> float | None:
    """Reference p50 / variant p50 on ``target`` (>1 means faster than trained float32)."""
    ref = report.reference
    ref_entry = ref.latency.get(target) if ref else None
    entry = variant.latency.get(target)
    ref_p50 = ref_entry.value() if ref_entry else None
    p50 = entry.value() if entry else None
    if not ref_p50 or not p50:
        return None
    return ref_p50 / p50


def speedup_text(report: Report, variant: Variant, target: LatencyKey) -> str:
    """``2.38x`` for a variant other than the reference, else empty."""
    s = speedup(report, variant, target)
    return "" if s is None or variant.name in REFERENCES else f"{s:.2f}x"


def metric_delta(report: Report, variant: Variant, name: str) -> str:
    """The metric's change against the reference: ``-0.60 pp`` (accuracy), ``+0.3`` (others); else empty.

    Empty for the reference itself and for the Keras model, which is shown for reference only.
    """
    if variant.name in (*REFERENCES, KERAS_VARIANT) or report.reference is None:
        return ""
    mine, theirs = variant.metric(name), report.reference.metric(name)
    if mine is None or theirs is None or mine.number is None or theirs.number is None:
        return ""
    delta = mine.number - theirs.number
    return f"{100 * delta:+.2f} pp" if is_percentage(name, mine) else f"{delta:+.3g}"


def metric_cell(report: Report, variant: Variant, name: str) -> str:
    """The metric with its change against the reference: ``96.90% (-0.60 pp)``."""
    delta = metric_delta(report, variant, name)
    return fmt_metric(name, variant.metric(name)) + (f" ({delta})" if delta else "")


SECONDARY_ORDER = ("top_k_accuracy", "rmse")  # shown after the task's metric, in this order, then the rest


def secondary_metrics(report: Report) -> list[str]:
    """Metrics the variants hold besides the task's (``top_k_accuracy``, ``rmse``, ...), in display order;
    a multi-output report's by output (in the data's order), each output's task metric first."""
    primary = report.primary_metric()
    held = {name for v in report.variants for name in v.metrics if name != primary}
    if report.task == Task.MULTI_OUTPUT:
        order = [*HEADLINE, *SECONDARY_ORDER]
        outputs = list(report.data.get("outputs") or {})

        def place(name: str) -> tuple:
            base, _, output = name.partition(OUTPUT_SEPARATOR)
            return (outputs.index(output) if output in outputs else len(outputs),
                    order.index(base) if base in order else len(order), name)

        return sorted(held, key=place)
    known = [name for name in SECONDARY_ORDER if name in held]
    return known + sorted(held - set(known))


HEADLINE = ("accuracy", "mae")  # the metric each output's task is judged by


def headline_metrics(report: Report) -> list[str]:
    """The other outputs' task metrics of a multi-output report (``mae/angle`` beside ``accuracy/label``):
    what a narrow table shows when every metric does not fit. None for a single output."""
    if report.task != Task.MULTI_OUTPUT:
        return []
    return [name for name in secondary_metrics(report) if base_metric(name) in HEADLINE]


def metric_label(report: Report, name: str) -> str:
    """A metric's column heading: ``top-5 accuracy`` for ``top_k_accuracy`` (its k from the report),
    followed by ``/<output>`` for one of several outputs."""
    base, separator, output = name.partition(OUTPUT_SEPARATOR)
    if base != "top_k_accuracy":
        return name
    k = next((m.extra.get("k") for v in report.variants if (m := v.metric(name)) is not None), None)
    label = f"top-{k} accuracy" if isinstance(k, int) and not isinstance(k, bool) else "top-k accuracy"
    return label + separator + output


# -- status, latency, checks, provenance -----------------------------------------------------------------


def status_text(item: Variant | LatencyEntry) -> str:
    """``ok``, ``ok (<note>)`` or ``failed: <reason>``."""
    status = item.status or "unknown"
    if status == Status.OK:
        note = getattr(item, "note", None)
        return f"{Status.OK} ({note})" if note else Status.OK.value
    return f"{status}: {item.reason}" if item.reason else str(status)


def latency_mark(entry: LatencyEntry) -> str:
    """``~`` for an estimate, ``(emu)`` for an emulation, nothing for a measurement."""
    return PROVENANCE_MARKS.get(entry.provenance, "")


def latency_cell(entry: LatencyEntry | None, p90: bool = True) -> str:
    """``p50/p90`` in ms with the provenance mark; ``failed`` or ``-`` when there is no figure."""
    if entry is None:
        return "-"
    if not entry.ok:
        return Status.FAILED.value
    cell = f"{latency_mark(entry)}{fmt_ms(entry.p50_ms)}"
    return f"{cell}/{fmt_ms(entry.p90_ms)}" if p90 else cell


def failed_checks(report: Report) -> list[Check]:
    """Checks whose status is not ok."""
    return [c for c in report.checks if not c.ok]


def stage_summaries(report: Report) -> list[str]:
    """``kind: summary`` for each stage that has a summary."""
    return [f"{s.kind or 'stage'}: {s.summary}" for s in report.stages if s.summary]


def provenance_lines(report: Report) -> list[str]:
    """One line per metric source and per target saying where and how the figures were obtained."""
    lines: list[str] = []
    name = report.primary_metric()
    seen: set[str] = set()
    for v in report.variants:
        metric = v.metric(name)
        if v.name == KERAS_VARIANT or metric is None:
            continue
        if metric.provenance and metric.provenance not in seen:
            seen.add(metric.provenance)
            lines.append(f"{name}: {metric.provenance}")
    for target in report.targets():
        entry = next((e for v in report.variants if (e := v.latency.get(target)) and e.value() is not None),
                     None)
        if entry is None:
            lines.append(f"{target}: no successful measurement")
            continue
        parts = [str(entry.provenance or "unknown provenance")]
        for value, label in ((entry.runtime, ""), (entry.delegate, "delegate "), (entry.cpu, "")):
            if value:
                parts.append(f"{label}{value}")
        if entry.threads is not None:
            parts.append(f"{entry.threads} thread{'s' if entry.threads != 1 else ''}")
        if entry.runs is not None:
            warmup = "?" if entry.warmup is None else entry.warmup
            parts.append(f"{entry.runs} runs after {warmup} warm-up")
        lines.append(f"{target}: " + ", ".join(parts))
    return lines
