"""Compression techniques, one module each, all with the same shape (TFMOT's vocabulary):

- ``apply(model, stage, ctx)``: wrap the model for this technique.
- ``callbacks(stage, ctx)``: training-time hooks for the fine-tune.
- ``strip(model)``: remove the wrappers before export (identity where the converter needs them).
- ``scope()``: a context manager with the custom objects to load a wrapped model.
- ``report(stripped, stage, ctx, applied)``: what was achieved versus what was asked, and which
  layers were skipped and why, as one summary line.

``TECHNIQUES`` maps a recipe stage ``kind`` to its module. The pipeline sequences them; ordering
rules live in :func:`edgeopt.recipe.check_stage_order`.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeopt.data import Dataset
from edgeopt.errors import InputError
from edgeopt.recipe import TrainSpec


@dataclass
class StageContext:
    """What a technique may know about the run it is part of."""

    data: Dataset
    train: TrainSpec
    seed: int
    stage_index: int
    earlier: tuple[str, ...] = ()  # kinds of the stages already applied, in order
    trust_model: bool = False  # may model files named by the stage (a teacher) run their code
    notes: dict = field(default_factory=dict)  # per-stage facts a technique records for report()


def skipped_summary(skipped: dict[str, str], verb: str) -> tuple[dict[str, int], str]:
    """Counts by layer type (with the reason) and the one summary line for skipped layers.

    ``skipped`` maps layer name -> "Type" or "Type(reason)".
    """
    counts = Counter(skipped.values())
    if not counts:
        return {}, f"all layers with weights {verb}"
    parts = ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
    total = sum(counts.values())
    return dict(counts), f"{total} layer{'s' if total != 1 else ''} not {verb}: {parts}"


def selected(layer, patterns: list[str] | None) -> bool:
    """Whether ``layer``'s name or class matches one of the glob ``patterns`` (none: every layer)."""
    if not patterns:
        return True
    return any(fnmatch.fnmatch(layer.name, p) or fnmatch.fnmatch(type(layer).__name__, p) for p in patterns)


def wrap_selected(model, ctx: StageContext, kind: str, verb: str, patterns: list[str] | None,
                  skip_reason: Callable, wrap_one: Callable):
    """Clone ``model`` with ``wrap_one`` (a TFMOT wrapper) around each selected layer with weights.

    ``skip_reason(layer)`` returns why a selected layer is left as it is, or None. Returns the
    wrapped model and the skipped layers (name -> "Type(reason)"). A model TFMOT cannot clone, or
    layers it refuses to wrap, are one-line input errors naming the stage, the layers and TFMOT's
    reason. As TFMOT itself does, wrappers hold the original layer objects, so the trained weights
    carry over; the caller must treat ``model`` as consumed.
    """
    from edgeopt.kerasapi import keras

    skipped: dict[str, str] = {}
    unsupported: list[str] = []

    def wrap(layer):
        if not layer.weights:
            return layer
        reason = "not selected" if not selected(layer, patterns) else skip_reason(layer)
        if reason:
            skipped[layer.name] = f"{type(layer).__name__}({reason})"
            return layer
        try:
            return wrap_one(layer)
        except ValueError as exc:
            unsupported.append(f"{layer.name} ({type(layer).__name__}): {' '.join(str(exc).split())}")
            return layer

    where = f"stages[{ctx.stage_index}]"
    try:
        wrapped = keras.models.clone_model(model, clone_function=wrap)
    except ValueError as exc:
        raise InputError(
            f"{where} {kind}: TFMOT cannot wrap this model ({exc}); use a Functional or Sequential model"
        ) from None
    if unsupported:
        raise InputError(
            f"{where} {kind}: TFMOT cannot {verb} layers {'; '.join(unsupported)}; "
            f"exclude them with {where}.layers patterns"
        )
    return wrapped, skipped


def per_layer_kernel(model, statistic: Callable[[np.ndarray], float | int]) -> dict[str, float | int]:
    """``statistic`` of each layer's kernel, by layer name (Keras side; the .tflite is checked too)."""
    result = {}
    for layer in model.layers:
        kernels = [w for w in layer.weights if "kernel" in w.name]
        if kernels:
            result[layer.name] = statistic(np.asarray(kernels[0].numpy()))
    return result


def get_technique(kind: str):
    from edgeopt.techniques import cluster, distill, prune, quantize

    return {"prune": prune, "cluster": cluster, "quantize": quantize, "distill": distill}[kind]
