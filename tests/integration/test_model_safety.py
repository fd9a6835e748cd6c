"""Model files run no code without consent; unsupported models are refused in one line (exit 2)."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from edgeopt.cli import cli

pytestmark = pytest.mark.integration

FAST = ["--set", "train.epochs=0", "--set", "stages=[]", "--set", "export=[float32]",
        "--set", "benchmark.runs=1", "--set", "benchmark.min_seconds=0", "--set", "benchmark.warmup=0",
        "--quiet"]


def _lambda_model(mark):
    """A digits-shaped model whose Lambda layer writes ``mark`` whenever Keras runs its code."""
    from edgeopt.kerasapi import keras

    path = str(mark)
    touch = lambda x, p=path: (open(p, "w").close(), x)[1]  # noqa: E731, SIM115 - the code under test
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(touch, name="innocent_looking")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    mark = folder / "code_ran"
    model = _lambda_model(mark)
    model.save(folder / "lambda.h5")
    shutil.copy(folder / "lambda.h5", folder / "renamed.keras")  # HDF5 under the zip format's name
    model.save(folder / "lambda.keras")
    mark.unlink(missing_ok=True)  # building and saving ran it; from here on only loading may
    return folder, mark


def _compress(*args):
    return CliRunner().invoke(cli, ["compress", *map(str, args)])


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


@pytest.mark.parametrize("name", ["lambda.h5", "renamed.keras", "lambda.keras"])
def test_lambda_model_is_refused_without_trust_and_its_code_never_runs(lambda_files, tmp_path, name):
    folder, mark = lambda_files
    out = tmp_path / "out"
    result = _compress("--set", f"model={folder / name}", "--set", "data=digits", "--out", out, *FAST)
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "innocent_looking" in line and "--trust-model" in line
    assert not mark.exists()
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_lambda_teacher_is_refused_before_any_training(lambda_files, tmp_path):
    folder, mark = lambda_files
    stages = f"[{{kind: distill, teacher: '{folder / 'lambda.h5'}', epochs: 1}}]"
    result = _compress("--set", "model=digits_cnn", "--set", "data=digits", "--out", tmp_path / "out",
                       *FAST, "--set", f"stages={stages}")
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "stages[0].teacher" in line and "--trust-model" in line
    assert not mark.exists()


def test_trusted_lambda_model_loads_and_runs(lambda_files, tmp_path):
    folder, mark = lambda_files
    result = _compress("--set", f"model={folder / 'lambda.h5'}", "--set", "data=digits",
                       "--out", tmp_path / "out", *FAST, "--trust-model")
    assert result.exit_code == 0, result.stderr
    assert mark.exists()
    assert (tmp_path / "out" / "report.json").is_file()


def test_savedmodel_without_a_serving_signature_is_refused(tmp_path):
    from edgeopt.kerasapi import tf

    module = tf.Module()
    module.f = tf.function(lambda x: x * 2.0, input_signature=[tf.TensorSpec([None, 8, 8, 1])])
    tf.saved_model.save(module, str(tmp_path / "plain"), signatures={})  # no signature: nothing to convert
    result = _compress("--set", f"model={tmp_path / 'plain'}", "--set", "data=digits",
                       "--out", tmp_path / "out", *FAST)
    assert result.exit_code == 2
    assert "has no serving signature" in _one_error_line(result)
    assert not (tmp_path / "out").exists()


def test_two_output_model_on_one_unnamed_label_array_is_refused_naming_its_outputs(tmp_path):
    from edgeopt.kerasapi import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    outputs = [keras.layers.Dense(10, name="digit")(x), keras.layers.Dense(2, name="pose")(x)]
    keras.Model(inputs, outputs).save(tmp_path / "two.keras")
    result = _compress("--set", f"model={tmp_path / 'two.keras'}", "--set", "data=digits",
                       "--out", tmp_path / "out", *FAST)
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "has outputs digit, pose but data 'digits' has one unnamed output array" in line
    assert "y_train/<name>" in line
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    bogus = tmp_path / "model.keras"
    bogus.write_text("not a model")
    result = _compress("--set", f"model={bogus}", "--set", "data=digits", "--out", tmp_path / "out", *FAST)
    assert result.exit_code == 2
    assert "not a saved Keras model" in _one_error_line(result)


@pytest.mark.parametrize("where, sets", [
    ("training", ["--set", "train.learning_rate=1e12", "--set", "train.optimizer=sgd",
                  "--set", "train.epochs=2"]),
    ("stage 1 (prune)", ["--set", "train.epochs=1", "--set", "stages.0.learning_rate=1e12",
                         "--set", "stages.0.epochs=2", "--set", "stages.0.frequency=5"]),
])
def test_diverging_run_stops_with_exit_1_naming_where(tmp_path, where, sets):
    out = tmp_path / "out"
    result = _compress("models/digits_cnn/recipe.yaml", "--out", out, "--quiet", *sets)
    assert result.exit_code == 1
    assert f"{where} diverged" in _one_error_line(result)
    assert not out.exists()
