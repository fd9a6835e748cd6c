"""Typed changes and keys: recipe changes are typed copies validated once, latency keys are (target, threads),
and the command line gives what the Python API gives. No TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sample_report import make_report

import edgeopt
from edgeopt import recipe as recipe_module
from edgeopt.budgets import Budgets, Figures, judge
from edgeopt.cli import cli
from edgeopt.errors import RecipeError
from edgeopt.recipe import Recipe, RecipeChange, change_recipe, dump_recipe, parse_recipe
from edgeopt.regress import baseline_json
from edgeopt.report import as_report
from edgeopt.types import LatencyEntry, LatencyKey, Variant

ROOT = Path(__file__).resolve().parents[2]
BASE = {"model": "digits_cnn", "data": "digits",
        "stages": [{"kind": "prune", "target_sparsity": 0.5}, {"kind": "quantize", "mode": "qat"}]}


# -- typed recipe changes ----------------------------------------------------------------------------


@pytest.fixture
def no_yaml(monkeypatch):
    """Fail the test if anything writes a recipe out as YAML or reads YAML text back."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("a typed change went through YAML text")

    monkeypatch.setattr(recipe_module, "load_yaml", refuse)
    monkeypatch.setattr(yaml, "safe_dump", refuse)
    monkeypatch.setattr(yaml, "safe_load", refuse)


def test_a_typed_change_is_a_new_validated_recipe_and_leaves_the_old_one(no_yaml):
    base = parse_recipe(BASE)
    changed = change_recipe(base, {"stages[0].target_sparsity": 0.9, "stages.1.epochs": 3, "seed": 7})
    assert isinstance(changed, Recipe) and changed is not base
    assert (changed.stages[0].target_sparsity, changed.stages[1].epochs, changed.seed) == (0.9, 3, 7)
    assert base.stages[0].target_sparsity == 0.5 and base.seed == 0  # the original is untouched
    assert changed.train is base.train and changed.benchmark is base.benchmark  # untouched sections kept


def test_a_value_yaml_would_read_otherwise_survives_a_typed_change(no_yaml):
    # As text through YAML, "yes" is a bool, "2024-01-01" a date, "1e3" a float, "null" None.
    base = parse_recipe(BASE)
    for text in ("yes", "2024-01-01", "1e3", "null", "[draft]"):
        assert change_recipe(base, {"name": text}).name == text
    assert change_recipe(base, {"model_options": {"tag": "on"}}).model_options == {"tag": "on"}
    assert base.with_changes([RecipeChange("name", "off")]).name == "off"


def test_a_change_is_validated_once(monkeypatch):
    calls = []
    validate = Recipe.model_validate.__func__

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return validate(cls, *args, **kwargs)

    base = parse_recipe(BASE)
    monkeypatch.setattr(Recipe, "model_validate", classmethod(counting))
    change_recipe(base, ["stages[0].target_sparsity=0.8", "train.epochs=2", "export=[int8]"])
    assert len(calls) == 1


def test_an_invalid_change_names_the_field_once():
    base = parse_recipe(BASE)
    with pytest.raises(RecipeError) as caught:
        change_recipe(base, {"stages[0].target_sparsity": 1.5}, "compress()")
    message = str(caught.value)
    assert message.startswith("compress(): stages[0].target_sparsity: ")
    assert message.count("target_sparsity") == 1 and "1.5" in message
    with pytest.raises(RecipeError, match=r"^--set stages\[5\]\.epochs: 5 is not an index of stages"):
        change_recipe(base, {"stages.5.epochs": 1})


def test_text_and_typed_changes_agree_and_the_cross_section_rules_still_hold():
    base = parse_recipe(BASE)
    assert change_recipe(base, ["stages.0.target_sparsity=0.7"]) == change_recipe(
        base, {"stages[0].target_sparsity": 0.7})
    with pytest.raises(RecipeError, match="quantize must be the last stage"):
        change_recipe(base, {"stages": [{"kind": "quantize"}, {"kind": "prune", "target_sparsity": 0.5}]})


def test_compress_and_load_recipe_go_through_the_typed_change(monkeypatch):
    from edgeopt import pipeline

    seen = []
    real = recipe_module.change_recipe

    def spy(recipe, changes, source="recipe"):
        seen.append(source)
        return real(recipe, changes, source)

    monkeypatch.setattr(pipeline, "change_recipe", spy)
    base = parse_recipe(BASE)
    changed = pipeline._with_changes(base, None, ["float32"], {"stages[0].target_sparsity": 0.6})
    assert seen == ["compress()"] and changed.export == ["float32"]
    # load_recipe applies the same changes to the file's data before its one validation
    loaded = edgeopt.load_recipe(None, {"model": "digits_cnn", "data": "digits", "name": "yes"})
    assert loaded.name == "yes"


# -- latency keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, target, threads", [
    ("local", "local", None), ("local#4t", "local", 4), ("ssh://pi@board:2222#2t", "ssh://pi@board:2222", 2),
    ("estimate:pi4", "estimate:pi4", None), ("qemu:cortex-a72#16t", "qemu:cortex-a72", 16),
])
def test_a_latency_key_round_trips_through_its_report_spelling(text, target, threads):
    key = LatencyKey.parse(text)
    assert (key.target, key.threads) == (target, threads)
    assert str(key) == text and LatencyKey.parse(str(key)) == key
    assert key.first is (threads is None)


