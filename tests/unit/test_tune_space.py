"""The tune search space, budgets and outcome: parsing and refusals, without TensorFlow."""

from __future__ import annotations

import math

import pytest

from edgeopt.budgets import Budgets, Limit
from edgeopt.errors import InputError, RecipeError
from edgeopt.recipe import parse_recipe
from edgeopt.tune.budgets import figures_of, judge, make_goal, parse_budget, parse_budgets
from edgeopt.tune.results import FAILED, FEASIBLE, INFEASIBLE, Outcome, TrialRecord, best_recipe, describe
from edgeopt.tune.space import parse_space, values_for


def recipe(**stage0):
    return {
        "model": "digits_cnn",
        "data": "digits",
        "stages": [
            {"kind": "prune", "target_sparsity": 0.8, "epochs": 2, **stage0},
            {"kind": "cluster", "clusters": 16, "epochs": 1},
            {"kind": "quantize", "mode": "qat", "epochs": 1},
        ],
        "export": ["float32", "int8"],
    }


def test_dimensions_are_taken_out_and_written_back():
    data = recipe(
        target_sparsity={"range": [0.5, 0.9]},
        epochs={"range": [2, 6], "step": 2},
        layers={"choice": [None, ["conv2", "dense"]]},
    )
    data["export"] = {"choice": ["int8", "float16"]}
    space = parse_space(data)
    kinds = {d.name: d.kind for d in space.dimensions}
    assert kinds == {
        "stages.0.target_sparsity": "float",
        "stages.0.epochs": "int",
        "stages.0.layers": "choice",
        "export": "choice",
    }
    params = {
        "stages.0.target_sparsity": 0.7,
        "stages.0.epochs": 4,
        "stages.0.layers": '["conv2", "dense"]',
        "export": "float16",
    }
    values = values_for(space, params)
    assert values["stages.0.layers"] == ["conv2", "dense"] and values["export"] == ["float16"]
    built = space.recipe(values)
    assert built.stages[0].target_sparsity == 0.7 and built.stages[0].epochs == 4
    assert built.stages[0].layers == ["conv2", "dense"] and built.export == ["float16"]
    assert space.plain["stages"][0]["target_sparsity"] == {"range": [0.5, 0.9]}  # the plain data is untouched


def test_a_recipe_without_dimensions_gets_the_default_space():
    space = parse_space(recipe())
    assert space.defaulted
    assert [d.name for d in space.dimensions] == ["stages.0.target_sparsity", "stages.1.clusters"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"range": [0.9, 0.5]}, "empty or inverted"),
        ({"range": [0.5, 0.5]}, "empty or inverted"),
        ({"range": [0.5]}, "two finite numbers"),
        ({"range": [0.5, "x"]}, "two finite numbers"),
        ({"choice": []}, "non-empty list"),
        ({"choice": [0.5, 0.5]}, "twice"),
        ({"range": [0.5, 0.9], "choice": [0.6]}, "either range or choice"),
        ({"range": [0.5, 1.5]}, "target_sparsity"),  # out of the field's own bounds at the high end
        ({"range": [0.0, 0.9], "log": True}, "log range needs low > 0"),
        ({"choice": [0.6, "high", 0.8]}, 'stages.0.target_sparsity: the choice value "high" is not valid'),
        ({"choice": [0.6, 1.5, 0.8]}, "the choice value 1.5 is not valid"),  # out of the field's bounds
    ],
)
def test_bad_dimensions_are_refused_in_one_line(spec, message):
    with pytest.raises(RecipeError, match=message) as caught:
        parse_space(recipe(target_sparsity=spec))
    assert "\n" not in str(caught.value)


def test_every_choice_value_is_checked_not_only_the_ends():
    data = recipe()
    data["export"] = {"choice": ["int8", "float99", "float16"]}
    with pytest.raises(RecipeError, match='space: export: the choice value "float99" is not valid') as caught:
        parse_space(data)
    assert "\n" not in str(caught.value) and "fix or drop it" in str(caught.value)


def test_a_choice_value_valid_with_the_other_fields_at_their_high_ends_is_accepted():
    # initial_sparsity 0.5 exceeds target_sparsity at its low end (0.3), not at its high end (0.9)
    space = parse_space(
        recipe(target_sparsity={"range": [0.3, 0.9]}, initial_sparsity={"choice": [0.1, 0.5, 0.2]})
    )
    assert [d.name for d in space.dimensions] == ["stages.0.target_sparsity", "stages.0.initial_sparsity"]


def test_unknown_fields_and_fixed_sections_are_refused():
    with pytest.raises(RecipeError, match="'sparsity' is not a field of a prune stage"):
        parse_space(recipe(sparsity={"range": [0.5, 0.9]}))
    data = recipe()
    data["seed"] = {"choice": [1, 2]}
    with pytest.raises(RecipeError, match="only stage fields, export, training settings"):
        parse_space(data)
    data = recipe()
    data["export"] = {"range": [1, 2]}
    with pytest.raises(RecipeError, match="export"):
        parse_space(data)


