"""Binary models end to end, every metric in a compress report, and regression outputs named by the data
or the model: through compress, the converter and LiteRT, on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import edgeopt
from edgeopt.cli import cli
from edgeopt.report.plots import output_names

pytestmark = pytest.mark.integration
QUICK = ["benchmark.runs=5", "benchmark.warmup=1", "benchmark.min_seconds=0.05"]
WEIGHTS = np.array([1.0, -1.0, 0.5, 0.0], dtype=np.float32)


def compress(model, data, out, preset="ptq-int8", *sets: str):
    args = ["compress", "--model", str(model), "--data", str(data), "--preset", preset, "--out", str(out),
            "--quiet", "--json", *(arg for s in (*QUICK, *sets) for arg in ("--set", s))]
    return CliRunner().invoke(cli, args)


def two_classes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return x, (x @ WEIGHTS > 0).astype(np.int64)


def one_unit_model(activation: str | None, name: str):
    from edgeopt.kerasapi import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(1, activation=activation, name=name)])


def litert_accuracy(path, x: np.ndarray, y: np.ndarray, threshold: float) -> float:
    """The binary accuracy of a .tflite, computed here with LiteRT alone, one sample at a time."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    correct = 0
    for sample, label in zip(x, y, strict=True):
        value = sample[np.newaxis]
        if np.issubdtype(given["dtype"], np.integer):
            scale, zero_point = given["quantization"]
            value = np.clip(np.round(value / scale + zero_point), -128, 127)
        interpreter.set_tensor(given["index"], value.astype(given["dtype"]))
        interpreter.invoke()
        output = interpreter.get_tensor(taken["index"]).astype(np.float64)
        if np.issubdtype(taken["dtype"], np.integer):
            scale, zero_point = taken["quantization"]
            output = (output - zero_point) * scale
        correct += int(output.reshape(-1)[0] > threshold) == label
    return correct / len(y)


def test_a_sigmoid_binary_model_compresses_to_int8_and_its_accuracy_is_the_files_own(tmp_path):
    model = one_unit_model("sigmoid", "probability")
    x_train, y_train = two_classes(300, seed=0)
    x_test, y_test = two_classes(100, seed=1)
    model.compile("adam", "binary_crossentropy")
    model.fit(x_train, y_train, epochs=30, verbose=0)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    result = compress(tmp_path / "m.keras", tmp_path / "d.npz", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    int8 = next(v for v in report["variants"] if v["name"] == "int8")
    assert int8["status"] == "ok" and int8["inspect"]["int8_op_coverage"] == 1.0
    expected = litert_accuracy(tmp_path / "out" / "int8.tflite", x_test, y_test, threshold=0.5)
    assert int8["metrics"]["accuracy"]["value"] == pytest.approx(expected, abs=1e-12)
    assert expected > 0.85  # a model that learnt, not one scored as always class 0
    matrix = int8["evaluation"]["confusion_matrix"]
    assert np.array(matrix).shape == (2, 2) and sum(map(sum, matrix)) == 100
    assert int8["evaluation"]["binary"] == {"output": "probability", "threshold": 0.5,
                                            "decided_by": "sigmoid head"}
    for v in report["variants"]:  # the Keras model and every .tflite agree on the decision rule
        assert v["metrics"]["accuracy"]["value"] == pytest.approx(expected, abs=0.02), v["name"]


def test_a_logit_binary_model_fine_tunes_with_binary_cross_entropy_and_is_scored_above_zero(tmp_path):
    from edgeopt import train
    from edgeopt.data import BINARY

    loss, _ = train.loss_and_metrics(BINARY, "sigmoid")
    assert type(loss).__name__ == "BinaryCrossentropy" and loss.get_config()["from_logits"] is False
    model = one_unit_model(None, "logit")
    model.save(tmp_path / "logit.keras")
    x, y = two_classes(400, seed=2)
    np.savetxt(tmp_path / "d.csv", np.column_stack([x, y]), fmt=["%.5f"] * 4 + ["%d"], delimiter=",",
               header="a,b,c,d,label", comments="")
    recipe = edgeopt.load_recipe(None, [f"model={tmp_path / 'logit.keras'}", f"data={tmp_path / 'd.csv'}",
                                        "train.epochs=15", "train.learning_rate=0.01",
                                        "train.early_stopping=null", "stages=[]",
                                        "export=[int8]", *QUICK])
    report = edgeopt.compress(edgeopt.prepare(recipe)).report
    history = report.training["history"]
    assert len(history["loss"]) == 15 and history["loss"][-1] < history["loss"][0]
    assert 0.8 < history["accuracy"][-1] <= 1.0  # binary accuracy of logits, threshold 0
    int8 = report.variant("int8")
    assert int8.evaluation["binary"]["output"] == "logit" and int8.metrics["accuracy"].value > 0.85
    keras_accuracy = report.variant("keras_float").metrics["accuracy"].value
    assert int8.metrics["accuracy"].value == pytest.approx(keras_accuracy, abs=0.05)


def test_labels_beyond_a_binary_head_are_refused_in_one_line_with_exit_2(tmp_path):
    one_unit_model("sigmoid", "probability").save(tmp_path / "m.keras")
    x, y = two_classes(60, seed=3)
    np.savez(tmp_path / "three.npz", x=x, y=np.where(np.arange(60) % 5 == 0, 2, y))
    result = compress(tmp_path / "m.keras", tmp_path / "three.npz", tmp_path / "out")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "one output unit" in lines[0] and "0..2" in lines[0] and "give 0/1 labels" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_compress_report_has_top_5_accuracy_for_every_variant(tmp_path):
    from edgeopt.data import load_dataset
    from edgeopt.kerasapi import keras

    keras.utils.set_random_seed(0)
    data = load_dataset("digits")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=3, verbose=0)
    model.save(tmp_path / "m.keras")
    result = compress(tmp_path / "m.keras", "digits", tmp_path / "out")
    assert result.exit_code == 0, result.output
    for v in json.loads(result.stdout)["variants"]:
        top5, accuracy = v["metrics"]["top_k_accuracy"], v["metrics"]["accuracy"]
        assert top5["k"] == 5 and top5["unit"] == "fraction" and top5["higher_is_better"] is True
        assert accuracy["value"] <= top5["value"] <= 1.0, v["name"]
    assert "top-5 accuracy" in (tmp_path / "out" / "report.md").read_text()


