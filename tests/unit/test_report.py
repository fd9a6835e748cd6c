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
    render,
    render_html,
    render_markdown,
    render_table,
    write_report,
)
from edgeopt.report.plots import latency_marks, layer_labels, percent_limits, tensor_rows
from edgeopt.types import LatencyEntry, Report


def variant(report, name):
    return next(v for v in report["variants"] if v["name"] == name)


def test_table_has_one_row_per_variant_with_size_ratio_and_latency():
    text = render_table(make_report())
    lines = text.splitlines()
    for name in ("keras_float", "trained_float32", "float32", "int8"):
        assert any(line.startswith(name + " ") for line in lines), name
    int8, int8_latency = [line for line in lines if line.startswith("int8 ")]
    # 124020 / 11750 gzip bytes = 10.6x smaller than the trained float32 .tflite
    assert "10.6x" in int8 and "96.90%" in int8 and "80.0%" in int8
    # below 0.1 ms a latency reads in µs (report.json keeps ms)
    assert "local" in int8_latency and "21 µs" in int8_latency and "24.2 µs" in int8_latency
    assert "measured, ai_edge_litert 2.3.0" in text


def test_terminal_table_fits_100_columns_and_shows_the_deltas_of_the_markdown():
    report = make_report()
    for name in ("float32", "int8"):  # a second, long-named target must not widen the table
        entry = dict(variant(report, name)["latency"]["local"])
        variant(report, name)["latency"]["ssh://pi@raspberrypi-in-the-kitchen.local:2222"] = entry
    variant(report, "trained_float32")["note"] = "untrained reference: the zoo model ran 0 epochs " * 3
    text = render_table(report)
    assert max(len(line) for line in text.splitlines()) <= 100, text
    lines = text.splitlines()
    int8, int8_local, _ = [line for line in lines if line.startswith("int8 ")]
    md_int8 = next(line for line in render_markdown(report).splitlines() if "`int8`" in line)
    for delta in ("10.6x", "(-0.60 pp)"):  # size ratio and metric change, as in report.md
        assert delta in int8 and delta in md_int8
    assert "2.38x" in int8_local and "(2.38x)" in md_int8  # speed-up on the same target
    assert "untrained reference" in text


def test_failed_variant_and_target_render_as_rows_with_reason():
    report = make_report()
    report["status"] = "failed"
    int8 = report["variants"][3]
    int8.update(status="failed", reason="converter: op FOO not supported", metrics={}, size_bytes=None)
    report["variants"][2]["latency"]["local"] = {"provenance": "measured", "status": "failed",
                                                 "reason": "timed out", "p50_ms": None}
    report["checks"][0].update(status="fail", message="weight sparsity 0.500 (asked 0.80)")
    text = render_table(report)
    assert "int8: failed: converter: op FOO not supported" in text
    assert "float32 on local: failed: timed out" in text
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
    assert "4.4 deg (+0.3)" in text


def test_renderers_take_a_report_or_its_json():
    report = make_report()
    typed = Report.from_json(report)
    assert render_table(typed) == render_table(report)
    assert render_markdown(typed) == render_markdown(report)
    assert render(typed, "json") == render(report, "json") == json.dumps(report, indent=2) + "\n"
    with pytest.raises(InputError, match=r"report: variants\[3\].sparsity must be a number"):
        render_table({**report, "variants": [*report["variants"][:3], {"name": "int8", "sparsity": "x"}]})


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


def test_html_shows_the_deltas_and_names_the_latency_marks():
    page = rendered_html("classification")
    assert "96.90% (-0.60 pp)" in page and "21 µs/24.2 µs (2.38x)" in page


def test_html_survives_a_report_with_almost_nothing():
    report = {"schema_version": 1, "variants": [{"name": "int8", "status": "failed", "reason": "boom"}]}
    page = render_html(report)
    assert "failed: boom" in page
    assert "<figure" not in page


def test_per_tensor_plots_are_labelled_by_layer_with_float_and_int8_on_one_row():
    report = make_report()
    float_names = ["digits_cnn/conv1/Conv2D", "digits_cnn/dense/MatMul",
                   "digits_cnn/dense/Relu;digits_cnn/dense/BiasAdd"]
    int8_names = ["digits_cnn/quant_conv1/Conv2D;digits_cnn/quant_conv1/LastValueQuant/"
                  "FakeQuantWithMinMaxVarsPerChannel",
                  "digits_cnn/quant_dense/MatMul;digits_cnn/quant_dense/LastValueQuant/"
                  "FakeQuantWithMinMaxVarsPerChannel",
                  "digits_cnn/quant_dense/Relu;digits_cnn/quant_dense/BiasAdd"]
    for name, names in (("trained_float32", float_names), ("float32", float_names), ("int8", int8_names)):
        roles = ["weight", "weight", "bias"]
        variant(report, name)["inspect"]["per_tensor"] = {n: {"role": role, "sparsity": 0.5}
                                                          for n, role in zip(names, roles, strict=True)}
    labels, series = tensor_rows(Report.from_json(report), "sparsity")
    assert labels == ["conv1", "dense"]  # weights only, one row per layer, whatever the export
    assert series["int8"] == [0.5, 0.5]


