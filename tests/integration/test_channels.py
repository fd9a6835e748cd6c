"""Channel pruning on real tf_keras models: fewer channels, the same outputs where nothing was removed,
plain models that reload without custom objects, and a pipeline run whose .tflite holds the savings.

Five tiny architectures with distinct random weights (no training: the assertions are about structure).
A pruned model must equal the original with the dropped channels' input rows zeroed in every Conv2D
and Dense layer: that holds only when each layer kept exactly the channels its producers kept.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.cli import cli
from edgeopt.errors import InputError
from edgeopt.recipe import parse_recipe

pytestmark = pytest.mark.integration

N_TRAIN = 400


@pytest.fixture(scope="module")
def env():
    from edgeopt.data import load_dataset

    full = load_dataset("digits")
    data = replace(full, x_train=full.x_train[:N_TRAIN], y_train=full.y_train[:N_TRAIN])
    train = parse_recipe({"model": "m", "data": "d", "train": {"validation_split": 0.0}}).train
    return {"data": data, "train": train}


# -- the models --------------------------------------------------------------------------------------


def plain_cnn():
    from edgeopt.kerasapi import keras

    layers, inputs = keras.layers, keras.Input((8, 8, 1))
    x = inputs
    for i, filters in enumerate((16, 32), start=1):
        x = layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x))


def resnet_block():
    from edgeopt.kerasapi import keras

    layers, inputs = keras.layers, keras.Input((8, 8, 1))

    def conv_bn(x, filters, kernel, name):
        x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=name)(x)
        return layers.BatchNormalization(name=f"{name}_bn")(x)

    x = layers.ReLU(name="stem_relu")(conv_bn(inputs, 16, 3, "stem"))
    y = layers.ReLU(name="conv1_relu")(conv_bn(x, 32, 3, "conv1"))
    y = conv_bn(y, 32, 3, "conv2")
    shortcut = conv_bn(x, 32, 1, "projection")
    x = layers.ReLU(name="out_relu")(layers.Add(name="add")([y, shortcut]))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x))


def inverted_residual():
    from edgeopt.kerasapi import keras

    layers, inputs = keras.layers, keras.Input((8, 8, 1))

    def bn_relu6(x, name):
        return layers.ReLU(6.0, name=f"{name}_relu6")(layers.BatchNormalization(name=f"{name}_bn")(x))

    x = bn_relu6(layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs), "stem")
    y = bn_relu6(layers.Conv2D(64, 1, use_bias=False, name="expand")(x), "expand")
    y = bn_relu6(layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(y), "depthwise")
    y = layers.BatchNormalization(name="project_bn")(layers.Conv2D(16, 1, use_bias=False, name="project")(y))
    x = layers.Add(name="add")([x, y])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x))


def mlp():
    from edgeopt.kerasapi import keras

    layers = keras.layers
    return keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(name="flatten"),
                             layers.Dense(64, activation="relu", name="hidden1"),
                             layers.Dense(32, activation="relu", name="hidden2"),
                             layers.Dense(10, name="logits")])


def flatten_dense():
    from edgeopt.kerasapi import keras

    layers, inputs = keras.layers, keras.Input((8, 8, 1))
    x = layers.Conv2D(16, 3, activation="relu", name="conv")(inputs)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(32, activation="relu", name="dense")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x))


MODELS = {  # builder, criterion, channels after pruning half (rounded to 8, at least 8)
    "plain_cnn": (plain_cnn, "bn_scale", {"conv1": 8, "conv2": 16, "logits": 10}),
    "resnet_block": (resnet_block, "taylor",
                     {"stem": 8, "conv1": 16, "conv2": 16, "projection": 16, "logits": 10}),
    "inverted_residual": (inverted_residual, "l2", {"stem": 8, "expand": 32, "project": 8, "logits": 10}),
    "mlp": (mlp, "l1", {"hidden1": 32, "hidden2": 16, "logits": 10}),
    "flatten_dense": (flatten_dense, "taylor", {"conv": 8, "dense": 16, "logits": 10}),
}


# -- helpers -----------------------------------------------------------------------------------------


def randomised(model, seed=0):
    """``model`` with distinct random weights (positive variances), so every kept weight is traceable."""
    rng = np.random.default_rng(seed)
    model.set_weights([np.abs(rng.normal(size=w.shape)) + 0.5 if "variance" in w.name
                       else rng.normal(size=w.shape) for w in model.weights])
    return model


def copy(model):
    from edgeopt.kerasapi import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def stage(**fields):
    return parse_recipe({"model": "m", "data": "d",
                         "stages": [{"kind": "prune_channels", "epochs": 1, **fields}]}).stages[0]


def apply(env, model, earlier=(), **fields):
    from edgeopt.techniques import TECHNIQUES, StageContext

    ctx = StageContext(data=env["data"], train=env["train"], seed=0, stage_index=0, earlier=earlier)
    technique, parsed = TECHNIQUES["prune_channels"], stage(**fields)
    return technique.apply(model, parsed, ctx), technique, parsed, ctx


def widths(model) -> dict[str, int]:
    return {layer.name: getattr(layer, "filters", None) or layer.units for layer in model.layers
            if getattr(layer, "filters", None) or hasattr(layer, "units")}  # depthwise: filters None


def sub_indices(old: np.ndarray, new: np.ndarray) -> list[np.ndarray]:
    """Per axis, the indices of ``old`` that ``new`` is made of, in order: ``new == old[np.ix_(*idx)]``."""
    flat = old.ravel()
    order = np.argsort(flat)
    where = order[np.clip(np.searchsorted(flat[order], new.ravel()), 0, flat.size - 1)]
    assert np.array_equal(flat[where], new.ravel()), "a weight that is not the original's"
    coords = np.unravel_index(where, old.shape)
    idx = [coords[axis].reshape(new.shape)[tuple(slice(None) if a == axis else 0 for a in range(old.ndim))]
           for axis in range(old.ndim)]
    assert np.array_equal(new, old[np.ix_(*idx)]), "kept weights moved"
    assert all(np.all(np.diff(i) > 0) for i in idx), "kept channels out of order"
    return idx


def masked(original, pruned):
    """``original`` with every Conv2D and Dense input row that ``pruned`` dropped set to zero; checks
    on the way that each weight of ``pruned`` is a slice of the original's."""
    result = copy(original)
    for layer in result.layers:
        if not layer.weights:
            continue
        new_layer = pruned.get_layer(layer.name)
        for old, new in zip(layer.get_weights(), new_layer.get_weights(), strict=True):
            sub_indices(old, new)
        if hasattr(layer, "kernel") and not hasattr(layer, "depthwise_kernel"):
            kernel = layer.kernel.numpy()
            rows = sub_indices(kernel, new_layer.kernel.numpy())[-2]
            dropped = np.setdiff1d(np.arange(kernel.shape[-2]), rows)
            kernel[..., dropped, :] = 0
            layer.kernel.assign(kernel)
    return result


