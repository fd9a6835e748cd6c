"""edgeopt tune searching the training: each new set of training settings trains its own base in
the trial, Optuna's pruner stops losing curves, the study resumes, and bad input is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_tune import edgeopt  # the CLI in a subprocess, as the other tune tests run it

pytestmark = pytest.mark.integration
EPOCHS = 4
RECIPE = {
    "name": "tiny_train_tune",
    "model": "facepose_mlp",
    "data": "facepose",
    "seed": 0,
    "train": {
        "epochs": EPOCHS,
        "batch_size": {"choice": [32, 64]},
        "learning_rate": {"choice": [0.001, 0.003]},
        "validation_split": 0.1,
    },
    "stages": [{"kind": "quantize", "mode": "qat", "epochs": 1}],
    "export": ["int8"],
    "benchmark": {"targets": ["local"], "runs": 5, "warmup": 1, "min_seconds": 0.05},
}


def write(tmp_path: Path, data: dict, name: str = "tune.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train_tune")
    recipe = write(folder, RECIPE)
    run = edgeopt("tune", str(recipe), "--study", str(folder / "s"), "--trials", "6", "--strategy", "random",
                  "--objective", "accuracy", "--json")
    return recipe, folder / "s", json.loads(run.stdout), run.stderr


def test_each_set_of_training_settings_trains_one_base_and_every_trial_keeps_its_curve(study):
    _, folder, outcome, stderr = study
    assert "pruner: hyperband" in stderr  # on by default when training is searched
    trials = outcome["trials"]
    assert len(trials) == 6 and outcome["study"]["pruner"] == "hyperband"
    settings = {}
    for t in trials:
        key = (t["params"]["train.batch_size"], t["params"]["train.learning_rate"])
        if t["status"] == "pruned":
            assert t["pruned_at"] is not None and len(t["curve"]) == t["pruned_at"] + 1 < EPOCHS
            assert "stopped by the hyperband pruner after epoch" in t["reason"]
            assert t["value"] is None and not t["feasible"]
        else:
            assert t["status"] == "feasible" and t["metric"] == "mae"
            settings.setdefault(key, []).append(t)
    trained = {k for k, ts in settings.items() if any(t["curve"] for t in ts)}
    # a base per trained set of settings; a repeated set reuses it (no curve: it trained nothing)
    assert len(list((folder / "base").iterdir())) == len(trained)
    for ts in settings.values():
        assert sum(bool(t["curve"]) for t in ts) == 1 and all(len(t["curve"] or [0] * EPOCHS) == EPOCHS
                                                              for t in ts)
    best = outcome["best"]
    assert best["value"] == min(t["value"] for t in trials if t["feasible"])  # the lowest int8 MAE
    page = (folder / "tune.html").read_text()
    assert "Training curves" in page and "pruned" in page
    best_yaml = yaml.safe_load((folder / "best.yaml").read_text())
    assert best_yaml["train"]["learning_rate"] == best["params"]["train.learning_rate"]


def test_a_finished_training_study_resumes_without_training_again(study):
    recipe, folder, _, _ = study
    again = edgeopt("tune", str(recipe), "--study", str(folder), "--trials", "6", "--strategy", "random",
                    "--objective", "accuracy")
    assert "nothing to run" in again.stderr and "training" not in again.stderr.split("nothing to run")[1]


def test_searching_training_badly_is_refused_in_one_line_before_any_training(tmp_path):
    plain = {**RECIPE, "train": {"epochs": 2}, "stages": [{"kind": "quantize", "mode": "ptq"}],
             "export": {"choice": ["int8", "float16"]}}
    not_training = {**RECIPE, "train": {**RECIPE["train"], "validation_split": {"choice": [0.1, 0.2]}}}
    no_width = {**RECIPE, "model": str(tmp_path / "mine.keras"),
                "model_options": {"width": {"choice": [1, 2]}}}
    cases = [
        (plain, ["--pruner", "median"], "--pruner median: this study's trials train nothing"),
        (not_training, [], "train.validation_split: is not a training setting tune can search"),
        (no_width, [], "has no width to search"),
        (RECIPE, ["--pruner", "successive"], "--pruner 'successive': choose one of"),
    ]
    for index, (data, extra, message) in enumerate(cases):
        recipe = write(tmp_path, data, f"bad{index}.yaml")
        run = edgeopt("tune", str(recipe), "--study", str(tmp_path / "s"), *extra, check_code=2)
        assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert not (tmp_path / "s").exists()
