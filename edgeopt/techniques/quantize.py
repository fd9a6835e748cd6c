"""Quantization as a recipe stage: quantization-aware training (``qat``) or post-training (``ptq``).

``qat`` annotates the whole model and applies TFMOT's 8-bit QAT, choosing the collaborative scheme
automatically: prune-preserving after a prune stage, cluster-preserving after a cluster stage, and
both after prune then cluster, so fine-tuning keeps the zeros and the shared values that plain QAT
would dissolve (``preserve: none`` forces plain QAT, for comparison). ``ptq`` trains nothing: the int8
export calibrates on representative data. The QAT model is exported as it is: the converter reads
the learned quantization ranges from it, so ``strip`` is the identity, and the float formats are
exported from the model before this stage. It comes last: QAT preserves what came before, but
nothing after it can preserve QAT. The int8 format's own check lives in :mod:`edgeopt.verify`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from edgeopt.errors import InputError
from edgeopt.techniques.base import FineTune, Placement, StageContext, Technique, stage_outcome
from edgeopt.techniques.layers import skipped_summary
from edgeopt.types import Check, StageOutcome, Variant

if TYPE_CHECKING:
    from edgeopt.data import Dataset
    from edgeopt.recipe import TrainSpec

# -- the stage --------------------------------------------------------------------------------------


class QuantizeStage(FineTune):
    kind: Literal["quantize"] = "quantize"
    mode: Literal["qat", "ptq"] = "qat"
    preserve: Literal["auto", "none"] = Field(
        "auto",
        description="'auto': collaborative QAT keeping earlier sparsity and clusters; "
        "'none': plain QAT (for comparison)",
    )

    @model_validator(mode="before")
    @classmethod
    def _ptq_defaults_to_no_training(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") == "ptq" and "epochs" not in data:
            data = {**data, "epochs": 0}
        return data

    @model_validator(mode="after")
    def _ptq_has_no_training(self) -> QuantizeStage:
        if self.mode == "ptq" and self.epochs:
            raise ValueError("mode ptq needs no training: set epochs to 0 (or use mode qat)")
        return self


def scheme_name(earlier: tuple[str, ...], preserve: str = "auto", mode: str = "qat") -> str:
    """The name of the scheme :func:`scheme_for` picks, as the report states it."""
    if mode == "ptq":
        return "post_training_int8"
    if preserve == "none":
        return "default_8bit"
    if "cluster" in earlier:
        return "prune_cluster_preserving" if "prune" in earlier else "cluster_preserving"
    return "prune_preserving" if "prune" in earlier else "default_8bit"


# -- the technique ----------------------------------------------------------------------------------


class Quantize(Technique):
    """Quantization-aware training (or post-training calibration) for the int8 export."""

    kind = "quantize"
    Stage = QuantizeStage
    # Nothing after QAT can preserve it; the refusal names the stage that follows instead of a reason.
    placement = Placement(once=True, last=True)
    exports_float_from_here = False  # the QAT model holds fake-quant ops: float formats come from before

    def validate(self, stage: QuantizeStage, index: int, data: Dataset, train: TrainSpec) -> None:
        """Nothing to refuse before training: layers QAT cannot wrap are named when it is applied."""

    def apply(self, model, stage: QuantizeStage, ctx: StageContext):
        """Wrap ``model`` for quantization-aware training (``ptq``: return it unchanged)."""
        from edgeopt.kerasapi import keras

        if stage.mode == "ptq":
            return model
        if not getattr(model, "_is_graph_network", False) and not isinstance(model, keras.Sequential):
            raise InputError(f"stages[{ctx.stage_index}] quantize: TFMOT cannot wrap a subclassed model "
                             f"({type(model).__name__}); rebuild it as a Functional or Sequential model")
        offending = unsupported_layers(model)
        if offending:
            raise InputError(
                f"stages[{ctx.stage_index}] quantize: TFMOT QAT cannot wrap layers {', '.join(offending)}; "
                "replace them with built-in layers, or use mode: ptq"
            )
        quant = _quant()
        try:
            annotated = annotate(model)
            with quant.quantize_scope():
                scheme = scheme_for(ctx.earlier, stage.preserve)
                qat = quant.quantize_apply
                wrapped = qat(annotated, scheme) if scheme else qat(annotated)
        except (ValueError, RuntimeError) as exc:
            raise InputError(
                f"stages[{ctx.stage_index}] quantize: TFMOT cannot apply QAT to this model: {exc}"
            ) from None
        warm_start_ranges(wrapped, ctx.data.representative(count=1024, seed=ctx.seed))
        return wrapped

    def callbacks(self, stage: QuantizeStage, ctx: StageContext) -> list:
        """None: TFMOT's quantizers learn their ranges inside the layers."""
        return []

    def strip(self, model):
        """The QAT model itself: the converter reads the learned ranges from its wrappers."""
        return model

    def scope(self):
        """TFMOT's quantization wrappers and quantizers, to load a QAT model."""
        return _quant().quantize_scope()

    def outcome(self, stripped, stage: QuantizeStage, ctx: StageContext, history: dict) -> StageOutcome:
        """The scheme used, and the layers with weights QAT left in float."""
        achieved = {"scheme": scheme_name(ctx.earlier, stage.preserve, stage.mode)}
        if stage.mode == "ptq":
            summary = "post-training: nothing trained; each int8 export calibrates on representative data"
            return stage_outcome(stage, history, achieved, {}, summary)
        quant = _quant()
        skipped = {
            layer.name: type(layer).__name__
            for layer in stripped.layers
            if layer.weights
            and not isinstance(layer, quant.QuantizeWrapper)
            and type(layer).__name__ not in ("QuantizeLayer",)
        }
        counts, summary = skipped_summary(skipped, "quantization-aware")
        return stage_outcome(stage, history, achieved, counts, summary)

    def checks(self, outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
        """None of its own: that an int8 export computes in int8 is the format's (:mod:`edgeopt.verify`)."""
        return []


TECHNIQUE = Quantize()


# -- the Keras side (TensorFlow inside) --------------------------------------------------------------


def _quant():
    from edgeopt.kerasapi import tfmot

    return tfmot.quantization.keras


def scheme_for(earlier: tuple[str, ...], preserve: str = "auto"):
    """The QAT scheme that preserves what the earlier stages achieved (None: TFMOT's default).

    After clustering: cluster-preserving (and sparsity-preserving too when a prune stage came before
    it); after pruning alone: prune-preserving; ``preserve='none'`` forces plain QAT.
    """
    from edgeopt.kerasapi import tfmot

    combine = tfmot.experimental.combine
    if preserve == "none":
        return None
    if "cluster" in earlier:
        return _cluster_preserve_scheme(preserve_sparsity="prune" in earlier)
    if "prune" in earlier:
        return combine.Default8BitPrunePreserveQuantizeScheme()
    return None


def _cluster_preserve_scheme(preserve_sparsity: bool):
    """TFMOT's (prune-)cluster-preserving scheme, with one weight quantizer per layer.

    TFMOT's registry hands the same quantizer object to every Dense (and every Conv2D) layer, and
    that quantizer switches its ``preserve_sparsity`` off for good when it builds a layer without
    zeros; the pruned layers sharing it then lose their zeros during QAT (facepose_mlp: hidden1
    went from 90% to 65% zeros because the unpruned output layer had none). A quantizer per layer
    confines the switch to the layer it is about.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
        cluster_preserve_quantize_registry as registry,
    )

    from edgeopt.kerasapi import tfmot

    class Registry(registry.Default8bitClusterPreserveQuantizeRegistry):
        def __init__(self, preserve):
            super().__init__(preserve)
            self._preserve = preserve

        def get_quantize_config(self, layer):
            config = super().get_quantize_config(layer)
            shared = getattr(config, "weight_quantizer", None)
            if any(shared is q for q in self._config_quantizer_map.values()):
                config.weight_quantizer = type(shared)(self._preserve)
            return config

    class Scheme(tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme):
        def get_quantize_registry(self):
            return Registry(self.preserve_sparsity)

    return Scheme(preserve_sparsity=preserve_sparsity)


OUTPUT_ONLY = ("Rescaling", "Normalization")  # preprocessing: QAT quantizes their outputs only


def annotate(model):
    """The model annotated for QAT, every layer as TFMOT's ``quantize_annotate_model`` would, except
    preprocessing layers its 8-bit registry lacks (``Rescaling``, ``Normalization``): those get an
    output-only quantize config, so a model that scales its own pixels can be trained for int8."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs,
    )

    from edgeopt.kerasapi import keras

    quant = _quant()
    if not any(type(layer).__name__ in OUTPUT_ONLY for layer in model.layers):
        return quant.quantize_annotate_model(model)

    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if type(layer).__name__ in OUTPUT_ONLY:
            return quant.quantize_annotate_layer(copy, configs.Default8BitOutputQuantizeConfig())
        return quant.quantize_annotate_layer(copy)

    annotated = keras.models.clone_model(model, clone_function=clone)
    annotated.set_weights(model.get_weights())
    return annotated