@pytest.mark.parametrize("task", ["classification", "regression", "long_labels"])
def test_every_plot_keeps_its_texts_inside_the_figure_and_apart_without_a_layout_engine(task):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from edgeopt.report.plots import figures

    report = make_report("classification" if task == "long_labels" else task)
    if task == "long_labels":  # layer names as long as a real model's: the left margin must grow
        for v in report["variants"]:
            if "per_tensor" in v.get("inspect", {}):
                v["inspect"]["per_tensor"] = {f"model/block{i}_expand_conv_with_a_long_name/Conv2D":
                                              {"role": "weight", "sparsity": 0.8, "unique_values": 9}
                                              for i in range(12)}
    drawn = figures(Report.from_json(report))
    assert len(drawn) == 7
    for caption, fig in drawn:
        assert fig.get_layout_engine() is None
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        width, height = fig.bbox.width, fig.bbox.height
        content = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)  # pixels
        assert content.x0 >= -1 and content.y0 >= -1, caption
        assert content.x1 <= width + 1 and content.y1 <= height + 1, caption
        boxes = [ax.get_tightbbox(renderer) for ax in fig.axes if ax.axison]
        for i, a in enumerate(boxes):  # neighbouring axes: tick labels and titles do not overlap
            for b in boxes[i + 1:]:
                overlap_w = min(a.x1, b.x1) - max(a.x0, b.x0)
                overlap_h = min(a.y1, b.y1) - max(a.y0, b.y0)
                assert overlap_w <= 1 or overlap_h <= 1, caption
        frames = [ax.get_window_extent(renderer) for ax in fig.axes]
        assert sum(f.width * f.height for f in frames) > 0.35 * width * height, caption  # not squeezed
        if fig.legends:  # the figure legend sits below every axes' texts
            legend = fig.legends[0].get_window_extent(renderer)
            assert all(legend.y1 <= box.y0 + 1 for box in boxes), caption


def test_layer_labels_stay_unique():
    labels = layer_labels(["m/dense/MatMul", "m/dense/BiasAdd", "m/conv/Conv2D", "lonely_constant"])
    assert labels == {"m/dense/MatMul": "dense (MatMul)", "m/dense/BiasAdd": "dense (BiasAdd)",
                      "m/conv/Conv2D": "conv", "lonely_constant": "lonely_constant"}
    assert len(set(layer_labels(["m/a/X", "m/a/X;m/b/Y"]).values())) == 2


@pytest.mark.parametrize(
    ("values", "limits"),
    [([97.2, 97.5], (94.85, 99.85)),  # 0.3 points of accuracy must not fill the axis
     ([99.5, 100.0], (95.0, 100.0)), ([0.0, 1.0], (0.0, 5.0)), ([40.0, 90.0], (35.0, 95.0))],
)
def test_accuracy_axes_span_at_least_five_points_within_0_to_100(values, limits):
    assert percent_limits(values) == pytest.approx(limits)


def test_latency_marks_never_put_the_mean_beyond_the_whisker_and_give_std_its_unit():
    tail = LatencyEntry(runs=500, p50_ms=0.20, p90_ms=0.25, p99_ms=0.40, min_ms=0.18, mean_ms=0.9,
                        std_ms=0.55)
    marks = latency_marks("int8", tail)
    assert (marks.low, marks.high) == (0.18, 0.40)
    assert marks.mean is None and marks.mean_beyond  # the outliers past p99 pulled it there
    assert marks.label == "int8\n(n=500, std 0.55 ms, mean 0.9 ms, beyond p99)"
    calm = latency_marks("int8", LatencyEntry(p50_ms=0.2, p99_ms=0.4, min_ms=0.18, mean_ms=0.21))
    assert calm.mean == 0.21 and not calm.mean_beyond
    assert latency_marks("int8", LatencyEntry.failed("timeout")) is None


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
    assert load_report(tmp_path / "report.json").to_json() == report


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
        ('{"schema_version": 1, "variants": [{"name": "a", "metrics": {"accuracy": null}}]}',
         "variants[0].metrics.accuracy must be an object, got null"),
        ('{"schema_version": 1, "variants": [], "checks": [null]}', "checks[0] must be an object, got null"),
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


def test_latencies_below_a_tenth_of_a_millisecond_read_in_microseconds():
    from edgeopt.report.cells import fmt_ms, fmt_time

    assert fmt_ms(0.0452) == "45.2 µs" and fmt_ms(0.1) == "0.1" and fmt_ms(1.234) == "1.23"
    assert fmt_time(0.0452) == "45.2 µs" and fmt_time(2.5) == "2.5 ms" and fmt_time(None) == "-"
    report = make_report()
    assert json.loads(render(report, "json"))["variants"][3]["latency"]["local"]["p50_ms"] == 0.021  # ms kept
    assert "21 µs" in render_markdown(report)


def test_a_per_tensor_plot_with_nothing_to_show_is_left_out():
    from edgeopt.report.plots import figures

    report = make_report()
    for v in report["variants"]:  # nothing pruned, nothing clustered: 0 % everywhere, int8's many values
        for entry in v.get("inspect", {}).get("per_tensor", {}).values():
            entry.update(sparsity=0.0, unique_values=200, size=4000)
    captions = [caption for caption, _ in figures(Report.from_json(report))]
    assert "per-tensor sparsity" not in captions
    assert "per-tensor cluster counts (distinct values)" not in captions
    assert "training curves per stage" in captions
