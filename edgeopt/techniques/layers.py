"""What the techniques share over a Keras model's layers: selecting, wrapping, measuring, summarising.

TensorFlow is imported only inside :func:`wrap_selected`; the rest works on layer objects and
NumPy arrays it is given.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable

import numpy as np

from edgeopt.errors import InputError
from edgeopt.techniques.base import StageContext


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


def kernel_of(layer):
    """The layer's kernel variable (the first weight named ``kernel``), or None."""
    return next((w for w in layer.weights if "kernel" in w.name), None)


def per_layer_kernel(model, statistic: Callable[[np.ndarray], float | int]) -> dict[str, float | int]:
    """``statistic`` of each layer's kernel, by layer name (Keras side; the .tflite is checked too)."""
    result = {}
    for layer in model.layers:
        kernel = kernel_of(layer)
        if kernel is not None:
            result[layer.name] = statistic(np.asarray(kernel.numpy()))
    return result
