"""Magnitude pruning (TFMOT ``prune_low_magnitude``) as a recipe stage.

Wraps every layer whose weights TFMOT can prune (optionally only layers whose name or class matches
``stage.layers`` glob patterns), fine-tunes with a ``polynomial`` or ``constant`` sparsity schedule,
and strips the wrappers so the exported model holds exact zeros. The schedule's end step is aligned
to the mask-update frequency so the final update lands on the target sparsity.
"""

from __future__ import annotations

import fnmatch

import numpy as np

from edgeopt.errors import InputError
from edgeopt.kerasapi import keras, tfmot
from edgeopt.recipe import PruneStage
from edgeopt.techniques import StageContext, skipped_summary
from edgeopt.train import steps_per_epoch

_sparsity = tfmot.sparsity.keras


def schedule(stage: PruneStage, ctx: StageContext):
    """The TFMOT pruning schedule for this stage, in optimizer steps."""
    spe = steps_per_epoch(ctx.data, ctx.train, stage.batch_size)
    total = max(1, stage.epochs * spe)
    begin = int(round(stage.begin_epoch * spe))
    if stage.schedule == "constant":
        return _sparsity.ConstantSparsity(stage.target_sparsity, begin_step=begin, frequency=stage.frequency)
    end_epoch = stage.end_epoch if stage.end_epoch is not None else 0.8 * stage.epochs
    end = min(total, int(round(end_epoch * spe)))
    # Land the last mask update exactly on end_step: updates happen every `frequency` steps from begin.
    span = max(stage.frequency, ((end - begin) // stage.frequency) * stage.frequency)
    return _sparsity.PolynomialDecay(
        initial_sparsity=stage.initial_sparsity,
        final_sparsity=stage.target_sparsity,
        begin_step=begin,
        end_step=begin + span,
        frequency=stage.frequency,
    )


def _selected(layer, patterns: list[str] | None) -> bool:
    if not patterns:
        return True
    return any(fnmatch.fnmatch(layer.name, p) or fnmatch.fnmatch(type(layer).__name__, p) for p in patterns)


def apply(model, stage: PruneStage, ctx: StageContext):
    """Wrap the selected, prunable layers of ``model`` for magnitude pruning."""
    pruning_schedule = schedule(stage, ctx)
    skipped: dict[str, str] = {}
    unsupported: list[str] = []

    # As TFMOT itself does, wrappers hold the original layer objects, so the trained weights carry
    # over; the caller must treat `model` as consumed.
    def wrap(layer):
        if not layer.weights:
            return layer
        kind = type(layer).__name__
        if not _selected(layer, stage.layers):
            skipped[layer.name] = f"{kind}(not selected)"
            return layer
        try:
            return _sparsity.prune_low_magnitude(layer, pruning_schedule=pruning_schedule)
        except ValueError:
            unsupported.append(f"{layer.name} ({kind})")
            return layer

    try:
        wrapped = keras.models.clone_model(model, clone_function=wrap)
    except ValueError as exc:
        raise InputError(
            f"stages[{ctx.stage_index}] prune: TFMOT cannot wrap this model ({exc}); "
            "use a Functional or Sequential model"
        ) from None
    if unsupported:
        raise InputError(
            f"stages[{ctx.stage_index}] prune: TFMOT cannot prune layers {', '.join(unsupported)}; "
            f"exclude them with stages[{ctx.stage_index}].layers patterns"
        )
    for layer in wrapped.layers:
        if (
            hasattr(layer, "pruning_vars") and not layer.pruning_vars
        ):  # a PruneLowMagnitude with nothing to prune
            skipped[layer.name] = type(layer.layer).__name__
    ctx.notes["skipped"] = skipped
    return wrapped


def callbacks(stage: PruneStage, ctx: StageContext) -> list:
    return [_sparsity.UpdatePruningStep()]


def strip(model):
    return _sparsity.strip_pruning(model)


def scope():
    return _sparsity.prune_scope()


def kernel_sparsity(model) -> dict[str, float]:
    """Fraction of exact zeros in each layer's kernel (Keras side; the .tflite is checked too)."""
    result = {}
    for layer in model.layers:
        kernels = [w for w in layer.weights if "kernel" in w.name]
        if kernels:
            values = keras.backend.get_value(kernels[0])
            result[layer.name] = float(np.mean(values == 0))
    return result


def report(stripped, stage: PruneStage, ctx: StageContext) -> dict:
    counts, summary = skipped_summary(ctx.notes.get("skipped", {}), "pruned")
    per_layer = {k: v for k, v in kernel_sparsity(stripped).items() if k not in ctx.notes.get("skipped", {})}
    return {
        "achieved": {
            "per_layer_sparsity": per_layer,
            "min_layer_sparsity": min(per_layer.values()) if per_layer else None,
        },
        "skipped_layers": counts,
        "summary": summary,
    }
