"""The terminal rendering of a report: two tables that fit 100 columns, then notes and provenance.

The first table has one row per variant: size, gzip size, ``x smaller`` than the reference, weight
sparsity, the task metric with its change against the reference, status; the other metrics (top-5
accuracy, RMSE) join it only when the table still fits :data:`WIDTH` (report.md and report.html
always show them); with several outputs, the other outputs' task metrics come first. The second has one row
per variant and latency target: p50 and p90, the speed-up against the reference on that target,
and where the figure comes from. These are the deltas report.md shows. Long text (failure reasons,
notes, stage summaries, provenance) goes below the tables, wrapped, so a row never widens a table.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from edgeopt.render import table
from edgeopt.report.cells import (
    failed_checks,
    fmt_bytes,
    fmt_fraction,
    fmt_macs,
    fmt_metric,
    fmt_ms,
    headline_metrics,
    metric_cell,
    metric_label,
    provenance_lines,
    secondary_metrics,
    size_ratio_cell,
    speedup_text,
    stage_summaries,
    status_text,
)
from edgeopt.report.schema import as_report
from edgeopt.types import Report, Status

WIDTH = 100  # what a terminal shows without wrapping
TARGET_WIDTH = 24  # a longer target name (an SSH address) wraps inside its cell
NOTE_MARK = "*"


def _wrapped(text: str, indent: str = "  ") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False, break_long_words=False) or [indent.rstrip()]


def variant_table(report: Report, extra: Sequence[str] = (),
                  extra_deltas: bool = True) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, rows and the notes below (failure reasons, row notes) of the size and metric table;
    ``extra`` metrics follow the task's (without their change against the reference unless
    ``extra_deltas``)."""
    name = report.primary_metric()
    headers = ["variant", "size", "gzip", "x smaller", "sparsity", name,
               *(metric_label(report, e) for e in extra), "status"]
    rows, notes = [], []
    for v in report.variants:
        status = str(v.status or "unknown")
        if v.ok and v.note:
            status += NOTE_MARK
            notes.append(f"{NOTE_MARK} {v.name}: {v.note}")
        elif not v.ok:
            notes.append(f"{v.name}: {status_text(v)}")
        rows.append([v.name, fmt_bytes(v.size_bytes), fmt_bytes(v.gzip_bytes), size_ratio_cell(report, v),
                     fmt_fraction(v.sparsity), metric_cell(report, v, name),
                     *(metric_cell(report, v, e) if extra_deltas else fmt_metric(e, v.metric(e))
                       for e in extra), status])
    return headers, rows, notes


def latency_table(report: Report) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, rows and failure notes of the latency table: one row per target and variant."""
    headers = ["variant", "target", "p50 ms", "p90 ms", "speed-up", "MACs", "source"]
    rows, notes = [], []
    for target in report.targets():
        shown = "\n".join(textwrap.wrap(str(target), TARGET_WIDTH, break_on_hyphens=False)) or str(target)
        for v in report.variants:
            entry = v.latency.get(target)
            if entry is None:
                continue
            if not entry.ok:
                notes.append(f"{v.name} on {target}: {status_text(entry)}")
            p50, p90 = (fmt_ms(entry.p50_ms), fmt_ms(entry.p90_ms)) if entry.ok else (Status.FAILED, "-")
            rows.append([v.name, shown, p50, p90, speedup_text(report, v, target), fmt_macs(v),
                         str(entry.provenance or "-")])
    return headers, rows, notes


def render_table(report: Report | Mapping[str, Any]) -> str:
    """The terminal rendering: the variant table, the latency table, then checks, stages, provenance.

    ``x smaller`` is the trained float32 .tflite's gzip size divided by the variant's; the metric's
    change against it is in brackets (``pp``: percentage points); ``speed-up`` is its p50 divided by
    the variant's on the same target. Every line fits :data:`WIDTH` columns unless a single value
    (a variant name) is longer.
    """
    report = as_report(report)
    title = f"{report.name or '?'} ({report.task or '?'}): {report.status or '?'}"
    # Every metric if it fits; else each output's task metric (several outputs), with its change if that
    # fits; else the task's alone. The rest is in report.md and report.html.
    headline = headline_metrics(report)
    for extra, deltas in ((secondary_metrics(report), True), (headline, True), (headline, False), ([], True)):
        headers, rows, notes = variant_table(report, extra, deltas)
        shown = table(headers, rows, title=title)
        if max(map(len, shown.splitlines()[1:])) <= WIDTH:  # below the title
            break
    lines = [shown]
    lines += [line for note in notes for line in _wrapped(note)]
    ref = report.reference_name
    lines += _wrapped(f"x smaller: gzip size of {ref} / the variant's; in brackets: change against {ref}",
                      indent="")
    headers, rows, notes = latency_table(report)
    if rows:
        lines += ["", table(headers, rows, title=f"latency (speed-up: {ref} p50 / the variant's)")]
        lines += [line for note in notes for line in _wrapped(note)]
    after = [f"FAILED check {c.variant or '?'}/{c.check or '?'}: {c.message or ''}"
             for c in failed_checks(report)] + stage_summaries(report)
    if after:
        lines.append("")
        lines += [line for text in after for line in _wrapped(text, indent="")]
    prov = provenance_lines(report)
    if prov:
        lines.append("")
        lines += [line for p in prov for line in _wrapped(p)]
    return "\n".join(lines)
