"""Damaged or unusual study folders and bad tune input: one line, exit 2, nothing lost, or a recompute.

The first table needs no TensorFlow: each row builds a study folder (or a path) in tmp_path, runs
``edgeopt tune`` in this process and expects one ``edgeopt: error:`` line, exit 2, no traceback and
every file it found left as it was. The rest damages copies of ONE real study (a tiny digits search,
two trials, trained once per module): a damaged journal is refused naming its line, ``--force-new``
keeps every earlier study in ``previous-N/``, and a damaged trained base or cached trial is computed
again, never fatal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from edgeopt.cli import cli

Builder = Callable[[Path], None]
ROOT = Path(__file__).resolve().parents[2]
RECIPE = {
    "name": "tiny_tune",
    "model": "digits_cnn",
    "data": "digits",
    "seed": 0,
    "train": {"epochs": 1, "batch_size": 32},
    "stages": [
        {
            "kind": "prune",
            "target_sparsity": {"range": [0.5, 0.9]},
            "initial_sparsity": 0.2,
            "epochs": 1,
            "frequency": 5,
        }
    ],
    "export": ["int8"],
    "benchmark": {"targets": ["local"], "runs": 5, "warmup": 1, "min_seconds": 0.05},
}
STUDY_ARGS = ("--trials", "2", "--strategy", "random", "--budget", "max_gzip_kb=100")
OUTCOME = ("study.json", "journal.log", "tune.json", "tune.html", "best.yaml")


# -- helpers ---------------------------------------------------------------------------------------


def write_recipe(root: Path) -> Path:
    path = root / "tune.yaml"
    path.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    return path


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``root``, but the study's lock file."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.name != ".lock"
    }


def run_inline(*argv: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(argv))
    if result.exc_info is not None and result.exc_info[0] is not SystemExit:
        raise AssertionError(f"escaped as {result.exc_info[0].__name__}: {result.exc_info[1]}")
    return result.exit_code, result.stdout, result.stderr


def assert_one_line(code: int, stdout: str, stderr: str, says: str, expected: int = 2) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stdout + stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("edgeopt: error: "), lines[0]
    assert says in lines[0], lines[0]
    assert code == expected, lines[0]
    assert stdout == "", stdout
    return lines[0]


def tune_process(recipe: Path, study: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeopt.cli", "tune", str(recipe), "--study", str(study), *STUDY_ARGS, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


# -- builders --------------------------------------------------------------------------------------


def text(name: str, content: str) -> Builder:
    def build(root: Path) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return build


def folder(name: str) -> Builder:
    def build(root: Path) -> None:
        (root / name).mkdir(parents=True, exist_ok=True)
    return build


def nothing(root: Path) -> None:
    pass


# -- bad input and odd folders, no TensorFlow --------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Build files in tmp, run ``tune`` on ``study`` ({tmp} is tmp_path) with ``args``; expect ``says``."""

    id: str
    build: Builder
    says: str
    args: tuple[str, ...] = ()
    study: str = "{tmp}/study"


CASES = [
    Case("study_that_is_a_file", text("study", "my notes\n"), "--study {tmp}/study: is a file"),
    Case("study_under_a_file", text("notes", "my notes\n"), "{tmp}/notes is a file, not a folder",
         study="{tmp}/notes/study"),
    Case("study_name_longer_than_255_bytes", nothing, "too long",  # ours, or the CLI's generic check
         study="{tmp}/" + "x" * 300 + "/s"),
    Case("negative_seed", nothing, "--seed -1: give a seed from 0 to 4294967295", args=("--seed", "-1")),
    Case("seed_of_2_to_the_32", nothing, "--seed 4294967296: give a seed from 0",
         args=("--seed", "4294967296")),
    Case("bad_choice_value_in_the_middle", nothing,
         'stages.0.target_sparsity: the choice value "high" is not valid',
         args=("--set", "stages.0.target_sparsity={choice: [0.6, high, 0.8]}")),
    Case("file_named_base_in_a_new_study_folder", text("study/base", ""),
         "base is a file, but the study keeps a folder"),
    Case("file_named_trials", text("study/trials", ""), "trials is a file, but the study keeps a folder"),
    Case("folder_named_journal_log", folder("study/journal.log"), "journal.log is a folder, but the study"),
    Case("folder_named_tune_json", folder("study/tune.json"), "tune.json is a folder"),
    Case("folder_named_lock", folder("study/.lock"), ".lock is a folder"),
    Case("study_json_holding_a_list", text("study/study.json", "[]\n"),
         "study.json is damaged (it holds [], not a JSON object); restore it from a copy, "
         "or use --force-new"),
    Case("study_json_holding_null", text("study/study.json", "null\n"), "it holds null, not a JSON object"),
    Case("study_json_holding_a_number", text("study/study.json", "42\n"), "it holds 42, not a JSON object"),
    Case("study_json_holding_garbage", text("study/study.json", "{garbage"),
         "study.json is damaged (not valid JSON)"),
    Case("study_json_missing_beside_an_outcome", text("study/tune.json", "{}"),
         "study.json is missing (the folder holds tune.json)"),
    Case("folder_of_other_files", text("study/keep.txt", "mine"), "is not a tune study folder"),
]