def test_budgets_parse_and_refuse():
    assert parse_budget("max_gzip_kb=12", ["local"]) == Limit("max_gzip_kb", 12.0)
    assert parse_budget("max_latency_ms=0.05", ["local"]) == Limit("max_latency_ms", 0.05, "local")
    assert parse_budgets(["max_gzip_kb=12", "max_error_increase=0.05", "max_latency_ms=0.05"], ["local"]) == (
        Budgets(max_gzip_kb=12, max_error_increase=0.05, max_latency_ms={"local": 0.05})
    )
    with pytest.raises(InputError, match="given twice"):
        parse_budgets(["max_gzip_kb=12", "max_gzip_kb=10"], ["local"])
    assert (
        parse_budget("max_latency_ms=2@qemu:cortex-a53", ["local", "qemu:cortex-a53"]).target
        == "qemu:cortex-a53"
    )
    with pytest.raises(InputError, match="unknown budget 'max_gzip'"):
        parse_budget("max_gzip=12", ["local"])
    with pytest.raises(InputError, match="not in the recipe's benchmark.targets"):
        parse_budget("max_latency_ms=1@ssh://pi@board", ["local"])
    with pytest.raises(InputError, match="not a number"):
        parse_budget("max_gzip_kb=small", ["local"])
    with pytest.raises(InputError, match="> 0"):
        parse_budget("max_size_kb=-1", ["local"])
    with pytest.raises(InputError, match="objective"):
        make_goal("smallest", None, ["local"])


def _report(gzip, accuracy, latency=0.05, reference=0.98):
    from edgeopt.types import Report

    def variant(name, fmt, acc, lat):
        latency_entry = {"provenance": "measured", "threads": 1, "p50_ms": lat, "status": "ok"}
        return {
            "name": name,
            "format": fmt,
            "path": f"{name}.tflite",
            "status": "ok",
            "size_bytes": gzip * 3,
            "gzip_bytes": gzip,
            "metrics": {"accuracy": {"value": acc, "unit": "fraction"}},
            "latency": {"local": latency_entry} if lat is not None else {},
        }

    return Report.from_json(
        {
            "name": "t",
            "task": "classification",
            "status": "ok",
            "variants": [
                variant("trained_float32", "float32", reference, 0.06),
                variant("int8", "int8", accuracy, latency),
            ],
        }
    )


def test_a_trial_is_judged_from_its_report():
    goal = make_goal("size", Budgets(max_gzip_kb=12, max_accuracy_drop=0.005), ["local"])
    figures = figures_of(_report(11 * 1024, 0.978), "int8")
    assert math.isclose(figures["drop"], 0.002) and figures["gzip_bytes"] == 11 * 1024
    assert judge(goal, figures)[0]
    feasible, reasons, violations = judge(goal, figures_of(_report(13 * 1024, 0.97), "int8"))
    assert not feasible and len(reasons) == 2 and all(v > 0 for v in violations.values())
    assert goal.early_stop(13 * 1024, 40_000).startswith("not benchmarked: 13.00 KB > max_gzip_kb=12")
    assert goal.early_stop(11 * 1024, 40_000) is None


def _trial(number, gzip_kb, drop, status=None, latency=0.05, strategy="random"):
    goal = make_goal("size", Budgets(max_gzip_kb=12, max_accuracy_drop=0.005), ["local"])
    figures = {
        "format": "int8",
        "gzip_bytes": int(gzip_kb * 1024),
        "size_bytes": 1,
        "drop": drop,
        "metric": "accuracy",
        "value": 0.98 - drop,
        "reference": 0.98,
        "latency_ms": {"local": latency},
    }
    feasible, reasons, violations = judge(goal, figures)
    status = status or (FEASIBLE if feasible else INFEASIBLE)
    return goal, TrialRecord(
        number,
        strategy,
        {"stages.0.target_sparsity": 0.5 + number / 100},
        status,
        "; ".join(reasons) or None,
        figures if status != FAILED else {},
        violations,
    )


def test_outcome_best_front_and_closest():
    trials = [
        _trial(0, 14, 0.001)[1],
        _trial(1, 11.5, 0.004)[1],
        _trial(2, 10, 0.02)[1],
        _trial(3, 11.0, 0.003)[1],
        _trial(4, 0, 0, status=FAILED)[1],
    ]
    goal = _trial(0, 1, 0)[0]
    outcome = Outcome.of(goal, trials, [], {})
    assert outcome.best.number == 3  # feasible with the smallest size
    assert [t.number for t in outcome.front] == [3]  # the front is taken over the feasible trials
    document = outcome.to_json()
    assert document["budgets_met"] and document["best"]["number"] == 3 and len(document["trials"]) == 5
    assert "best: trial #3" in "\n".join(outcome.summary())


def test_unreachable_budgets_name_the_closest_trial_per_budget():
    goal = _trial(0, 1, 0)[0]
    trials = [_trial(0, 14, 0.001)[1], _trial(1, 10, 0.02)[1]]
    outcome = Outcome.of(goal, trials, [], {})
    assert outcome.best is None
    assert outcome.closest["max_gzip_kb=12"]["trial"] == 1
    assert outcome.closest["max_accuracy_drop=0.005"]["trial"] == 0
    text = "\n".join(outcome.summary())
    assert "no trial met every budget" in text and "best:" not in text
    assert [t.number for t in outcome.front] == [1, 0]  # no feasible trial: the front of all of them


