"""One unit per figure wherever edgeopt prints it: a latency below 0.1 ms reads in µs in the reports,
the ``edgeopt benchmark`` table and tune's text and HTML alike (one formatter, report.cells); and tune
shows its accuracy-drop budget in the unit it shows the drops in (points for an accuracy) in its text,
its tables, best.yaml and its plots."""

from __future__ import annotations

import pytest

from edgeopt.bench.stats import PROVENANCE_ESTIMATED, failed_entry, table_rows
from edgeopt.budgets import Budgets, Limit
from edgeopt.report.cells import fmt_ms, fmt_time
from edgeopt.tune import html as tune_html
from edgeopt.tune.budgets import judge, make_goal
from edgeopt.tune.results import (
    FEASIBLE,
    INFEASIBLE,
    Outcome,
    TrialRecord,
    best_recipe,
    budget_label,
    describe,
)
from edgeopt.tune.space import parse_space

SUB_MS = 0.0452  # ms: 45.2 µs


def bench_row(**timings) -> dict:
    return {**failed_entry("x"), "model": "/a/m.tflite", "target": "local", "status": "ok", "reason": None,
            "provenance": "measured", "runs": 50, **timings}


def test_the_benchmark_table_prints_a_sub_millisecond_latency_in_microseconds():
    cells = table_rows([bench_row(p50_ms=SUB_MS, p90_ms=0.0981, p99_ms=0.25, mean_ms=0.05, std_ms=0.0031,
                                  min_ms=0.04, cv=0.06)])[0]
    assert cells[4:9] == ["45.2 µs", "98.1 µs", "0.25", "50 µs", "3.1 µs"]
    assert not any(c == "0.0452" for c in cells)


def test_the_benchmark_table_keeps_ms_above_a_tenth_and_the_estimate_alone():
    cells = table_rows([bench_row(p50_ms=12.5, p90_ms=1234.5, p99_ms=0.1, mean_ms=None)])[0]
    assert cells[4:8] == ["12.5", "1,234", "0.1", "-"]
    estimated = table_rows([bench_row(p50_ms=SUB_MS, p90_ms=0.05, provenance=PROVENANCE_ESTIMATED)])[0]
    assert estimated[4] == "45.2 µs" and estimated[5:9] == ["-"] * 4


@pytest.mark.parametrize("value", [SUB_MS, 0.0999, 0.1, 2.5, 1234.5])
def test_benchmark_tune_and_the_reports_format_a_latency_the_same_way(value):
    assert table_rows([bench_row(p50_ms=value)])[0][4] == fmt_ms(value)
    _, trial = make_trial(0, 10, 0.001, latency=value)
    assert f"p50 {fmt_time(value)} @local" in describe(trial)


# -- tune ----------------------------------------------------------------------------------------------

BUDGETS = Budgets(max_gzip_kb=12, max_accuracy_drop=0.005)


def make_trial(number, gzip_kb, drop, latency=SUB_MS, metric="accuracy", budgets=BUDGETS):
    goal = make_goal("size", budgets, ["local"])
    value = 0.98 - drop if metric == "accuracy" else 0.2 + drop
    figures = {"format": "int8", "gzip_bytes": int(gzip_kb * 1024), "size_bytes": 3 * int(gzip_kb * 1024),
               "drop": drop, "metric": metric, "value": value, "reference": value + (drop if metric ==
               "accuracy" else -drop), "latency_ms": {"local": latency}}
    feasible, reasons, violations = judge(goal, figures)
    status = FEASIBLE if feasible else INFEASIBLE
    return goal, TrialRecord(number, "random", {"stages.0.target_sparsity": 0.5 + number / 100}, status,
                             "; ".join(reasons) or None, figures, violations)


def test_tune_text_prints_a_sub_millisecond_latency_in_microseconds():
    goal, trial = make_trial(0, 10, 0.001)
    assert "p50 45.2 µs @local" in describe(trial) and "0.0452" not in describe(trial)
    outcome = Outcome.of(goal, [trial], [], {})
    assert "p50 45.2 µs @local" in "\n".join(outcome.summary())
    assert "p50 2.5 ms @local" in describe(make_trial(1, 10, 0.001, latency=2.5)[1])


@pytest.fixture
def figures(monkeypatch):
    """The figures tune.html draws, kept instead of encoded as PNGs."""
    drawn = []

    def keep(fig):
        drawn.append(fig)
        return "data:image/png;base64,"

    monkeypatch.setattr(tune_html, "png_data_uri", keep)
    return drawn


