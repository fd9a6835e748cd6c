"""`edgeopt diagnose`: the Keras layer int8 quantization hurts, found by TFLite's QuantizationDebugger.

Each test builds, as a user would, a small Keras 3 model with a known int8 weakness, saves it with its
data, and checks that the command names the weak layer among its worst two.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.cli import cli

pytestmark = pytest.mark.integration

FEATURE_SCALES = [1e-3, 1, 50, 1e3, 1e4, 0.1, 5, 300]


@pytest.fixture(scope="module")
def k3():
    from edgeopt.keras3 import keras3_module

    return keras3_module()


def _diagnose(*args: str):
    return CliRunner().invoke(cli, ["diagnose", *args])


def _top_two(result) -> list[str]:
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    return [layer["name"] for layer in document["layers"][:2]]


def _layer_names(model) -> set[str]:
    return {layer.name for layer in model.layers}


def test_features_of_very_different_scales_point_at_the_normalization_layer(k3, tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 8))
    y = np.argmax(z @ rng.normal(size=(8, 3)), axis=1)
    x = (z * FEATURE_SCALES + FEATURE_SCALES).astype("float32")  # feature i ~ scale_i * (1 + N(0, 1))
    rows = [",".join([*(f"f{i}" for i in range(8)), "label"])]
    rows += [",".join([*(f"{v:.6g}" for v in features), str(label)])
             for features, label in zip(x, y, strict=True)]
    (tmp_path / "tab.csv").write_text("\n".join(rows) + "\n")
    k3.utils.set_random_seed(0)
    norm = k3.layers.Normalization(name="norm")
    norm.adapt(x)
    inputs = k3.Input((8,), name="features")
    hidden = k3.layers.Dense(32, activation="relu", name="hidden")(norm(inputs))
    model = k3.Model(inputs, k3.layers.Dense(3, name="logits")(hidden))
    model.compile("adam", k3.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=60, batch_size=32, verbose=0)
    model.save(tmp_path / "tab.keras")

    result = _diagnose(str(tmp_path / "tab.keras"), "--data", str(tmp_path / "tab.csv"), "--json")

    assert "norm" in _top_two(result)
    document = json.loads(result.stdout)
    assert document["samples"] == 200 and "QuantizationDebugger" in document["method"]
    assert all(layer["name"] in _layer_names(model) for layer in document["layers"])
    norm_entry = next(layer for layer in document["layers"] if layer["name"] == "norm")
    low, high = norm_entry["input_range"]
    assert high > 1e4 and norm_entry["scale"] > 10  # the raw features, squeezed into one coarse scale
    assert norm_entry["channels_below_step"] >= 2  # the 1e-3 and 0.1 features at least


def test_a_missing_model_file_is_one_line_and_exit_2(tmp_path):
    result = _diagnose(str(tmp_path / "missing.keras"), "--data", "digits")

    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.keras" in lines[0] and "Traceback" not in result.output


def _images(rng, count: int):
    """8x8 grey images whose class is the row of a bright bar, over noise."""
    labels = rng.integers(0, 3, count)
    images = rng.uniform(0.0, 0.3, (count, 8, 8, 1))
    for image, label in zip(images, labels, strict=True):
        image[2 * label + 1:2 * label + 3, 2:6, 0] += 0.7
    return images.astype("float32"), labels.astype("int64")


def _cnn(k3, spiky_filters: int):
    inputs = k3.Input((8, 8, 1), name="image")
    x = k3.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = k3.layers.Conv2D(spiky_filters, 3, padding="same", activation="relu", name="spiky")(x)
    x = k3.layers.Conv2D(8, 1, activation="relu", name="mix")(x)
    x = k3.layers.GlobalAveragePooling2D(name="pool")(x)
    return k3.Model(inputs, k3.layers.Dense(3, name="head")(x))


def test_a_channel_with_rare_huge_activations_points_at_its_layer_or_the_next(k3, tmp_path):
    rng = np.random.default_rng(1)
    (x_train, y_train), (x_test, y_test) = _images(rng, 600), _images(rng, 150)
    np.savez(tmp_path / "images.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    k3.utils.set_random_seed(0)
    trained = _cnn(k3, 8)
    trained.compile("adam", k3.losses.SparseCategoricalCrossentropy(from_logits=True))
    trained.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0)
    # The same model with a ninth channel in "spiky" that fires on 0.1 % of the positions, ~100x the
    # others there; "mix" ignores it (zero weights), so the float model computes exactly what it did.
    model = _cnn(k3, 9)
    for layer in trained.layers:
        if layer.weights and layer.name not in ("spiky", "mix"):
            model.get_layer(layer.name).set_weights(layer.get_weights())
    conv_sums = k3.Model(trained.inputs, trained.get_layer("conv").output).predict(x_train, verbose=0).sum(-1)
    largest = k3.Model(trained.inputs, trained.get_layer("spiky").output).predict(x_train, verbose=0).max()
    threshold = np.quantile(conv_sums, 0.999)
    gain = 100 * largest / (conv_sums.max() - threshold)
    kernel, bias = trained.get_layer("spiky").get_weights()
    spike = np.zeros(kernel.shape[:3] + (1,), "float32")
    spike[1, 1, :, 0] = gain  # the centre of the patch, every conv channel
    model.get_layer("spiky").set_weights([np.concatenate([kernel, spike], -1),
                                          np.append(bias, -gain * threshold).astype("float32")])
    weights, mix_bias = trained.get_layer("mix").get_weights()
    model.get_layer("mix").set_weights([np.concatenate([weights, np.zeros((1, 1, 1, 8), "float32")], 2),
                                        mix_bias])
    spiky = k3.Model(model.inputs, model.get_layer("spiky").output).predict(x_train, verbose=0)
    assert spiky[..., 8].max() > 50 * spiky[..., :8].max()  # the model is what the test says
    np.testing.assert_allclose(model.predict(x_test, verbose=0), trained.predict(x_test, verbose=0),
                               atol=1e-4)
    model.save(tmp_path / "cnn.keras")

    result = _diagnose(str(tmp_path / "cnn.keras"), "--data", str(tmp_path / "images.npz"), "--json")

    assert {"spiky", "mix"} & set(_top_two(result))
    document = json.loads(result.stdout)
    assert all(layer["name"] in _layer_names(model) for layer in document["layers"])


def test_without_json_a_table_and_a_verdict_name_the_worst_layer(tmp_path):
    from edgeopt.kerasapi import keras

    rng = np.random.default_rng(2)
    x = (rng.normal(size=(200, 3)) * [1e-3, 1.0, 1e4]).astype("float32")
    y = (x[:, 1] > 0).astype("int64")
    np.savez(tmp_path / "small.npz", x=x, y=y)
    inputs = keras.Input((3,), name="features")
    hidden = keras.layers.Dense(4, name="dense")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden))
    model.save(tmp_path / "small.h5")

    result = _diagnose(str(tmp_path / "small.h5"), "--data", str(tmp_path / "small.npz"))

    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("int8 hurts 'dense' (Dense) most"), result.stdout
    assert "input range" in result.stdout and not result.stderr.strip()


def test_named_inputs_are_fed_by_name_and_a_concatenation_of_unlike_ranges_is_found(tmp_path):
    from edgeopt.kerasapi import keras

    rng = np.random.default_rng(3)
    large = (rng.normal(size=(300, 4)) * 100).astype("float32")
    small = rng.normal(size=(300, 2)).astype("float32")
    labels = (small[:, 0] > 0).astype("int64")
    np.savez(tmp_path / "two.npz", **{"x/large": large, "x/small": small, "y": labels})
    inputs = [keras.Input((4,), name="large"), keras.Input((2,), name="small")]
    branches = [keras.layers.Dense(3, name=f"dense_{i.name}")(i) for i in inputs]
    joined = keras.layers.Concatenate(name="cat")(branches)  # one int8 scale for both branches
    keras.Model(inputs, keras.layers.Dense(2, name="out")(joined)).save(tmp_path / "two.keras")

    result = _diagnose(str(tmp_path / "two.keras"), "--data", str(tmp_path / "two.npz"), "--json")

    assert _top_two(result)[0] == "cat"
    names = [layer["name"] for layer in json.loads(result.stdout)["layers"]]
    assert sorted(names) == ["cat", "dense_large", "dense_small", "out"]
