"""Models with several inputs and outputs through compress: named data in, per-output figures out.

Each test builds its own tiny Functional model (an 8x8 image and a 3-feature vector in; a 4-class
head and a 2-unit regression head out: different units, so a swapped output cannot pass) and writes
its data as named arrays. The figures in report.json are checked against an evaluation done here, on
the emitted .tflite, with nothing but the LiteRT interpreter.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.cli import cli

pytestmark = pytest.mark.integration

FAST_BENCH = ["--set", "benchmark.runs=2", "--set", "benchmark.min_seconds=0", "--set", "benchmark.warmup=0"]
CLASSES = 4


def _samples(n: int, seed: int) -> dict[str, np.ndarray]:
    """Learnable data: the class from the image's brightness and the first feature's sign, the two
    regression targets from the other features and the brightness."""
    rng = np.random.default_rng(seed)
    bright = rng.integers(0, 2, n)
    image = (0.25 + 0.5 * bright[:, None, None, None] + rng.normal(0, 0.1, (n, 8, 8, 1))).astype("float32")
    features = rng.normal(0, 1, (n, 3)).astype("float32")
    label = (bright + 2 * (features[:, 0] > 0)).astype("int64")
    angle = np.stack([2 * features[:, 1], features[:, 2] + bright], axis=1).astype("float32")
    return {"image": image, "features": features, "label": label, "angle": angle}


def _write_npz(path, train, test, inputs=("image", "features"), outputs=("label", "angle"), rename=None):
    rename = rename or {}
    arrays = {}
    for split, part in (("train", train), ("test", test)):
        arrays.update({f"x_{split}/{rename.get(n, n)}": part[n] for n in inputs})
        arrays.update({f"y_{split}/{rename.get(n, n)}": part[n] for n in outputs})
    np.savez(path, **arrays)
    return path


def _two_in_two_out(keras):
    image = keras.Input((8, 8, 1), name="image")
    features = keras.Input((3,), name="features")
    a = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu", name="conv")(image))
    b = keras.layers.Dense(8, activation="relu", name="dense_features")(features)
    h = keras.layers.Dense(32, activation="relu", name="mix")(keras.layers.Concatenate()([a, b]))
    label = keras.layers.Dense(CLASSES, name="label")(h)
    angle = keras.layers.Dense(2, name="angle")(h)
    return keras.Model([image, features], [label, angle])


def _litert(path, x: dict[str, np.ndarray]) -> tuple[dict, dict, dict]:
    """Float outputs by signature name, and the input and output details by name: the interpreter alone."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    feed = {}
    for name, detail in inputs.items():
        value = x[name]
        if detail["dtype"] == np.int8:
            scale, zero = detail["quantization"]
            value = np.clip(np.round(value / scale + zero), -128, 127).astype(np.int8)
        feed[name] = value.astype(detail["dtype"])
    raw = runner(**feed)
    result = {}
    for name, value in raw.items():
        detail = outputs[name]
        if detail["dtype"] == np.int8:
            scale, zero = detail["quantization"]
            value = (value.astype(np.float32) - zero) * scale
        result[name] = value.astype(np.float32)
    return result, inputs, outputs


def _by_output(result: dict[str, np.ndarray], name: str) -> np.ndarray:
    """An output by its Keras name (QAT's files name it ``quant_<name>`` in their signature)."""
    return result[name] if name in result else result[f"quant_{name}"]


def _metric(variant: dict, name: str) -> float:
    return variant["metrics"][name]["value"]


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory):
    """A two-input two-output tf_keras model and its data as an .npz of named arrays."""
    from edgeopt.kerasapi import keras

    folder = tmp_path_factory.mktemp("multi_io")
    keras.utils.set_random_seed(0)
    _two_in_two_out(keras).save(folder / "model.keras")
    train, test = _samples(600, seed=1), _samples(200, seed=2)
    _write_npz(folder / "data.npz", train, test)
    return folder, test


