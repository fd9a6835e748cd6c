"""Keras 3 models in: rebuilt as tf_keras models with the same weights, and shown to compute the same.

TFMOT wraps tf_keras layers only, so a model saved by Keras 3 is rebuilt. :func:`translate` turns its
configuration (plain JSON, as saved) into tf_keras' form without TensorFlow: dtype policies become names,
Keras 3 initializers, regularizers and constraints take tf_keras' form, ``InputLayer(batch_shape)``
becomes ``batch_input_shape``, the ``{"args", "kwargs"}`` call nodes become tf_keras node lists, and an
argument only Keras 3 has is dropped only at the value where leaving it out changes nothing. Whatever does
not translate cleanly (a subclassed model, a layer or ``keras.ops`` call with no tf_keras counterpart, an
argument tf_keras lacks) is gathered into ONE :class:`InputError` line that names every such layer as
``name (Class)`` and says what still works. :func:`rebuild` builds the tf_keras model from that
configuration and copies the weights layer by layer by name, checking shapes; :func:`verify_rebuild`
measures the largest output difference between the two models, and :func:`tolerance` (scaled by
:func:`output_scale`) says how much rounding may explain. Only these import TensorFlow.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeopt.errors import InputError

CONTAINERS = frozenset({"Functional", "Sequential"})
# Built-in layers whose tf_keras namesake takes the same arguments and weights (checked against
# tf_keras 2.21 and Keras 3.15; :func:`verify_rebuild` checks every rebuilt model all the same).
SUPPORTED_LAYERS = frozenset({
    "InputLayer",
    "Dense", "EinsumDense", "Embedding",
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "Flatten", "Reshape", "Permute", "RepeatVector", "Cropping1D", "Cropping2D", "Cropping3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Masking", "Identity",
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
    "Rescaling", "Normalization", "CenterCrop", "Resizing",
    "SimpleRNN", "LSTM", "GRU", "Attention", "AdditiveAttention",
})
INITIALIZERS = frozenset({
    "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
    "GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal",
    "Identity",
})
REGULARIZERS = frozenset({"L1", "L2", "L1L2", "OrthogonalRegularizer"})
CONSTRAINTS = frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"})
OBJECT_KINDS = {"keras.initializers": INITIALIZERS, "keras.regularizers": REGULARIZERS,
                "keras.constraints": CONSTRAINTS}
# Keras 3 activation name -> the tf_keras name with the same maths. Not here on purpose:
# hard_sigmoid (Keras 3: relu6(x + 3) / 6, tf_keras: 0.2 x + 0.5) and the ones tf_keras lacks.
ACTIVATIONS = {name: name for name in (
    "linear", "relu", "relu6", "sigmoid", "softmax", "log_softmax", "tanh", "elu", "selu", "softplus",
    "softsign", "swish", "gelu", "exponential", "mish", "leaky_relu")} | {"silu": "swish"}
ACTIVATION_ARGUMENTS = frozenset({"activation", "recurrent_activation"})
ANY_LAYER = "*"
# Arguments only Keras 3 has, with the value at which tf_keras computes the same without them.
KERAS3_ONLY: dict[str, dict[str, Any]] = {
    ANY_LAYER: {"quantization_config": None, "lora_rank": None, "lora_alpha": None},
    "InputLayer": {"optional": False},
    "LayerNormalization": {"rms_scaling": False},
    "ZeroPadding1D": {"data_format": "channels_last"},
    "CenterCrop": {"data_format": "channels_last"},
    "Resizing": {"data_format": "channels_last", "pad_to_aspect_ratio": False, "fill_mode": "constant",
                 "fill_value": 0.0, "antialias": False},
    "SimpleRNN": {"seed": None}, "LSTM": {"seed": None}, "GRU": {"seed": None},
    "Attention": {"seed": None}, "AdditiveAttention": {"seed": None},
}
INITIALIZER_KERAS3_ONLY = {"input_axes": None, "output_axes": None}
RENAMED = {"InputLayer": {"batch_shape": "batch_input_shape"}, "LeakyReLU": {"negative_slope": "alpha"}}
# Keras 3 wraps these values when it serialises them; tf_keras takes the plain value.
WRAPPED_VALUES = frozenset({"__numpy__", "__tensor__", "__tuple__"})
KERAS_TENSOR = "__keras_tensor__"
CALL_DECIDED = frozenset({"mask", "training"})
DTYPE_POLICIES = frozenset({"DTypePolicy", "FloatDTypePolicy"})
REDUCED_PRECISION = frozenset({"float16", "bfloat16"})
# How far a faithful rebuild's outputs may be from the Keras 3 model's, relative to the largest output
# (and absolute for outputs within +-1): the two Kerases order some float operations differently (batch
# norm, for one), so outputs differ by rounding only: about 2e-6 of the largest logit in a trained
# 156-layer MobileNetV2 (scripts/bench_byo.py), far below what a wrong activation or weight changes.
TOLERANCE = 1e-5  # float32 layers
REDUCED_PRECISION_TOLERANCE = 1e-2  # float16 / bfloat16 compute
SYNTHETIC_COUNT = 4
UNKNOWN_DIMENSION = 8  # stands in for a free non-batch dimension in synthetic samples
BATCH = 256
STILL_WORKS = ("post-training quantization still works from a SavedModel: model.export('folder') in "
               "Keras 3, then edgeopt compress --model folder --preset ptq-int8")


@dataclass(frozen=True)
class Unsupported:
    """A layer (or the model itself) that has no clean tf_keras counterpart, and why."""

    name: str
    class_name: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.class_name}: {self.reason})" if self.reason else \
            f"{self.name} ({self.class_name})"


def keras3_module():
    """Keras 3 itself, imported only after :mod:`edgeopt.kerasapi` has chosen tf_keras for TensorFlow."""
    import edgeopt.kerasapi  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow is first imported

    return importlib.import_module("keras")


def saved_by_keras3(keras_version: str | None, config: Any) -> bool:
    """Whether a saved model comes from Keras 3: by its recorded version, else by its config's shape."""
    if keras_version:
        return keras_version.split(".")[0] == "3"
    return any(_keras3_marks(config))


