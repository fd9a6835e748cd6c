"""Every bad input: one line on stderr, a documented exit code, no traceback, earlier outputs untouched.

One table, one row per bad input: a name stating the behaviour, the files to build in tmp_path, the
command line and the expected exit code (2 bad input, 3 environment; see edgeopt.errors). Rows that
have an output option also build a pre-existing output first and check it is left byte-identical.
No row needs TensorFlow: recipes are validated with ``compress --dump-recipe`` (or refused before the
run starts), datasets are refused before any model is built, .tflite files are built here with the
flatbuffer schema that ships with ai_edge_litert. A few rows run a real child process, where the
process itself matters (a fresh recursion limit, a hang that must not happen).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tflite_builder import fully_connected_tflite

from edgeopt.cli import cli

Builder = Callable[[Path], None]

RECIPE_HEAD = "model: facepose_mlp\ndata: facepose\n"
ALIAS_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 10) if prev else ', '.join(['lol'] * 10)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi", strict=True)
)


# -- builders ----------------------------------------------------------------------------------------


def text(name: str, content: str) -> Builder:
    def build(root: Path) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return build


def binary(name: str, content: bytes) -> Builder:
    def build(root: Path) -> None:
        (root / name).write_bytes(content)
    return build


def folder(name: str) -> Builder:
    def build(root: Path) -> None:
        (root / name).mkdir(parents=True, exist_ok=True)
    return build


def both(*builders: Builder) -> Builder:
    def build(root: Path) -> None:
        for builder in builders:
            builder(root)
    return build


def fifo(name: str) -> Builder:
    """A named pipe where a file is expected. A reader left waiting on it is released after 30 s (it
    then reads nothing), so that a hang fails its test instead of blocking the run."""
    def release(path: Path) -> None:
        with contextlib.suppress(OSError):  # nobody waiting (ENXIO), or the folder is gone: all is well
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    def build(root: Path) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(root / name)
        timer = threading.Timer(30, release, [root / name])
        timer.daemon = True
        timer.start()
    return build


def symlink(name: str, target: str) -> Builder:
    def build(root: Path) -> None:
        (root / name).symlink_to(target)
    return build


def png(name: str, size: tuple[int, int] = (4, 4), copies: int = 1) -> Builder:
    """A PNG of ``size`` (width, height); with ``copies``, that many (``name`` holds ``{i}``)."""
    def build(root: Path) -> None:
        from PIL import Image

        for i in range(copies):
            path = root / name.format(i=i)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, (200, 100, 0)).save(path)
    return build


def deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def good_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.random((12, 4), dtype=np.float32), "y_train": np.arange(12) % 3,
            "x_test": rng.random((6, 4), dtype=np.float32), "y_test": np.arange(6) % 3}


def npz(name: str = "data.npz", **changes: np.ndarray | None) -> Builder:
    """An .npz of the good arrays with some replaced (None drops one); saved as numpy.savez does."""
    def build(root: Path) -> None:
        arrays = {**good_arrays(), **changes}
        np.savez(root / name, **{k: v for k, v in arrays.items() if v is not None})
    return build


def npz_declaring(shape: tuple[int, ...]) -> Builder:
    """An .npz whose x_train header declares ``shape`` but stores only a few bytes."""
    def build(root: Path) -> None:
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        with zipfile.ZipFile(root / "data.npz", "w") as archive:
            for key, array in good_arrays().items():
                with archive.open(f"{key}.npy", "w") as member:
                    if key == "x_train":
                        np.lib.format.write_array_header_1_0(member, header)
                        member.write(bytes(64))
                    else:
                        np.lib.format.write_array(member, array)
    return build


def tflite(name: str = "m.tflite", mutate: Callable | None = None, cut: int | None = None) -> Builder:
    def build(root: Path) -> None:
        data = fully_connected_tflite(mutate=mutate)
        (root / name).write_bytes(data if cut is None else data[:cut])
    return build


def _metric(value: float) -> dict:
    return {"accuracy": {"value": value, "unit": "fraction", "higher_is_better": True,
                         "provenance": "LiteRT on the test split"}}


def report_doc(**changes) -> dict:
    """A small valid schema-1 report; ``changes`` replace top-level fields."""
    variants = [{"name": name, "format": fmt, "path": f"{name}.tflite", "status": "ok", "reason": None,
                 "size_bytes": size, "gzip_bytes": size - 100, "metrics": _metric(accuracy), "latency": {},
                 "inspect": {"ops": {"FULLY_CONNECTED": 1}, "int8_op_coverage": cover, "float_ops": []}}
                for name, fmt, size, accuracy, cover in (("trained_float32", "float32", 4000, 0.95, 0.0),
                                                         ("int8", "int8", 1200, 0.94, 1.0))]
    doc = {"schema_version": 1, "edgeopt_version": "0.1.0", "name": "tiny", "task": "classification",
           "status": "ok", "created_utc": "2025-01-01T00:00:00+00:00",
           "recipe": {"model": "digits_cnn", "data": "digits"}, "environment": {}, "data": {"name": "digits"},
           "variants": variants, "checks": []}
    doc.update(changes)
    return doc


def report_file(name: str = "report.json", **changes) -> Builder:
    return text(name, json.dumps(report_doc(**changes)))


def report_text(name: str, replace: str, by: str) -> Builder:
    """A valid report whose JSON text has its first ``replace`` swapped for ``by`` (for raw numbers)."""
    def build(root: Path) -> None:
        content = json.dumps(report_doc())
        assert replace in content
        (root / name).write_text(content.replace(replace, by, 1))
    return build


def with_budgets(budgets: object) -> Builder:
    return report_file(recipe={"model": "digits_cnn", "data": "digits", "budgets": budgets})


GOOD_REPORTS = both(report_file("report.json"), report_file("baseline.json"))
LONG_NAME = "a" * 300  # more than NAME_MAX (255 bytes)
LONG_PATH = "/tmp/" + "d/" * 2100  # more than PATH_MAX (4096 bytes)
PRESET = ["compress", "--preset", "ptq-int8", "--out", "{tmp}/out", "--overwrite"]
OLD_OUTPUT = "old output, must survive\n"
QUICK_RUN = ["--runs", "1", "--warmup", "0", "--min-seconds", "0"]


# -- the table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: build files, run argv ({tmp} is tmp_path), expect ``code`` and ``says`` in the line."""

    id: str
    build: Builder
    argv: list[str]
    code: int
    says: str
    keep: str | None = None  # a pre-existing output (file, relative to tmp) that must stay byte-identical
    subprocess: bool = False  # run a real child process


