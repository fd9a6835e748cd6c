"""Keras model -> ``.tflite`` bytes, one function per export format.

``float32`` converts as is; ``int8`` is full-integer (int8 weights and activations, int8 input and
output) calibrated on a representative set drawn from the training split, or using the ranges a
QAT model learned. A converter failure becomes :class:`ConversionError` carrying the converter's
own reason on one line (exit 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from edgeopt.errors import CheckFailed
from edgeopt.kerasapi import tf


class ConversionError(CheckFailed):
    """The TFLite converter refused the model."""


def _representative(samples: np.ndarray) -> Callable:
    def generator():
        for sample in samples:
            yield [sample[np.newaxis].astype(np.float32)]

    return generator


def _reason(exc: Exception) -> str:
    """The converter's reason, and the failing op when it names one, on one line."""
    text = str(exc)
    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+|tfl\.[A-Za-z0-9_]+)'", text)))
    lines = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()] or [text.strip()]
    reason = lines[0][:300]
    return reason + (f" (failing op: {', '.join(ops[:5])})" if ops else "")


def convert(model, fmt: str, representative: np.ndarray | None = None) -> bytes:
    """Convert a Keras model to ``.tflite`` bytes in export format ``fmt``.

    Args:
        model: a tf_keras model (plain, stripped, or QAT-wrapped for ``int8``).
        fmt: an export format (``float32``, ``int8``).
        representative: calibration inputs for the integer formats.
    """
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt == "float32":
        pass
    elif fmt == "int8":
        if representative is None:
            raise ValueError("int8 export needs representative data")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    try:
        return converter.convert()
    except Exception as exc:  # the converter raises many types (ConverterError, RuntimeError, ...)
        raise ConversionError(f"{fmt} conversion failed: {_reason(exc)}") from None
