"""Budgets are one typed model: latency budgets keyed by (target, threads), validated once, written back
as the user spelled them; tune judges a budget at N threads on the N-thread figure; every caller hands
the one judge typed budgets. No TensorFlow."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from pydantic import ValidationError
from sample_report import _latency, make_report

import edgeopt.budgets
import edgeopt.regress
import edgeopt.tune.budgets
from edgeopt.budgets import Budgets, Figures, judge
from edgeopt.errors import InputError
from edgeopt.recipe import dump_recipe, parse_recipe
from edgeopt.regress import FAIL, PASS, check, check_budgets, judge_budgets
from edgeopt.report import as_report
from edgeopt.report.cells import fmt_time
from edgeopt.tune.budgets import figures_of, make_goal, parse_budgets, trial_figures
from edgeopt.tune.budgets import judge as tune_judge
from edgeopt.types import LatencyKey
from edgeopt.validation import describe

# sample_report's int8 measures p50 0.021 ms on local (1 thread); the tests add 0.009 ms at 2 threads.
ONE, TWO = 0.021, 0.009


def _report(budgets: dict | None = None):
    data = make_report()
    data["variants"][3]["latency"]["local#2t"] = _latency(TWO, threads=2)
    data["recipe"]["budgets"] = budgets
    return as_report(data, "report")


def _refuse_parsing(monkeypatch):
    def parse(text):
        raise AssertionError(f"latency key {text!r} parsed again")
    monkeypatch.setattr(LatencyKey, "parse", parse)


# -- parsed once, written back as spelled ------------------------------------------------------------


def test_latency_budgets_are_typed_once_and_judged_without_parsing_again(monkeypatch):
    budgets = Budgets.model_validate({"max_latency_ms": {"local": 2, "local#2t": 1}})
    keys = list(budgets.max_latency_ms)
    assert all(type(key) is LatencyKey for key in keys)
    assert [(key.target, key.threads) for key in keys] == [("local", None), ("local", 2)]
    _refuse_parsing(monkeypatch)  # from here on, a budget key spelled as text would fail the test
    limits = [limit for limit in budgets.limits() if limit.name == "max_latency_ms"]
    assert [limit.target for limit in limits] == keys and all(a is b for a, b in zip(
        [limit.target for limit in limits], keys, strict=True))
    figures = Figures(latency_ms={LatencyKey("local"): 3.0, LatencyKey("local", 2): 0.5})
    assert [(str(v.target), v.ok) for v in judge(budgets, figures)] == [("local", False), ("local#2t", True)]


def test_a_recipes_latency_budgets_are_written_back_as_the_user_spelled_them():
    text = ("model: digits_cnn\ndata: digits\nbenchmark: {threads: [1, 2]}\n"
            "budgets: {max_gzip_kb: 12, max_latency_ms: {local: 2, local#2t: 1.5}}\n")
    recipe = parse_recipe(yaml.safe_load(text))
    assert recipe.budgets.max_latency_ms == {LatencyKey("local"): 2.0, LatencyKey("local", 2): 1.5}
    spelled = {"local": 2.0, "local#2t": 1.5}
    written = recipe.resolved()["budgets"]["max_latency_ms"]
    assert written == spelled and all(type(k) is str for k in written)
    assert json.loads(json.dumps(recipe.resolved()))["budgets"]["max_latency_ms"] == spelled
    assert yaml.safe_load(dump_recipe(recipe))["budgets"]["max_latency_ms"] == spelled
    assert json.loads(recipe.budgets.model_dump_json())["max_latency_ms"] == spelled
    assert Budgets.model_validate(recipe.budgets.model_dump(mode="json")) == recipe.budgets  # round trip
    changed = recipe.with_changes({"budgets.max_latency_ms.local": 0.5})  # --set reaches a key as spelled
    assert changed.budgets.max_latency_ms == {LatencyKey("local"): 0.5, LatencyKey("local", 2): 1.5}


@pytest.mark.parametrize("latency, message", [
    ({"local#four": 2}, r"^max_latency_ms\.local#four\b.*: latency key 'local#four': expected TARGET or "
                        r"TARGET#Nt"),
    ({3: 2}, r"^max_latency_ms\[3\].*: a latency key is a target \(or TARGET#Nt\), got 3"),
    ({"local#2t": 0}, r"max_latency_ms\.local#2t must be > 0"),
    ({"local#2t": float("nan")}, r"^max_latency_ms\.local#2t: input should be a finite number"),
    ([1], r"^max_latency_ms: input should be a valid dictionary"),
])
def test_a_bad_latency_budget_is_refused_naming_the_field(latency, message):
    with pytest.raises(ValidationError) as caught:
        Budgets.model_validate({"max_latency_ms": latency})
    assert re.search(message, describe(caught.value)), describe(caught.value)


# -- tune: typed budgets, figures keyed by (target, threads) -----------------------------------------


def test_tune_budget_flags_build_typed_keys_and_refuse_a_thread_count_not_run(monkeypatch):
    budgets = parse_budgets(["max_latency_ms=1@local#2t", "max_latency_ms=2", "max_gzip_kb=12"], ["local"],
                            threads=[1, 2])
    assert [(type(k), k.target, k.threads) for k in budgets.max_latency_ms] == [
        (LatencyKey, "local", 2), (LatencyKey, "local", None)]
    assert budgets == Budgets(max_gzip_kb=12, max_latency_ms={"local#2t": 1, "local": 2})
    with pytest.raises(InputError, match="max_latency_ms@local#2t is given twice"):
        parse_budgets(["max_latency_ms=1@local#2t", "max_latency_ms=3@local#2t"], ["local"])
    with pytest.raises(InputError, match=r"'local#4t' is the p50 at 4 threads.*\(1, 2\)"):
        parse_budgets(["max_latency_ms=1@local#4t"], ["local"], threads=[1, 2])
    with pytest.raises(InputError, match="expected TARGET or TARGET#Nt"):
        parse_budgets(["max_latency_ms=1@local#two"], ["local"])
    with pytest.raises(InputError, match="max_latency_ms target 'qemu:cortex-a53' is not in"):
        edgeopt.tune.budgets.check_budgets(Budgets(max_latency_ms={"qemu:cortex-a53#2t": 1}), ["local"],
                                           ["int8"], "recipe: budgets", threads=[1, 2])
    edgeopt.tune.budgets.check_budgets(Budgets(max_latency_ms={"local#2t": 1}), ["local"], ["int8"], "x",
                                       threads=[1, 2])  # measured: no error


def test_tune_figures_keep_every_thread_count_keyed_by_target_and_threads():
    report = _report()
    stored = figures_of(report, "int8")
    assert stored["latency_ms"] == {"local": ONE, "local#2t": TWO}  # as report.json spells the keys
    assert json.loads(json.dumps(stored)) == stored
    typed = trial_figures(report, "int8")
    assert typed.latency_ms == {LatencyKey("local"): ONE, LatencyKey("local", 2): TWO}
    assert all(type(k) is LatencyKey for k in typed.latency_ms)
    assert Figures.from_json(stored).latency_ms == typed.latency_ms  # a stored trial reads back the same
    assert typed.variant == "int8" and typed.metric == "accuracy"


@pytest.mark.parametrize("limit, ok", [(0.015, True), (0.005, False)])
def test_a_two_thread_budget_is_judged_on_the_two_thread_figure(limit, ok):
    # the 1-thread p50 (0.021 ms) misses 0.015 ms; the 2-thread one (0.009 ms) meets it
    budgets = Budgets(max_latency_ms={"local#2t": limit})
    report = _report({"max_latency_ms": {"local#2t": limit}, "variants": ["int8"]})
    goal = make_goal("latency", budgets, ["local"])
    assert goal.latency == LatencyKey("local", 2) and goal.latency_target == "local#2t"
    for figures in (trial_figures(report, "int8"), figures_of(report, "int8")):  # typed, and as stored
        feasible, reasons, violations = tune_judge(goal, figures)
        assert feasible is ok, reasons
        assert list(violations) == [f"max_latency_ms={limit:g}@local#2t"]
        assert goal.objective_values(figures) == [pytest.approx(TWO)]  # the latency objective: 2 threads
        assert [v.measured for v in goal.verdicts(figures)] == [pytest.approx(TWO)]
    assert check_budgets(report).passed is ok  # edgeopt check agrees
    assert judge_budgets(report, budgets).variant("int8").ok is ok  # and compress


def test_the_first_thread_budget_is_still_judged_on_the_first_thread_figure():
    goal = make_goal("latency", Budgets(max_latency_ms={"local": 0.015}), ["local"])
    feasible, reasons, _ = tune_judge(goal, figures_of(_report(), "int8"))
    assert not feasible and reasons == ["max_latency_ms=0.015@local missed: 21 µs"]
    assert make_goal("latency", None, ["local"]).latency == LatencyKey("local")


# -- the one judge gets typed budgets from every caller ----------------------------------------------


@pytest.fixture
def judged(monkeypatch):
    """The budgets every call of the one judge received."""
    seen = []
    real = edgeopt.budgets.judge

    def spy(budgets, figures):
        seen.append(budgets)
        return real(budgets, figures)
    monkeypatch.setattr(edgeopt.regress, "judge", spy)
    monkeypatch.setattr(edgeopt.tune.budgets, "judge_figures", spy)
    return seen


def test_compress_judges_with_the_recipes_typed_budgets_not_the_reports(judged):
    report = _report({"max_gzip_kb": 100})  # what report.json says: met
    typed = Budgets(max_gzip_kb=11)  # what the recipe object says: missed (11.47 KB)
    out = judge_budgets(report, typed)
    assert not out.variant("int8").ok and "max_gzip_kb" not in out.variant("int8").reason
    assert "gzip size 11.47 KB (budget 11 KB)" in out.variant("int8").reason
    assert judged and all(b is typed for b in judged)
    assert judge_budgets(report, None) is report  # a recipe without budgets: nothing judged
    assert judge_budgets(report).variant("int8").ok  # by default the report's own, as check reads them


def test_check_validates_the_reports_budgets_once_and_judges_them_typed(judged, monkeypatch, tmp_path):
    report = _report({"max_latency_ms": {"local": 0.03, "local#2t": 0.005}, "variants": ["int8"]})
    baseline = tmp_path / "baseline.json"
    baseline.write_text(edgeopt.regress.baseline_json(report))
    calls = []
    real = edgeopt.regress.report_budgets
    monkeypatch.setattr(edgeopt.regress, "report_budgets", lambda r: calls.append(r) or real(r))
    result = check(report, baseline, update=True)  # compares, then judges the update: both need budgets
    assert len(calls) == 1
    assert judged and all(isinstance(b, Budgets) for b in judged)
    assert len({id(b) for b in judged}) == 1  # the one validated object, judged twice
    latency = {str(f.target): f for f in result.findings if f.check == "budget:latency"}
    assert latency["local"].message == f"p50 {fmt_time(ONE)} (measured), budget {fmt_time(0.03)}"
    assert latency["local#2t"].message == f"p50 {fmt_time(TWO)} (measured), budget {fmt_time(0.005)}"
    assert "µs" in latency["local"].message
    assert [latency[key].status for key in ("local", "local#2t")] == [PASS, FAIL]


# -- a study's setup takes a Budgets object as it is ------------------------------------------------------


def _tune_recipe(tmp_path, threads: str = "[1, 2]") -> str:
    path = tmp_path / "tune.yaml"
    path.write_text("model: digits_cnn\ndata: digits\ntrain: {epochs: 1}\n"
                    "stages:\n  - {kind: prune, target_sparsity: {range: [0.5, 0.9]}, epochs: 1}\n"
                    f"export: [float32]\nbenchmark: {{targets: [local], threads: {threads}}}\n"
                    "budgets: {max_size_kb: 500}\n")
    return str(path)


def test_a_study_judges_the_budgets_object_it_is_given_and_the_recipes_without_one(tmp_path):
    from edgeopt.tune.study import TuneOptions, setup

    recipe = _tune_recipe(tmp_path)
    given = Budgets.model_validate({"max_gzip_kb": 12, "max_latency_ms": {"local#2t": 3}})
    s = setup(TuneOptions(recipe=recipe, study=tmp_path / "s", budgets=given))
    assert s.goal.spec is given
    assert setup(TuneOptions(recipe=recipe, study=tmp_path / "s")).goal.spec.max_size_kb == 500
    empty = setup(TuneOptions(recipe=recipe, study=tmp_path / "s", budgets=Budgets()))
    assert empty.goal.spec.max_size_kb == 500  # an empty one: the recipe's, as with no flags
    flags = setup(TuneOptions(recipe=recipe, study=tmp_path / "s", budgets=("max_latency_ms=3@local#2t",)))
    assert flags.goal.spec == Budgets.model_validate({"max_latency_ms": {"local#2t": 3}})


def test_a_study_refuses_a_latency_budget_at_a_thread_count_its_recipe_does_not_run(tmp_path):
    from edgeopt.tune.study import TuneOptions, setup

    recipe = _tune_recipe(tmp_path, threads="[1]")
    typed = Budgets.model_validate({"max_latency_ms": {"local#4t": 3}})
    for budgets in (("max_latency_ms=3@local#4t",), typed):
        with pytest.raises(InputError, match="4"):
            setup(TuneOptions(recipe=recipe, study=tmp_path / "s", budgets=budgets))