def recipe_case(id: str, content: str, says: str, *sets: str, subprocess: bool = False) -> Case:
    argv = ["compress", "{tmp}/recipe.yaml", "--dump-recipe", *[f"--set={s}" for s in sets]]
    return Case(id, text("recipe.yaml", content), argv, 2, says, subprocess=subprocess)


def set_case(id: str, setting: str, says: str) -> Case:
    return recipe_case(id, RECIPE_HEAD, says, setting)


def data_case(id: str, build: Builder, says: str) -> Case:
    """A recipe reading {tmp}/data.npz, run into an existing --out with --overwrite: refused, out kept."""
    recipe = text("recipe.yaml", "model: facepose_mlp\ndata: {tmp}/data.npz\nexport: [float32]\n")

    def build_all(root: Path) -> None:
        recipe(root)
        path = root / "recipe.yaml"
        path.write_text(path.read_text().replace("{tmp}", str(root)))
        build(root)
    argv = ["compress", "{tmp}/recipe.yaml", "--out", "{tmp}/out", "--overwrite"]
    return Case(id, build_all, argv, 2, says, keep="out/report.json")


def tolerances_case(id: str, build: Builder, says: str) -> Case:
    return Case(id, both(GOOD_REPORTS, build),
                ["check", "{tmp}/report.json", "--baseline", "{tmp}/baseline.json", "--tolerances",
                 "{tmp}/tol.yaml", "--junit", "{tmp}/junit.xml"], 2, says, keep="junit.xml")


def report_case(id: str, build: Builder, says: str) -> Case:
    return Case(id, build, ["report", "{tmp}/report.json", "--out", "{tmp}/out.md", "--overwrite"], 2, says,
                keep="out.md")


def check_case(id: str, build: Builder, says: str) -> Case:
    argv = ["check", "{tmp}/report.json", "--baseline", "{tmp}/baseline.json",
            "--markdown", "{tmp}/summary.md"]
    return Case(id, both(report_file("baseline.json"), build), argv, 2, says, keep="summary.md")


def intake_case(id: str, build: Builder, data: str, says: str, subprocess: bool = False) -> Case:
    """``evaluate`` of a good .tflite on ``data`` ({tmp} is tmp_path): the data is refused before any
    TensorFlow. A loader module needs ``subprocess`` (its folder, the child's cwd, is on sys.path)."""
    return Case(id, both(tflite(), build), ["evaluate", "{tmp}/m.tflite", "--data", data], 2, says,
                subprocess=subprocess)


def loader(name: str, body: str) -> Builder:
    return text(f"{name}.py", f"import numpy as np\n\n\ndef load():\n    return {body}\n")


def recipe_in_tmp(content: str) -> Builder:
    """recipe.yaml holding ``content`` with {tmp} replaced by tmp_path."""
    def build(root: Path) -> None:
        (root / "recipe.yaml").write_text(content.replace("{tmp}", str(root)))
    return build


def inspect_case(id: str, build: Builder, says: str, *extra: str) -> Case:
    return Case(id, build, ["inspect", "{tmp}/m.tflite", *extra], 2, says)


def bench_case(id: str, options: list[str], says: str) -> Case:
    argv = ["benchmark", "{tmp}/m.tflite", "--out", "{tmp}/bench", "--overwrite", *options]
    return Case(id, tflite(), argv, 2, says, keep="bench/benchmark.json")


def drop_sparsity_order(model) -> None:
    from ai_edge_litert import schema_py_generated as schema

    sparsity = schema.SparsityParametersT()
    sparsity.traversalOrder, sparsity.dimMetadata = None, [schema.DimensionMetadataT()]
    model.subgraphs[0].tensors[1].sparsity = sparsity


def set_field(getter: Callable, name: str, value: object) -> Callable:
    def mutate(model) -> None:
        setattr(getter(model), name, value)
    return mutate


def tensor(i: int) -> Callable:
    return lambda model: model.subgraphs[0].tensors[i]


def first_op(model):
    return model.subgraphs[0].operators[0]


