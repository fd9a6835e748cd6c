"""compress judges its recipe's budgets with check's own judge: a variant that lost its accuracy (or
misses a size or latency budget) is failed in every rendering, with its figure and what to try."""

from __future__ import annotations

import pytest
from sample_report import make_report

from edgeopt.recipe import Budgets
from edgeopt.regress import check_budgets, judge_budgets
from edgeopt.report import as_report, render_html, render_markdown, render_table


def _with(task: str, budgets: dict, value: float | None = None):
    data = make_report(task)
    data["recipe"]["budgets"] = budgets
    if value is not None:
        metric = "accuracy" if task == "classification" else "mae"
        next(v for v in data["variants"] if v["name"] == "int8")["metrics"][metric]["value"] = value
    return as_report(data, "report")


def test_an_int8_variant_that_lost_its_accuracy_is_failed_everywhere():
    report = judge_budgets(_with("classification", {"max_accuracy_drop": 0.01}, value=0.28))
    int8 = next(v for v in report.variants if v.name == "int8")
    assert not int8.ok and not report.ok
    assert int8.reason.startswith("over budget: accuracy drop") and "prune-qat-int8" in int8.reason
    assert int8.metric("accuracy").value == 0.28  # the figure stays beside the failure
    assert "int8: over budget" in "; ".join(report.failures())
    for rendering in (render_table(report), render_markdown(report), render_html(report)):
        assert "over budget" in rendering
    assert report.to_json()["status"] == "failed"


def test_within_the_budget_nothing_changes():
    report = _with("classification", {"max_accuracy_drop": 0.5})
    assert judge_budgets(report) == report


def test_a_report_without_budgets_is_left_as_it_is():
    report = as_report(make_report(), "report")
    assert judge_budgets(report) is report


@pytest.mark.parametrize("increase, ok", [(0.03, True), (0.08, False)])
def test_regression_is_judged_by_the_relative_error_increase(increase, ok):
    data = make_report("regression")
    reference = next(v for v in data["variants"] if v["name"] == "trained_float32")["metrics"]["mae"]["value"]
    report = judge_budgets(_with("regression", {"max_accuracy_drop": 0.01, "max_error_increase": 0.05},
                                 value=reference * (1 + increase)))
    int8 = next(v for v in report.variants if v.name == "int8")
    assert int8.ok is ok
    if not ok:
        assert "budget +5.0%" in int8.reason


def test_check_and_compress_agree_on_the_verdict():
    report = _with("classification", {"max_accuracy_drop": 0.01}, value=0.28)
    assert not check_budgets(report).passed
    assert not judge_budgets(report).ok


def test_max_error_increase_must_not_be_negative():
    with pytest.raises(ValueError):
        Budgets(max_error_increase=-0.1)


def test_a_budget_no_repair_met_says_what_was_tried():
    data = make_report("classification")
    data["recipe"]["budgets"] = {"max_accuracy_drop": 0.01}
    int8 = next(v for v in data["variants"] if v["name"] == "int8")
    int8["metrics"]["accuracy"]["value"] = 0.3
    int8["repair"] = {"attempts": [{"name": "calibration", "validation_metric": 0.31},
                                   {"name": "equalised", "validation_metric": 0.35}], "kept": None}
    report = judge_budgets(as_report(data, "report"))
    reason = next(v for v in report.variants if v.name == "int8").reason
    assert "no repair met the budget (calibration: 0.31, equalised: 0.35" in reason


def test_budgets_allow_by_the_metrics_direction():
    budgets = Budgets(max_accuracy_drop=0.01, max_error_increase=0.05)
    assert budgets.allows(0.95, 0.945, True) is True and budgets.allows(0.95, 0.93, True) is False
    assert budgets.allows(10.0, 10.4, False) is True and budgets.allows(10.0, 10.6, False) is False
    assert Budgets(max_accuracy_drop=0.5).allows(10.0, 10.4, False) is True  # absolute MAE increase
    assert Budgets(max_size_kb=3).allows(0.9, 0.1, True) is None  # no accuracy budget at all
