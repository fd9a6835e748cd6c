"""Checks that what a recipe asked for is really in each ``.tflite``, from the inspected variants.

:func:`run_checks` is the one call: the checks of the export formats themselves (an ``int8`` file must
compute in int8, an ``int4`` file store its weights in int4, but for the layers a stage's outcome says
it kept in float or gave another recipe: its ``format``, ``float_layers`` and ``layers``) and, for each
stage, the checks its technique defines
(:meth:`edgeopt.techniques.base.Technique.checks`), so nothing here names a technique. Pure functions
of typed stage outcomes and variants (each variant carries the :func:`edgeopt.inspect.inspect_tflite`
summary in ``inspect``); a failing check makes the report ``failed`` and ``compress`` exit 1. No
TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edgeopt.techniques import TECHNIQUES
from edgeopt.types import Check, CheckStatus, FloatOp, Format, StageOutcome, Variant, finite


def run_checks(outcomes: Sequence[StageOutcome], variants: Sequence[Variant],
               training: Mapping[str, Sequence[float]] | None = None) -> list[Check]:
    """Every check of a run: each stage's technique checks, in stage order, then the formats' checks,
    then whether a stage's fine-tuning loss exploded (:func:`loss_checks`, given the ``training`` history).

    A stage whose kind no registered technique has (a report from another edgeopt) has no checks.
    """
    checks: list[Check] = []
    for outcome in outcomes:
        technique = TECHNIQUES.get(outcome.kind)
        if technique is not None:
            checks += technique.checks(outcome, variants)
    # What a stage asked of the one export format it made itself (the LiteRT quantizer's, or the int8
    # file of quantization-aware training, which keeps the standardisation of an input in float).
    asked = {o.achieved["format"]: o.achieved for o in outcomes if o.achieved.get("format")}
    kept = {fmt: list(a.get("float_layers") or []) for fmt, a in asked.items()}
    overridden = {fmt: list(a.get("layers") or {}) for fmt, a in asked.items()}
    return (checks + int8_checks(variants, kept) + int4_checks(variants, overridden)
            + loss_checks(outcomes, training or {}))


def _layer_of(names: Sequence[str | None], layers: Sequence[str]) -> str | None:
    """The first of ``layers`` that is a path component of one of the tensor ``names``."""
    parts = {part for name in names for part in str(name or "").replace(";", "/").split("/")}
    return next((layer for layer in layers if layer in parts), None)


def _mixed_precision_check(v: Variant, float_ops: Sequence[FloatOp], kept: Sequence[str], by: str) -> Check:
    """The float ops of an int8 file are exactly those of the layers kept in float on purpose (by
    ``by``): an op is a layer's when the layer names its output or its kernel tensor."""
    stray = [op.op for op in float_ops if _layer_of(op.names, kept) is None]
    ok = not stray
    names = ", ".join(kept)
    return Check(
        variant=v.name, check="int8_ops", expected=f"int8 but for {names}", measured=len(float_ops),
        status=CheckStatus.OK if ok else CheckStatus.FAIL,
        message=f"{v.name}: " + (f"every op computes in int8 but the {len(float_ops)} of {names}, kept in "
                                 f"float by {by}" if ok else
                                 f"float ops outside the layers kept in float ({names}): {', '.join(stray)}"))


def int4_checks(variants: Sequence[Variant], overridden: Mapping[str, Sequence[str]] | None = None
                ) -> list[Check]:
    """An int4 export must store its weights in int4: every weight tensor, but those of the layers the
    stage that made it gave another recipe or kept in float (``overridden``: format -> layers)."""
    checks = []
    for v in variants:
        if v.format != Format.INT4 or not v.ok:
            continue
        layers = list((overridden or {}).get(v.format) or [])
        weights = {name: t.dtype for name, t in v.inspect.weights().items()}
        int4 = sum(dtype == "int4" for dtype in weights.values())
        other = sorted(name for name, dtype in weights.items()
                       if dtype != "int4" and _layer_of([name], layers) is None)
        ok = int4 > 0 and not other
        but = f" but for {', '.join(layers)}" if layers else ""
        checks.append(Check(
            variant=v.name, check="int4_weights", expected="int4 weights" + but, measured=int4,
            status=CheckStatus.OK if ok else CheckStatus.FAIL,
            message=f"{v.name}: " + (
                f"{int4} of {len(weights)} weight tensors stored in int4{but}; activations stay float"
                if ok else "no weight tensor is int4" if not int4 else
                f"weights not in int4: {', '.join(f'{n} ({weights[n]})' for n in other[:5])}"
                + (f" and {len(other) - 5} more" if len(other) > 5 else "")),
        ))
    return checks


