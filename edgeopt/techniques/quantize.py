"""Quantization as a recipe stage: quantization-aware training (``qat``) or post-training (``ptq``).

``qat`` annotates the whole model and applies TFMOT's 8-bit QAT, choosing the collaborative scheme
automatically: prune-preserving after a prune stage, cluster-preserving after a cluster stage, and
both after prune then cluster, so fine-tuning keeps the zeros and the shared values that plain QAT
would dissolve (``preserve: none`` forces plain QAT, for comparison). ``ptq`` trains nothing: the int8
export calibrates on representative data. The QAT model is exported as it is: the converter reads
the learned quantization ranges from it, so ``strip`` is the identity.
"""

from __future__ import annotations

import numpy as np

from edgeopt.errors import InputError
from edgeopt.kerasapi import keras, tfmot
from edgeopt.recipe import QuantizeStage
from edgeopt.techniques import StageContext, skipped_summary

_quant = tfmot.quantization.keras


def scheme_for(earlier: tuple[str, ...], preserve: str = "auto"):
    """The QAT scheme that preserves what the earlier stages achieved (None: TFMOT's default).

    After clustering: cluster-preserving (and sparsity-preserving too when a prune stage came before
    it); after pruning alone: prune-preserving; ``preserve='none'`` forces plain QAT.
    """
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


def scheme_name(earlier: tuple[str, ...], preserve: str = "auto", mode: str = "qat") -> str:
    if mode == "ptq":
        return "post_training_int8"
    if preserve == "none":
        return "default_8bit"
    if "cluster" in earlier:
        return "prune_cluster_preserving" if "prune" in earlier else "cluster_preserving"
    return "prune_preserving" if "prune" in earlier else "default_8bit"


def unsupported_layers(model) -> list[str]:
    """User-defined layers TFMOT's default 8-bit QAT cannot quantize, as ``name (Class)``."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry_module,
    )

    registry = registry_module.Default8BitQuantizeRegistry()
    # Built-in layers the registry does not list (BatchNormalization after a convolution, ...) are
    # handled by TFMOT's layout transforms; only user-defined layers are known to fail.
    return [f"{layer.name} ({type(layer).__name__})" for layer in getattr(model, "layers", [])
            if not isinstance(layer, keras.layers.InputLayer) and not registry.supports(layer)
            and not type(layer).__module__.startswith(("tf_keras.", "keras."))]


def apply(model, stage: QuantizeStage, ctx: StageContext):
    """Wrap ``model`` for quantization-aware training (``ptq``: return it unchanged)."""
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
    try:
        annotated = _quant.quantize_annotate_model(model)
        with _quant.quantize_scope():
            scheme = scheme_for(ctx.earlier, stage.preserve)
            wrapped = _quant.quantize_apply(annotated, scheme) if scheme else _quant.quantize_apply(annotated)
    except (ValueError, RuntimeError) as exc:
        raise InputError(
            f"stages[{ctx.stage_index}] quantize: TFMOT cannot apply QAT to this model: {exc}"
        ) from None
    warm_start_ranges(wrapped, ctx.data.representative(count=1024, seed=ctx.seed))
    return wrapped


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


def callbacks(stage: QuantizeStage, ctx: StageContext) -> list:
    return []


def strip(model):
    return model


def scope():
    return _quant.quantize_scope()


def report(stripped, stage: QuantizeStage, ctx: StageContext) -> dict:
    skipped = {
        layer.name: type(layer).__name__
        for layer in stripped.layers
        if layer.weights
        and not isinstance(layer, _quant.QuantizeWrapper)
        and type(layer).__name__ not in ("QuantizeLayer",)
    }
    achieved = {"scheme": scheme_name(ctx.earlier, stage.preserve, stage.mode)}
    if stage.mode == "ptq":
        summary = "post-training: nothing trained; each int8 export calibrates on representative data"
        return {"achieved": achieved, "skipped_layers": {}, "summary": summary}
    counts, summary = skipped_summary(skipped, "quantization-aware")
    return {"achieved": achieved, "skipped_layers": counts, "summary": summary}
