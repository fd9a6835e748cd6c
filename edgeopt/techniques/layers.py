"""What the techniques share over a Keras model's layers: selecting, wrapping, measuring, summarising.

A layer TFMOT cannot wrap (a ``Lambda``, a layer class defined outside Keras, a built-in layer its
registries lack) is left out of the stage and listed with its reason, never a refusal of the stage;
only a stage left with no layer at all to work on is refused (:func:`nothing_to_wrap`), in one line
that names the layers and suggests what works. TensorFlow is imported only inside the functions that
need Keras classes; the rest works on layer objects and NumPy arrays it is given.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable

import numpy as np

from edgeopt.errors import InputError
from edgeopt.techniques.base import StageContext

# Why a layer is left out of a stage, as the report's skipped-layer line shows it: "Lambda(user code)".
USER_CODE = "user code"  # a Lambda layer: what its function computes is hidden from TFMOT
CUSTOM_LAYER = "custom layer"  # a class defined outside Keras, which TFMOT's registries do not list
NOT_SELECTED = "not selected"
KERAS_MODULES = ("tf_keras.", "keras.")
LISTED = 5  # layers named in a refusal before "and N more"


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


def user_code(layer) -> str | None:
    """Why TFMOT cannot see into ``layer`` (:data:`USER_CODE`, :data:`CUSTOM_LAYER`), or None.

    A ``Lambda`` runs an arbitrary function, and a layer class defined outside Keras is unknown to
    TFMOT's prune, cluster and 8-bit QAT registries; only a custom class that implements TFMOT's
    ``PrunableLayer`` or ``ClusterableLayer`` interface is wrapped all the same.
    """
    from edgeopt.kerasapi import keras

    if isinstance(layer, keras.layers.Lambda):
        return USER_CODE
    if not type(layer).__module__.startswith(KERAS_MODULES):
        return CUSTOM_LAYER
    return None


def listing(layers: dict[str, str]) -> str:
    """``name: Type(reason)`` of the first few layers of ``layers``, then how many more."""
    shown = ", ".join(f"{name}: {what}" for name, what in list(layers.items())[:LISTED])
    return shown + (f" and {len(layers) - LISTED} more" if len(layers) > LISTED else "")


def nothing_to_wrap(ctx: StageContext, kind: str, verb: str, skipped: dict[str, str]) -> InputError:
    """The one-line refusal of a stage left with no layer to ``verb``: which layers, why, what works."""
    where = f"stages[{ctx.stage_index}]"
    layers = f"({listing(skipped)})" if skipped else "(the model has no layer with weights)"
    return InputError(
        f"{where} {kind}: no layer left to {verb} {layers}; select layers TFMOT can {verb} with "
        f"{where}.layers patterns, or compress with quantize mode: ptq alone, which wraps no layer"
    )


def selected(layer, patterns: list[str] | None) -> bool:
    """Whether ``layer``'s name or class matches one of the glob ``patterns`` (none: every layer)."""
    if not patterns:
        return True
    return any(fnmatch.fnmatch(layer.name, p) or fnmatch.fnmatch(type(layer).__name__, p) for p in patterns)


def wrap_selected(model, ctx: StageContext, kind: str, verb: str, patterns: list[str] | None,
                  skip_reason: Callable, wrap_one: Callable):
    """Clone ``model`` with ``wrap_one`` (a TFMOT wrapper) around each selected layer with weights.

    ``skip_reason(layer)`` returns why a selected layer is left as it is, or None. A layer TFMOT
    refuses to wrap (``wrap_one`` raises ValueError) is left as it is too, and so is user code
    (:func:`user_code`) without weights, which TFMOT cannot see into. Returns the wrapped model and
    the layers left out (name -> "Type(reason)"); the caller decides whether anything was wrapped
    (:func:`nothing_to_wrap`). A model TFMOT cannot clone is a one-line input error naming the stage.
    As TFMOT itself does, wrappers hold the original layer objects, so the trained weights carry
    over; the caller must treat ``model`` as consumed.
    """
    from edgeopt.kerasapi import keras

    skipped: dict[str, str] = {}

    def wrap(layer):
        if not layer.weights:
            reason = user_code(layer)
            if reason:
                skipped[layer.name] = f"{type(layer).__name__}({reason})"
            return layer
        reason = NOT_SELECTED if not selected(layer, patterns) else skip_reason(layer)
        if not reason:
            try:
                return wrap_one(layer)
            except ValueError:  # TFMOT's registry lacks the layer: its message says no more than that
                reason = user_code(layer) or f"TFMOT cannot {verb} it"
        skipped[layer.name] = f"{type(layer).__name__}({reason})"
        return layer

    try:
        wrapped = keras.models.clone_model(model, clone_function=wrap)
    except ValueError as exc:
        raise InputError(
            f"stages[{ctx.stage_index}] {kind}: TFMOT cannot wrap this model ({exc}); "
            "use a Functional or Sequential model"
        ) from None
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
