"""Report renderings: terminal table, Markdown, HTML, loading and writing. No TensorFlow."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from sample_report import make_report, rendered_html

from edgeopt.errors import InputError
from edgeopt.report import (
    load_report,
    pareto_front,
    parse_report,
    render_html,
    render_markdown,
    render_table,
    write_report,
)


def test_table_has_one_row_per_variant_with_size_ratio_and_latency():
    text = render_table(make_report())
    lines = text.splitlines()
    for name in ("keras_float", "trained_float32", "float32", "int8"):
        assert any(line.startswith(name + " ") for line in lines), name
    int8 = next(line for line in lines if line.startswith("int8 "))
    # 124020 / 11750 gzip bytes = 10.6x smaller than the trained float32 .tflite
    assert "10.6x" in int8 and "96.90%" in int8 and "0.021/0.0242" in int8 and "80.0%" in int8
    assert "local p50/p90 ms" in text
    assert "measured, ai_edge_litert 2.3.0" in text


def test_failed_variant_and_target_render_as_rows_with_reason():
    report = make_report()
    report["status"] = "failed"
    int8 = report["variants"][3]
    int8.update(status="failed", reason="converter: op FOO not supported", metrics={}, size_bytes=None)
    report["variants"][2]["latency"]["local"] = {"provenance": "measured", "status": "failed",
                                                 "reason": "timed out", "p50_ms": None}
    report["checks"][0].update(status="fail", message="weight sparsity 0.500 (asked 0.80)")
    text = render_table(report)
    assert "failed: converter: op FOO not supported" in text
    assert "FAILED check int8/sparsity: weight sparsity 0.500" in text
    md = render_markdown(report)
    assert md.startswith("### ❌")
    assert "| ❌ | `int8` |" in md
    assert "weight sparsity 0.500" in md


def test_markdown_shows_deltas_against_trained_float32():
    md = render_markdown(make_report())
    int8_row = next(line for line in md.splitlines() if "`int8`" in line)
    assert "(-0.60 pp)" in int8_row and "(2.38x)" in int8_row and "10.6x" in int8_row
    assert md.count("\n|---") == 1, "exactly one table"


def test_regression_report_shows_mae_with_unit():
    text = render_table(make_report("regression"))
    assert "mae" in text.splitlines()[1]
    assert "4.4 deg" in text


def test_html_is_self_contained_with_every_plot():
    page = rendered_html("classification")
    assert "http://" not in page and "https://" not in page, "must read offline"
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert captions == [
        "accuracy vs size, Pareto front marked",
        "accuracy vs latency on local, Pareto front marked",
        "latency distribution on local",
        "per-tensor sparsity",
        "per-tensor cluster counts (distinct values)",
        "training curves per stage",
        "confusion matrices (test split, LiteRT)",
    ]
    assert page.count("src='data:image/png;base64,") == len(captions)


def test_html_regression_has_scatter_instead_of_confusion():
    page = rendered_html("regression")
    assert "predicted vs true (test split, LiteRT)" in page
    assert "confusion" not in page


def test_html_survives_a_report_with_almost_nothing():
    report = {"schema_version": 1, "variants": [{"name": "int8", "status": "failed", "reason": "boom"}]}
    page = render_html(report)
    assert "failed: boom" in page
    assert "<figure" not in page


def test_pareto_front_keeps_only_undominated_points():
    # (size, accuracy): the 2nd is beaten by the 1st (smaller and more accurate)
    points = [(10.0, 0.97), (20.0, 0.96), (30.0, 0.99), (5.0, 0.90)]
    assert pareto_front(points, higher_is_better=True) == [3, 0, 2]
    # lower-is-better metric (MAE)
    assert pareto_front([(10.0, 4.0), (20.0, 5.0), (30.0, 3.0)], higher_is_better=False) == [0, 2]


def test_write_report_writes_all_renderings(tmp_path):
    report = make_report()
    write_report(report, tmp_path, formats=("json", "md", "table"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md", "report.txt"]
    assert load_report(tmp_path / "report.json") == report


def test_write_report_refuses_nan_and_leaves_nothing(tmp_path):
    report = make_report()
    report["variants"][3]["metrics"]["accuracy"]["value"] = float("nan")
    with pytest.raises(ValueError):
        write_report(report, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid report JSON"),
        ('{"schema_version": 1, "variants": [{"name": "a", "sparsity": NaN}]}', "NaN is not valid"),
        ("[1, 2]", "must be a JSON object"),
        ('{"schema_version": 2, "variants": []}', "schema_version 2 is not supported"),
        ('{"schema_version": 1}', "'variants' must be a list"),
        ('{"schema_version": 1, "variants": [{"name": "a"}, {"name": "a"}]}', "variant names repeat: a"),
    ],
)
def test_bad_report_is_a_one_line_input_error(text, fragment):
    with pytest.raises(InputError) as info:
        parse_report(text, "r.json")
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_load_report_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_report(tmp_path / "nope.json")


def test_report_module_does_not_import_tensorflow():
    code = ("import sys, edgeopt.report, edgeopt.regress, edgeopt.progress; "
            "print('tensorflow' in sys.modules or 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_json_round_trip_is_stable():
    report = make_report()
    assert json.loads(json.dumps(report)) == report