def test_best_yaml_is_a_plain_recipe_with_the_best_values():
    space = parse_space(recipe(target_sparsity={"range": [0.5, 0.9]}))
    goal, best = _trial(7, 11, 0.001)
    outcome = Outcome.of(goal, [best], space.to_json(), {"folder": "study"})
    text = best_recipe(space, best, outcome, ["float32", "int8"])
    import yaml

    data = yaml.safe_load(text)
    assert data["stages"][0]["target_sparsity"] == pytest.approx(0.57)
    assert data["export"] == ["float32", "int8"]
    parse_recipe(data)  # ready for edgeopt compress


def test_the_python_api_names_the_search(tmp_path):
    import edgeopt

    bad = tmp_path / "r.yaml"
    bad.write_text("model: digits_cnn\ndata: digits\n"
                   "stages: [{kind: prune, target_sparsity: {range: [0.9, 0.1]}}]\n")
    with pytest.raises(RecipeError, match="empty or inverted"):
        edgeopt.search(bad, tmp_path / "study")
    assert not (tmp_path / "study").exists()


def test_tune_help_loads_neither_tensorflow_nor_optuna():
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from edgeopt.cli import cli; "
            "r = CliRunner().invoke(cli, ['tune', '--help']); "
            "assert r.exit_code == 0 and '--budget' in r.output; "
            "print(sorted(m for m in ('tensorflow', 'optuna', 'ray', 'matplotlib') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_a_channel_pruning_stage_searches_its_fraction_by_default():
    from edgeopt.recipe import parse_recipe
    from edgeopt.tune.space import default_space

    recipe = parse_recipe({"model": "digits_cnn", "data": "digits",
                           "stages": [{"kind": "prune_channels", "fraction": 0.5, "epochs": 1}]})
    (dim,) = default_space(recipe)
    assert dim.name == "stages.0.fraction" and (dim.low, dim.high) == (0.0, 0.75)


def test_training_settings_are_searched_and_change_the_base():
    data = recipe()
    data["train"] = {
        "epochs": {"range": [2, 8]},
        "learning_rate": {"range": [1e-4, 3e-2], "log": True},
        "batch_size": {"choice": [16, 32, 64, 128]},
        "optimizer": {"choice": ["adam", "rmsprop", "sgd"]},
        "l2": {"choice": [0.0, 1e-5, 1e-4]},
        "validation_split": 0.1,
        "early_stopping": {"patience": {"range": [2, 6]}},
    }
    data["model_options"] = {"width": {"choice": [0.5, 1.0]}}
    space = parse_space(data)
    assert space.searches_training and all(d.trains for d in space.dimensions)
    chosen = space.recipe({"train.optimizer": "sgd", "train.early_stopping.patience": 3, "train.epochs": 4,
                           "model_options.width": 0.5, "train.learning_rate": 0.01, "train.l2": 0.0,
                           "train.batch_size": 16})
    assert chosen.train.optimizer == "sgd" and chosen.train.early_stopping.patience == 3
    assert chosen.model_options == {"width": 0.5} and chosen.train.learning_rate == 0.01
    assert not parse_space(recipe(target_sparsity={"range": [0.5, 0.9]})).searches_training


@pytest.mark.parametrize(
    ("section", "field", "message"),
    [
        ("train", "validation_split", "train.validation_split: is not a training setting tune can search"),
        ("model_options", "dropout", "has no searchable option 'dropout'; it has width"),
    ],
)
def test_a_searched_field_that_is_not_a_training_setting_is_refused(section, field, message):
    data = recipe()
    data[section] = {field: {"choice": [0.1, 0.2]}}
    with pytest.raises(RecipeError, match=message):
        parse_space(data)


def test_a_width_on_a_model_without_one_is_refused():
    data = recipe()
    data["model"] = "my_model.keras"
    data["model_options"] = {"width": {"choice": [0.5, 1.0]}}
    with pytest.raises(RecipeError, match="the model 'my_model.keras' has no width to search"):
        parse_space(data)


def test_drops_of_an_accuracy_are_points_in_the_text_the_table_and_the_plot_axis():
    from edgeopt.tune.html import render_html

    goal = _trial(0, 1, 0)[0]
    trials = [_trial(0, 14, 0.0083)[1], _trial(1, 13, 0.02)[1]]  # neither meets both budgets
    outcome = Outcome.of(goal, trials, [], {})
    text = "\n".join(outcome.summary())
    assert "max_accuracy_drop=0.005 (0.50 pt): trial #0 reached a drop of 0.83 pt" in text
    assert "(drop +0.83 pt)" in "\n".join(describe(t) for t in trials)
    page = render_html(outcome)
    assert "+0.83 pt" in page and "97.17 %" in page and "0.0083" not in page
