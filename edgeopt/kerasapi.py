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
