"""Structured channel pruning as a recipe stage: the exported model itself is smaller and faster.

Reads the model's Functional graph into groups of channels that are removed together: a Conv2D or
Dense layer's output channels, through the layers that treat each channel alone (batch norm,
element-wise activations, pooling, dropout, depthwise convolution), into the next Conv2D or Dense
layer's input rows. A residual Add (or Multiply) ties its inputs' groups into one; Concatenate keeps
each input's offset; Flatten maps a channel to its positions in the flattened vector. Channels that
reach a model output, and groups that touch a layer it cannot reason about (a Lambda, a custom
layer, Reshape, attention), are left whole and listed as skipped. Each group keeps its best channels
by ``criterion``, in counts that are multiples of ``round_to`` and never below ``min_channels`` (nor
below :data:`STRIDED_1X1_INPUTS` where they feed a strided 1x1 convolution), and the model is
rebuilt from its configuration with fewer ``filters`` / ``units`` and the kept slices of every
weight: an ordinary, smaller tf_keras model, with no wrappers to strip; every sliced weight is checked
against the shape its rebuilt layer's configuration implies. ``gradual`` removes channels in
``rounds`` steps, each but the last followed by ``round_epochs`` of fine-tuning inside ``apply`` (a
model cannot be rebuilt in the middle of ``fit``); the pipeline's fine-tune after ``apply`` is the
last one. With ``distill``, every fine-tune also learns from the unpruned model's outputs (the
distill stage's guide). It comes before the stages that shape weights (prune, cluster, quantize),
which a rebuild would undo. The checks: each export's params and MACs, read from the ``.tflite``,
are at most the share of the unpruned model's that the pruned Keras model counts.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from edgeopt.dataset import CLASSIFICATION, take
from edgeopt.errors import InputError
from edgeopt.internals import nodes_by_depth, producing_layer
from edgeopt.techniques.base import (
    MAX_EPOCHS,
    FineTune,
    Placement,
    StageContext,
    Technique,
    exported,
    stage_outcome,
    wrappable,
)
from edgeopt.techniques.distill import TECHNIQUE as DISTILL
from edgeopt.techniques.distill import DistillStage, TeacherGuide, distiller_class
from edgeopt.techniques.layers import CUSTOM_LAYER, KERAS_MODULES, LISTED, USER_CODE, listing, skipped_summary
from edgeopt.types import Check, CheckStatus, StageOutcome, Variant

if TYPE_CHECKING:
    from edgeopt.dataset import Dataset
    from edgeopt.trainspec import TrainSpec

CRITERIA = ("l1", "l2", "bn_scale", "taylor")
MAX_CHANNELS = 1 << 16
MAX_ROUNDS = 100
GRADUAL_ROUNDS = 3
# What the Keras-side count may miss of a .tflite (a bias folding adds, ops it does not count), as a
# share of the unpruned model's params or MACs.
TOLERANCE = 0.02
TAYLOR_SAMPLES = 512  # training samples the first-order Taylor scores are summed over
TAYLOR_BATCH = 64
# The fewest channels a group keeps when it feeds a 1x1 convolution with a stride above 1. Training
# such a layer with fewer input channels than oneDNN's block (16 with AVX-512, 8 with AVX2) corrupts
# the heap, on an odd-sized batch such as an epoch's last one: the kernel gradient's oneDNN path
# (Conv2DBackpropFilter, "rtus") writes past its buffer, and TensorFlow segfaults or aborts with
# "double free or corruption" (TF 2.21 with oneDNN on, its default on x86; oneDNN issue #6035).
STRIDED_1X1_INPUTS = 16

# -- the stage --------------------------------------------------------------------------------------

Fraction = Annotated[float, Field(ge=0, lt=1)]


class ChannelsStage(FineTune):
    kind: Literal["prune_channels"] = "prune_channels"
    fraction: Fraction = Field(..., description="fraction of the channels removed in each prunable group")
    layers: dict[str, Fraction] = Field(default_factory=dict,
                                        description="per-layer fractions by layer name, overriding fraction")
    min_channels: int = Field(8, ge=1, le=MAX_CHANNELS, description="channels a layer always keeps")
    round_to: int = Field(8, ge=1, le=MAX_CHANNELS, description="kept channel counts are multiples of it")
    # bn_scale by default: one-shot 50% and a 2-epoch fine-tune, int8 accuracy, it is l1 on digits_cnn (no
    # batch norm; 96.7%, l2 96.9%, taylor 96.4%, 10 seeds: a tie within one test image) and the best on
    # mobilenet_v2 (84.3%, l1 74.8%, l2 68.2%, taylor 69.9%, 3 seeds).
    criterion: Literal[CRITERIA] = Field(  # type: ignore[valid-type]
        "bn_scale", description="channel ranking: kernel l1 or l2 norm, batch-norm |gamma| (l1 where a "
        "group has no batch norm), or first-order Taylor |sum of activation x gradient| on training data",
    )
    schedule: Literal["oneshot", "gradual"] = "oneshot"
    rounds: int | None = Field(None, ge=2, le=MAX_ROUNDS,
                               description=f"gradual: pruning steps (default {GRADUAL_ROUNDS})")
    round_epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="gradual: fine-tuning between steps")
    distill: bool = Field(False, description="fine-tune against the unpruned model's outputs too")

    @model_validator(mode="after")
    def _rounds_are_gradual(self) -> ChannelsStage:
        if self.schedule == "oneshot" and self.rounds is not None:
            raise ValueError("rounds is for schedule: gradual; remove it or set schedule: gradual")
        return self

    @property
    def steps(self) -> int:
        """Pruning steps: 1 one-shot, ``rounds`` gradual."""
        return 1 if self.schedule == "oneshot" else self.rounds or GRADUAL_ROUNDS


def kept_channels(channels: int, fraction: float, min_channels: int, round_to: int) -> int:
    """The channels a group of ``channels`` keeps when ``fraction`` of them is asked to go.

    The count is the multiple of ``round_to`` nearest to ``channels x (1 - fraction)`` (ties keep
    more), never below ``min_channels`` nor above ``channels``; keeping them all is always allowed,
    so a group without a multiple in range is left whole.
    """
    choices = [k for k in range(round_to, channels + 1, round_to) if k >= min_channels] + [channels]
    target = channels * (1 - fraction)
    return min(choices, key=lambda k: (abs(k - target), -k))


def step_channels(channels: int, final: int, step: int, steps: int, round_to: int) -> int:
    """Channels kept after ``step`` of ``steps`` equal steps from ``channels`` down to ``final``."""
    if step >= steps or final == channels:
        return final
    fraction = (channels - final) * step / steps / channels
    return kept_channels(channels, fraction, final, round_to)


# -- the technique ----------------------------------------------------------------------------------


class PruneChannels(Technique):
    """Structured channel pruning: fewer filters and units, in a smaller dense model."""

    kind = "prune_channels"
    Stage = ChannelsStage
    placement = Placement(once=True, before=("prune", "cluster", "quantize"),
                          why="structure before weights: its rebuild would undo what they leave in them")

    def validate(self, stage: ChannelsStage, index: int, data: Dataset, train: TrainSpec) -> None:
        """Refuse the Taylor criterion on several outputs, and ``distill`` on several inputs or outputs:
        each compares one output (one loss, the teacher's)."""
        asked = [what for what, on in (("criterion taylor", stage.criterion == "taylor"),
                                       ("distill", stage.distill)) if on]
        several = len(data.outputs) > 1 or (stage.distill and len(data.input_names) > 1)
        if asked and several:
            raise InputError(f"stages[{index}] prune_channels: {' and '.join(asked)} need a model with one "
                             f"output{' and one input' if stage.distill else ''}, but data '{data.name}' has "
                             "several; use criterion l1, l2 or bn_scale without distill")

    def apply(self, model, stage: ChannelsStage, ctx: StageContext):
        """Rebuild ``model`` with the kept channels of every prunable group (gradual: step by step);
        with ``distill``, return it inside a Distiller whose teacher is ``model`` as it came.

        A layer name in ``stage.layers`` that the model lacks, or whose channels cannot be pruned, is
        refused in one line; so is a model with no group to prune.
        """
        where = f"stages[{ctx.stage_index}]"
        nodes, outputs = read_graph(model, where)
        grouping = find_groups(nodes, outputs)
        finals = final_channels(grouping, stage, where)
        if not grouping.prunable():
            raise InputError(f"{where} prune_channels: no channel group left to prune "
                             f"({listing(grouping.skipped) or 'no Conv2D or Dense layer'}); it needs Conv2D "
                             "or Dense layers that feed other Conv2D or Dense layers through layers it "
                             "knows (batch norm, element-wise activations, pooling, Add, Concatenate)")
        guide = _teacher_guide(model, ctx, where) if stage.distill else None
        ctx.notes.update(before=cost(nodes), skipped=grouping.skipped, fallback=[], held=grouping.held)
        current, originals = model, {label: grouping.channels(label) for label in finals}
        for step in range(1, stage.steps + 1):
            counts = {label: step_channels(originals[label], final, step, stage.steps, stage.round_to)
                      for label, final in finals.items()}
            current = prune_to(current, counts, stage.criterion, ctx, where)
            if step < stage.steps:
                _fine_tune(guide.wrap(current) if guide else current, stage, ctx, step)
        ctx.notes["channels"] = {label: [originals[label], finals[label]] for label in finals}
        if guide is None:
            return current
        # Frozen only now: every rebuild above copies its layers' configs, `trainable` included.
        model.trainable = False  # the stage's own model: a guide wrapping the Distiller trains no teacher
        return guide.wrap(current)

    def callbacks(self, stage: ChannelsStage, ctx: StageContext) -> list:
        """None: the channels are gone before the fine-tune starts."""
        return []

    def strip(self, model):
        """The pruned model itself (with ``distill``: the student, without the teacher)."""
        return model.student if isinstance(model, distiller_class()) else model

    def scope(self):
        """The Distiller class, to load a model saved mid-stage with ``distill``."""
        return DISTILL.scope()

    def outcome(self, stripped, stage: ChannelsStage, ctx: StageContext, history: dict) -> StageOutcome:
        """Channels before and after per group, and params and MACs before and after (Keras count)."""
        params_before, macs_before = ctx.notes["before"]
        params_after, macs_after = cost(read_graph(stripped, f"stages[{ctx.stage_index}]")[0])
        channels = ctx.notes["channels"]
        achieved = {
            "per_group_fraction": {label: round(1 - after / before, 4) for label, (before, after)
                                   in channels.items()},
            "channels": channels,
            "params_before": params_before, "params_after": params_after,
            "macs_before": macs_before, "macs_after": macs_after,
            "criterion": stage.criterion,
        }
        if ctx.notes["fallback"]:
            achieved["l1_fallback"] = sorted(set(ctx.notes["fallback"]))  # bn_scale groups without a BN
        if ctx.notes.get("held"):
            achieved["held"] = dict(ctx.notes["held"])  # groups kept above what was asked, and why
        counts, skipped = skipped_summary(ctx.notes["skipped"], "channel-pruned")
        pruned = sum(1 for before, after in channels.values() if after < before)
        summary = (f"{pruned} of {len(channels)} channel groups pruned: params {params_before:,} -> "
                   f"{params_after:,}, MACs {macs_before:,} -> {macs_after:,} (Keras count); {skipped}")
        return stage_outcome(stage, history, achieved, counts, summary)

    def checks(self, outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
        """Each export's params and MACs against the pruned share of the unpruned model's."""
        return size_checks(outcome, variants)


TECHNIQUE = PruneChannels()


# -- checks against the .tflite (no TensorFlow) ------------------------------------------------------


def size_checks(outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
    """Params and MACs of each inspected export, as a share of the unpruned model's (Keras count).

    The share may exceed the pruned model's own share by :data:`TOLERANCE`: the Keras count and the
    file's need not agree on what pruning leaves alone (a bias the converter adds when it folds a
    batch norm, an op the Keras count has no formula for).
    """
    checks = []
    for v in exported(variants, inspected=True):
        for metric in ("params", "macs"):
            before, after = outcome.achieved.get(f"{metric}_before"), outcome.achieved.get(f"{metric}_after")
            measured = v.inspect.params if metric == "params" else v.inspect.macs
            if not before or after is None or measured is None:
                continue
            expected, share = after / before + TOLERANCE, measured / before
            ok = share <= expected
            checks.append(Check(
                variant=v.name, check=f"channels_{metric}", expected=f"<= {expected:.3f}",
                measured=round(share, 4), status=CheckStatus.OK if ok else CheckStatus.FAIL,
                message=f"{v.name}: {metric} {measured:,} in the .tflite, {share:.3f} of the unpruned "
                        f"model's {before:,} ({'within' if ok else 'above'} {expected:.3f} = the pruned "
                        f"model's {after / before:.3f} + {TOLERANCE})",
            ))
    return checks


# -- the graph: channel groups (no TensorFlow) -------------------------------------------------------

PRODUCERS = frozenset({"Conv1D", "Conv2D", "Conv3D", "Dense"})
SLICED = frozenset({"BatchNormalization", "DepthwiseConv2D"})  # per-channel weights, channels kept
PER_CHANNEL = SLICED | {
    "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Identity", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", *(f"{kind}{d}D" for d in (1, 2, 3) for kind in (
        "MaxPooling", "AveragePooling", "GlobalAveragePooling", "GlobalMaxPooling", "ZeroPadding",
        "Cropping", "UpSampling")),
}
MERGES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
ELEMENTWISE = frozenset({"linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "tanh", "elu", "selu",
                         "swish", "silu", "gelu", "softplus", "softsign", "exponential", "mish",
                         "leaky_relu"})
OUTPUT = "output"
NOT_PER_CHANNEL = "not per channel"
SHARED = "shared layer"


@dataclass(frozen=True)
class Node:
    """One layer of the model as the grouping reads it: its class, inputs, output shape and config."""

    name: str
    op: str  # the class name
    inputs: tuple[str, ...] = ()
    shape: tuple[int | None, ...] | None = None  # output shape without the batch axis; None: several
    config: Mapping[str, Any] = field(default_factory=dict)
    why: str | None = None  # why the grouping must not look inside: user code, custom layer, shared
    params: int = 0  # weight elements, for layers the cost has no formula for


@dataclass(frozen=True)
class Block:
    """A run of the last axis: ``repeat`` copies of the segments' channels, interleaved as Flatten
    lays out a channels-last tensor (position ``s x width + offset + c``)."""

    repeat: int
    segments: tuple[tuple[int | None, int], ...]  # (group, or None: never pruned; channels)

    @property
    def width(self) -> int:
        return sum(channels for _, channels in self.segments)


Layout = tuple[Block, ...]


def _fixed(channels: int | None) -> Layout | None:
    return None if channels is None else (Block(1, ((None, channels),)),)


def _strided_1x1(config: Mapping[str, Any]) -> bool:
    """Whether a convolution's config has a 1x1 kernel and a stride above 1 (see STRIDED_1X1_INPUTS)."""
    kernel, strides = config.get("kernel_size", ()), config.get("strides", 1)
    kernel = kernel if isinstance(kernel, list | tuple) else [kernel]
    strides = strides if isinstance(strides, list | tuple) else [strides]
    return bool(kernel) and all(k == 1 for k in kernel) and any(s > 1 for s in strides)


def _last_axis(axis: Any, rank: int) -> bool:
    """Whether a layer's ``axis`` config names the last axis of a ``rank``-dimensional tensor."""
    axes = axis if isinstance(axis, list | tuple) else [axis]
    return len(axes) == 1 and axes[0] in (-1, rank - 1)


class Grouping:
    """The channel groups of a graph: built by :func:`find_groups`, read by the Keras side."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.width: dict[int, int] = {}
        self.why: dict[int, str] = {}  # group -> why it is left whole (roots only, once merged)
        self.coupled: dict[int, str] = {}  # group -> an activation that mixes its channels
        self.produced: dict[str, int] = {}  # producer name -> the group of its output channels
        self.inputs: dict[str, Layout] = {}  # layers whose weights are sliced along their input
        self.outputs: dict[str, Layout] = {}  # every layer's output layout
        self.ops: dict[str, str] = {}
        self.opaque: dict[str, str] = {}  # layers it does not look inside -> why
        self.skipped: dict[str, str] = {}  # name -> "Type(reason)", for the report
        self.strided_1x1: list[str] = []  # 1x1 convolutions with a stride above 1, in graph order
        self.held: dict[str, str] = {}  # label -> why it keeps more than asked (final_channels)

    def root(self, group: int) -> int:
        while self.parent[group] != group:
            group = self.parent[group]
        return group

    def new(self, channels: int) -> int:
        group = len(self.parent)
        self.parent[group], self.width[group] = group, channels
        return group

    def union(self, a: int, b: int) -> None:
        a, b = self.root(a), self.root(b)
        if a != b:
            self.parent[b] = a
            if b in self.why:
                self.why.setdefault(a, self.why.pop(b))

    def fix(self, layout: Layout | None, why: str) -> None:
        for block in layout or ():
            for group, _ in block.segments:
                if group is not None:
                    self.why.setdefault(self.root(group), why)

    def label(self, group: int) -> str:
        """The group's stable name: its producers joined by ``+``, in graph order."""
        group = self.root(group)
        return "+".join(name for name, g in self.produced.items() if self.root(g) == group)

    def group_of(self, label: str) -> int:
        return next(g for g in self.produced.values() if self.label(g) == label)

    def channels(self, label: str) -> int:
        return self.width[self.group_of(label)]

    def groups(self) -> dict[str, int]:
        """Label -> root of every group, in graph order."""
        return {self.label(g): self.root(g) for g in self.produced.values()}

    def prunable(self) -> list[str]:
        return [label for label, g in self.groups().items() if g not in self.why]

    def feeds_strided_1x1(self, group: int) -> list[str]:
        """The strided 1x1 convolutions whose input carries the group's channels."""
        root = self.root(group)
        return [name for name in self.strided_1x1
                if any(g is not None and self.root(g) == root for block in self.inputs[name]
                       for g, _ in block.segments)]

    def named(self, name: str) -> set[int]:
        """The groups a layer's name stands for: a producer's output, else what its output carries."""
        if name in self.produced:
            return {self.root(self.produced[name])}
        return {self.root(g) for block in self.outputs.get(name, ()) for g, _ in block.segments
                if g is not None}

    def positions(self, layout: Layout, keep: Mapping[int, Sequence[int]]) -> list[int] | None:
        """The positions along the last axis that the kept channels hold (None: all of them)."""
        if not any(self.root(g) in keep for block in layout for g, _ in block.segments if g is not None):
            return None
        kept, offset = [], 0
        for block in layout:
            for s in range(block.repeat):
                start = offset + s * block.width
                for group, channels in block.segments:
                    chosen = keep.get(self.root(group)) if group is not None else None
                    kept.extend(start + c for c in (range(channels) if chosen is None else chosen))
                    start += channels
            offset += block.repeat * block.width
        return kept

    def per_channel(self, layout: Layout, values: np.ndarray) -> dict[int, np.ndarray]:
        """Values along the last axis summed per channel of each group (over Flatten's repeats)."""
        result: dict[int, np.ndarray] = {}
        offset = 0
        for block in layout:
            rows = values[offset:offset + block.repeat * block.width].reshape(block.repeat, block.width)
            start = 0
            for group, channels in block.segments:
                if group is not None:
                    root = self.root(group)
                    result[root] = result.get(root, 0) + rows[:, start:start + channels].sum(axis=0)
                start += channels
            offset += block.repeat * block.width
        return result

    # -- reading the graph --

    def visit(self, node: Node, ins: list[Layout | None]) -> Layout | None:
        """The layout of ``node``'s output, recording what is pruned and sliced along the way."""
        self.ops[node.name] = node.op
        why = self._unreadable(node, ins)
        if why:
            self.opaque[node.name] = why
            return _fixed(node.shape[-1] if node.shape else None)
        config, rank = node.config, len(node.shape) + 1
        if node.op == "InputLayer":
            return _fixed(node.shape[-1])
        (first, *rest) = ins
        if node.op in PRODUCERS:
            self.inputs[node.name] = first
            if node.op != "Dense" and _strided_1x1(config):
                self.strided_1x1.append(node.name)
            group = self.produced[node.name] = self.new(int(node.shape[-1]))
            if config.get("activation", "linear") not in ELEMENTWISE:
                self.coupled[group] = f"{config.get('activation')} activation"
            return (Block(1, ((group, int(node.shape[-1])),)),)
        if node.op in PER_CHANNEL:
            if node.op in SLICED:
                self.inputs[node.name] = first
            return first
        if node.op == "Flatten":
            spatial = math.prod(node.shape) // first[0].width if len(first) == 1 else 0
            if len(first) == 1 and first[0].repeat == 1 and spatial >= 1:
                return (Block(spatial, first[0].segments),)
            return first
        if node.op == "Concatenate" and _last_axis(config.get("axis", -1), rank):
            if all(len(layout) == 1 and layout[0].repeat == 1 for layout in ins):
                return (Block(1, tuple(s for layout in ins for s in layout[0].segments)),)
            return tuple(block for layout in ins for block in layout)
        # an element-wise merge, or a concatenation along another axis: one channel layout for all
        for other in rest:
            for block_a, block_b in zip(first, other, strict=True):
                for (a, _), (b, _) in zip(block_a.segments, block_b.segments, strict=True):
                    if a is not None and b is not None:
                        self.union(a, b)
                    elif a is not None or b is not None:
                        self.why.setdefault(self.root(a if a is not None else b),
                                            f"{node.op} with channels not pruned")
        return first

    def _unreadable(self, node: Node, ins: list[Layout | None]) -> str | None:
        """Why ``node`` is not looked inside (its inputs and output then stay whole), or None."""
        if node.why:
            return node.why
        config, op = node.config, node.op
        if op == "InputLayer":
            return None if node.shape and node.shape[-1] is not None else "unknown channels"
        if not node.shape or node.shape[-1] is None or any(layout is None for layout in ins) or not ins:
            return "unknown channels"
        if config.get("data_format", "channels_last") != "channels_last":
            return "channels first"
        rank = len(node.shape) + 1
        if op in PRODUCERS:
            return None if config.get("groups", 1) == 1 else "grouped convolution"
        if op in PER_CHANNEL:
            if op == "Activation" and config.get("activation") not in ELEMENTWISE:
                return f"{config.get('activation')} activation"
            if op == "BatchNormalization" and not _last_axis(config.get("axis", -1), rank):
                return "not on the last axis"
            if op == "DepthwiseConv2D" and config.get("depth_multiplier", 1) != 1:
                return "depth multiplier"
            return None if len(ins) == 1 else NOT_PER_CHANNEL
        if op == "Flatten":
            return None
        if op == "Concatenate" and _last_axis(config.get("axis", -1), rank):
            return None
        if op in MERGES or op == "Concatenate":
            shapes = {tuple((b.repeat, tuple(c for _, c in b.segments)) for b in layout) for layout in ins}
            return None if len(shapes) == 1 else "inputs with different channel layouts"
        return NOT_PER_CHANNEL

    def finish(self, nodes: Sequence[Node], outputs: Sequence[str]) -> None:
        """Leave whole what reaches an output or an opaque layer; list what is left and why."""
        for name in outputs:
            self.fix(self.outputs.get(name), OUTPUT)
        stopped = set()  # opaque layers that left a group whole: part of the story
        for node in nodes:
            if node.name in self.opaque:
                before = dict(self.why)
                for name in node.inputs:
                    self.fix(self.outputs.get(name), f"feeds {node.op}")
                if self.why != before:
                    stopped.add(node.name)
        for group, why in self.coupled.items():
            self.why.setdefault(self.root(group), why)
        for node in nodes:  # in graph order
            why = self.why.get(self.root(self.produced[node.name])) if node.name in self.produced else None
            if why or node.name in stopped:
                self.skipped[node.name] = f"{node.op}({why or self.opaque[node.name]})"


def find_groups(nodes: Sequence[Node], outputs: Sequence[str]) -> Grouping:
    """Group the channels of a graph (``nodes`` in topological order, ``outputs`` their names)."""
    grouping = Grouping()
    for node in nodes:
        ins = [grouping.outputs.get(name) for name in node.inputs]
        grouping.outputs[node.name] = grouping.visit(node, ins)
    grouping.finish(nodes, outputs)
    return grouping


def final_channels(grouping: Grouping, stage: ChannelsStage, where: str) -> dict[str, int]:
    """The channels each prunable group keeps at the end: its fraction is the smallest of
    ``stage.fraction`` and the ``stage.layers`` overrides naming one of its layers, if any.

    A group feeding a strided 1x1 convolution keeps at least :data:`STRIDED_1X1_INPUTS` channels (all
    of them if it has fewer); the groups this holds above what was asked are recorded, with why, in
    ``grouping.held``.

    Raises:
        InputError: a name in ``stage.layers`` that the model lacks, or that names channels left whole.
    """
    overrides: dict[int, float] = {}
    names = list(grouping.ops)
    for name, fraction in stage.layers.items():
        if name not in grouping.ops:
            close = difflib.get_close_matches(name, names, n=1)
            more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
            hint = f"did you mean '{close[0]}'?" if close else f"it has {', '.join(names[:LISTED])}{more}"
            raise InputError(f"{where}.layers: the model has no layer '{name}' ({hint})")
        groups = grouping.named(name)
        left = [grouping.why[g] for g in groups if g in grouping.why]
        if fraction and (not groups or left):
            why = left[0] if left else grouping.opaque.get(name, "no channels of a prunable group")
            raise InputError(f"{where}.layers: '{name}' cannot be channel-pruned ({why}); "
                             "remove it or give it 0")
        for group in groups:
            overrides[group] = min(overrides.get(group, fraction), fraction)
    finals = {}
    for label, group in grouping.groups().items():
        if group in grouping.why:
            continue
        width, fraction = grouping.width[group], overrides.get(group, stage.fraction)
        kept = kept_channels(width, fraction, stage.min_channels, stage.round_to)
        convs = grouping.feeds_strided_1x1(group)
        if convs and kept < min(width, STRIDED_1X1_INPUTS):
            kept = kept_channels(width, fraction, max(stage.min_channels, STRIDED_1X1_INPUTS), stage.round_to)
            grouping.held[label] = (f"feeds the strided 1x1 convolution {', '.join(convs)}: at least "
                                    f"{STRIDED_1X1_INPUTS} channels, fewer crash TensorFlow's training")
        finals[label] = kept
    return finals


def cost(nodes: Sequence[Node]) -> tuple[int, int]:
    """(params, MACs) as a ``.tflite`` of the graph would count them (see :mod:`edgeopt.inspect`).

    Conv, depthwise and Dense layers count kernel and bias (the converter gives a bias to one whose
    batch norm it folds) and out x kernel x in MACs; a batch norm right after one is folded away,
    any other holds a scale and an offset per channel; other layers count their weights, no MACs.
    """
    shapes = {node.name: node.shape for node in nodes}
    users: dict[str, int] = {}
    for node in nodes:
        for name in node.inputs:
            users[name] = users.get(name, 0) + 1
    ops = {node.name: node.op for node in nodes}
    params = macs = 0
    for node in nodes:
        if node.why or not node.shape or None in node.shape:
            params += node.params
            continue
        source = shapes.get(node.inputs[0]) if node.inputs else None
        cin = int(source[-1]) if source and source[-1] is not None else 0
        kernel = math.prod(node.config.get("kernel_size", (1,)))
        out = math.prod(node.shape)
        if node.op in PRODUCERS:
            cin //= node.config.get("groups", 1)
            params += kernel * cin * node.shape[-1] + node.shape[-1]
            macs += out * kernel * cin
        elif node.op == "DepthwiseConv2D":
            params += kernel * node.shape[-1] + node.shape[-1]
            macs += out * kernel
        elif node.op == "BatchNormalization":
            folds = ops.get(node.inputs[0]) in PRODUCERS | {"DepthwiseConv2D"} and users[node.inputs[0]] == 1
            params += 0 if folds else 2 * node.shape[-1]
        else:
            params += node.params
    return params, macs


# -- the Keras side (TensorFlow inside) --------------------------------------------------------------


def read_graph(model, where: str) -> tuple[list[Node], list[str]]:
    """The model's layers as :class:`Node` s in topological order, and its output layers' names."""
    from edgeopt.kerasapi import keras

    if not wrappable(model):  # a loaded model is asked before any work; a model given here is not
        raise InputError(f"{where} prune_channels: channel pruning reads the graph of a Functional or "
                         f"Sequential model, not a subclassed one ({type(model).__name__}); rebuild it "
                         "as a Functional model")
    calls: dict[Any, list] = {}
    by_depth = nodes_by_depth(model)
    for depth in sorted(by_depth, reverse=True):  # inputs first
        for call in by_depth[depth]:
            calls.setdefault(call.layer, []).append(call)
    nodes = []
    for layer, layer_calls in calls.items():
        inputs = tuple(dict.fromkeys(inbound.name for call in layer_calls
                                     for inbound, _, _, _ in call.iterate_inbound()))
        shapes = layer_calls[0].output_shapes
        if isinstance(shapes, list) and len(shapes) == 1:  # an InputLayer's one output
            shapes = shapes[0]
        single = isinstance(shapes, tuple) and all(d is None or isinstance(d, int) for d in shapes)
        why = (SHARED if len(layer_calls) > 1 else USER_CODE if isinstance(layer, keras.layers.Lambda)
               else None if type(layer).__module__.startswith(KERAS_MODULES) else CUSTOM_LAYER)
        nodes.append(Node(layer.name, type(layer).__name__, inputs, tuple(shapes[1:]) if single else None,
                          layer.get_config() if why is None else {}, why, int(layer.count_params())))
    return nodes, [producing_layer(tensor).name for tensor in model.outputs]


def prune_to(model, counts: Mapping[str, int], criterion: str, ctx: StageContext, where: str):
    """``model`` rebuilt with ``counts[label]`` channels in each named group, the best by ``criterion``."""
    nodes, outputs = read_graph(model, where)
    grouping = find_groups(nodes, outputs)
    groups = grouping.groups()
    scores = importance(model, grouping, criterion, ctx)
    keep = {}
    for label, count in counts.items():
        group = groups[label]
        if count < grouping.width[group]:
            best = np.argsort(-scores[group], kind="stable")[:count]
            keep[group] = sorted(int(c) for c in best)
    pruned = rebuild(model, grouping, keep)
    if pruned.output_shape != model.output_shape:  # the grouping's promise: outputs are never pruned
        raise RuntimeError(f"channel pruning changed the output shape {model.output_shape} -> "
                           f"{pruned.output_shape}")
    return pruned


def importance(model, grouping: Grouping, criterion: str, ctx: StageContext) -> dict[int, np.ndarray]:
    """A score per channel of every group, higher kept first; each layer's scores are scaled to a mean
    of 1 before a group sums them over its layers (an Add ties layers of different scales)."""
    scores: dict[int, np.ndarray] = {}

    def add(group: int, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        scores[group] = scores.get(group, 0) + values / (values.mean() + 1e-12)

    if criterion == "taylor":
        for layout, values in taylor_sums(model, grouping, ctx):
            for group, per_channel in grouping.per_channel(layout, values).items():
                add(group, np.abs(per_channel))
    if criterion == "bn_scale":
        for name, layout in grouping.inputs.items():
            layer = model.get_layer(name)
            gamma = getattr(layer, "gamma", None) if grouping.ops[name] == "BatchNormalization" else None
            if gamma is not None:
                for group, per_channel in grouping.per_channel(layout, np.abs(gamma.numpy())).items():
                    add(group, per_channel)
    scored = set(scores)
    for name, group in grouping.produced.items():
        root = grouping.root(group)
        if root in grouping.why or root in scored:
            continue
        if criterion == "bn_scale":
            ctx.notes.setdefault("fallback", []).append(grouping.label(root))
        kernel = model.get_layer(name).kernel.numpy()
        axes = tuple(range(kernel.ndim - 1))
        add(root, np.sqrt(np.sum(kernel**2, axis=axes)) if criterion == "l2"
            else np.sum(np.abs(kernel), axis=axes))
    return scores


def taylor_sums(model, grouping: Grouping, ctx: StageContext) -> list[tuple[Layout, np.ndarray]]:
    """Per layer output carrying prunable channels: its layout, and per position on the last axis the
    batch sums of activation x gradient of the loss, in absolute value, summed over the batches."""
    from edgeopt.kerasapi import keras, tf
    from edgeopt.train import head_activation, keras_inputs, loss_and_metrics, output_units, training_task

    names = [name for name, layout in grouping.outputs.items()
             if layout and grouping.ops[name] != "InputLayer" and name not in grouping.opaque
             and any(g is not None and grouping.root(g) not in grouping.why
                     for block in layout for g, _ in block.segments)]
    if not names:
        return []
    probe = keras.Model(model.inputs, [model.outputs[0], *(model.get_layer(n).output for n in names)])
    loss_fn, _ = loss_and_metrics(training_task(ctx.data.task, output_units(model)), head_activation(model))
    rng = np.random.default_rng(ctx.seed)
    chosen = np.sort(rng.choice(ctx.data.n_train, size=min(TAYLOR_SAMPLES, ctx.data.n_train), replace=False))
    sums = [0.0] * len(names)
    for start in range(0, len(chosen), TAYLOR_BATCH):
        batch = chosen[start:start + TAYLOR_BATCH]
        x, y = keras_inputs(take(ctx.data.x_train, batch)), take(ctx.data.y_train, batch)
        with tf.GradientTape() as tape:
            out, *activations = probe(x, training=False)
            loss = loss_fn(y, out)
        grads = tape.gradient(loss, activations)
        for i, (a, g) in enumerate(zip(activations, grads, strict=True)):
            if g is not None:
                product = tf.reshape(a * g, (-1, a.shape[-1]))
                sums[i] = sums[i] + np.abs(tf.reduce_sum(product, axis=0).numpy())
    return [(grouping.outputs[n], np.asarray(s)) for n, s in zip(names, sums, strict=True)
            if not isinstance(s, float)]


def rebuild(model, grouping: Grouping, keep: Mapping[int, Sequence[int]]):
    """A new model from ``model``'s configuration with the kept channels, and their weights."""
    from edgeopt.kerasapi import keras

    def clone(layer):
        if layer.name in grouping.opaque and not layer.weights:
            return layer  # user code holds no weights to copy: the same object, never deserialised
        config = layer.get_config()
        group = grouping.root(grouping.produced[layer.name]) if layer.name in grouping.produced else None
        if group in keep:
            config["units" if grouping.ops[layer.name] == "Dense" else "filters"] = len(keep[group])
        return type(layer).from_config(config)

    pruned = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        new = pruned.get_layer(layer.name)
        if new is not layer and layer.weights:
            values = sliced_weights(layer, grouping, keep)
            if layer.name in grouping.inputs or layer.name in grouping.produced:
                check_rebuilt(layer, new, values)
            new.set_weights(values)
    return pruned


def check_rebuilt(layer, new, values: Sequence[np.ndarray]) -> None:
    """Refuse a rebuilt layer whose sliced weights, its variables and the shapes a fresh layer of its
    configuration builds disagree, or that narrows a strided 1x1 convolution's input below
    :data:`STRIDED_1X1_INPUTS`: TensorFlow would crash in training (a kernel that does not check
    shapes writes out of bounds) instead of saying what is wrong.

    Raises:
        RuntimeError: a bug in the grouping or the slicing, named with the layer and the shapes.
    """
    fresh = type(new).from_config(new.get_config())
    fresh.build(new.input_shape)
    expected = [tuple(w.shape) for w in fresh.weights]
    variables = [tuple(w.shape) for w in new.weights]
    given = [tuple(np.shape(v)) for v in values]
    where = f"channel pruning rebuilt layer '{new.name}' ({type(new).__name__})"
    if not given == variables == expected:
        raise RuntimeError(f"{where} with weights of shapes {given} and variables {variables}, but its "
                           f"configuration builds {expected}; this is a bug in edgeopt's prune_channels")
    before, after = int(layer.input_shape[-1]), int(new.input_shape[-1])
    convolution = type(new).__name__ in PRODUCERS - {"Dense"}
    if convolution and _strided_1x1(new.get_config()) and after < min(before, STRIDED_1X1_INPUTS):
        raise RuntimeError(f"{where} as a strided 1x1 convolution with {after} input channels (from "
                           f"{before}); fewer than {STRIDED_1X1_INPUTS} crash TensorFlow's training; this "
                           "is a bug in edgeopt's prune_channels")


def sliced_weights(layer, grouping: Grouping, keep: Mapping[int, Sequence[int]]) -> list[np.ndarray]:
    """``layer``'s weights restricted to the kept input positions and output channels."""
    op = grouping.ops.get(layer.name)
    rows = grouping.positions(grouping.inputs[layer.name], keep) if layer.name in grouping.inputs else None
    group = grouping.produced.get(layer.name)
    cols = keep.get(grouping.root(group)) if group is not None else None
    weights = []
    for variable, value in zip(layer.weights, layer.get_weights(), strict=True):
        is_kernel = "kernel" in variable.name
        if op in PRODUCERS:
            if is_kernel and rows is not None:
                value = np.take(value, rows, axis=-2)
            if cols is not None:
                value = np.take(value, cols, axis=-1)
        elif rows is not None:  # batch norm: every weight per channel; depthwise kernel [h, w, in, 1]
            value = np.take(value, rows, axis=2 if is_kernel else 0)
        weights.append(value)
    return weights


def _teacher_guide(model, ctx: StageContext, where: str) -> TeacherGuide:
    """The unpruned ``model`` as the teacher of every fine-tune, with the distill stage's defaults."""
    if ctx.data.task == CLASSIFICATION and int(model.output_shape[-1]) == 1:
        raise InputError(f"{where} prune_channels: distill compares softmax distributions over classes, "
                         "but the model has one output unit (a binary head); set distill: false")
    defaults = DistillStage.model_fields
    return TeacherGuide(model, ctx.data.task, defaults["alpha"].default, defaults["temperature"].default)


def _fine_tune(model, stage: ChannelsStage, ctx: StageContext, step: int) -> None:
    """The short fine-tune between two pruning steps, with the pipeline's defaults for a stage."""
    from edgeopt.train import fit

    fit(model, ctx.data, ctx.train, epochs=stage.round_epochs, batch_size=stage.batch_size,
        learning_rate=stage.learning_rate or ctx.train.learning_rate / 10, seed=ctx.seed,
        early_stopping=False, what=f"stage {ctx.stage_index + 1} (prune_channels, step {step})")