# A stage that leaves the loss this many times above the loss it started from, and higher by more
# than LOSS_JUMP_MARGIN, exploded rather than took the dip a new mask or fake-quant brings.
LOSS_JUMP_FACTOR = 10.0
LOSS_JUMP_MARGIN = 1.0


def loss_checks(outcomes: Sequence[StageOutcome], training: Mapping[str, Sequence[float]]) -> list[Check]:
    """A stage whose fine-tuning ends with a loss an order of magnitude above the loss it started
    from (the last epoch before it: the training's or the previous stage's) fails, so it is never
    kept silently. Its last epoch is judged, the loss of the model it hands on: removing channels
    wrecks the first epochs by design, and a spike the stage recovered from ships nothing. A
    first stage after no training has nothing to compare with and is not judged."""
    checks: list[Check] = []
    before = _last_loss(training)
    for index, outcome in enumerate(outcomes):
        losses = [x for x in _loss_curve(outcome.history) if finite(x) is not None]
        if before is not None and losses:
            last = losses[-1]
            jumped = last > LOSS_JUMP_FACTOR * before and last > before + LOSS_JUMP_MARGIN
            where = f"stage {index + 1} ({outcome.kind})"
            checks.append(Check(
                variant=where, check="loss_jump", expected=f"<= {LOSS_JUMP_FACTOR:g}x {before:.4g}",
                measured=round(last, 6), status=CheckStatus.FAIL if jumped else CheckStatus.OK,
                message=(f"{where}: the fine-tuning loss jumped from {before:.3g} to {last:.3g} "
                         f"(epoch {len(losses)}, the last; worst {max(losses):.3g}); lower "
                         f"stages[{index}].learning_rate, or quantize without training (mode: ptq)")
                if jumped else f"{where}: fine-tuning loss {last:.3g} at its end, from {before:.3g}"))
        before = _last_loss(outcome.history) or before
    return checks


def _loss_curve(history: Mapping[str, Sequence[float]]) -> Sequence[float]:
    """The loss on the labels: a distilled fine-tune's ``loss`` adds the teacher's term (its
    temperature squared times a divergence, another scale), so its ``label_loss`` is what compares
    with the loss before it."""
    return history.get("label_loss") or history.get("loss") or []


def _last_loss(history: Mapping[str, Sequence[float]]) -> float | None:
    losses = [x for x in _loss_curve(history) if finite(x) is not None]
    return float(losses[-1]) if losses else None


def int8_checks(variants: Sequence[Variant], kept_by_stage: Mapping[str, Sequence[str]] | None = None
                ) -> list[Check]:
    """An int8 export must compute in int8: no float ops left, but for the layers kept in float on
    purpose, by a repair (``extra.float_layers``) or by the stage that made the format
    (``kept_by_stage``: format -> layers), whose ops must then be the only float ones."""
    checks = []
    for v in variants:
        if v.format != Format.INT8 or not v.ok:
            continue
        float_ops = v.inspect.float_ops
        kept = v.extra.get("float_layers") or []
        by = "the repair"
        if not kept:
            kept, by = list((kept_by_stage or {}).get(v.format) or []), "the quantize stage"
        if kept:
            checks.append(_mixed_precision_check(v, float_ops, kept, by))
            continue
        ok = not float_ops
        checks.append(Check(
            variant=v.name, check="int8_ops", expected="no float ops", measured=len(float_ops),
            status=CheckStatus.OK if ok else CheckStatus.FAIL,
            message=f"{v.name}: " + ("every op computes in int8" if ok else
                                     "float ops left: " + ", ".join(v.float_op_names())),
        ))
    return checks
