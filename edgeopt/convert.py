"""Keras model -> ``.tflite`` bytes in an export format, the converter set up as the format's row in
:data:`edgeopt.formats.FORMATS` says (:func:`configure`; no branch on a format's name here).

``float32`` converts as is; ``float16`` stores float16 weights; ``dynamic`` stores int8 weights and
quantizes activations at run time; ``int8`` is full-integer (int8 weights and activations; int8 or
float input and output) and ``int16x8`` keeps int16 activations with int8 weights, both calibrated
on a representative set drawn from the training split, or using the ranges a QAT model learned.
Any format can store sparse weights in TFLite's sparse encoding. When the recipe's quantize stage
has ``backend: litert-quantizer``, the format its recipe makes (``int4``, int4 weights and float
activations, is made no other way) is the float32 file quantized by :mod:`edgeopt.litert_backend`.
A converter failure becomes :class:`ConversionError` carrying the converter's own reason on one line
(exit 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from edgeopt import formats, litert_backend
from edgeopt.errors import ConversionError
from edgeopt.kerasapi import tf
from edgeopt.types import Format


def _representative(samples: np.ndarray | dict[str, np.ndarray]) -> Callable:
    """Calibration samples one at a time. Named samples (one array per input) are yielded as a dict by
    input name: the calibrator then feeds each to the input its signature names so, whereas a list is
    fed in the order of the .tflite's input tensors, which is not the Keras order (it sorts them)."""
    if isinstance(samples, dict):
        def named():
            for i in range(len(next(iter(samples.values())))):
                yield {name: array[i:i + 1].astype(np.float32) for name, array in samples.items()}

        return named

    def generator():
        for sample in samples:
            yield [sample[np.newaxis].astype(np.float32)]

    return generator


def _reason(exc: Exception) -> str:
    """The converter's reason, and the failing op when it names one, on one line."""
    text = str(exc)
    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+|tfl\.[A-Za-z0-9_]+)'", text)))
    lines = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()] or [text.strip()]
    reason = " ".join(lines[0].split())
    return reason + (f" (failing op: {', '.join(ops[:5])})" if ops else "")


def _converter(model):
    """The TFLite converter for a tf_keras model, or the one a model without Keras brings itself (a
    SavedModel graph's serving signature: :meth:`~edgeopt.modelfile.GraphModel.tflite_converter`)."""
    own = getattr(model, "tflite_converter", None)
    return own() if own is not None else tf.lite.TFLiteConverter.from_keras_model(model)


def configure(converter, export: formats.ExportFormat, representative=None, *, int8_io: str = "int8",
              sparse_encoding: bool = False):
    """``converter`` set up to make ``export`` (a row of :data:`~edgeopt.formats.FORMATS`): its
    optimizations, supported types and ops, representative data (integer formats) and int8 input and
    output (unless ``int8_io`` is ``float``); TFLite's sparse encoding on top with ``sparse_encoding``."""
    optimizations = [tf.lite.Optimize.DEFAULT] if export.optimize else []
    if sparse_encoding:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if export.supported_types:
        converter.target_spec.supported_types = [tf.as_dtype(name) for name in export.supported_types]
    if export.supported_ops:
        converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, name) for name in export.supported_ops]
    if export.integer:
        converter.representative_dataset = _representative(representative)
    if export.int8_io and int8_io == "int8":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter


def integer_converter(model, representative, *, int8_io: str = "int8"):
    """The full-integer converter ``convert`` makes for ``int8``, for callers that quantize through
    TensorFlow Lite's own tools (the QuantizationDebugger keeps chosen ops in float with it)."""
    return configure(_converter(model), formats.FORMATS[Format.INT8], representative, int8_io=int8_io)


def float_layers(model, representative, tensors: list[str], *, int8_io: str = "int8") -> bytes:
    """Full int8 except the ops whose output tensors are named: those stay float, through
    ``tf.lite.experimental.QuantizationDebugger``'s denylist (its non-debug quantized model)."""
    converter = integer_converter(model, representative)
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=list(tensors), fully_quantize=int8_io == "int8")
    try:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=converter.representative_dataset, debug_options=options)
        return debugger.get_nondebug_quantized_model()
    except Exception as exc:  # the converter raises many types
        reason = " ".join(str(exc).split())
        raise ConversionError(f"int8 conversion with float layers failed: {reason}") from None


def convert(model, fmt: str, representative: np.ndarray | None = None, *, int8_io: str = "int8",
            sparse_encoding: bool = False, quantization=None) -> bytes:
    """Convert a Keras model to ``.tflite`` bytes in export format ``fmt``.

    Args:
        model: a tf_keras model (plain, stripped, or QAT-wrapped for ``int8``), or a
            model that brings its own converter (``tflite_converter()``: a SavedModel graph's
            :class:`~edgeopt.modelfile.GraphModel`, its serving signature converted).
        fmt: an export format: ``float32``; ``float16`` (float16 weights, float compute);
            ``dynamic`` (int8 weights, activations quantized on the fly); ``int8`` (full integer);
            ``int16x8`` (int16 activations, int8 weights; float input/output); ``int4`` (int4
            weights, float activations: the LiteRT quantizer only).
        representative: calibration inputs for the integer formats: an array, or a dict from input
            name to array for a model with several inputs.
        int8_io: ``int8`` for int8 input/output tensors, ``float`` to keep float32 ones (the model
            then quantizes its input and dequantizes its output itself).
        sparse_encoding: store sparse weight tensors in TFLite's sparse format (raw file shrinks;
            XNNPACK can run sparse 1x1 convolutions).
        quantization: the recipe's quantize stage, if any: its ``backend``, ``recipe`` and ``layers``
            decide how the integer formats are made.

    Raises:
        ConversionError: the converter refused the model (its reason and the failing op, one line).
    """
    if litert_backend.makes(quantization, fmt):
        if sparse_encoding:
            raise ConversionError(f"{fmt} conversion failed: the LiteRT quantizer writes dense weights; set "
                                  "export_options.sparse_encoding: false")
        names = [layer.name for layer in getattr(model, "layers", [])]
        return litert_backend.quantize(convert(model, "float32"), fmt, quantization, representative, names,
                                       int8_io=int8_io)
    export = formats.FORMATS.get(fmt)
    if export is None:
        raise ValueError(f"unknown export format '{fmt}'")
    if formats.CONVERTER not in export.makers:
        raise ValueError(f"{fmt} export needs quantization=: a quantize stage with backend "
                         f"{formats.QUANTIZER} and an {fmt} recipe")
    if export.integer and representative is None:
        raise ValueError(f"{fmt} export needs representative data")
    converter = configure(_converter(model), export, representative, int8_io=int8_io,
                          sparse_encoding=sparse_encoding)
    try:
        return converter.convert()
    except Exception as exc:  # the converter raises many types (ConverterError, RuntimeError, ...)
        raise ConversionError(f"{fmt} conversion failed: {_reason(exc)}") from None