def translate(serialized: dict, where: str = "model") -> dict:
    """A Keras 3 serialised model (``config.json``, ``serialize_keras_object``) in tf_keras' form.

    Raises:
        InputError: one line naming every layer that does not translate, and what still works.
    """
    translator = _Translator()
    result = translator.model(serialized)
    translator.raise_problems(where)
    return result


def rebuild(keras3_model, where: str | None = None):
    """An equivalent tf_keras model of a Keras 3 Sequential or Functional model, with its weights.

    Layer names are kept; weights are copied layer by layer by name, their shapes checked.

    Raises:
        InputError: one line naming every layer that cannot be rebuilt (a subclassed model among them).
    """
    where = where or f"Keras 3 model '{keras3_model.name}'"
    serialized = _serialized(keras3_model, where)
    if isinstance(serialized.get("config"), dict):
        serialized["config"].setdefault("name", keras3_model.name)  # a subclass may not save its name
    config = translate(serialized, where)
    builder = _Builder()
    layers = builder.layers(config)
    builder.raise_problems(where)
    try:
        model = builder.model(config, layers)
    except InputError:
        raise
    except Exception as exc:  # tf_keras raises many types for a graph it cannot wire
        raise InputError(f"{where}: tf_keras could not wire the translated model "
                         f"({type(exc).__name__}: {_short(exc)}); {STILL_WORKS}") from None
    _copy_weights(keras3_model, model, builder)
    builder.raise_problems(where)
    return model


