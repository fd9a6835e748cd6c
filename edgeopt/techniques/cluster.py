"""Weight clustering (TFMOT ``cluster_weights``) as a recipe stage.

Wraps every layer whose weights TFMOT can cluster (optionally only layers whose name or class matches
``stage.layers`` glob patterns) so each kernel shares ``stage.clusters`` centroid values, fine-tunes
the centroids, and strips the wrappers so the exported kernels hold at most that many distinct
values. After a prune stage it is sparsity-preserving by default: zeros stay zeros (TFMOT's
``preserve_sparsity``), so the clusters do not fill the pruned weights back in.
"""

from __future__ import annotations

import numpy as np

from edgeopt.kerasapi import keras, tfmot
from edgeopt.recipe import ClusterStage
from edgeopt.techniques import StageContext, per_layer_kernel, skipped_summary, wrap_selected

_clustering = tfmot.clustering.keras
_CENTROID_INIT = {
    "kmeans_plus_plus": _clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
    "linear": _clustering.CentroidInitialization.LINEAR,
    "density_based": _clustering.CentroidInitialization.DENSITY_BASED,
    "random": _clustering.CentroidInitialization.RANDOM,
}


def preserves_sparsity(stage: ClusterStage, ctx: StageContext) -> bool:
    """Whether zeros are kept: as asked, else exactly when a prune stage came earlier."""
    return stage.preserve_sparsity if stage.preserve_sparsity is not None else "prune" in ctx.earlier


def too_few_weights(kernel: np.ndarray, clusters: int, preserve: bool) -> bool:
    """Whether TFMOT's centroid initialisation would ask for more centroids than there are weights.

    Preserving sparsity, TFMOT keeps a zero centroid and splits the other ``clusters - 1`` between
    the negative and the positive non-zero weights in proportion to their counts (rounded half to
    even, as ``tf.math.round``); k-means++ then fails on a side with fewer weights than centroids,
    which a heavily pruned small layer easily has.
    """
    if not preserve:
        return kernel.size <= clusters
    negative, positive = int(np.sum(kernel < 0)), int(np.sum(kernel > 0))
    if negative + positive == 0:
        return True
    non_zero = clusters - 1
    for_negative = int(np.round(non_zero * negative / (negative + positive)))
    return negative < for_negative or positive < non_zero - for_negative or negative + positive <= non_zero


def apply(model, stage: ClusterStage, ctx: StageContext):
    """Wrap the selected, clusterable layers of ``model`` for weight clustering."""
    preserve = preserves_sparsity(stage, ctx)
    def skip_reason(layer) -> str | None:
        kernel = next((w for w in layer.weights if "kernel" in w.name), None)
        if kernel is not None and too_few_weights(kernel.numpy(), stage.clusters, preserve):
            return f"fewer {'non-zero ' if preserve else ''}weights than clusters"
        return None

    def wrap_one(layer):
        return _clustering.cluster_weights(
            layer,
            number_of_clusters=stage.clusters,
            cluster_centroids_init=_CENTROID_INIT[stage.centroid_init],
            preserve_sparsity=preserve,
        )

    wrapped, skipped = wrap_selected(model, ctx, "cluster", "cluster", stage.layers, skip_reason, wrap_one)
    clustered = []
    for layer in wrapped.layers:
        if isinstance(layer, _clustering_wrapper()):
            if layer.cluster_centroids:
                clustered.append(layer.layer.name)
            else:  # wrapped, but TFMOT clusters none of its weights (DepthwiseConv2D, BatchNormalization)
                skipped[layer.name] = type(layer.layer).__name__
    ctx.notes["skipped"] = skipped
    ctx.notes["clustered"] = clustered
    ctx.notes["preserve_sparsity"] = preserve
    # A layer left out of clustering is fine-tuned as a plain layer: without a mask its pruned zeros
    # fill back in (a pruned 10-class head went from 80% to 11% zeros in one epoch).
    ctx.notes["zero_masks"] = _zero_masks(wrapped, set(skipped)) if preserve else {}
    return wrapped


def _zero_masks(model, names: set[str]) -> dict[str, tuple]:
    """(kernel variable, 1.0 where non-zero) of each named layer that holds zeros."""
    masks = {}
    for layer in model.layers:
        kernel = next((w for w in layer.weights if "kernel" in w.name), None)
        if layer.name in names and kernel is not None and np.any(kernel.numpy() == 0):
            masks[layer.name] = (kernel, (kernel.numpy() != 0).astype(kernel.dtype.as_numpy_dtype))
    return masks


class KeepZeros(keras.callbacks.Callback):
    """After every training step, multiply the given kernels by their fixed zero masks.

    Holds the variables themselves, so it works whatever model object ``fit`` trains (a
    distillation wrapper around the stage's model, say).
    """

    def __init__(self, masks: dict[str, tuple]):
        super().__init__()
        self.masks = list(masks.values())

    def on_train_batch_end(self, batch, logs=None):
        for kernel, mask in self.masks:
            kernel.assign(kernel * mask)


def _clustering_wrapper():
    from tensorflow_model_optimization.python.core.clustering.keras.cluster_wrapper import ClusterWeights

    return ClusterWeights


def callbacks(stage: ClusterStage, ctx: StageContext) -> list:
    masks = ctx.notes.get("zero_masks")
    return [KeepZeros(masks)] if masks else []


def strip(model):
    return _clustering.strip_clustering(model)


def scope():
    return _clustering.cluster_scope()


def kernel_unique_values(model) -> dict[str, int]:
    """Distinct values in each layer's kernel."""
    return per_layer_kernel(model, lambda kernel: int(np.unique(kernel).size))


def report(stripped, stage: ClusterStage, ctx: StageContext) -> dict:
    counts, summary = skipped_summary(ctx.notes.get("skipped", {}), "clustered")
    clustered = set(ctx.notes.get("clustered", []))
    per_layer = {k: v for k, v in kernel_unique_values(stripped).items() if k in clustered}
    return {
        "achieved": {
            "per_layer_unique_values": per_layer,
            "max_layer_unique_values": max(per_layer.values()) if per_layer else None,
            "preserve_sparsity": ctx.notes.get("preserve_sparsity", False),
            "zeros_kept_in_unclustered_layers": sorted(ctx.notes.get("zero_masks", {})),
            "clustered_layers": sorted(clustered),
        },
        "skipped_layers": counts,
        "summary": summary,
    }
