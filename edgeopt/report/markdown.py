"""The Markdown rendering of a report: one table sized for a CI job summary, deltas against the reference.

Also :func:`markdown_table`, the GitHub-flavoured table writer that ``edgeopt check --markdown``
uses too. No TensorFlow, no matplotlib.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edgeopt.report.cells import (
    failed_checks,
    fmt_bytes,
    fmt_fraction,
    fmt_macs,
    latency_cell,
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
from edgeopt.types import Report

OK_MARK, FAILED_MARK = "✅", "❌"


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    out = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def render_markdown(report: Report | Mapping[str, Any]) -> str:
    """The Markdown rendering: one table with status marks and the key deltas versus trained float32.

    Deltas: size as ``x smaller`` (gzip), the metrics in percentage points (accuracy, top-5 accuracy)
    or label units (MAE, RMSE), latency as speed-up on each target. Failed checks and provenance
    follow the table.
    """
    report = as_report(report)
    name = report.primary_metric()
    extra = secondary_metrics(report)
    targets = report.targets()
    mark = OK_MARK if report.ok else FAILED_MARK
    out = [f"### {mark} edgeopt: {_md_cell(report.name or '?')} ({report.task or '?'})", ""]
    headers = ["", "variant", "size", "gzip", "x smaller", "sparsity", name,
               *(metric_label(report, e) for e in extra), "MACs"]
    headers += [f"{t} p50 ms (speed-up)" for t in targets]
    headers.append("status")
    rows = []
    for v in report.variants:
        row = [OK_MARK if v.ok else FAILED_MARK, f"`{v.name}`", fmt_bytes(v.size_bytes),
               fmt_bytes(v.gzip_bytes), size_ratio_cell(report, v, blank=""), fmt_fraction(v.sparsity),
               metric_cell(report, v, name), *(metric_cell(report, v, e) for e in extra), fmt_macs(v)]
        for t in targets:
            cell = latency_cell(v.latency.get(t), p90=False)
            s = speedup_text(report, v, t)
            row.append(f"{cell} ({s})" if s else cell)
        row.append(status_text(v))
        rows.append(row)
    out.append(markdown_table(headers, rows))
    bad = failed_checks(report)
    if bad:
        out += ["", "**Failed checks**", ""]
        out += [f"- {FAILED_MARK} `{c.variant or '?'}` {c.check or '?'}: {_md_cell(c.message or '')}"
                for c in bad]
    summaries = [f"- {_md_cell(s)}" for s in stage_summaries(report)]
    if summaries:
        out += [""] + summaries
    prov = provenance_lines(report)
    if prov:
        out += ["", "<details><summary>Provenance</summary>", ""]
        out += [f"- {_md_cell(line)}" for line in prov]
        out += ["", "</details>"]
    out.append("")
    return "\n".join(out)
