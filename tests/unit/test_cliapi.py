"""The command line calls the API (issue: "The CLI calls the API"): ``tune``, ``diagnose``, ``report``,
``models``, ``train`` and ``inspect`` do their work through :mod:`edgeopt.api`, so replacing an API
function there changes what the command does; and the API functions they call behave on tiny inputs.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from sample_report import make_report
from tflite_builder import fully_connected_tflite

import edgeopt.api as api
from edgeopt.budgets import Budgets
from edgeopt.cli import cli
from edgeopt.errors import InputError
from edgeopt.logs import NOT_CAPTURING, Capture
from edgeopt.report import load_report, render
from edgeopt.types import Inspection, LatencyKey
from edgeopt.zoo import ZOO, ZooEntry


class Stop(InputError):
    """Raised by a fake API function once it has recorded its call: the command ends with exit 2."""


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


# -- tune -> api.search ------------------------------------------------------------------------------------


def _outcome(best=None, budgets=("max_gzip_kb=12",)):
    return SimpleNamespace(best=best, goal=SimpleNamespace(budgets=budgets),
                           to_json=lambda: {"trials": [], "best": best},
                           summary=lambda: ["summary line"])


def test_tune_runs_api_search_with_every_option(monkeypatch, tmp_path):
    calls = []

    def search(recipe, study, **kwargs):
        calls.append((recipe, study, kwargs))
        kwargs["progress"]("trial 1 done")
        return _outcome()

    monkeypatch.setattr(api, "search", search)
    study = tmp_path / "study"
    run = _invoke("tune", "r.yaml", "--study", str(study), "--budget", "max_gzip_kb=12", "--budget",
                  "max_accuracy_drop=0.01", "--strategy", "tpe", "--trials", "3", "--objective", "pareto",
                  "--workers", "2", "--seed", "5", "--pruner", "median", "--cpus-per-trial", "4",
                  "--set", "train.epochs=2", "--force-new", "--json")
    assert len(calls) == 1
    recipe, folder, kwargs = calls[0]
    assert (recipe, folder) == (Path("r.yaml"), study)
    assert kwargs["budgets"] == ("max_gzip_kb=12", "max_accuracy_drop=0.01")
    assert kwargs["overrides"] == ("train.epochs=2",)
    assert (kwargs["strategy"], kwargs["trials"], kwargs["objective"], kwargs["workers"], kwargs["seed"],
            kwargs["pruner"], kwargs["cpus_per_trial"], kwargs["force_new"], kwargs["executor"],
            kwargs["address"]) == ("tpe", 3, "pareto", 2, 5, "median", 4, True, "local", None)
    assert isinstance(kwargs["log"], Capture)  # the command's capture: api.search starts none of its own
    # What the command prints and its exit code are the outcome's, as before.
    assert json.loads(run.stdout) == {"trials": [], "best": None}
    assert "trial 1 done" in run.stderr and "summary line" in run.stderr
    assert f"wrote {study}/tune.json, tune.html" in run.stderr
    assert run.exit_code == 1  # no trial met the budgets


def test_tune_verbose_hands_api_search_a_capture_that_captures_nothing(monkeypatch, tmp_path):
    seen = []

    def search(*_args, log, **_kwargs):
        seen.append(log)
        return _outcome(best="t", budgets=())

    monkeypatch.setattr(api, "search", search)
    run = _invoke("tune", "r.yaml", "--study", str(tmp_path / "s"), "--verbose")
    assert run.exit_code == 0, run.output  # a best trial: exit 0
    assert seen == [NOT_CAPTURING]  # so api.search starts no capture of its own: TensorFlow speaks
    assert "best.yaml" in run.stderr


def _fake_tune(seen):
    def tune(options, progress):
        seen.append(options)
        warnings.warn("tensorflow noise", UserWarning, stacklevel=1)
        return "outcome"
    return tune


def test_api_search_is_quiet_unless_given_the_callers_capture(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(api, "tune", _fake_tune(seen))
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert api.search("r.yaml", "s") == "outcome"
    assert not shown and "tensorflow noise" not in capsys.readouterr().err  # went to the log
    with warnings.catch_warnings(record=True) as shown:  # --verbose: the command's capture is nothing
        warnings.simplefilter("always")
        api.search("r.yaml", "s", log=NOT_CAPTURING)
    assert [str(w.message) for w in shown] == ["tensorflow noise"]
    assert seen[0].budgets == ()  # none: the recipe's budgets section


def _given(monkeypatch, budgets):
    """What api.search hands the study as its budgets."""
    seen = []
    monkeypatch.setattr(api, "tune", _fake_tune(seen))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api.search("r.yaml", "s", budgets=budgets)
    return seen[0].budgets


def test_api_search_takes_budgets_as_a_budgets_object_a_mapping_or_strings(monkeypatch):
    budgets = Budgets(max_gzip_kb=12, max_size_kb=1 / 3, max_accuracy_drop=0.0012345678901,
                      max_latency_ms={"local": 2.5})
    assert _given(monkeypatch, budgets) is budgets  # the object itself: never written out and read back
    mapping = {"max_size_kb": 20, "max_latency_ms": {"local#2t": 4}}
    given = _given(monkeypatch, mapping)
    assert given == Budgets.model_validate(mapping)
    (limit,) = [lim for lim in given.limits() if lim.name == "max_latency_ms"]
    assert limit.target == LatencyKey.parse("local#2t")  # the thread count kept
    assert _given(monkeypatch, ["max_gzip_kb=12"]) == ("max_gzip_kb=12",)
    assert _given(monkeypatch, "max_gzip_kb=12") == ("max_gzip_kb=12",)  # one flag, not its letters
    assert _given(monkeypatch, None) == ()


@pytest.mark.parametrize(("budgets", "message"), [
    ({"max_size_kb": -1}, "budgets.max_size_kb"),
    ({"max_sise_kb": 1}, "max_sise_kb"),
])
def test_api_search_refuses_a_bad_budgets_mapping_before_any_work(monkeypatch, budgets, message):
    seen = []
    monkeypatch.setattr(api, "tune", _fake_tune(seen))
    with pytest.raises(InputError, match=message):
        api.search("r.yaml", "s", budgets=budgets)
    assert not seen


# -- diagnose -> api.diagnose ----------------------------------------------------------------------------


def test_diagnose_runs_api_diagnose(monkeypatch, tmp_path):
    calls = []
    diagnosis = SimpleNamespace(lines=lambda: ["worst layer: dense"], to_json=lambda: {"layers": ["dense"]})

    def diagnose(recipe, **kwargs):
        calls.append((recipe, kwargs))
        return diagnosis

    monkeypatch.setattr(api, "diagnose", diagnose)
    run = _invoke("diagnose", str(tmp_path / "m.keras"), "--data", "digits", "--samples", "7")
    assert run.exit_code == 0, run.output
    (recipe, kwargs), = calls
    assert recipe.model == str(tmp_path / "m.keras") and recipe.data == "digits"
    assert kwargs["samples"] == 7 and isinstance(kwargs["log"], Capture)
    assert run.stdout == "worst layer: dense\n"
    run = _invoke("diagnose", str(tmp_path / "m.keras"), "--data", "digits", "--json")
    assert json.loads(run.stdout) == {"layers": ["dense"]}


def test_api_diagnose_refuses_a_zoo_model_and_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="zoo model with nothing trained"):
        api.diagnose(api.load_recipe(None, model="digits_cnn", data="digits"))
    with pytest.raises(InputError, match="not found"):
        api.diagnose(api.load_recipe(None, model=str(tmp_path / "absent.keras"), data="digits"))


def test_api_diagnose_runs_quietly_and_passes_samples(monkeypatch, capsys):
    calls = []

    def diagnose_recipe(recipe, *, samples):
        calls.append(samples)
        warnings.warn("tensorflow noise", UserWarning, stacklevel=1)
        return "diagnosis"

    monkeypatch.setattr(api, "diagnose_recipe", diagnose_recipe)
    recipe = api.load_recipe(None, model="digits_cnn", data="digits")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert api.diagnose(recipe, samples=9) == "diagnosis"
    assert calls == [9] and not shown and "tensorflow noise" not in capsys.readouterr().err


# -- report -> api.load_report, api.render_report --------------------------------------------------------


def test_report_runs_api_load_report_and_render_report(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(api, "load_report", lambda path: calls.append(("load", path)) or "the report")
    monkeypatch.setattr(api, "render_report",
                        lambda report, fmt: calls.append(("render", report, fmt)) or "rendered\n")
    run = _invoke("report", str(tmp_path / "report.json"), "--format", "md")
    assert run.exit_code == 0, run.output
    assert calls == [("load", tmp_path / "report.json"), ("render", "the report", "md")]
    assert run.stdout == "rendered\n"


@pytest.mark.parametrize("fmt", ["table", "md", "html", "json"])
def test_api_render_report_renders_a_report_a_path_or_a_mapping(tmp_path, fmt):
    data = make_report("classification")
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    expected = render(load_report(path), fmt)
    assert api.render_report(path, fmt) == expected
    assert api.render_report(str(path), fmt) == expected
    assert api.render_report(api.load_report(path), fmt) == expected
    assert api.render_report(data, fmt) == expected
    if fmt != "json":
        run = _invoke("report", str(path), "--format", fmt)
        assert run.exit_code == 0 and run.stdout == expected


def test_api_render_report_refuses_an_unknown_format_and_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="unknown report format 'pdf'"):
        api.render_report(make_report("regression"), "pdf")
    with pytest.raises(InputError, match="file not found"):
        api.render_report(tmp_path / "absent.json")


# -- models -> api.models ----------------------------------------------------------------------------------


def test_models_lists_what_api_models_returns(monkeypatch):
    entry = ZooEntry(name="tiny_net", builder="x:y", task="regression", default_data="facepose", params=1234,
                     about="a test model")
    monkeypatch.setattr(api, "models", lambda: [entry])
    run = _invoke("models", "--json")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout) == [{"name": "tiny_net", "task": "regression", "data": "facepose",
                                       "params": 1234, "about": "a test model"}]
    table = _invoke("models").stdout
    assert "tiny_net" in table and "1,234" in table and "digits_cnn" not in table


def test_api_models_are_the_zoo_as_typed_rows():
    rows = api.models()
    assert [row.name for row in rows] == list(ZOO)
    assert all(isinstance(row, ZooEntry) and row.params > 0 and row.default_data for row in rows)
    rows.clear()  # a copy: the zoo itself is untouched
    assert api.models()


# -- train: typed changes, a name is never read as YAML ------------------------------------------------


def _train_recipe(monkeypatch, *args: str):
    recipes = []

    def run(recipe, out_dir, **kwargs):
        recipes.append(recipe)
        raise Stop("stopped before training")

    monkeypatch.setattr(api, "run", run)
    result = _invoke("train", *args)
    assert result.exit_code == 2 and "stopped before training" in result.output, result.output
    return recipes[0]


@pytest.mark.parametrize(("model", "data"), [("on", "1e3"), ("1.0", "yes"), ("null", "on"), ("1e3", "null")])
def test_train_keeps_a_model_or_data_named_like_a_yaml_value_a_string(monkeypatch, tmp_path, model, data):
    recipe = _train_recipe(monkeypatch, model, "--data", data, "--out", str(tmp_path / "o"), "--seed", "3",
                           "--epochs", "2")
    assert recipe.model == model and recipe.data == data
    assert (recipe.seed, recipe.train.epochs, recipe.stages, list(recipe.export)) == (3, 2, [], ["float32"])


def test_train_defaults_and_overrides_as_before(monkeypatch, tmp_path):
    recipe = _train_recipe(monkeypatch, "digits_cnn", "--out", str(tmp_path / "o"), "--trust-model",
                           "--set", "train.epochs=4", "--set", "seed=7")
    assert recipe.model == "digits_cnn" and recipe.data == "digits"  # the zoo model's data
    assert recipe.train.epochs == 4 and recipe.seed == 7  # --set comes last, over train's own
    assert recipe.trust_model is True
    recipe = _train_recipe(monkeypatch, "digits_cnn", "--data", "{path: images/, image_size: [8, 8]}",
                           "--out", str(tmp_path / "o"))
    assert recipe.data.path == "images/" and list(recipe.data.image_size) == [8, 8]  # a mapping stays one
    assert recipe.train.epochs == 30


# -- inspect -> api.inspection (typed) ---------------------------------------------------------------------


def _tflite(path: Path) -> Path:
    """A one-op FULLY_CONNECTED model (x[1,4] @ w[2,4]^T -> y[1,2]), half of w zero."""
    path.write_bytes(fully_connected_tflite(np.array([[0, 0, 1, 2], [3, 4, 0, 0]], dtype=np.float32)))
    return path


def test_api_inspection_is_the_typed_reading_of_inspect_tflite(tmp_path):
    path = _tflite(tmp_path / "m.tflite")
    info = api.inspection(path, pattern=(1, 4))
    assert isinstance(info, Inspection)
    assert info.to_json() == api.inspect_tflite(path, pattern=(1, 4))
    assert info.params == 8 and info.macs == 8 and info.sparsity == 0.5
    assert info.per_tensor["w"].role == "weight" and info.per_tensor["w"].shape == [2, 4]
    assert info.pattern_structure == "1:4" and info.pattern_share == 0.0 and info.pattern_2_4 == 1.0
    assert info.ops == {"FULLY_CONNECTED": 1}
    assert [d.name for d in info.input_details] == ["x"]


def test_inspect_reads_the_typed_inspection(monkeypatch, tmp_path):
    path = _tflite(tmp_path / "m.tflite")
    typed = api.inspection(path, pattern=(1, 4))
    calls = []
    monkeypatch.setattr(api, "inspect_tflite", lambda *a, **k: pytest.fail("the CLI read the dict"))
    monkeypatch.setattr(api, "inspection", lambda p, pattern: calls.append((p, pattern)) or typed)
    run = _invoke("inspect", str(path), "--pattern", "1:4")
    assert run.exit_code == 0, run.output
    assert calls == [(path, (1, 4))]
    row = next(line.split() for line in run.stdout.splitlines() if line.startswith("w "))
    assert row == ["w", "weight", "2x4", "float32", "0.500", "5", "1.000", "0.000"]  # 2 non-zeros per 4
    header = next(line.split() for line in run.stdout.splitlines() if line.startswith("tensor "))
    assert header[-2:] == ["2:4", "1:4"]  # the asked pattern's column beside 2:4
    run = _invoke("inspect", str(path), "--json")
    assert run.exit_code == 0 and json.loads(run.stdout) == typed.to_json()


def test_inspect_table_shows_a_missing_figure_as_a_dash(monkeypatch):
    info = Inspection.from_json({"size_bytes": 10, "params": 0, "macs": 0, "sparsity": 0.0, "ops": {},
                                 "pattern": {"structure": "2:4", "share": None},
                                 "int8_op_coverage": 0.0, "quantize_ops": {"QUANTIZE": 0, "DEQUANTIZE": 0},
                                 "per_tensor": {"c": {"role": "constant", "shape": [3], "dtype": "float32",
                                                      "sparsity": None, "unique_values": 3,
                                                      "pattern_2_4": None}}})
    monkeypatch.setattr(api, "inspection", lambda *a, **k: info)
    run = _invoke("inspect", "m.tflite")
    assert run.exit_code == 0, run.output
    assert next(line.split() for line in run.stdout.splitlines() if line.startswith("c ")) == [
        "c", "constant", "3", "float32", "-", "3", "-"]