def test_two_inputs_two_outputs_prune_qat_int8_scores_each_output_as_litert_does(two_by_two, tmp_path):
    folder, test = two_by_two
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: {folder / 'model.keras'}\n"
        f"data: {folder / 'data.npz'}\n"
        "train: {epochs: 8, learning_rate: 0.01}\n"
        "stages:\n"
        "  - {kind: prune, target_sparsity: 0.5, epochs: 2}\n"
        "  - {kind: quantize, mode: qat, epochs: 2}\n"
        "export: [float32, int8]\n"
        "benchmark: {targets: [local]}\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compress", str(recipe), "--out", str(out), "--quiet", *FAST_BENCH])
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads((out / "report.json").read_text())

    assert report["task"] == "multi-output"
    assert report["data"]["primary_metric"] == "accuracy/label"
    assert report["data"]["inputs"] == {"image": [8, 8, 1], "features": [3]}
    assert {name: o["task"] for name, o in report["data"]["outputs"].items()} == {
        "label": "classification", "angle": "regression"}
    variants = {v["name"]: v for v in report["variants"]}
    assert set(variants) == {"keras_float", "original", "float32", "int8"}
    for v in variants.values():
        assert set(v["metrics"]) == {"accuracy/label", "mae/angle", "rmse/angle"}, v["name"]

    int8 = variants["int8"]
    # Every input and output of the int8 file is int8, as the report and the interpreter both say.
    assert [d["dtype"] for d in int8["inspect"]["input_details"]] == ["int8", "int8"]
    assert [d["dtype"] for d in int8["inspect"]["output_details"]] == ["int8", "int8"]
    outputs, input_details, output_details = _litert(out / "int8.tflite", test)
    assert {d["dtype"] for d in [*input_details.values(), *output_details.values()]} == {np.int8}
    assert int8["sparsity"] >= 0.45

    label, angle = _by_output(outputs, "label"), _by_output(outputs, "angle")
    assert label.shape == (200, CLASSES) and angle.shape == (200, 2)
    accuracy = float(np.mean(label.argmax(axis=1) == test["label"]))
    mae = float(np.mean(np.abs(angle - test["angle"])))
    rmse = float(np.sqrt(np.mean((angle.astype(np.float64) - test["angle"]) ** 2)))
    assert _metric(int8, "accuracy/label") == pytest.approx(accuracy, abs=1e-9)
    assert _metric(int8, "mae/angle") == pytest.approx(mae, rel=1e-5)
    assert _metric(int8, "rmse/angle") == pytest.approx(rmse, rel=1e-5)
    assert "confusion_matrix" in int8["evaluation"]["outputs"]["label"]
    assert int8["evaluation"]["outputs"]["angle"]["output_names"] == ["angle[0]", "angle[1]"]

    # The model learned both tasks, and int8 calibration fed each input its own samples: the int8 file
    # stays close to the float one (a swapped calibration input would wreck its ranges).
    float32 = variants["float32"]
    assert _metric(float32, "accuracy/label") > 0.8
    assert _metric(float32, "mae/angle") < 0.7
    assert _metric(int8, "accuracy/label") > _metric(float32, "accuracy/label") - 0.1
    assert _metric(int8, "mae/angle") < _metric(float32, "mae/angle") + 0.3
    assert report["training"]["history"]["label_accuracy"], "one metric per output in training"

    # The table shows both outputs' task metrics within 100 columns; the gate takes the report.
    table = CliRunner().invoke(cli, ["report", str(out / "report.json")])
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert "accuracy/label" in lines[1] and "mae/angle" in lines[1]
    assert max(map(len, lines[1:])) <= 100
    html = CliRunner().invoke(cli, ["report", str(out / "report.json"), "--format", "html"])
    assert html.exit_code == 0
    assert "confusion matrices of output label" in html.output
    assert "predicted vs true of output angle" in html.output
    path = str(out / "report.json")
    check = CliRunner().invoke(cli, ["check", path, "--baseline", path])
    assert check.exit_code == 0, check.output + check.stderr

    # edgeopt evaluate on the int8 file and the named data gives the report's figures, per output.
    evaluated = CliRunner().invoke(cli, ["evaluate", str(out / "int8.tflite"), "--data",
                                         str(folder / "data.npz"), "--json"])
    assert evaluated.exit_code == 0, evaluated.output + evaluated.stderr
    figures = json.loads(evaluated.stdout)
    assert figures["data"]["task"] == "multi-output" and figures["data"]["samples"] == 200
    for name in ("accuracy/label", "mae/angle", "rmse/angle"):
        assert figures["metrics"][name]["value"] == pytest.approx(_metric(int8, name), rel=1e-6), name
    assert len(figures["input"]["tensors"]) == 2 and len(figures["output"]["tensors"]) == 2
    text = CliRunner().invoke(cli, ["evaluate", str(out / "int8.tflite"), "--data", str(folder / "data.npz")])
    assert text.exit_code == 0 and "accuracy/label" in text.output and "mae/angle" in text.output


def test_two_inputs_one_output_from_a_loader_of_named_arrays_split_by_edgeopt(tmp_path, monkeypatch):
    from edgeopt.kerasapi import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    features = keras.Input((3,), name="features")
    h = keras.layers.Concatenate()([keras.layers.Flatten()(image), features])
    keras.Model([image, features], keras.layers.Dense(CLASSES, name="label")(h)).save(tmp_path / "m.keras")
    samples = _samples(300, seed=3)
    np.savez(tmp_path / "arrays.npz", **samples)
    (tmp_path / "my_loader.py").write_text(
        "import numpy as np\n"
        f"_ARRAYS = r'{tmp_path / 'arrays.npz'}'\n"
        "def load():\n"
        "    a = np.load(_ARRAYS)\n"
        "    return {'x': {'features': a['features'], 'image': a['image']}, 'y': {'label': a['label']}}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_loader", raising=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compress", "--model", str(tmp_path / "m.keras"), "--data",
                                      "{loader: 'my_loader:load'}", "--preset", "ptq-int8", "--out", str(out),
                                      "--quiet", *FAST_BENCH])
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads((out / "report.json").read_text())
    # One output: the task and the metric keys are those of any classifier.
    assert report["task"] == "classification"
    split = report["data"]["preprocessing"]["split"]
    assert split["seed"] == 0 and split["test_split"] == 0.2
    int8 = next(v for v in report["variants"] if v["name"] == "int8")
    assert "accuracy" in int8["metrics"]

    # The same seeded split as edgeopt's, made here from its rule, and LiteRT on the int8 file.
    order = np.random.default_rng(0).permutation(300)
    test = {name: array[order[:60]] for name, array in samples.items()}
    outputs, inputs, _ = _litert(out / "int8.tflite", test)
    assert set(inputs) == {"image", "features"}
    predicted = _by_output(outputs, "label").argmax(axis=1)
    assert int8["metrics"]["accuracy"]["value"] == pytest.approx(float(np.mean(predicted == test["label"])))


