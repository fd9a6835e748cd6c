"""A SavedModel without Keras metadata (Keras 3 model.export, tf.saved_model.save) is converted and
quantized after training, measured like any model; the steps that need a Keras model are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import edgeopt
from edgeopt.cli import cli
from edgeopt.errors import InputError

pytestmark = pytest.mark.integration
QUICK = ["benchmark.runs=5", "benchmark.warmup=1", "benchmark.min_seconds=0.05"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A Keras 3 CNN trained briefly on digits and written with model.export(), and its accuracy."""
    from edgeopt.data import load_dataset
    from edgeopt.keras3 import keras3_module

    k3 = keras3_module()
    data = load_dataset("digits")
    k3.utils.set_random_seed(0)
    inputs = k3.Input(shape=data.input_shape)
    x = k3.layers.ReLU()(k3.layers.BatchNormalization()(k3.layers.Conv2D(8, 3)(inputs)))
    model = k3.Model(inputs, k3.layers.Dense(10, activation="softmax")(k3.layers.Flatten()(x)))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=3, verbose=0)
    path = tmp_path_factory.mktemp("exported") / "served"
    model.export(str(path), verbose=False)
    accuracy = float(np.mean(model.predict(data.x_test, verbose=0).argmax(axis=1) == data.y_test))
    return path, accuracy


def test_a_keras3_export_is_quantized_after_training_and_measured_as_given(exported, tmp_path):
    path, accuracy = exported
    out = tmp_path / "out"
    args = ["compress", "--model", str(path), "--data", "digits", "--preset", "ptq-int8", "--out", str(out),
            "--quiet", "--json", *(arg for s in QUICK for arg in ("--set", s))]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model_file"]["source"] == "savedmodel"
    assert report["model_file"]["signature"] == "serving_default"
    variants = {v["name"]: v for v in report["variants"]}
    assert set(variants) == {"original", "float32", "int8"}  # no Keras model to show
    assert variants["original"]["metrics"]["accuracy"]["value"] == pytest.approx(accuracy, abs=1 / 360)
    int8 = variants["int8"]
    assert int8["status"] == "ok" and int8["inspect"]["float_ops"] == []
    # every op with arithmetic computes in int8 (Keras 3's Flatten adds int32 shape ops: SHAPE, PACK, ...)
    assert all(op["compute"] == "int8" for op in int8["inspect"]["op_list"] if op["macs"])
    assert int8["metrics"]["accuracy"]["value"] >= accuracy - 0.03
    assert int8["latency"]["local"]["status"] == "ok"
    assert not (out / "model.keras").exists() and (out / "original.tflite").is_file()
    assert (out / "int8.tflite").stat().st_size < (out / "original.tflite").stat().st_size / 2


def test_a_tf_module_saved_model_converts_through_its_serving_signature(tmp_path):
    from edgeopt.kerasapi import tf

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(64, 10)).astype(np.float32)

    class Linear(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(weights)

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
        def __call__(self, x):
            return {"logits": tf.matmul(tf.reshape(x, [-1, 64]), self.w)}

    module = Linear()
    tf.saved_model.save(module, str(tmp_path / "linear"))
    recipe = edgeopt.load_recipe(None, [f"model={tmp_path / 'linear'}", "data=digits", "stages=[]",
                                        "export=[float32]", *QUICK])
    result = edgeopt.compress(edgeopt.prepare(recipe))
    report = result.report
    assert report.ok, report.failures()
    from edgeopt.data import load_dataset

    data = load_dataset("digits")
    own = float(np.mean((data.x_test.reshape(-1, 64) @ weights).argmax(axis=1) == data.y_test))
    for name in ("original", "float32"):
        assert report.variant(name).metrics["accuracy"].value == pytest.approx(own, abs=1e-9)


@pytest.mark.parametrize(("override", "field"), [
    ("train.epochs=2", "train.epochs"),
    ("stages=[{kind: prune, target_sparsity: 0.5, epochs: 1}]", "stages[0] prune"),
    ("stages=[{kind: quantize, mode: qat, epochs: 1}]", "stages[0] quantize"),
])
def test_steps_that_need_a_keras_model_are_refused_before_any_work(exported, tmp_path, override, field):
    path, _ = exported
    recipe = edgeopt.load_recipe(None, [f"model={path}", "data=digits", "train.epochs=0", "stages=[]",
                                        override, *QUICK])
    with pytest.raises(InputError) as caught:
        edgeopt.prepare(recipe)
    message = str(caught.value)
    assert message.startswith(field) and "SavedModel without Keras metadata" in message
    assert "ptq" in message and "model.save" in message and "\n" not in message


def test_the_cli_refusal_is_one_line_and_writes_nothing(exported, tmp_path):
    path, _ = exported
    result = CliRunner().invoke(cli, ["compress", "--model", str(path), "--data", "digits", "--preset",
                                      "prune-qat-int8", "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "stages[0] prune" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_tune_refuses_a_savedmodel_graph_before_any_work(exported, tmp_path):
    path, _ = exported
    recipe = tmp_path / "search.yaml"
    recipe.write_text(f"model: {path}\ndata: digits\ntrain: {{epochs: 0}}\n"
                      "stages:\n  - {kind: prune, target_sparsity: {range: [0.5, 0.9]}, epochs: 1}\n"
                      "export: [int8]\n")
    with pytest.raises(InputError, match="SavedModel without Keras metadata.*cannot fine-tune"):
        edgeopt.search(recipe, tmp_path / "study", budgets=("max_gzip_kb=50",), trials=1)
    assert not (tmp_path / "study").exists()
