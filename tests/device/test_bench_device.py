"""ssh:// against a real sshd whose login is an emulated aarch64 board, and qemu: targets."""

from __future__ import annotations

import json
import os
import re

import pytest
from click.testing import CliRunner

from edgeopt.bench import measure
from edgeopt.cli import cli
from edgeopt.errors import EnvironmentProblem

pytestmark = pytest.mark.device

# Emulated Python takes seconds to start; keep the timed part short.
QUICK = {"runs": 10, "warmup": 2, "min_seconds": 0.05}
QUICK_ARGS = ["--runs", "10", "--warmup", "2", "--min-seconds", "0.05"]


def test_ssh_board_runs_the_model_on_arm_and_reports_the_board(ssh_env, tiny_models):
    entry = measure(tiny_models["int8"], "ssh://board-a", threads=2, **QUICK)
    assert entry["status"] == "ok", entry["reason"]
    assert entry["provenance"] == "measured" and entry["threads"] == 2
    assert entry["runtime"] == "ai_edge_litert 2.3.0"
    assert entry["board"]["machine"] == "aarch64"  # it really ran on the (emulated) ARM side
    assert "Cortex-A72" in entry["cpu"]
    assert 0 < entry["p50_ms"] <= entry["p99_ms"] and entry["runs"] >= 10
    # runner and model were copied once, content-addressed, into the board's cache
    cached = sorted(p.name.split("-")[0] for p in (ssh_env.home / ".cache" / "edgeopt-bench").iterdir())
    assert cached == ["model", "runner"]


def test_fleet_runs_in_parallel_with_local_and_every_row_completes(ssh_env, tiny_models, tmp_path):
    result = CliRunner().invoke(cli, [
        "benchmark", str(tiny_models["float32"]), "--target", "ssh://board-a", "--target", "ssh://board-b",
        "--target", "ssh://board-down", "--target", "local", "--json", "--out", str(tmp_path), *QUICK_ARGS])
    rows = json.loads(result.stdout)["rows"]
    assert [(r["target"], r["status"]) for r in rows] == [
        ("ssh://board-a", "ok"), ("ssh://board-b", "ok"), ("ssh://board-down", "failed"), ("local", "ok")]
    assert "unreachable" in rows[2]["reason"] and rows[2]["p50_ms"] is None
    assert result.exit_code == 3  # environment: a board could not be reached
    assert json.loads((tmp_path / "benchmark.json").read_text())["rows"] == rows


def test_ssh_config_option_reaches_ssh_in_the_spec_not_the_environment(ssh_board, tiny_models, monkeypatch):
    monkeypatch.delenv("EDGEOPT_SSH_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["benchmark", str(tiny_models["int8"]), "--target", "ssh://board-a",
                                      "--ssh-config", str(ssh_board.ssh_config), "--json", *QUICK_ARGS])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"][0]["board"]["machine"] == "aarch64"
    assert "EDGEOPT_SSH_CONFIG" not in os.environ


@pytest.mark.parametrize(("board", "message"), [
    ("board-stranger", "authentication failed"),
    ("board-wrong-hostkey", "host key is unknown or has changed"),
    ("board-down", "unreachable"),
    ("board-nopython", "no python3 on the board"),
    ("board-noruntime", "no LiteRT runtime on this host.*pip install ai-edge-litert"),
])
def test_board_problems_are_one_line_environment_errors(ssh_env, tiny_models, board, message):
    result = CliRunner().invoke(cli, ["benchmark", str(tiny_models["float32"]), "--target",
                                      f"ssh://{board}", *QUICK_ARGS])
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"edgeopt: error: ssh://{board}")
    assert re.search(message, result.stderr) and "Traceback" not in result.output


def test_library_raises_environment_problem_for_an_unreachable_board(ssh_env, tiny_models):
    with pytest.raises(EnvironmentProblem, match="unreachable"):
        measure(tiny_models["float32"], "ssh://board-down", **QUICK)


def test_ssh_timeout_is_a_failed_row(ssh_env, tiny_models):
    # The emulated Python alone needs more than a second to start, so the run step times out.
    entry = measure(tiny_models["float32"], "ssh://board-a", timeout=1, **QUICK)
    assert entry["status"] == "failed" and "did not finish within" in entry["reason"]


@pytest.mark.parametrize(("model", "cpu", "tolerance"), [
    ("float32", "cortex-a53", 1e-4),  # float: rounding-level differences only
    ("int8", "cortex-a76", 1.0),  # int8: at most one quantization step
])
def test_qemu_target_matches_x86_outputs_and_is_labelled_emulated(arm_sysroot, tiny_models, model, cpu,
                                                                    tolerance):
    result = CliRunner().invoke(cli, ["benchmark", str(tiny_models[model]), "--target", f"qemu:{cpu}",
                                      "--json", *QUICK_ARGS])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["rows"]
    assert row["provenance"] == "emulated" and row["status"] == "ok"
    assert cpu in row["cpu"] and "qemu" in row["cpu"]
    assert row["max_abs_diff"] <= tolerance
