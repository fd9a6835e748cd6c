"""The canonical report.json and its renderings: terminal table, Markdown, self-contained HTML.

``report.json`` (schema in ``docs/report-schema.md``) is the single source of truth of a run; code
passes it around as a :class:`~edgeopt.types.Report`, and every rendering is a pure function of one.
:func:`load_report` reads and validates a file (bad input raises
:class:`~edgeopt.errors.InputError`, never a traceback); :func:`write_report` writes report.json
plus the requested renderings into a folder. Each renderer also accepts the plain JSON dict, which it
validates and converts first. A variant or target that failed renders as a row with its status and
reason; missing fields render as blanks, never as a crash.

One module per job: :mod:`~edgeopt.report.schema` (parse, validate, load), :mod:`~edgeopt.report.cells`
(the figures every rendering shares), :mod:`~edgeopt.report.text`, :mod:`~edgeopt.report.markdown`,
:mod:`~edgeopt.report.html`, :mod:`~edgeopt.report.plots` and :mod:`~edgeopt.report.layout`. Nothing
here imports TensorFlow, and matplotlib is imported only when HTML is rendered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgeopt.errors import InputError
from edgeopt.outputs import write_text_atomic
from edgeopt.report.html import render_html
from edgeopt.report.markdown import markdown_table, render_markdown
from edgeopt.report.plots import pareto_front
from edgeopt.report.schema import as_report, load_report, parse_report, validate_report
from edgeopt.report.text import render_table
from edgeopt.types import Report

FORMATS = ("json", "md", "html", "table")
FILE_NAMES = {"json": "report.json", "md": "report.md", "html": "report.html", "table": "report.txt"}

__all__ = ["FILE_NAMES", "FORMATS", "as_report", "load_report", "markdown_table", "pareto_front",
           "parse_report", "render", "render_html", "render_markdown", "render_table", "validate_report",
           "write_report"]


def render(report: Report | Mapping[str, Any], fmt: str) -> str:
    """Render ``report`` as ``json``, ``md``, ``html`` or ``table``.

    Raises:
        InputError: an unknown format, or a dict that does not validate.
        ValueError: the report holds NaN or Infinity (the schema forbids them: write null).
    """
    renderers = {"md": render_markdown, "html": render_html, "table": lambda r: render_table(r) + "\n",
                 "json": lambda r: json.dumps(r.to_json(), indent=2, allow_nan=False) + "\n"}
    if fmt not in renderers:
        raise InputError(f"unknown report format '{fmt}' (choose from {', '.join(FORMATS)})")
    return renderers[fmt](as_report(report))


def write_report(
    report: Report | Mapping[str, Any], out_dir: str | Path, formats: Sequence[str] = ("json", "md", "html")
) -> None:
    """Write report.json and its renderings (report.md, report.html, report.txt) into ``out_dir``.

    Every rendering is produced in memory first, so a failure leaves no partial files. Raises
    ``ValueError`` if the report holds NaN or Infinity (the schema forbids them: write null).
    """
    report = as_report(report)
    texts = {fmt: render(report, fmt) for fmt in formats}
    for fmt, text in texts.items():
        write_text_atomic(Path(out_dir) / FILE_NAMES[fmt], text)