def verify_rebuild(keras3_model, tf_model, samples) -> float:
    """The largest absolute difference between the two models' outputs, over every output.

    Args:
        keras3_model: the Keras 3 model.
        tf_model: its tf_keras rebuild.
        samples: one array, or a list of arrays (dict by input name) for a model with several inputs.

    Returns:
        The maximum absolute difference; infinity when the outputs differ in number or shape, or
        when one model gives NaN where the other does not.
    """
    expected = _outputs(keras3_model, samples)
    actual = _outputs(tf_model, samples)
    if len(expected) != len(actual):
        return math.inf
    worst = 0.0
    for a, b in zip(expected, actual, strict=True):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return math.inf
        if a.size == 0:
            continue
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        with np.errstate(invalid="ignore"):
            gap = np.where(same, 0.0, np.abs(a - b))
        worst = max(worst, float(np.nan_to_num(gap, nan=math.inf).max()))
    return worst


def tolerance(tf_model, scale: float = 1.0) -> float:
    """The largest output difference a faithful rebuild may show, by the model's compute precision:
    :data:`TOLERANCE` (float32) or :data:`REDUCED_PRECISION_TOLERANCE` times ``scale``, the largest
    absolute output (:func:`output_scale`), when that is above 1."""
    reduced = any(getattr(layer, "compute_dtype", None) in REDUCED_PRECISION
                  for layer in _all_layers(tf_model))
    base = REDUCED_PRECISION_TOLERANCE if reduced else TOLERANCE
    return base * max(1.0, scale) if math.isfinite(scale) else base


def output_scale(keras3_model, samples) -> float:
    """The largest absolute finite output of the model on ``samples``, over every output (0 if none)."""
    worst = 0.0
    for output in _outputs(keras3_model, samples):
        values = np.abs(np.asarray(output, dtype=np.float64))
        values = values[np.isfinite(values)]
        if values.size:
            worst = max(worst, float(values.max()))
    return worst


def synthetic_samples(tf_model, count: int = SYNTHETIC_COUNT, seed: int = 0):
    """Inputs to compare the two models on when the caller gave none, or None if none can be made.

    Float inputs are uniform in [-1, 1); integer inputs are indices valid for every Embedding of the
    model (zeros without one), booleans random; a free dimension other than the batch is
    :data:`UNKNOWN_DIMENSION`.
    """
    rng = np.random.default_rng(seed)
    vocabulary = min((layer.input_dim for layer in _all_layers(tf_model) if hasattr(layer, "input_dim")),
                     default=1)
    made = []
    for tensor in tf_model.inputs:
        shape = [count] + [d if d is not None else UNKNOWN_DIMENSION for d in tensor.shape[1:]]
        dtype = tensor.dtype
        if dtype.is_floating:
            made.append(rng.uniform(-1.0, 1.0, shape).astype(dtype.as_numpy_dtype))
        elif dtype.is_integer:
            made.append(rng.integers(0, max(vocabulary, 1), shape).astype(dtype.as_numpy_dtype))
        elif dtype.is_bool:
            made.append(rng.integers(0, 2, shape).astype(bool))
        else:
            return None
    return made[0] if len(made) == 1 else made


# -- translation (plain JSON, no TensorFlow) ---------------------------------------------------------


