"""The one module that chooses Keras for edgeopt.

TensorFlow Model Optimization (TFMOT) works on tf_keras (Keras 2), not Keras 3, so
``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first imported. Every edgeopt module that
needs TensorFlow, Keras or TFMOT imports them from here, never directly.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ INFO/WARNING noise out of user output

import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras", "tfmot"]


def calibrated_model(converter) -> bytes:
    """What a post-training integer ``converter`` makes when stopped after calibration: the float model
    whose activation tensors carry the calibrated min/max in their quantization parameters, for edgeopt
    to change before :func:`quantize_calibrated`. TensorFlow offers that step only through the
    converter's private ``_experimental_calibrate_only`` switch (its QuantizationDebugger sets it too):
    kept here, the one place that reaches into TensorFlow internals."""
    converter._experimental_calibrate_only = True  # noqa: SLF001 - see the docstring
    return converter.convert()


def quantize_calibrated(calibrated: bytes, *, int8_io: str = "int8") -> bytes:
    """Full int8 from a :func:`calibrated_model` (its tensors' min/max), with int8 input and output for
    ``int8_io="int8"``, float otherwise: what the converter's MLIR quantizer makes from its own
    calibration. TensorFlow has no public entry to that quantizer alone, so this calls
    ``tensorflow.lite.python.convert.mlir_quantize`` (the QuantizationDebugger's way in): kept here, the
    one place that reaches into TensorFlow internals."""
    from tensorflow.lite.python.convert import mlir_quantize

    io = tf.int8 if int8_io == "int8" else tf.float32
    return mlir_quantize(calibrated, input_data_type=io, output_data_type=io)
