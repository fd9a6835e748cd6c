"""The Python API: prepare once, compress many times without retraining or re-measuring the reference."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeopt
from edgeopt import pipeline, train
from edgeopt.errors import EdgeoptError, InputError
from edgeopt.types import REFERENCE, Report

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
QUICK = ["train.epochs=3", "stages.0.epochs=1", "stages.1.epochs=1", "benchmark.runs=5",
         "benchmark.warmup=1", "benchmark.min_seconds=0.05"]


@pytest.fixture(scope="module")
def counted():
    """Every fit and every .tflite measurement made while the module's fixtures and tests run."""
    calls = {"fit": [], "measure": []}
    real_fit, real_measure = train.fit, pipeline.measure

    def fit(*args, **kwargs):
        calls["fit"].append(kwargs.get("what", "training"))
        return real_fit(*args, **kwargs)

    def measure(name, *args, **kwargs):
        calls["measure"].append(name)
        return real_measure(name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "fit", fit)
        patch.setattr(pipeline, "measure", measure)
        yield calls


@pytest.fixture(scope="module")
def prepared(counted):
    recipe = edgeopt.load_recipe(ROOT / "models/digits_cnn/recipe.yaml", QUICK)
    return edgeopt.prepare(recipe)


def test_a_second_compress_reuses_the_training_and_the_reference(prepared, counted):
    weights = [w.copy() for w in prepared.model.get_weights()]
    assert counted["fit"] == ["training"] and counted["measure"] == [REFERENCE]
    first = edgeopt.compress(prepared)
    second = edgeopt.compress(prepared, overrides=["stages.0.target_sparsity=0.9"])
    # one fit per stage per compress, none for training again; each compress measures its exports only
    assert counted["fit"] == ["training", *["stage 1 (prune)", "stage 2 (quantize)"] * 2]
    assert counted["measure"] == [REFERENCE, "float32", "int8", "float32", "int8"]
    # the prepared model is untouched, and both results carry the very same reference
    assert all(np.array_equal(a, b) for a, b in zip(weights, prepared.model.get_weights(), strict=True))
    assert first.report.reference == second.report.reference == prepared.reference
    assert first.files[f"{REFERENCE}.tflite"] == second.files[f"{REFERENCE}.tflite"]
    # and the second compress did what it was asked
    assert second.recipe.stages[0].target_sparsity == 0.9
    assert second.report.variant("int8").sparsity > first.report.variant("int8").sparsity


def test_compress_refuses_changes_that_need_a_new_prepare(prepared):
    with pytest.raises(InputError, match="train cannot change"):
        edgeopt.compress(prepared, overrides=["train.epochs=9"])


def test_result_saves_a_complete_folder_and_never_replaces_one(prepared, tmp_path):
    result = edgeopt.compress(prepared, stages=[], export=["float32"])
    folder = result.save(tmp_path / "run")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["model.keras", f"{REFERENCE}.tflite", "float32.tflite", "labels.txt", "recipe.resolved.yaml",
         "report.json", "report.md", "report.html"])
    assert (folder / "labels.txt").read_text().split() == [str(digit) for digit in range(10)]  # digits: 0..9
    on_disk = edgeopt.load_report(folder / "report.json")
    assert on_disk == Report.from_json(json.loads((folder / "report.json").read_text()))
    assert on_disk.to_json() == result.report.to_json()
    with pytest.raises(EdgeoptError):
        result.save(folder)
    assert "Result" in type(result).__name__ and "| " in result._repr_markdown_()


def test_importing_edgeopt_and_its_api_does_not_import_tensorflow():
    code = "import sys, edgeopt; edgeopt.prepare; edgeopt.check; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_readme_notebook_example_runs_as_written(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "models" / "digits_cnn").mkdir(parents=True)
    (tmp_path / "models" / "digits_cnn" / "recipe.yaml").write_text(
        (ROOT / "models/digits_cnn/recipe.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert list(tmp_path.glob("runs/*/report.json"))


def test_every_thread_count_of_the_benchmark_section_is_measured(prepared):
    result = edgeopt.compress(prepared, stages=[], export=["float32"], overrides=["benchmark.threads=[1,2]"])
    latency = result.report.variant("float32").latency
    assert sorted(latency) == ["local", "local#2t"]
    assert latency["local"].threads == 1 and latency["local#2t"].threads == 2 and latency["local#2t"].ok
    assert sorted(result.report.reference.latency) == ["local", "local#2t"]  # measured on them too