class _Translator:
    """One pass over a Keras 3 configuration that gathers every problem instead of stopping at one."""

    def __init__(self) -> None:
        self.problems: list[Unsupported] = []

    def problem(self, name: str, class_name: str, reason: str = "") -> None:
        self.problems.append(Unsupported(str(name), str(class_name), reason))

    def raise_problems(self, where: str) -> None:
        if not self.problems:
            return
        reasons: dict[tuple[str, str], list[str]] = {}
        for problem in self.problems:
            found = reasons.setdefault((problem.name, problem.class_name), [])
            if problem.reason and problem.reason not in found:
                found.append(problem.reason)
        listed = ", ".join(str(Unsupported(name, class_name, " and ".join(why)))
                           for (name, class_name), why in reasons.items())
        raise InputError(f"{where} cannot be rebuilt as a tf_keras model, which TFMOT needs; no tf_keras "
                         f"counterpart for: {listed}; {STILL_WORKS}")

    def model(self, serialized: dict) -> dict:
        class_name = str(serialized.get("class_name"))
        config = serialized.get("config") if isinstance(serialized.get("config"), dict) else {}
        custom = _custom(serialized)
        if class_name not in CONTAINERS or custom:
            self.problem(config.get("name", "model"), class_name,
                         "subclassed model, whose call() is Python code rather than a graph of layers")
            return {}
        return {"class_name": class_name, "config": self.container(class_name, config)}

    def container(self, class_name: str, config: dict) -> dict:
        entries = config.get("layers", [])
        if class_name == "Functional":
            used = _referenced(entries, config.get("output_layers"))
            # Keras 3 records the mask a layer computes (Embedding(mask_zero=True): not_equal(x, 0)) as a
            # keras.ops call feeding `mask=`; tf_keras passes masks along by itself, so such a call goes.
            entries = [entry for entry in entries if not (_is_op(entry) and entry.get("name") not in used)]
        layers = [self.layer(entry) for entry in entries]
        out = {"name": config.get("name"), "layers": [layer for layer in layers if layer]}
        if "trainable" in config:
            out["trainable"] = config["trainable"]
        if class_name == "Functional":
            out["input_layers"] = self.value("input_layers", config.get("input_layers"), "", class_name)
            out["output_layers"] = self.value("output_layers", config.get("output_layers"), "", class_name)
        elif config.get("build_input_shape") is not None:
            out["build_input_shape"] = self.value("build_input_shape", config["build_input_shape"], "",
                                                  class_name)
        return out

    def layer(self, entry: dict) -> dict | None:
        class_name = str(entry.get("class_name"))
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        name = str(config.get("name", entry.get("name", "?")))
        custom = _custom(entry)
        if custom or (class_name not in SUPPORTED_LAYERS and class_name not in CONTAINERS):
            self.problem(name, class_name, custom)
            return None
        if class_name in CONTAINERS:
            translated = self.container(class_name, config)
        else:
            translated = self.arguments(name, class_name, config)
        out = {"class_name": class_name, "config": translated}
        if "name" in entry:
            out["name"] = entry["name"]
        if "inbound_nodes" in entry:
            out["inbound_nodes"] = [self.node(name, class_name, node) for node in entry["inbound_nodes"]]
        return out

    def arguments(self, name: str, class_name: str, config: dict) -> dict:
        keras3_only = KERAS3_ONLY[ANY_LAYER] | KERAS3_ONLY.get(class_name, {})
        renamed = RENAMED.get(class_name, {})
        out = {}
        for key, value in config.items():
            if key in keras3_only:
                if value != keras3_only[key]:
                    self.problem(name, class_name, f"{key}={value!r}")
                continue
            if key == "dtype":
                out[key] = self.dtype(name, class_name, value)
            elif key in ACTIVATION_ARGUMENTS:
                out[key] = self.activation(name, class_name, value)
            else:
                out[renamed.get(key, key)] = self.value(key, value, name, class_name)
        return out

    def dtype(self, name: str, class_name: str, value: Any) -> Any:
        if isinstance(value, str) or value is None:
            return value
        if isinstance(value, dict) and value.get("class_name") in DTYPE_POLICIES:
            return (value.get("config") or {}).get("name")
        policy = value.get("class_name") if isinstance(value, dict) else type(value).__name__
        self.problem(name, class_name, f"dtype policy {policy}")
        return None

    def activation(self, name: str, class_name: str, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and value in ACTIVATIONS:
            return ACTIVATIONS[value]
        shown = value.get("config") if isinstance(value, dict) else value
        self.problem(name, class_name, f"activation {shown}")
        return None

    def value(self, key: str, value: Any, name: str, class_name: str) -> Any:
        if isinstance(value, list):
            return [self.value(key, item, name, class_name) for item in value]
        if not isinstance(value, dict):
            return value
        kind = value.get("class_name")
        if kind in WRAPPED_VALUES:
            return self.value(key, (value.get("config") or {}).get("value"), name, class_name)
        if "class_name" not in value:
            return {k: self.value(key, v, name, class_name) for k, v in value.items()}
        module = str(value.get("module") or "")
        allowed = OBJECT_KINDS.get(module, INITIALIZERS | REGULARIZERS | CONSTRAINTS)
        if kind not in allowed or value.get("registered_name") not in (None, kind):
            self.problem(name, class_name, f"{key} {kind}")
            return None
        arguments = {}
        for argument, setting in (value.get("config") or {}).items():
            if argument in INITIALIZER_KERAS3_ONLY:
                if setting != INITIALIZER_KERAS3_ONLY[argument]:
                    self.problem(name, class_name, f"{key} {kind}({argument}={setting!r})")
                continue
            arguments[argument] = self.value(key, setting, name, class_name)
        return {"class_name": kind, "config": arguments}

    def node(self, name: str, class_name: str, node: Any) -> Any:
        """A Keras 3 call ``{"args": [...], "kwargs": {...}}`` as a tf_keras node list."""
        if not isinstance(node, dict):
            return node  # already tf_keras' form
        args, kwargs = node.get("args") or [], node.get("kwargs") or {}
        if len(args) != 1:
            self.problem(name, class_name, f"called with {len(args)} positional arguments")
            return []
        call_kwargs = {}
        for key, value in kwargs.items():
            # Both Kerases decide these at call time: the outer call's `training`, and masks passed on
            # from the layer that made them. Keras 3 records what they were while it built the graph.
            if key in CALL_DECIDED or value is None:
                continue
            if _holds_tensor(value):
                self.problem(name, class_name, f"called with a tensor as {key}")
                return []
            call_kwargs[key] = value
        first = args[0]
        tensors = first if isinstance(first, list) else [first]
        entries = []
        for tensor in tensors:
            history = _history(tensor)
            if history is None:
                self.problem(name, class_name, "called on something other than tensors")
                return []
            entries.append([*history, call_kwargs])
        return entries


def _referenced(entries: list, outputs: Any) -> set[str]:
    """Names of the layers whose outputs some call takes as input (masks aside) or the model returns."""
    names = {history[0] for history in _histories(outputs)}
    for entry in entries:
        for node in entry.get("inbound_nodes") or []:
            if isinstance(node, dict):
                kwargs = {k: v for k, v in (node.get("kwargs") or {}).items() if k not in CALL_DECIDED}
                names.update(h[0] for h in _histories([node.get("args"), kwargs]))
            else:
                names.update(h[0] for h in _histories(node))
    return names


def _histories(value: Any) -> Iterator[list]:
    """Every [layer, node, tensor] reference in a value: serialised tensors, and plain triples."""
    history = _history(value)
    if history is not None:
        yield history
    elif isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str) and \
            all(isinstance(v, int) for v in value[1:3]):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _histories(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _histories(item)


def _holds_tensor(value: Any) -> bool:
    return KERAS_TENSOR in json.dumps(value, default=str)


def _is_op(entry: dict) -> bool:
    return isinstance(entry.get("module"), str) and ".ops" in entry["module"]


def _history(value: Any) -> list | None:
    """[layer name, node index, tensor index] of a serialised Keras 3 tensor, else None."""
    if isinstance(value, dict) and value.get("class_name") == KERAS_TENSOR:
        history = (value.get("config") or {}).get("keras_history")
        if isinstance(history, list) and len(history) == 3:
            return list(history)
    return None


def _custom(entry: dict) -> str:
    """Why a serialised object is not a Keras built-in, or '' if it is one."""
    module = entry.get("module")
    registered = entry.get("registered_name")
    class_name = entry.get("class_name")
    if _is_op(entry):
        return f"a {module.replace('.src', '')} call, not a layer"
    if registered not in (None, class_name):
        return "custom class"
    if module is not None and not (module == "keras" or module.startswith("keras.")):
        return "custom class"
    return ""


def _keras3_marks(config: Any) -> Iterator[bool]:
    """Signs only a Keras 3 configuration shows: InputLayer batch_shape, call nodes with args."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "InputLayer" and "batch_shape" in (node.get("config") or {}):
                yield True
            if isinstance(node.get("inbound_nodes"), list) and any(
                    isinstance(n, dict) and "args" in n for n in node["inbound_nodes"]):
                yield True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


# -- rebuild and verification (TensorFlow) ----------------------------------------------------------


def _serialized(keras3_model, where: str) -> dict:
    """The model as Keras 3 saves it, as plain JSON data (tuples become lists)."""
    keras = keras3_module()
    try:
        serialized = keras.saving.serialize_keras_object(keras3_model)
        return json.loads(json.dumps(serialized, default=_plain))
    except Exception:  # a subclassed model without get_config, or values that are not JSON
        raise InputError(f"{where} cannot be rebuilt as a tf_keras model, which TFMOT needs; no tf_keras "
                         f"counterpart for: {Unsupported(keras3_model.name, type(keras3_model).__name__)}"
                         f"; {STILL_WORKS}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


class _Builder(_Translator):
    """Builds tf_keras layers from a translated configuration, then wires them as the nodes say.

    The wiring is edgeopt's own, not tf_keras' ``from_config``, whose node numbering for a nested model
    counts a call that Keras 3 does not make; here a node index is simply the n-th call of that layer.
    """

    def layers(self, entry: dict) -> dict[str, Any]:
        """Every layer of a container by name, nested containers as their own dicts; problems noted."""
        from edgeopt.kerasapi import keras

        built: dict[str, Any] = {}
        for layer in entry["config"]["layers"]:
            name = layer["config"].get("name", layer.get("name", "?"))
            if layer["class_name"] in CONTAINERS:
                built[name] = self.layers(layer)
                continue
            try:
                built[name] = keras.layers.deserialize({"class_name": layer["class_name"],
                                                        "config": layer["config"]})
            except Exception as exc:  # tf_keras raises TypeError or ValueError for an argument it lacks
                self.problem(name, layer["class_name"], _short(exc))
        return built

    def model(self, entry: dict, layers: dict[str, Any]):
        from edgeopt.kerasapi import keras

        config = entry["config"]
        if entry["class_name"] == "Sequential":
            model = keras.Sequential(name=config["name"])
            for layer in config["layers"]:
                name = layer["config"].get("name", layer.get("name"))
                built = layers[name]
                model.add(self.model(layer, built) if isinstance(built, dict) else built)
            if not model.inputs and config.get("build_input_shape") is not None:
                model.build(config["build_input_shape"])
        else:
            model = self.functional(config, layers)
        if not config.get("trainable", True):
            model.trainable = False  # setting True would also unfreeze layers frozen one by one
        return model

    def functional(self, config: dict, layers: dict[str, Any]):
        from edgeopt.kerasapi import keras

        produced: dict[tuple[str, int], Any] = {}  # (layer name, its n-th call) -> what the call returned
        pending: list[tuple[Any, str, int, list]] = []
        for entry in config["layers"]:
            name = entry["config"].get("name", entry.get("name"))
            built = layers[name]
            if isinstance(built, dict):
                built = self.model(entry, built)
            if entry["class_name"] == "InputLayer":
                produced[(name, 0)] = built.output
                continue
            pending.extend((built, name, index, node) for index, node in enumerate(entry["inbound_nodes"]))
        while pending:
            waiting = []
            for layer, name, index, node in pending:
                if any((ref[0], ref[1]) not in produced for ref in node):
                    waiting.append((layer, name, index, node))
                    continue
                inputs = [_flat(produced[(ref[0], ref[1])])[ref[2]] for ref in node]
                kwargs = node[0][3] if node and len(node[0]) > 3 else {}
                produced[(name, index)] = layer(inputs[0] if len(inputs) == 1 else inputs, **kwargs)
            if len(waiting) == len(pending):
                stuck = ", ".join(sorted({name for _, name, _, _ in waiting}))
                raise InputError(f"the model's graph has calls whose inputs never appear ({stuck})")
            pending = waiting

        def tensors(structure):
            if isinstance(structure, dict):
                return {key: tensors(value) for key, value in structure.items()}
            if structure and isinstance(structure[0], str):
                return _flat(produced[(structure[0], structure[1])])[structure[2]]
            return [tensors(item) for item in structure]

        return keras.Model(tensors(config["input_layers"]), tensors(config["output_layers"]),
                           name=config["name"])


def _copy_weights(source, target, translator: _Translator) -> None:
    """Copy each layer's weights by layer name, recursing into nested models; record mismatches."""
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            original = source.get_layer(layer.name)
        except ValueError:
            translator.problem(layer.name, type(layer).__name__, "no layer of that name in the Keras 3 model")
            continue
        if hasattr(layer, "layers") and hasattr(original, "layers"):
            _copy_weights(original, layer, translator)
            continue
        values = _matched(original.weights, layer.weights)
        if values is None:
            shapes = ", ".join(f"{_short_name(w)}{tuple(w.shape)}" for w in original.weights)
            translator.problem(layer.name, type(layer).__name__, f"weights {shapes} do not fit")
            continue
        layer.set_weights(values)


def _matched(keras3_weights: list, tf_weights: list) -> list | None:
    """Keras 3 weight values in the tf_keras layer's order: by name, else by position; shapes equal."""
    if len(keras3_weights) != len(tf_weights):
        return None
    by_name = {_short_name(w): w for w in keras3_weights}
    names = [_short_name(w) for w in tf_weights]
    if len(by_name) == len(keras3_weights) and set(by_name) == set(names):
        ordered = [by_name[name] for name in names]
    else:
        ordered = list(keras3_weights)
    values = [np.asarray(w.numpy() if hasattr(w, "numpy") else w) for w in ordered]
    if any(tuple(v.shape) != tuple(w.shape) for v, w in zip(values, tf_weights, strict=True)):
        return None
    return values


def _short_name(weight) -> str:
    """'kernel' from Keras 3's 'kernel' and tf_keras' 'dense/kernel:0'."""
    return str(weight.name).split("/")[-1].split(":")[0]


def _all_layers(model) -> Iterator:
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _outputs(model, samples) -> list[np.ndarray]:
    """The model's outputs on the samples, flattened (dict outputs by sorted key), batch by batch."""
    arrays = list(samples.values()) if isinstance(samples, dict) else \
        list(samples) if isinstance(samples, list | tuple) else [samples]
    count = len(arrays[0]) if arrays else 0
    parts: list[list[np.ndarray]] = []
    for start in range(0, count, BATCH):
        batch = _slice(samples, start, start + BATCH)
        parts.append([np.asarray(out) for out in _flat(model(batch, training=False))])
    if not parts:
        return []
    return [np.concatenate(column) for column in zip(*parts, strict=True)]


def _slice(samples, start: int, stop: int):
    if isinstance(samples, dict):
        return {key: np.asarray(value)[start:stop] for key, value in samples.items()}
    if isinstance(samples, list | tuple):
        return [np.asarray(value)[start:stop] for value in samples]
    return np.asarray(samples)[start:stop]


def _flat(outputs) -> list:
    if isinstance(outputs, dict):
        return [outputs[key] for key in sorted(outputs)]
    if isinstance(outputs, list | tuple):
        return list(outputs)
    return [outputs]


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
