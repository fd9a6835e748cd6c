"""Quantization-aware training keeps its accuracy on a model that standardises its own inputs.

A Keras 3 tabular MLP whose first layer is a Normalization adapted on features of very different
scales (1e-3 to 1e4) runs through ``--preset prune-qat-int8``. QAT leaves that Normalization in float
with no fake-quant on the raw input (one int8 range for it would erase the small features), so its loss
stays where pruning left it and the int8 file, which takes float input and computes only the
Normalization's ops in float, keeps the original's accuracy; the stage outcome lists the layer. The QAT
model also standardises as the float model does: TFMOT's rebuild used to leave the Normalization's
mean and variance at 0 and 1.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.cli import cli

pytestmark = pytest.mark.integration

# Pruning to 30 % here, not the preset's 50 %: this small MLP loses a few test rows to 50 % zeros in
# float already, and what is under test is what QAT adds.
SPARSITY = "stages.0.target_sparsity=0.3"


@pytest.fixture(scope="module")
def compressed(tabular):
    out = tabular / "out"
    result = CliRunner().invoke(cli, ["compress", "--preset", "prune-qat-int8", "--model",
                                      str(tabular / "tab.keras"), "--data", str(tabular / "tab.csv"),
                                      "--out", str(out), "--quiet", "--json", "--set", SPARSITY])
    return result, out


def test_qat_loss_stays_put_and_int8_keeps_the_accuracy(compressed):
    result, _ = compressed
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    prune, qat = report["stages"]
    start = prune["history"]["loss"][-1]  # the loss QAT starts from
    assert max(qat["history"]["loss"]) <= 10 * start, qat["history"]
    accuracy = {v["name"]: v["metrics"]["accuracy"]["value"] for v in report["variants"]}
    assert accuracy["original"] - accuracy["int8"] <= 0.02, accuracy
    checks = {(c["check"], c["variant"]): c for c in report["checks"]}
    assert checks[("loss_jump", "stage 2 (quantize)")]["status"] == "ok"


def test_the_int8_file_computes_only_the_normalization_in_float(compressed):
    from edgeopt.inspect import inspect_tflite

    result, out = compressed
    report = json.loads(result.stdout)
    qat = report["stages"][1]
    assert qat["achieved"]["float_layers"] == ["norm"], qat
    assert "Normalization(in float: standardises each input feature)" in qat["skipped_layers"]
    info = inspect_tflite(out / "int8.tflite")
    float_ops = info["float_ops"]
    assert sorted(op["op"] for op in float_ops) == ["MUL", "SUB"], float_ops
    assert all("norm" in op["tensor"].replace(";", "/").split("/") for op in float_ops), float_ops
    computed = {op["op"]: op["compute"] for op in info["op_list"] if op["op"] == "FULLY_CONNECTED"}
    assert computed == {"FULLY_CONNECTED": "int8"}
    assert [d["dtype"] for d in info["input_details"]] == ["float32"]
    check = next(c for c in report["checks"] if c["check"] == "int8_ops" and c["variant"] == "int8")
    assert check["status"] == "ok" and "norm" in check["message"], check


def test_the_qat_model_standardises_its_input_as_the_float_model_does(tabular):
    import edgeopt
    from edgeopt.data import load_dataset
    from edgeopt.pipeline import load_model
    from edgeopt.techniques import TECHNIQUES, StageContext

    recipe = edgeopt.load_recipe(preset="prune-qat-int8", model=str(tabular / "tab.keras"),
                                 data=str(tabular / "tab.csv"))
    loaded, data = load_model(recipe, load_dataset(recipe.data))
    model = loaded.model
    x = data.x_test[:64]
    expected = np.asarray(model(x, training=False))
    ctx = StageContext(data=data, train=recipe.train, seed=0, stage_index=1, earlier=("prune",))
    wrapped = TECHNIQUES["quantize"].apply(model, recipe.stages[1], ctx)
    assert "QuantizeLayer" not in [type(layer).__name__ for layer in wrapped.layers]  # none on the raw input
    got = np.asarray(wrapped(x, training=False))
    assert np.abs(got - expected).max() <= 0.05 * np.abs(expected).max()
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.98