@pytest.mark.parametrize("text", ["", "#2t", "local#", "local#2", "local#0t", "local#-1t", "local#x2t",
                                  "a#2t#3t"])
def test_a_latency_key_that_is_no_target_and_thread_count_is_refused(text):
    with pytest.raises(ValueError):
        LatencyKey.parse(text)


def test_latency_keys_are_ordered_by_target_then_first_thread_count_then_threads():
    keys = [LatencyKey("local", 4), LatencyKey("estimate:pi4"), LatencyKey("local"), LatencyKey("local", 2)]
    assert [str(k) for k in sorted(keys)] == ["estimate:pi4", "local", "local#2t", "local#4t"]
    assert LatencyKey.of("local", 1, first=1) == LatencyKey("local")
    assert LatencyKey.of("local", 4, first=1) == LatencyKey("local", 4)
    assert LatencyKey.of("local", 1, first=4) == LatencyKey("local", 1)  # the first count need not be 1
    # the report spelling still finds an entry, for scripts that index by it
    assert LatencyKey("local", 2) == "local#2t" and hash(LatencyKey("local", 2)) == hash("local#2t")


def test_a_variant_holds_typed_keys_and_json_holds_the_strings():
    entry = {"provenance": "measured", "threads": 2, "p50_ms": 1.5, "status": "ok"}
    data = {"name": "int8", "latency": {"local": {**entry, "threads": 1}, "local#2t": entry}}
    variant = Variant.from_json(data)
    assert list(variant.latency) == [LatencyKey("local"), LatencyKey("local", 2)]
    assert all(type(k) is LatencyKey for k in variant.latency)
    assert variant.latency[LatencyKey("local", 2)].threads == 2
    assert json.loads(json.dumps(variant.to_json())) == data  # report.json keeps its exact shape


def test_a_report_with_a_damaged_latency_key_is_refused_with_the_field():
    report = make_report()
    report["variants"][0]["latency"] = {"local#two": report["variants"][3]["latency"]["local"]}
    with pytest.raises(edgeopt.errors.InputError, match=r"variants\[0\]\.latency: key 'local#two'"):
        as_report(report)


def test_budgets_read_latency_by_typed_key_at_the_first_thread_count_or_a_named_one():
    fast = LatencyEntry(threads=4, p50_ms=1.0)
    slow = LatencyEntry(threads=1, p50_ms=3.0)
    report = as_report(make_report())
    variant = Variant(name="int8", latency={LatencyKey("local"): slow, LatencyKey("local", 4): fast})
    figures = Figures.of(report, variant)
    assert figures.latency_ms == {LatencyKey("local"): 3.0, LatencyKey("local", 4): 1.0}
    budgets = Budgets(max_latency_ms={"local": 2.0, "local#4t": 2.0})
    assert [(str(v.target), v.ok) for v in judge(budgets, figures) if v.name == "max_latency_ms"] == [
        ("local", False), ("local#4t", True)]
    with pytest.raises(ValueError, match="TARGET#Nt"):
        Budgets(max_latency_ms={"local#four": 2.0})


# -- the command line calls the API ------------------------------------------------------------------


def test_check_on_the_command_line_gives_what_the_api_gives(tmp_path):
    report = make_report()
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "baseline.json").write_text(baseline_json(report))
    run = CliRunner().invoke(cli, ["check", str(tmp_path / "report.json"), "--baseline",
                                   str(tmp_path / "baseline.json"), "--json"])
    api = edgeopt.check(tmp_path / "report.json", tmp_path / "baseline.json")
    assert run.exit_code == api.exit_code == 0
    assert json.loads(run.stdout) == json.loads(json.dumps(api.to_json()))


def test_compress_dump_recipe_on_the_command_line_is_the_api_recipe():
    path = ROOT / "models/digits_cnn/recipe.yaml"
    run = CliRunner().invoke(cli, ["compress", str(path), "--set", "stages.0.target_sparsity=0.7",
                                   "--model", "123", "--trust-model", "--dump-recipe"])
    assert run.exit_code == 0, run.output
    api = edgeopt.load_recipe(path, ["stages.0.target_sparsity=0.7", "trust_model=true"], model="123")
    assert run.stdout == dump_recipe(api)
    assert api.model == "123" and api.stages[0].target_sparsity == 0.7  # a path, never read as a number


def test_the_cli_commands_call_the_api(monkeypatch):
    """Each command's work is an edgeopt.api call: replaced there, the command runs the replacement."""
    import edgeopt.api

    called = []
    for name in ("check", "inspection", "evaluate_tflite", "benchmark_models", "run", "load_recipe"):
        def fake(*_args, _name=name, **_kwargs):
            called.append(_name)
            raise edgeopt.errors.InputError(f"{_name} was called")

        monkeypatch.setattr(edgeopt.api, name, fake)
    for args in (["check", "r.json", "--baseline", "b.json"], ["inspect", "m.tflite"],
                 ["evaluate", "m.tflite", "--data", "digits"], ["benchmark", "m.tflite"],
                 ["compress", "--model", "digits_cnn", "--data", "digits", "--out", "o"],
                 ["train", "digits_cnn", "--out", "o"]):
        CliRunner().invoke(cli, args)
    assert called == ["check", "inspection", "evaluate_tflite", "benchmark_models", "load_recipe",
                      "load_recipe"]