# -- the models, pruned by half --------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_half_pruning_keeps_the_original_weights_of_the_kept_channels(env, name, tmp_path):
    from edgeopt.kerasapi import keras

    build, criterion, expected = MODELS[name]
    original = randomised(build())
    x = env["data"].x_test[:32]
    pruned, *_ = apply(env, copy(original), fraction=0.5, criterion=criterion)

    assert widths(pruned) == expected
    assert pruned.output_shape == original.output_shape
    np.testing.assert_allclose(pruned(x).numpy(), masked(original, pruned)(x).numpy(), rtol=1e-4, atol=1e-4)

    pruned.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")  # plain tf_keras, no custom objects
    assert all(type(layer).__module__.startswith("tf_keras.") for layer in reloaded.layers)
    np.testing.assert_array_equal(reloaded(x).numpy(), pruned(x).numpy())


@pytest.mark.parametrize("name", list(MODELS))
def test_a_zero_fraction_rebuild_equals_the_original(env, name):
    from edgeopt.techniques.channels import prune_to

    build, criterion, _ = MODELS[name]
    original = randomised(build())
    _, _, _, ctx = apply(env, copy(original), fraction=0.0)
    rebuilt = prune_to(original, {}, criterion, ctx, "stages[0]")
    assert rebuilt is not original and widths(rebuilt) == widths(original)
    x = env["data"].x_test[:16]
    np.testing.assert_array_equal(rebuilt(x).numpy(), original(x).numpy())


