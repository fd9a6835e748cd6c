"""Cross-layer equalisation rescales channels between consecutive layers without changing what the
float model computes, and evens out their weight ranges."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def _model():
    from edgeopt.kerasapi import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="b")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu", name="c")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="d")(x))
    kernel, bias = model.get_layer("a").get_weights()
    kernel[..., 1] *= 100.0  # one channel far wider than the rest
    bias[1] *= 100.0
    model.get_layer("a").set_weights([kernel, bias])
    return model


def test_equalisation_keeps_the_function_and_narrows_the_wide_channel():
    from edgeopt.repair import equalise

    model = _model()
    samples = np.random.default_rng(0).normal(size=(32, 6, 6, 2)).astype("float32")
    equalised, pairs = equalise(model, samples)
    assert ("a", "b") in pairs and ("c", "d") in pairs
    before, after = model(samples).numpy(), equalised(samples).numpy()
    assert np.abs(before - after).max() <= 1e-3 * max(1.0, np.abs(before).max())
    ranges = np.abs(equalised.get_layer("a").get_weights()[0]).reshape(-1, 4).max(0)
    original = np.abs(model.get_layer("a").get_weights()[0]).reshape(-1, 4).max(0)
    assert ranges.max() / ranges.min() < original.max() / original.min() / 10
    assert np.allclose(np.abs(model.get_layer("a").get_weights()[0]).reshape(-1, 4).max(0), original)
