"""`local` benchmarking through the child-process runner, on tiny real .tflite models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.bench import benchmark, make_spec, measure
from edgeopt.bench.local import RUNNER_PATH
from edgeopt.bench.stats import LATENCY_FIELDS
from edgeopt.cli import cli
from edgeopt.errors import InputError

pytestmark = pytest.mark.integration

FAST = {"runs": 20, "warmup": 2, "min_seconds": 0.05}
FAST_SPEC = make_spec(FAST)


def build_tiny_models(folder: Path) -> dict[str, Path]:
    """A float32 and an int8 .tflite of a small conv net on 8x8x1 inputs."""
    from edgeopt.kerasapi import keras, tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    paths = {"float32": folder / "tiny_float32.tflite", "int8": folder / "tiny_int8.tflite"}
    paths["float32"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(16):
            yield [rng.uniform(-1, 1, (1, 8, 8, 1)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    paths["int8"].write_bytes(converter.convert())
    return paths


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_models(tmp_path_factory.mktemp("bench_models"))


def test_local_measure_returns_every_schema_field_with_consistent_statistics(tiny):
    entry = measure(tiny["float32"], "local", FAST_SPEC).to_json()
    assert list(entry)[: len(LATENCY_FIELDS)] == list(LATENCY_FIELDS)
    assert entry["status"] == "ok" and entry["reason"] is None
    assert entry["provenance"] == "measured" and entry["delegate"] == "xnnpack"
    assert entry["runs"] >= 20 and entry["warmup"] >= 2
    assert 0 < entry["min_ms"] <= entry["p50_ms"] <= entry["p90_ms"] <= entry["p99_ms"]
    assert entry["runtime"].startswith("ai_edge_litert ")
    assert entry["peak_rss_mb"] > 10 and entry["init_ms"] > 0 and entry["first_invoke_ms"] > 0


def test_peak_memory_is_the_runners_own_not_that_of_the_process_that_started_it(tiny):
    from edgeopt.bench import local

    held = bytearray(300 * 2**20)  # the caller holds 300 MB, as the pipeline holds TensorFlow
    held[::4096] = b"\x01" * len(held[::4096])
    local.stop()  # so that the runner starts now, from the larger caller
    entry = measure(tiny["int8"], "local", FAST_SPEC)
    del held
    assert entry.status == "ok" and 10 < entry.peak_rss_mb < 250  # Python + numpy + LiteRT + model


def test_runner_honours_min_seconds_and_no_xnnpack(tiny):
    out = subprocess.run([sys.executable, str(RUNNER_PATH), str(tiny["int8"]), "--runs", "5",
                          "--min-seconds", "0.3", "--no-xnnpack", "--threads", "2"],
                         capture_output=True, text=True, timeout=60, check=True)
    entry = json.loads(out.stdout)
    assert entry["delegate"] == "none" and entry["threads"] == 2
    # More than the 5 asked-for runs: the loop kept timing until 0.3 s had passed (the sum of the
    # invoke times is below the wall time by the loop's own per-iteration overhead).
    assert entry["runs"] > 5 and entry["runs"] * entry["mean_ms"] >= 300 * 0.5


def test_runner_uses_given_inputs_and_rejects_wrong_shapes(tiny, tmp_path):
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((3, 8, 8, 1), np.float32))  # a dataset: the first sample is used
    outputs = tmp_path / "y.npz"
    subprocess.run([sys.executable, str(RUNNER_PATH), str(tiny["float32"]), "--inputs", str(inputs),
                    "--dump-outputs", str(outputs), "--runs", "1", "--min-seconds", "0"],
                   capture_output=True, timeout=60, check=True)
    from ai_edge_litert.interpreter import Interpreter

    reference = Interpreter(model_path=str(tiny["float32"]))
    reference.allocate_tensors()
    reference.set_tensor(reference.get_input_details()[0]["index"], np.zeros((1, 8, 8, 1), np.float32))
    reference.invoke()
    expected = reference.get_tensor(reference.get_output_details()[0]["index"])
    np.testing.assert_allclose(np.load(outputs)["output_0"], expected, rtol=1e-5, atol=1e-6)

    np.save(inputs, np.zeros((1, 9, 8, 1), np.float32))
    with pytest.raises(InputError, match=r"expects shape \[1, 8, 8, 1\].*\[1, 9, 8, 1\]"):
        measure(tiny["float32"], "local", make_spec({**FAST, "inputs": str(inputs)}))


def test_bad_model_files_raise_input_error_naming_the_problem(tiny, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        measure(tmp_path / "missing.tflite")
    text = tmp_path / "notes.tflite"
    text.write_text("not a model at all")
    with pytest.raises(InputError, match="not a TFLite flatbuffer"):
        measure(text)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tiny["float32"].read_bytes()[:200])
    with pytest.raises(InputError, match="truncated.tflite.*(not a valid|could not load)"):
        measure(truncated, **FAST)


def test_crashing_runtime_is_a_failed_row_not_an_exception(tiny, tmp_path, monkeypatch):
    # A runtime that dies from a signal mid-run stands in for a kernel segfault: the same
    # child-process boundary must turn it into a failed entry.
    crashing = tmp_path / "sitecustomize.py"
    crashing.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    entry = measure(tiny["float32"], "local", FAST_SPEC, threads=2)
    assert entry.status == "failed" and "SIGSEGV" in entry.reason
    assert entry.p50_ms is None and entry.threads == 2 and entry.provenance == "measured"


def test_each_local_measurement_has_a_fresh_process_started_ahead_of_it(tiny):
    from edgeopt import bench
    from edgeopt.bench import local

    local.stop()
    bench.start(FAST_SPEC)  # before the first measurement: the caller's work overlaps its start
    first = local._Ahead.process
    assert first is not None and first.poll() is None  # loading numpy and the runtime, or waiting
    assert measure(tiny["int8"], "local", FAST_SPEC).status == "ok"
    assert first.wait(timeout=10) == 0  # it measured once and exited
    second = local._Ahead.process  # the next measurement's, already started
    assert second is not None and second.pid != first.pid and second.poll() is None
    assert measure(tiny["float32"], "local", FAST_SPEC).status == "ok"
    assert second.wait(timeout=10) == 0
    local.stop()
    assert local._Ahead.process is None


def test_runner_started_ahead_reads_its_arguments_and_folder_from_stdin(tiny):
    request = {"args": [tiny["int8"].name, "--runs", "3", "--min-seconds", "0"],
               "cwd": str(tiny["int8"].parent)}
    command = [sys.executable, str(RUNNER_PATH), "--args-on-stdin"]
    out = subprocess.run(command, input=json.dumps(request) + "\n", capture_output=True, text=True,
                         timeout=60, check=True)
    entry = json.loads(out.stdout)  # the model's path was relative to the caller's folder
    assert entry["status"] == "ok" and entry["runs"] >= 3
    unused = subprocess.run(command, input="", capture_output=True, text=True, timeout=60)
    assert unused.returncode == 0 and unused.stdout == ""  # not needed after all: ends quietly


def test_a_measurement_past_its_timeout_is_a_failed_row_and_the_next_one_runs(tiny):
    slow = make_spec({"runs": 1, "warmup": 0, "min_seconds": 60, "timeout": 1})
    entry = measure(tiny["int8"], "local", slow)
    assert entry.status == "failed" and "did not finish within 1 s" in entry.reason
    assert measure(tiny["int8"], "local", FAST_SPEC).status == "ok"


def test_grid_keeps_good_rows_when_one_model_is_bad(tiny, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    result = benchmark([tiny["int8"], bad], make_spec({**FAST, "threads": [1, 2]}))
    assert [(Path(r["model"]).name, r["threads"], r["status"]) for r in result.rows] == [
        ("tiny_int8.tflite", 1, "ok"), ("tiny_int8.tflite", 2, "ok"),
        ("bad.tflite", 1, "failed"), ("bad.tflite", 2, "failed")]
    assert result.exit_code == 2


def test_custom_op_the_runtime_lacks_is_named_with_exit_2(tmp_path):
    from edgeopt.kerasapi import tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)], autograph=False)
    def special(x):
        return tf.math.bessel_i1e(x) + 1.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions([special.get_concrete_function()], special)
    converter.allow_custom_ops = True
    model = tmp_path / "custom.tflite"
    model.write_bytes(converter.convert())
    result = CliRunner().invoke(cli, ["benchmark", str(model), "--runs", "1"])
    assert result.exit_code == 2
    assert result.stderr == (f"edgeopt: error: {model}: the model uses custom op 'BesselI1e', "
                             "which this runtime does not provide\n")


def test_cli_table_json_and_out_folder(tiny, tmp_path):
    args = ["benchmark", str(tiny["float32"]), str(tiny["int8"]), "--threads", "1,2", "--runs", "5",
            "--warmup", "1", "--min-seconds", "0.02", "--out", str(tmp_path)]
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["model", "target", "threads", "provenance"]
    assert sum("tiny_int8.tflite" in line and " local " in line for line in lines) == 2
    assert "local: measured, " in table.stdout
    document = json.loads((tmp_path / "benchmark.json").read_text())
    assert [(Path(r["model"]).name, r["threads"]) for r in document["rows"]] == [
        ("tiny_float32.tflite", 1), ("tiny_float32.tflite", 2),
        ("tiny_int8.tflite", 1), ("tiny_int8.tflite", 2)]
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    as_json = CliRunner().invoke(cli, [*args, "--overwrite", "--json", "--threads", "1"])
    assert as_json.exit_code == 0 and len(json.loads(as_json.stdout)["rows"]) == 2


@pytest.mark.parametrize(("extra", "message"), [
    (["--threads", "1,x"], "positive integers"),
    (["--target", "qemu:cortex-m4"], "unknown qemu target"),
    (["--runs", "0"], "--runs"),
])
def test_cli_rejects_bad_options_with_exit_2(tiny, extra, message):
    result = CliRunner().invoke(cli, ["benchmark", str(tiny["float32"]), *extra])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_keyword_settings_still_measure_and_return_the_json_dict(tiny):
    entry = measure(tiny["int8"], "local", threads=2, use_xnnpack=False, seed=3, **FAST)
    assert isinstance(entry, dict) and list(entry)[: len(LATENCY_FIELDS)] == list(LATENCY_FIELDS)
    assert entry["status"] == "ok" and entry["threads"] == 2 and entry["delegate"] == "none"
