"""Every metric in score (top-k, RMSE), binary heads, output names from the data, and how reports and
the gate take the extra metrics. No TensorFlow."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from sample_report import make_report

from edgeopt.data import CLASSIFICATION, REGRESSION, Dataset, check_outputs, load_source
from edgeopt.errors import InputError
from edgeopt.evaluate import TOP_K, binary_output, score, tflite_head
from edgeopt.regress import NOTE, PASS, Tolerances, compare
from edgeopt.regress import REGRESSION as REGRESSED
from edgeopt.report import render_html, render_markdown, render_table
from edgeopt.report.plots import output_names
from edgeopt.sources import DataSpec
from edgeopt.types import Report

BASELINES = sorted(Path(__file__).resolve().parents[2].glob("models/*/baseline.json"))


def dataset(task: str, y_test: np.ndarray, **kw) -> Dataset:
    x = np.zeros((len(y_test), 3), dtype=np.float32)
    return Dataset("mine", task, x, y_test, x, y_test, **kw)


# -- score: every metric, for every variant ------------------------------------------------------------


def test_score_gives_top_k_accuracy_beyond_five_outputs_with_its_k():
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    logits = np.tile(np.arange(8, dtype=np.float32), (8, 1))  # always ranks 7, 6, 5, 4, 3 first
    metrics, details = score(logits, dataset(CLASSIFICATION, y), "measured: test")
    assert metrics["accuracy"]["value"] == pytest.approx(1 / 8)
    assert metrics["top_k_accuracy"] == {"value": pytest.approx(5 / 8), "unit": "fraction",
                                         "higher_is_better": True, "provenance": "measured: test",
                                         "k": TOP_K}
    assert len(details["confusion_matrix"]) == 8


def test_score_gives_no_top_k_at_five_outputs_or_fewer():
    metrics, _ = score(np.eye(5, dtype=np.float32), dataset(CLASSIFICATION, np.arange(5)), "p")
    assert set(metrics) == {"accuracy"}


def test_score_gives_mae_and_rmse_in_the_datas_unit():
    y = np.array([[0.0], [0.0], [0.0], [0.0]], dtype=np.float32)
    predictions = np.array([[1.0], [-1.0], [3.0], [-3.0]], dtype=np.float32)
    metrics, _ = score(predictions, dataset(REGRESSION, y, unit="degrees"), "p")
    assert metrics["mae"]["value"] == pytest.approx(2.0) and metrics["mae"]["higher_is_better"] is False
    assert metrics["rmse"]["value"] == pytest.approx(np.sqrt(5.0)) and metrics["rmse"]["unit"] == "degrees"
    assert metrics["rmse"]["higher_is_better"] is False


# -- binary: one output unit ---------------------------------------------------------------------------


def test_a_sigmoid_head_is_class_1_above_one_half_with_a_two_by_two_confusion_matrix():
    y = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([[0.1], [0.6], [0.7], [0.4], [0.9]], dtype=np.float32)
    metrics, details = score(probabilities, dataset(CLASSIFICATION, y), "p", head="sigmoid")
    assert metrics["accuracy"]["value"] == pytest.approx(3 / 5)
    assert details["confusion_matrix"] == [[1, 1], [1, 2]]
    assert details["binary"] == {"output": "probability", "threshold": 0.5, "decided_by": "sigmoid head"}


def test_a_logit_head_is_class_1_above_zero():
    y = np.array([0, 0, 1, 1])
    logits = np.array([[-2.0], [0.3], [0.2], [4.0]], dtype=np.float32)  # 0.2 and 0.3: class 1, not 0
    metrics, details = score(logits, dataset(CLASSIFICATION, y), "p", head="linear")
    assert metrics["accuracy"]["value"] == pytest.approx(3 / 4)
    assert details["binary"]["output"] == "logit" and details["binary"]["threshold"] == 0.0


def test_without_the_head_the_output_range_decides_and_says_so():
    assert binary_output(None, np.array([[0.0], [0.4], [1.0]])) == ("probability", "output range")
    assert binary_output(None, np.array([[0.4], [-0.1]])) == ("logit", "output range")
    assert binary_output("sigmoid", np.array([[5.0]]))[0] == "probability"  # the head wins


def test_a_tflite_head_is_read_from_its_last_computing_op():
    def ops(*names):
        return {"op_list": [{"op": n, "subgraph": 0} for n in names]}

    assert tflite_head(ops("QUANTIZE", "FULLY_CONNECTED", "LOGISTIC", "DEQUANTIZE")) == "sigmoid"
    assert tflite_head(ops("FULLY_CONNECTED", "RESHAPE")) == "linear"
    assert tflite_head(ops("FULLY_CONNECTED", "SOFTMAX")) == "softmax"


def test_labels_beyond_a_binary_head_are_refused_in_one_line_naming_the_fix():
    data = dataset(CLASSIFICATION, np.array([0, 1, 2]))
    with pytest.raises(InputError) as caught:
        score(np.zeros((3, 1), dtype=np.float32), data, "p", head="sigmoid")
    message = str(caught.value)
    assert "\n" not in message and "one output unit" in message and "0..2" in message
    assert "give 0/1 labels" in message and "3 outputs" in message
    assert caught.value.exit_code == 2


def test_a_regression_target_count_that_differs_from_the_outputs_is_refused():
    with pytest.raises(InputError, match="2 regression target"):
        check_outputs(dataset(REGRESSION, np.zeros((4, 2), dtype=np.float32)), 3, "the model")


# -- data: task binary, bool labels, names of targets --------------------------------------------------


def test_task_binary_reads_float_labels_as_classes_and_stratifies(tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.savez(tmp_path / "b.npz", x=x, y=(np.arange(20) % 2).astype(np.float32)[:, None])
    data = load_source(DataSpec(path=str(tmp_path / "b.npz"), task="binary"))
    assert data.task == CLASSIFICATION and data.y_train.dtype == np.int64 and data.output_dim == 2
    assert data.preprocessing["split"]["stratified"] is True and set(data.y_test) == {0, 1}


def test_task_binary_refuses_a_label_other_than_0_and_1_in_one_line(tmp_path):
    np.savez(tmp_path / "b.npz", x_train=np.zeros((4, 2)), y_train=np.array([0, 1, 2, 1]),
             x_test=np.zeros((2, 2)), y_test=np.array([0, 1]))
    with pytest.raises(InputError) as caught:
        load_source(DataSpec(path=str(tmp_path / "b.npz"), task="binary"))
    message = str(caught.value)
    assert "\n" not in message and "label 2" in message and "give labels 0 and 1" in message


def test_bool_labels_are_two_classes(tmp_path):
    np.savez(tmp_path / "b.npz", x=np.zeros((10, 2)), y=np.arange(10) % 3 == 0)
    data = load_source(DataSpec(path=str(tmp_path / "b.npz")))
    assert data.task == CLASSIFICATION and data.output_dim == 2


def test_a_csv_names_its_targets_by_their_label_columns(tmp_path):
    rows = ["a,b,speed"] + [f"{i},{i % 3},{0.5 * i}" for i in range(20)]
    (tmp_path / "t.csv").write_text("\n".join(rows))
    data = load_source(DataSpec(path=str(tmp_path / "t.csv"), label="speed", task="regression"))
    assert data.describe()["output_names"] == ["speed"]
    rows = ["a,u,v"] + [f"{i},{0.5 * i},{-0.25 * i}" for i in range(20)]
    (tmp_path / "two.csv").write_text("\n".join(rows))
    data = load_source(DataSpec(path=str(tmp_path / "two.csv"), label=["u", "v"]))
    assert data.task == REGRESSION and data.y_train.shape[1] == 2 and data.output_names == ("u", "v")
    assert data.preprocessing["features"] == ["a"]


def test_several_label_columns_are_refused_for_classes(tmp_path):
    (tmp_path / "t.csv").write_text("a,u,v\n1,0,1\n2,1,0\n")
    with pytest.raises(InputError, match="regression targets"):
        load_source(DataSpec(path=str(tmp_path / "t.csv"), label=["u", "v"], task="classification"))


def test_npz_regression_targets_have_no_names_in_the_data(tmp_path):
    np.savez(tmp_path / "r.npz", x=np.zeros((10, 2)), y=np.ones((10, 2), dtype=np.float32))
    assert "output_names" not in load_source(DataSpec(path=str(tmp_path / "r.npz"))).describe()


# -- plots: names from the report, never yaw/pitch for someone else's data -----------------------------


def scatter_report(data_names=None, evaluation_names=None, recipe_data="mine.npz") -> Report:
    report = make_report("regression")
    report["recipe"]["data"] = recipe_data
    if data_names:
        report["data"]["output_names"] = data_names
    for v in report["variants"]:
        v["evaluation"] = {"scatter": {"true": [[1.0, 2.0]], "pred": [[1.5, 2.5]]}}
        if evaluation_names:
            v["evaluation"]["output_names"] = evaluation_names
    return Report.from_json(report)


def test_scatter_names_come_from_the_data_then_the_model_never_yaw_pitch_for_a_users_data():
    def names(report):
        return output_names(report, [v for v in report.variants if v.is_tflite], 2)

    assert names(scatter_report(data_names=["u", "v"], evaluation_names=["pose[0]", "pose[1]"])) == ["u", "v"]
    assert names(scatter_report(evaluation_names=["pose[0]", "pose[1]"])) == ["pose[0]", "pose[1]"]
    assert names(scatter_report()) == ["output 0", "output 1"]
    assert names(scatter_report(data_names=["yaw", "pitch"], recipe_data="facepose")) == ["yaw", "pitch"]
    assert names(scatter_report(recipe_data="facepose")) == ["yaw", "pitch"]  # a report from before names


# -- renderers -----------------------------------------------------------------------------------------


def with_extra_metrics(report: dict) -> dict:
    report = copy.deepcopy(report)
    for v in report["variants"]:
        v["metrics"]["top_k_accuracy"] = {"value": 0.995, "unit": "fraction", "higher_is_better": True,
                                          "provenance": "p", "k": 5}
    return report


def test_markdown_and_html_show_the_extra_metrics_with_their_deltas():
    report = with_extra_metrics(make_report())
    markdown = render_markdown(report)
    assert "| top-5 accuracy |" in markdown and "99.50% (+0.00 pp)" in markdown
    assert "top-5 accuracy" in render_html(report)


def test_the_terminal_table_shows_extra_metrics_only_when_it_still_fits_100_columns():
    wide = with_extra_metrics(make_report())  # accuracy and top-5 with their deltas: too wide
    assert render_table(wide) == render_table(make_report())
    narrow = make_report("regression")  # unit-less targets, as from a CSV: MAE and RMSE fit side by side
    for v in narrow["variants"]:
        v["metrics"]["mae"]["unit"] = ""
        v["metrics"]["rmse"] = {**v["metrics"]["mae"], "value": v["metrics"]["mae"]["value"] * 1.3}
    lines = render_table(narrow).splitlines()
    assert "rmse" in lines[1] and all(len(line) <= 100 for line in lines)


# -- the gate and the committed baselines --------------------------------------------------------------


def test_an_extra_metric_absent_from_the_baseline_does_not_fail_the_check():
    baseline = make_report()
    result = compare(with_extra_metrics(baseline), baseline)
    assert result.passed, result.to_table()


def test_an_extra_metric_is_a_note_unless_the_tolerances_name_it_while_accuracy_is_gated_as_before():
    baseline = with_extra_metrics(make_report())
    report = copy.deepcopy(baseline)
    int8 = next(v for v in report["variants"] if v["name"] == "int8")
    int8["metrics"]["top_k_accuracy"]["value"] = 0.90  # far worse
    found = {f.check: f.status for f in compare(report, baseline).findings if f.variant == "int8"}
    assert found["top_k_accuracy"] == NOTE and found["accuracy"] == PASS
    gated = compare(report, baseline, Tolerances(metric_abs={"accuracy": 0.01, "top_k_accuracy": 0.02}))
    assert not gated.passed
    int8["metrics"]["accuracy"]["value"] -= 0.05
    found = {f.check: f.status for f in compare(report, baseline).findings if f.variant == "int8"}
    assert found["accuracy"] == REGRESSED


@pytest.mark.parametrize("path", BASELINES, ids=lambda p: p.parent.name)
def test_committed_baselines_round_trip_and_pass_against_a_report_with_the_extra_metrics(path):
    document = json.loads(path.read_text())
    assert Report.from_json(document).to_json() == document
    report = copy.deepcopy(document)
    extra = ("rmse", 31.0, "degrees", False) if report["task"] == "regression" else \
        ("top_k_accuracy", 0.999, "fraction", True)
    if any(extra[0] in v["metrics"] for v in document["variants"]):
        pytest.skip(f"{path.parent.name}'s baseline already records {extra[0]}: nothing extra to add")
    for v in report["variants"]:
        v["metrics"][extra[0]] = {"value": extra[1], "unit": extra[2], "higher_is_better": extra[3],
                                  "provenance": "p"}
    result = compare(report, document)
    metric_findings = [f for f in result.findings if f.check in ("accuracy", "mae")]
    assert metric_findings and all(f.status == PASS for f in metric_findings)
    assert not any(f.check in ("rmse", "top_k_accuracy") for f in result.findings)
    assert result.passed, result.to_table()
