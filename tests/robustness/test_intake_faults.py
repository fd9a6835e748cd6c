"""Faults at intake that the table of bad inputs cannot show: the path check and the CLI's last resort
on their own, a FIFO given as a model, a CSV's byte-order mark, a dangling --out for the library, and
the log of TensorFlow's messages (kept only when it holds something). No TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from edgeopt.cli import EdgeoptGroup
from edgeopt.errors import InputError
from edgeopt.paths import NAME_MAX, PATH_MAX, check_path, path_problem


@contextlib.contextmanager
def fifo(path: Path, seconds: float = 30):
    """A named pipe at ``path``; a reader left waiting on it is released after ``seconds`` (it then
    reads nothing), so that a hang fails the test instead of blocking the run."""
    os.mkfifo(path)

    def release() -> None:
        with contextlib.suppress(OSError):  # nobody waiting (ENXIO): all is well
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(seconds, release)
    timer.daemon = True
    timer.start()
    try:
        yield path
    finally:
        timer.cancel()


# -- the path check ------------------------------------------------------------------------------------


def test_names_up_to_name_max_and_paths_below_path_max_are_accepted(tmp_path):
    assert path_problem(tmp_path / ("a" * NAME_MAX)) is None
    deep = "/tmp/" + "d/" * ((PATH_MAX - 1 - len("/tmp/")) // 2)
    assert len(deep) < PATH_MAX and path_problem(deep) is None
    assert check_path(str(tmp_path / "new" / "out"), "--out") == tmp_path / "new" / "out"


def test_a_name_over_name_max_is_refused_naming_the_option_and_a_shortened_path(tmp_path):
    with pytest.raises(InputError) as caught:
        check_path(tmp_path / ("a" * (NAME_MAX + 1)) / "out", "--out")
    message = str(caught.value)
    assert message.startswith(f"--out: the path {str(tmp_path)[:20]}")
    assert f"a name of {NAME_MAX + 1} bytes" in message and "..." in message
    assert len(message) < 250


def test_a_path_of_path_max_bytes_or_a_nul_byte_is_refused():
    assert "more than the 4,095" in path_problem("/" + "d" * (PATH_MAX - 1))
    assert "NUL byte" in path_problem("model\0.keras")


def test_a_symbolic_link_loop_is_refused_where_pathlib_would_read_not_found(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    assert "loop of symbolic links" in path_problem(tmp_path / "loop")
    assert "loop of symbolic links" in path_problem(tmp_path / "loop" / "model.keras")


# -- the CLI's last resort -----------------------------------------------------------------------------


@pytest.mark.parametrize("code, says", [(errno.ENAMETOOLONG, "is too long"), (errno.ELOOP, "loop")])
def test_an_unchecked_path_the_system_refuses_is_one_line_exit_2(code, says):
    @click.group(cls=EdgeoptGroup)
    def group() -> None:
        pass

    @group.command()
    def fail() -> None:
        raise OSError(code, os.strerror(code), "/somewhere/" + "x" * 400)

    result = CliRunner().invoke(group, ["fail"])
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("edgeopt: error: the path /somewhere/xxx") and says in lines[0]
    assert "..." in lines[0] and len(lines[0]) < 200


# -- a model that is not a regular file ----------------------------------------------------------------


def test_a_fifo_given_as_a_model_is_refused_not_waited_on(tmp_path):
    from edgeopt.modelfile import sniff

    refused = pytest.raises(InputError, match=r"not a regular file \(a FIFO\)")
    with fifo(tmp_path / "model.keras") as path, refused:
        sniff(path)


def test_a_model_that_is_a_symbolic_link_loop_is_named_as_one(tmp_path):
    from edgeopt.modelfile import sniff

    (tmp_path / "model.keras").symlink_to("model.keras")
    with pytest.raises(InputError, match="loop of symbolic links"):
        sniff(tmp_path / "model.keras")


# -- data ----------------------------------------------------------------------------------------------


def test_a_csv_with_a_byte_order_mark_reads_its_first_column_by_name(tmp_path):
    from edgeopt.data import load_source
    from edgeopt.sources import DataSpec

    rows = "".join(f"{i % 2},{i},{i * 2}\n" for i in range(20))
    (tmp_path / "table.csv").write_text("label,a,b\n" + rows, encoding="utf-8-sig")
    data = load_source(DataSpec(path=str(tmp_path / "table.csv")))
    assert data.preprocessing["features"] == ["a", "b"] and data.task == "classification"
    with pytest.raises(InputError) as caught:
        load_source(DataSpec(path=str(tmp_path / "table.csv"), label="species"))
    assert "(columns: label, a, b)" in str(caught.value)


def test_image_sizes_up_to_the_limit_are_accepted_and_beyond_it_refused():
    from pydantic import ValidationError

    from edgeopt.sources import MAX_IMAGE_SIDE, DataSpec

    assert DataSpec(path="images", image_size=(MAX_IMAGE_SIDE, 1)).image_size == (MAX_IMAGE_SIDE, 1)
    for size in [(MAX_IMAGE_SIDE + 1, 8), (0, 8), (8, -1)]:
        with pytest.raises(ValidationError, match="image_size"):
            DataSpec(path="images", image_size=size)


# -- outputs -------------------------------------------------------------------------------------------


def test_a_dangling_symlink_out_is_refused_before_any_work_and_left_alone(tmp_path):
    from edgeopt.outputs import check_output

    (tmp_path / "out").symlink_to(tmp_path / "gone")
    with pytest.raises(InputError, match="symbolic link to .*gone, which does not exist"):
        check_output(tmp_path / "out", overwrite=True)
    assert (tmp_path / "out").is_symlink()


# -- the log of TensorFlow's messages ------------------------------------------------------------------

LOG_SCRIPT = """
import os, sys
from edgeopt.errors import InputError
from edgeopt.logs import captured

try:
    with captured():
        os.write(2, sys.argv[1].encode())
        if sys.argv[2] == "fail":
            raise InputError("data: bad")
except InputError as exc:
    print(exc)
"""
IMPORT_NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                "I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. You may see ...\n"
                "I0000 00:00:1.0 1 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
                "not be used.\n")


def _run_captured(tmp_path: Path, written: str, outcome: str) -> tuple[str, list[Path]]:
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run([sys.executable, "-c", LOG_SCRIPT, written, outcome], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "TMPDIR": str(temp)})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.strip(), sorted(temp.iterdir())


@pytest.mark.parametrize("outcome", ["fail", "succeed"])
def test_a_log_of_import_notices_only_is_neither_named_nor_left_behind(tmp_path, outcome):
    message, left = _run_captured(tmp_path, IMPORT_NOISE, outcome)
    assert message == ("data: bad" if outcome == "fail" else "")
    assert left == []


def test_a_failed_run_keeps_a_log_that_holds_something_and_names_it(tmp_path):
    message, left = _run_captured(tmp_path, IMPORT_NOISE + "E0000 converter: op not supported\n", "fail")
    assert len(left) == 1 and left[0].name.startswith("edgeopt-") and left[0].suffix == ".log"
    assert message == f"data: bad (TensorFlow's messages: {left[0]})"
    assert "op not supported" in left[0].read_text()
