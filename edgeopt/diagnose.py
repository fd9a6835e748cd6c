"""Which Keras layer int8 quantization hurts, ranked worst first, with the ranges that explain it.

Contract: :func:`diagnose_model` takes a tf_keras model and an edgeopt :class:`~edgeopt.data.Dataset`,
quantizes the model to full int8 as ``edgeopt compress`` exports ``int8`` (int8 weights, activations,
input and output, calibrated on the same ``samples`` training inputs) and runs TensorFlow Lite's
``tf.lite.experimental.QuantizationDebugger`` on those inputs. The debugger checks every int8 op against
the same op in float fed the same (dequantized) inputs, so its statistics (read from
``layer_statistics_dump``) are the error each op adds itself; edgeopt turns each into
``rmse_over_scale = sqrt(mean_squared_error) / scale``, the op's RMS error in steps of its own int8
output scale (rounding alone gives about 0.29, ``1/sqrt(12)``). That figure cannot see a tensor whose one
scale does not suit its channels (features of very different scales, a channel with rare huge values),
since every op reading it gets the same coarse values in float too. So each layer also gets
``input_rmse_over_scale``: the RMS rounding error of its int8 input (TensorFlow's fake quantization with
the input's scale and zero point), for its median channel, in steps of the scale that channel's own range
would get; also about 0.29 when one scale suits every channel. Layers are ranked by the larger of the two,
``error_steps``, worst first. TFLite ops are mapped back to the Keras layers they come from by the layer
names in their tensor names; each layer takes the figures of its worst op. The result is a frozen
:class:`Diagnosis` (``to_json`` for ``--json``); :func:`diagnose_recipe` loads a recipe's saved model and
data, untrained, and diagnoses them. Bad input raises :class:`~edgeopt.errors.InputError`, a model the
converter refuses :class:`~edgeopt.convert.ConversionError`, each in one line. TensorFlow is imported
inside the functions that need it only.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeopt.data import Arrays, Dataset, load_dataset, n_samples, take
from edgeopt.errors import InputError
from edgeopt.loading import check_model_files, load_model, loader_for
from edgeopt.render import table

if TYPE_CHECKING:
    from edgeopt.recipe import Recipe

METHOD = ("tf.lite.experimental.QuantizationDebugger, full int8 (int8 input and output) calibrated and "
          "verified op by op on the same training samples; rmse_over_scale = sqrt(mean_squared_error) / "
          "scale of the layer's worst op's int8 output; input_rmse_over_scale = RMS int8 rounding error of "
          "the layer's input (fake quantization with its scale and zero point) for its median channel, in "
          "steps of the scale that channel's own range would get; layers ranked by error_steps, the larger")
ROUNDING_ONLY = 1 / math.sqrt(12)  # RMS error, in steps, of rounding values spread over many steps
DEFAULT_SAMPLES = 200
SHOWN_LAYERS = 10  # rows of the terminal table
PROBE_BATCH = 16  # samples per Keras call measuring the layers' inputs (all of them at once: memory)
INT8_MIN, INT8_MAX = -128, 127
INT8_STEPS = INT8_MAX - INT8_MIN
FUSED_SEPARATOR = ";"  # TFLite names a fused op's tensor after every op it fused
SCOPE_SEPARATOR = "/"


@dataclass(frozen=True)
class LayerDiagnosis:
    """What int8 quantization does to one Keras layer: the figures of its worst TFLite op, and its input.

    ``name`` is the Keras layer's name, or the TFLite tensor's when no layer's name is in it (then
    ``layer_class`` is None). ``output_scale`` is the worst op's output scale, the step
    ``rmse_over_scale`` is counted in. ``scale`` and ``zero_point`` are those of the layer's int8 input
    (the coarsest, for a layer with several), ``input_range`` its float (min, max) on the samples,
    ``channels_below_step`` how many of its ``input_channels`` (last axis) span less than one step of
    ``scale`` (int8 cannot tell their values apart), ``input_rmse_over_scale`` see the module docstring.
    """

    name: str
    layer_class: str | None
    ops: tuple[str, ...]  # TFLite op types of the layer's verified ops, in execution order
    tensors: tuple[str, ...]  # their int8 output tensors
    rmse_over_scale: float
    mean_squared_error: float
    max_abs_error: float
    output_scale: float
    input_range: tuple[float, float] | None = None
    scale: float | None = None
    zero_point: int | None = None
    input_channels: int | None = None
    channels_below_step: int | None = None
    input_rmse_over_scale: float | None = None
    fused_with: tuple[str, ...] = ()  # other Keras layers one of its ops took in (an Activation)

    @property
    def error_steps(self) -> float:
        """What layers are ranked by: the larger of the two figures; NaN (not measured) counts as none."""
        figures = [f for f in (self.rmse_over_scale, self.input_rmse_over_scale) if f is not None and
                   math.isfinite(f)]
        return max(figures) if figures else -math.inf

    @property
    def input_dominates(self) -> bool:
        """Whether the layer's int8 input, rather than its own ops, gives its ``error_steps``."""
        figure = self.input_rmse_over_scale
        return figure is not None and not figure <= self.rmse_over_scale

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "class": self.layer_class, "ops": list(self.ops),
            "tensors": list(self.tensors),
            "error_steps": _number(self.error_steps), "rmse_over_scale": _number(self.rmse_over_scale),
            "input_rmse_over_scale": _number(self.input_rmse_over_scale),
            "mean_squared_error": _number(self.mean_squared_error),
            "max_abs_error": _number(self.max_abs_error), "output_scale": _number(self.output_scale),
            "input_range": None if self.input_range is None else [_number(v) for v in self.input_range],
            "scale": _number(self.scale), "zero_point": self.zero_point,
            "input_channels": self.input_channels, "channels_below_step": self.channels_below_step,
            "fused_with": list(self.fused_with),
        }