def test_gradual_distilled_pruning_fine_tunes_and_strips_to_a_plain_model(env):
    from edgeopt.train import fit

    wrapped, technique, parsed, ctx = apply(env, randomised(plain_cnn()), fraction=0.5, schedule="gradual",
                                            rounds=2, distill=True, criterion="bn_scale")
    assert type(wrapped).__name__ == "Distiller"
    history = fit(wrapped, env["data"], env["train"], epochs=1, learning_rate=1e-3, early_stopping=False)
    stripped = technique.strip(wrapped)
    assert type(stripped).__name__ == "Functional" and all(layer.trainable for layer in stripped.layers)
    assert widths(stripped) == MODELS["plain_cnn"][2]
    outcome = technique.outcome(stripped, parsed, ctx, history)
    assert outcome.achieved["channels"] == {"conv1": [16, 8], "conv2": [32, 16]}
    assert outcome.achieved["per_group_fraction"] == {"conv1": 0.5, "conv2": 0.5}
    assert outcome.achieved["macs_after"] < 0.3 * outcome.achieved["macs_before"]
    assert outcome.skipped_layers == {"Dense(output)": 1} and "l1_fallback" not in outcome.achieved


def test_a_lambda_leaves_its_group_whole_and_is_reported(env):
    from edgeopt.kerasapi import keras

    layers, inputs = keras.layers, keras.Input((8, 8, 1))
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.Lambda(lambda t: t * 2.0, name="double")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    model = keras.Model(inputs, layers.Dense(10, name="logits")(layers.GlobalAveragePooling2D()(x)))
    pruned, technique, parsed, ctx = apply(env, randomised(model), fraction=0.5, criterion="l1")
    assert widths(pruned) == {"conv1": 16, "conv2": 16, "logits": 10}
    outcome = technique.outcome(pruned, parsed, ctx, {})
    assert outcome.skipped_layers == {"Conv2D(feeds Lambda)": 1, "Lambda(user code)": 1, "Dense(output)": 1}
    assert outcome.summary.endswith("3 layers not channel-pruned: 1 Conv2D(feeds Lambda), "
                                    "1 Lambda(user code), 1 Dense(output)")


def test_a_bad_layer_name_is_refused_in_one_line(env):
    with pytest.raises(InputError, match=r"stages\[0\]\.layers: the model has no layer 'conv_1' "
                                         r"\(did you mean 'conv1'\?\)"):
        apply(env, plain_cnn(), fraction=0.5, layers={"conv_1": 0.5})
    # the order (prune_channels before prune, cluster, quantize) is the recipe's: test_channels_groups


# -- a strided 1x1 convolution: TensorFlow's crash, and the rebuild's guard ----------------------------


def strided_projection():
    """A residual block downsampling 16x16 maps, its shortcut a 1x1 convolution of stride 2 fed by the
    stem's group: with 8 input channels, its kernel gradient on an odd-sized batch corrupted the heap
    in oneDNN (a segfault, or "double free or corruption", inside fit)."""
    from edgeopt.kerasapi import keras

    layers, inputs = keras.layers, keras.Input((8, 8, 1))
    x = layers.UpSampling2D(2, name="up")(inputs)
    x = layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.ReLU(name="stem_relu")(layers.BatchNormalization(name="stem_bn")(x))
    y = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="down")(x)
    shortcut = layers.Conv2D(32, 1, strides=2, use_bias=False, name="projection")(x)
    x = layers.ReLU(name="out_relu")(layers.Add(name="add")([y, shortcut]))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x))


def test_a_group_feeding_a_strided_1x1_convolution_keeps_16_channels_and_fine_tunes(env):
    from edgeopt.train import fit

    model = randomised(strided_projection())
    pruned, technique, parsed, ctx = apply(env, model, fraction=0.75, criterion="l1")
    assert widths(pruned) == {"stem": 16, "down": 8, "projection": 8, "logits": 10}
    assert pruned.get_layer("projection").input_shape[-1] == 16
    outcome = technique.outcome(pruned, parsed, ctx, {})
    assert outcome.achieved["held"] == {"stem": "feeds the strided 1x1 convolution projection: at least 16 "
                                                "channels, fewer crash TensorFlow's training"}
    # 19 samples: one odd-sized batch, the case that crashed the process with 8 channels
    data = replace(env["data"], x_train=env["data"].x_train[:19], y_train=env["data"].y_train[:19])
    history = fit(pruned, data, env["train"], epochs=1, learning_rate=1e-3, early_stopping=False)
    assert np.isfinite(history["loss"][0])