def regression_model(name: str):
    from edgeopt.kerasapi import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name=name)])


def test_regression_outputs_are_named_by_the_csv_label_columns_with_rmse_for_every_variant(tmp_path):
    regression_model("pose").save(tmp_path / "m.keras")
    x = np.random.default_rng(4).normal(size=(60, 3))
    rows = ["a,b,c,speed,heading"] + [f"{a:.4f},{b:.4f},{c:.4f},{a + b:.4f},{b - c:.4f}" for a, b, c in x]
    (tmp_path / "t.csv").write_text("\n".join(rows))
    data = f"{{path: {tmp_path / 't.csv'}, label: [speed, heading]}}"
    result = compress(tmp_path / "m.keras", data, tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = edgeopt.load_report(tmp_path / "out" / "report.json")
    assert report.data["output_names"] == ["speed", "heading"]
    tflite = [v for v in report.variants if v.is_tflite]
    assert all({"mae", "rmse"} <= set(v.metrics) for v in report.variants)
    assert output_names(report, tflite, 2) == ["speed", "heading"]


def test_npz_regression_outputs_are_named_after_the_models_output_layer_not_yaw_and_pitch(tmp_path):
    regression_model("angles").save(tmp_path / "m.keras")
    x = np.random.default_rng(5).normal(size=(60, 3)).astype(np.float32)
    np.savez(tmp_path / "r.npz", x=x, y=np.stack([x[:, 0], x[:, 1]], axis=1))
    result = compress(tmp_path / "m.keras", tmp_path / "r.npz", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = edgeopt.load_report(tmp_path / "out" / "report.json")
    tflite = [v for v in report.variants if v.is_tflite]
    assert "output_names" not in report.data
    assert all(v.evaluation["output_names"] == ["angles[0]", "angles[1]"] for v in tflite)
    assert output_names(report, tflite, 2) == ["angles[0]", "angles[1]"]


def test_distilling_into_a_binary_student_is_refused_in_one_line(tmp_path):
    one_unit_model("sigmoid", "probability").save(tmp_path / "student.keras")
    one_unit_model("sigmoid", "probability").save(tmp_path / "teacher.keras")
    x, y = two_classes(60, seed=4)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    stage = f"stages=[{{kind: distill, teacher: {tmp_path / 'teacher.keras'}, epochs: 1}}]"
    result = compress(tmp_path / "student.keras", tmp_path / "d.npz", tmp_path / "out", "ptq-int8", stage)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "stages[0] distill" in lines[0] and "one output unit" in lines[0]
    assert not (tmp_path / "out").exists()
