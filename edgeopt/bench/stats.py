"""The latency entry: its field names, constructors for failed entries, and tidying for reports.

Contract: a latency entry is a plain dict holding exactly :data:`LATENCY_FIELDS` (docs/report-schema.md),
optionally plus target-specific extras (:data:`EXTRA_FIELDS`: ``board`` facts over SSH, ``max_abs_diff``
versus x86 under QEMU, ``cost_model`` for an estimate; never ``model``, which names the file in a
benchmark row). Timing fields are ``None`` on a failed entry. :func:`to_entry` turns a runner's
dict into the typed :class:`~edgeopt.types.LatencyEntry` whose ``to_json()`` is exactly that dict,
tidied. No TensorFlow, no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from edgeopt.report.cells import fmt_ms
from edgeopt.types import LatencyEntry

PROVENANCE_MEASURED = "measured"
PROVENANCE_EMULATED = "emulated"
PROVENANCE_ESTIMATED = "estimated"

STATUS_OK = "ok"
STATUS_FAILED = "failed"

TIMING_FIELDS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "cv")
LATENCY_FIELDS = (
    "provenance", "threads", "runs", "warmup", *TIMING_FIELDS, "init_ms", "first_invoke_ms",
    "peak_rss_mb", "runtime", "delegate", "cpu", "governor", "status", "reason",
)
EXTRA_FIELDS = ("board", "max_abs_diff", "reference", "cost_model")


def failed_entry(reason: str, *, provenance: str = PROVENANCE_MEASURED, threads: int = 1,
                 delegate: str | None = None, runtime: str | None = None, cpu: str | None = None) -> dict:
    """A latency entry for a measurement that could not be made.

    Args:
        reason: why, in one line (folded to one line here).
        provenance: what the entry would have been (``measured``, ``emulated``, ``estimated``).
        threads: the thread count that was asked for.
        delegate: ``xnnpack`` or ``none`` when known.
        runtime: the runtime label when known.
        cpu: the CPU description when known.

    Returns:
        A dict with every field of :data:`LATENCY_FIELDS`, timings ``None``, ``status`` ``failed``.
    """
    entry = {name: None for name in LATENCY_FIELDS}
    entry.update({"provenance": str(provenance), "threads": threads, "runs": 0, "warmup": 0,
                  "runtime": runtime, "delegate": delegate, "cpu": cpu,
                  "status": STATUS_FAILED, "reason": " ".join(str(reason).split())})
    return entry


def tidy(entry: dict, digits: int = 4) -> dict:
    """Round floats to ``digits`` significant figures and drop non-finite values (JSON has no NaN).

    Keeps the schema's field order first, then any extras.
    """
    ordered = {name: entry.get(name) for name in LATENCY_FIELDS}
    ordered.update({k: v for k, v in entry.items() if k not in ordered})
    return {k: _round(v, digits) for k, v in ordered.items()}


def to_entry(raw: Mapping[str, Any]) -> LatencyEntry:
    """A runner's latency dict as a LatencyEntry: tidied, and keeping its extras and key order.

    ``to_entry(raw).to_json() == tidy(raw)``: what report.json and benchmark.json hold is unchanged.
    """
    return LatencyEntry.from_json(tidy(dict(raw)))


def _round(value: object, digits: int) -> object:
    if isinstance(value, bool) or not isinstance(value, float):
        if isinstance(value, dict):
            return {k: _round(v, digits) for k, v in value.items()}
        return value
    if not math.isfinite(value):
        return None
    if value == 0.0:
        return 0.0
    return round(value, max(digits - 1 - int(math.floor(math.log10(abs(value)))), 0))


TABLE_HEADERS = ("model", "target", "threads", "provenance", "p50 ms", "p90 ms", "p99 ms", "mean ms",
                 "std ms", "cv", "runs", "delegate", "vs x86", "status")


def table_rows(rows: list[dict]) -> list[list[object]]:
    """Benchmark rows (``model``, ``target`` + entry) as table cells; estimates show p50 only. Times are
    in ms as the headers say, below 0.1 ms in µs with the unit (``45.2 µs``), as in every report."""
    cells = []
    for row in rows:
        estimated = row.get("provenance") == PROVENANCE_ESTIMATED

        def ms(name: str, row: dict = row, estimated: bool = estimated) -> str:
            value = row.get(name)
            return "-" if value is None or (estimated and name != "p50_ms") else fmt_ms(value)

        diff = row.get("max_abs_diff")
        status = row["status"] if row.get("status") == STATUS_OK else f"failed: {row.get('reason')}"
        cells.append([_short_model(row["model"]), row["target"], row.get("threads"), row.get("provenance"),
                      ms("p50_ms"), ms("p90_ms"), ms("p99_ms"), ms("mean_ms"), ms("std_ms"),
                      "-" if row.get("cv") is None or estimated else f"{row['cv']:.2f}",
                      "-" if estimated or not row.get("runs") else row["runs"], row.get("delegate") or "-",
                      "-" if diff is None else f"{diff:.3g}", status])
    return cells


def _short_model(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def target_notes(rows: list[dict]) -> list[str]:
    """One line per distinct target: what ran the numbers (board facts, CPU, runtime, provenance)."""
    notes: dict[str, str] = {}
    for row in rows:
        if row.get("status") != STATUS_OK or row["target"] in notes:
            continue
        parts = [row.get("provenance", "")]
        board = row.get("board") or {}
        if board.get("model"):
            parts.append(board["model"])
        parts.append(row.get("cpu") or "")
        if row.get("governor"):
            parts.append(f"governor {row['governor']}")
        if board.get("temperature_c") is not None:
            parts.append(f"{board['temperature_c']} C")
        if board.get("throttled"):
            parts.append(f"throttled={board['throttled']}")
        if row.get("runtime"):
            parts.append(row["runtime"])
        if row.get("reference"):
            parts.append(f"outputs compared with {row['reference']}")
        notes[row["target"]] = f"{row['target']}: " + ", ".join(p for p in parts if p)
    return list(notes.values())
