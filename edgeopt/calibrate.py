"""Integer files from what the calibration samples tell beyond TensorFlow's min/max: activation ranges
from percentiles, and biases corrected for the mean error int8 adds.

Contract: :func:`percentile_ranges` converts a tf_keras model to full int8 as ``convert`` does for
``int8`` (same converter, same samples), except that every activation tensor's range is narrowed from
its min/max over the calibration samples to its ``100 - p`` and ``p`` percentiles (``p`` is
:data:`PERCENTILE`), so a value seen once in a million no longer sets the step of all the others; the
model's input keeps its min/max. :func:`bias_corrected` corrects, per output channel, the bias of each
Conv2D, DepthwiseConv2D and Dense layer of a model for the mean error its integer file shows on the
calibration samples (empirical bias correction, after Nagel et al., "Data-Free Quantization", 2019),
layer by layer in model order, converting again after each. Neither changes which ops run in integers.
Tensors are read from the files through the LiteRT interpreter with every tensor preserved (reference
kernels, no delegate); TensorFlow's private calibrate-only and quantize steps are reached through
:mod:`edgeopt.kerasapi`. A failed conversion raises :class:`~edgeopt.errors.ConversionError`.
TensorFlow and LiteRT are imported inside the functions that need them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np

from edgeopt.diagnose import layers_by_name, tensor_layers
from edgeopt.errors import ConversionError
from edgeopt.evaluate import _to_input
from edgeopt.inspect import CONVERSION_OPS, TFLITE_IDENTIFIER, _decode, _enum_names, _schema
from edgeopt.internals import calibrated_model, quantize_calibrated

PERCENTILE = 99.99  # 99.9 measured worse on the spiky model's validation slice and on digits_cnn's logits
BATCH = 64  # samples per interpreter call (one at a time when the file will not resize)
PROBE_BATCH = 256  # samples per Keras call
CORRECTED = ("Conv2D", "DepthwiseConv2D", "Dense")  # the layers whose bias is corrected
KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # the TFLite ops they become
ACTIVATION_LAYERS = ("ReLU", "Activation")  # Keras layers TFLite fuses into the op before them
NO_ACTIVATION = 0  # schema ActivationFunctionType.NONE
BIAS_INPUT = 2  # of the three kernel ops: input, weights, bias


# -- percentile ranges -------------------------------------------------------------------------------


def percentile_ranges(model, representative: np.ndarray, *, int8_io: str = "int8",
                      percentile: float = PERCENTILE) -> tuple[bytes, int]:
    """Full int8 of ``model`` with activation ranges from percentiles of ``representative``'s values.

    The converter calibrates (min/max of each tensor over the samples, as for a plain int8 export);
    the calibrated float model then runs on the same samples and each activation tensor's range
    becomes [the ``100 - percentile``th, the ``percentile``th] percentile of its values (numpy's
    ``method="lower"`` and ``"higher"``: values that occur), never wider than its min/max; TensorFlow's
    MLIR quantizer makes the int8 file from those ranges.

    Args:
        model: a tf_keras model with one input.
        representative: the calibration samples (an array, first axis the samples).
        int8_io: ``int8`` for int8 input and output tensors, ``float`` for float32 ones.
        percentile: ``p``, in (50, 100].

    Returns:
        The ``.tflite`` bytes and how many activation tensors' ranges were narrowed.

    Raises:
        ConversionError: the converter or the quantizer refused the model (its reason, one line).
    """
    from edgeopt.convert import _reason, integer_converter

    samples = np.asarray(representative, dtype=np.float32)
    try:
        calibrated = calibrated_model(integer_converter(model, samples, int8_io="float"))
    except Exception as exc:  # the converter raises many types
        raise ConversionError(f"int8 calibration failed: {_reason(exc)}") from None
    flat = _schema().ModelT.InitFromPackedBuf(bytearray(calibrated), 0)
    graph = flat.subgraphs[0]
    inputs = {int(i) for i in graph.inputs}
    ranged = [i for i, tensor in enumerate(graph.tensors) if i not in inputs and _activation(flat, tensor)]
    narrowed = 0
    for index, (low, high) in _percentiles(calibrated, samples, ranged, percentile).items():
        params = graph.tensors[index].quantization
        old_low, old_high = float(params.min[0]), float(params.max[0])
        low, high = max(low, old_low), min(high, old_high)
        if not high > low:  # a constant tensor: nothing to gain, keep what calibration found
            continue
        narrowed += low > old_low or high < old_high
        params.min, params.max = np.array([low], np.float32), np.array([high], np.float32)
    try:
        return quantize_calibrated(_packed(flat), int8_io=int8_io), narrowed
    except Exception as exc:  # the quantizer raises many types
        raise ConversionError(f"int8 quantization with percentile ranges failed: {_reason(exc)}") from None


def _activation(flat, tensor) -> bool:
    """A tensor the calibration gave one range to and that holds no constant (weights have no min/max)."""
    params = tensor.quantization
    if params is None or params.min is None or params.max is None or len(params.min) != 1:
        return False
    data = flat.buffers[tensor.buffer].data if tensor.buffer < len(flat.buffers) else None
    return data is None or len(data) == 0


@dataclass
class _Tails:
    """The ``rank``-th largest and smallest values of a stream, exact: only the ``rank + 1`` most extreme
    values each way are kept (their least extreme is the answer), not the stream."""

    rank: int
    high: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    low: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))  # negated

    def add(self, values: np.ndarray) -> None:
        flat = values.reshape(-1).astype(np.float32)
        self.high = _largest(np.concatenate([self.high, flat]), self.rank + 1)
        self.low = _largest(np.concatenate([self.low, -flat]), self.rank + 1)

    def bounds(self) -> tuple[float, float]:
        return -float(self.low.min()), float(self.high.min())


def _largest(values: np.ndarray, count: int) -> np.ndarray:
    if len(values) <= count:
        return values
    return np.partition(values, len(values) - count)[len(values) - count:]


def _percentiles(raw: bytes, samples: np.ndarray, indices: Sequence[int],
                 percentile: float) -> dict[int, tuple[float, float]]:
    """Per tensor index: the (100 - p)th and pth percentiles of its values over every sample."""
    tails: dict[int, _Tails] = {}
    for count, values in _tensor_values(raw, samples, indices):
        for index, value in values.items():
            if index not in tails:
                total = value.size // count * len(samples)
                tails[index] = _Tails(int((total - 1) * (100.0 - percentile) / 100.0))
            tails[index].add(value)
    return {index: tail.bounds() for index, tail in tails.items()}


def _packed(flat) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(flat.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


# -- bias correction ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compared:
    """Where a layer's output is compared: the file's tensor its kernel op writes, and the Keras layer
    whose output matches it (the layer itself, or the activation layer the op fused after it); with
    ``fused`` False the op writes the layer's output before its activation."""

    layer: str
    tensor: int
    keras_output: str
    fused: bool


