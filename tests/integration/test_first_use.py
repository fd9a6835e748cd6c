"""What a new user trips on: a flat folder evaluated whole, a CSV with its own test file, a model at
chance told why, labels.txt beside the .tflite files, and a quiet start that says what it is doing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeopt.cli import cli

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--set", "benchmark.runs=5", "--set", "benchmark.warmup=1", "--set", "benchmark.min_seconds=0.05"]
PER_CLASS = 15


def _folder(root: Path, bright_first: bool) -> Path:
    """8x8 grayscale images in class folders a/ and b/: one class dark (~45), the other bright (~195)."""
    rng = np.random.default_rng(0)
    for index, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        bright = (index == 0) == bright_first
        for i in range(PER_CLASS):
            pixels = (150 if bright else 0) + 40 + rng.integers(0, 10, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def _threshold_model(inputs: tuple[int, ...], threshold: float):
    """Class 1 where the mean input exceeds ``threshold``: exact, so no training is needed."""
    from edgeopt.kerasapi import keras

    size = int(np.prod(inputs))
    model = keras.Sequential([keras.Input(inputs), keras.layers.Flatten(), keras.layers.Dense(2)])
    kernel = np.zeros((size, 2), np.float32)
    kernel[:, 1] = 1 / size
    model.layers[-1].set_weights([kernel, np.array([0, -threshold], np.float32)])
    return model


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A flat folder whose classes the model gets right, one whose class order is the other way round,
    and the float32 .tflite of a model that calls bright images class 1 (b)."""
    from edgeopt.convert import convert

    root = tmp_path_factory.mktemp("first_use")
    right, swapped = _folder(root / "right", bright_first=False), _folder(root / "swapped", bright_first=True)
    (root / "m.tflite").write_bytes(convert(_threshold_model((8, 8, 1), 120.0), "float32"))
    return root / "m.tflite", right, swapped


def _evaluate(*args: str):
    return CliRunner().invoke(cli, ["evaluate", *args])


def test_a_folder_without_train_and_test_folders_is_scored_whole_and_says_so(images):
    model, right, _ = images
    spec = f"{{path: {right}, color_mode: grayscale}}"
    whole = _evaluate(str(model), "--data", spec)
    assert whole.exit_code == 0, whole.output
    assert f"scored all {2 * PER_CLASS} images of {right} (no train/ and test/ folders" in whole.stdout
    assert "accuracy         1.0000 (30 of 30 correct)" in whole.stdout and not whole.stderr
    figures = json.loads(_evaluate(str(model), "--data", spec, "--json").stdout)
    assert figures["data"]["split"] == "all" and figures["data"]["samples"] == 2 * PER_CLASS
    held_out = json.loads(_evaluate(str(model), "--data", spec, "--split", "test", "--json").stdout)
    assert held_out["data"]["split"] == "test" and held_out["data"]["samples"] == 6  # compress's 20 %


def test_a_model_at_chance_is_warned_with_the_class_order_and_the_input_range(images):
    model, _, swapped = images
    result = _evaluate(str(model), "--data", f"{{path: {swapped}, color_mode: grayscale}}")
    assert result.exit_code == 0 and "accuracy         0.0000" in result.stdout
    warning = next(line for line in result.stderr.splitlines() if "chance" in line)
    assert warning.startswith("edgeopt: warning: accuracy 0.000 is at or below chance (1/2 = 0.500) on 30 ")
    assert "edgeopt read the classes as 0 a, 1 b (class folders sort alphabetically)" in warning
    assert "the data's input values span [40, 199]" in warning and "data.scale" in warning


def test_a_model_above_chance_gets_no_warning(images):
    model, right, _ = images
    evaluation = json.loads(_evaluate(str(model), "--data", f"{{path: {right}, color_mode: grayscale}}",
                                      "--json").stdout)
    assert "warnings" not in evaluation