def test_keras3_two_output_model_through_the_ptq_int8_preset(tmp_path):
    from edgeopt import keras3

    k3 = keras3.keras3_module()
    k3.utils.set_random_seed(0)
    image = k3.Input((8, 8, 1), name="image")
    h = k3.layers.Dense(16, activation="relu", name="hidden")(k3.layers.Flatten(name="flat")(image))
    model = k3.Model(image, [k3.layers.Dense(CLASSES, name="label")(h), k3.layers.Dense(2, name="angle")(h)])
    model.save(tmp_path / "m.keras")
    train, test = _samples(200, seed=4), _samples(100, seed=5)
    data = _write_npz(tmp_path / "d.npz", train, test, inputs=())
    with np.load(data) as archive:  # one unnamed input array, named outputs
        arrays = dict(archive)
    arrays.update(x_train=train["image"], x_test=test["image"])
    np.savez(data, **arrays)

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compress", "--model", str(tmp_path / "m.keras"), "--data", str(data),
                                      "--preset", "ptq-int8", "--out", str(out), "--quiet", *FAST_BENCH])
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "multi-output"
    assert report["model_file"]["source"] == "keras3" and report["model_file"]["verified_on"] == "samples"
    int8 = next(v for v in report["variants"] if v["name"] == "int8")
    assert [d["dtype"] for d in int8["inspect"]["output_details"]] == ["int8", "int8"]
    outputs, _, _ = _litert(out / "int8.tflite", {"image": test["image"]})
    label, angle = _by_output(outputs, "label"), _by_output(outputs, "angle")
    assert _metric(int8, "accuracy/label") == pytest.approx(float(np.mean(label.argmax(1) == test["label"])))
    mae = float(np.mean(np.abs(angle - test["angle"])))
    assert _metric(int8, "mae/angle") == pytest.approx(mae, rel=1e-5)


def test_data_names_that_are_not_the_models_are_refused_in_one_line(two_by_two, tmp_path):
    folder, test = two_by_two
    data = _write_npz(tmp_path / "d.npz", test, test, rename={"features": "feats", "angle": "pose"})
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compress", "--model", str(folder / "model.keras"), "--data", str(data),
                                      "--preset", "ptq-int8", "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "has inputs image, features but data 'd' has inputs image, feats" in line
    assert not out.exists()

    data = _write_npz(tmp_path / "e.npz", test, test, rename={"angle": "pose"})
    result = CliRunner().invoke(cli, ["compress", "--model", str(folder / "model.keras"), "--data", str(data),
                                      "--preset", "ptq-int8", "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    assert "has outputs label, angle but data 'e' has outputs label, pose" in _one_error_line(result)
    assert not out.exists()


def test_a_csv_for_a_two_input_model_is_refused_saying_a_csv_is_one_input(two_by_two, tmp_path):
    folder, _ = two_by_two
    rows = ["a,b,c,label"] + [f"{i % 3},{i % 5},{i % 7},{i % 2}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compress", "--model", str(folder / "model.keras"), "--data",
                                      str(tmp_path / "t.csv"), "--preset", "ptq-int8", "--out", str(out),
                                      "--quiet"])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "has inputs image, features but data 't' has one unnamed input array" in line
    assert "a CSV file or an image folder gives one input and one output" in line
    assert not out.exists()


def test_distillation_of_a_two_output_model_is_refused_with_the_limit(two_by_two, tmp_path):
    folder, _ = two_by_two
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: {folder / 'model.keras'}\ndata: {folder / 'data.npz'}\n"
                      "stages: [{kind: distill, teacher: digits_cnn, epochs: 1}]\nexport: [float32]\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compress", str(recipe), "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "stages[0] distill: distillation takes a model with one input and one output" in line
    assert not out.exists()


def test_evaluate_of_a_two_input_file_on_unnamed_data_is_one_line(two_by_two, tmp_path):
    from edgeopt.convert import convert
    from edgeopt.kerasapi import keras

    folder, _ = two_by_two
    (tmp_path / "m.tflite").write_bytes(convert(keras.models.load_model(folder / "model.keras"), "float32"))
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "m.tflite"), "--data", "digits"])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "features, image" in line and "name the arrays by the model's inputs" in line