def test_tune_html_prints_a_sub_millisecond_latency_in_microseconds(figures):
    goal, trial = make_trial(0, 10, 0.001)
    page = tune_html.render_html(Outcome.of(goal, [trial], [], {}))
    assert "<td>45.2 µs</td>" in page and "0.0452" not in page
    slow = tune_html.render_html(Outcome.of(goal, [make_trial(0, 10, 0.001, latency=2.5)[1]], [], {}))
    assert "<td>2.5</td>" in slow  # the column is headed "p50 ms"


def test_the_drop_budget_is_shown_in_points_beside_drops_in_points(figures):
    goal = make_trial(0, 1, 0)[0]
    trials = [make_trial(0, 14, 0.0083)[1], make_trial(1, 13, 0.02)[1]]  # neither meets both budgets
    outcome = Outcome.of(goal, trials, [], {})
    assert outcome.budget_labels() == ["max_accuracy_drop=0.005 (0.50 pt)", "max_gzip_kb=12"]
    text = "\n".join(outcome.summary())
    assert "max_accuracy_drop=0.005 (0.50 pt): trial #0 reached a drop of 0.83 pt" in text
    assert "(drop +0.83 pt)" in describe(trials[0])

    page = tune_html.render_html(outcome)
    assert "budgets: max_accuracy_drop=0.005 (0.50 pt), max_gzip_kb=12." in page and "+0.83 pt" in page

    drop_plot = figures[0].axes[0]
    assert drop_plot.get_ylabel() == "accuracy drop vs the reference (pt)"
    (line,) = [line for line in drop_plot.get_lines() if line.get_label().startswith("max_accuracy_drop")]
    assert line.get_label() == "max_accuracy_drop=0.005 (0.50 pt)"
    assert list(line.get_ydata()) == pytest.approx([0.5, 0.5])  # drawn where the drops in points are
    ys = sorted(y for c in drop_plot.collections for _, y in c.get_offsets())
    assert ys == pytest.approx([0.83, 2.0])
    legend = [t.get_text() for t in drop_plot.get_legend().get_texts()]
    assert "max_accuracy_drop=0.005 (0.50 pt)" in legend and "max_accuracy_drop=0.005" not in legend


def test_best_yaml_names_the_drop_budget_in_points():
    stage = {"kind": "prune", "target_sparsity": {"range": [0.5, 0.9]}, "epochs": 1}
    space = parse_space({"model": "digits_cnn", "data": "digits", "export": ["int8"], "stages": [stage]})
    goal, best = make_trial(7, 11, 0.001)
    text = best_recipe(space, best, Outcome.of(goal, [best], [], {}), ["int8"])
    assert "# Objective size; budgets: max_accuracy_drop=0.005 (0.50 pt), max_gzip_kb=12." in text
    assert "(drop +0.10 pt)" in text


def test_a_drop_in_the_metric_s_own_unit_keeps_its_budget_in_that_unit(figures):
    budgets = Budgets(max_gzip_kb=12, max_accuracy_drop=0.05)
    goal, trial = make_trial(0, 10, 0.08, metric="mae", budgets=budgets)
    outcome = Outcome.of(goal, [trial], [], {})
    assert outcome.budget_labels() == ["max_accuracy_drop=0.05", "max_gzip_kb=12"]
    assert "(drop +0.08)" in describe(trial) and " pt" not in describe(trial)
    page = tune_html.render_html(outcome)
    assert " pt" not in page and "max_accuracy_drop=0.05, max_gzip_kb=12." in page
    assert figures[0].axes[0].get_ylabel() == "mae increase vs the reference (its unit)"


def test_budget_label_converts_only_an_accuracy_drop_in_points():
    assert budget_label(Limit("max_accuracy_drop", 0.005), True) == "max_accuracy_drop=0.005 (0.50 pt)"
    assert budget_label(Limit("max_accuracy_drop", 0.005), False) == "max_accuracy_drop=0.005"
    assert budget_label(Limit("max_gzip_kb", 12), True) == "max_gzip_kb=12"


def test_a_missed_drop_budget_s_reason_names_it_in_the_unit_of_the_drop():
    _, trial = make_trial(0, 10, 0.0083)  # 0.83 pt over a 0.5 pt budget
    assert trial.reason == "max_accuracy_drop=0.005 (0.50 pt) missed: a drop of 0.83 pt"
    _, mae = make_trial(0, 10, 0.08, metric="mae",
                        budgets=Budgets(max_accuracy_drop=0.05, max_gzip_kb=12))
    assert mae.reason == "max_accuracy_drop=0.05 missed: 0.08"  # a drop in the metric's own unit: as written
