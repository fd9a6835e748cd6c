"""The LiteRT quantizer as a second post-training backend: its recipe makes one export format (int4
for the int4 recipes), per-layer overrides keep chosen layers in float, the files run in LiteRT, and
every bad stage is one line with exit 2.

facepose_mlp is trained once for the module with its recipe's own training (the figures the issue's
target is about: a model cut to a few epochs predicts little more than the mean, where any file
keeps its MAE), then compressed once per variant.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import edgeopt
from edgeopt.cli import cli

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "models/facepose_mlp/recipe.yaml"
QUICK = ["stages=[]", "benchmark.runs=5", "benchmark.warmup=1", "benchmark.min_seconds=0.05"]
LITERT = {"kind": "quantize", "mode": "ptq", "backend": "litert-quantizer"}


@pytest.fixture(scope="module")
def prepared():
    return edgeopt.prepare(edgeopt.load_recipe(RECIPE, QUICK))


@pytest.fixture(scope="module")
def int4_run(prepared, tmp_path_factory):
    result = edgeopt.compress(prepared, stages=[{**LITERT, "recipe": "weight_only_wi4_afp32"}],
                              export=["float32", "int8", "int4"])
    return result, result.save(tmp_path_factory.mktemp("int4") / "run")


def _checks(report, name: str) -> dict:
    return {c.variant: c for c in report.checks if c.check == name}


def test_int4_weights_halve_the_int8_file_and_keep_its_mae(int4_run):
    report = int4_run[0].report
    int8, int4 = report.variant("int8"), report.variant("int4")
    assert report.ok and int4.ok and int4.format == "int4"
    # int4 at most 0.6x the int8 file. Its MAE: within 0.5 degrees of int8's while the zoo recipe's
    # model predicted little better than the mean (MAE ~25); on the retuned model (int8 ~7.2) 4-bit
    # weights cost ~0.8 degrees here (docs/quantization.md), so the bound is relative: 15 %.
    assert int4.size_bytes <= 0.6 * int8.size_bytes
    assert int4.metric("mae").value <= int8.metric("mae").value * 1.15
    assert "LiteRT" in int4.metric("mae").provenance and int4.latency["local"].ok
    # Inspect reads the int4 tensors: every element a parameter, two per stored byte.
    weights = int4.inspect.weights()
    assert {t.dtype for t in weights.values()} == {"int4"}
    assert all(t.bytes == (t.size + 1) // 2 for t in weights.values())
    assert int4.params == int8.params
    assert [op.weights for op in int4.inspect.op_list if op.op == "FULLY_CONNECTED"] == ["int4"] * 4
    # int4 is checked for its weights, never against the int8 check; the int8 export still passes it.
    assert _checks(report, "int4_weights")["int4"].ok and set(_checks(report, "int8_ops")) == {"int8"}
    assert report.stages[0].achieved["format"] == "int4"


def test_edgeopt_evaluate_and_benchmark_run_the_int4_file(int4_run):
    path = str(int4_run[1] / "int4.tflite")
    evaluated = CliRunner().invoke(cli, ["evaluate", path, "--data", "facepose", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    mae = json.loads(evaluated.stdout)["metrics"]["mae"]["value"]
    assert mae == pytest.approx(int4_run[0].report.variant("int4").metric("mae").value, rel=1e-4)
    timed = CliRunner().invoke(cli, ["benchmark", path, "--runs", "5", "--warmup", "1", "--min-seconds",
                                     "0.05", "--no-xnnpack", "--json"])
    assert timed.exit_code == 0, timed.output


def test_static_wi8_ai8_through_the_backend_passes_the_int8_check(prepared):
    stage = {**LITERT, "recipe": "static_wi8_ai8"}
    report = edgeopt.compress(prepared, stages=[stage], export=["int8"]).report
    int8 = report.variant("int8")
    assert report.ok and int8.inspect.int8_op_coverage == 1.0
    assert _checks(report, "int8_ops")["int8"].ok and "static_wi8_ai8" in report.stages[0].summary
    # Calibrated on the samples' whole range, as the TFLite converter calibrates (the quantizer's own
    # moving average clipped the output in degrees: MAE 22 instead of 15.8).
    assert int8.metric("mae").value <= report.reference.metric("mae").value + 0.5


def test_a_layer_overridden_to_float_keeps_its_op_in_float(prepared):
    stage = {**LITERT, "recipe": "static_wi8_ai8", "layers": {"hidden2": "float"}}
    report = edgeopt.compress(prepared, stages=[stage], export=["int8"]).report
    info = report.variant("int8").inspect
    computes = {op.weights: [] for op in info.op_list}
    for op in info.op_list:
        if op.op == "FULLY_CONNECTED":
            computes[op.weights].append(op.compute)
    assert computes["float32"] == ["float"] and computes["int8"] == ["int8"] * 3
    assert {f.op for f in info.float_ops} == {"FULLY_CONNECTED", "TANH"}
    assert all("hidden2" in f.tensor for f in info.float_ops)
    check = _checks(report, "int8_ops")["int8"]
    assert check.ok and "hidden2" in check.message and report.ok


@pytest.mark.parametrize(("stage", "field", "says"), [
    ("{kind: quantize, mode: ptq, backend: litert-quantiser, recipe: static_wi8_ai8}", "stages[0].backend",
     "did you mean 'litert-quantizer'"),
    ("{kind: quantize, mode: ptq, backend: litert-quantizer, recipe: weight_only_wi4}", "stages[0].recipe",
     "did you mean 'weight_only_wi4_afp32'"),
    ("{kind: quantize, mode: qat, backend: litert-quantizer, recipe: weight_only_wi4_afp32}",
     "stages[0].backend", "set mode: ptq"),
    ("{kind: quantize, mode: ptq, backend: litert-quantizer, recipe: weight_only_wi4_afp32, "
     "layers: {hiden2: float}}", "stages[0].layers",
     "hiden2 is not a layer of the model (did you mean 'hidden2'?)"),
], ids=["unknown-backend", "unknown-recipe", "qat", "unknown-layer"])
def test_bad_stages_are_one_line_and_exit_2(prepared, tmp_path, stage, field, says):
    # prepared: TensorFlow is already loaded, so the layer check (it needs the model) costs no import.
    result = CliRunner().invoke(cli, [
        "compress", str(RECIPE), "--out", str(tmp_path / "out"), "--quiet", "--set", "train.epochs=0",
        "--set", f"stages=[{stage}]", "--set", "export=[float32, int4]", *[f"--set={s}" for s in QUICK[1:]]])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and says in lines[0], lines
    assert not (tmp_path / "out").exists()