@dataclass(frozen=True)
class Diagnosis:
    """Every quantized layer of a model, worst first (by ``error_steps``), and how it was measured."""

    model: str
    data: str
    samples: int
    layers: tuple[LayerDiagnosis, ...]
    method: str = field(default=METHOD)

    @property
    def worst(self) -> LayerDiagnosis | None:
        return self.layers[0] if self.layers else None

    def to_json(self) -> dict[str, Any]:
        return {"layers": [layer.to_json() for layer in self.layers], "model": self.model, "data": self.data,
                "samples": self.samples, "method": self.method, "rounding_only": ROUNDING_ONLY}

    def verdict(self) -> str:
        """One line naming the worst Keras layer and, from its figures and its input, why."""
        worst = self.worst
        if worst is None:
            return "no op of the model was quantized to int8"
        what = f"'{worst.name}'" + (f" ({worst.layer_class})" if worst.layer_class else " (a TFLite tensor)")
        rounding = f"rounding alone gives {ROUNDING_ONLY:.2f}"
        below = (f"; {worst.channels_below_step} of its {worst.input_channels} input channels span less than "
                 "one step" if worst.channels_below_step else "")
        if worst.input_dominates:
            low, high = worst.input_range
            return (f"int8 hurts {what} most, through its input: one int8 scale of {worst.scale:.3g} "
                    f"(zero point {worst.zero_point}) for values from {low:.3g} to {high:.3g} leaves its "
                    f"median input channel an RMS error of {worst.input_rmse_over_scale:.3g} steps of the "
                    f"scale that channel alone would get ({rounding}){below}")
        line = (f"int8 hurts {what} most: its own int8 ops are off by {worst.rmse_over_scale:.3g} steps of "
                f"their output scale (RMS; {rounding})")
        if worst.input_range is not None and worst.scale is not None:
            low, high = worst.input_range
            line += (f"; its input spans {low:.3g} .. {high:.3g} with one int8 scale of {worst.scale:.3g} "
                     f"(zero point {worst.zero_point}){below}")
        return line

    def lines(self, top: int = SHOWN_LAYERS) -> list[str]:
        """The worst ``top`` layers as a terminal table, then the verdict."""
        def number(value: float | None) -> str:
            return "-" if value is None or not math.isfinite(value) else f"{value:.3g}"

        rows = [[layer.name, layer.layer_class or "-", ",".join(dict.fromkeys(layer.ops)),
                 number(layer.error_steps), number(layer.rmse_over_scale),
                 number(layer.input_rmse_over_scale),
                 "-" if layer.input_range is None else
                 f"{number(layer.input_range[0])} .. {number(layer.input_range[1])}",
                 number(layer.scale), "-" if layer.zero_point is None else layer.zero_point,
                 "-" if layer.channels_below_step is None else
                 f"{layer.channels_below_step}/{layer.input_channels}"]
                for layer in self.layers[:top]]
        shown = table(["layer", "class", "ops", "steps", "ops rmse/scale", "input rmse/scale", "input range",
                       "input scale", "zero point", "channels < 1 step"], rows)
        more = len(self.layers) - top
        footer = [f"({more} more layer(s): --json lists them all)"] if more > 0 else []
        return [shown, *footer, self.verdict()]


