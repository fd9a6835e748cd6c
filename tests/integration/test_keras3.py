"""Keras 3 model files in: rebuilt as tf_keras with their weights, verified output against output.

Each test builds its own tiny model with Keras 3 (random weights: no download), saves it, and loads it
through edgeopt as the pipeline would.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt import keras3
from edgeopt.errors import InputError
from edgeopt.modelfile import SOURCE_KERAS3, VERIFIED_ON_SAMPLES, load_keras_model, load_model_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def k3():
    return keras3.keras3_module()


def _randomize(model, seed=0):
    """Weights away from their initial values, so a weight that is not copied shows in the outputs."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = rng.normal(0.0, 0.3, weight.shape)
        if "variance" in weight.name:
            value = np.abs(value) + 0.5
        weight.assign(value.astype("float32"))


def _images(count=6, seed=1, high=1.0):
    return np.random.default_rng(seed).uniform(0.0, high, (count, 8, 8, 3)).astype("float32")


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_functional_cnn_keras_file_is_rebuilt_with_the_same_predictions(k3, tmp_path):
    inputs = k3.Input((8, 8, 3), name="image")
    x = k3.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = k3.layers.BatchNormalization(name="bn")(x)
    x = k3.layers.ReLU(name="relu")(x)
    x = k3.layers.DepthwiseConv2D(3, name="depthwise")(x)
    x = k3.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = k3.layers.Dense(3, activation="softmax", name="head")(x)
    original = k3.Model(inputs, outputs, name="cnn")
    _randomize(original)
    original.save(tmp_path / "cnn.keras")
    samples = _images()

    loaded = load_model_file(tmp_path / "cnn.keras", samples=samples)

    model = loaded.model
    assert loaded.source == SOURCE_KERAS3 and loaded.keras_version.startswith("3.")
    assert loaded.verified_on == VERIFIED_ON_SAMPLES and loaded.max_abs_diff <= 1e-5
    assert loaded.facts()["layers"] == len(model.layers) == 7
    assert [layer.name for layer in model.layers] == ["image", "conv", "bn", "relu", "depthwise", "pool",
                                                      "head"]
    expected, actual = original.predict(samples, verbose=0), model.predict(samples, verbose=0)
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).all()
    np.testing.assert_array_equal(model.get_layer("bn").moving_variance.numpy(),
                                  original.get_layer("bn").moving_variance.numpy())


def test_keras3_h5_file_is_rebuilt(k3, tmp_path):
    inputs = k3.Input((8, 8, 3))
    x = k3.layers.SeparableConv2D(2, 3, activation="relu", name="separable")(inputs)
    x = k3.layers.MaxPooling2D(name="max")(x)
    x = k3.layers.Flatten(name="flat")(x)
    original = k3.Model(inputs, k3.layers.Dense(2, name="out")(x))
    _randomize(original)
    original.save(tmp_path / "model.h5")

    loaded = load_model_file(tmp_path / "model.h5")

    assert loaded.kind == "hdf5" and loaded.source == SOURCE_KERAS3 and loaded.max_abs_diff <= 1e-5
    samples = _images()
    np.testing.assert_allclose(loaded.model.predict(samples, verbose=0),
                               original.predict(samples, verbose=0), atol=1e-5)


def test_keras3_sequential_is_rebuilt_as_a_sequential(k3, tmp_path):
    original = k3.Sequential([k3.Input((8, 8, 3)), k3.layers.Conv2D(2, 3, name="conv"),
                              k3.layers.LayerNormalization(name="norm"), k3.layers.Flatten(name="flat"),
                              k3.layers.Dropout(0.5, name="drop"), k3.layers.Dense(2, name="out")])
    _randomize(original)
    original.save(tmp_path / "seq.keras")

    model = load_keras_model(tmp_path / "seq.keras", samples=_images())

    from edgeopt.kerasapi import keras

    assert isinstance(model, keras.Sequential)
    assert [layer.name for layer in model.layers] == ["conv", "norm", "flat", "drop", "out"]


def test_two_input_two_output_model_is_rebuilt_and_refused_only_by_the_single_io_check(k3, tmp_path):
    image, extra = k3.Input((8, 8, 3), name="image"), k3.Input((2,), name="extra")
    x = k3.layers.GlobalAveragePooling2D(name="pool")(image)
    x = k3.layers.Concatenate(name="join")([x, extra])
    original = k3.Model([image, extra], [k3.layers.Dense(3, activation="softmax", name="label")(x),
                                         k3.layers.Dense(1, name="score")(x)])
    _randomize(original)
    original.save(tmp_path / "two.keras")
    samples = [_images(), np.random.default_rng(2).normal(size=(6, 2)).astype("float32")]

    loaded = load_model_file(tmp_path / "two.keras", samples=samples, single_io=False)

    assert loaded.max_abs_diff <= 1e-5
    assert [t.name.split(":")[0] for t in loaded.model.inputs] == ["image", "extra"]
    for got, want in zip(loaded.model.predict(samples, verbose=0), original.predict(samples, verbose=0),
                         strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(InputError, match="has 2 inputs and 2 outputs"):
        load_model_file(tmp_path / "two.keras")


def test_rescaling_first_model_is_verified_on_pixel_samples(k3, tmp_path):
    inputs = k3.Input((8, 8, 3))
    x = k3.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)
    x = k3.layers.ZeroPadding2D(1, name="pad")(x)
    x = k3.layers.Conv2D(2, 3, strides=2, activation="relu6", name="conv")(x)
    x = k3.layers.GlobalMaxPooling2D(name="pool")(x)
    original = k3.Model(inputs, k3.layers.Dense(2, name="out")(x))
    _randomize(original)
    original.save(tmp_path / "pixels.keras")

    loaded = load_model_file(tmp_path / "pixels.keras", samples=_images(high=255.0))

    assert loaded.model.layers[1].name == "scale" and loaded.model.layers[1].scale == pytest.approx(1 / 127.5)
    assert loaded.verified_on == VERIFIED_ON_SAMPLES and loaded.max_abs_diff <= 1e-5


