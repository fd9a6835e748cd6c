"""The latency entry: its field names, constructors for failed entries, and tidying for reports.

Contract: a latency entry is a plain dict holding exactly :data:`LATENCY_FIELDS` (docs/report-schema.md),
optionally plus target-specific extras (:data:`EXTRA_FIELDS`: ``board`` facts over SSH, ``max_abs_diff``
versus x86 under QEMU, ``model`` for an estimate). Timing fields are ``None`` on a failed entry.
No TensorFlow, no numpy.
"""

from __future__ import annotations

import math

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
EXTRA_FIELDS = ("board", "max_abs_diff", "reference", "model")


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
    entry.update({"provenance": provenance, "threads": threads, "runs": 0, "warmup": 0,
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
