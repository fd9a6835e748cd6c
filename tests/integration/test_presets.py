"""The quick path: a saved Keras 3 model compressed by a preset, never retrained, with its resolved recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import edgeopt
from edgeopt.cli import cli
from edgeopt.data import load_dataset

pytestmark = pytest.mark.integration
QUICK = ["benchmark.runs=5", "benchmark.warmup=1", "benchmark.min_seconds=0.05"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A Keras 3 digits classifier (Conv-BN-ReLU, as TFMOT's QAT expects), trained briefly, and its
    own test accuracy."""
    from edgeopt.keras3 import keras3_module

    k3 = keras3_module()
    k3.utils.set_random_seed(0)
    data = load_dataset("digits")
    inputs = k3.Input(shape=(8, 8, 1))
    x = k3.layers.ReLU()(k3.layers.BatchNormalization()(k3.layers.Conv2D(8, 3)(inputs)))
    model = k3.Model(inputs, k3.layers.Dense(10)(k3.layers.Flatten()(x)))
    model.compile("adam", k3.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=3, verbose=0)
    path = tmp_path_factory.mktemp("model") / "mine.keras"
    model.save(path)
    accuracy = float(np.mean(model.predict(data.x_test, verbose=0).argmax(axis=1) == data.y_test))
    return path, accuracy


def test_the_ptq_preset_quantizes_the_saved_model_as_it_is(saved, tmp_path):
    path, accuracy = saved
    args = ["compress", "--model", str(path), "--data", "digits", "--preset", "ptq-int8", "--out",
            str(tmp_path / "out"), "--quiet", "--json", *(arg for s in QUICK for arg in ("--set", s))]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["training"]["epochs_run"] == 0 and report["model_file"]["source"] == "keras3"
    variants = {v["name"]: v for v in report["variants"]}
    # the reference is the file's own model, named original: its accuracy, not a retrained one's
    assert "trained_float32" not in variants and (tmp_path / "out" / "original.tflite").is_file()
    assert variants["original"]["metrics"]["accuracy"]["value"] == pytest.approx(accuracy, abs=1 / 360)
    assert variants["int8"]["status"] == "ok" and variants["int8"]["inspect"]["int8_op_coverage"] == 1.0
    resolved = yaml.safe_load((tmp_path / "out" / "recipe.resolved.yaml").read_text())
    assert resolved["model"] == str(path) and resolved["data"] == "digits"
    assert resolved["train"]["epochs"] == 0
    assert [(s["kind"], s["mode"]) for s in resolved["stages"]] == [("quantize", "ptq")]


def test_the_prune_qat_preset_keeps_its_zeros_in_the_int8_file(saved):
    path, _ = saved
    recipe = edgeopt.load_recipe(preset="prune-qat-int8", model=str(path), data="digits",
                                 overrides=["stages.0.epochs=2", "stages.1.epochs=1", *QUICK])
    report = edgeopt.compress(edgeopt.prepare(recipe)).report
    assert report.ok, report.failures()
    assert report.training["epochs_run"] == 0
    assert report.variant("int8").sparsity >= 0.5 - 0.02
