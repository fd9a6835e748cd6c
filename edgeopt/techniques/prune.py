"""Magnitude pruning (TFMOT ``prune_low_magnitude``) as a recipe stage.

Wraps every layer whose weights TFMOT can prune (optionally only layers whose name or class matches
``stage.layers`` glob patterns; only Conv2D/Dense for structured ``M:N`` sparsity; only 1x1
convolutions for the ``xnnpack_sparse`` policy), fine-tunes with a ``polynomial`` or ``constant``
sparsity schedule, and strips the wrappers so the exported model holds exact zeros. The schedule's
end step is aligned to the mask-update frequency so the final update lands on the target sparsity.
"""

from __future__ import annotations

import numpy as np

from edgeopt.kerasapi import keras, tfmot
from edgeopt.recipe import PruneStage
from edgeopt.techniques import StageContext, per_layer_kernel, skipped_summary, wrap_selected
from edgeopt.techniques.prune_steps import schedule_steps

_sparsity = tfmot.sparsity.keras


def schedule(stage: PruneStage, ctx: StageContext):
    """The TFMOT pruning schedule for this stage, in optimizer steps."""
    begin, last, _ = schedule_steps(stage, ctx.data, ctx.train)
    if stage.schedule == "constant":
        return _sparsity.ConstantSparsity(stage.target_sparsity, begin_step=begin, frequency=stage.frequency)
    return _sparsity.PolynomialDecay(
        initial_sparsity=stage.initial_sparsity,
        final_sparsity=stage.target_sparsity,
        begin_step=begin,
        end_step=last,
        frequency=stage.frequency,
    )


def is_1x1_conv(layer) -> bool:
    """A pointwise convolution: what XNNPACK's sparse inference accelerates."""
    return (isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose)
            and tuple(layer.kernel_size) == (1, 1) and getattr(layer, "groups", 1) == 1)


def supports_m_by_n(layer) -> bool:
    """TFMOT's M-by-N masks work on rank-2 (Dense) and rank-4 (Conv2D) kernels."""
    if isinstance(layer, keras.layers.Dense):
        return True
    return isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose)


def apply(model, stage: PruneStage, ctx: StageContext):
    """Wrap the selected, prunable layers of ``model`` for magnitude pruning.

    With ``structure: M:N`` only Conv2D and Dense layers are pruned, each group of N consecutive
    input-channel weights keeping at most M non-zeros; with ``policy: xnnpack_sparse`` only 1x1
    convolutions are pruned. Other layers with weights are listed as skipped, with the reason.
    """
    pruning_schedule = schedule(stage, ctx)
    # TFMOT counts zeros: (zeros, block); edgeopt's M:N counts non-zeros, as 2:4 hardware does.
    m_by_n = (stage.m_by_n[1] - stage.m_by_n[0], stage.m_by_n[1]) if stage.m_by_n else None
    def skip_reason(layer) -> str | None:
        if stage.policy == "xnnpack_sparse" and not is_1x1_conv(layer):
            return "not a 1x1 convolution"
        if m_by_n is not None and not supports_m_by_n(layer):
            return f"{stage.structure} needs Conv2D or Dense"
        return None

    def wrap_one(layer):
        return _sparsity.prune_low_magnitude(layer, pruning_schedule=pruning_schedule, sparsity_m_by_n=m_by_n)

    wrapped, skipped = wrap_selected(model, ctx, "prune", "prune", stage.layers, skip_reason, wrap_one)
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
    """Fraction of exact zeros in each layer's kernel."""
    return per_layer_kernel(model, lambda kernel: float(np.mean(kernel == 0)))


def kernel_groups(model, n: int) -> dict[str, int]:
    """Groups of ``n`` consecutive input-channel weights per layer kernel, in TFLite's layout.

    TFLite stores Conv2D kernels as [out, h, w, in], Dense as [out, in] and DepthwiseConv2D as
    [1, h, w, channels]: the groups run along the last axis, as in :func:`edgeopt.inspect.pattern_m_by_n`.
    """
    result = {}
    for layer in model.layers:
        kernels = [w for w in layer.weights if "kernel" in w.name]
        if not kernels:
            continue
        shape = tuple(int(d) for d in kernels[0].shape)
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # [h, w, in, multiplier]
            rows, last = shape[0] * shape[1], shape[2] * shape[3]
        elif len(shape) >= 3:  # Conv [h, w, in, out] (and Conv1D/3D alike): `in` is the TFLite last axis
            rows, last = int(np.prod(shape[:-2])) * shape[-1], shape[-2]
        else:  # Dense [in, out]
            rows, last = shape[-1], shape[0]
        result[layer.name] = rows * -(-last // n)
    return result


def report(stripped, stage: PruneStage, ctx: StageContext) -> dict:
    counts, summary = skipped_summary(ctx.notes.get("skipped", {}), "pruned")
    per_layer = {k: v for k, v in kernel_sparsity(stripped).items() if k not in ctx.notes.get("skipped", {})}
    structure = {}
    if stage.m_by_n is not None:  # what share of all kernel groups the M:N masks cover
        groups = kernel_groups(stripped, stage.m_by_n[1])
        covered = sum(v for k, v in groups.items() if k in per_layer)
        structure = {"m_by_n_groups_share": covered / sum(groups.values()) if groups else 0.0}
    return {
        "achieved": {
            "per_layer_sparsity": per_layer,
            "min_layer_sparsity": min(per_layer.values()) if per_layer else None,
            **structure,
        },
        "skipped_layers": counts,
        "summary": summary,
    }
