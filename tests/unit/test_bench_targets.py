"""Target parsing, runner output classification and entry tidying: no TensorFlow, no child processes."""

from __future__ import annotations

import json
import math

import pytest

from edgeopt.bench import check_model, parse_target
from edgeopt.bench.local import MeasurementFailed, parse_runner_output
from edgeopt.bench.ssh import explain_ssh_failure, parse_ssh_target
from edgeopt.bench.stats import LATENCY_FIELDS, failed_entry, table_rows, tidy
from edgeopt.errors import EnvironmentProblem, InputError


@pytest.mark.parametrize(("text", "kind", "spec", "provenance"), [
    ("local", "local", "", "measured"),
    ("ssh://pi@raspberrypi", "ssh", "pi@raspberrypi", "measured"),
    ("ssh://board:2222", "ssh", "board:2222", "measured"),
    ("qemu:cortex-a72", "qemu", "cortex-a72", "emulated"),
    ("estimate:pi5", "estimate", "pi5", "estimated"),
])
def test_known_targets_parse_with_their_provenance(text, kind, spec, provenance):
    target = parse_target(text)
    assert (target.kind, target.spec, target.provenance) == (kind, spec, provenance)


@pytest.mark.parametrize(("text", "message"), [
    ("locl", "did you mean 'local'"),
    ("qemu:cortex-a9", "qemu:cortex-a53, qemu:cortex-a72, qemu:cortex-a76"),
    ("estimate:pi2", "estimate:pi3, estimate:pi4, estimate:pi5"),
    ("ssh://", "unknown target"),
    ("ssh://pi@host:99999", "bad SSH target"),
    ("ssh://-oProxyCommand=x", "bad SSH target"),
])
def test_bad_targets_are_input_errors_naming_the_accepted_forms(text, message):
    with pytest.raises(InputError, match=message):
        parse_target(text)


def test_ssh_target_parts_including_ipv6():
    assert parse_ssh_target("ssh://pi@[::1]:2200") == parse_ssh_target("ssh://pi@[::1]:2200/")
    target = parse_ssh_target("ssh://pi@[::1]:2200")
    assert (target.user, target.host, target.port, target.label) == ("pi", "::1", 2200, "pi@::1:2200")


def test_check_model_rejects_files_without_the_tflite_identifier(tmp_path):
    good = tmp_path / "m.tflite"
    good.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 16)
    assert check_model(good) == good
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"\x08\x07\x12\x04onnx")
    with pytest.raises(InputError, match="not a TFLite flatbuffer"):
        check_model(bad)
    with pytest.raises(InputError, match="does not exist"):
        check_model(tmp_path / "none.tflite")


def test_runner_exit_statuses_map_to_error_kinds():
    failed = json.dumps(failed_entry("custom op 'Foo'"))
    with pytest.raises(InputError, match="m.tflite: custom op 'Foo'"):
        parse_runner_output(failed, "", 2, "local", model="m.tflite")
    with pytest.raises(EnvironmentProblem, match="qemu:cortex-a72: custom op"):
        parse_runner_output(failed, "", 3, "qemu:cortex-a72")
    with pytest.raises(MeasurementFailed, match=r"crashed \(SIGSEGV\): Fatal Python error"):
        stderr = "INFO: Created delegate\nFatal Python error: Segmentation fault\n"
        parse_runner_output("", stderr, -11, "local")
    with pytest.raises(MeasurementFailed, match=r"crashed \(SIGABRT\)"):
        parse_runner_output("", "", 134, "ssh://pi@b")


def test_ssh_failures_are_explained_with_their_fix():
    target = parse_ssh_target("ssh://pi@board")
    assert "ssh-copy-id pi@board" in explain_ssh_failure(target, "pi@board: Permission denied (publickey).")
    assert "never disables host key" in explain_ssh_failure(target, "Host key verification failed.\n")
    assert "cannot resolve" in explain_ssh_failure(target, "ssh: Could not resolve hostname board: x")
    assert "unreachable" in explain_ssh_failure(target, "ssh: connect to host b port 22: Connection refused")


def test_tidy_keeps_schema_order_rounds_and_drops_non_finite():
    entry = failed_entry("x")
    entry.update({"status": "ok", "reason": None, "p50_ms": 0.0412345678, "cv": math.nan,
                  "extra": 1.23456789})
    tidied = tidy(entry)
    assert list(tidied)[: len(LATENCY_FIELDS)] == list(LATENCY_FIELDS)
    assert tidied["p50_ms"] == 0.04123 and tidied["cv"] is None and tidied["extra"] == 1.235
    json.dumps(tidied, allow_nan=False)


def test_table_shows_only_the_estimate_for_estimated_rows():
    row = {**failed_entry("x"), "model": "/a/m.tflite", "target": "estimate:pi4", "status": "ok",
           "reason": None, "provenance": "estimated", "p50_ms": 12.5, "runs": 0}
    cells = table_rows([row])[0]
    assert cells[:5] == ["m.tflite", "estimate:pi4", 1, "estimated", "12.5"]
    assert cells[5:11] == ["-"] * 6
