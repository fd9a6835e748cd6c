"""edgeopt tune end to end on a tiny digits search: trials, resume without recomputing, a killed
study resumed, a refused foreign study, best.yaml reproduced by compress, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RECIPE = {
    "name": "tiny_tune",
    "model": "digits_cnn",
    "data": "digits",
    "seed": 0,
    "train": {"epochs": 3, "batch_size": 32},
    "stages": [
        {
            "kind": "prune",
            "target_sparsity": {"range": [0.5, 0.9]},
            "initial_sparsity": 0.2,
            "epochs": 1,
            "frequency": 5,
        },
        {"kind": "quantize", "mode": "qat", "epochs": 1},
    ],
    "export": ["float32", "int8"],
    "benchmark": {"targets": ["local"], "runs": 5, "warmup": 1, "min_seconds": 0.05},
}


BUDGETS = ("--budget", "max_gzip_kb=100", "--budget", "max_accuracy_drop=0.5")


def tune(recipe, study, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return edgeopt("tune", str(recipe), "--study", str(study), *args, **kwargs)


def edgeopt(*args: str, check_code: int | None = 0, **kwargs) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "edgeopt.cli", *args],
        capture_output=True,
        text=True,
        cwd=kwargs.pop("cwd", ROOT),
        timeout=600,
        **kwargs,
    )
    if check_code is not None:
        assert run.returncode == check_code, run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tune") / "tune.yaml"
    path.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    return path


def trial_folders(study: Path) -> dict[str, float]:
    return {p.name: (p / "report.json").stat().st_mtime_ns for p in (study / "trials").iterdir()}


@pytest.fixture(scope="module")
def study(recipe, tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("study") / "s"
    run = tune(str(recipe), str(folder), "--trials", "3", "--strategy", "random", *BUDGETS, "--json")
    return folder, json.loads(run.stdout)


def test_a_study_runs_its_trials_and_writes_its_outcome(study):
    folder, document = study
    assert len(document["trials"]) == 3 and document["budgets_met"]
    for trial in document["trials"]:
        assert trial["status"] == "feasible" and trial["format"] == "int8"
        assert 0.5 <= trial["params"]["stages.0.target_sparsity"] <= 0.9
        assert trial["gzip_bytes"] > 0 and trial["latency_p50_ms"]["local"] > 0
        report = json.loads((folder / trial["folder"] / "report.json").read_text())
        assert report["recipe"]["stages"][0]["target_sparsity"] == trial["params"]["stages.0.target_sparsity"]
    best = document["best"]
    assert best["gzip_bytes"] == min(t["gzip_bytes"] for t in document["trials"])
    assert document["pareto_front"] and best["number"] in [t["number"] for t in document["trials"]]
    assert {p.name for p in folder.iterdir()} >= {
        "study.json",
        "journal.log",
        "base",
        "trials",
        "tune.json",
        "tune.html",
        "best.yaml",
    }
    assert "<img" in (folder / "tune.html").read_text()
    assert len(list((folder / "base").iterdir())) == 1  # trained once


def test_rerunning_a_finished_study_recomputes_nothing_and_more_trials_continue_it(recipe, study):
    folder, _ = study
    before = trial_folders(folder)
    again = tune(str(recipe), str(folder), "--trials", "3", "--strategy", "random", *BUDGETS, "--json")
    assert "nothing to run" in again.stderr and "training the base" not in again.stderr
    assert trial_folders(folder) == before
    more = edgeopt(
        "tune", str(recipe), "--study", str(folder), "--trials", "5", "--strategy", "hill", *BUDGETS, "--json"
    )
    document = json.loads(more.stdout)
    assert "reusing the trained base" in more.stderr and "training the base" not in more.stderr
    assert [t["strategy"] for t in document["trials"]] == ["random"] * 3 + ["hill"] * 2
    assert set(document["best_so_far"]) == {"random", "hill"}
    assert all(trial_folders(folder)[k] == v for k, v in before.items())  # earlier trials untouched


def test_best_yaml_reproduces_the_best_trial_with_compress(study, tmp_path):
    folder, _ = study
    document = json.loads((folder / "tune.json").read_text())  # the study as it stands now
    out = tmp_path / "again"
    edgeopt("compress", str(folder / "best.yaml"), "--out", str(out), "--quiet")
    report = json.loads((out / "report.json").read_text())
    int8 = next(v for v in report["variants"] if v["name"] == "int8")
    best = document["best"]
    assert abs(int8["gzip_bytes"] - best["gzip_bytes"]) <= 0.02 * best["gzip_bytes"]
    assert abs(int8["metrics"]["accuracy"]["value"] - best["value"]) <= 0.02


def test_a_study_of_another_recipe_is_refused_unless_forced(recipe, study, tmp_path):
    folder, _ = study
    args = [
        "tune",
        str(recipe),
        "--study",
        str(folder),
        "--trials",
        "1",
        "--set",
        "stages.0.epochs=2",
        "--budget",
        "max_gzip_kb=100",
        "--budget",
        "max_accuracy_drop=0.5",
    ]
    refused = edgeopt(*args, check_code=2)
    assert "made with another recipe" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    other_budget = tune(str(recipe), str(folder), "--trials", "1", "--budget", "max_gzip_kb=90", check_code=2)
    assert "another budgets, objective or pruner" in other_budget.stderr
    not_a_study = tmp_path / "stuff"
    not_a_study.mkdir()
    (not_a_study / "keep.txt").write_text("mine")
    refused = edgeopt("tune", str(recipe), "--study", str(not_a_study), "--trials", "1", check_code=2)
    assert "not a tune study folder" in refused.stderr and (not_a_study / "keep.txt").read_text() == "mine"


def test_a_killed_study_resumes_without_losing_or_redoing_finished_trials(recipe, tmp_path):
    folder = tmp_path / "killed"
    settings = ("--trials", "4", "--strategy", "bayes", "--budget", "max_gzip_kb=100")
    args = [sys.executable, "-m", "edgeopt.cli", "tune", str(recipe), "--study", str(folder), *settings]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 300
    for line in process.stderr:  # kill it as soon as one trial has finished (the next is running)
        lines.append(line)
        if line.startswith("trial #") or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert any(line.startswith("trial #0") for line in lines), "".join(lines)[-2000:]
    kept = trial_folders(folder)
    assert kept
    resumed = tune(str(recipe), str(folder), *settings, "--json")
    document = json.loads(resumed.stdout)
    assert "resuming: 1 finished trial" in resumed.stderr, resumed.stderr[-2000:]
    assert len(document["trials"]) == 4
    assert all(trial_folders(folder)[k] == v for k, v in kept.items())  # the finished one was not redone
    assert len({t["folder"] for t in document["trials"]}) == 4
    staging = [p for p in folder.rglob("*") if "staging" in p.name]
    assert not staging


def test_bad_tune_input_gets_one_line_and_exit_2(recipe, tmp_path):
    cases = [
        (["--budget", "max_gzip=3"], "unknown budget 'max_gzip'"),
        (["--budget", "max_latency_ms=1@qemu:cortex-a53"], "not in the recipe's benchmark.targets"),
        (["--strategy", "grid"], "--strategy 'grid'"),
        (["--objective", "smallest"], "--objective 'smallest'"),
        (["--set", "stages.0.target_sparsity={range: [0.9, 0.5]}"], "empty or inverted"),
        (["--set", "stages.0.sparsity={range: [0.5, 0.9]}"], "is not a field of a prune stage"),
    ]
    for extra, message in cases:
        run = edgeopt("tune", str(recipe), "--study", str(tmp_path / "bad"), *extra, check_code=2)
        assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert not (tmp_path / "bad").exists()


def test_without_ray_the_ray_executor_exits_3_with_the_install_command(recipe, tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "ray.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)])}
    run = edgeopt(
        "tune", str(recipe), "--study", str(tmp_path / "s"), "--executor", "ray", check_code=3, env=env
    )
    assert "pip install 'edgeopt[ray]'" in run.stderr and not (tmp_path / "s").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A real single-node Ray cluster on this machine (2 CPUs), as `ray start --head` makes one."""
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    start = [
        str(ray_bin),
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    subprocess.run(start, check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, timeout=180)


def test_trials_run_as_ray_tasks_with_the_same_results_as_locally(recipe, study, ray_cluster, tmp_path):
    folder, local = study
    run = tune(
        str(recipe),
        str(tmp_path / "ray"),
        "--trials",
        "3",
        "--strategy",
        "random",
        *BUDGETS,
        "--executor",
        "ray",
        "--workers",
        "2",
        "--address",
        ray_cluster,
        "--json",
    )
    document = json.loads(run.stdout)
    assert "running 1" in run.stderr  # two trials were in flight at once
    assert len(document["trials"]) == 3
    for mine, theirs in zip(document["trials"], local["trials"][:3], strict=True):
        assert mine["params"] == theirs["params"]  # same seed, same points
        # A Ray task trains with 1 thread (its CPU reservation), the local run with TensorFlow's
        # default: a different summation order, so near but not always bit-identical results.
        assert abs(mine["gzip_bytes"] - theirs["gzip_bytes"]) <= 0.01 * theirs["gzip_bytes"]
        assert abs(mine["value"] - theirs["value"]) <= 0.01


def test_an_unreachable_ray_cluster_exits_3_before_any_work(recipe, tmp_path):
    pytest.importorskip("ray")
    run = tune(
        str(recipe),
        str(tmp_path / "s"),
        "--executor",
        "ray",
        "--address",
        f"127.0.0.1:{_free_port()}",
        check_code=3,
    )
    assert "cannot reach the Ray cluster" in run.stderr and not (tmp_path / "s").exists()


def test_a_study_checks_its_recipe_once_and_each_trial_recipe_once(recipe, tmp_path, monkeypatch):
    import edgeopt
    import edgeopt.pipeline

    checked = []
    real = edgeopt.pipeline.check_model_files
    monkeypatch.setattr(edgeopt.pipeline, "check_model_files", lambda r: checked.append(r.stages) or real(r))
    outcome = edgeopt.search(recipe, tmp_path / "s", budgets=("max_gzip_kb=100",), strategy="random",
                             trials=1)
    assert len(outcome.trials) == 1
    # At setup, before the base trains; then the trial's changed recipe, once, before its stages run.
    assert len(checked) == 2, checked
