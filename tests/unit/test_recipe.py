"""Recipe validation: field paths, did-you-mean, ranges, ordering, overrides. No TensorFlow."""

from __future__ import annotations

import pytest

from edgeopt.errors import RecipeError
from edgeopt.recipe import apply_overrides, dump_recipe, load_recipe, parse_recipe

BASE = {"model": "digits_cnn", "data": "digits"}


def recipe(**extra):
    return parse_recipe({**BASE, **extra})


def error_of(data) -> str:
    with pytest.raises(RecipeError) as info:
        parse_recipe(data)
    return str(info.value)


def test_defaults_fill_every_section():
    r = recipe()
    assert r.train.optimizer == "adam"
    assert r.export == ["float32", "int8"]
    assert r.benchmark.targets == ["local"]
    assert r.resolved()["seed"] == 0


def test_out_of_range_sparsity_names_the_field_path_and_value():
    msg = error_of({**BASE, "stages": [{"kind": "prune", "target_sparsity": 1.5}]})
    assert "stages[0].target_sparsity" in msg
    assert "1.5" in msg


def test_negative_epochs_rejected_with_path():
    msg = error_of({**BASE, "train": {"epochs": -1}})
    assert "train.epochs" in msg and "-1" in msg


def test_unknown_key_suggests_the_closest_field():
    msg = error_of({**BASE, "train": {"epochz": 3}})
    assert "train" in msg and "unknown key 'epochz'" in msg and "did you mean 'epochs'" in msg


def test_unknown_key_in_a_stage_is_reported_at_that_stage():
    msg = error_of({**BASE, "stages": [{"kind": "prune", "target_sparsity": 0.5, "target_sparsty": 0.5}]})
    assert msg.count("stages[0]") == 1 and "did you mean 'target_sparsity'" in msg


def test_unknown_optimizer_lists_the_choices():
    msg = error_of({**BASE, "train": {"optimizer": "lion"}})
    assert "train.optimizer" in msg and "adam" in msg


def test_unknown_stage_kind_is_an_error():
    msg = error_of({**BASE, "stages": [{"kind": "shrink"}]})
    assert "stages[0]" in msg


def test_missing_model_is_reported():
    assert "model: required field is missing" in error_of({"data": "digits"})


def test_quantize_must_come_last():
    msg = error_of({**BASE, "stages": [{"kind": "quantize"}, {"kind": "prune", "target_sparsity": 0.5}]})
    assert "quantize must be the last stage" in msg


def test_duplicate_export_format_rejected():
    assert "twice" in error_of({**BASE, "export": ["int8", "int8"]})


def test_early_stopping_needs_a_validation_split():
    msg = error_of({**BASE, "train": {"validation_split": 0, "early_stopping": {"patience": 2}}})
    assert "validation_split" in msg


def test_overrides_take_precedence_and_parse_as_yaml():
    data = apply_overrides({**BASE, "train": {"epochs": 30}}, ["train.epochs=2", "export=[int8]", "seed=7"])
    r = parse_recipe(data)
    assert (r.train.epochs, r.export, r.seed) == (2, ["int8"], 7)


def test_override_into_a_stage_by_index():
    data = apply_overrides(
        {**BASE, "stages": [{"kind": "prune", "target_sparsity": 0.5}]}, ["stages.0.target_sparsity=0.7"]
    )
    assert parse_recipe(data).stages[0].target_sparsity == 0.7


@pytest.mark.parametrize("key", ["stages.0.target_sparsity", "stages[0].target_sparsity"])
def test_a_stage_is_overridden_by_either_spelling(key):
    data = apply_overrides({**BASE, "stages": [{"kind": "prune", "target_sparsity": 0.5},
                                               {"kind": "quantize", "mode": "qat"}]}, [f"{key}=0.7"])
    assert parse_recipe(data).stages[0].target_sparsity == 0.7
    assert data["stages"][1] == {"kind": "quantize", "mode": "qat"}


@pytest.mark.parametrize("key, message", [
    ("stages.3.epochs", "--set stages[3].epochs: 3 is not an index of stages (it has 1 item)"),
    ("stages[3].epochs", "--set stages[3].epochs: 3 is not an index of stages (it has 1 item)"),
    ("stages.first.epochs", "--set stages.first.epochs: stages is a list (it has 1 item); give an index, "
                            "e.g. stages[0]"),
    ("train[0].epochs", "--set train[0].epochs: train is not a list"),
    ("stages[0.epochs", "--set stages[0.epochs: not a field path"),
    ("stages..epochs", "--set stages..epochs: not a field path"),
    ("export_options.x[0]", "--set export_options.x[0]: export_options.x is not set; give it whole"),
])
def test_override_errors_spell_the_path_one_way(key, message):
    with pytest.raises(RecipeError) as caught:
        apply_overrides({**BASE, "stages": [{"kind": "prune"}], "train": {"epochs": 3}}, [f"{key}=1"])
    assert str(caught.value).startswith(message)


def test_the_api_and_its_docstring_take_stages_by_index():
    import edgeopt
    from edgeopt.pipeline import _with_changes

    recipe = edgeopt.load_recipe(None, ["model=digits_cnn", "data=digits", "stages=[{kind: prune}]",
                                        "stages[0].target_sparsity=0.6"])
    assert recipe.stages[0].target_sparsity == 0.6
    changed = _with_changes(recipe, None, None, ["stages[0].target_sparsity=0.9"])  # compress(overrides=)
    assert changed.stages[0].target_sparsity == 0.9
    assert 'overrides=["stages[0].target_sparsity=0.9"]' in edgeopt.api.__doc__


def test_bad_override_syntax_is_a_recipe_error():
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        apply_overrides(BASE, ["train.epochs"])


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: digits_cnn\ndata: [digits\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(path)


def test_resolved_dump_reloads_to_the_same_recipe(tmp_path):
    r = recipe(stages=[{"kind": "prune", "target_sparsity": 0.8}, {"kind": "quantize"}])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_recipe(r))
    assert load_recipe(path) == r


def test_zoo_recipes_validate():
    for name in ("digits_cnn", "facepose_mlp"):
        r = load_recipe(f"models/{name}/recipe.yaml")
        assert r.model == name
