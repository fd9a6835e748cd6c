"""The HTML rendering of a report: one self-contained page, plots embedded as PNG data URIs.

It loads nothing from the network (inline CSS, no script), so it reads offline and can be published
as a CI artifact. The variant table shows every column of the terminal and Markdown tables with the
same deltas against the reference; matplotlib is imported only here, when a page is rendered.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edgeopt.report.cells import (
    fmt_bytes,
    fmt_fraction,
    fmt_macs,
    fmt_params,
    latency_cell,
    metric_cell,
    metric_label,
    provenance_lines,
    secondary_metrics,
    size_ratio_cell,
    speedup_text,
    status_text,
)
from edgeopt.report.plots import plots
from edgeopt.report.schema import as_report
from edgeopt.types import CheckStatus, Report, Status, finite

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


def variant_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the full variant table: every figure, with its delta against the reference."""
    name = report.primary_metric()
    extra = secondary_metrics(report)
    targets = report.targets()
    headers = ["variant", "format", "size", "gzip", "x smaller", "params", "sparsity", name,
               *(metric_label(report, e) for e in extra), "MACs"]
    headers += [f"{t} p50/p90 ms (speed-up)" for t in targets]
    headers.append("status")
    rows = []
    for v in report.variants:
        row = [v.name, str(v.format or "-"), fmt_bytes(v.size_bytes), fmt_bytes(v.gzip_bytes),
               size_ratio_cell(report, v), fmt_params(v.params), fmt_fraction(v.sparsity),
               metric_cell(report, v, name), *(metric_cell(report, v, e) for e in extra), fmt_macs(v)]
        for t in targets:
            cell, s = latency_cell(v.latency.get(t)), speedup_text(report, v, t)
            row.append(f"{cell} ({s})" if s else cell)
        row.append(status_text(v))
        rows.append(row)
    return headers, rows


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
    """Whether a table cell is a figure (right-aligned): ``12.4 KB``, ``97.5% (-0.6 pp)``, ``0.04/0.05``."""
    cleaned = text.split(" (")[0].replace(",", "").replace("%", "").replace("x", "").replace("~", "")
    cleaned = cleaned.replace("(emu)", "").strip()
    for unit in (" KB", " MB", " B", " deg"):
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
            if i == len(row) - 1 and text in (Status.OK, CheckStatus.FAIL) or text.startswith(Status.FAILED):
                cls.append("ok" if text == Status.OK else "failed")  # the CSS classes
            attr = f" class='{' '.join(cls)}'" if cls else ""
            out.append(f"<td{attr}>{esc(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(report: Report | Mapping[str, Any]) -> str:
    """A self-contained HTML page: summary table, checks, stages, plots, provenance, environment."""
    report = as_report(report)
    esc = html.escape
    title = f"edgeopt report: {report.name or '?'}"
    status = str(report.status or "?")
    status_class = "ok" if status == Status.OK else "failed"
    meta = (f"task {report.task or '?'}; created {report.created_utc or '?'}; "
            f"edgeopt {report.edgeopt_version or '?'}; seed {'?' if report.seed is None else report.seed}")
    headers, rows = variant_rows(report)
    ref = report.reference_name
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)} <span class='{status_class}'>{esc(status)}</span></h1>",
        f"<p class='note'>{esc(meta)}</p>",
        "<h2>Variants</h2>",
        _html_table(headers, rows, left=2),
        f"<p class='note'>x smaller: gzip size of the {ref} .tflite divided by the variant's. In "
        f"brackets: the metric's change against {ref} (pp: percentage points) and the speed-up "
        f"({ref} p50 divided by the variant's). Latency cells: p50/p90 in ms (~ estimated, (emu) "
        "emulated). Every .tflite figure comes from running that file through LiteRT; keras_float is "
        "shown for reference.</p>",
    ]
    if report.checks:
        parts.append("<h2>Checks</h2>")
        parts.append(_html_table(
            ["variant", "check", "expected", "measured", "message", "status"],
            [[c.variant or "", c.check or "", _or_blank(c.expected), _or_blank(c.measured), c.message or "",
              c.status or ""] for c in report.checks], left=2))
    if report.stages:
        parts.append("<h2>Stages</h2><ul>")
        for s in report.stages:
            achieved = ", ".join(f"{k} {_brief(v)}" for k, v in (s.achieved or {}).items())
            parts.append(f"<li><b>{esc(str(s.kind or '?'))}</b> {esc(achieved)}"
                         f" <span class='note'>{esc(str(s.summary or ''))}</span></li>")
        parts.append("</ul>")
    parts.append("<h2>Plots</h2><div class='plots'>")
    for caption, uri in plots(report):
        parts.append(f"<figure class='plot'><img alt='{esc(caption)}' src='{uri}'>"
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("</div>")
    prov = provenance_lines(report)
    if prov:
        parts.append("<h2>Provenance</h2><ul>" + "".join(f"<li>{esc(p)}</li>" for p in prov) + "</ul>")
    for heading, mapping in (("Environment", report.environment), ("Data", report.data)):
        if mapping:
            parts.append(f"<h2>{heading}</h2>")
            parts.append(_html_table(["key", "value"], [[k, v] for k, v in mapping.items()], left=2))
    parts.append("</body></html>\n")
    return "".join(parts)


def _or_blank(value: Any) -> Any:
    return "" if value is None else value
