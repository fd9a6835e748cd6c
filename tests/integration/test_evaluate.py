"""`edgeopt evaluate` on real .tflite files: the figures match the model's own predictions on the test
split, and data that does not fit the model is refused in one line (exit 2) before anything runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import edgeopt
from edgeopt.cli import cli
from edgeopt.data import load_dataset
from edgeopt.evaluate import load_data

pytestmark = pytest.mark.integration


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(scope="module")
def digits_models(tmp_path_factory):
    """A small classifier of the 8x8 digits as Keras, float32 .tflite and int8 .tflite."""
    from edgeopt.convert import convert
    from edgeopt.kerasapi import keras

    keras.utils.set_random_seed(0)
    data = load_dataset("digits")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(32, "relu"),
                              keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=5, verbose=0)
    folder = tmp_path_factory.mktemp("models")
    (folder / "float32.tflite").write_bytes(convert(model, "float32"))
    (folder / "int8.tflite").write_bytes(convert(model, "int8", data.representative()))
    return model, data, folder


def test_float32_accuracy_is_the_models_own_on_the_test_split(digits_models):
    model, data, folder = digits_models
    expected = model.predict(data.x_test, verbose=0)
    correct = int(np.sum(expected.argmax(axis=1) == data.y_test))
    top5 = float(np.mean([y in np.argsort(-row)[:5] for row, y in zip(expected, data.y_test, strict=True)]))
    result = run("evaluate", str(folder / "float32.tflite"), "--data", "digits", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["data"]["split"] == "test" and document["data"]["samples"] == len(data.x_test) == 360
    assert abs(document["correct"] - correct) <= 1  # float32 LiteRT vs Keras: rounding only
    accuracy = document["metrics"]["accuracy"]
    assert accuracy["value"] == document["correct"] / 360 and accuracy["higher_is_better"] is True
    assert "test split" in accuracy["provenance"] and "LiteRT" in accuracy["provenance"]
    top_k = document["metrics"]["top_k_accuracy"]
    assert top_k["k"] == 5 and abs(top_k["value"] - top5) <= 1 / 360
    assert len(document["confusion_matrix"]) == 10


def test_an_int8_model_is_evaluated_through_its_own_scales(digits_models):
    _, _, folder = digits_models
    float32 = edgeopt.evaluate_tflite(folder / "float32.tflite", "digits")
    int8 = edgeopt.evaluate_tflite(folder / "int8.tflite", "digits")
    assert int8.input["dtype"] == "int8" and int8.output["dtype"] == "int8"
    assert int8.metrics["accuracy"].value >= float32.metrics["accuracy"].value - 0.03


def test_the_text_output_says_which_split_and_the_batch_size_changes_nothing(digits_models):
    _, _, folder = digits_models
    default = run("evaluate", str(folder / "int8.tflite"), "--data", "digits")
    small = run("evaluate", str(folder / "int8.tflite"), "--data", "digits", "--batch", "7")
    assert default.exit_code == small.exit_code == 0
    assert "test split, 360 samples (the dataset's own test split)" in default.stdout
    assert default.stdout == small.stdout


def test_data_of_another_shape_is_refused_naming_both_shapes(digits_models):
    _, _, folder = digits_models
    line = one_line_error(run("evaluate", str(folder / "float32.tflite"), "--data", "digits32"))
    assert "(8, 8, 1)" in line and "(32, 32, 1)" in line


def test_labels_beyond_the_models_outputs_are_refused(digits_models, tmp_path):
    _, data, folder = digits_models
    labels = np.arange(len(data.x_test)) % 12  # classes 0..11 for a 10-output model
    np.savez(tmp_path / "twelve.npz", x=data.x_test, y=labels)
    line = one_line_error(run("evaluate", str(folder / "float32.tflite"), "--data",
                              str(tmp_path / "twelve.npz")))
    assert "0..11" in line and "10 outputs" in line


def test_nans_in_the_data_are_refused(digits_models, tmp_path):
    _, data, folder = digits_models
    x = data.x_test.copy()
    x[3, 2, 2, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=x, y_train=data.y_test, x_test=x, y_test=data.y_test)
    line = one_line_error(run("evaluate", str(folder / "float32.tflite"), "--data",
                              str(tmp_path / "nan.npz")))
    assert "NaN" in line


def test_a_csv_without_its_label_column_is_refused(digits_models, tmp_path):
    _, _, folder = digits_models
    (tmp_path / "t.csv").write_text("a,b,target\n1,2,0\n3,4,1\n5,6,0\n")
    line = one_line_error(run("evaluate", str(folder / "float32.tflite"), "--data", str(tmp_path / "t.csv")))
    assert "no label column 'label'" in line


def test_a_loader_that_raises_is_refused_in_one_line(digits_models, tmp_path, monkeypatch):
    _, _, folder = digits_models
    (tmp_path / "broken_loader.py").write_text("def load():\n    raise ValueError('the share is offline')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    line = one_line_error(run("evaluate", str(folder / "float32.tflite"), "--data",
                              "{loader: 'broken_loader:load'}"))
    assert "raised ValueError: the share is offline" in line


def test_regression_reports_mae_and_rmse_of_the_tflite(tmp_path):
    from edgeopt.convert import convert
    from edgeopt.kerasapi import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.3 * rng.normal(size=200)
    rows = ["a,b,c,label"] + [f"{a:.6f},{b:.6f},{c:.6f},{t:.6f}" for (a, b, c), t in zip(x, y, strict=True)]
    (tmp_path / "t.csv").write_text("\n".join(rows))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.set_weights([np.array([[1.5], [-2.0], [0.5]], dtype=np.float32), np.zeros(1, dtype=np.float32)])
    (tmp_path / "linear.tflite").write_bytes(convert(model, "float32"))
    data = {"path": str(tmp_path / "t.csv"), "task": "regression"}
    held_out = load_data(data)  # the same seeded split
    error = held_out.x_test @ np.array([1.5, -2.0, 0.5]) - held_out.y_test[:, 0]
    result = edgeopt.evaluate_tflite(tmp_path / "linear.tflite", data)
    assert result.task == "regression" and result.samples == 40
    assert "20% held out by edgeopt with seed 0" in result.held_out
    assert result.metrics["mae"].value == pytest.approx(np.mean(np.abs(error)), rel=1e-5)
    assert result.metrics["rmse"].value == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-5)
    assert result.metrics["rmse"].higher_is_better is False


def test_evaluate_writes_nothing(digits_models, tmp_path, monkeypatch):
    _, _, folder = digits_models
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert run("evaluate", str(folder / "int8.tflite"), "--data", "digits").exit_code == 0
    assert not list(here.iterdir())


def test_data_far_outside_an_int8_inputs_range_gets_a_warning_not_a_failure(digits_models, tmp_path):
    _, data, folder = digits_models
    np.savez(tmp_path / "unscaled.npz", x_train=data.x_train * 255, y_train=data.y_train,
             x_test=data.x_test * 255, y_test=data.y_test)  # pixels 0-255 for a model trained on 0-1
    result = run("evaluate", str(folder / "int8.tflite"), "--data", str(tmp_path / "unscaled.npz"), "--json")
    assert result.exit_code == 0
    assert "outside [0, 1]" in json.loads(result.stdout)["warnings"][0]
    assert "edgeopt: warning:" in result.stderr and "scale" in result.stderr
    scaled = edgeopt.evaluate_tflite(folder / "int8.tflite", "digits")
    assert scaled.warnings == ()