CASES = [
    # -- recipe files --------------------------------------------------------------------------------
    Case("binary_recipe_is_not_a_text_file", binary("recipe.yaml", bytes(range(256)) * 4),
         ["compress", "{tmp}/recipe.yaml", "--dump-recipe"], 2, "not a text file"),
    Case("utf16_recipe_is_not_a_text_file", binary("recipe.yaml", RECIPE_HEAD.encode("utf-16")),
         ["compress", "{tmp}/recipe.yaml", "--dump-recipe"], 2, "not a text file"),
    recipe_case("yaml_recipe_nested_100k_deep_is_refused", "model: " + deep_json(), "levels deep",
                subprocess=True),
    recipe_case("json_recipe_nested_100k_deep_is_refused", deep_json(), "levels deep"),
    recipe_case("recipe_nested_70_deep_in_model_options_is_refused",
                RECIPE_HEAD + "model_options: " + deep_json(70), "levels deep"),
    recipe_case("billion_laughs_recipe_is_refused_without_expanding", ALIAS_BOMB, "alias bomb",
                subprocess=True),
    recipe_case("alias_bomb_inside_model_options_is_refused",
                RECIPE_HEAD + "model_options:\n" + "".join(f"  {line}\n" for line in ALIAS_BOMB.splitlines()),
                "alias bomb"),
    recipe_case("self_referencing_alias_is_refused", RECIPE_HEAD + "model_options: &loop {a: *loop}\n",
                "cycle"),
    recipe_case("yaml_list_is_not_a_recipe", "- model: facepose_mlp\n", "must be a YAML mapping"),
    recipe_case("unclosed_bracket_names_the_line", RECIPE_HEAD + "export: [float32\n",
                "not valid YAML at line"),
    recipe_case("python_object_tag_is_not_built",
                RECIPE_HEAD + "name: !!python/object/apply:os.system [id]\n", "not valid YAML"),
    recipe_case("five_thousand_digit_seed_is_refused", RECIPE_HEAD + "seed: 1" + "0" * 5000 + "\n",
                "thousands of digits"),
    recipe_case("month_13_date_is_refused", RECIPE_HEAD + "name: 2024-13-01\n", "cannot be read"),
    recipe_case("empty_recipe_names_the_missing_field", "", "model: required field is missing"),
    recipe_case("unknown_key_suggests_the_right_one", RECIPE_HEAD + "trian: {epochs: 1}\n",
                "did you mean 'train'"),
    Case("missing_recipe_file_is_named", lambda root: None,
         ["compress", "{tmp}/nope.yaml", "--dump-recipe"], 2, "recipe file not found"),
    Case("recipe_that_is_a_folder_is_named", folder("recipes"),
         ["compress", "{tmp}/recipes", "--dump-recipe"], 2, "is a folder"),
    Case("invalid_recipe_leaves_an_existing_output_folder_alone",
         both(text("recipe.yaml", RECIPE_HEAD + "train: {epochs: .inf}\n"),
              text("out/report.json", OLD_OUTPUT)),
         ["compress", "{tmp}/recipe.yaml", "--out", "{tmp}/out", "--overwrite"], 2, "train.epochs",
         keep="out/report.json"),
    # -- --set values and field bounds ---------------------------------------------------------------
    set_case("set_value_that_is_not_yaml_says_to_quote", "train.epochs=[", "quote a value"),
    Case("set_without_equals_shows_the_form", text("recipe.yaml", RECIPE_HEAD),
         ["compress", "{tmp}/recipe.yaml", "--dump-recipe", "--set", "train.epochs"], 2,
         "expected KEY=VALUE"),
    recipe_case("set_below_a_scalar_is_not_a_section", RECIPE_HEAD + "train: {epochs: 3}\n",
                "is not a section", "train.epochs.x=1"),
    set_case("set_value_nested_100_deep_is_refused", "name=" + deep_json(100), "levels deep"),
    set_case("negative_seed_in_the_recipe_is_refused", "seed=-1",
             "seed: input should be greater than or equal to 0"),
    set_case("seed_of_2_to_the_32_is_refused", "seed=4294967296",
             "seed: input should be less than 4294967296"),
    set_case("fractional_seed_is_refused", "seed=1.5", "seed:"),
    set_case("infinite_end_epoch_is_refused_with_its_path",
             "stages=[{kind: prune, target_sparsity: 0.5, end_epoch: .inf}]", "stages[0].end_epoch"),
    set_case("nan_min_seconds_in_the_recipe_is_refused", "benchmark.min_seconds=.nan",
             "benchmark.min_seconds: input should be a finite"),
    set_case("runs_of_1e20_is_refused", "benchmark.runs=1.0e+20", "benchmark.runs"),
    set_case("a_billion_threads_is_refused", "benchmark.threads=1000000000",
             "benchmark.threads[0]: input should be less"),
    set_case("a_billion_epochs_is_refused", "train.epochs=1000000000", "train.epochs: input should be less"),
    set_case("batch_size_of_1e12_is_refused", "train.batch_size=1.0e+12", "train.batch_size"),
    set_case("warmup_of_1e15_is_refused", "benchmark.warmup=1.0e+15", "benchmark.warmup"),
    set_case("infinite_min_seconds_is_refused", "benchmark.min_seconds=.inf", "benchmark.min_seconds"),
    set_case("infinite_learning_rate_is_refused", "train.learning_rate=.inf", "train.learning_rate"),
    set_case("nan_l2_is_refused", "train.l2=.nan", "train.l2"),
    set_case("nan_validation_split_is_refused", "train.validation_split=.nan", "train.validation_split"),
    set_case("infinite_size_budget_is_refused", "budgets.max_size_kb=.inf", "budgets.max_size_kb"),
    set_case("nan_latency_budget_is_refused", "budgets.max_latency_ms={local: .nan}",
             "budgets.max_latency_ms.local"),
    set_case("infinite_distill_temperature_is_refused",
             "stages=[{kind: distill, teacher: facepose_mlp, temperature: .inf}]", "stages[0].temperature"),
    set_case("huge_teacher_epochs_is_refused",
             "stages=[{kind: distill, teacher: facepose_mlp, teacher_epochs: 99999999}]",
             "stages[0].teacher_epochs"),
    set_case("huge_prune_frequency_is_refused",
             "stages=[{kind: prune, target_sparsity: 0.5, frequency: 1000000000000}]", "stages[0].frequency"),
    set_case("huge_early_stopping_patience_is_refused", "train.early_stopping={patience: 10000000}",
             "train.early_stopping.patience"),
    set_case("nan_in_model_options_is_refused", "model_options={width: [1, .nan]}",
             "'width[1]' must be a finite"),
    set_case("date_in_model_options_is_refused", "model_options={when: 2024-01-01}",
             "'when' must be a string"),
    # -- tolerances files ----------------------------------------------------------------------------
    tolerances_case("binary_tolerances_file_is_refused", binary("tol.yaml", b"\xff\xfe\x00" * 50),
                    "not a text file"),
    tolerances_case("tolerances_nested_100k_deep_are_refused", text("tol.yaml", deep_json()), "levels deep"),
    tolerances_case("tolerances_alias_bomb_is_refused", text("tol.yaml", ALIAS_BOMB), "alias bomb"),
    tolerances_case("nan_tolerance_is_refused", text("tol.yaml", "latency_ratio_rel: .nan\n"),
                    "latency_ratio_rel"),
    tolerances_case("negative_metric_tolerance_is_refused",
                    text("tol.yaml", "metric_abs: {accuracy: -0.5}\n"),
                    "accuracy must be >= 0"),
    tolerances_case("tolerances_list_is_refused", text("tol.yaml", "[1, 2]\n"), "must be a mapping"),
    tolerances_case("tolerances_folder_is_refused", folder("tol.yaml"), "is a folder"),
    # -- reports for `edgeopt report` ----------------------------------------------------------------
    report_case("binary_report_is_not_a_text_file", binary("report.json", b"\x89PNG\r\n\x1a\n" + bytes(200)),
                "not a text file"),
    report_case("report_nested_100k_deep_is_refused", text("report.json", deep_json()), "levels deep"),
    report_case("report_with_an_object_nested_70_deep_is_refused",
                report_text("report.json", '"environment": {}', '"environment": ' + nested_object(70)),
                "levels deep"),
    report_case("report_number_1e400_is_out_of_range",
                report_text("report.json", '"size_bytes": 4000', '"size_bytes": 1e400'), "out of range"),
    report_case("report_integer_of_5000_digits_is_out_of_range",
                report_text("report.json", '"size_bytes": 4000', '"size_bytes": 4' + "0" * 5000),
                "out of range"),
    report_case("report_integer_beyond_int64_is_out_of_range",
                report_text("report.json", '"size_bytes": 4000', '"size_bytes": 99999999999999999999'),
                "out of range"),
    report_case("report_nan_literal_is_refused",
                report_text("report.json", '"size_bytes": 4000', '"size_bytes": NaN'), "NaN is not valid"),
    report_case("empty_report_is_not_json", text("report.json", ""), "not valid report JSON"),
    report_case("report_array_is_not_a_report", text("report.json", "[]"), "must be a JSON object"),
    report_case("report_that_is_a_folder_is_named", folder("report.json"), "is a folder"),
    report_case("report_of_another_schema_version_is_refused", report_file(schema_version=7),
                "schema_version 7"),
    report_case("report_with_budgets_as_a_list_is_refused", with_budgets([1]),
                "recipe.budgets must be an object"),
    Case("report_out_that_is_a_folder_is_refused",
         both(report_file(), folder("outdir"), text("keep.md", "x")),
         ["report", "{tmp}/report.json", "--out", "{tmp}/outdir"], 2, "is a folder", keep="keep.md"),
    Case("report_out_that_exists_needs_overwrite", report_file(),
         ["report", "{tmp}/report.json", "--out", "{tmp}/out.md"], 2, "pass --overwrite", keep="out.md"),
    # -- `edgeopt check`: report, baseline, outputs --------------------------------------------------
    check_case("check_binary_report_is_refused", binary("report.json", bytes(range(128, 256))),
               "not a text file"),
    check_case("check_report_nested_100k_deep_is_refused", text("report.json", deep_json()), "levels deep"),
    check_case("budget_variants_that_are_not_names_are_refused",
               with_budgets({"max_size_kb": 1, "variants": [1, {}]}),
               "recipe.budgets.variants[0] must be a string"),
    check_case("budget_latency_as_a_list_is_refused", with_budgets({"max_latency_ms": [1]}),
               "recipe.budgets.max_latency_ms must be an object"),
    check_case("budget_size_as_text_is_refused", with_budgets({"max_size_kb": "small"}),
               "recipe.budgets.max_size_kb must be a number"),
    check_case("baseline_of_another_model_is_refused",
               text("report.json", json.dumps(report_doc(name="other"))), "baseline is for name"),
    Case("baseline_nested_100k_deep_is_refused", both(report_file(), text("baseline.json", deep_json())),
         ["check", "{tmp}/report.json", "--baseline", "{tmp}/baseline.json"], 2, "levels deep",
         subprocess=True),
    Case("baseline_with_1e400_is_out_of_range",
         both(report_file(), report_text("baseline.json", '"size_bytes": 1200', '"size_bytes": 1e400')),
         ["check", "{tmp}/report.json", "--baseline", "{tmp}/baseline.json"], 2, "out of range"),
    Case("missing_baseline_says_how_to_create_it", report_file(),
         ["check", "{tmp}/report.json", "--baseline", "{tmp}/baseline.json"], 2, "--update-baseline"),
    Case("update_baseline_into_a_folder_is_refused", both(report_file(), folder("baseline.json")),
         ["check", "{tmp}/report.json", "--baseline", "{tmp}/baseline.json", "--update-baseline"], 2,
         "is a folder"),
    Case("bad_report_leaves_the_baseline_it_would_update",
         both(text("report.json", deep_json()), report_file("baseline.json")),
         ["check", "{tmp}/report.json", "--baseline", "{tmp}/baseline.json", "--update-baseline"], 2,
         "levels deep", keep="baseline.json"),
    Case("junit_into_a_folder_is_refused_before_comparing", both(GOOD_REPORTS, folder("junit")),
         ["check", "{tmp}/report.json", "--baseline", "{tmp}/baseline.json", "--junit", "{tmp}/junit",
          "--markdown", "{tmp}/summary.md"], 2, "--junit", keep="summary.md"),
    Case("markdown_under_a_file_cannot_be_written", both(GOOD_REPORTS, text("blocker", "a file")),
         ["check", "{tmp}/report.json", "--baseline", "{tmp}/baseline.json", "--markdown",
          "{tmp}/blocker/summary.md", "--junit", "{tmp}/junit.xml"], 3, "is a file, not a folder",
         keep="junit.xml"),
    # -- datasets (.npz) -----------------------------------------------------------------------------
    data_case("scalar_x_arrays_are_refused", npz(x_train=np.float32(1), x_test=np.float32(2)),
              "x_train has shape ()"),
    data_case("string_x_arrays_are_refused", npz(x_train=np.array(["a"] * 12), x_test=np.array(["b"] * 6)),
              "x_train holds <U1 values"),
    data_case("pickled_object_arrays_are_never_unpickled",
              npz(x_train=np.array([{}] * 12, dtype=object), x_test=np.array([{}] * 6, dtype=object)),
              "never loads"),
    data_case("complex_x_arrays_are_refused", npz(x_train=np.zeros((12, 4), np.complex64)), "complex64"),
    data_case("one_dimensional_x_train_is_refused", npz(x_train=np.zeros(12, np.float32)),
              "x_train has shape (12,)"),
    data_case("x_samples_with_no_values_are_refused",
              npz(x_train=np.zeros((12, 0), np.float32), x_test=np.zeros((6, 0), np.float32)),
              "hold no values"),
    data_case("three_dimensional_y_is_refused",
              npz(y_train=np.zeros((12, 2, 2), np.float32), y_test=np.zeros((6, 2, 2), np.float32)),
              "y_train has shape (12, 2, 2)"),
    data_case("scalar_y_is_refused", npz(y_train=np.int64(1)), "y_train has shape ()"),
    data_case("class_label_of_1e9_is_refused_not_built",
              npz(y_train=np.array([0, 1, 2] * 3 + [0, 1, 10**9])), "at most 10,000 classes"),
    data_case("class_labels_with_gaps_are_refused",
              npz(y_train=np.array([0, 5] * 6), y_test=np.array([0, 5] * 3)), "dense 0..5"),
    data_case("test_labels_unseen_in_training_are_refused", npz(y_test=np.arange(6)), "no sample of class 3"),
    data_case("negative_class_label_is_refused", npz(y_train=np.array([-1, 0, 1] * 4)), "negative label -1"),
    data_case("float_test_labels_with_integer_train_labels_are_refused",
              npz(y_test=np.zeros(6, np.float32)), "y_test holds float32"),
    data_case("train_and_test_samples_of_different_shapes_are_refused",
              npz(x_test=np.zeros((6, 5), np.float32)), "they must match"),
    data_case("sample_counts_that_differ_are_refused", npz(y_train=np.arange(11) % 3), "they must match"),
    data_case("missing_arrays_are_named", npz(y_test=None), "missing arrays y_test"),
    data_case("infinite_inputs_are_refused", npz(x_train=np.full((12, 4), np.inf, np.float32)), "infinite"),
    data_case("inputs_beyond_float32_are_refused", npz(x_train=np.full((12, 4), 1e300)), "float32-range"),
    data_case("text_file_named_npz_is_refused", text("data.npz", "x_train,y_train\n1,2\n"),
              "not an .npz archive"),
    data_case("damaged_zip_is_refused", binary("data.npz", b"PK\x03\x04" + bytes(range(60))),
              "not a readable .npz"),
    data_case("array_declaring_terabytes_is_refused_before_reading", npz_declaring((10**9, 1000)), "GB"),
    data_case("array_header_larger_than_its_data_is_truncated", npz_declaring((1000, 4)), "truncated"),
    # -- data that is not a regular file: refused, never waited on -----------------------------------
    intake_case("fifo_in_place_of_a_csv_is_refused_not_waited_on", fifo("data.csv"), "{tmp}/data.csv",
                "data.csv is not a regular file (a FIFO)"),
    intake_case("fifo_in_place_of_an_npz_is_refused_not_waited_on", fifo("data.npz"), "{tmp}/data.npz",
                "data.npz is not a regular file (a FIFO)"),
    intake_case("fifo_among_the_images_is_refused_not_waited_on",
                both(png("images/cat/1.png"), fifo("images/cat/2.png"), png("images/dog/1.png")),
                "{tmp}/images", "2.png is not a regular file (a FIFO)"),
    intake_case("fifo_as_the_loader_module_is_not_imported", fifo("fifo_loader.py"),
                '{loader: "fifo_loader:load"}', "cannot import fifo_loader", subprocess=True),
    # -- what a loader returns -----------------------------------------------------------------------
    intake_case("loader_returning_complex_features_is_refused_without_a_warning",
                loader("complex_loader", "np.ones((8, 4), complex), np.arange(8) % 2"),
                '{loader: "complex_loader:load"}', "x holds complex numbers; features must be real numbers",
                subprocess=True),
    intake_case("loader_returning_ragged_lists_is_refused",
                loader("ragged_loader", "[[1.0, 2.0], [3.0]] * 4, [0, 1] * 4"),
                '{loader: "ragged_loader:load"}', "x does not form an array: its samples differ in shape",
                subprocess=True),
    intake_case("loader_returning_text_labels_is_refused",
                loader("text_loader", "[[1.0, 2.0]] * 8, ['cat', 'dog'] * 4"),
                '{loader: "text_loader:load"}', "y holds text; labels must be real numbers", subprocess=True),
    # -- image sizes: refused before any image is read -----------------------------------------------
    set_case("image_size_of_zero_is_refused_naming_the_field", "data={path: images, image_size: [0, 0]}",
             "image_size: (height, width) must each be from 1 to 4096 pixels, got [0, 0]"),
    set_case("image_size_of_20000_is_refused_before_reading_an_image",
             "data={path: images, image_size: [20000, 20000]}", "image_size: (height, width) must each be"),
    intake_case("image_wider_than_the_limit_at_its_own_size_is_refused",
                both(png("images/cat/1.png", (4097, 2)), png("images/dog/1.png")), "{tmp}/images",
                "is 2x4097 pixels, more than 4096 per side; set data.image_size"),
    intake_case("images_that_would_take_gigabytes_are_refused_before_reading",
                both(png("images/cat/{i}.png", copies=40), png("images/dog/{i}.png", copies=40)),
                "{path: {tmp}/images, image_size: [4096, 4096]}", "80 images of 4096x4096x3"),
    # -- paths the file system cannot take -----------------------------------------------------------
    Case("out_with_a_300_byte_name_is_refused", text("recipe.yaml", RECIPE_HEAD),
         ["compress", "{tmp}/recipe.yaml", "--out", "{tmp}/" + LONG_NAME], 2, "--out: the path"),
    Case("out_longer_than_path_max_is_refused", text("recipe.yaml", RECIPE_HEAD),
         ["compress", "{tmp}/recipe.yaml", "--out", LONG_PATH], 2, "bytes long, more than the 4,095"),
    Case("model_with_a_300_byte_name_is_refused", lambda root: None,
         [*PRESET, "--model", "{tmp}/" + LONG_NAME + ".keras", "--data", "facepose"], 2,
         "--model: the path", keep="out/report.json"),
    Case("data_with_a_300_byte_name_is_refused", lambda root: None,
         [*PRESET, "--model", "facepose_mlp", "--data", "{tmp}/" + LONG_NAME + ".npz"], 2,
         "--data: the path", keep="out/report.json"),
    Case("inspected_tflite_with_a_300_byte_name_is_refused", lambda root: None,
         ["inspect", "{tmp}/" + LONG_NAME + ".tflite"], 2, "MODEL_PATH: the path"),
    Case("evaluated_tflite_with_a_300_byte_name_is_refused", lambda root: None,
         ["evaluate", "{tmp}/" + LONG_NAME + ".tflite", "--data", "digits"], 2, "MODEL_PATH: the path"),
    Case("benchmarked_tflite_with_a_300_byte_name_is_refused", lambda root: None,
         ["benchmark", "{tmp}/" + LONG_NAME + ".tflite"], 2, "MODELS: the path"),
    Case("junit_with_a_300_byte_name_is_refused_before_comparing", GOOD_REPORTS,
         ["check", "{tmp}/report.json", "--baseline", "{tmp}/baseline.json", "--junit",
          "{tmp}/" + LONG_NAME + ".xml", "--markdown", "{tmp}/summary.md"], 2, "--junit: the path",
         keep="summary.md"),
    Case("report_out_longer_than_path_max_is_refused", report_file(),
         ["report", "{tmp}/report.json", "--out", LONG_PATH + "r.md"], 2, "--out: the path"),
    set_case("recipe_model_with_a_300_byte_name_is_refused", f"model=/tmp/{LONG_NAME}.keras",
             "model: the path /tmp/aaa"),
    set_case("recipe_data_longer_than_path_max_is_refused", f"data={LONG_PATH}", "data: the path /tmp/d/d"),
    set_case("recipe_data_mapping_path_with_a_300_byte_name_is_refused", f"data={{path: /tmp/{LONG_NAME}}}",
             "data: path: the path /tmp/aaa"),
    recipe_case("recipe_file_model_with_a_300_byte_name_is_refused",
                f"model: {LONG_NAME}.keras\ndata: facepose\n", "model: the path aaa"),
    # -- symbolic links: loops, and an --out pointing at nothing -------------------------------------
    Case("model_that_is_a_symlink_loop_is_refused", symlink("loop", "loop"),
         [*PRESET, "--model", "{tmp}/loop", "--data", "facepose"], 2, "--model: the path",
         keep="out/report.json"),
    Case("recipe_model_that_is_a_symlink_loop_is_refused",
         both(symlink("loop", "loop"), recipe_in_tmp("model: {tmp}/loop\ndata: facepose\n")),
         ["compress", "{tmp}/recipe.yaml", "--out", "{tmp}/out", "--overwrite"], 2,
         "loop of symbolic links", keep="out/report.json"),
    Case("recipe_data_that_is_a_symlink_loop_is_refused",
         both(symlink("data.npz", "data.npz"), recipe_in_tmp("model: facepose_mlp\ndata: {tmp}/data.npz\n")),
         ["compress", "{tmp}/recipe.yaml", "--out", "{tmp}/out", "--overwrite"], 2,
         "data: the path", keep="out/report.json"),
    Case("out_that_is_a_symlink_loop_is_refused",
         both(text("recipe.yaml", RECIPE_HEAD), symlink("out", "out")),
         ["compress", "{tmp}/recipe.yaml", "--out", "{tmp}/out"], 2, "--out: the path"),
    Case("out_that_is_a_dangling_symlink_is_refused_before_any_work",
         both(text("recipe.yaml", RECIPE_HEAD), symlink("out", "missing")),
         ["compress", "{tmp}/recipe.yaml", "--out", "{tmp}/out", "--overwrite"], 2,
         "is a symbolic link to missing, which does not exist"),
    Case("benchmark_out_that_is_a_dangling_symlink_is_refused", both(tflite(), symlink("bench", "missing")),
         ["benchmark", "{tmp}/m.tflite", "--target", "estimate:pi4", "--out", "{tmp}/bench"], 2,
         "/bench is a symbolic link to missing"),
    Case("report_out_that_is_a_dangling_symlink_is_refused",
         both(report_file(), symlink("out.md", "missing")),
         ["report", "{tmp}/report.json", "--out", "{tmp}/out.md", "--overwrite"], 2,
         "/out.md is a symbolic link to missing"),
    # -- inspect -------------------------------------------------------------------------------------
    inspect_case("text_file_is_not_a_tflite", text("m.tflite", "hello, not a model\n"), "not a TFLite"),
    inspect_case("empty_file_is_not_a_tflite", text("m.tflite", ""), "0 bytes"),
    inspect_case("random_bytes_are_not_a_tflite", binary("m.tflite", np.random.default_rng(3).bytes(5000)),
                 "not a TFLite flatbuffer"),
    inspect_case("truncated_tflite_is_refused", tflite(cut=200), "truncated or corrupt"),
    inspect_case("truncated_tflite_is_refused_in_json_too", tflite(cut=300), "truncated or corrupt",
                 "--json"),
    inspect_case("directory_is_not_a_tflite", folder("m.tflite"), "not a file"),
    inspect_case("missing_tflite_is_named", lambda root: None, "file not found"),
    inspect_case("operator_using_a_tensor_that_does_not_exist_is_corrupt",
                 tflite(mutate=set_field(first_op, "inputs", [0, 99, -1])), "uses tensor 99"),
    inspect_case("opcode_index_out_of_range_is_corrupt", tflite(mutate=set_field(first_op, "opcodeIndex", 7)),
                 "has opcode 7"),
    inspect_case("negative_tensor_shape_is_corrupt", tflite(mutate=set_field(tensor(1), "shape", [-5, 4])),
                 "has shape [-5, 4]"),
    inspect_case("tensor_buffer_out_of_range_is_corrupt", tflite(mutate=set_field(tensor(1), "buffer", 40)),
                 "refers to buffer 40"),
    inspect_case("subgraph_output_out_of_range_is_corrupt",
                 tflite(mutate=lambda m: setattr(m.subgraphs[0], "outputs", [9])), "output 9"),
    inspect_case("incomplete_sparsity_parameters_are_corrupt", tflite(mutate=drop_sparsity_order),
                 "incomplete sparsity"),
    inspect_case("weights_shorter_than_their_shape_are_corrupt",
                 tflite(mutate=set_field(tensor(1), "shape", [3, 4])), "holds 8 values"),
    # -- benchmark -----------------------------------------------------------------------------------
    bench_case("ssh_user_with_a_space_is_bad_input", ["--target", "ssh://a b@host"], "bad SSH target"),
    bench_case("ssh_host_that_reads_as_an_option_is_bad_input", ["--target", "ssh://-oProxyCommand=x"],
               "bad SSH target"),
    bench_case("ssh_user_that_reads_as_an_option_is_bad_input", ["--target", "ssh://-l@host"],
               "bad SSH target"),
    bench_case("ssh_host_with_a_semicolon_is_bad_input", ["--target", "ssh://pi@ho;st"], "bad SSH target"),
    bench_case("ssh_host_with_command_substitution_is_bad_input", ["--target", "ssh://pi@ho$(id)st"],
               "bad SSH target"),
    bench_case("ssh_user_with_backquotes_is_bad_input", ["--target", "ssh://p`id`@host"], "bad SSH target"),
    bench_case("ssh_port_0_is_bad_input", ["--target", "ssh://pi@host:0"], "port in 1-65535"),
    bench_case("ssh_port_99999_is_bad_input", ["--target", "ssh://pi@host:99999"], "port in 1-65535"),
    bench_case("misspelt_target_suggests_the_right_one", ["--target", "locl"], "did you mean 'local'"),
    bench_case("unknown_estimate_device_lists_the_known_ones", ["--target", "estimate:pi2"], "estimate:pi3"),
    bench_case("ten_million_runs_are_refused", ["--runs", "10000000"],
               "--runs: input should be less than or equal to 1000000"),
    bench_case("a_thousand_threads_are_refused", ["--threads", "1,1000"],
               "--threads: input should be less than or equal to 256"),
    bench_case("a_billion_warmup_invokes_are_refused", ["--warmup", "1000000000"],
               "--warmup: input should be less than or equal to 100000"),
    bench_case("negative_benchmark_seed_is_refused", ["--seed", "-1"],
               "--seed: input should be greater than or equal to 0"),
    bench_case("nan_benchmark_min_seconds_is_refused", ["--min-seconds", "nan"],
               "--min-seconds: input should be a finite number"),
    bench_case("infinite_timeout_is_refused", ["--timeout", "inf"],
               "--timeout: input should be a finite number"),
    bench_case("zero_timeout_is_refused", ["--timeout", "0"], "--timeout: input should be greater than 0"),
    bench_case("a_target_given_twice_is_refused", ["--target", "local", "--target", "local"],
               "--target: 'local' is listed twice"),
    Case("ssh_config_that_does_not_exist_is_refused", tflite(),
         ["benchmark", "{tmp}/m.tflite", "--target", "ssh://pi@host", "--ssh-config", "{tmp}/nothere"], 2,
         "nothere does not exist"),
    Case("inputs_file_that_is_text_is_refused_not_unpickled", both(tflite(), text("in.npy", "1,2,3,4\n")),
         ["benchmark", "{tmp}/m.tflite", "--inputs", "{tmp}/in.npy", *QUICK_RUN], 2, "neither a .npy nor"),
    Case("inputs_file_of_objects_is_never_unpickled",
         both(tflite(), lambda root: np.save(root / "in.npy", np.array([{}] * 4, dtype=object))),
         ["benchmark", "{tmp}/m.tflite", "--inputs", "{tmp}/in.npy", *QUICK_RUN], 2, "never loaded"),
    Case("inputs_file_of_strings_is_refused",
         both(tflite(), lambda root: np.save(root / "in.npy", np.array(["a"] * 4))),
         ["benchmark", "{tmp}/m.tflite", "--inputs", "{tmp}/in.npy", *QUICK_RUN], 2, "holds <U1 values"),
    Case("benchmark_model_that_is_a_folder_is_named", folder("m.tflite"),
         ["benchmark", "{tmp}/m.tflite", "--target", "estimate:pi4"], 2, "is a folder"),
    Case("benchmark_of_a_text_file_is_bad_input", text("m.tflite", "not a model"),
         ["benchmark", "{tmp}/m.tflite", "--target", "estimate:pi4"], 2, "no TFL3 identifier"),
    Case("estimate_of_a_structurally_corrupt_model_is_bad_input",
         tflite(mutate=set_field(first_op, "inputs", [0, 99, -1])),
         ["benchmark", "{tmp}/m.tflite", "--target", "estimate:pi4"], 2, "corrupt TFLite flatbuffer"),
    Case("benchmark_out_that_is_a_file_is_refused", both(tflite(), text("bench", OLD_OUTPUT)),
         ["benchmark", "{tmp}/m.tflite", "--target", "estimate:pi4", "--out", "{tmp}/bench"], 2,
         "is a file; give the path of a folder", keep="bench"),
    Case("existing_benchmark_json_needs_overwrite", tflite(),
         ["benchmark", "{tmp}/m.tflite", "--target", "estimate:pi4", "--out", "{tmp}/bench"], 2,
         "pass --overwrite", keep="bench/benchmark.json"),
]


