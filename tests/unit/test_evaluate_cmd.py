"""`edgeopt evaluate` refuses what it cannot run in one line with exit 2, and a crash in the child is exit 1.

These need no TensorFlow; the measured figures on real .tflite files are in
tests/integration/test_evaluate.py.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.cli import cli
from edgeopt.errors import CheckFailed


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeopt: error: "), result.output
    return lines[0]


def test_a_missing_model_file_is_exit_2_naming_it(tmp_path):
    line = one_line_error(run("evaluate", str(tmp_path / "gone.tflite"), "--data", "digits"), 2)
    assert "gone.tflite" in line and "not found" in line


def test_a_file_that_is_not_a_flatbuffer_is_exit_2(tmp_path):
    fake = tmp_path / "model.tflite"
    fake.write_text("this is not a flatbuffer at all")
    line = one_line_error(run("evaluate", str(fake), "--data", "digits"), 2)
    assert "not a TFLite flatbuffer" in line


def test_a_folder_given_as_the_model_is_exit_2(tmp_path):
    line = one_line_error(run("evaluate", str(tmp_path), "--data", "digits"), 2)
    assert "folder" in line


def test_data_that_is_not_yaml_is_exit_2_naming_the_option(tmp_path):
    line = one_line_error(run("evaluate", str(tmp_path / "m.tflite"), "--data", "{path: [unclosed"), 2)
    assert "--data" in line


def test_data_is_required_and_batch_must_be_positive(tmp_path):
    assert run("evaluate", str(tmp_path / "m.tflite")).exit_code == 2
    line = one_line_error(run("evaluate", str(tmp_path / "m.tflite"), "--data", "digits", "--batch", "0"), 2)
    assert "--batch" in line


def test_evaluate_help_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgeopt.cli import cli\n"
        "result = CliRunner().invoke(cli, ['evaluate', '--help'])\n"
        "assert result.exit_code == 0 and 'test split' in result.output, result.output\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_child_killed_by_a_signal_fails_the_evaluation_in_one_line(tmp_path, monkeypatch):
    from edgeopt.evaluate import predict_in_child

    # Stands in for a Python whose LiteRT kernel segfaults: the child dies by SIGSEGV, printing nothing.
    crashing = tmp_path / "python"
    crashing.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crashing.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(crashing))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(CheckFailed, match=r"crashed \(SIGSEGV\)") as caught:
        predict_in_child(Path("model.tflite"), np.zeros((2, 3), dtype=np.float32))
    assert caught.value.exit_code == 1 and "\n" not in str(caught.value)
    assert not list(scratch.iterdir())  # the inputs handed to the child are gone too