def bias_corrected(model, representative: np.ndarray, quantize: Callable[[Any], bytes], *,
                   first: bytes | None = None) -> tuple[Any, bytes, list[str]]:
    """A copy of ``model`` whose biases are corrected for the mean error int8 adds, its integer file,
    and the corrected layers' names in model order.

    For each Conv2D, DepthwiseConv2D and Dense layer of the model's own with a bias, in model order:
    the mean per output channel of its output in the float ``model`` and of the tensor its kernel op
    writes in the current integer file (dequantized with its scale and zero point), both over
    ``representative``; their difference is subtracted from the copy's bias, and the copy quantized
    again (``quantize``) before the next layer is measured, so each layer corrects only what is left of
    the error where it stands and no upstream shift is corrected twice. The comparison is before the
    layer's activation when the op writes that (a linear layer, or one whose activation TFLite keeps as
    an op of its own, softmax say); after it when the op fuses the activation (ReLU in the layer, or a
    ReLU layer right after it), the only point both files share: the correction is then exact for
    channels active on every sample and approximate for the others. A layer is left out when its
    op also folds in something else (a BatchNormalization), has none of the layer's bias (the converter
    moves a linear layer's bias on into the next layer's), or the layer is called more than once.

    Args:
        model: a tf_keras model with one input (the float reference; never changed).
        representative: the calibration samples the integer files are made and measured with.
        quantize: makes the integer file of a model (the export's converter and format).
        first: ``quantize(model)`` when the caller has it already.

    Raises:
        ConversionError: ``quantize`` failed.
    """
    from edgeopt.kerasapi import keras

    samples = np.asarray(representative, dtype=np.float32)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    raw = first if first is not None else quantize(copy)
    compared = _compared(copy, raw)
    reference = _float_means(model, samples, list(compared.values()))
    corrected = []
    for name, wanted in zip(compared, reference, strict=True):
        point = _compared(copy, raw).get(name)
        if point is None:
            continue
        measured = _int8_means(raw, samples, point.tensor)
        layer = copy.get_layer(name)
        if measured.shape != wanted.shape or tuple(layer.bias.shape) != wanted.shape:
            continue
        layer.bias.assign(layer.bias.numpy() - (measured - wanted).astype(np.float32))
        raw = quantize(copy)
        corrected.append(name)
    return copy, raw, corrected