def test_compress_warns_when_the_users_model_scores_at_chance_on_the_data(images, tmp_path):
    _, _, swapped = images
    _threshold_model((8, 8, 1), 120.0).save(tmp_path / "m.keras")
    data = f"{{path: {swapped}, color_mode: grayscale, test_split: 0.8}}"  # 24 held out
    result = CliRunner().invoke(cli, ["compress", "--model", str(tmp_path / "m.keras"), "--data", data,
                                      "--set", "stages=[]", "--set", "export=[float32]", "--out",
                                      str(tmp_path / "out"), *QUICK])
    assert result.exit_code == 0, result.output
    assert "warning: accuracy 0.000 is at or below chance" in result.stderr
    note = next(v for v in json.loads((tmp_path / "out" / "report.json").read_text())["variants"]
                if v["name"] == "original")["note"]
    assert "0 a, 1 b (class folders sort alphabetically)" in note  # the note shows in every rendering


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """a.csv and b.csv (its own test file) with text labels, and a saved model that scores them."""
    folder = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(1)

    def write(name: str, n: int) -> None:
        x = rng.uniform(0, 1, (n, 2))
        kinds = np.where(x.mean(axis=1) > 0.5, "yes", "no")
        rows = ["f1,f2,kind"] + [f"{a:.4f},{b:.4f},{k}" for (a, b), k in zip(x, kinds, strict=True)]
        (folder / name).write_text("\n".join(rows) + "\n")

    write("a.csv", 60)
    write("b.csv", 33)
    _threshold_model((2,), 0.5).save(folder / "m.keras")
    return folder


def test_evaluate_scores_a_csvs_own_test_file(table, tmp_path):
    from edgeopt.convert import convert
    from edgeopt.kerasapi import keras

    (tmp_path / "m.tflite").write_bytes(convert(keras.models.load_model(table / "m.keras"), "float32"))
    spec = f"{{train: {table / 'a.csv'}, test: {table / 'b.csv'}, label: kind}}"
    result = _evaluate(str(tmp_path / "m.tflite"), "--data", spec, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["data"]["split"] == "test" and figures["data"]["samples"] == 33
    assert figures["data"]["held_out"] == f"the test file {table / 'b.csv'}"
    assert figures["metrics"]["accuracy"]["value"] == 1.0


def test_compress_of_a_saved_model_tests_on_the_csvs_test_file_and_writes_labels(table, tmp_path):
    out = tmp_path / "out"
    data = f"{{train: {table / 'a.csv'}, test: {table / 'b.csv'}, label: kind}}"
    result = CliRunner().invoke(cli, ["compress", "--model", str(table / "m.keras"), "--data", data,
                                      "--preset", "ptq-int8", "--out", str(out), *QUICK])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["n_train"] == 60 and report["data"]["n_test"] == 33
    # the classes in the model's output order, sorted as edgeopt read the text labels, beside the files
    assert (out / "labels.txt").read_text() == "no\nyes\n"
    steps = [line.split("] ", 1)[1] for line in result.stderr.splitlines() if line.startswith("[")]
    assert steps[0].startswith("loading data a") and steps[1].startswith(f"loading {table / 'm.keras'}")
    assert any(step.startswith("converting original to float32") for step in steps)
    assert not any("training" in step or "0 epochs" in step for step in steps), steps  # PTQ: nothing trained


QUIET_SCRIPT = """
import warnings
import edgeopt, edgeopt.pipeline as pipeline

real = pipeline._compress

def noisy(*args, **kwargs):  # what TFMOT's wrappers make tf_keras say when a variable gets no gradient
    import tensorflow as tf  # imported here: TensorFlow starts inside the API's call, as for a user
    from tf_keras.src.optimizers import utils
    utils.filter_empty_gradients([(None, tf.Variable(1.0, name="orphan")),
                                  (tf.constant(1.0), tf.Variable(2.0))])
    warnings.warn("a warning raised inside the run")
    return real(*args, **kwargs)

pipeline._compress = noisy
recipe = edgeopt.load_recipe("models/digits_cnn/recipe.yaml", ["train.epochs=1", "stages=[]",
    "export=[float32]", "benchmark.runs=5", "benchmark.warmup=1", "benchmark.min_seconds=0.05"])
print("ok" if edgeopt.compress(edgeopt.prepare(recipe)).ok else "failed")
"""


def test_the_python_api_prints_no_tensorflow_lines_or_warnings():
    done = subprocess.run([sys.executable, "-c", QUIET_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert done.stdout.strip() == "ok", done.stderr
    assert done.stderr == ""  # no oneDNN / absl notices, no "Gradients do not exist", no warnings
