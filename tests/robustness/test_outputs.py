"""Nothing lost: staged outputs, concurrent runs, leftovers, umask, full and read-only disks, signals.

Most cases drive :mod:`edgeopt.outputs` or refusals that happen before TensorFlow loads; the signal
cases run the real command in a child process. Disk-full and read-only cases mount a small tmpfs,
so they need root (as in CI); elsewhere they skip with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeopt import outputs
from edgeopt.cli import cli
from edgeopt.errors import EnvironmentProblem, OutputExistsError
from edgeopt.outputs import STAGING_MARK, clean_leftovers, staged_output, write_text_atomic

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "models" / "digits_cnn" / "recipe.yaml"
QUICK = ["--set", "train.epochs=0", "--set", "stages=[]", "--set", "export=[float32]",
         "--set", "benchmark.runs=1", "--set", "benchmark.min_seconds=0", "--set", "benchmark.warmup=0"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


# -- concurrent runs ---------------------------------------------------------------------------------


def test_second_of_two_concurrent_runs_keeps_its_result_aside_and_replaces_nothing(tmp_path):
    out = tmp_path / "out"
    first_run, second_run = staged_output(out, overwrite=False), staged_output(out, overwrite=False)
    first, second = first_run.__enter__(), second_run.__enter__()  # both started before either ended
    (first / "report.json").write_text("first")
    (second / "report.json").write_text("second")
    first_run.__exit__(None, None, None)
    with pytest.raises(OutputExistsError) as refused:
        second_run.__exit__(None, None, None)
    assert (out / "report.json").read_text() == "first"
    kept = Path(str(refused.value).rsplit(" in ", 1)[1])
    assert kept.parent == tmp_path and (kept / "report.json").read_text() == "second"
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_completed_run_moves_into_place_without_its_staging_mark(tmp_path):
    out = tmp_path / "out"
    with staged_output(out, overwrite=False) as work:
        (work / "a.txt").write_text("a")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]


def test_overwrite_replaces_only_at_the_end_and_a_failed_run_leaves_the_old_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_output(out, overwrite=True) as work:
        (work / "new.txt").write_text("new")
        raise RuntimeError("the run failed")
    assert snapshot(out) == {"old.txt": b"old"}
    assert not list(tmp_path.glob(".out.*"))


# -- refused before any work -------------------------------------------------------------------------


@pytest.mark.parametrize("out", [".", "..", "{cwd}", "{parent}", "/"])
def test_out_that_is_the_current_folder_or_a_parent_is_refused(tmp_path, monkeypatch, out):
    work = tmp_path / "project"
    work.mkdir()
    (work / "keep.txt").write_text("precious")
    monkeypatch.chdir(work)
    out = out.format(cwd=work, parent=tmp_path)
    result = CliRunner().invoke(cli, ["compress", str(RECIPE), "--out", out, "--overwrite", *QUICK])
    assert result.exit_code == 2
    assert "current folder or one of its parents" in one_line(result)
    assert (work / "keep.txt").read_text() == "precious"


def test_out_holding_the_recipe_is_refused_even_with_overwrite(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    recipe = folder / "recipe.yaml"
    recipe.write_text(RECIPE.read_text())
    before = snapshot(folder)
    result = CliRunner().invoke(cli, ["compress", str(recipe), "--out", str(folder), "--overwrite", *QUICK])
    assert result.exit_code == 2
    assert "holds this run's input" in one_line(result)
    assert snapshot(folder) == before


# -- leftovers and permissions ---------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_of_a_killed_run_are_removed_and_a_live_run_is_left_alone(tmp_path):
    dead = tmp_path / ".out.tmp-dead"
    live = tmp_path / ".out.tmp-live"
    for folder, pid in ((dead, _dead_pid()), (live, os.getpid())):
        folder.mkdir()
        (folder / STAGING_MARK).write_text(json.dumps({"pid": pid, "host": os.uname().nodename}))
    assert clean_leftovers(tmp_path / "out") == [dead]
    assert live.is_dir() and not dead.exists()


def test_next_run_reports_the_leftovers_it_removed(tmp_path):
    dead = tmp_path / ".out.tmp-x"
    dead.mkdir()
    notices: list[str] = []
    with staged_output(tmp_path / "out", overwrite=False, notices=notices):
        pass
    assert notices == [f"removed {dead}, left by an interrupted earlier run"]


@pytest.mark.parametrize("mask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600),
                                                      (0o002, 0o775, 0o664)])
def test_outputs_get_the_users_umask(tmp_path, mask, dir_mode, file_mode):
    old = os.umask(mask)
    try:
        with staged_output(tmp_path / "out", overwrite=False) as work:
            write_text_atomic(work / "report.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "out" / "report.json").stat().st_mode & 0o777 == file_mode


# -- full and read-only disks ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_while_writing_is_exit_3_and_leaves_nothing(small_disk):
    out = small_disk / "out"
    with pytest.raises(EnvironmentProblem, match="No space left on device"), \
            staged_output(out, overwrite=False) as work:
        (work / "model.tflite").write_bytes(b"\0" * 1024 * 1024)
    assert not out.exists() and not list(small_disk.glob(".out.*"))


def test_report_onto_a_full_disk_is_exit_3_in_one_line(small_disk, tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    from sample_report import make_report

    report = tmp_path / "report.json"
    report.write_text(json.dumps(make_report()))
    (small_disk / "filler").write_bytes(b"\0" * 60 * 1024)
    result = CliRunner().invoke(cli, ["report", str(report), "--format", "html",
                                      "--out", str(small_disk / "r.html")])
    assert result.exit_code == 3
    assert "No space left" in one_line(result)
    assert not (small_disk / "r.html").exists()


def test_out_that_cannot_be_created_is_exit_3_in_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["compress", str(RECIPE), "--out", "/proc/no/such/out", *QUICK])
    assert result.exit_code == 3
    assert "cannot create a staging folder" in one_line(result)


def test_usage_errors_are_one_line_exit_2():
    for argv in (["benchmark", "x.tflite", "--runs", "0"], ["nosuch"], ["check"],
                 ["inspect", "x.tflite", "--pattern", "9:4"]):
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 2, argv
        assert one_line(result).startswith("edgeopt: error: "), argv


def test_read_only_output_folder_is_exit_3_before_any_work(small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = CliRunner().invoke(cli, ["compress", str(RECIPE), "--out", str(small_disk / "out"), *QUICK])
    assert result.exit_code == 3
    assert "Read-only file system" in one_line(result)


# -- signals mid-run ---------------------------------------------------------------------------------


class _Finalizer:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # lands inside __del__: Python prints and drops it


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_swallowed_by_a_finalizer_still_keeps_the_result_out(tmp_path, monkeypatch):
    previous = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(outputs, "_INTERRUPTED", outputs.threading.Event())
    out = tmp_path / "out"
    try:
        outputs.catch_interrupts()
        with pytest.raises(KeyboardInterrupt), staged_output(out, overwrite=False) as work:
            (work / "model.tflite").write_bytes(b"x")
            _Finalizer()  # dropped at once; the KeyboardInterrupt never reaches this block
            (work / "report.json").write_text("{}")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert outputs.interrupted()
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def _start(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [str(ROOT / ".venv" / "bin" / "edgeopt"), "compress", str(RECIPE), "--out", str(out),
           "--set", "train.epochs=40", "--set", "train.early_stopping=null", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_staging(parent: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not list(parent.glob(".out.tmp-*")):
        assert process.poll() is None and time.monotonic() < deadline, "the run never started staging"
        time.sleep(0.2)
    time.sleep(4)  # into training


@pytest.mark.integration
def test_sigint_mid_run_exits_130_in_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    process = _start(out)
    _wait_for_staging(tmp_path, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert [line for line in stderr.splitlines() if line.strip()][-1].startswith("edgeopt: interrupted")
    assert "Traceback" not in stderr
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


@pytest.mark.integration
def test_sigkill_mid_run_leaves_a_staging_folder_the_next_run_removes(tmp_path):
    out = tmp_path / "out"
    process = _start(out)
    _wait_for_staging(tmp_path, process)
    process.kill()
    process.communicate(timeout=60)
    leftovers = list(tmp_path.glob(".out.tmp-*"))
    assert len(leftovers) == 1 and not out.exists()
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "edgeopt"), "compress", str(RECIPE),
                           "--out", str(out), *QUICK], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"removed {leftovers[0]}" in done.stderr
    assert not list(tmp_path.glob(".out.tmp-*")) and (out / "report.json").is_file()
