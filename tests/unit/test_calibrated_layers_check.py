"""The QAT stage's check on the layers it left to the converter's calibration (no TensorFlow here)."""

from __future__ import annotations

from edgeopt.techniques import TECHNIQUES
from edgeopt.techniques.base import stage_outcome
from edgeopt.techniques.quantize import QuantizeStage
from edgeopt.types import StageOutcome, Variant
from edgeopt.verify import run_checks


def _outcome(calibrated: list[str]) -> StageOutcome:
    achieved = {"scheme": "default_8bit", **({"calibrated_layers": calibrated} if calibrated else {})}
    return stage_outcome(QuantizeStage(), {}, achieved)


def _int8(float_ops: list[dict]) -> Variant:
    inspect = {"float_ops": float_ops, "int8_op_coverage": 0.5 if float_ops else 1.0}
    return Variant(name="int8", format="int8", inspect=inspect)


def test_layers_left_to_calibration_that_run_in_int8_pass_and_are_named():
    (check,) = TECHNIQUES["quantize"].checks(_outcome(["squared"]), [_int8([])])
    assert check.ok and check.check == "calibrated_layers"
    assert "squared" in check.message and "calibration" in check.message


def test_float_ops_next_to_layers_left_to_calibration_fail_naming_op_and_layers():
    variants = [_int8([{"index": 1, "op": "SQUARE"}])]
    checks = {c.check: c for c in run_checks([_outcome(["tfsquare"])], variants)}
    calibrated = checks["calibrated_layers"]
    assert not calibrated.ok and calibrated.measured == 1
    assert "SQUARE" in calibrated.message and "tfsquare" in calibrated.message
    assert not checks["int8_ops"].ok  # the format's own check still fails too


def test_a_fully_annotated_model_adds_no_check():
    assert TECHNIQUES["quantize"].checks(_outcome([]), [_int8([])]) == []


def test_float_ops_of_a_layer_qat_kept_in_float_fail_neither_check():
    achieved = {"scheme": "default_8bit", "calibrated_layers": ["squared"], "float_layers": ["norm"],
                "format": "int8"}
    norm = [{"index": 0, "op": "SUB", "tensor": "m/norm/sub"},
            {"index": 1, "op": "MUL", "tensor": "m/norm/mul"}]
    checks = {c.check: c for c in run_checks([stage_outcome(QuantizeStage(), {}, achieved)], [_int8(norm)])}
    assert checks["calibrated_layers"].ok and checks["int8_ops"].ok, checks
    stray = [*norm, {"index": 2, "op": "SQUARE", "tensor": "m/squared/Square"}]
    checks = {c.check: c for c in run_checks([stage_outcome(QuantizeStage(), {}, achieved)], [_int8(stray)])}
    assert not checks["calibrated_layers"].ok and "SQUARE" in checks["calibrated_layers"].message
    assert "MUL" not in checks["calibrated_layers"].message and not checks["int8_ops"].ok
