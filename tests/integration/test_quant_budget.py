"""An int8 file that lost its accuracy is never ok: a Keras 3 tabular MLP that standardises its
inputs with a Normalization layer, on features of very different scales, collapses under full-integer
post-training quantization; --preset ptq-int8 fails that variant (exit 1) naming it and its drop."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.cli import cli

pytestmark = pytest.mark.integration

SCALES = np.array([1e-3, 1.0, 50.0, 1e3, 1e4, 0.1, 5.0, 300.0])


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    import keras  # Keras 3, as a user builds the model

    folder = tmp_path_factory.mktemp("tabular")
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(600, 8)) * SCALES + SCALES * 3).astype("float32")
    y = (((x - SCALES * 3) / SCALES) @ rng.normal(size=(8, 3))).argmax(1)
    with open(folder / "tab.csv", "w") as f:
        f.write(",".join(f"f{i}" for i in range(8)) + ",label\n")
        f.writelines(",".join(f"{v:.7g}" for v in row) + f",{label}\n"
                     for row, label in zip(x, y, strict=True))
    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(x[:480])
    model = keras.Sequential([keras.Input((8,)), norm, keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:480], y[:480], epochs=60, verbose=0)
    model.save(folder / "tab.keras")
    return folder


def _preset(tabular, out, *sets):
    return CliRunner().invoke(cli, ["compress", "--preset", "ptq-int8", "--model", str(tabular / "tab.keras"),
                                    "--data", str(tabular / "tab.csv"), "--out", str(out), "--quiet", *sets])


def test_without_repair_a_collapsed_int8_variant_fails_the_budget_in_one_line(tabular, tmp_path):
    out = tmp_path / "out"
    result = _preset(tabular, out, "--set", "stages.0.repair=off")
    assert result.exit_code == 1, result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("edgeopt: check failed:")]
    assert len(failed) == 1 and "int8: over budget: accuracy drop vs original" in failed[0]
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed"
    variants = {v["name"]: v for v in report["variants"]}
    assert variants["float32"]["status"] == "ok"
    assert variants["int8"]["status"] == "failed" and "budget 1" in variants["int8"]["reason"]
    accuracy = {name: v["metrics"]["accuracy"]["value"] for name, v in variants.items()}
    assert accuracy["original"] - accuracy["int8"] > 0.01  # the figure that failed it is kept


def test_the_preset_repairs_it_by_keeping_the_normalization_in_float(tabular, tmp_path):
    out = tmp_path / "out"
    result = _preset(tabular, out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    int8 = next(v for v in report["variants"] if v["name"] == "int8")
    original = next(v for v in report["variants"] if v["name"] == "original")
    assert original["metrics"]["accuracy"]["value"] - int8["metrics"]["accuracy"]["value"] <= 0.01
    attempts = int8["repair"]["attempts"]
    assert [a["name"] for a in attempts][:4] == ["calibration", "percentile", "equalised",
                                                 "bias correction"]  # cheapest first, all short
    assert int8["float_layers"] == ["norm"] and int8["integer_mac_share"] >= 0.8
    assert int8["note"].startswith("repaired (float layers)")
    check = next(c for c in report["checks"] if c["check"] == "int8_ops" and c["variant"] == "int8")
    assert check["status"] == "ok" and "kept in float" in check["message"]


@pytest.fixture(scope="module")
def spiky(tmp_path_factory):
    """A Keras 3 CNN on digits one of whose convolutions has a channel that fires rarely and ~50x
    larger than the others: its one int8 scale leaves the other channels a few steps."""
    import keras

    from edgeopt.data import load_dataset

    folder = tmp_path_factory.mktemp("spiky")
    data = load_dataset("digits")
    np.savez(folder / "digits.npz", x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
             y_test=data.y_test)
    keras.utils.set_random_seed(0)
    inputs = keras.Input(data.x_train.shape[1:])
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="spiky")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv3")(x)
    outputs = keras.layers.Dense(10, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=30, batch_size=32, verbose=0)
    kernel, bias = model.get_layer("spiky").get_weights()
    active = keras.Model(inputs, model.get_layer("spiky").output).predict(data.x_train, verbose=0)
    channel = int(active.reshape(-1, 16).mean(0).argmax())
    threshold = np.quantile(active[..., channel][active[..., channel] > 0], 0.98)
    kernel[..., channel] *= 300.0  # fires on ~5 % of positions, hundreds of times larger
    bias[channel] = (bias[channel] - threshold) * 300.0
    model.get_layer("spiky").set_weights([kernel, bias])
    k3, b3 = model.get_layer("conv3").get_weights()
    k3[:, :, channel, :] /= 300.0
    model.get_layer("conv3").set_weights([k3, b3])
    model.fit(data.x_train, data.y_train, epochs=10, batch_size=32, verbose=0)
    model.save(folder / "spiky.keras")
    return folder


def test_an_outlier_channel_is_repaired_keeping_every_op_int8(spiky, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compress", "--preset", "ptq-int8", "--model",
                                      str(spiky / "spiky.keras"), "--data", str(spiky / "digits.npz"),
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    variants = {v["name"]: v for v in report["variants"]}
    int8 = variants["int8"]
    accuracy = {name: v["metrics"]["accuracy"]["value"] for name, v in variants.items()}
    assert accuracy["original"] - accuracy["int8"] <= 0.01
    kept = int8["repair"]["kept"]
    assert kept in ("calibration", "percentile", "equalised", "bias correction"), int8["repair"]  # all int8
    assert int8["inspect"]["float_ops"] == [] and int8["integer_mac_share"] == 1.0