def test_a_strided_1x1_convolution_narrowed_below_16_inputs_is_refused_before_training(env, monkeypatch):
    from edgeopt.techniques.channels import Grouping

    monkeypatch.setattr(Grouping, "feeds_strided_1x1", lambda self, group: [])  # as before the floor
    with pytest.raises(RuntimeError, match=r"rebuilt layer 'projection' \(Conv2D\) as a strided 1x1 "
                                           r"convolution with 8 input channels \(from 32\); fewer than 16"):
        apply(env, strided_projection(), fraction=0.75, criterion="l1")


def test_a_weight_sliced_to_another_shape_is_refused_before_tensorflow_sees_it(env, monkeypatch):
    from edgeopt.techniques import channels

    sliced = channels.sliced_weights

    def one_short(layer, grouping, keep):  # a batch norm's moving variance missing a channel
        values = sliced(layer, grouping, keep)
        return [*values[:-1], values[-1][:-1]] if layer.name == "bn2" else values

    monkeypatch.setattr(channels, "sliced_weights", one_short)
    with pytest.raises(RuntimeError) as caught:
        apply(env, plain_cnn(), fraction=0.5, criterion="l1")
    assert str(caught.value) == (
        "channel pruning rebuilt layer 'bn2' (BatchNormalization) with weights of shapes [(16,), (16,), "
        "(16,), (15,)] and variables [(16,), (16,), (16,), (16,)], but its configuration builds [(16,), "
        "(16,), (16,), (16,)]; this is a bug in edgeopt's prune_channels")


# -- through the pipeline ------------------------------------------------------------------------------

QUICK = ["--set", "train.epochs=2", "--set", "export=[float32,int8]", "--set", "benchmark.runs=5",
         "--set", "benchmark.warmup=1", "--set", "benchmark.min_seconds=0", "--quiet"]


def test_digits_cnn_channel_pruned_by_half_has_a_quarter_of_the_macs_in_its_int8_file(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "compress", "models/digits_cnn/recipe.yaml", "--out", str(out),
        "--set", "stages=[{kind: prune_channels, fraction: 0.5, epochs: 1}]", *QUICK])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    checks = {(c["variant"], c["check"]): c for c in report["checks"]}
    macs, params = checks[("int8", "channels_macs")], checks[("int8", "channels_params")]
    assert macs["status"] == "ok" and params["status"] == "ok"
    # conv2 and the dense layer lose half their inputs and half their outputs: about a quarter is left
    assert 0.2 < macs["measured"] < 0.3 and 0.2 < params["measured"] < 0.3
    unpruned = next(v for v in report["variants"] if v["name"] == "trained_float32")
    int8 = next(v for v in report["variants"] if v["name"] == "int8")
    assert int8["inspect"]["macs"] < 0.3 * unpruned["inspect"]["macs"]
    assert report["stages"][0]["summary"].startswith("3 of 3 channel groups pruned")


@pytest.mark.parametrize(("change", "message"), [
    ("fraction: 1.0", "stages[0].fraction: input should be less than 1"),
    ("fraction: 0.5, criterion: random", "stages[0].criterion: input should be 'l1', 'l2', 'bn_scale' or "),
    ("fraction: 0.5, layers: {conv9: 0.5}", "stages[0].layers: the model has no layer 'conv9' (did you mean"),
])
def test_bad_channel_stages_are_refused_in_one_line(tmp_path, change, message):
    result = CliRunner().invoke(cli, [
        "compress", "models/digits_cnn/recipe.yaml", "--out", str(tmp_path / "run"),
        "--set", f"stages=[{{kind: prune_channels, {change}}}]", *QUICK, "--set", "train.epochs=0"])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