def test_keras3_lambda_is_refused_and_its_code_never_runs(k3, tmp_path):
    mark = tmp_path / "code_ran"
    touch = lambda x, p=str(mark): (open(p, "w").close(), x)[1]  # noqa: E731, SIM115 - the code under test
    inputs = k3.Input((4,))
    x = k3.layers.Lambda(touch, name="innocent_looking")(inputs)
    k3.Model(inputs, k3.layers.Dense(2)(x)).save(tmp_path / "lambda.keras")
    mark.unlink(missing_ok=True)  # building ran it; from here on only loading could

    with pytest.raises(InputError) as untrusted:
        load_keras_model(tmp_path / "lambda.keras")
    assert "innocent_looking" in _one_line(untrusted) and "--trust-model" in str(untrusted.value)
    with pytest.raises(InputError) as trusted:
        load_keras_model(tmp_path / "lambda.keras", trust=True)
    assert "innocent_looking (Lambda)" in _one_line(trusted)
    assert not mark.exists()


def test_subclassed_keras3_model_is_refused_in_one_line(k3, tmp_path):
    @k3.saving.register_keras_serializable(package="edgeopt_tests")
    class TwoHeads(k3.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = k3.layers.Dense(2)

        def call(self, x):
            return self.dense(x) * 2.0

    model = TwoHeads(name="two_heads")
    model(np.zeros((1, 4), "float32"))
    model.save(tmp_path / "sub.keras")

    with pytest.raises(InputError) as refused:
        load_keras_model(tmp_path / "sub.keras")
    line = _one_line(refused)
    assert "(TwoHeads: subclassed model" in line and "model.export(" in line
    with pytest.raises(InputError, match=r"two_heads \(TwoHeads: subclassed model"):
        keras3.rebuild(model)


@pytest.mark.parametrize("content", [b"not a model", None])
def test_a_file_that_is_not_a_model_is_refused(tmp_path, content):
    path = tmp_path / "model.keras"
    if content is None:
        import zipfile

        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "a zip, but not a Keras model")
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match="not a saved Keras model"):
        load_keras_model(path)


def test_rebuilt_model_can_be_pruned_with_tfmot(k3, tmp_path):
    from edgeopt.kerasapi import tfmot

    inputs = k3.Input((8, 8, 3))
    x = k3.layers.Conv2D(4, 3, name="conv")(inputs)
    x = k3.layers.Flatten(name="flat")(x)
    k3.Model(inputs, k3.layers.Dense(2, name="out")(x)).save(tmp_path / "prune.keras")
    model = load_keras_model(tmp_path / "prune.keras")

    pruned = tfmot.sparsity.keras.prune_low_magnitude(model)

    wrapped = [layer.layer.name for layer in pruned.layers if type(layer).__name__ == "PruneLowMagnitude"]
    assert {"conv", "out"} <= set(wrapped)
    assert pruned.predict(_images(2), verbose=0).shape == (2, 2)


def test_a_rebuild_that_computes_something_else_is_refused(k3, tmp_path, monkeypatch):
    inputs = k3.Input((4,))
    k3.Model(inputs, k3.layers.Dense(2, name="out")(inputs)).save(tmp_path / "dense.keras")
    monkeypatch.setattr(keras3, "verify_rebuild", lambda *args: 0.5)

    with pytest.raises(InputError) as refused:
        load_model_file(tmp_path / "dense.keras")
    line = _one_line(refused)
    assert "outputs up to 0.5 away" in line and "the tolerance for outputs up to" in line


def test_without_samples_the_rebuild_is_verified_on_seeded_random_inputs(k3, tmp_path):
    tokens = k3.Input((5,), dtype="int32")
    x = k3.layers.Embedding(7, 3, mask_zero=True, name="embed")(tokens)
    x = k3.layers.LSTM(2, name="lstm")(x)
    original = k3.Model(tokens, k3.layers.Dense(1, name="out")(x))
    _randomize(original)
    original.save(tmp_path / "tokens.keras")

    facts = load_model_file(tmp_path / "tokens.keras").facts()

    assert facts["verified_on"] == "synthetic" and facts["max_abs_diff"] <= 1e-5
    assert facts["tolerance"] == pytest.approx(1e-5 * max(1.0, facts["output_scale"]))
    assert facts["format"] == "keras"
