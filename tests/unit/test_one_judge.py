"""One judge: `check`, `compress` and `tune` judge budgets with edgeopt.budgets.judge and so give the
same verdict for the same figures; every budget tune knows can be written in a recipe. No TensorFlow."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sample_report import make_report

from edgeopt.budgets import Budgets, Figures, Verdict, judge
from edgeopt.cli import cli
from edgeopt.errors import InputError, RecipeError
from edgeopt.recipe import parse_recipe
from edgeopt.regress import baseline_json, check_budgets, judge_budgets
from edgeopt.report import as_report
from edgeopt.tune.budgets import figures_of, make_goal
from edgeopt.tune.budgets import judge as tune_judge
from edgeopt.tune.study import TuneOptions, setup

# sample_report's int8: 38,900 B on disk (37.99 KB), 11,750 B gzipped (11.47 KB), p50 0.021 ms on
# local; accuracy 0.969 against the reference's 0.975 (drop 0.006), or MAE 4.4 against 4.1 (+7.3 %).
CASES = [
    ("classification", {"max_gzip_kb": 12}, True),
    ("classification", {"max_gzip_kb": 11}, False),
    ("classification", {"max_size_kb": 38}, True),
    ("classification", {"max_size_kb": 37}, False),
    ("classification", {"max_accuracy_drop": 0.01}, True),
    ("classification", {"max_accuracy_drop": 0.005}, False),
    ("classification", {"max_error_increase": 0.0}, True),  # judges regression only
    ("classification", {"max_latency_ms": {"local": 0.03}}, True),
    ("classification", {"max_latency_ms": {"local": 0.02}}, False),
    ("classification", {"max_gzip_kb": 12, "max_accuracy_drop": 0.005}, False),
    ("regression", {"max_error_increase": 0.1}, True),
    ("regression", {"max_error_increase": 0.05}, False),
    ("regression", {"max_error_increase": 0.1, "max_accuracy_drop": 0.01}, True),  # relative judges MAE
    ("regression", {"max_accuracy_drop": 0.5}, True),  # absolute MAE increase 0.3
    ("regression", {"max_accuracy_drop": 0.2}, False),
    ("regression", {"max_gzip_kb": 11, "max_error_increase": 0.1}, False),
]


def _report(task: str, budgets: dict):
    data = make_report(task)
    data["recipe"]["budgets"] = {**budgets, "variants": ["int8"]}
    return as_report(data, "report")


@pytest.mark.parametrize("task, budgets, ok", CASES)
def test_check_compress_and_tune_give_the_same_verdict(task, budgets, ok):
    report = _report(task, budgets)
    assert check_budgets(report).passed is ok  # edgeopt check, from the report alone
    assert judge_budgets(report).variant("int8").ok is ok  # edgeopt compress
    goal = make_goal("size", Budgets.model_validate(budgets), ["local"])  # edgeopt tune
    assert tune_judge(goal, figures_of(report, "int8"))[0] is ok


def test_check_and_tune_measure_the_same_figures():
    budgets = {"max_gzip_kb": 11, "max_error_increase": 0.05, "max_latency_ms": {"local": 0.02}}
    report = _report("regression", budgets)
    findings = {f.check: f for f in check_budgets(report).findings if f.check.startswith("budget:")}
    verdicts = {v.name: v for v in make_goal("size", Budgets.model_validate(budgets), ["local"]).verdicts(
        figures_of(report, "int8"))}
    assert findings["budget:gzip"].measured == pytest.approx(verdicts["max_gzip_kb"].measured)
    assert findings["budget:gzip"].measured == pytest.approx(11_750 / 1024)
    increase = verdicts["max_error_increase"].measured
    assert findings["budget:error_increase"].measured == pytest.approx(increase, abs=1e-6)  # 6 places
    assert findings["budget:latency"].measured == pytest.approx(verdicts["max_latency_ms"].measured)
    assert all(not v.ok and v.violation > 0 for v in verdicts.values())


def test_the_judge_returns_name_limit_measured_violation_and_ok():
    budgets = Budgets(max_gzip_kb=12, max_accuracy_drop=0.01, max_error_increase=0.05,
                      max_latency_ms={"local": 1.0})
    figures = Figures(gzip_bytes=13 * 1024, value=0.97, reference=0.975, higher_is_better=True,
                      latency_ms={})
    verdicts = judge(budgets, figures)
    assert [v.name for v in verdicts] == ["max_accuracy_drop", "max_gzip_kb", "max_latency_ms"]
    drop, gzip, latency = verdicts
    assert drop.ok and drop.measured == pytest.approx(0.005) and drop.violation <= 0
    assert not gzip.ok and gzip.violation == pytest.approx(1 / 12) and gzip.label == "max_gzip_kb=12"
    assert latency == Verdict("max_latency_ms", 1.0, None, "local") and not latency.ok
    assert latency.violation is None and latency.label == "max_latency_ms=1@local"
    assert judge(Budgets(max_gzip_kb=1, variants=["int8"]), Figures(gzip_bytes=1e6, variant="float32")) == ()


def test_a_recipe_can_hold_every_budget_tune_knows():
    from edgeopt.tune.budgets import NAMES

    recipe = parse_recipe({"model": "digits_cnn", "data": "digits", "budgets": {
        "max_gzip_kb": 12, "max_size_kb": 40, "max_accuracy_drop": 0.01, "max_error_increase": 0.05,
        "max_latency_ms": {"local": 1.0}}})
    assert {limit.name for limit in recipe.budgets.limits()} == set(NAMES)
    with pytest.raises(RecipeError, match="budgets.max_gzip_kb: input should be greater than 0"):
        parse_recipe({"model": "digits_cnn", "data": "digits", "budgets": {"max_gzip_kb": 0}})


def test_a_recipe_with_max_gzip_kb_fails_check_when_exceeded(tmp_path):
    report = make_report()
    (tmp_path / "baseline.json").write_text(baseline_json(report))
    report["recipe"]["budgets"] = {"max_gzip_kb": 11}  # int8 is 11.47 KB gzipped
    (tmp_path / "report.json").write_text(json.dumps(report))
    result = CliRunner().invoke(cli, ["check", str(tmp_path / "report.json"),
                                      "--baseline", str(tmp_path / "baseline.json")])
    assert result.exit_code == 1, result.output
    assert "gzip size 11.47 KB (budget 11 KB)" in result.output
    report["recipe"]["budgets"] = {"max_gzip_kb": 31}  # float32 30.47 KB, int8 11.47 KB: passes
    (tmp_path / "report.json").write_text(json.dumps(report))
    result = CliRunner().invoke(cli, ["check", str(tmp_path / "report.json"),
                                      "--baseline", str(tmp_path / "baseline.json")])
    assert result.exit_code == 0, result.output


def test_compress_fails_a_variant_over_its_gzip_budget_with_what_to_try():
    report = judge_budgets(_report("classification", {"max_gzip_kb": 11}))
    int8 = report.variant("int8")
    assert not int8.ok and int8.reason.startswith("over budget: gzip size 11.47 KB (budget 11 KB)")
    assert "prune or cluster further" in int8.reason


def test_the_early_stop_is_the_judges_size_verdict():
    goal = make_goal("size", Budgets(max_gzip_kb=12, max_size_kb=100, max_error_increase=0.05), ["local"])
    assert goal.early_stop(13 * 1024, 40_000) == "not benchmarked: 13.00 KB > max_gzip_kb=12"
    assert goal.early_stop(11 * 1024, 101 * 1024) == "not benchmarked: 101.00 KB > max_size_kb=100"
    assert goal.early_stop(11 * 1024, 40_000) is None


def _tune_recipe(tmp_path, budgets: str) -> TuneOptions:
    path = tmp_path / "tune.yaml"
    path.write_text("model: digits_cnn\ndata: digits\ntrain: {epochs: 1}\n"
                    "stages: [{kind: prune, target_sparsity: {range: [0.5, 0.9]}}]\nexport: [float32, int8]\n"
                    f"budgets: {budgets}\n")
    return TuneOptions(recipe=path, study=tmp_path / "study")


def test_tune_takes_the_recipes_budgets_typed_with_max_error_increase_and_max_gzip_kb(tmp_path):
    options = _tune_recipe(tmp_path, "{max_gzip_kb: 12, max_accuracy_drop: 0.01, max_error_increase: 0.05}")
    goal = setup(options).goal
    assert goal.spec == Budgets(max_gzip_kb=12, max_accuracy_drop=0.01, max_error_increase=0.05)
    assert [b.label for b in goal.budgets] == ["max_accuracy_drop=0.01", "max_error_increase=0.05",
                                               "max_gzip_kb=12"]
    regression = figures_of(_report("regression", {}), "int8")  # MAE +7.3 %: over max_error_increase
    feasible, reasons, violations = tune_judge(goal, regression)
    assert not feasible and reasons == ["max_error_increase=0.05 missed: 0.07317"]
    assert set(violations) == {"max_error_increase=0.05", "max_gzip_kb=12"}
    classifier = figures_of(_report("classification", {}), "int8")
    assert [b.name for b in goal.limits_for(classifier)] == ["max_accuracy_drop", "max_gzip_kb"]
    assert tune_judge(goal, classifier)[0]
    flags = setup(TuneOptions(recipe=options.recipe, study=options.study,
                              budgets=("max_gzip_kb=10", "max_error_increase=0.1"))).goal
    assert flags.spec == Budgets(max_gzip_kb=10, max_error_increase=0.1)  # --budget replaces the recipe's


@pytest.mark.parametrize("budgets, message", [
    ("{max_gzip_kb: 12, variants: [float32]}", "tune's candidate can be int8: add it to budgets.variants"),
    ("{max_latency_ms: {estimate:pi4: 2}}", "max_latency_ms target 'estimate:pi4' is not in the recipe's"),
])
def test_tune_refuses_recipe_budgets_it_could_not_judge(tmp_path, budgets, message):
    with pytest.raises(InputError, match=message):
        setup(_tune_recipe(tmp_path, budgets))