def unsupported_layers(model) -> list[str]:
    """User-defined layers TFMOT's default 8-bit QAT cannot quantize, as ``name (Class)``."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry_module,
    )

    from edgeopt.kerasapi import keras

    registry = registry_module.Default8BitQuantizeRegistry()
    # Built-in layers the registry does not list (BatchNormalization after a convolution, ...) are
    # handled by TFMOT's layout transforms; only user-defined layers are known to fail.
    return [f"{layer.name} ({type(layer).__name__})" for layer in getattr(model, "layers", [])
            if not isinstance(layer, keras.layers.InputLayer) and not registry.supports(layer)
            and not type(layer).__module__.startswith(("tf_keras.", "keras."))]


# TFMOT's moving-average quantizers update their ranges as min <- decay*min + (1-decay)*batch_min
# with this fixed decay, starting from [-6, 6].
_TFMOT_EMA_DECAY = 0.999
_CALIBRATION_BATCH = 256


def _range_variables(model) -> list:
    # Only the moving-average ranges: the input's QuantizeLayer grows its range to cover every value
    # it sees, so one calibration pass already sets it right.
    names = ("pre_activation_min", "pre_activation_max", "post_activation_min", "post_activation_max",
             "output_min", "output_max")
    return [w for w in model.weights if w.name.split("/")[-1].split(":")[0] in names]


def warm_start_ranges(model, samples: np.ndarray) -> None:
    """Start QAT's activation ranges at the ranges the data really has.

    TFMOT starts every activation range at [-6, 6] and moves it by an exponential moving average
    with decay 0.999, so an output that lives in [-75, 75] (degrees, say) stays clipped for
    thousands of steps and QAT first destroys the model it should fine-tune. Each training-mode
    forward pass moves a range variable by (1 - decay) x (batch value - current value), so the batch
    value is recovered exactly from that move; the widest range over a few calibration batches is
    assigned, as post-training calibration would. Weights are not touched.
    """
    variables = _range_variables(model)
    if not variables:
        return
    lows: dict[int, float] = {}
    highs: dict[int, float] = {}
    for start in range(0, len(samples), _CALIBRATION_BATCH):
        before = [float(v.numpy()) for v in variables]
        model(samples[start : start + _CALIBRATION_BATCH], training=True)
        for i, (v, old) in enumerate(zip(variables, before, strict=True)):
            batch_value = old + (float(v.numpy()) - old) / (1.0 - _TFMOT_EMA_DECAY)
            if v.name.split("/")[-1].split(":")[0].endswith("_min"):
                lows[i] = min(lows.get(i, batch_value), batch_value)
            else:
                highs[i] = max(highs.get(i, batch_value), batch_value)
            v.assign(old)  # undo the partial move until the final assignment below
    for i, v in enumerate(variables):
        v.assign(lows[i] if i in lows else highs[i])
