"""`estimate:` targets: the cost model's shape on a tiny model, and its calibration on MobileNet v2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_benchmark_local import build_tiny_models

from edgeopt.bench import make_spec, measure

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_models(tmp_path_factory.mktemp("estimate_models"))


def test_estimate_is_labelled_and_fills_p50_only(tiny):
    entry = measure(tiny["int8"], "estimate:pi4", make_spec(), threads=4).to_json()
    assert entry["status"] == "ok" and entry["provenance"] == "estimated"
    assert entry["p50_ms"] > 0 and entry["runs"] == 0
    assert all(entry[k] is None for k in ("p90_ms", "p99_ms", "mean_ms", "std_ms", "init_ms"))
    assert entry["cost_model"]["macs"] == 6 * 6 * 4 * 9 + 144 * 10  # conv 3x3 (1->4 ch) + dense 144->10
    assert "Cortex-A72" in entry["cpu"]


def test_boards_rank_and_threads_help_as_published(tiny):
    def p50(target: str, threads: int) -> float:
        return measure(tiny["float32"], target, threads=threads)["p50_ms"]

    assert p50("estimate:pi3", 1) > p50("estimate:pi4", 1) > p50("estimate:pi5", 1)
    assert p50("estimate:pi5", 1) == pytest.approx(p50("estimate:pi4", 1) / 3.2, rel=1e-3)
    assert p50("estimate:pi4", 4) < p50("estimate:pi4", 1)
    assert p50("estimate:pi4", 8) == p50("estimate:pi4", 4)  # a Pi has 4 cores


def test_estimate_refuses_to_model_builtin_kernels(tiny):
    entry = measure(tiny["float32"], "estimate:pi4", make_spec({"xnnpack": False}))
    assert entry.status == "failed" and "XNNPACK only" in entry.reason and entry.delegate == "none"


def test_mobilenet_v2_float_estimate_is_within_25_percent_of_the_published_pi4_figure():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from bench_estimate import PUBLISHED_PI4_MS, build
    finally:
        sys.path.pop(0)
    path = build("mobilenet_v2", "float32")  # tf_keras MobileNetV2 1.0 224, weights=None (cached)
    entry = measure(path, "estimate:pi4", threads=4)
    published = PUBLISHED_PI4_MS[("mobilenet_v2", "float32")]
    assert abs(entry["p50_ms"] / published - 1) <= 0.25
    assert entry["cost_model"]["macs"] == pytest.approx(300e6, rel=0.01)