def never_train(*args, **kwargs):
    raise AssertionError("the run got as far as the trained base: it should have been refused before")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_tune_input_is_one_line_and_leaves_every_file_alone(case: Case, tmp_path: Path, monkeypatch):
    import edgeopt.tune.study

    monkeypatch.setattr(edgeopt.tune.study, "base_for", never_train)  # a refusal that slipped: fast
    recipe = write_recipe(tmp_path)
    case.build(tmp_path)
    before = snapshot(tmp_path)
    study = case.study.replace("{tmp}", str(tmp_path))
    code, stdout, stderr = run_inline("tune", str(recipe), "--study", study, *STUDY_ARGS, *case.args)
    assert_one_line(code, stdout, stderr, case.says.replace("{tmp}", str(tmp_path)))
    assert snapshot(tmp_path) == before


def test_a_kept_best_yaml_never_overwrites_an_earlier_one(tmp_path: Path):
    from edgeopt.tune.folder import keep_aside

    (tmp_path / "best.yaml.previous").write_text("first")
    (tmp_path / "best.yaml").write_text("second")
    assert keep_aside(tmp_path / "best.yaml").name == "best.yaml.previous-2"
    assert (tmp_path / "best.yaml.previous").read_text() == "first"
    assert (tmp_path / "best.yaml.previous-2").read_text() == "second"


# -- damaged copies of one real study ------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> tuple[Path, Path]:
    """(recipe, study): a finished two-trial study, trained once for the whole module."""
    root = tmp_path_factory.mktemp("real")
    recipe = write_recipe(root)
    study = root / "study"
    run = tune_process(recipe, study)
    assert run.returncode == 0, run.stderr[-3000:]
    return recipe, study


def copy_of(study: Path, where: Path) -> Path:
    shutil.copytree(study, where)
    return where


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def cut_last_record(study: Path) -> None:
    journal = study / "journal.log"
    journal.write_bytes(journal.read_bytes()[:-20])


def garbage_line_3(study: Path) -> None:
    lines = lines_of(study / "journal.log")
    lines[2] = b"garbage, not a record\n"
    (study / "journal.log").write_bytes(b"".join(lines))


def appended(record: bytes) -> Callable[[Path], None]:
    def damage(study: Path) -> None:
        with (study / "journal.log").open("ab") as handle:
            handle.write(record + b"\n")
    return damage


def journal_folder(study: Path) -> None:
    (study / "journal.log").unlink()
    (study / "journal.log").mkdir()


JOURNAL_DAMAGE = [
    ("journal_cut_mid_record", cut_last_record, "journal.log is damaged at line {last} (cut off mid-record)"),
    ("journal_with_a_garbage_line", garbage_line_3, "journal.log is damaged at line 3 (not a JSON record)"),
    ("journal_with_a_foreign_record", appended(b'{"hello": "world"}'),
     "journal.log is damaged at line {next} (a JSON record that is not Optuna's)"),
    ("journal_with_a_record_optuna_cannot_replay", appended(b'{"op_code": 4, "worker_id": "w"}'),
     "journal.log is damaged at line {next} (a record Optuna cannot replay: KeyError"),
    ("journal_that_is_a_folder", journal_folder, "journal.log is a folder, but the study keeps a file"),
]


@pytest.mark.integration
@pytest.mark.parametrize("damage, says", [(d, s) for _, d, s in JOURNAL_DAMAGE],
                         ids=[i for i, _, _ in JOURNAL_DAMAGE])
def test_a_damaged_journal_is_one_line_naming_its_line_and_is_left_as_it_is(real, damage, says, tmp_path):
    recipe, original = real
    study = copy_of(original, tmp_path / "study")
    count = len(lines_of(study / "journal.log"))
    damage(study)
    before = snapshot(tmp_path)
    code, stdout, stderr = run_inline("tune", str(recipe), "--study", str(study), *STUDY_ARGS)
    line = assert_one_line(code, stdout, stderr, says.format(last=count, next=count + 1))
    if "damaged" in says:
        assert "repair or remove that line, or use --force-new" in line and "previous-1" in line
    assert snapshot(tmp_path) == before


