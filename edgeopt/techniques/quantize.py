"""Quantization as a recipe stage: quantization-aware training (``qat``) or post-training (``ptq``).

``qat`` annotates the layers TFMOT's 8-bit QAT can quantize and applies it, choosing the
collaborative scheme automatically: prune-preserving after a prune stage, cluster-preserving after a
cluster stage, and both after prune then cluster, so fine-tuning keeps the zeros and the shared
values that plain QAT would dissolve (``preserve: none`` forces plain QAT, for comparison). Layers
TFMOT cannot see into (``Lambda``, custom layers) stay unannotated: they train in float, TFMOT puts
no fake-quant at their edges, and the int8 converter calibrates their ranges on the representative
data; the outcome lists them, and a check reads whether each int8 export computes them in int8.
A layer that standardises each feature of a model input with its own statistics (a ``Normalization``
adapted on features of different scales) stays in float too, with no fake-quant on the raw input, so
quantization starts after it: one int8 scale for the raw input would erase the small features. The
outcome lists it (``float_layers``) and the int8 export (:func:`float_first_int8`) takes float input and
computes its ops, and only those, in float.
``ptq`` trains nothing: the int8 export calibrates on representative data; with ``backend:
litert-quantizer`` the LiteRT quantizer makes the export its ``recipe`` names, with per-layer
overrides (:mod:`edgeopt.litert_backend`), and the outcome records what it was asked for the format
checks in :mod:`edgeopt.verify`. The QAT model is
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
from pydantic import Field, ValidationInfo, field_validator, model_validator

from edgeopt.dataset import n_samples, take
from edgeopt.errors import InputError
from edgeopt.inspect import inspection
from edgeopt.internals import (
    cluster_preserve_registry,
    default_8bit_configs,
    default_8bit_registry,
    safe_mode_off,
)
from edgeopt.litert_backend import BACKEND, FLOAT, RECIPES, backend_problem, layer_problem, recipe_problem
from edgeopt.techniques.base import (
    FineTune,
    Placement,
    StageContext,
    Technique,
    exported,
    stage_outcome,
    wrappable,
)
from edgeopt.techniques.layers import KERAS_MODULES, listing, skipped_summary, user_code
from edgeopt.types import Check, CheckStatus, FloatOp, Format, StageOutcome, Variant

if TYPE_CHECKING:
    from edgeopt.dataset import Dataset
    from edgeopt.trainspec import TrainSpec

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
    recipe: str | None = Field(None, description="litert-quantizer recipe (backend: litert-quantizer)",
                               validate_default=True)
    layers: dict[str, str] = Field(
        default_factory=dict, description="per-layer overrides: Keras layer name -> a litert-quantizer "
        "recipe, or 'float' to keep the layer in float",
    )

    @field_validator("backend", mode="before")
    @classmethod
    def _known_backend(cls, value: Any) -> Any:
        problem = backend_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("backend")
    @classmethod
    def _litert_after_training(cls, value: str, info: ValidationInfo) -> str:
        if value == BACKEND and info.data.get("mode") == "qat":
            raise ValueError(f"{BACKEND} quantizes the trained model after training: set mode: ptq "
                             "(quantization-aware training needs backend: tflite)")
        if value == BACKEND and info.data.get("repair") == "auto":
            raise ValueError(f"repair: auto repairs the TFLite converter's exports, not the {BACKEND}'s: "
                             "set repair: off, or backend: tflite")
        return value

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, value: str | None, info: ValidationInfo) -> str | None:
        backend = info.data.get("backend")
        if backend == BACKEND:
            if value is None:
                raise ValueError(f"backend {BACKEND} needs a recipe: one of {', '.join(RECIPES)}")
            problem = recipe_problem(value)
            if problem:
                raise ValueError(problem)
        elif value is not None and backend is not None:
            raise ValueError(f"a recipe is for backend {BACKEND}: set backend: {BACKEND}, or remove recipe")
        return value

    @field_validator("layers")
    @classmethod
    def _layer_recipes(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        backend = info.data.get("backend")
        if value and backend is not None and backend != BACKEND:
            raise ValueError(f"per-layer overrides are for backend {BACKEND}: set backend: {BACKEND}")
        for name, choice in value.items():
            problem = recipe_problem(choice, allow_float=True)
            if problem:
                raise ValueError(f"{name}: {problem}")
        return value

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
        if stage.mode == "ptq":
            # Overrides naming no layer are refused before any conversion (the names need the model).
            problem = layer_problem(stage.layers, [layer.name for layer in getattr(model, "layers", [])])
            if problem:
                raise InputError(f"stages[{ctx.stage_index}].layers: {problem}")
            return model
        if not wrappable(model):  # a loaded model is asked before any work; a model given here is not
            raise InputError(f"stages[{ctx.stage_index}] quantize: TFMOT cannot wrap a subclassed model "
                             f"({type(model).__name__}); rebuild it as a Functional or Sequential model")
        left_out = unannotated_layers(model)
        if left_out and not quantizable_weights(model, left_out):
            raise InputError(
                f"stages[{ctx.stage_index}] quantize: TFMOT QAT can quantize none of this model's layers "
                f"with weights ({listing(left_out)}); use mode: ptq, where the int8 converter calibrates "
                "every layer"
            )
        kept = float_layers(model)
        ctx.notes["skipped"] = left_out
        ctx.notes["float_layers"] = kept
        unannotated = set(left_out) | set(kept)
        quant = _quant()
        try:
            # TFMOT rebuilds the model from its configuration, a Lambda's function included: that code
            # is already in memory (a trusted file, or the user's own), so it is not refused again.
            with quant.quantize_scope(custom_classes(model)), _lambdas_allowed(model):
                annotated = annotate(model, unannotated)
                scheme = scheme_for(ctx.earlier, stage.preserve)
                if unannotated:
                    scheme = leaving_out(scheme, unannotated)
                qat = quant.quantize_apply
                wrapped = qat(annotated, scheme) if scheme else qat(annotated)
        except (ValueError, RuntimeError) as exc:
            raise InputError(
                f"stages[{ctx.stage_index}] quantize: TFMOT cannot apply QAT to this model: "
                f"{' '.join(str(exc).split())}"
            ) from None
        refresh_state(wrapped)
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
        """The scheme used, and the layers QAT left in float: those with weights, the user code left for
        the converter to calibrate (``calibrated_layers``), and the standardisation of an input the int8
        export computes in float (``float_layers``, with ``format``: the export they are kept in, which
        the int8 format's check in :mod:`edgeopt.verify` reads)."""
        if stage.backend == BACKEND:
            return litert_outcome(stage, history)
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
        kept = ctx.notes.get("float_layers", {})
        skipped.update(calibrated)
        skipped.update(kept)
        counts, summary = skipped_summary(skipped, "quantization-aware")
        if calibrated:
            achieved["calibrated_layers"] = sorted(calibrated)
            summary += "; the int8 converter calibrates what QAT left in float"
        if kept:
            achieved.update(float_layers=sorted(kept), format=str(Format.INT8))
            summary += (f"; the int8 file computes {', '.join(sorted(kept))} in float and takes float input, "
                        "quantization starting after it")
        return stage_outcome(stage, history, achieved, counts, summary)

    def checks(self, outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
        """Whether each int8 export computes in int8 the layers QAT left to calibration, if any.

        Whether any int8 export computes in int8 at all is the format's own check (:mod:`edgeopt.verify`);
        this one says, when float ops remain, that layers QAT did not see were calibrated into it, so the
        float ops are most likely theirs: TFLite has no int8 kernel for an op they use.
        """
        return calibration_checks(outcome, variants)

    def needs_training(self, stage: QuantizeStage) -> bool:
        """Quantization-aware training trains; post-training quantization (``ptq``) only calibrates."""
        return stage.mode == "qat"

    def needs_wrapping(self, stage: QuantizeStage) -> bool:
        """QAT wraps the layers in TFMOT's quantize wrappers; ``ptq`` leaves the model to the converter."""
        return stage.mode == "qat"


TECHNIQUE = Quantize()


def litert_outcome(stage: QuantizeStage, history: dict) -> StageOutcome:
    """What the LiteRT quantizer was asked: its recipe, the format it makes and the per-layer overrides
    (``layers``; ``float_layers``, those left in float), which that format's checks read."""
    fmt = RECIPES[stage.recipe]
    kept = [name for name, choice in stage.layers.items() if choice == FLOAT]
    achieved = {"scheme": "litert_quantizer", "recipe": stage.recipe, "format": str(fmt),
                "layers": dict(stage.layers), "float_layers": kept}
    overrides = ", ".join(f"{name}: {choice}" for name, choice in stage.layers.items())
    summary = (f"post-training: the LiteRT quantizer's {stage.recipe} makes the {fmt} export"
               + (f" ({overrides})" if overrides else "")
               + "; other integer exports calibrate through the TFLite converter")
    return stage_outcome(stage, history, achieved, {}, summary)


# -- checks against the .tflite (no TensorFlow) ------------------------------------------------------


def calibration_checks(outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
    """Each int8 export must compute in int8 the layers QAT left to the converter's calibration (the
    float ops of the layers it kept in float on purpose, ``float_layers``, are the format check's)."""
    layers = outcome.achieved.get("calibrated_layers") or []
    if not layers:
        return []
    names = ", ".join(layers)
    kept = outcome.achieved.get("float_layers") or []
    checks = []
    for v in exported(variants, inspected=True):
        if v.format != Format.INT8:
            continue
        float_ops = sorted({op.op for op in v.inspect.float_ops if not of_layers(op, kept)})
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


def of_layers(op: FloatOp, layers: Sequence[str]) -> bool:
    """Whether a float op of a ``.tflite`` inspection (:class:`~edgeopt.types.Inspection`) is one of
    ``layers``': a layer's name is a path component of the op's output or kernel tensor name (the rule
    the int8 format's check in :mod:`edgeopt.verify` applies)."""
    parts = {part for name in op.names for part in name.replace(";", "/").split("/")}
    return not parts.isdisjoint(layers)


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
    from edgeopt.kerasapi import tfmot

    registry = cluster_preserve_registry()

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
    and the layers named in ``left_out`` (:func:`unannotated_layers`, :func:`float_layers`), which
    stay unannotated.

    TFMOT's ``quantize_apply`` takes a partly annotated model: an unannotated layer is left as it is,
    and the output quantizer it would add before an annotated successor needs the layer in its
    registry, so user code gets no fake-quant at its edges and trains in float; the int8 converter
    then calibrates the ranges QAT did not learn on the representative data. A model input feeding
    only unannotated layers gets no input quantizer either.
    """
    from edgeopt.kerasapi import keras

    configs = default_8bit_configs()

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
    registry = default_8bit_registry().Default8BitQuantizeRegistry()
    left_out = {}
    for layer in getattr(model, "layers", []):
        reason = user_code(layer)
        if reason and not registry.supports(layer):
            left_out[layer.name] = f"{type(layer).__name__}({reason})"
    return left_out


FLOAT_FIRST = "in float: standardises each input feature"  # the reason float_layers gives


def float_layers(model) -> dict[str, str]:
    """Layers QAT keeps in float so that quantization starts after them, ``name -> "Type(reason)"``: a
    ``Normalization`` or ``Rescaling`` that takes a model input and maps its features each with its
    own mean and variance (scale and offset).

    Quantized, such a layer needs its raw input quantized with one int8 range: on features of very
    different scales (a tabular model standardising values from 1e-3 to 3e4) one step of that range
    is thousands of the small features' standard deviations, so they are erased, and the layer then
    divides the rounding by those tiny deviations (QAT's loss went from 0.11 to over 10 at once). A
    layer mapping every feature alike (pixels rescaled, a Normalization with one mean) gains nothing in
    float, its output taking one int8 range all the same: it is quantized at its output as before.
    """
    return {layer.name: f"{type(layer).__name__}({FLOAT_FIRST})" for layer in model.layers
            if type(layer).__name__ in OUTPUT_ONLY and _reads_input(layer) and _per_feature(layer)}


def _reads_input(layer) -> bool:
    """Whether an input layer feeds ``layer`` directly. Its nodes are asked, not the model's input
    tensors: a model a stage rebuilt (pruning's strip) shares the layer, whose input is the first model's."""
    from edgeopt.kerasapi import keras

    for node in layer.inbound_nodes:
        inbound = node.inbound_layers if isinstance(node.inbound_layers, list) else [node.inbound_layers]
        if any(isinstance(x, keras.layers.InputLayer) for x in inbound):
            return True
    return False


def _per_feature(layer) -> bool:
    """Whether a Normalization or Rescaling maps its features with statistics that differ."""
    if type(layer).__name__ == "Normalization":
        adapted = layer.input_mean is None  # else its mean and variance came with its configuration
        stats = ((layer.adapt_mean, layer.adapt_variance) if adapted else
                 (layer.input_mean, layer.input_variance))
    else:
        stats = (layer.scale, layer.offset)
    return any(np.unique(np.ravel(np.asarray(value, dtype=np.float64))).size > 1 for value in stats)


def refresh_state(model) -> None:
    """Have every layer recompute what it derives from its variables, after TFMOT wrote them.

    TFMOT's layout transform rebuilds the model and writes each layer's variables directly
    (``backend.batch_set_value``), not through ``set_weights``, which would call ``finalize_state``: a
    tf_keras ``Normalization`` then keeps the mean and variance tensors of its fresh build, 0 and 1, so
    the QAT model, and the int8 file converted from it, no longer standardise their input (a tabular
    model at a loss of 0.11 in float ended QAT's first epoch at 399).
    """
    from edgeopt.kerasapi import keras

    for module in model.submodules:
        if isinstance(module, keras.layers.Layer):
            module.finalize_state()


def float_first_int8(model, representative, layers: Sequence[str], *, sparse_encoding: bool = False) -> bytes:
    """The int8 file of a QAT model that computes ``layers`` (:func:`float_layers`) in float: float input
    and output, their ops kept out of quantization by TensorFlow Lite's QuantizationDebugger denylist
    (:func:`edgeopt.convert.float_layers`), every other op int8.

    The converter alone would calibrate those ops into int8 as well, and quantize the raw input with
    one range. Their ops are found by the layers' names in the model's float32 conversion.

    Raises:
        ConversionError: the converter refused the model, or sparse encoding was asked (the debugger's
            conversion cannot store it).
    """
    from edgeopt.convert import ConversionError, convert, float_layers

    kept = ", ".join(layers)
    if sparse_encoding:
        raise ConversionError(f"int8 conversion failed: the int8 file keeping {kept} in float cannot store "
                              "sparse weights; set export_options.sparse_encoding: false")
    ops = inspection(convert(model, "float32")).float_ops
    tensors = [op.tensor for op in ops if op.tensor and of_layers(op, layers)]
    if not tensors:
        raise ConversionError(f"int8 conversion failed: no op of {kept}, kept in float, found by name")
    return float_layers(model, representative, tensors, int8_io="float")


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
    from edgeopt.kerasapi import keras

    if any(isinstance(layer, keras.layers.Lambda) for layer in model.layers):
        return safe_mode_off()
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
