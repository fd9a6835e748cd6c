"""Quantization-aware training (QAT) as a recipe stage.

Annotates the whole model and applies TFMOT's 8-bit QAT. When a prune stage came earlier, the
prune-preserving scheme is chosen automatically, so fine-tuning keeps the zeros that plain QAT
would fill back in. The wrapped model is exported as it is: the converter reads the learned
quantization ranges from it, so ``strip`` is the identity.
"""

from __future__ import annotations

from edgeopt.errors import InputError
from edgeopt.kerasapi import tfmot
from edgeopt.recipe import QuantizeStage
from edgeopt.techniques import StageContext, skipped_summary

_quant = tfmot.quantization.keras


def scheme_for(earlier: tuple[str, ...]):
    """The QAT scheme that preserves what the earlier stages achieved (None: TFMOT's default)."""
    if "prune" in earlier:
        return tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    return None


def scheme_name(earlier: tuple[str, ...]) -> str:
    return "prune_preserving" if "prune" in earlier else "default_8bit"


def apply(model, stage: QuantizeStage, ctx: StageContext):
    """Wrap ``model`` for quantization-aware training."""
    try:
        annotated = _quant.quantize_annotate_model(model)
        with _quant.quantize_scope():
            scheme = scheme_for(ctx.earlier)
            return _quant.quantize_apply(annotated, scheme) if scheme else _quant.quantize_apply(annotated)
    except (ValueError, RuntimeError) as exc:
        raise InputError(
            f"stages[{ctx.stage_index}] quantize: TFMOT cannot apply QAT to this model: {exc}"
        ) from None


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
    counts, summary = skipped_summary(skipped, "quantization-aware")
    return {"achieved": {"scheme": scheme_name(ctx.earlier)}, "skipped_layers": counts, "summary": summary}