def _number(value: float | None) -> float | None:
    """A figure for JSON: None for a missing or non-finite one (JSON has no NaN)."""
    return None if value is None or not math.isfinite(value) else float(value)


# -- loading ---------------------------------------------------------------------------------------


def diagnose_recipe(recipe: Recipe, *, samples: int = DEFAULT_SAMPLES) -> Diagnosis:
    """Diagnose a recipe's saved model (as saved: not trained, no stages) on its data.

    Raises:
        InputError: a zoo model (nothing trained to diagnose), a missing or unusable model file or data,
            a SavedModel without Keras metadata, data that does not fit the model.
        ConversionError: the converter refused the model.
    """
    loader = loader_for(recipe.model)
    if loader is not None and not loader.pretrained:  # built fresh from code (a zoo model): untrained
        raise InputError(f"model: '{recipe.model}' is a {loader.kind} model with nothing trained to "
                         "diagnose; train it (edgeopt train) and give the saved model.keras")
    if not Path(recipe.model).exists():
        raise InputError(f"model: {recipe.model} not found; give a saved Keras model (.keras, .h5, "
                         "SavedModel folder) or a recipe")
    check_model_files(recipe)  # code in the file without --trust-model is refused before any loading
    data = load_dataset(recipe.data)
    loaded, data = load_model(recipe, data)
    if not loaded.has_keras_model:  # its loader says why (``limits``: "is ..., while {what} needs ...")
        why = loaded.limits or "is not a Keras model, while {what} needs one"
        raise InputError(f"model: {recipe.model} {why.format(what='diagnose (it names the layers)')}")
    diagnosis = diagnose_model(loaded.model, data, samples=samples, seed=recipe.seed)
    return replace(diagnosis, model=str(recipe.model))


# -- the diagnosis ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OpRow:
    """One verified op of the debug model, as the debugger's statistics dump gives it."""

    op: str
    tensor_index: int
    tensor: str  # the float model's name for its output
    debug_name: str  # the debug model's
    mean_squared_error: float
    max_abs_error: float
    scale: float
    zero_point: int

    @property
    def rmse_over_scale(self) -> float:
        if not self.scale > 0:
            return math.nan
        return math.sqrt(self.mean_squared_error) / self.scale