def _ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


_ids_are_unique()


def _run(case: Case, tmp: Path) -> tuple[int, str, str]:
    argv = [arg.replace("{tmp}", str(tmp)) for arg in case.argv]
    if case.subprocess:
        done = subprocess.run([sys.executable, "-m", "edgeopt.cli", *argv], capture_output=True, text=True,
                              timeout=60, cwd=tmp)
        return done.returncode, done.stdout, done.stderr
    result = CliRunner().invoke(cli, argv)
    if result.exc_info is not None and result.exc_info[0] is not SystemExit:
        raise AssertionError(f"{case.id}: escaped as {result.exc_info[0].__name__}: {result.exc_info[1]}")
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_with_its_exit_code_and_leaves_outputs_alone(case: Case, tmp_path: Path):
    case.build(tmp_path)
    kept = None
    if case.keep is not None:
        keep = tmp_path / case.keep
        keep.parent.mkdir(parents=True, exist_ok=True)
        if not keep.exists():
            keep.write_text(OLD_OUTPUT)
        kept = keep.read_bytes()
    code, stdout, stderr = _run(case, tmp_path)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stdout + stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("edgeopt: error: "), lines[0]
    assert case.says in lines[0], lines[0]
    assert code == case.code, lines[0]
    assert stdout == "", stdout
    if kept is not None:
        assert (tmp_path / case.keep).read_bytes() == kept


