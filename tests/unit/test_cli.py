"""CLI exit codes and messages for bad input, and the fast paths that must not import TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from edgeopt.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_help_and_models_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgeopt.cli import cli\n"
        "for args in (['--help'], ['models'], ['compress', '--help'], ['models', '--json']):\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_models_lists_the_zoo_with_parameter_counts():
    result = run("models", "--json")
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["facepose_mlp"]["params"] == 33_482
    assert rows["digits_cnn"]["task"] == "classification"


def test_missing_recipe_is_exit_2_one_line(tmp_path):
    result = run("compress", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "recipe file not found" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_out_of_range_value_is_exit_2_naming_the_field(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: digits_cnn\ndata: digits\nstages:\n  - kind: prune\n    target_sparsity: 1.5\n")
    result = run("compress", str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "stages[0].target_sparsity" in result.output


def test_unknown_key_is_exit_2_with_suggestion(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: digits_cnn\ndata: digits\nexprot: [int8]\n")
    result = run("compress", str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "did you mean 'export'" in result.output


def test_existing_output_without_overwrite_is_exit_2_and_left_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = run("compress", "models/digits_cnn/recipe.yaml", "--out", str(out))
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "keep.txt").read_text() == "precious" and len(list(out.iterdir())) == 1


def test_dump_recipe_reproduces_a_command_line_only_run():
    result = run(
        "compress",
        "--set",
        "model=digits_cnn",
        "--set",
        "data=digits",
        "--set",
        "train.epochs=3",
        "--dump-recipe",
    )
    assert result.exit_code == 0
    assert "epochs: 3" in result.output and "model: digits_cnn" in result.output


def test_compress_without_out_is_a_usage_error():
    result = run("compress", "models/digits_cnn/recipe.yaml")
    assert result.exit_code == 2 and "--out" in result.output
