"""The two repairs that keep every op int8 besides equalisation: percentile activation ranges narrow a
range one rare outlier widened, and bias correction removes the mean error int8 weights add to a
layer's output channels."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration

SPIKE = 1.5  # one pixel of one calibration sample, the others in [0, 1): the only one a conv channel sees


def _details(raw: bytes, samples: np.ndarray | None = None) -> list[dict]:
    """The file's tensor details, and with ``samples`` each tensor's value on them (``value``)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=raw, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    if samples is not None:
        feed = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(feed["index"], list(samples.shape))
        interpreter.allocate_tensors()
        scale, zero_point = feed["quantization"]
        interpreter.set_tensor(feed["index"], np.clip(np.round(samples / scale + zero_point), -128, 127)
                               .astype(np.int8))
        interpreter.invoke()
    details = interpreter.get_tensor_details()
    for detail in details:
        if samples is not None and detail["dtype"] == np.int8:
            scale, zero_point = detail["quantization"]
            value = interpreter.get_tensor(detail["index"]).astype(np.float32)
            detail["value"] = (value - zero_point) * scale
    return details


def _all_ops_int8(raw: bytes) -> bool:
    from edgeopt.inspect import inspect_tflite

    info = inspect_tflite(raw)
    return info["float_ops"] == [] and info["input_details"][0]["dtype"] == "int8"


@pytest.fixture(scope="module")
def outlier():
    """A small CNN one of whose conv channels fires (at about 30, ten times the others' largest) on one
    position of one calibration sample only: there its input pixel is SPIKE."""
    from edgeopt.kerasapi import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    kernel, bias = model.get_layer("conv").get_weights()
    kernel[1, 1, 0, 0], bias[0] = 100.0, -120.0  # relu(100 x - 120 + ...): only x = SPIKE reaches it
    model.get_layer("conv").set_weights([kernel, bias])
    samples = np.random.default_rng(0).uniform(size=(300, 8, 8, 1)).astype("float32")
    samples[17, 4, 4, 0] = SPIKE
    return model, samples


def test_percentile_ranges_narrow_a_range_one_outlier_set_and_keep_every_op_int8(outlier, tmp_path):
    from edgeopt.calibrate import percentile_ranges
    from edgeopt.convert import convert
    from edgeopt.evaluate import predict

    model, samples = outlier
    min_max = convert(model, "int8", samples)
    narrowed, count = percentile_ranges(model, samples)
    assert count >= 1 and _all_ops_int8(narrowed)
    scales = [{d["name"]: d["quantization"][0] for d in _details(raw) if d["dtype"] == np.int8}
              for raw in (min_max, narrowed)]
    conv = next(name for name in scales[0] if "conv/Relu" in name)
    assert scales[1][conv] < scales[0][conv] / 5  # the spike no longer sets the conv output's step
    assert all(scales[1][name] <= scales[0][name] * (1 + 1e-6) for name in scales[0] if name in scales[1])
    ordinary = samples[20:120]  # the spike (sample 17) is what the percentile file clips
    errors = []
    for name, raw in (("min_max", min_max), ("percentile", narrowed)):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(raw)  # runs in LiteRT, closer to the float model than min/max on the others
        errors.append(np.abs(predict(path, ordinary) - model(ordinary).numpy()).mean())
    assert errors[1] < errors[0]


@pytest.fixture(scope="module")
def biased():
    """A Dense layer each of whose output channels has one large weight and 63 small positive ones that
    per-channel int8 rounds to zero: on positive inputs its int8 output is low by about 0.09 (its ReLU
    never clips)."""
    from edgeopt.kerasapi import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    x = keras.layers.Dense(4, activation="relu", name="biased")(inputs)  # else its bias moves to head
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    kernel = np.full((64, 4), 0.003, dtype="float32")  # 0.38 of a weight step (1/127): rounds to 0
    kernel[np.arange(4), np.arange(4)] = 1.0
    model.get_layer("biased").set_weights([kernel, np.zeros(4, "float32")])
    samples = np.random.default_rng(1).uniform(size=(400, 64)).astype("float32")
    return model, samples


def _channel_error(model, raw: bytes, samples: np.ndarray, layer: str) -> np.ndarray:
    """Mean per output channel of the int8 file's tensor for ``layer`` minus the float layer's."""
    from edgeopt.kerasapi import keras

    units = model.get_layer(layer).units
    tensor = next(d for d in _details(raw, samples) if "value" in d and f"/{layer}/" in f"/{d['name']}"
                  and tuple(d["shape"]) == (len(samples), units))
    float_output = keras.Model(model.inputs, model.get_layer(layer).output)(samples).numpy()
    return tensor["value"].mean(axis=0) - float_output.mean(axis=0)


def test_bias_correction_removes_the_mean_error_of_a_biased_layer_keeping_every_op_int8(biased):
    from edgeopt.calibrate import bias_corrected
    from edgeopt.convert import convert

    model, samples = biased

    def quantize(m) -> bytes:
        return convert(m, "int8", samples)

    before = _channel_error(model, quantize(model), samples, "biased")
    assert np.all(before < -0.05)  # the construction: int8 lost the small weights' mean contribution
    corrected, raw, layers = bias_corrected(model, samples, quantize)
    assert layers == ["biased", "head"] and _all_ops_int8(raw)
    after = _channel_error(model, raw, samples, "biased")
    assert np.abs(after).mean() < np.abs(before).mean() / 5
    assert np.allclose(model.get_layer("biased").get_weights()[1], 0)  # the model given is not changed
    assert np.all(corrected.get_layer("biased").get_weights()[1] > 0.05)
