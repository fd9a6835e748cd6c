"""Channel pruning without TensorFlow: the stage's validation, the kept counts, the channel groups read
from a graph, the Keras-side cost and the checks against the .tflite."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeopt.errors import RecipeError
from edgeopt.recipe import check_stage_order, parse_recipe
from edgeopt.techniques import TECHNIQUES
from edgeopt.techniques.base import stage_outcome
from edgeopt.techniques.channels import (
    ChannelsStage,
    Node,
    cost,
    final_channels,
    find_groups,
    kept_channels,
    step_channels,
)
from edgeopt.types import Variant

BASE = {"model": "digits_cnn", "data": "digits"}


def stage(**fields) -> ChannelsStage:
    return parse_recipe({**BASE, "stages": [{"kind": "prune_channels", "fraction": 0.5, **fields}]}).stages[0]


def error_of(**fields) -> str:
    with pytest.raises(RecipeError) as caught:
        stage(**fields)
    return str(caught.value)


# -- the stage --


def test_the_stage_parses_with_its_defaults():
    parsed = stage()
    assert isinstance(parsed, ChannelsStage)
    assert (parsed.fraction, parsed.min_channels, parsed.round_to, parsed.criterion, parsed.schedule,
            parsed.steps, parsed.distill) == (0.5, 8, 8, "bn_scale", "oneshot", 1, False)
    assert stage(schedule="gradual").steps == 3 and stage(schedule="gradual", rounds=5).steps == 5


@pytest.mark.parametrize(("fields", "message"), [
    ({"fraction": 1.0}, "stages[0].fraction: input should be less than 1, got 1.0"),
    ({"fraction": -0.1}, "stages[0].fraction: input should be greater than or equal to 0"),
    ({"layers": {"conv1": 1.5}}, "stages[0].layers.conv1: input should be less than 1, got 1.5"),
    ({"criterion": "random"}, "stages[0].criterion: input should be 'l1', 'l2', 'bn_scale' or 'taylor'"),
    ({"rounds": 3}, "rounds is for schedule: gradual"),
    ({"schedule": "gradual", "rounds": 1}, "stages[0].rounds: input should be greater than or equal to 2"),
    ({"min_channels": 0}, "stages[0].min_channels: input should be greater than or equal to 1"),
    ({"fracton": 0.5}, "did you mean 'fraction'"),
])
def test_bad_stage_fields_are_refused_with_their_path(fields, message):
    assert message in error_of(**fields)


def test_channel_pruning_comes_before_the_weight_stages_and_after_distill():
    kinds = ["distill", "prune_channels", "prune", "cluster", "quantize"]
    check_stage_order(kinds)
    assert TECHNIQUES["prune_channels"].placement.before == ("prune", "cluster", "quantize")


def test_weight_stages_before_channel_pruning_are_refused_before_training():
    with pytest.raises(ValueError, match="prune_channels must come before prune"):
        check_stage_order(["prune", "prune_channels"])


def test_the_stage_imports_without_tensorflow():
    code = ("import sys, edgeopt.techniques.channels; "
            "sys.exit('tensorflow' in sys.modules or 'tf_keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- kept channel counts --


@pytest.mark.parametrize(("channels", "fraction", "kept"), [
    (64, 0.5, 32),  # a multiple of 8 already
    (32, 0.0, 32),  # nothing asked: all kept
    (20, 0.5, 8),  # 10 rounds to the nearest multiple of 8
    (20, 0.05, 20),  # 19: keeping all 20 is nearer than 16
    (16, 0.9, 8),  # never below min_channels
    (6, 0.5, 6),  # fewer than min_channels: left whole
    (100, 0.5, 48),  # 50 -> 48
    (24, 0.5, 16),  # 12 is half-way between 8 and 16: keep more
])
def test_kept_channels_are_multiples_of_round_to_within_the_floor_and_the_original(channels, fraction, kept):
    assert kept_channels(channels, fraction, min_channels=8, round_to=8) == kept


def test_gradual_steps_go_down_evenly_to_the_final_count():
    final = kept_channels(64, 0.75, 8, 8)
    assert [step_channels(64, final, step, 3, 8) for step in (1, 2, 3)] == [48, 32, 16]
    assert step_channels(20, 20, 1, 2, 8) == 20


# -- channel groups read from a graph --


def conv(name, inputs, filters, size=8, kernel=3, **config):
    return Node(name, "Conv2D", tuple(inputs), (size, size, filters),
                {"filters": filters, "kernel_size": [kernel, kernel], "activation": "linear", **config})


def layer(name, op, inputs, shape, **config):
    return Node(name, op, tuple(inputs), shape, config)


def dense(name, inputs, units, **config):
    return Node(name, "Dense", tuple(inputs), (units,), {"units": units, "activation": "linear", **config})


IMAGE = Node("image", "InputLayer", (), (8, 8, 1))


def plain_cnn():
    return [IMAGE, conv("c1", ["image"], 16),
            layer("bn1", "BatchNormalization", ["c1"], (8, 8, 16), axis=[3]),
            layer("r1", "ReLU", ["bn1"], (8, 8, 16)), conv("c2", ["r1"], 32),
            layer("gap", "GlobalAveragePooling2D", ["c2"], (32,)), dense("logits", ["gap"], 10)]


def test_conv_bn_relu_chains_are_one_group_each_and_the_output_is_left_whole():
    grouping = find_groups(plain_cnn(), ["logits"])
    assert list(grouping.groups()) == ["c1", "c2", "logits"]
    assert grouping.prunable() == ["c1", "c2"]
    assert grouping.skipped == {"logits": "Dense(output)"}
    assert set(grouping.inputs) == {"c1", "bn1", "c2", "logits"}  # the layers whose weights are sliced


def test_a_residual_add_ties_its_inputs_into_one_group():
    nodes = [IMAGE, conv("stem", ["image"], 16), conv("a", ["stem"], 32), conv("b", ["a"], 32),
             conv("proj", ["stem"], 32, kernel=1), layer("add", "Add", ["b", "proj"], (8, 8, 32)),
             layer("gap", "GlobalAveragePooling2D", ["add"], (32,)), dense("logits", ["gap"], 10)]
    grouping = find_groups(nodes, ["logits"])
    assert grouping.prunable() == ["stem", "a", "b+proj"]


def test_an_add_with_the_model_input_leaves_its_group_whole():
    nodes = [Node("image", "InputLayer", (), (8, 8, 8)), conv("c", ["image"], 8),
             layer("add", "Add", ["image", "c"], (8, 8, 8)), layer("flat", "Flatten", ["add"], (512,)),
             dense("logits", ["flat"], 10)]
    grouping = find_groups(nodes, ["logits"])
    assert grouping.prunable() == []
    assert grouping.skipped["c"] == "Conv2D(Add with channels not pruned)"


def test_depthwise_passes_channels_through_and_is_sliced_with_them():
    nodes = [IMAGE, conv("expand", ["image"], 32, kernel=1),
             layer("dw", "DepthwiseConv2D", ["expand"], (8, 8, 32), kernel_size=[3, 3], depth_multiplier=1),
             conv("project", ["dw"], 16, kernel=1),
             layer("gap", "GlobalAveragePooling2D", ["project"], (16,)), dense("logits", ["gap"], 10)]
    grouping = find_groups(nodes, ["logits"])
    assert grouping.prunable() == ["expand", "project"]
    expand = grouping.groups()["expand"]
    assert grouping.positions(grouping.inputs["dw"], {expand: [1, 5]}) == [1, 5]
    assert grouping.positions(grouping.inputs["project"], {expand: [1, 5]}) == [1, 5]


def test_concatenate_keeps_each_input_offset():
    nodes = [IMAGE, conv("a", ["image"], 8), conv("b", ["image"], 16),
             layer("cat", "Concatenate", ["a", "b"], (8, 8, 24), axis=-1), conv("c", ["cat"], 8),
             layer("flat", "Flatten", ["c"], (512,)), dense("logits", ["flat"], 10)]
    grouping = find_groups(nodes, ["logits"])
    groups = grouping.groups()
    keep = {groups["a"]: [0, 7], groups["b"]: [2, 3, 15]}
    assert grouping.positions(grouping.inputs["c"], keep) == [0, 7, 8 + 2, 8 + 3, 8 + 15]


def test_flatten_maps_each_channel_to_its_positions_in_the_vector():
    nodes = [IMAGE, conv("c", ["image"], 4, size=2), layer("flat", "Flatten", ["c"], (16,)),
             dense("hidden", ["flat"], 8), dense("logits", ["hidden"], 10)]
    grouping = find_groups(nodes, ["logits"])
    c = grouping.groups()["c"]
    # 2x2 positions of 4 channels, channels last: channel k sits at 4*s + k
    assert grouping.positions(grouping.inputs["hidden"], {c: [1, 3]}) == [1, 3, 5, 7, 9, 11, 13, 15]


def test_a_lambda_leaves_the_group_it_touches_whole_and_is_listed():
    nodes = [IMAGE, conv("c1", ["image"], 16),
             Node("scale", "Lambda", ("c1",), (8, 8, 16), why="user code"), conv("c2", ["scale"], 16),
             layer("gap", "GlobalAveragePooling2D", ["c2"], (16,)), dense("logits", ["gap"], 10)]
    grouping = find_groups(nodes, ["logits"])
    assert grouping.prunable() == ["c2"]
    assert grouping.skipped == {"c1": "Conv2D(feeds Lambda)", "scale": "Lambda(user code)",
                                "logits": "Dense(output)"}


@pytest.mark.parametrize("node", [
    layer("reshape", "Reshape", ["c1"], (8, 128), target_shape=[8, 128]),
    Node("odd", "MyLayer", ("c1",), (8, 8, 16), why="custom layer"),
    layer("norm", "LayerNormalization", ["c1"], (8, 8, 16), axis=[3]),
    layer("soft", "Activation", ["c1"], (8, 8, 16), activation="softmax"),
])
def test_layers_it_cannot_reason_about_leave_their_input_group_whole(node):
    nodes = [IMAGE, conv("c1", ["image"], 16), node, layer("flat", "Flatten", [node.name], (1024,)),
             dense("logits", ["flat"], 10)]
    grouping = find_groups(nodes, ["logits"])
    assert grouping.prunable() == [] and "c1" in grouping.skipped and node.name in grouping.skipped


def test_a_hidden_softmax_activation_leaves_its_layer_whole():
    nodes = [Node("x", "InputLayer", (), (64,)), dense("attn", ["x"], 32, activation="softmax"),
             dense("logits", ["attn"], 10)]
    assert find_groups(nodes, ["logits"]).skipped["attn"] == "Dense(softmax activation)"


def test_per_layer_fractions_override_the_global_one():
    grouping = find_groups(plain_cnn(), ["logits"])
    assert final_channels(grouping, stage(layers={"bn1": 0.0}), "stages[0]") == {"c1": 16, "c2": 16}
    assert final_channels(grouping, stage(fraction=0.0, layers={"c2": 0.75}), "stages[0]") == {
        "c1": 16, "c2": 8}
    assert final_channels(grouping, stage(layers={"logits": 0}), "stages[0]") == {"c1": 8, "c2": 16}


def test_a_group_feeding_a_strided_1x1_convolution_keeps_16_channels_and_says_why():
    nodes = [IMAGE, conv("stem", ["image"], 32, size=16), conv("down", ["stem"], 32, strides=[2, 2]),
             conv("proj", ["stem"], 32, kernel=1, strides=[2, 2]), conv("narrow", ["image"], 12, size=16),
             conv("proj2", ["narrow"], 32, kernel=1, strides=[2, 2]),
             layer("add", "Add", ["down", "proj", "proj2"], (8, 8, 32)),
             layer("gap", "GlobalAveragePooling2D", ["add"], (32,)), dense("logits", ["gap"], 10)]
    grouping = find_groups(nodes, ["logits"])
    # stem feeds proj, narrow (12 channels, fewer than 16) feeds proj2: both kept whole from 8;
    # down+proj+proj2 feed no strided 1x1 convolution and go down to 8
    assert final_channels(grouping, stage(fraction=0.75), "stages[0]") == {
        "stem": 16, "narrow": 12, "down+proj+proj2": 8}
    assert grouping.held == {"stem": "feeds the strided 1x1 convolution proj: at least 16 channels, fewer "
                                     "crash TensorFlow's training",
                             "narrow": "feeds the strided 1x1 convolution proj2: at least 16 channels, fewer "
                                       "crash TensorFlow's training"}
    grouping = find_groups(nodes, ["logits"])
    assert final_channels(grouping, stage(fraction=0.5), "stages[0]")["stem"] == 16 and grouping.held == {
        "narrow": grouping.held["narrow"]}  # half of 32 is 16 already: nothing held


@pytest.mark.parametrize(("layers", "message"), [
    ({"cc1": 0.5}, "stages[0].layers: the model has no layer 'cc1' (did you mean 'c1'?)"),
    ({"x": 0.5}, "stages[0].layers: the model has no layer 'x' (it has image, c1, bn1, r1, c2 and 2 more)"),
    ({"logits": 0.5}, "stages[0].layers: 'logits' cannot be channel-pruned (output); remove it or give it 0"),
])
def test_per_layer_fractions_must_name_prunable_layers(layers, message):
    from edgeopt.errors import InputError

    with pytest.raises(InputError) as caught:
        final_channels(find_groups(plain_cnn(), ["logits"]), stage(layers=layers), "stages[0]")
    assert str(caught.value) == message


# -- cost and checks --


def test_cost_counts_params_and_macs_as_the_tflite_does():
    params, macs = cost(plain_cnn())
    # c1: 3x3x1x16 + 16 (bias, bn1 folded in); c2: 3x3x16x32 + 32; logits 32x10 + 10
    assert params == 160 + 4640 + 330
    assert macs == 64 * 16 * 9 + 64 * 32 * 9 * 16 + 320


def _inspected(name, params, macs):
    return Variant(name=name, format=name, inspect={"params": params, "macs": macs})


def test_checks_hold_each_export_to_the_pruned_share_of_the_unpruned_counts():
    outcome = stage_outcome(stage(), {}, {"params_before": 1000, "params_after": 300,
                                          "macs_before": 10_000, "macs_after": 2_500})
    checks = TECHNIQUES["prune_channels"].checks(outcome, [_inspected("int8", 310, 2_600),
                                                           _inspected("float32", 900, 2_500)])
    assert [(c.variant, c.check, c.measured, c.status) for c in checks] == [
        ("int8", "channels_params", 0.31, "ok"), ("int8", "channels_macs", 0.26, "ok"),
        ("float32", "channels_params", 0.9, "fail"), ("float32", "channels_macs", 0.25, "ok")]
    assert checks[2].message == ("float32: params 900 in the .tflite, 0.900 of the unpruned model's 1,000 "
                                 "(above 0.320 = the pruned model's 0.300 + 0.02)")