def _compared(model, raw: bytes) -> dict[str, _Compared]:
    """The correctable layers of ``model`` (its own, in order) and where each is compared in ``raw``."""
    layers = layers_by_name(model)
    own = {layer.name for layer in model.layers}
    correctable = {layer.name for layer in model.layers
                   if type(layer).__name__ in CORRECTED and getattr(layer, "use_bias", False)}
    flat = _schema().ModelT.InitFromPackedBuf(bytearray(raw), 0)
    graph = flat.subgraphs[0]
    outputs = {int(t.tensorIndex): _decode(t.name) for s in flat.signatureDefs or [] for t in s.outputs or []}
    ops = _enum_names(_schema().BuiltinOperator)

    def kind(op) -> str | None:
        code = flat.operatorCodes[op.opcodeIndex]
        return ops.get(max(code.builtinCode, code.deprecatedBuiltinCode))

    for op in graph.operators or []:  # a float output's integer twin is named after the output too
        if kind(op) in CONVERSION_OPS and int(op.outputs[0]) in outputs:
            outputs[int(op.inputs[0])] = outputs[int(op.outputs[0])]
    found: dict[str, list[_Compared | None]] = {}  # None: an op of the layer's that cannot be compared
    for op in graph.operators or []:
        if kind(op) not in KERNEL_OPS:
            continue
        index = int(op.outputs[0])
        names = tensor_layers(index, [_decode(graph.tensors[index].name)], layers, outputs)
        if not names or names[0] not in correctable:
            continue
        owner, *after = names
        layer = layers[owner]
        fused = getattr(op.builtinOptions, "fusedActivationFunction", NO_ACTIVATION) != NO_ACTIVATION
        linear = getattr(layer.activation, "__name__", "linear") == "linear"
        no_bias = len(op.inputs) <= BIAS_INPUT or op.inputs[BIAS_INPUT] < 0
        comparable = (
            not (no_bias and np.any(layer.bias.numpy()))  # its bias went on into the next layer's
            and all(n in own and type(layers[n]).__name__ in ACTIVATION_LAYERS for n in after)  # not a BN
            and (fused or not after) and not (fused and linear and not after))  # an activation we can see
        found.setdefault(owner, []).append(
            _Compared(owner, index, after[-1] if after else owner, fused) if comparable else None)
    order = [layer.name for layer in model.layers]
    return {name: points[0] for name, points in sorted(found.items(), key=lambda kv: order.index(kv[0]))
            if len(points) == 1 and points[0] is not None}


