"""Targets, the runner registry, BenchSpec, runner output classification and entry tidying.

No TensorFlow and no child processes: a fake runner registered here stands in for a real one.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeopt import bench
from edgeopt.bench import BenchSpec, benchmark, check_model, make_spec, measure, parse_target
from edgeopt.bench.local import MeasurementFailed, MeasurementTimeout, parse_runner_output, runner_args
from edgeopt.bench.registry import RUNNERS, target_forms, targets_help
from edgeopt.bench.spec import Target, choice_target
from edgeopt.bench.ssh import SSH_CONFIG_ENV, board, explain_ssh_failure, parse_ssh_target, ssh_command
from edgeopt.bench.stats import LATENCY_FIELDS, failed_entry, table_rows, tidy, to_entry
from edgeopt.cli import cli
from edgeopt.errors import EnvironmentProblem, InputError, RecipeError
from edgeopt.recipe import parse_recipe
from edgeopt.types import LatencyEntry, Provenance

TFLITE_HEADER = b"\x1c\x00\x00\x00TFL3" + b"\x00" * 16


@pytest.mark.parametrize(("text", "kind", "detail", "provenance"), [
    ("local", "local", "", "measured"),
    ("ssh://pi@raspberrypi", "ssh", "pi@raspberrypi", "measured"),
    ("ssh://board:2222", "ssh", "board:2222", "measured"),
    ("qemu:cortex-a72", "qemu", "cortex-a72", "emulated"),
    ("estimate:pi5", "estimate", "pi5", "estimated"),
    (" local ", "local", "", "measured"),
])
def test_known_targets_parse_with_their_provenance(text, kind, detail, provenance):
    target = parse_target(text)
    assert (target.kind, target.detail, target.provenance, target.name) == (kind, detail, provenance,
                                                                             text.strip())


@pytest.mark.parametrize(("text", "message"), [
    ("locl", "did you mean 'local'"),
    ("estimte:pi4", "did you mean 'estimate:pi4'"),
    ("qemu:cortex-a9", "qemu:cortex-a53, qemu:cortex-a72, qemu:cortex-a76"),
    ("estimate:pi2", "estimate:pi3, estimate:pi4, estimate:pi5"),
    ("ssh://", "bad SSH target"),
    ("ssh://pi@host:99999", "bad SSH target"),
    ("ssh://-oProxyCommand=x", "bad SSH target"),
    ("localhost", "use 'local'"),
])
def test_bad_targets_are_input_errors_naming_the_accepted_forms(text, message):
    with pytest.raises(InputError, match=re.escape(message)):
        parse_target(text)


# -- the registry -------------------------------------------------------------------------------------


def concrete(form: str) -> str:
    """A target of a help form: optional ``[...]`` parts left out (``ssh://host``)."""
    return re.sub(r"\[[^\]]*\]", "", form)


@pytest.mark.parametrize("kind", list(RUNNERS))
def test_every_registered_runner_parses_each_of_its_forms(kind):
    runner = RUNNERS[kind]
    assert runner.kind == kind and runner.forms and isinstance(runner.provenance, Provenance)
    assert isinstance(runner.parallel, bool)
    for form in runner.forms:
        assert form.startswith(runner.prefix)
        target = parse_target(concrete(form))
        assert (target.kind, target.name, target.provenance) == (kind, concrete(form), runner.provenance)


@pytest.mark.parametrize("kind", list(RUNNERS))
def test_every_registered_runner_refuses_a_bad_target_in_one_line_naming_its_forms(kind):
    runner = RUNNERS[kind]
    with pytest.raises(InputError) as info:
        parse_target(runner.prefix + "no such;thing")
    message = str(info.value)
    assert "\n" not in message and "no such;thing" in message
    assert any(form in message for form in runner.forms), message


def test_only_ssh_boards_run_in_parallel():
    assert {kind for kind, runner in RUNNERS.items() if runner.parallel} == {"ssh"}


def test_help_and_messages_fold_each_runners_choices():
    assert targets_help() == ("local | ssh://[user@]host[:port] | qemu:cortex-a53|cortex-a72|cortex-a76 | "
                              "estimate:pi3|pi4|pi5")
    assert bench.target_kinds() == {"local": "measured", "ssh": "measured", "qemu": "emulated",
                                    "estimate": "estimated"}
    assert bench.provenance_help() == "measured (local, ssh://), emulated (qemu:), estimated (estimate:)"


class FakeRunner:
    """A kind of target that exists only in these tests: it records what it was asked to run."""

    kind = "fake"
    prefix = "fake:"
    provenance = Provenance.ESTIMATED
    forms = ("fake:one", "fake:two")

    def __init__(self, parallel: bool = False, outcome: Exception | None = None):
        self.parallel = parallel
        self.outcome = outcome
        self.calls: list[tuple[str, str, BenchSpec, int, str, str | None]] = []

    def parse(self, text: str) -> Target:
        return choice_target(text, self.kind, self.prefix, ("one", "two"), self.provenance)

    def run(self, model_path: str, target: Target, spec: BenchSpec, threads: int) -> LatencyEntry:
        self.calls.append((model_path, target.name, spec, threads, threading.current_thread().name,
                           os.environ.get(SSH_CONFIG_ENV)))
        if self.outcome is not None:
            raise self.outcome
        return to_entry({**failed_entry("x"), "provenance": self.provenance, "threads": threads,
                         "status": "ok", "reason": None, "p50_ms": 1.234567, "board": {"model": "fake"}})


@pytest.fixture
def fake(monkeypatch) -> FakeRunner:
    runner = FakeRunner()
    monkeypatch.setitem(RUNNERS, "fake", runner)
    return runner


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "m.tflite"
    path.write_bytes(TFLITE_HEADER)
    return path


def test_a_registered_runner_is_parsed_and_suggested_without_other_edits(fake):
    assert parse_target("fake:two") == Target("fake", "two", "fake:two", Provenance.ESTIMATED)
    assert "fake:one" in target_forms() and targets_help().endswith(" | fake:one|two")
    with pytest.raises(InputError, match="unknown fake target 'fake:three': use one of fake:one, fake:two"):
        parse_target("fake:three")
    with pytest.raises(InputError, match=r"did you mean 'fake:one'\?\): use local, .*fake:one\|two"):
        parse_target("fak:one")
    assert make_spec({"targets": ["fake:one"]}).targets == ["fake:one"]


def test_a_registered_runner_is_measured_through_the_registry(fake, model):
    spec = make_spec({"runs": 7, "threads": [2, 3]})
    entry = measure(model, "fake:one", spec)
    assert isinstance(entry, LatencyEntry) and entry.ok and entry.threads == 2
    assert entry.p50_ms == 1.235 and entry.extra == {"board": {"model": "fake"}}
    (call,) = fake.calls
    assert call[:4] == (str(model), "fake:one", spec, 2)
    assert measure(model, "fake:two", spec, threads=3).threads == 3


def test_a_crash_or_timeout_of_a_runner_is_a_failed_entry_not_an_exception(fake, model):
    for problem in (MeasurementFailed("the runtime crashed (SIGSEGV)"), MeasurementTimeout("too slow")):
        fake.outcome = problem
        entry = measure(model, "fake:one", make_spec({"xnnpack": False}))
        assert entry.status == "failed" and entry.reason == str(problem)
        assert (entry.provenance, entry.delegate, entry.p50_ms) == ("estimated", "none", None)
        assert list(entry.to_json()) == list(LATENCY_FIELDS)


def test_measure_keeps_its_keyword_form_returning_the_json_dict(fake, model):
    entry = measure(model, "fake:one", threads=4, runs=5, use_xnnpack=False, inputs=model)
    assert isinstance(entry, dict) and entry["threads"] == 4 and list(entry)[:2] == ["provenance", "threads"]
    spec = fake.calls[0][2]
    assert (spec.runs, spec.xnnpack, spec.inputs, spec.threads) == (5, False, str(model), [4])
    with pytest.raises(InputError, match=r"runs: input should be greater than or equal to 1, got 0"):
        measure(model, "fake:one", runs=0)
    with pytest.raises(TypeError, match="run"):
        measure(model, "fake:one", run=5)
    with pytest.raises(TypeError, match="settings from spec"):
        measure(model, "fake:one", make_spec(), runs=5)
    with pytest.raises(InputError, match="threads"):
        measure(model, "fake:one", make_spec(), threads=0)


def test_grid_runs_parallel_runners_beside_the_others_and_keeps_the_order(monkeypatch, model, tmp_path):
    serial, fleet = FakeRunner(), FakeRunner(parallel=True)
    fleet.kind, fleet.prefix, fleet.forms = "fleet", "fleet:", ("fleet:one", "fleet:two")
    fleet.parse = lambda text: choice_target(text, "fleet", "fleet:", ("one", "two"), Provenance.MEASURED)
    monkeypatch.setitem(RUNNERS, "fake", serial)
    monkeypatch.setitem(RUNNERS, "fleet", fleet)
    missing = tmp_path / "missing.tflite"
    result = benchmark([model, missing], make_spec({"targets": ["fleet:one", "fake:one", "fleet:two"],
                                                    "threads": [1, 2]}))
    assert [(Path(r["model"]).name, r["target"], r["threads"], r["status"]) for r in result.rows] == [
        ("m.tflite", "fleet:one", 1, "ok"), ("m.tflite", "fleet:one", 2, "ok"),
        ("m.tflite", "fake:one", 1, "ok"), ("m.tflite", "fake:one", 2, "ok"),
        ("m.tflite", "fleet:two", 1, "ok"), ("m.tflite", "fleet:two", 2, "ok"),
        ("missing.tflite", "fleet:one", 1, "failed"), ("missing.tflite", "fleet:one", 2, "failed"),
        ("missing.tflite", "fake:one", 1, "failed"), ("missing.tflite", "fake:one", 2, "failed"),
        ("missing.tflite", "fleet:two", 1, "failed"), ("missing.tflite", "fleet:two", 2, "failed")]
    assert result.exit_code == 2 and "does not exist" in result.rows[-1]["reason"]
    assert {call[4] for call in serial.calls} == {threading.current_thread().name}
    assert threading.current_thread().name not in {call[4] for call in fleet.calls}


def test_a_failed_entry_from_a_runner_makes_the_grid_exit_1(fake, model):
    fake.outcome = MeasurementFailed("crashed")
    assert benchmark([model], make_spec({"targets": ["fake:one"]})).exit_code == 1


def test_cli_help_lists_the_registered_targets(fake):
    result = CliRunner().invoke(cli, ["benchmark", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "local | ssh://[user@]host[:port] | qemu:cortex-a53|cortex-a72|cortex-a76 | " in text
    assert "estimate:pi3|pi4|pi5 | fake:one|two (repeatable; ssh:// targets run in parallel)" in text
    assert "measured (local, ssh://), emulated (qemu:), estimated (estimate:, fake:)" in text


def test_cli_passes_its_options_in_the_spec_and_ssh_config_never_through_the_environment(
        fake, model, tmp_path, monkeypatch):
    monkeypatch.delenv(SSH_CONFIG_ENV, raising=False)
    config = tmp_path / "ssh_config"
    config.write_text("Host board\n")
    result = CliRunner().invoke(cli, [
        "benchmark", str(model), "--target", "fake:one", "--target", "fake:two", "--threads", "1,4",
        "--runs", "3", "--warmup", "0", "--min-seconds", "0", "--no-xnnpack", "--seed", "9", "--timeout", "5",
        "--ssh-config", str(config), "--json"])
    assert result.exit_code == 0, result.stderr
    assert [(r["target"], r["threads"]) for r in json.loads(result.stdout)["rows"]] == [
        ("fake:one", 1), ("fake:one", 4), ("fake:two", 1), ("fake:two", 4)]
    spec = fake.calls[0][2]
    assert spec == make_spec({"targets": ["fake:one", "fake:two"], "threads": [1, 4], "runs": 3, "warmup": 0,
                              "min_seconds": 0.0, "xnnpack": False, "seed": 9, "timeout": 5.0,
                              "ssh_config": str(config)})
    assert {call[5] for call in fake.calls} == {None} and SSH_CONFIG_ENV not in os.environ


@pytest.mark.parametrize(("options", "message"), [
    (["--runs", "0"], "--runs: input should be greater than or equal to 1, got 0"),
    (["--threads", "1,1000"], "--threads: input should be less than or equal to 256, got 1000"),
    (["--threads", "2,2"], "--threads: 2 is listed twice"),
    (["--timeout", "inf"], "--timeout: input should be a finite number"),
    (["--target", "fake:three"], "--target: unknown fake target 'fake:three'"),
])
def test_cli_names_the_option_of_a_bad_setting_before_anything_runs(fake, model, options, message):
    result = CliRunner().invoke(cli, ["benchmark", str(model), "--target", "fake:one", *options])
    assert result.exit_code == 2 and result.stderr.startswith(f"edgeopt: error: {message}")
    assert result.stderr.count("\n") == 1 and not fake.calls


# -- BenchSpec ---------------------------------------------------------------------------------------


BASE = {"model": "digits_cnn", "data": "digits"}


def recipe_error(benchmark: object) -> str:
    with pytest.raises(RecipeError) as info:
        parse_recipe({**BASE, "benchmark": benchmark})
    return str(info.value)


def test_threads_accepts_one_count_or_a_list():
    assert parse_recipe({**BASE, "benchmark": {"threads": 2}}).benchmark.threads == [2]
    assert parse_recipe({**BASE, "benchmark": {"threads": [1, 4]}}).benchmark.threads == [1, 4]
    assert BenchSpec().threads == [1] and BenchSpec(threads=3).threads == [3]


def test_the_recipe_and_the_cli_share_one_spec_with_the_same_defaults():
    spec = parse_recipe(BASE).benchmark
    assert isinstance(spec, BenchSpec) and spec == make_spec()
    assert spec.model_dump() == {"targets": ["local"], "threads": [1], "runs": 100, "warmup": 10,
                                 "min_seconds": 0.5, "xnnpack": True, "timeout": 300.0, "inputs": "random",
                                 "seed": 0, "ssh_config": None}
    assert spec.inputs_file is None and make_spec({"inputs": "x.npz"}).inputs_file == "x.npz"


@pytest.mark.parametrize(("benchmark", "message"), [
    ({"threads": 0}, "benchmark.threads[0]: input should be greater than or equal to 1, got 0"),
    ({"threads": [1, 257]}, "benchmark.threads[1]: input should be less than or equal to 256, got 257"),
    ({"threads": [2, 2]}, "benchmark.threads: 2 is listed twice"),
    ({"threads": []}, "benchmark.threads: list should have at least 1 item"),
    ({"threads": True}, "benchmark.threads: input should be a valid list"),
    ({"runs": 0}, "benchmark.runs: input should be greater than or equal to 1, got 0"),
    ({"runs": "5"}, "benchmark.runs: input should be a valid integer, got '5'"),
    ({"warmup": 100_001}, "benchmark.warmup: input should be less than or equal to 100000"),
    ({"min_seconds": 3601}, "benchmark.min_seconds: input should be less than or equal to 3600"),
    ({"timeout": 0}, "benchmark.timeout: input should be greater than 0, got 0"),
    ({"timeout": 86401}, "benchmark.timeout: input should be less than or equal to 86400"),
    ({"seed": 2**32}, "benchmark.seed: input should be less than 4294967296"),
    ({"xnnpack": "no"}, "benchmark.xnnpack: input should be a valid boolean, got 'no'"),
    ({"inputs": ""}, "benchmark.inputs: string should have at least 1 character"),
    ({"targets": ["locl"]}, "benchmark.targets[0]: unknown target 'locl' (did you mean 'local'?)"),
    ({"targets": ["local", "local"]}, "benchmark.targets: 'local' is listed twice"),
    ({"run": 5}, "benchmark: unknown key 'run' (did you mean 'runs'?)"),
    ({"ssh-config": "x"}, "benchmark: unknown key 'ssh-config' (did you mean 'ssh_config'?)"),
])
def test_bad_settings_are_refused_with_their_field_path(benchmark, message):
    assert message in recipe_error(benchmark)


def test_every_committed_recipe_still_loads():
    from edgeopt.recipe import load_recipe

    recipes = sorted(Path(__file__).resolve().parents[2].glob("models/*/recipe.yaml"))
    assert recipes
    for path in recipes:
        assert load_recipe(path).benchmark.threads == [1]


def test_runner_args_come_from_the_spec():
    spec = make_spec({"runs": 3, "warmup": 1, "min_seconds": 0.25, "xnnpack": False, "seed": 7})
    assert runner_args("m.tflite", spec, 2, inputs="in.npz", board_facts=True) == [
        "m.tflite", "--threads", "2", "--runs", "3", "--warmup", "1", "--min-seconds", "0.25", "--seed", "7",
        "--no-xnnpack", "--inputs", "in.npz", "--board-facts"]


# -- SSH ---------------------------------------------------------------------------------------------


def test_ssh_config_comes_from_the_spec_before_the_users_environment(tmp_path, monkeypatch):
    mine, users = tmp_path / "mine", tmp_path / "users"
    mine.write_text(""), users.write_text("")
    target = parse_target("ssh://pi@board:2200")
    monkeypatch.delenv(SSH_CONFIG_ENV, raising=False)
    assert board(target, make_spec()).config is None
    assert "-F" not in ssh_command(board(target, make_spec()), "true")
    monkeypatch.setenv(SSH_CONFIG_ENV, str(users))
    assert board(target, make_spec()).config == str(users)
    connect = board(target, make_spec({"ssh_config": str(mine)}))
    argv = ssh_command(connect, "true")
    assert argv[argv.index("-F") + 1] == str(mine) and argv[-2:] == ["board", "true"]
    assert argv[argv.index("-p") + 1] == "2200" and argv[argv.index("-l") + 1] == "pi"
    with pytest.raises(InputError, match="SSH config file .*nothere does not exist"):
        board(target, make_spec({"ssh_config": str(tmp_path / "nothere")}))


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


def test_latency_entry_json_is_exactly_the_tidied_runner_dict_with_extras_after_the_schema_fields():
    raw = {**failed_entry("x"), "status": "ok", "reason": None, "p50_ms": 0.0412345678, "cv": math.nan,
           "board": {"model": "Raspberry Pi 4", "temperature_c": 51.123456}, "max_abs_diff": 0.0,
           "cost_model": {"macs": 8}}
    entry = to_entry(raw)
    assert entry.to_json() == tidy(raw) and list(entry.to_json()) == list(tidy(raw))
    assert list(entry.to_json())[len(LATENCY_FIELDS):] == ["board", "max_abs_diff", "cost_model"]
    assert entry.extra == {"board": {"model": "Raspberry Pi 4", "temperature_c": 51.12}, "max_abs_diff": 0.0,
                           "cost_model": {"macs": 8}}
    assert LatencyEntry.from_json(entry.to_json()) == entry
    failed = to_entry(failed_entry("board\n unreachable", provenance=Provenance.EMULATED, threads=2))
    assert failed.to_json() == LatencyEntry.failed("board unreachable", provenance=Provenance.EMULATED,
                                                   threads=2).to_json()
    assert json.dumps(failed.to_json()) == json.dumps(failed_entry("board unreachable", provenance="emulated",
                                                                   threads=2))
