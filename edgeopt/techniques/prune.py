"""Magnitude pruning (TFMOT ``prune_low_magnitude``) as a recipe stage.

Wraps every layer whose weights TFMOT can prune (optionally only layers whose name or class matches
``stage.layers`` glob patterns; only Conv2D/Dense for structured ``M:N`` sparsity; only 1x1
convolutions for the ``xnnpack_sparse`` policy), fine-tunes with a ``polynomial`` or ``constant``
sparsity schedule, and strips the wrappers so the exported model holds exact zeros. The schedule's
end step is aligned to the mask-update frequency so the final update lands on the target sparsity,
and a schedule whose last update would never run is refused before any training. The checks: each
export's weight sparsity against the target, and with ``M:N`` its share of compliant groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from edgeopt.data import Dataset, steps_per_epoch
from edgeopt.errors import InputError
from edgeopt.techniques.base import (
    MAX_EPOCHS,
    FineTune,
    Placement,
    StageContext,
    Technique,
    exported,
    stage_outcome,
)
from edgeopt.techniques.layers import (
    kernel_of,
    nothing_to_wrap,
    per_layer_kernel,
    skipped_summary,
    wrap_selected,
)
from edgeopt.types import Check, CheckStatus, StageOutcome, Variant

if TYPE_CHECKING:
    from edgeopt.trainspec import TrainSpec

MAX_STEPS = 10_000_000  # frequency, in optimizer steps
SPARSITY_SLACK = 0.02  # rounding in the masks: the measured sparsity may fall this short of the target
PATTERN_SLACK = 1e-6

# -- the stage --------------------------------------------------------------------------------------


def parse_m_by_n(structure: Any) -> tuple[int, int] | None:
    """``'2:4'`` -> (2, 4); ``'unstructured'`` -> None; anything else is a ValueError."""
    if structure in (None, "unstructured"):
        return None
    parts = str(structure).split(":")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        m, n = int(parts[0]), int(parts[1])
        if 0 < m < n:
            return m, n
    raise ValueError(
        f"structure must be 'unstructured' or 'M:N' with 0 < M < N (e.g. '2:4'), got {structure!r}"
    )


class PruneStage(FineTune):
    kind: Literal["prune"] = "prune"
    target_sparsity: float = Field(..., ge=0, lt=1, description="default 1 - M/N with structure M:N")
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="polynomial schedule start")
    schedule: Literal["polynomial", "constant"] = "polynomial"
    frequency: int = Field(10, ge=1, le=MAX_STEPS, description="steps between mask updates")
    begin_epoch: float = Field(0.0, ge=0, le=MAX_EPOCHS,
                               description="fraction of the fine-tune epochs, or epochs")
    end_epoch: float | None = Field(None, ge=0, le=MAX_EPOCHS,
                                    description="default: 80% of the fine-tune epochs")
    layers: list[str] | None = Field(None, description="glob patterns on layer names or class names")
    structure: str = Field(
        "unstructured",
        description="'unstructured', or 'M:N' (at most M non-zeros "
        "in every N consecutive input-channel weights, e.g. '2:4')",
    )
    policy: Literal["all", "xnnpack_sparse"] = Field(
        "all",
        description="'xnnpack_sparse': prune only 1x1 convolutions (XNNPACK's sparse kernels) "
        "and export with TFLite's sparse encoding",
    )

    @model_validator(mode="before")
    @classmethod
    def _structured_target(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("target_sparsity") is None:
            m_by_n = parse_m_by_n(data.get("structure", "unstructured"))
            if m_by_n is not None:
                data = {**data, "target_sparsity": 1 - m_by_n[0] / m_by_n[1]}
        return data

    @model_validator(mode="after")
    def _initial_below_target(self) -> PruneStage:
        m_by_n = parse_m_by_n(self.structure)
        if m_by_n is not None and abs(self.target_sparsity - (1 - m_by_n[0] / m_by_n[1])) > 1e-9:
            raise ValueError(
                f"structure {self.structure} fixes target_sparsity at "
                f"{1 - m_by_n[0] / m_by_n[1]:g}; remove target_sparsity or make it match"
            )
        if self.schedule == "polynomial" and self.initial_sparsity > self.target_sparsity:
            raise ValueError("initial_sparsity must not exceed target_sparsity")
        return self

    @property
    def m_by_n(self) -> tuple[int, int] | None:
        return parse_m_by_n(self.structure)


def schedule_steps(stage: PruneStage, data: Dataset, train: TrainSpec) -> tuple[int, int, int]:
    """(begin step, step of the update that reaches the target, steps in the fine-tune)."""
    spe = steps_per_epoch(data, train, stage.batch_size)
    total = max(1, stage.epochs * spe)
    begin = int(round(stage.begin_epoch * spe))
    if stage.schedule == "constant":  # the first update sets the target; step 0 never runs one
        return begin, begin if begin >= 1 else stage.frequency, total
    end_epoch = stage.end_epoch if stage.end_epoch is not None else 0.8 * stage.epochs
    end = min(total, int(round(end_epoch * spe)))
    # Land the last mask update exactly on end_step: updates happen every `frequency` steps from begin.
    span = max(stage.frequency, ((end - begin) // stage.frequency) * stage.frequency)
    return begin, begin + span, total


# -- the technique ----------------------------------------------------------------------------------


class Prune(Technique):
    """Magnitude pruning: exact zeros in the kernels, optionally in an M:N pattern."""

    kind = "prune"
    Stage = PruneStage
    placement = Placement(once=True)

    def validate(self, stage: PruneStage, index: int, data: Dataset, train: TrainSpec) -> None:
        """Refuse a schedule whose target-sparsity update never runs.

        TFMOT numbers the fine-tune's steps 1 .. total when it updates masks; an update due after
        ``total`` never runs and leaves the model short of its target, with only a failed check at
        the end to show for the training time.
        """
        _, last, total = schedule_steps(stage, data, train)
        if last > total:
            what = "starts" if stage.schedule == "constant" else "reaches target_sparsity"
            raise InputError(
                f"stages[{index}] prune: the schedule {what} at step {last}, but the fine-tune has only "
                f"{total} steps ({stage.epochs} epochs x {total // max(1, stage.epochs)}); lower "
                f"stages[{index}].frequency (now {stage.frequency}), begin_epoch or end_epoch, "
                "or raise epochs"
            )

    def apply(self, model, stage: PruneStage, ctx: StageContext):
        """Wrap the selected, prunable layers of ``model`` for magnitude pruning.

        With ``structure: M:N`` only Conv2D and Dense layers are pruned, each group of N consecutive
        input-channel weights keeping at most M non-zeros; with ``policy: xnnpack_sparse`` only 1x1
        convolutions are pruned. Other layers with weights, and layers TFMOT cannot wrap (user code,
        custom layers), are listed as skipped, with the reason; a model left with no layer to prune
        is refused in one line.
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
            return _sparsity().prune_low_magnitude(layer, pruning_schedule=pruning_schedule,
                                                   sparsity_m_by_n=m_by_n)

        # Every weight of the model as it enters the stage: the sparsity check's denominator.
        ctx.notes["all_weights"] = sum(int(np.prod(w.shape)) for w in model.weights)
        if stage.policy == "xnnpack_sparse":
            ctx.notes["xnnpack_sparse"] = xnnpack_sparse_problem(model)
        wrapped, skipped = wrap_selected(model, ctx, "prune", "prune", stage.layers, skip_reason, wrap_one)
        pruned = []
        for layer in wrapped.layers:
            if hasattr(layer, "pruning_vars"):  # a PruneLowMagnitude wrapper
                if layer.pruning_vars:
                    pruned.append(layer.name)
                else:  # wrapped, but with nothing to prune
                    skipped[layer.name] = type(layer.layer).__name__
        if not pruned:
            raise nothing_to_wrap(ctx, "prune", "prune", skipped)
        ctx.notes["skipped"] = skipped
        return wrapped

    def callbacks(self, stage: PruneStage, ctx: StageContext) -> list:
        """TFMOT's step counter, which drives the mask updates."""
        return [_sparsity().UpdatePruningStep()]

    def strip(self, model):
        """The model with plain layers holding the masked (zeroed) kernels."""
        return _sparsity().strip_pruning(model)

    def scope(self):
        """TFMOT's pruning wrappers, to load a model saved mid-stage."""
        return _sparsity().prune_scope()

    def outcome(self, stripped, stage: PruneStage, ctx: StageContext, history: dict) -> StageOutcome:
        """Sparsity per pruned layer, the M:N groups covered, and the share of weights in pruned kernels."""
        skipped = ctx.notes.get("skipped", {})
        counts, summary = skipped_summary(skipped, "pruned")
        per_layer = {k: v for k, v in kernel_sparsity(stripped).items() if k not in skipped}
        structure = {}
        if stage.m_by_n is not None:  # what share of all kernel groups the M:N masks cover
            groups = kernel_groups(stripped, stage.m_by_n[1])
            covered = sum(v for k, v in groups.items() if k in per_layer)
            structure = {"m_by_n_groups_share": covered / sum(groups.values()) if groups else 0.0}
        pruned_kernels = sum(int(np.prod(w.shape)) for layer in stripped.layers if layer.name in per_layer
                             for w in layer.weights if "kernel" in w.name)
        all_weights = ctx.notes.get("all_weights", 0)
        if stage.policy == "xnnpack_sparse":
            problem = ctx.notes.get("xnnpack_sparse")
            structure["xnnpack_sparse_ready"] = problem is None
            summary += ("; XNNPACK's sparse kernels can run it (on ARM: on x86 with AVX XNNPACK stays dense)"
                        if problem is None else f"; XNNPACK's sparse kernels cannot run it: {problem}")
        achieved = {
            "per_layer_sparsity": per_layer,
            "min_layer_sparsity": min(per_layer.values()) if per_layer else None,
            **structure,
            "pruned_weight_fraction": pruned_kernels / all_weights if all_weights else 0.0,
        }
        return stage_outcome(stage, history, achieved, counts, summary)

    def checks(self, outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
        """Each export's weight sparsity, and with ``M:N`` its compliant groups, against what was pruned."""
        return sparsity_checks(outcome, variants) + pattern_checks(outcome, variants)

    def sparse_encoding(self, stage: PruneStage) -> bool:
        """On with ``policy: xnnpack_sparse``: XNNPACK's sparse kernels read TFLite's sparse format."""
        return stage.policy == "xnnpack_sparse"

    def inspect_pattern(self, stage: PruneStage) -> tuple[int, int] | None:
        """The stage's ``M:N`` structure, if any."""
        return stage.m_by_n


TECHNIQUE = Prune()


# -- checks against the .tflite (no TensorFlow) ------------------------------------------------------


def _status(ok: bool) -> CheckStatus:
    return CheckStatus.OK if ok else CheckStatus.FAIL


def sparsity_checks(outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
    """Each exported variant's measured weight sparsity against the stage's target.

    Only the pruned layers' kernels are asked to be sparse, so the expectation over all weights is
    target x (share of weights in pruned kernels), less :data:`SPARSITY_SLACK`. An outcome without
    that share (a report from before it was recorded) has nothing to check against.
    """
    fraction = outcome.achieved.get("pruned_weight_fraction")
    if fraction is None:
        return []
    target = float(outcome.params["target_sparsity"])
    expected = target * fraction - SPARSITY_SLACK
    checks = []
    for v in exported(variants):
        ok = v.sparsity >= expected
        checks.append(Check(
            variant=v.name, check="sparsity", expected=f">= {expected:.3f}", measured=round(v.sparsity, 4),
            status=_status(ok),
            message=f"{v.name}: weight sparsity {v.sparsity:.3f} in the .tflite "
                    f"({'meets' if ok else 'falls short of'} {expected:.3f} = target {target:.2f} "
                    f"x {fraction:.3f} of weights in pruned layers - {SPARSITY_SLACK})",
        ))
    return checks


def pattern_checks(outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
    """M:N compliance of each exported variant against the share of groups the stage covered.

    The share of compliant groups over all weight tensors must be at least the share of groups
    lying in the M:N-pruned kernels: those are compliant by construction; the others may be
    compliant by chance, which only raises the measured share.
    """
    structure = outcome.params.get("structure", "unstructured")
    if structure == "unstructured":
        return []
    expected = float(outcome.achieved.get("m_by_n_groups_share", 0.0))
    checks = []
    for v in exported(variants, inspected=True):
        measured = v.inspect.pattern_share if v.inspect.pattern_structure == structure else None
        if measured is None and structure == "2:4":
            measured = v.inspect.pattern_2_4
        ok = measured is not None and measured >= expected - PATTERN_SLACK
        shown = "none" if measured is None else f"{measured:.3f}"
        checks.append(Check(
            variant=v.name, check=f"pattern_{structure.replace(':', '_')}", expected=f">= {expected:.3f}",
            measured=None if measured is None else round(measured, 4), status=_status(ok),
            message=f"{v.name}: {structure} compliance {shown} of weight groups in the .tflite "
                    f"({'meets' if ok else 'falls short of'} {expected:.3f}, the share of groups "
                    f"in {structure}-pruned layers)",
        ))
    return checks


# -- the Keras side (TensorFlow inside) --------------------------------------------------------------


def _sparsity():
    from edgeopt.kerasapi import tfmot

    return tfmot.sparsity.keras


def schedule(stage: PruneStage, ctx: StageContext):
    """The TFMOT pruning schedule for this stage, in optimizer steps."""
    begin, last, _ = schedule_steps(stage, ctx.data, ctx.train)
    sparsity = _sparsity()
    if stage.schedule == "constant":
        return sparsity.ConstantSparsity(stage.target_sparsity, begin_step=begin, frequency=stage.frequency)
    return sparsity.PolynomialDecay(
        initial_sparsity=stage.initial_sparsity,
        final_sparsity=stage.target_sparsity,
        begin_step=begin,
        end_step=last,
        frequency=stage.frequency,
    )


def is_1x1_conv(layer) -> bool:
    """A pointwise convolution: what XNNPACK's sparse inference accelerates."""
    from edgeopt.kerasapi import keras

    return (isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose)
            and tuple(layer.kernel_size) == (1, 1) and getattr(layer, "groups", 1) == 1)


def supports_m_by_n(layer) -> bool:
    """TFMOT's M-by-N masks work on rank-2 (Dense) and rank-4 (Conv2D) kernels."""
    from edgeopt.kerasapi import keras

    if isinstance(layer, keras.layers.Dense):
        return True
    return isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose)


def kernel_sparsity(model) -> dict[str, float]:
    """Fraction of exact zeros in each layer's kernel."""
    return per_layer_kernel(model, lambda kernel: float(np.mean(kernel == 0)))


def kernel_groups(model, n: int) -> dict[str, int]:
    """Groups of ``n`` consecutive input-channel weights per layer kernel, in TFLite's layout.

    TFLite stores Conv2D kernels as [out, h, w, in], Dense as [out, in] and DepthwiseConv2D as
    [1, h, w, channels]: the groups run along the last axis, as in :func:`edgeopt.inspect.pattern_m_by_n`.
    """
    from edgeopt.kerasapi import keras

    result = {}
    for layer in model.layers:
        kernel = kernel_of(layer)
        if kernel is None:
            continue
        shape = tuple(int(d) for d in kernel.shape)
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # [h, w, in, multiplier]
            rows, last = shape[0] * shape[1], shape[2] * shape[3]
        elif len(shape) >= 3:  # Conv [h, w, in, out] (and Conv1D/3D alike): `in` is the TFLite last axis
            rows, last = int(np.prod(shape[:-2])) * shape[-1], shape[-2]
        else:  # Dense [in, out]
            rows, last = shape[-1], shape[0]
        result[layer.name] = rows * -(-last // n)
    return result


def xnnpack_sparse_problem(model) -> str | None:
    """Why XNNPACK's sparse inference cannot take ``model``, or None when it can: TFMOT's own
    ``PruneForLatencyOnXNNPack`` check (a 3x3 stride-2 VALID convolution over 3 channels after explicit
    padding first, then 1x1 convolutions, ending in a mean), its reason on one line."""
    try:
        _sparsity().PruneForLatencyOnXNNPack().ensure_model_supports_pruning(model)
    except ValueError as exc:
        return " ".join(str(exc).split())
    return None

