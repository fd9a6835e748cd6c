"""Margins of the report's plots, measured from their texts: constrained layout's result at less cost.

matplotlib's constrained layout finds a figure's margins by measuring every artist twice and
drawing the figure once more before the real draw: about half the time the HTML report took. The
report's plots are grids of axes whose margins follow from a few texts (tick labels, axis labels,
titles, a legend below the axes), so :func:`fit_margins` measures just those with the Agg
renderer's font metrics and sets the figure's subplot parameters, and each figure is drawn once.
Imported only when plots are drawn (it imports matplotlib).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from matplotlib import cbook, rcParams
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.font_manager import FontProperties

EDGE_PAD_PT = 5.0  # between the texts and the figure's edge, and between neighbouring axes
LINE_SPACING = 1.2  # matplotlib's default for multi-line text
MAX_MARGIN_FRACTION = 0.45  # no margin takes more of the figure than this (absurdly long labels)


@dataclass(frozen=True)
class Needs:
    """Room (pixels) one axes needs outside its frame for its texts."""

    left: float = 0.0
    bottom: float = 0.0
    top: float = 0.0
    right: float = 0.0  # the last x tick label, centred on the frame's edge, sticks out by half


@functools.lru_cache(maxsize=4)
def _renderer(dpi: float) -> RendererAgg:
    return RendererAgg(1, 1, dpi)  # font metrics only: no canvas of a figure's size


@functools.lru_cache(maxsize=4096)
def _metrics(text: str, size: float, dpi: float) -> tuple[float, float]:
    """Width and height (descent included), in pixels, of one line of text."""
    width, height, _ = _renderer(dpi).get_text_width_height_descent(
        text, FontProperties(size=size), ismath=cbook.is_math_text(text))
    return width, height


def text_size(text: str, size: float, dpi: float) -> tuple[float, float]:
    """Width and height in pixels of ``text`` (lines stacked as matplotlib does) at ``size`` points."""
    line = _metrics("lp", size, dpi)[1]
    parts = [_metrics(part, size, dpi) for part in str(text).split("\n")]
    height = max(line, *(h for _, h in parts))
    return max(w for w, _ in parts), height + (len(parts) - 1) * line * LINE_SPACING


def _points(size: Any) -> float:
    """A font size in points, from a number or a name (``medium``, ``small``)."""
    return FontProperties(size=size).get_size_in_points()


def _tick_labels(axis) -> tuple[list[str], float]:
    """The axis's major tick labels within its view, as they will be drawn, and their size (points)."""
    params = axis.get_tick_params(which="major")
    name = axis.axis_name  # "x" or "y"
    size = _points(params.get("labelsize", rcParams[f"{name}tick.labelsize"]))
    if not params.get("labelbottom" if name == "x" else "labelleft", True) or not axis.get_visible():
        return [], size
    low, high = sorted(axis.get_view_interval())
    slack = 1e-9 * ((high - low) or 1.0)
    locs = [loc for loc in axis.get_majorticklocs() if low - slack <= loc <= high + slack]
    return [label for label in axis.get_major_formatter().format_ticks(locs) if label], size


def _tick_room(axis) -> float:
    """Points between the frame and a tick label: the tick's length and its pad."""
    params = axis.get_tick_params(which="major")
    name = axis.axis_name
    return (params.get("size", rcParams[f"{name}tick.major.size"])
            + params.get("pad", rcParams[f"{name}tick.major.pad"]))


def needs(ax, dpi: float) -> Needs:
    """The room ``ax`` needs for its y tick labels and label (left), x tick labels and label
    (bottom), title and an offset such as ``1e-5`` (top), and its last x tick label (right)."""
    px = dpi / 72.0
    title = ax.title.get_text()
    top = text_size(title, ax.title.get_fontsize(), dpi)[1] + rcParams["axes.titlepad"] * px if title else 0.0
    if not ax.axison:
        return Needs(top=top)
    left = bottom = right = 0.0
    labels, size = _tick_labels(ax.yaxis)
    if labels:
        left = max(text_size(label, size, dpi)[0] for label in labels) + _tick_room(ax.yaxis) * px
        offset = getattr(ax.yaxis.get_major_formatter(), "get_offset", str)()
        if offset:  # drawn above the frame's top left corner
            top = max(top, 2 * text_size(offset, size, dpi)[1])
    label = ax.yaxis.label
    if label.get_text():
        left += text_size("lp", label.get_fontsize(), dpi)[1] + rcParams["axes.labelpad"] * px
    labels, size = _tick_labels(ax.xaxis)
    if labels:
        sizes = [text_size(text, size, dpi) for text in labels]
        bottom = max(h for _, h in sizes) + _tick_room(ax.xaxis) * px
        right = sizes[-1][0] / 2
    label = ax.xaxis.label
    if label.get_text():
        bottom += text_size(label.get_text(), label.get_fontsize(), dpi)[1] + rcParams["axes.labelpad"] * px
    return Needs(left=left, bottom=bottom, top=top, right=right)


def fit_margins(fig, legend=None) -> None:
    """Set ``fig``'s subplot parameters so that its grid of axes and their texts fit, with a pad.

    Args:
        fig: a figure whose axes all sit on one grid (``add_subplot()`` or ``subplots(r, c)``).
        legend: a figure legend placed at the lower centre, below the axes: room is kept for it.
    """
    cells = []  # (first row, last row, first column, last column, needs) of each axes
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is not None:
            cells.append((spec.rowspan.start, spec.rowspan.stop - 1, spec.colspan.start,
                          spec.colspan.stop - 1, needs(ax, fig.dpi)))
    if not cells:
        return
    rows, cols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()
    pad = EDGE_PAD_PT * fig.dpi / 72.0

    def most(field: str, where) -> float:
        return max((getattr(n, field) for r0, r1, c0, c1, n in cells if where(r0, r1, c0, c1)), default=0.0)

    left = most("left", lambda r0, r1, c0, c1: c0 == 0) + pad
    right = most("right", lambda r0, r1, c0, c1: c1 == cols - 1) + pad
    top = most("top", lambda r0, r1, c0, c1: r0 == 0) + pad
    bottom = most("bottom", lambda r0, r1, c0, c1: r1 == rows - 1) + pad
    if legend is not None:
        bottom += legend.get_window_extent(_renderer(fig.dpi)).height + pad
    between_cols = (most("left", lambda r0, r1, c0, c1: c0 > 0)
                    + most("right", lambda r0, r1, c0, c1: c1 < cols - 1) + pad)
    between_rows = (most("top", lambda r0, r1, c0, c1: r0 > 0)
                    + most("bottom", lambda r0, r1, c0, c1: r1 < rows - 1) + pad)
    width, height = fig.bbox.width, fig.bbox.height
    most_w, most_h = MAX_MARGIN_FRACTION * width, MAX_MARGIN_FRACTION * height
    left, right = min(left, most_w), min(right, most_w / 2)
    top, bottom = min(top, most_h / 2), min(bottom, most_h)
    between_cols = min(between_cols, most_w / max(cols - 1, 1))
    between_rows = min(between_rows, most_h / max(rows - 1, 1))
    cell_w = (width - left - right - (cols - 1) * between_cols) / cols
    cell_h = (height - top - bottom - (rows - 1) * between_rows) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=between_cols / max(cell_w, 1.0),
                        hspace=between_rows / max(cell_h, 1.0))
