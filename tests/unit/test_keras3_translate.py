"""Keras 3 configurations in tf_keras' form, on JSON written here: no TensorFlow, no Keras."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest

from edgeopt import keras3
from edgeopt.errors import InputError
from edgeopt.modelfile import check_no_code, keras_version, load_model_file


def _policy(name="float32"):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def _tensor(layer, node=0, index=0):
    return {"class_name": "__keras_tensor__",
            "config": {"shape": [None, 4], "dtype": "float32", "keras_history": [layer, node, index]}}


def _call(*tensors, **kwargs):
    first = tensors[0] if len(tensors) == 1 else list(tensors)
    return {"args": [first], "kwargs": kwargs}


def _input(name="x", shape=(None, 4)):
    return {"module": "keras.layers", "class_name": "InputLayer", "name": name, "inbound_nodes": [],
            "config": {"batch_shape": list(shape), "dtype": "float32", "sparse": False, "ragged": False,
                       "name": name, "optional": False}, "registered_name": None}


def _layer(class_name, name, nodes, module="keras.layers", **config):
    return {"module": module, "class_name": class_name, "registered_name": None, "name": name,
            "build_config": {"input_shape": [None, 4]}, "inbound_nodes": nodes,
            "config": {"name": name, "trainable": True, "dtype": _policy(), **config}}


def _dense(name, nodes, **config):
    settings = {"units": 4, "activation": "linear", "use_bias": True,
                "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                       "config": {"seed": None, "input_axes": None, "output_axes": None},
                                       "registered_name": None},
                "kernel_regularizer": {"module": "keras.regularizers", "class_name": "L2",
                                       "config": {"l2": 0.01}, "registered_name": None},
                "quantization_config": None} | config
    return _layer("Dense", name, nodes, **settings)


def _functional(layers, inputs=("x", 0, 0), outputs=("out", 0, 0)):
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": None,
            "config": {"name": "net", "trainable": True, "layers": layers,
                       "input_layers": list(inputs), "output_layers": list(outputs)}}


OPS = "keras.src.ops.numpy"


def _layers(config):
    return {layer["name"]: layer for layer in config["config"]["layers"]}


def test_a_functional_config_takes_tf_keras_form():
    config = _functional([
        _input(),
        _dense("a", [_call(_tensor("x"))]),
        _dense("b", [_call(_tensor("x"))], activation="silu"),
        _layer("Add", "sum", [_call(_tensor("a"), _tensor("b"))]),
        _layer("BatchNormalization", "out", [_call(_tensor("sum"), mask=None, training=False)],
               axis=-1, synchronized=False),
    ])
    out = keras3.translate(json.loads(json.dumps(config)))
    layers = _layers(out)
    assert out["class_name"] == "Functional"
    assert out["config"]["input_layers"] == ["x", 0, 0] and out["config"]["output_layers"] == ["out", 0, 0]
    assert layers["x"]["config"] == {"batch_input_shape": [None, 4], "dtype": "float32", "sparse": False,
                                     "ragged": False, "name": "x"}
    dense = layers["a"]["config"]
    assert dense["dtype"] == "float32" and "quantization_config" not in dense
    assert dense["kernel_initializer"] == {"class_name": "GlorotUniform", "config": {"seed": None}}
    assert dense["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 0.01}}
    assert layers["b"]["config"]["activation"] == "swish"
    assert layers["a"]["inbound_nodes"] == [[["x", 0, 0, {}]]]
    assert layers["sum"]["inbound_nodes"] == [[["a", 0, 0, {}], ["b", 0, 0, {}]]]
    # mask and training are decided at call time in both Kerases, not frozen from graph building
    assert layers["out"]["inbound_nodes"] == [[["sum", 0, 0, {}]]]
    assert "build_config" not in layers["a"] and "module" not in layers["a"]


def test_every_layer_without_a_counterpart_is_named_in_one_line():
    config = _functional([
        _input(),
        _dense("lora", [_call(_tensor("x"))], lora_rank=4, lora_alpha=4),
        _dense("hard", [_call(_tensor("lora"))], activation="hard_sigmoid"),
        _layer("Add", "plus_one", [{"args": [_tensor("hard"), 1.0], "kwargs": {}}], module=OPS),
        _layer("LayerNormalization", "rms", [_call(_tensor("plus_one"))], rms_scaling=True),
        {**_layer("Dense", "mine", [_call(_tensor("rms"))]), "module": "my_layers",
         "registered_name": "me>Dense"},
        _layer("MultiHeadAttention", "out", [_call(_tensor("mine"))]),
    ])
    with pytest.raises(InputError) as caught:
        keras3.translate(config, "model: m.keras")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("model: m.keras cannot be rebuilt as a tf_keras model")
    for part in ["lora (Dense: lora_rank=4 and lora_alpha=4)", "hard (Dense: activation hard_sigmoid)",
                 "plus_one (Add: a keras.ops.numpy call, not a layer)",
                 "rms (LayerNormalization: rms_scaling=True)", "mine (Dense: custom class)",
                 "out (MultiHeadAttention)", "model.export("]:
        assert part in message


def test_keras3_only_arguments_at_their_default_are_dropped():
    config = _functional([
        _input(),
        _layer("LayerNormalization", "norm", [_call(_tensor("x"))], rms_scaling=False, epsilon=0.001),
        _layer("ZeroPadding1D", "pad", [_call(_tensor("norm"))], padding=[1, 1], data_format="channels_last"),
        _layer("LeakyReLU", "out", [_call(_tensor("pad"))], negative_slope=0.1),
    ])
    layers = _layers(keras3.translate(config))
    assert "rms_scaling" not in layers["norm"]["config"]
    assert "data_format" not in layers["pad"]["config"]
    assert layers["out"]["config"]["alpha"] == 0.1 and "negative_slope" not in layers["out"]["config"]


def test_a_keras3_only_argument_off_its_default_is_refused():
    config = _functional([_input(), _layer("ZeroPadding1D", "out", [_call(_tensor("x"))], padding=[1, 1],
                                           data_format="channels_first")])
    with pytest.raises(InputError, match=r"out \(ZeroPadding1D: data_format='channels_first'\)"):
        keras3.translate(config)


def test_a_mask_computed_by_keras_ops_is_left_to_tf_keras():
    config = _functional([
        _input(),
        _layer("Embedding", "embed", [_call(_tensor("x"))], input_dim=10, output_dim=4, mask_zero=True),
        _layer("NotEqual", "not_equal", [{"args": [_tensor("x"), 0], "kwargs": {}}], module=OPS),
        _layer("LSTM", "out", [_call(_tensor("embed"), training=False, mask=_tensor("not_equal"))], units=2,
               seed=None),
    ])
    layers = _layers(keras3.translate(config))
    assert "not_equal" not in layers
    assert layers["out"]["inbound_nodes"] == [[["embed", 0, 0, {}]]]
    assert "seed" not in layers["out"]["config"]


def test_a_subclassed_model_is_refused_naming_its_class():
    config = {"module": None, "class_name": "Sub", "registered_name": "mine>Sub",
              "config": {"name": "sub", "trainable": True}}
    with pytest.raises(InputError, match=r"sub \(Sub: subclassed model"):
        keras3.translate(config)


def test_a_sequential_keeps_its_build_shape_and_drops_its_dtype_policy():
    dense = {k: v for k, v in _dense("d", []).items() if k not in ("name", "inbound_nodes")}
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None,
              "config": {"name": "seq", "trainable": True, "dtype": _policy(), "build_input_shape": [None, 4],
                         "layers": [dense]}}
    out = keras3.translate(config)
    assert out["config"]["build_input_shape"] == [None, 4] and "dtype" not in out["config"]
    [layer] = out["config"]["layers"]
    assert layer["class_name"] == "Dense" and "inbound_nodes" not in layer


def test_wrapped_values_are_unwrapped_and_quantized_policies_refused():
    mean = {"class_name": "__numpy__", "config": {"value": [1.0, 2.0], "dtype": "float32"}}
    int8 = {"module": "keras", "class_name": "QuantizedDTypePolicy",
            "config": {"mode": "int8", "source_name": "float32"}}
    config = _functional([
        _input(),
        _layer("Normalization", "norm", [_call(_tensor("x"))], mean=mean, variance=[1.0, 1.0], axis=[-1]),
        {**_layer("Dense", "out", [_call(_tensor("norm"))]),
         "config": {"name": "out", "units": 2, "dtype": int8}},
    ])
    with pytest.raises(InputError, match=r"out \(Dense: dtype policy QuantizedDTypePolicy\)"):
        keras3.translate(config)
    config["config"]["layers"].pop()
    config["config"]["output_layers"] = ["norm", 0, 0]
    assert _layers(keras3.translate(config))["norm"]["config"]["mean"] == [1.0, 2.0]


@pytest.mark.parametrize("version, config, expected", [
    ("3.15.1", {}, True),
    ("2.21.0", _functional([_input()]), False),
    (None, _functional([_input()]), True),
    (None, {"class_name": "Functional", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4]}, "inbound_nodes": []},
        {"class_name": "Dense", "config": {}, "inbound_nodes": [[["x", 0, 0, {}]]]}]}}, False),
])
def test_a_keras3_file_is_told_by_its_version_else_by_its_config(version, config, expected):
    assert keras3.saved_by_keras3(version, config) is expected


def _keras3_zip(path, config, version="3.15.1"):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": version}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"")
    return path


def test_a_keras3_lambda_is_code_to_refuse_without_trust(tmp_path):
    lam = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None, "name": "sneaky",
           "inbound_nodes": [_call(_tensor("x"))],
           "config": {"name": "sneaky", "function": {"class_name": "__lambda__",
                                                     "config": {"code": "4wEAAA==", "defaults": None}}}}
    path = _keras3_zip(tmp_path / "lambda.keras", _functional([_input(), lam], outputs=("sneaky", 0, 0)))
    assert keras_version(path, "keras") == "3.15.1"
    with pytest.raises(InputError, match=r"Lambda layer 'sneaky'.*--trust-model"):
        check_no_code(path, trust=False, where="model")
    # Trusted, it still cannot become tf_keras: refused from the configuration, before Keras 3 reads it.
    with pytest.raises(InputError, match=r"no tf_keras counterpart for: sneaky \(Lambda\)"):
        load_model_file(path, trust=True)


class _Model:
    """Stands in for a Keras model: calls a function on each batch, as verify_rebuild calls a model."""

    def __init__(self, function):
        self.function = function

    def __call__(self, batch, training=False):
        assert training is False
        return self.function(np.asarray(batch))


def test_verify_rebuild_is_the_largest_gap_over_every_output_and_every_batch():
    samples = np.linspace(0.0, 1.0, 600).reshape(300, 2)  # more than one batch
    keras3_model = _Model(lambda b: {"label": b * 2, "score": b.sum(axis=1)})
    last = samples[-1, 0]  # off by 1e-3 on the last sample only, which is in the second batch
    rebuilt = _Model(lambda b: {"label": b * 2, "score": b.sum(1) + np.where(b[:, 0] == last, 1e-3, 0.0)})
    assert keras3.verify_rebuild(keras3_model, keras3_model, samples) == 0.0
    assert keras3.verify_rebuild(keras3_model, rebuilt, samples) == pytest.approx(1e-3)


@pytest.mark.parametrize("other", [
    lambda b: b[:, :1],  # another shape
    lambda b: np.where(b > 0.5, np.nan, b),  # NaN where the Keras 3 model has numbers
    lambda b: [b, b],  # another number of outputs
])
def test_verify_rebuild_is_infinite_when_the_outputs_cannot_be_compared(other):
    samples = np.linspace(0.0, 1.0, 8).reshape(4, 2)
    assert keras3.verify_rebuild(_Model(lambda b: b), _Model(other), samples) == math.inf


def test_verify_rebuild_treats_nan_in_both_as_equal():
    samples = np.array([[0.0, np.nan]])
    assert keras3.verify_rebuild(_Model(lambda b: b), _Model(lambda b: b.copy()), samples) == 0.0