# -- the same inputs, where the answer is a result rather than a refusal ------------------------------


def test_estimate_rows_render_as_a_table_and_keep_their_model_path_in_json(tmp_path):
    tflite()(tmp_path)
    model = str(tmp_path / "m.tflite")
    table = CliRunner().invoke(cli, ["benchmark", model, "--target", "estimate:pi4"])
    assert table.exit_code == 0, table.stderr
    assert "m.tflite" in table.stdout and "estimated" in table.stdout
    as_json = CliRunner().invoke(cli, ["benchmark", model, "--target", "estimate:pi4", "--json"])
    row = json.loads(as_json.stdout)["rows"][0]
    assert row["model"] == model and row["cost_model"]["macs"] == 8


def test_legal_extremes_of_the_bounds_are_accepted(tmp_path):
    (tmp_path / "recipe.yaml").write_text(RECIPE_HEAD)
    sets = ["seed=4294967295", "train.epochs=10000", "benchmark.threads=256", "benchmark.runs=1000000",
            "benchmark.min_seconds=3600", "model_options={width: 0.5}"]
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "recipe.yaml"), "--dump-recipe",
                                      *[f"--set={s}" for s in sets]])
    assert result.exit_code == 0, result.stderr
    assert "seed: 4294967295" in result.stdout


def test_yaml_anchors_that_repeat_a_section_are_still_fine(tmp_path):
    (tmp_path / "recipe.yaml").write_text(
        RECIPE_HEAD + "stages:\n- &tune {kind: prune, target_sparsity: 0.5, epochs: 1}\n"
        "- {kind: quantize, epochs: 1}\nbudgets: {max_latency_ms: {local: 5, estimate:pi4: 5}}\n")
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "recipe.yaml"), "--dump-recipe"])
    assert result.exit_code == 0, result.stderr


def test_dense_labels_and_a_valid_npz_still_load(tmp_path):
    from edgeopt.data import load_npz

    npz()(tmp_path)
    data = load_npz(tmp_path / "data.npz")
    assert data.task == "classification" and data.output_dim == 3 and data.input_shape == (4,)
