"""A rebuild's tolerance grows with the outputs, so rounding in a trained model's large logits passes and
a real error does not. Stand-in models, no TensorFlow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeopt import keras3


class _Model:
    """Stands in for a Keras model: calls a function on each batch; no layers of reduced precision."""

    layers: list = []

    def __init__(self, function):
        self.function = function

    def __call__(self, batch, training=False):
        return self.function(np.asarray(batch))


def test_the_tolerance_is_absolute_for_small_outputs_and_relative_for_large_ones():
    model = _Model(lambda b: b)
    assert keras3.tolerance(model) == keras3.tolerance(model, 0.3) == 1e-5
    assert keras3.tolerance(model, 20.0) == pytest.approx(2e-4)
    assert keras3.tolerance(model, math.inf) == 1e-5  # no scale to trust: the strict bound


def test_the_output_scale_is_the_largest_finite_output_over_every_output():
    samples = np.linspace(-1.0, 1.0, 600).reshape(300, 2)  # more than one batch
    model = _Model(lambda b: {"logits": b * 20.0, "flag": np.where(b > 0.9, np.inf, 0.0)})
    assert keras3.output_scale(model, samples) == pytest.approx(20.0)


def test_rounding_in_large_logits_passes_and_an_error_of_a_thousandth_does_not():
    samples = np.linspace(-1.0, 1.0, 40).reshape(20, 2)
    original = _Model(lambda b: b * 20.0)
    rounded = _Model(lambda b: (b * 20.0).astype(np.float32).astype(np.float64) * (1 + 2e-6))
    wrong = _Model(lambda b: b * 20.0 * (1 + 1e-3))
    allowed = keras3.tolerance(original, keras3.output_scale(original, samples))
    assert 1e-5 < keras3.verify_rebuild(original, rounded, samples) <= allowed
    assert keras3.verify_rebuild(original, wrong, samples) > allowed