@pytest.mark.integration
def test_optunas_lock_left_by_a_killed_run_is_dropped_not_waited_for(real, tmp_path):
    recipe, original = real
    study = copy_of(original, tmp_path / "study")
    (study / "journal.log.lock").symlink_to("journal.log")  # as a driver killed mid-append leaves it
    trials = {p.name: snapshot(p) for p in (study / "trials").iterdir()}
    start = time.monotonic()
    code, stdout, stderr = run_inline("tune", str(recipe), "--study", str(study), *STUDY_ARGS)
    assert code == 0, stderr
    assert time.monotonic() - start < 20  # Optuna itself waits 30 s for a lock it did not take
    assert "nothing to run" in stderr and "taking longer" not in stderr
    assert not os.path.lexists(study / "journal.log.lock")
    assert {p.name: snapshot(p) for p in (study / "trials").iterdir()} == trials


@pytest.mark.integration
def test_a_base_with_a_truncated_or_emptied_file_reads_as_damaged(real, tmp_path):
    from edgeopt.tune.trial import Base, Damaged

    _, original = real
    base = next((original / "base").iterdir())
    assert Base.read(base) is not None
    for name, damage, says in [
        ("base.json", lambda p: p.write_bytes(p.read_bytes()[:100]), "base.json is not valid JSON"),
        ("model.keras", lambda p: p.write_bytes(b""), "model.keras is not a complete zip archive"),
        ("trained_float32.tflite", lambda p: p.write_bytes(p.read_bytes()[:3]), "not a TFLite model"),
    ]:
        copy = copy_of(base, tmp_path / name / base.name)
        damage(copy / name)
        with pytest.raises(Damaged, match=says):
            Base.read(copy)


@pytest.fixture(scope="module")
def forced(real, tmp_path_factory) -> tuple[Path, dict[str, bytes], subprocess.CompletedProcess]:
    """A copy of the study with a cut journal, a truncated base.json, one cached trial's trial.json
    garbage and another's report.json gone; refused as it is, then run with --force-new."""
    recipe, original = real
    study = copy_of(original, tmp_path_factory.mktemp("forced") / "study")
    cut_last_record(study)
    base = next((study / "base").iterdir())
    (base / "base.json").write_bytes((base / "base.json").read_bytes()[:100])
    first, second = sorted((study / "trials").iterdir())
    (first / "trial.json").write_text("garbage")
    (second / "report.json").unlink()
    kept = {name: (study / name).read_bytes() for name in OUTCOME}
    before = snapshot(study)
    code, stdout, stderr = run_inline("tune", str(recipe), "--study", str(study), *STUDY_ARGS)
    assert_one_line(code, stdout, stderr, "journal.log is damaged at line")
    assert snapshot(study) == before
    return study, kept, tune_process(recipe, study, "--force-new", "--json")


@pytest.mark.integration
def test_force_new_moves_the_damaged_study_into_previous_1(forced, real):
    study, kept, run = forced
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert {name: (study / "previous-1" / name).read_bytes() for name in OUTCOME} == kept
    assert f"the earlier one's files are kept in {study / 'previous-1'}" in run.stderr
    earlier = json.loads(kept["tune.json"])
    document = json.loads(run.stdout)
    assert [t["params"] for t in document["trials"]] == [t["params"] for t in earlier["trials"]]  # same seed


@pytest.mark.integration
def test_a_damaged_base_and_damaged_cached_trials_are_computed_again(forced):
    study, _, run = forced
    assert run.returncode == 0, run.stderr[-3000:]
    assert "is damaged (base.json is not valid JSON); training it again" in run.stderr
    assert "is damaged (trial.json is not valid JSON); rerunning" in run.stderr
    assert "is damaged (report.json is missing); rerunning" in run.stderr
    from edgeopt.tune.trial import Base

    assert Base.read(next((study / "base").iterdir())) is not None
    for trial in json.loads(run.stdout)["trials"]:
        assert trial["status"] == "feasible" and not trial["cached"]
        assert json.loads((study / trial["folder"] / "report.json").read_text())["variants"]
        assert json.loads((study / trial["folder"] / "trial.json").read_text())["params"] == trial["params"]


@pytest.mark.integration
def test_force_new_twice_keeps_both_earlier_studies(forced, real, tmp_path):
    recipe, _ = real
    study = copy_of(forced[0], tmp_path / "study")
    first = {name: (study / "previous-1" / name).read_bytes() for name in OUTCOME}
    appended(b"garbage")(study)
    second = {name: (study / name).read_bytes() for name in OUTCOME}
    run = tune_process(recipe, study, "--force-new")
    assert run.returncode == 0, run.stderr[-3000:]
    assert {name: (study / "previous-1" / name).read_bytes() for name in OUTCOME} == first
    assert {name: (study / "previous-2" / name).read_bytes() for name in OUTCOME} == second
    assert all((study / name).is_file() for name in OUTCOME)
