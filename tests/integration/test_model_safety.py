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


# -- however the metadata is spelled, a SavedModel's Lambda is seen --------------------------------------

# Spellings that tf_keras' JSON parser reads as "class_name": "Lambda", and a byte pattern would not.
RESPELLINGS = {
    "escaped letter": ('"class_name": "Lambda"', '"class_name": "L\\u0061mbda"'),
    "space before colon": ('"class_name": "Lambda"', '"class_name" : "Lambda"'),
    "escaped key": ('"class_name": "Lambda"', '"cl\\u0061ss_name": "Lambda"'),
}


def _respell(folder, old: str, new: str) -> None:
    """Rewrite every node's JSON in keras_metadata.pb with ``old`` spelled as ``new``."""
    from edgeopt.modelfile import _saved_metadata_type

    meta = folder / "keras_metadata.pb"
    metadata = _saved_metadata_type()()
    metadata.ParseFromString(meta.read_bytes())
    for node in metadata.nodes:
        node.metadata = node.metadata.replace(old, new)
    meta.write_bytes(metadata.SerializeToString())
    assert b'"class_name": "Lambda"' not in meta.read_bytes()


@pytest.fixture(scope="module")
def respelled(lambda_files):
    folder, mark = lambda_files
    model = _lambda_model(mark)
    model.save(folder / "lambda_sm", save_format="tf")
    for label, (old, new) in RESPELLINGS.items():
        target = folder / label.replace(" ", "_")
        shutil.copytree(folder / "lambda_sm", target)
        _respell(target, old, new)
    mark.unlink(missing_ok=True)
    return folder, mark


@pytest.mark.parametrize("label", RESPELLINGS)
def test_a_respelled_savedmodel_lambda_is_refused_and_never_runs(respelled, tmp_path, label):
    folder, mark = respelled
    out = tmp_path / "out"
    result = _compress("--set", f"model={folder / label.replace(' ', '_')}", "--set", "data=digits",
                       "--out", out, *FAST)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result)
    assert "innocent_looking" in line and "--trust-model" in line
    assert not mark.exists() and not out.exists()


def test_the_respelled_savedmodel_really_runs_its_code_when_trusted(respelled, tmp_path):
    """The refusal above is not vacuous: tf_keras does read the respelled class as a Lambda."""
    folder, mark = respelled
    result = _compress("--set", f"model={folder / 'escaped_letter'}", "--set", "data=digits",
                       "--out", tmp_path / "out", *FAST, "--trust-model")
    assert result.exit_code == 0, result.stderr
    assert mark.exists()
    mark.unlink()


@pytest.mark.parametrize("command", [
    ["train", "{model}", "--data", "digits", "--epochs", "1", "--quiet"],
    ["compress", "--preset", "ptq-int8", "--model", "{model}", "--data", "digits", "--quiet"],
    ["compress", "models/digits_cnn/recipe.yaml", "--quiet", "--set", "train.epochs=0", "--set",
     "stages=[{{kind: distill, teacher: '{model}', epochs: 1}}]"],
])
def test_every_entry_refuses_the_respelled_lambda(respelled, tmp_path, command):
    folder, mark = respelled
    model = folder / "escaped_key"
    args = [part.format(model=model) for part in command] + ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "--trust-model" in _one_error_line(result)
    assert not mark.exists() and not (tmp_path / "out").exists()


def _nested_lambda_model(mark):
    """A Lambda two models deep, inside a TimeDistributed wrapper: no top-level layer shows it."""
    from edgeopt.kerasapi import keras

    path = str(mark)
    touch = lambda x, p=path: (open(p, "w").close(), x)[1]  # noqa: E731, SIM115 - the code under test
    inner_in = keras.Input((8, 1))
    wrapped = keras.layers.TimeDistributed(keras.layers.Lambda(touch, name="deep"))
    inner = keras.Model(inner_in, wrapped(inner_in), name="inner")
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Reshape((8, 8))(inputs)
    x = keras.layers.Reshape((8, 8, 1))(x)
    x = keras.layers.TimeDistributed(inner)(x)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))


@pytest.mark.parametrize("fmt", ["h5", "keras", "tf"])
def test_a_lambda_nested_in_models_and_wrappers_is_refused_in_every_format(tmp_path, fmt):
    mark = tmp_path / "code_ran"
    model = _nested_lambda_model(mark)
    path = tmp_path / ("nested" if fmt == "tf" else f"nested.{fmt}")
    model.save(path, **({"save_format": "tf"} if fmt == "tf" else {}))
    mark.unlink(missing_ok=True)
    result = _compress("--set", f"model={path}", "--set", "data=digits", "--out", tmp_path / "out", *FAST)
    assert result.exit_code == 2, result.output
    assert "'deep'" in _one_error_line(result)
    assert not mark.exists()


def test_a_savedmodel_layer_of_an_unknown_class_is_refused(tmp_path):
    from edgeopt.kerasapi import keras

    class Doubler(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(Doubler(name="twice")(inputs))
    keras.Model(inputs, keras.layers.Dense(10)(x)).save(tmp_path / "custom", save_format="tf")
    result = _compress("--set", f"model={tmp_path / 'custom'}", "--set", "data=digits",
                       "--out", tmp_path / "out", *FAST)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result)
    assert "Doubler" in line and "--custom-objects" in line
