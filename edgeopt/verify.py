"""Checks that what a recipe asked for is really in each ``.tflite``, from the inspected variants.

:func:`run_checks` is the one call: the checks of the export formats themselves (an ``int8`` file must
compute in int8) and, for each stage, the checks its technique defines
(:meth:`edgeopt.techniques.base.Technique.checks`), so nothing here names a technique. Pure functions
of typed stage outcomes and variants (each variant carries the :func:`edgeopt.inspect.inspect_tflite`
summary in ``inspect``); a failing check makes the report ``failed`` and ``compress`` exit 1. No
TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeopt.techniques import TECHNIQUES
from edgeopt.types import Check, CheckStatus, Format, StageOutcome, Variant


def run_checks(outcomes: Sequence[StageOutcome], variants: Sequence[Variant]) -> list[Check]:
    """Every check of a run: each stage's technique checks, in stage order, then the formats' checks.

    A stage whose kind no registered technique has (a report from another edgeopt) has no checks.
    """
    checks: list[Check] = []
    for outcome in outcomes:
        technique = TECHNIQUES.get(outcome.kind)
        if technique is not None:
            checks += technique.checks(outcome, variants)
    return checks + int8_checks(variants)


def int8_checks(variants: Sequence[Variant]) -> list[Check]:
    """An int8 export must compute in int8: no float ops left."""
    checks = []
    for v in variants:
        if v.format != Format.INT8 or not v.ok:
            continue
        float_ops = v.inspect.get("float_ops") or []
        ok = not float_ops
        checks.append(Check(
            variant=v.name, check="int8_ops", expected="no float ops", measured=len(float_ops),
            status=CheckStatus.OK if ok else CheckStatus.FAIL,
            message=f"{v.name}: " + ("every op computes in int8" if ok else
                                     "float ops left: " + ", ".join(v.float_op_names())),
        ))
    return checks
