"""Presets: shipped recipes filled in from --model and --data, refused in one line when misused."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml
from click.testing import CliRunner

import edgeopt
from edgeopt.cli import cli
from edgeopt.presets import FOLDER, names

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ("ptq-int8", "prune-qat-int8", "prune-cluster-qat-int8", "prune-channels-int8")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def dumped(*args: str) -> dict:
    result = run("compress", *args, "--dump-recipe")
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


def usage_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_the_presets_ship_in_the_package():
    assert set(PRESETS) <= set(names())
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert "presets/*.yaml" in config["options.package_data"]["edgeopt"]
    assert all((FOLDER / f"{name}.yaml").is_file() for name in PRESETS)


def test_each_preset_uses_the_saved_model_as_it_is_and_ends_in_int8():
    for name in PRESETS:
        recipe = dumped("--model", "mine.keras", "--data", "images/", "--preset", name)
        assert recipe["model"] == "mine.keras" and recipe["data"] == "images/"
        assert recipe["train"]["epochs"] == 0, name  # never retrained before its stages
        assert recipe["stages"][-1]["kind"] == "quantize" and "int8" in recipe["export"]
        assert all(stage["epochs"] <= 4 for stage in recipe["stages"]), name  # short fine-tunes


def test_the_ptq_preset_trains_nothing_at_all():
    recipe = dumped("--model", "mine.keras", "--data", "digits", "--preset", "ptq-int8")
    assert [(s["kind"], s["mode"], s["epochs"]) for s in recipe["stages"]] == [("quantize", "ptq", 0)]


def test_a_zoo_model_given_to_a_preset_is_trained_first():
    recipe = dumped("--model", "digits_cnn", "--data", "digits", "--preset", "prune-qat-int8")
    assert recipe["train"]["epochs"] > 0


def test_set_overrides_and_a_data_mapping_apply_to_the_preset():
    recipe = dumped("--model", "m.h5", "--data", "{path: imgs/, image_size: [96, 96], scale: 0.5}",
                    "--preset", "prune-qat-int8", "--set", "stages.0.target_sparsity=0.8")
    assert recipe["stages"][0]["target_sparsity"] == 0.8
    assert recipe["data"]["image_size"] == [96, 96] and recipe["data"]["scale"] == 0.5


def test_a_recipe_and_a_preset_together_are_a_usage_error(tmp_path):
    line = usage_error(run("compress", str(ROOT / "models/digits_cnn/recipe.yaml"), "--preset", "ptq-int8",
                           "--model", "m.keras", "--data", "digits", "--out", str(tmp_path / "out")))
    assert "not both" in line
    assert not (tmp_path / "out").exists()


def test_a_preset_without_model_or_data_is_a_usage_error(tmp_path):
    line = usage_error(run("compress", "--preset", "ptq-int8", "--data", "digits", "--out", str(tmp_path)))
    assert "needs --model" in line
    line = usage_error(run("compress", "--preset", "ptq-int8", "--out", str(tmp_path)))
    assert "--model and --data" in line


def test_an_unknown_preset_is_a_usage_error_listing_the_presets():
    line = usage_error(run("compress", "--preset", "ptq", "--model", "m.keras", "--data", "digits"))
    assert all(name in line for name in PRESETS)


def test_model_and_data_options_replace_a_recipes_own():
    recipe = dumped(str(ROOT / "models/digits_cnn/recipe.yaml"), "--model", "123", "--data", "digits32")
    assert recipe["model"] == "123" and recipe["data"] == "digits32"  # a path, never read as a number
    assert recipe["stages"][0]["target_sparsity"] == 0.8  # the rest of the recipe stays


def test_the_api_loads_a_preset_like_the_command_line():
    recipe = edgeopt.load_recipe(preset="prune-cluster-qat-int8", model="m.keras", data={"path": "imgs/"},
                                 overrides=["stages.1.clusters=8"])
    assert [s.kind for s in recipe.stages] == ["prune", "cluster", "quantize"]
    assert recipe.stages[1].clusters == 8 and recipe.train.epochs == 0 and recipe.data.path == "imgs/"


def test_the_channel_preset_removes_half_the_channels_before_qat():
    recipe = dumped("--model", "mine.keras", "--data", "images/", "--preset", "prune-channels-int8")
    assert [s["kind"] for s in recipe["stages"]] == ["prune_channels", "quantize"]
    assert recipe["stages"][0]["fraction"] == 0.5 and recipe["stages"][1]["mode"] == "qat"
    assert recipe["export"] == ["float32", "int8"] and recipe["budgets"]["max_accuracy_drop"] == 0.01
