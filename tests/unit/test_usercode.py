"""The user's loaders and custom-object modules run behind one guard: whatever they raise, on import
or when called, and a sys.exit() of any code, is one line naming them, with exit 2. No TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeopt.data import load_dataset
from edgeopt.errors import InputError
from edgeopt.sources import DataSpec

# case -> (module name, module source, the words the one line must hold)
CASES = {
    "syntax error on import": ("ud_syntax", "def load(:\n", "importing ud_syntax raised SyntaxError"),
    "raises on import": ("ud_raises", "raise LookupError('no table')\n",
                         "importing ud_raises raised LookupError: no table"),
    "exits 0 on import": ("ud_exit_import", "import sys\nsys.exit(0)\n", "called sys.exit(0)"),
    "exits 0 when called": ("ud_exit_call", "import sys\ndef load():\n    sys.exit(0)\n",
                            "ud_exit_call:load called sys.exit(0)"),
    "exits with a message": ("ud_exit_text", "def load():\n    raise SystemExit('bye')\n",
                             "called sys.exit('bye')"),
    "a BaseException": ("ud_base", "class Odd(BaseException):\n    pass\ndef load():\n    raise Odd('odd')\n",
                        "raised Odd: odd"),
    "no such function": ("ud_nofunc", "def other():\n    pass\n", "has no function load"),
    "ragged lists": ("ud_ragged", "def load():\n    return [[1.0, 2.0], [3.0]], [0, 1]\n", "ud_ragged"),
    "string labels": ("ud_strings", "import numpy as np\ndef load():\n"
                      "    return np.ones((8, 3)), ['a'] * 8\n", "ud_strings"),
}


@pytest.mark.parametrize("case", CASES)
def test_user_code_that_fails_is_one_input_error_naming_it(tmp_path, monkeypatch, case):
    name, source, words = CASES[case]
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(InputError) as caught:
            load_dataset(DataSpec(loader=f"{name}:load"))
    finally:
        sys.modules.pop(name, None)
    message = str(caught.value)
    assert words in message and "\n" not in message and f"data.loader {name}:load" in message


def test_a_loader_that_exits_0_makes_the_cli_exit_2_with_one_line(tmp_path):
    """SystemExit(0) from user code must never become edgeopt's own success."""
    (tmp_path / "quitter.py").write_text("import sys\ndef load():\n    print('bye')\n    sys.exit(0)\n")
    result = subprocess.run(
        [sys.executable, "-m", "edgeopt.cli", "compress", "--model", "facepose_mlp",
         "--data", "{loader: 'quitter:load'}", "--out", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin"},
        timeout=300)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgeopt: error:")]
    assert len(lines) == 1 and "quitter:load called sys.exit(0)" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "out").exists()
