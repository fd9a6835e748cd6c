"""End to end on real TFMOT, converter and LiteRT: a short digits recipe, checked in the .tflite."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.cli import cli

pytestmark = pytest.mark.integration

SHORT = [
    "--set",
    "train.epochs=12",
    "--set",
    "stages.0.epochs=4",
    "--set",
    "stages.1.epochs=2",
    "--set",
    "benchmark.runs=20",
    "--set",
    "benchmark.min_seconds=0.1",
    "--set",
    "benchmark.warmup=2",
]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = CliRunner().invoke(
        cli, ["compress", "models/digits_cnn/recipe.yaml", "--out", str(out), "--quiet", *SHORT]
    )
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "report.json").read_text())


def test_outputs_are_complete(digits_run):
    out, report = digits_run
    for name in (
        "report.json",
        "report.md",
        "recipe.resolved.yaml",
        "model.keras",
        "trained_float32.tflite",
        "float32.tflite",
        "int8.tflite",
    ):
        assert (out / name).is_file(), name
    assert not list(out.parent.glob(".digits.tmp-*")), "temporary folder left behind"
    assert report["schema_version"] == 1 and report["status"] == "ok"
    assert report["environment"]["litert"] and report["recipe"]["stages"][0]["target_sparsity"] == 0.8


def test_pruned_qat_int8_tflite_keeps_sparsity_int8_weights_and_accuracy(digits_run):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    out, report = digits_run
    variant = next(v for v in report["variants"] if v["name"] == "int8")
    # Without the default XNNPACK delegate, which packs the weights away from get_tensor().
    interpreter = Interpreter(
        model_path=str(out / "int8.tflite"),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    int8_tensors = [t for t in interpreter.get_tensor_details() if t["dtype"] == np.int8]
    largest = max(int8_tensors, key=lambda t: int(np.prod(t["shape"])))  # the 1024x64 dense kernel
    assert tuple(largest["shape"]) == (64, 1024)
    assert np.mean(interpreter.get_tensor(largest["index"]) == 0) >= 0.8 - 0.02
    big = {k: t for k, t in variant["inspect"]["per_tensor"].items() if t["size"] >= 1000}
    assert big and all(t["dtype"] == "int8" and t["sparsity"] >= 0.78 for t in big.values()), big
    assert variant["sparsity"] >= 0.8 * 0.99 - 0.02
    assert variant["metrics"]["accuracy"]["value"] >= 0.9
    assert variant["latency"]["local"]["status"] == "ok" and variant["latency"]["local"]["p50_ms"] > 0
    assert all(c["status"] == "ok" for c in report["checks"])


def test_bad_model_path_is_exit_2_and_leaves_nothing(tmp_path):
    bogus = tmp_path / "model.keras"
    bogus.write_text("not a model")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["compress", "--set", f"model={bogus}", "--set", "data=digits", "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert "not a saved Keras model" in result.output and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_saved_model_can_be_compressed_again(digits_run, tmp_path):
    out, _ = digits_run
    result = CliRunner().invoke(
        cli,
        [
            "compress",
            "--set",
            f"model={out / 'model.keras'}",
            "--set",
            "data=digits",
            "--set",
            "train.epochs=0",
            "--set",
            "export=[float32]",
            "--set",
            "benchmark.targets=[]",
            "--out",
            str(tmp_path / "again"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "again" / "report.json").read_text())
    assert report["variants"][-1]["metrics"]["accuracy"]["value"] >= 0.9


def test_untrained_zoo_references_are_marked_in_the_report(tmp_path):
    out = tmp_path / "out"
    args = ["model=digits_cnn", "data=digits", "train.epochs=0", "export=[float32]",
            "benchmark.runs=5", "benchmark.warmup=1", "benchmark.min_seconds=0"]
    sets = [x for a in args for x in ("--set", a)]
    result = CliRunner().invoke(cli, ["compress", *sets, "--out", str(out)])
    assert result.exit_code == 0, result.output
    variants = {v["name"]: v for v in json.loads((out / "report.json").read_text())["variants"]}
    for name in ("keras_float", "trained_float32"):
        assert variants[name]["note"].startswith("untrained: train.epochs is 0")
    assert "note" not in variants["float32"]
    assert "ok (untrained: train.epochs is 0" in (out / "report.md").read_text()
