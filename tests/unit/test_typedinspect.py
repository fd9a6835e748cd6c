"""The inspection is read as types, never as dict keys (STYLE.md section 10: "inspections are types",
"pass objects, not strings"): quantization parameters and the asked-for sparsity pattern are typed,
report.json's form of them is unchanged, and the estimate and evaluate paths read the typed fields.

One tiny tf_keras classifier is converted once to a full-int8 ``.tflite`` (int8 input and output,
per-channel int8 kernels), so every form of quantization an inspection writes is read from a real file.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgeopt.bench.estimate import KIND_DENSE, model_costs
from edgeopt.errors import InputError
from edgeopt.evaluate import (
    _expected_range,
    _one_input_one_output,
    below_chance,
    check_fits,
    clipped_inputs,
    evaluate_file,
)
from edgeopt.inspect import inspect_tflite, inspection
from edgeopt.sources import from_arrays
from edgeopt.types import Inspection, IoFacts, OpFacts, Pattern, Quantization, TensorFacts

CLASSES = 3


def _bytes(data) -> str:
    return json.dumps(data, indent=2, allow_nan=False)


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory):
    """A full-int8 .tflite of a tiny classifier: int8 input and output, per-channel int8 kernels."""
    from edgeopt.kerasapi import keras, tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(CLASSES, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(16):
            yield [rng.random((1, 6, 6, 1), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("typedinspect") / "int8.tflite"
    path.write_bytes(converter.convert())
    return path


def _data(x_test: np.ndarray, n_train: int = 12):
    rng = np.random.default_rng(3)
    x_train = rng.random((n_train, 6, 6, 1), dtype=np.float32)
    y_train = np.arange(n_train) % CLASSES
    y_test = np.arange(len(x_test)) % CLASSES
    return from_arrays("tiny", "test arrays", x_train, y_train, x_test.astype(np.float32), y_test,
                       task="classification")


# -- the typed inspection of a real file, and its JSON ----------------------------------------------------


def test_the_typed_inspection_of_a_real_file_writes_inspect_tflites_json_byte_for_byte(int8_file):
    written = inspect_tflite(int8_file)
    info = inspection(int8_file)
    assert _bytes(info.to_json()) == _bytes(written)
    # what a saved report holds reads back and writes back as it was
    saved = json.loads(_bytes(written))
    assert _bytes(Inspection.from_json(saved).to_json()) == _bytes(written)
    # the JSON forms are the ones report.json always had (keys and their order)
    assert list(written["pattern"]) == ["structure", "share"]
    assert list(written["input_details"][0]) == ["name", "shape", "shape_signature", "dtype", "quantization"]
    assert list(written["input_details"][0]["quantization"]) == ["scale", "zero_point"]
    kernels = [t for t in written["per_tensor"].values() if t["role"] == "weight"]
    assert [list(t["quantization"]) for t in kernels] == [["per_channel", "quantized_dimension"]] * 2
    with_pattern = inspect_tflite(int8_file, pattern=(1, 4))
    assert _bytes(Inspection.from_json(with_pattern).to_json()) == _bytes(with_pattern)


def test_quantization_and_the_pattern_are_typed_fields(int8_file):
    info = inspection(int8_file)
    model_input, model_output = info.input_details[0], info.output_details[0]
    assert isinstance(model_input.quantization, Quantization)
    assert model_input.dtype == "int8" and model_output.dtype == "int8"
    assert isinstance(model_input.scale, float) and model_input.scale > 0
    assert model_input.scale == model_input.quantization.tensor_scale
    assert isinstance(model_input.zero_point, int) and -128 <= model_input.zero_point <= 127
    assert model_input.quantization.channels is None
    assert isinstance(info.pattern, Pattern) and info.pattern.structure == "2:4"
    assert info.pattern_structure == "2:4" and info.pattern_share == info.pattern.share
    # the rows a per-tensor table needs: role, dtype, and scale / zero point or per-channel count
    weights = info.weights()
    assert {t.dtype for t in weights.values()} == {"int8"}
    conv = next(t for t in weights.values() if t.shape and len(t.shape) == 4)
    assert conv.role == "weight" and conv.channels == 4 and conv.scale is None and conv.zero_point is None
    assert isinstance(conv.quantization, Quantization) and conv.quantization.quantized_dimension == 0
    assert all(isinstance(op, OpFacts) for op in info.op_list)


def test_each_quantization_form_round_trips_and_answers_by_attribute():
    per_tensor = {"scale": 0.25, "zero_point": -3}
    listed = {"scale": [0.5, 0.25], "zero_point": [0, 0], "quantized_dimension": 1}
    counted = {"per_channel": 8, "quantized_dimension": 0}
    for form in (per_tensor, listed, counted):
        assert _bytes(Quantization.from_json(form).to_json()) == _bytes(form)
    assert Quantization.of_tensor(0.25, -3).to_json() == per_tensor
    assert _bytes(Quantization.of_channels([0.5, 0.25], [0, 0], 1).to_json()) == _bytes(listed)
    assert _bytes(Quantization.counted(8, 0).to_json()) == _bytes(counted)
    one = IoFacts.from_json({"name": "x", "dtype": "int8", "quantization": per_tensor})
    assert (one.scale, one.zero_point) == (0.25, -3)
    channels = IoFacts.from_json({"name": "x", "dtype": "int8", "quantization": listed})
    assert channels.scale is None and channels.quantization.channels == 2
    plain = IoFacts.from_json({"name": "y", "dtype": "float32", "quantization": None})
    assert plain.scale is None and plain.zero_point == 0 and plain.to_json()["quantization"] is None
    weight = TensorFacts.from_json({"role": "weight", "quantization": counted})
    assert weight.channels == 8 and weight.scale is None
    assert _bytes(weight.to_json()) == _bytes({"role": "weight", "quantization": counted})


def test_a_damaged_or_older_quantization_or_pattern_reads_without_a_crash():
    damaged = Inspection.from_json({"pattern": "2:4", "input_details": [{"name": "x", "quantization": 7}]})
    assert damaged.pattern is None and damaged.pattern_share is None
    assert damaged.input_details[0].quantization is None and damaged.input_details[0].scale is None
    older = {"ops": {"CONV_2D": 1}}  # no pattern at all: it stays absent
    info = Inspection.from_json(older)
    assert info.pattern is None and _bytes(info.to_json()) == _bytes(older)
    newer = {"pattern": {"structure": "1:4", "share": 0.5, "groups": 12}}  # a key this edgeopt lacks
    assert _bytes(Inspection.from_json(newer).to_json()) == _bytes(newer)
    assert Inspection.from_json(newer).pattern.extra == {"groups": 12}


# -- the estimate reads the typed op rows -------------------------------------------------------------------


def test_the_estimate_costs_are_the_typed_op_rows_of_the_main_subgraph(int8_file, monkeypatch):
    import edgeopt.bench.estimate as estimate

    info = inspection(int8_file)
    costs = model_costs(str(int8_file))
    ops = [op for op in info.op_list if op.subgraph == 0]
    assert [c["op"] for c in costs] == [op.op for op in ops]
    assert [c["macs"] for c in costs] == [op.macs for op in ops]
    assert {c["dtype"] for c in costs if c["kind"] == KIND_DENSE} == {"int8"}
    assert sum(c["macs"] for c in costs) == info.macs > 0
    # it asks the typed inspection: what the type says is what it counts
    changed = dataclasses.replace(info, op_list=tuple(dataclasses.replace(op, macs=7, compute="float")
                                                      for op in info.op_list))
    monkeypatch.setattr(estimate, "inspection", lambda path: changed)
    assert {(c["macs"], c["dtype"]) for c in model_costs(str(int8_file))} == {(7, "float")}


# -- evaluate reads the typed inputs and outputs -----------------------------------------------------------


def test_evaluate_checks_the_file_against_the_data_through_its_typed_inputs(int8_file):
    info = inspection(int8_file)
    model_input, model_output = _one_input_one_output(int8_file, info)
    assert isinstance(model_input, IoFacts) and isinstance(model_output, IoFacts)
    check_fits(int8_file, model_input, model_output, _data(np.zeros((6, 6, 6, 1))))  # fits: no error
    with pytest.raises(InputError, match=r"takes samples of shape \(6, 6, 1\) but data 'tiny' has samples "
                                         r"of shape \(5, 5, 1\)"):
        check_fits(int8_file, model_input, model_output, _wrong_shape())
    low, high = _expected_range(model_input)
    scale, zero_point = model_input.scale, model_input.zero_point
    assert (low, high) == pytest.approx(((-128 - zero_point) * scale, (127 - zero_point) * scale))
    assert _expected_range(model_output.replace(dtype="float32", quantization=None)) is None
    assert clipped_inputs(model_input, np.full((4, 6, 6, 1), (low + high) / 2)) is None
    warning = clipped_inputs(model_input, np.full((4, 6, 6, 1), high + 100.0))
    assert warning.startswith("100% of the input values lie outside") and "int8 input" in warning


def _wrong_shape():
    rng = np.random.default_rng(4)
    return from_arrays("tiny", "test arrays", rng.random((12, 5, 5, 1), dtype=np.float32),
                       np.arange(12) % CLASSES, rng.random((6, 5, 5, 1), dtype=np.float32),
                       np.arange(6) % CLASSES, task="classification")


def test_below_chance_names_the_range_an_int8_input_represents(int8_file):
    model_input = inspection(int8_file).input_details[0]
    low, high = _expected_range(model_input)
    data = _data(np.full((30, 6, 6, 1), 0.5))
    warning = below_chance(0.0, data, model_input)
    assert f"while the model's int8 input represents [{low:.4g}, {high:.4g}]" in warning
    assert "while the model's" not in below_chance(0.0, data, None)


def test_evaluate_file_records_the_inputs_json_and_warns_of_clipped_inputs(int8_file):
    data = _data(np.full((9, 6, 6, 1), 500.0))  # far outside what the int8 input represents
    evaluation = evaluate_file(int8_file, data)
    written = inspect_tflite(int8_file)
    keep = ("name", "shape", "shape_signature", "dtype", "quantization")
    assert evaluation.input == {k: written["input_details"][0][k] for k in keep}
    assert evaluation.output == {k: written["output_details"][0][k] for k in keep}
    assert evaluation.samples == 9 and "accuracy" in evaluation.metrics
    assert any(w.startswith("100% of the input values lie outside") for w in evaluation.warnings)
