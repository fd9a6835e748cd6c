"""Weight clustering (TFMOT ``cluster_weights``) as a recipe stage.

Wraps every layer whose weights TFMOT can cluster (optionally only layers whose name or class matches
``stage.layers`` glob patterns) so each kernel shares ``stage.clusters`` centroid values, fine-tunes
the centroids, and strips the wrappers so the exported kernels hold at most that many distinct
values. After a prune stage it is sparsity-preserving by default: zeros stay zeros (TFMOT's
``preserve_sparsity``), so the clusters do not fill the pruned weights back in. It comes after
pruning, never before. The check: enough weight tensors in each export keep at most that many values.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from edgeopt.internals import cluster_weights_class
from edgeopt.techniques.base import FineTune, Placement, StageContext, Technique, exported, stage_outcome
from edgeopt.techniques.layers import (
    kernel_of,
    nothing_to_wrap,
    per_layer_kernel,
    skipped_summary,
    wrap_selected,
)
from edgeopt.types import Check, CheckStatus, StageOutcome, TensorFacts, Variant

if TYPE_CHECKING:
    from edgeopt.dataset import Dataset
    from edgeopt.trainspec import TrainSpec

CENTROID_INITS = ("kmeans_plus_plus", "linear", "density_based", "random")

# -- the stage --------------------------------------------------------------------------------------


class ClusterStage(FineTune):
    kind: Literal["cluster"] = "cluster"
    clusters: int = Field(16, ge=2, le=256, description="centroids per clustered weight tensor")
    centroid_init: Literal[CENTROID_INITS] = "kmeans_plus_plus"  # type: ignore[valid-type]
    layers: list[str] | None = Field(None, description="glob patterns on layer names or class names")
    preserve_sparsity: bool | None = Field(None, description="default: true when a prune stage came before")


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


# -- the technique ----------------------------------------------------------------------------------


class Cluster(Technique):
    """Weight clustering: each clustered kernel holds at most ``clusters`` distinct values."""

    kind = "cluster"
    Stage = ClusterStage
    placement = Placement(once=True, after=("prune",), why="pruning after clustering breaks the clusters")

    def validate(self, stage: ClusterStage, index: int, data: Dataset, train: TrainSpec) -> None:
        """Nothing to refuse before training: a layer too small to cluster is skipped, and reported."""

    def apply(self, model, stage: ClusterStage, ctx: StageContext):
        """Wrap the selected, clusterable layers of ``model`` for weight clustering.

        Layers TFMOT cannot cluster (user code, custom layers, layers too small) are listed as
        skipped, with the reason; a model left with no layer to cluster is refused in one line.
        """
        preserve = preserves_sparsity(stage, ctx)
        clustering = _clustering()

        def skip_reason(layer) -> str | None:
            kernel = kernel_of(layer)
            if kernel is not None and too_few_weights(kernel.numpy(), stage.clusters, preserve):
                return f"fewer {'non-zero ' if preserve else ''}weights than clusters"
            return None

        def wrap_one(layer):
            return clustering.cluster_weights(
                layer,
                number_of_clusters=stage.clusters,
                cluster_centroids_init=_centroid_init(stage.centroid_init),
                preserve_sparsity=preserve,
            )

        wrapped, skipped = wrap_selected(model, ctx, "cluster", "cluster", stage.layers, skip_reason,
                                         wrap_one)
        clustered = []
        for layer in wrapped.layers:
            if isinstance(layer, _clustering_wrapper()):
                if layer.cluster_centroids:
                    clustered.append(layer.layer.name)
                else:  # wrapped, but TFMOT clusters none of its weights (DepthwiseConv2D, BatchNormalization)
                    skipped[layer.name] = type(layer.layer).__name__
        if not clustered:
            raise nothing_to_wrap(ctx, "cluster", "cluster", skipped)
        ctx.notes["skipped"] = skipped
        ctx.notes["clustered"] = clustered
        ctx.notes["preserve_sparsity"] = preserve
        # A layer left out of clustering is fine-tuned as a plain layer: without a mask its pruned zeros
        # fill back in (a pruned 10-class head went from 80% to 11% zeros in one epoch).
        ctx.notes["zero_masks"] = _zero_masks(wrapped, set(skipped)) if preserve else {}
        return wrapped

    def callbacks(self, stage: ClusterStage, ctx: StageContext) -> list:
        """Keep the zeros of pruned layers left out of clustering (see :func:`keep_zeros_class`)."""
        masks = ctx.notes.get("zero_masks")
        return [keep_zeros_class()(masks)] if masks else []

    def strip(self, model):
        """The model with plain layers holding the clustered kernels."""
        return _clustering().strip_clustering(model)

    def scope(self):
        """TFMOT's clustering wrappers, to load a model saved mid-stage."""
        return _clustering().cluster_scope()

    def outcome(self, stripped, stage: ClusterStage, ctx: StageContext, history: dict) -> StageOutcome:
        """Distinct values per clustered layer, whether zeros were kept, and the layers clustered."""
        counts, summary = skipped_summary(ctx.notes.get("skipped", {}), "clustered")
        clustered = set(ctx.notes.get("clustered", []))
        per_layer = {k: v for k, v in kernel_unique_values(stripped).items() if k in clustered}
        achieved = {
            "per_layer_unique_values": per_layer,
            "max_layer_unique_values": max(per_layer.values()) if per_layer else None,
            "preserve_sparsity": ctx.notes.get("preserve_sparsity", False),
            "zeros_kept_in_unclustered_layers": sorted(ctx.notes.get("zero_masks", {})),
            "clustered_layers": sorted(clustered),
        }
        return stage_outcome(stage, history, achieved, counts, summary)

    def checks(self, outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
        """Each export keeps the clusters (:func:`cluster_checks`)."""
        return cluster_checks(outcome, variants)


TECHNIQUE = Cluster()


# -- checks against the .tflite (no TensorFlow) ------------------------------------------------------


def _tensor_clusters(tensor: TensorFacts) -> int:
    # Per output channel: batch-norm folding (float) and per-channel scales (int8) multiply each
    # channel by its own factor, which keeps K values per channel but not K per tensor.
    return int(tensor.unique_values_per_channel_max)


def cluster_checks(outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
    """Each exported variant must keep the clusters: enough weight tensors with at most K values.

    At least as many weight tensors as layers were clustered must hold at most K distinct values per
    output channel (batch-norm folding and per-channel int8 scales multiply each channel by its own
    factor: K values per channel survive, K per tensor need not).
    """
    k = int(outcome.params["clusters"])
    asked = len(outcome.achieved.get("clustered_layers", []))
    if not asked:
        return []
    checks = []
    for v in exported(variants, inspected=True):
        weights = list(v.inspect.weights().values())
        kept = sum(1 for t in weights if _tensor_clusters(t) <= k)
        ok = kept >= asked
        checks.append(Check(
            variant=v.name, check="clusters", expected=f">= {asked} tensors with <= {k} values",
            measured=kept, status=CheckStatus.OK if ok else CheckStatus.FAIL,
            message=f"{v.name}: {kept} of {len(weights)} weight tensors hold <= {k} distinct values "
                    f"({'meets' if ok else 'falls short of'} the {asked} clustered layers)",
        ))
    return checks


# -- the Keras side (TensorFlow inside) --------------------------------------------------------------


def _clustering():
    from edgeopt.kerasapi import tfmot

    return tfmot.clustering.keras


def _centroid_init(name: str):
    inits = _clustering().CentroidInitialization
    return {
        "kmeans_plus_plus": inits.KMEANS_PLUS_PLUS,
        "linear": inits.LINEAR,
        "density_based": inits.DENSITY_BASED,
        "random": inits.RANDOM,
    }[name]


def _clustering_wrapper():
    return cluster_weights_class()


def _zero_masks(model, names: set[str]) -> dict[str, tuple]:
    """(kernel variable, 1.0 where non-zero) of each named layer that holds zeros."""
    masks = {}
    for layer in model.layers:
        kernel = kernel_of(layer)
        if layer.name in names and kernel is not None and np.any(kernel.numpy() == 0):
            masks[layer.name] = (kernel, (kernel.numpy() != 0).astype(kernel.dtype.as_numpy_dtype))
    return masks


@functools.cache
def keep_zeros_class():
    """The ``KeepZeros`` Keras callback class, built on first use (it subclasses a Keras class)."""
    from edgeopt.kerasapi import keras

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

    return KeepZeros


def kernel_unique_values(model) -> dict[str, int]:
    """Distinct values in each layer's kernel."""
    return per_layer_kernel(model, lambda kernel: int(np.unique(kernel).size))