def _float_means(model, samples: np.ndarray, points: Sequence[_Compared]) -> list[np.ndarray]:
    """Per compared point, the float model's mean per output channel (last axis) over the samples."""
    from edgeopt.kerasapi import keras, tf

    if not points:
        return []
    tensors, linear = [], []
    for point in points:
        layer = model.get_layer(point.layer)
        before = not point.fused and getattr(layer.activation, "__name__", "linear") != "linear"
        tensors.append(layer.input if before else model.get_layer(point.keras_output).output)
        linear.append(_linear_twin(layer) if before else None)
    probe = keras.Model(model.inputs, tensors)
    sums: list[np.ndarray | None] = [None] * len(points)
    rows = [0] * len(points)
    for start in range(0, len(samples), PROBE_BATCH):
        values = tf.nest.flatten(probe(samples[start:start + PROBE_BATCH], training=False))
        for i, (value, twin) in enumerate(zip(values, linear, strict=True)):
            array = np.asarray(twin(value) if twin is not None else value, dtype=np.float64)
            flat = array.reshape(-1, array.shape[-1])
            sums[i] = flat.sum(axis=0) if sums[i] is None else sums[i] + flat.sum(axis=0)
            rows[i] += len(flat)
    return [total / count for total, count in zip(sums, rows, strict=True)]


def _linear_twin(layer):
    """The layer without its activation (same class, config and weights): its output before it."""
    twin = type(layer).from_config({**layer.get_config(), "activation": "linear"})
    twin.build(layer.input_shape)
    twin.set_weights(layer.get_weights())
    return twin


def _int8_means(raw: bytes, samples: np.ndarray, index: int) -> np.ndarray:
    """The mean per channel (last axis) of tensor ``index`` of the file, dequantized, over the samples."""
    total, rows = None, 0
    for _, values in _tensor_values(raw, samples, [index]):
        if index not in values:
            return np.empty(0)
        flat = values[index].astype(np.float64).reshape(-1, values[index].shape[-1])
        total = flat.sum(axis=0) if total is None else total + flat.sum(axis=0)
        rows += len(flat)
    return total / rows


# -- reading a file's tensors --------------------------------------------------------------------------


def _tensor_values(raw: bytes, samples: np.ndarray,
                   indices: Sequence[int]) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """Run the file on ``samples``, BATCH at a time; per batch, its size and the float values (integer
    tensors dequantized) of the tensors at ``indices``."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():  # preserving every tensor is what is wanted here, not a mistake
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        interpreter = Interpreter(
            model_content=raw, num_threads=1, experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    feed = interpreter.get_input_details()[0]
    details = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    step, shape, start = BATCH, None, 0
    while start < len(samples):
        chunk = samples[start:start + step]
        try:
            if shape != chunk.shape:
                interpreter.resize_tensor_input(feed["index"], list(chunk.shape))
                interpreter.allocate_tensors()
                shape = chunk.shape
            interpreter.set_tensor(feed["index"], _to_input(chunk, feed))
            interpreter.invoke()
        except (RuntimeError, ValueError) as exc:
            if step == 1:
                reason = " ".join(str(exc).split())
                raise ConversionError(f"LiteRT could not run the file: {reason}") from None
            step, shape = 1, None  # a file fixed to batch 1
            continue
        yield len(chunk), {i: _dequantized(value, details[i]) for i in indices
                           if (value := _read(interpreter, i)) is not None}
        start += len(chunk)


def _read(interpreter, index: int) -> np.ndarray | None:
    try:
        return interpreter.get_tensor(index)
    except ValueError:  # a tensor that holds no data (no op writes it): nothing to measure
        return None


def _dequantized(value: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if not np.issubdtype(value.dtype, np.integer) or not scale:
        return value.astype(np.float32)
    return (value.astype(np.float32) - zero_point) * scale
