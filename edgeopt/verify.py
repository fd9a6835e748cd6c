"""Checks that what a recipe's structured and clustering stages asked for is really in each ``.tflite``.

Pure functions of the stage entries and the variants of a report (each variant carries the
:func:`edgeopt.inspect.inspect_tflite` summary in ``inspect``), returning check entries in the
report.json shape (``variant``, ``check``, ``expected``, ``measured``, ``status``, ``message``). A
failing check makes the report ``failed`` and ``compress`` exit 1. No TensorFlow here.

* ``pattern_M_N``: with ``structure: M:N``, the share of compliant groups over all weight tensors must
  be at least the share of groups lying in the 2:4-pruned kernels (those are compliant by
  construction; the others may be compliant by chance, which only raises the measured share).
* ``clusters``: with a cluster stage of ``clusters: K``, at least as many weight tensors as layers
  were clustered must hold at most K distinct values per output channel (batch-norm folding and
  per-channel int8 scales multiply each channel by its own factor: K values per channel survive,
  K per tensor need not).
"""

from __future__ import annotations

from typing import Any

SLACK = 1e-6
CHECK_OK = "ok"
CHECK_FAIL = "fail"


def _exported(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in variants
            if v.get("format") != "keras" and v.get("name") != "trained_float32" and v.get("status") == "ok"
            and v.get("inspect")]


def pattern_checks(stages: list[dict[str, Any]], variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """M:N compliance of each exported variant against the share of groups the prune stage covered."""
    prune = next((s for s in stages if s["kind"] == "prune"
                  and s["params"].get("structure", "unstructured") != "unstructured"), None)
    if prune is None:
        return []
    structure = prune["params"]["structure"]
    expected = float(prune["achieved"].get("m_by_n_groups_share", 0.0))
    checks = []
    for v in _exported(variants):
        asked = v["inspect"].get("pattern") or {}
        measured = asked.get("share") if asked.get("structure") == structure else None
        if measured is None and structure == "2:4":
            measured = v["inspect"].get("pattern_2_4")
        ok = measured is not None and measured >= expected - SLACK
        shown = "none" if measured is None else f"{measured:.3f}"
        checks.append({
            "variant": v["name"], "check": f"pattern_{structure.replace(':', '_')}",
            "expected": f">= {expected:.3f}",
            "measured": None if measured is None else round(measured, 4),
            "status": CHECK_OK if ok else CHECK_FAIL,
            "message": f"{v['name']}: {structure} compliance {shown} of weight groups in the .tflite "
                       f"({'meets' if ok else 'falls short of'} {expected:.3f}, the share of groups "
                       f"in {structure}-pruned layers)",
        })
    return checks


def _tensor_clusters(tensor: dict[str, Any]) -> int:
    # Per output channel: batch-norm folding (float) and per-channel scales (int8) multiply each
    # channel by its own factor, which keeps K values per channel but not K per tensor.
    return int(tensor["unique_values_per_channel_max"])


def cluster_checks(stages: list[dict[str, Any]], variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each exported variant must keep the clusters: enough weight tensors with at most K values."""
    stage = next((s for s in stages if s["kind"] == "cluster"), None)
    if stage is None:
        return []
    k = int(stage["params"]["clusters"])
    asked = len(stage["achieved"].get("clustered_layers", []))
    if not asked:
        return []
    checks = []
    for v in _exported(variants):
        weights = [t for t in v["inspect"].get("per_tensor", {}).values() if t.get("role") == "weight"]
        kept = sum(1 for t in weights if _tensor_clusters(t) <= k)
        ok = kept >= asked
        checks.append({
            "variant": v["name"], "check": "clusters", "expected": f">= {asked} tensors with <= {k} values",
            "measured": kept, "status": CHECK_OK if ok else CHECK_FAIL,
            "message": f"{v['name']}: {kept} of {len(weights)} weight tensors hold <= {k} distinct values "
                       f"({'meets' if ok else 'falls short of'} the {asked} clustered layers)",
        })
    return checks


def technique_checks(stages: list[dict[str, Any]], variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every structured-sparsity and clustering check for a report's stages and variants."""
    return pattern_checks(stages, variants) + cluster_checks(stages, variants)
