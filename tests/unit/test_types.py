"""The typed results: lossless round-trips of every committed baseline, and the rules they hold once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sample_report import make_report

from edgeopt.types import (
    REFERENCE,
    Check,
    CheckStatus,
    LatencyEntry,
    Metric,
    Provenance,
    Report,
    Status,
    Variant,
)

ROOT = Path(__file__).resolve().parents[2]
BASELINES = sorted(ROOT.glob("models/*/baseline.json"))


@pytest.mark.parametrize("path", BASELINES, ids=lambda p: p.parent.name)
def test_every_committed_baseline_round_trips_without_loss(path):
    text = path.read_text()
    report = Report.from_json(json.loads(text))
    assert json.dumps(report.to_json(), indent=2) == json.dumps(json.loads(text), indent=2)
    assert report.reference is not None and report.reference.name == REFERENCE


def test_unknown_keys_survive_and_absent_ones_stay_absent():
    data = make_report()
    data["variants"][1]["future_field"] = {"x": 1}
    del data["variants"][1]["evaluation"]
    data["added_later"] = [1, 2]
    back = Report.from_json(data).to_json()
    assert back == data and "evaluation" not in back["variants"][1]


def test_enums_are_the_schema_strings():
    assert Status.OK == "ok" and CheckStatus.FAIL == "fail" and Provenance.EMULATED == "emulated"
    entry = LatencyEntry.failed("board\n unreachable", provenance=Provenance.MEASURED, threads=2)
    assert json.loads(json.dumps(entry.to_json()))["status"] == "failed"
    assert entry.reason == "board unreachable" and entry.value("p50_ms") is None


def test_metric_direction_decides_drops():
    acc, ref = Metric.of("accuracy", 0.95, "x"), Metric.of("accuracy", 0.97, "x")
    assert acc.drop(ref) == pytest.approx(0.02) and ref.better(acc) and not acc.better(ref)
    mae, mae_ref = Metric.of("mae", 3.0, "x"), Metric.of("mae", 2.0, "x")
    assert mae.drop(mae_ref) == pytest.approx(1.0) and not mae.higher_is_better


def test_status_follows_variants_checks_and_latency():
    ok = Report(variants=(Variant(name=REFERENCE, latency={"local": LatencyEntry(p50_ms=1.0)}),))
    assert ok.with_status().status == Status.OK
    failing = Check("int8", "int8_ops", status=CheckStatus.FAIL)
    assert ok.replace(checks=(failing,)).with_status().status == "failed"
    lost = Variant(name="int8", latency={"ssh://pi": LatencyEntry.failed("no route")})
    assert ok.replace(variants=(*ok.variants, lost)).with_status().status == "failed"


def test_primary_metric_follows_the_task():
    assert Report(task="regression").primary_metric() == "mae"
    assert Report(task="classification").primary_metric() == "accuracy"