def diagnose_model(model, data: Dataset, *, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> Diagnosis:
    """Rank the Keras layers of ``model`` by how much error full int8 quantization adds to them.

    Args:
        model: a tf_keras model (a Keras 3 file loaded through :mod:`edgeopt.modelfile` is one): callers
            ask the loaded model whether it has one (:attr:`~edgeopt.loading.LoadedModel.has_keras_model`).
        data: the data, matched with the model's inputs (:meth:`~edgeopt.data.Dataset.for_model`).
        samples: training inputs to calibrate on and to verify each op on (as compress calibrates int8).
        seed: which training inputs (:meth:`~edgeopt.data.Dataset.representative`).

    Returns:
        The :class:`Diagnosis`, its layers worst first.

    Raises:
        InputError: ``samples`` below 1, or a model of which no op was quantized to int8.
        ConversionError: the converter refused the model (its reason, one line).
    """
    if samples < 1:
        raise InputError(f"samples must be at least 1, got {samples}")
    chosen = data.representative(count=samples, seed=seed)
    debugger, interpreter = _run_debugger(model, chosen)
    rows = _op_rows(debugger, interpreter)
    layers = layers_by_name(model)
    outputs = {detail["index"]: name for name, detail in _signature(interpreter).get_output_details().items()}
    grouped: dict[str, list[_OpRow]] = {}
    fused: dict[str, set[str]] = {}
    for row in rows:
        names = _keras_layers(row, layers, outputs)
        owner = names[0] if names else row.tensor
        grouped.setdefault(owner, []).append(row)
        fused.setdefault(owner, set()).update(names[1:])
    inputs = _input_facts(model, chosen, grouped, _signature(interpreter).get_input_details())
    diagnosed = []
    for name, ops in grouped.items():
        worst = max(ops, key=_op_rank)
        layer = layers.get(name)
        diagnosed.append(LayerDiagnosis(
            name=name, layer_class=type(layer).__name__ if layer is not None else None,
            ops=tuple(r.op for r in ops), tensors=tuple(r.tensor for r in ops),
            rmse_over_scale=worst.rmse_over_scale, mean_squared_error=worst.mean_squared_error,
            max_abs_error=worst.max_abs_error, output_scale=worst.scale,
            fused_with=tuple(sorted(fused[name] - {name})), **inputs.get(name, {}),
        ))
    diagnosed.sort(key=lambda layer: layer.error_steps, reverse=True)
    return Diagnosis(model=str(getattr(model, "name", "model")), data=data.name, samples=n_samples(chosen),
                     layers=tuple(diagnosed))


def _op_rank(row: _OpRow) -> float:
    """The worst op of a layer first; a figure the debugger could not compute (NaN) last."""
    value = row.rmse_over_scale
    return value if math.isfinite(value) else -math.inf


def _run_debugger(model, samples: Arrays):
    """The QuantizationDebugger of ``model``'s full-int8 conversion, run on ``samples``, and a LiteRT
    interpreter of its debug model (for its tensors' names and quantization, never invoked)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeopt.convert import ConversionError, _reason, integer_converter
    from edgeopt.kerasapi import tf

    # Float input and output types here: the debugger makes them int8 itself (fully_quantize) on the
    # model it builds from the calibrated one.
    converter = integer_converter(model, samples, int8_io="float")
    options = tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True)
    # The debug samples are quantized here, once the debug model fixes the inputs' order and scales: the
    # debugger's own quantization of float inputs wraps around instead of clipping.
    feed: list[list[np.ndarray]] = []
    try:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: iter(feed), debug_options=options)
    except ValueError as exc:
        if "debug mode" in str(exc):  # the debug model has no NumericVerify op: nothing was quantized
            raise InputError("no op of the model was quantized to int8, so there is nothing to diagnose") \
                from None
        raise ConversionError(f"int8 conversion failed: {_reason(exc)}") from None
    except Exception as exc:  # the converter raises many types (ConverterError, RuntimeError, ...)
        raise ConversionError(f"int8 conversion failed: {_reason(exc)}") from None
    interpreter = Interpreter(model_content=debugger.quant_model)
    feed.extend(_int8_samples(samples, interpreter))
    try:
        debugger.run()
    except (RuntimeError, ValueError) as exc:  # LiteRT could not run the debug model on the samples
        raise ConversionError(f"the int8 debug model failed to run: {_reason(exc)}") from None
    return debugger, interpreter


def _signature(interpreter):
    """The debug model's one signature runner, which names its inputs and outputs as Keras does."""
    return interpreter.get_signature_runner(next(iter(interpreter.get_signature_list())))


def _int8_samples(samples: Arrays, interpreter) -> Iterator[list[np.ndarray]]:
    """Each sample as the debug model's inputs, in its order, quantized with its scales (clipped)."""
    by_index = {detail["index"]: name for name, detail in _signature(interpreter).get_input_details().items()}
    arrays = []
    for detail in interpreter.get_input_details():
        array = samples[by_index[detail["index"]]] if isinstance(samples, dict) else samples
        arrays.append(_quantized(np.asarray(array, dtype=np.float32), detail))
    for i in range(n_samples(samples)):
        yield [array[i:i + 1] for array in arrays]


def _quantized(x: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    dtype = detail["dtype"]
    scale, zero_point = detail["quantization"]
    if not np.issubdtype(dtype, np.integer) or not scale:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _op_rows(debugger, interpreter) -> list[_OpRow]:
    """The debugger's per-op statistics, in the debug model's execution order (the dump's), named by their
    tensors."""
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    # The dump's tensor_name is the debug model's name without its last character, the digit the debug
    # model adds to tell the int8 tensor from its float twin; but a model output keeps its name
    # ("StatefulPartitionedCall:0"), which that cuts short. Both names are kept for matching layers.
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    outputs = {detail["index"] for detail in interpreter.get_output_details()}
    rows = []
    for entry in csv.DictReader(dump):
        index = int(entry["tensor_idx"])
        debug_name = names.get(index, entry["tensor_name"])
        rows.append(_OpRow(op=entry["op_name"], tensor_index=index, debug_name=debug_name,
                           tensor=debug_name if index in outputs else entry["tensor_name"],
                           mean_squared_error=float(entry["mean_squared_error"]),
                           max_abs_error=float(entry["max_abs_error"]), scale=float(entry["scale"]),
                           zero_point=int(float(entry["zero_point"]))))
    return rows


def layers_by_name(model) -> dict[str, Any]:
    """Every layer of the model by name, nested models' layers too, in the model's order."""
    found: dict[str, Any] = {}

    def walk(container) -> None:
        for layer in container.layers:
            found.setdefault(layer.name, layer)
            if hasattr(layer, "layers"):
                walk(layer)

    walk(model)
    return found


def _keras_layers(row: _OpRow, layers: Mapping[str, Any], outputs: Mapping[int, str]) -> list[str]:
    """The Keras layers an op's output tensor comes from (:func:`tensor_layers`), by both its names."""
    return tensor_layers(row.tensor_index, (row.tensor, row.debug_name), layers, outputs)


def tensor_layers(index: int, names: Sequence[str], layers: Mapping[str, Any],
                  outputs: Mapping[int, str]) -> list[str]:
    """The Keras layers a TFLite tensor comes from, the owner first (the earliest in the model's order).

    Args:
        index: the tensor's index in its file.
        names: its name(s) (a debug model's own name and its float twin's, say).
        layers: every layer of the model by name, in its order (:func:`layers_by_name`).
        outputs: the file's output tensors' indices -> their signature keys.

    A model output is named by its signature key (the output layer's name); any other tensor by the
    layer names among the components of its scope path (``functional/norm/sub``), the deepest (a nested
    model's layer rather than the model) in each part of a fused name (``dense/MatMul;relu/Relu``).
    """
    if outputs.get(index) in layers:
        return [outputs[index]]
    order = {name: position for position, name in enumerate(layers)}
    found = set()
    for part in FUSED_SEPARATOR.join(names).split(FUSED_SEPARATOR):
        known = [c for c in (c.split(":")[0] for c in part.split(SCOPE_SEPARATOR)) if c in layers]
        if known:
            found.add(known[-1])
    return sorted(found, key=order.__getitem__)


# -- the layers' inputs ----------------------------------------------------------------------------


@dataclass
class _Channels:
    """One Keras tensor measured over the samples, per channel (last axis): its float range and, given its
    int8 scale and zero point, the squared error of rounding it to them."""

    params: tuple[float, int] | None
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    squared_error: np.ndarray | None = None
    count: int = 0

    def add(self, value: np.ndarray) -> None:
        from edgeopt.kerasapi import tf

        flat = value.reshape(-1, value.shape[-1]) if value.ndim > 1 else value.reshape(-1, 1)
        low, high = flat.min(axis=0), flat.max(axis=0)
        self.low = low if self.low is None else np.minimum(self.low, low)
        self.high = high if self.high is None else np.maximum(self.high, high)
        if self.params is not None:
            scale, zero_point = self.params
            rounded = tf.quantization.fake_quant_with_min_max_args(  # TFLite's int8 rounding, in float
                flat, min=(INT8_MIN - zero_point) * scale, max=(INT8_MAX - zero_point) * scale, num_bits=8)
            error = np.square(np.asarray(rounded) - flat).sum(axis=0, dtype=np.float64)
            self.squared_error = error if self.squared_error is None else self.squared_error + error
        self.count += len(flat)

    def below_step(self) -> int:
        return int(np.sum(self.high - self.low < self.params[0]))

    def rmse_over_own_scale(self) -> float | None:
        """The median channel's RMS rounding error in steps of the scale its own range would get (the
        range widened to hold 0, as TFLite's is); channels that never vary are left out."""
        own_scale = (np.maximum(self.high, 0) - np.minimum(self.low, 0)) / INT8_STEPS
        varying = (own_scale > 0) & (self.high > self.low)
        if self.squared_error is None or not varying.any():
            return None
        rmse = np.sqrt(self.squared_error[varying] / self.count)
        return float(np.median(rmse / own_scale[varying]))


def _input_facts(model, samples: Arrays, grouped: Mapping[str, Sequence[_OpRow]],
                 signature_inputs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per diagnosed layer of the model's own (not of a nested model): its input's float range on the
    samples, its int8 scale and zero point (the coarsest, for several inputs), its channels that span
    less than one step, and its ``input_rmse_over_scale`` (the worst of its inputs')."""
    from edgeopt.kerasapi import keras, tf
    from edgeopt.train import input_names, keras_inputs

    model_inputs = {id(t): name for name, t in zip(input_names(model), model.inputs, strict=False)}
    producers: dict[int, Any] = {}  # id(Keras tensor) -> the layer that outputs it
    for layer in model.layers:
        for tensor in _tensors(layer, "output"):
            producers.setdefault(id(tensor), layer)

    def params(tensor) -> tuple[float, int] | None:
        """The int8 scale and zero point of a Keras tensor: the model input's, or its producer's last
        verified op's output; through layers without ops of their own (Dropout) to what they pass on."""
        for _ in range(len(model.layers) + 1):
            if id(tensor) in model_inputs:  # a Sequential model lists no InputLayer among its layers
                detail = signature_inputs.get(model_inputs[id(tensor)])
                return None if detail is None else _scale_and_zero_point(detail["quantization"])
            layer = producers.get(id(tensor))
            if layer is None:
                return None
            if grouped.get(layer.name):
                last = grouped[layer.name][-1]
                return _scale_and_zero_point((last.scale, last.zero_point))
            before = _tensors(layer, "input")
            if len(before) != 1:
                return None
            tensor = before[0]
        return None

    own = {layer.name for layer in model.layers}
    wanted = {name: _tensors(model.get_layer(name), "input") for name in grouped if name in own}
    measured = {id(t): _Channels(params(t)) for inputs in wanted.values() for t in inputs}
    if not measured:
        return {}
    tensors = {id(t): t for inputs in wanted.values() for t in inputs}
    probe = keras.Model(model.inputs, list(tensors.values()))
    for start in range(0, n_samples(samples), PROBE_BATCH):
        values = tf.nest.flatten(probe(keras_inputs(take(samples, slice(start, start + PROBE_BATCH))),
                                       training=False))
        for key, value in zip(tensors, values, strict=True):
            measured[key].add(np.asarray(value, dtype=np.float32))
    facts: dict[str, dict[str, Any]] = {}
    for name, inputs in wanted.items():
        channels = [measured[id(t)] for t in inputs]
        if not channels:
            continue
        entry: dict[str, Any] = {
            "input_range": (float(min(c.low.min() for c in channels)),
                            float(max(c.high.max() for c in channels))),
            "input_channels": int(sum(c.low.size for c in channels)),
        }
        known = [c for c in channels if c.params is not None]
        if known:
            scale, zero_point = max((c.params for c in known), key=lambda p: p[0])
            figures = [f for f in (c.rmse_over_own_scale() for c in known) if f is not None]
            entry.update(scale=scale, zero_point=zero_point,
                         channels_below_step=sum(c.below_step() for c in known),
                         input_rmse_over_scale=max(figures) if figures else None)
        facts[name] = entry
    return facts


def _scale_and_zero_point(quantization: Sequence) -> tuple[float, int] | None:
    scale, zero_point = quantization
    return (float(scale), int(zero_point)) if scale and scale > 0 else None


def _tensors(layer, which: str) -> list:
    """A layer's input (or output) Keras tensors; none for a layer called more than once (shared)."""
    try:
        value = getattr(layer, which)
    except (AttributeError, ValueError, RuntimeError):
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
