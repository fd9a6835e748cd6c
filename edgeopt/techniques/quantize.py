"""Quantization as a recipe stage: quantization-aware training (``qat``) or post-training (``ptq``).

``qat`` annotates the layers TFMOT's 8-bit QAT can quantize and applies it, choosing the
collaborative scheme automatically: prune-preserving after a prune stage, cluster-preserving after a
cluster stage, and both after prune then cluster, so fine-tuning keeps the zeros and the shared
values that plain QAT would dissolve (``preserve: none`` forces plain QAT, for comparison). Layers
TFMOT cannot see into (``Lambda``, custom layers) stay unannotated: they train in float, TFMOT puts
no fake-quant at their edges, and the int8 converter calibrates their ranges on the representative
data; the outcome lists them, and a check reads whether each int8 export computes them in int8.
``ptq`` trains nothing: the int8 export calibrates on representative data. The QAT model is
exported as it is: the converter reads the learned quantization ranges from it, so ``strip`` is the
identity, and the float formats are exported from the model before this stage. It comes last: QAT
preserves what came before, but nothing after it can preserve QAT. The int8 format's own check
lives in :mod:`edgeopt.verify`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from edgeopt.data import n_samples, take
from edgeopt.errors import InputError
from edgeopt.techniques.base import FineTune, Placement, StageContext, Technique, exported, stage_outcome
from edgeopt.techniques.layers import KERAS_MODULES, listing, skipped_summary, user_code
from edgeopt.types import Check, CheckStatus, Format, StageOutcome, Variant

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
    repair: Literal["auto", "off"] = Field(
        "off",
        description="'auto': when an integer export misses the accuracy budget, try repairs cheapest first "
        "(equalisation, more calibration, then the fewest layers kept in float) and keep the first that "
        "meets it; 'off': export as calibrated",
    )
    backend: Literal["tflite", "litert-quantizer"] = Field(
        "tflite", description="who quantizes the integer exports: the TFLite converter, or the LiteRT "
        "quantizer (ptq only) with its recipe",
    )
    recipe: str | None = Field(None, description="litert-quantizer recipe (backend: litert-quantizer)")
    layers: dict[str, str] = Field(
        default_factory=dict, description="per-layer overrides: Keras layer name -> a litert-quantizer "
        "recipe, or 'float' to keep the layer in float",
    )

    @field_validator("repair", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare ``off`` as false (and ``on`` as true): take them as written."""
        return {False: "off", True: "auto"}.get(value, value) if isinstance(value, bool) else value

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
        """Nothing to refuse before training: layers QAT cannot see into are left out when it is applied."""

    def apply(self, model, stage: QuantizeStage, ctx: StageContext):
        """Wrap ``model`` for quantization-aware training (``ptq``: return it unchanged)."""
        from edgeopt.kerasapi import keras

        if stage.mode == "ptq":
            return model
        if not getattr(model, "_is_graph_network", False) and not isinstance(model, keras.Sequential):
            raise InputError(f"stages[{ctx.stage_index}] quantize: TFMOT cannot wrap a subclassed model "
                             f"({type(model).__name__}); rebuild it as a Functional or Sequential model")
        left_out = unannotated_layers(model)
        if left_out and not quantizable_weights(model, left_out):
            raise InputError(
                f"stages[{ctx.stage_index}] quantize: TFMOT QAT can quantize none of this model's layers "
                f"with weights ({listing(left_out)}); use mode: ptq, where the int8 converter calibrates "
                "every layer"
            )
        ctx.notes["skipped"] = left_out
        quant = _quant()
        try:
            # TFMOT rebuilds the model from its configuration, a Lambda's function included: that code
            # is already in memory (a trusted file, or the user's own), so it is not refused again.
            with quant.quantize_scope(custom_classes(model)), _lambdas_allowed(model):
                annotated = annotate(model, set(left_out))
                scheme = scheme_for(ctx.earlier, stage.preserve)
                if left_out:
                    scheme = leaving_out(scheme, set(left_out))
                qat = quant.quantize_apply
                wrapped = qat(annotated, scheme) if scheme else qat(annotated)
        except (ValueError, RuntimeError) as exc:
            raise InputError(
                f"stages[{ctx.stage_index}] quantize: TFMOT cannot apply QAT to this model: "
                f"{' '.join(str(exc).split())}"
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
        """The scheme used, and the layers QAT left in float: those with weights, and the user code
        left for the converter to calibrate (``calibrated_layers``)."""
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
        calibrated = ctx.notes.get("skipped", {})
        skipped.update(calibrated)
        counts, summary = skipped_summary(skipped, "quantization-aware")
        if calibrated:
            achieved["calibrated_layers"] = sorted(calibrated)
            summary += "; the int8 converter calibrates what QAT left in float"
        return stage_outcome(stage, history, achieved, counts, summary)

    def checks(self, outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
        """Whether each int8 export computes in int8 the layers QAT left to calibration, if any.

        Whether any int8 export computes in int8 at all is the format's own check (:mod:`edgeopt.verify`);
        this one says, when float ops remain, that layers QAT did not see were calibrated into it, so the
        float ops are most likely theirs: TFLite has no int8 kernel for an op they use.
        """
        return calibration_checks(outcome, variants)


TECHNIQUE = Quantize()


# -- checks against the .tflite (no TensorFlow) ------------------------------------------------------


def calibration_checks(outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
    """Each int8 export must compute in int8 the layers QAT left to the converter's calibration."""
    layers = outcome.achieved.get("calibrated_layers") or []
    if not layers:
        return []
    names = ", ".join(layers)
    checks = []
    for v in exported(variants, inspected=True):
        if v.format != Format.INT8:
            continue
        float_ops = v.float_op_names()
        ok = not float_ops
        checks.append(Check(
            variant=v.name, check="calibrated_layers", expected="int8 ops", measured=len(float_ops),
            status=CheckStatus.OK if ok else CheckStatus.FAIL,
            message=f"{v.name}: " + (
                f"the layers QAT left in float ({names}) compute in int8, with ranges from the "
                "converter's calibration" if ok else
                f"float ops left ({', '.join(float_ops)}) where QAT left layers in float ({names}): "
                "TFLite has no int8 kernel for an op they use; replace it, or export a float format"
            ),
        ))
    return checks


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


def leaving_out(scheme, names: set[str]):
    """``scheme`` (TFMOT's default 8-bit one when None) with its registry refusing the layers ``names``.

    TFMOT adds an output quantizer to an unannotated layer that feeds an annotated one whenever its
    registry supports that layer, and the collaborative registries call every layer without
    trainable weights supported, a Lambda among them, then find no quantize config for it. Refused
    here, the layers the stage leaves out stay as they are, as the default registry leaves them.
    """
    from edgeopt.kerasapi import tfmot

    quant = tfmot.quantization.keras

    class Registry(quant.QuantizeRegistry):
        def __init__(self, inner):
            self.inner = inner

        def supports(self, layer):
            return layer.name not in names and self.inner.supports(layer)

        def get_quantize_config(self, layer):
            return self.inner.get_quantize_config(layer)

    class Scheme(quant.QuantizeScheme):
        def __init__(self, inner):
            self.inner = inner

        def get_layout_transformer(self):
            return self.inner.get_layout_transformer()

        def get_quantize_registry(self):
            return Registry(self.inner.get_quantize_registry())

    return Scheme(scheme or quant.default_8bit.Default8BitQuantizeScheme())


OUTPUT_ONLY = ("Rescaling", "Normalization")  # preprocessing: QAT quantizes their outputs only


def annotate(model, left_out: set[str] = frozenset()):
    """The model annotated for QAT, every layer as TFMOT's ``quantize_annotate_model`` would, except
    preprocessing layers its 8-bit registry lacks (``Rescaling``, ``Normalization``): those get an
    output-only quantize config, so a model that scales its own pixels can be trained for int8;
    and the layers named in ``left_out`` (:func:`unannotated_layers`), which stay unannotated.

    TFMOT's ``quantize_apply`` takes a partly annotated model: an unannotated layer is left as it is,
    and the output quantizer it would add before an annotated successor needs the layer in its
    registry, so user code gets no fake-quant at its edges and trains in float; the int8 converter
    then calibrates the ranges QAT did not learn on the representative data.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs,
    )

    from edgeopt.kerasapi import keras

    quant = _quant()
    if not left_out and not any(type(layer).__name__ in OUTPUT_ONLY for layer in model.layers):
        return quant.quantize_annotate_model(model)

    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if layer.name in left_out:
            return copy
        if type(layer).__name__ in OUTPUT_ONLY:
            return quant.quantize_annotate_layer(copy, configs.Default8BitOutputQuantizeConfig())
        return quant.quantize_annotate_layer(copy)

    annotated = keras.models.clone_model(model, clone_function=clone)
    annotated.set_weights(model.get_weights())
    return annotated


def unannotated_layers(model) -> dict[str, str]:
    """Layers TFMOT's 8-bit QAT cannot see into, ``name -> "Type(reason)"``: ``Lambda`` layers and
    classes defined outside Keras that its registry lacks (:func:`edgeopt.techniques.layers.user_code`).

    Built-in layers the registry does not list (BatchNormalization after a convolution, ...) are
    handled by TFMOT's layout transforms, so they are annotated as usual.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry_module,
    )

    registry = registry_module.Default8BitQuantizeRegistry()
    left_out = {}
    for layer in getattr(model, "layers", []):
        reason = user_code(layer)
        if reason and not registry.supports(layer):
            left_out[layer.name] = f"{type(layer).__name__}({reason})"
    return left_out


def quantizable_weights(model, left_out: dict[str, str]) -> bool:
    """Whether a layer with weights is left for QAT to quantize (preprocessing layers do not count)."""
    return any(layer.weights and layer.name not in left_out and type(layer).__name__ not in OUTPUT_ONLY
               for layer in model.layers)


def custom_classes(model) -> dict[str, type]:
    """The model's unregistered layer classes defined outside Keras, by name.

    TFMOT rebuilds the model from its configuration, which finds a class only when it is registered
    with Keras (as a loaded model's classes are) or named here. A name Keras uses for a layer of its
    own is never passed: it would stand for that built-in layer too.
    """
    from edgeopt.kerasapi import keras

    classes = {}
    for layer in model.layers:
        cls = type(layer)
        name = cls.__name__
        if (not cls.__module__.startswith(KERAS_MODULES) and not hasattr(keras.layers, name)
                and keras.saving.get_registered_name(cls) == name):
            classes[name] = cls
    return classes


def _lambdas_allowed(model):
    """Keras' safe mode off while TFMOT rebuilds a model holding Lambda layers; a no-op otherwise."""
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    from edgeopt.kerasapi import keras

    if any(isinstance(layer, keras.layers.Lambda) for layer in model.layers):
        return SafeModeScope(safe_mode=False)
    return contextlib.nullcontext()


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


def warm_start_ranges(model, samples: np.ndarray | dict[str, np.ndarray]) -> None:
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
    from edgeopt.train import keras_inputs

    for start in range(0, n_samples(samples), _CALIBRATION_BATCH):
        before = [float(v.numpy()) for v in variables]
        model(keras_inputs(take(samples, slice(start, start + _CALIBRATION_BATCH))), training=True)
        for i, (v, old) in enumerate(zip(variables, before, strict=True)):
            batch_value = old + (float(v.numpy()) - old) / (1.0 - _TFMOT_EMA_DECAY)
            if v.name.split("/")[-1].split(":")[0].endswith("_min"):
                lows[i] = min(lows.get(i, batch_value), batch_value)
            else:
                highs[i] = max(highs.get(i, batch_value), batch_value)
            v.assign(old)  # undo the partial move until the final assignment below
    for i, v in enumerate(variables):
        v.assign(lows[i] if i in lows else highs[i])
