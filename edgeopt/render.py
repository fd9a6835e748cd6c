"""Plain-text tables for the terminal and logs (rich, no colour when not a TTY). No TensorFlow."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> str:
    """Render rows as an aligned text table; numbers right-aligned."""
    t = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", show_edge=False, pad_edge=False)
    numeric = [bool(rows) and all(_is_number_like(r[i]) for r in rows) for i in range(len(headers))]
    for header, right in zip(headers, numeric, strict=True):
        t.add_column(str(header), justify="right" if right else "left", overflow="fold")
    for row in rows:
        t.add_row(*("" if cell is None else str(cell) for cell in row))
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None, force_terminal=False).print(t)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def _is_number_like(cell: object) -> bool:
    if isinstance(cell, (int, float)):
        return True
    text = str(cell).replace(",", "").replace("x", "").replace("%", "").strip()
    try:
        float(text)
    except ValueError:
        return text in ("", "-")
    return True
