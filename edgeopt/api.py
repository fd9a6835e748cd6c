"""The Python API: the steps of ``edgeopt compress``, ``train``, ``evaluate``, ``benchmark``,
``inspect``, ``check``, ``report``, ``models``, ``diagnose`` and ``tune`` as calls. The command line calls
these same functions (:mod:`edgeopt.cli` and :mod:`edgeopt.tune.command` only parse options and render
what they return), so a command and its call cannot behave differently.

Everything here is reachable as ``edgeopt.api.<name>``, and the names ``edgeopt/__init__.py`` lists as
``edgeopt.<name>`` too. Importing it does not import TensorFlow; the first call that trains, converts or
loads a model does.

    import edgeopt

    recipe = edgeopt.load_recipe("models/digits_cnn/recipe.yaml", ["train.epochs=5"])
    prepared = edgeopt.prepare(recipe)               # data, trained model, measured reference
    result = edgeopt.compress(prepared)              # the recipe's stages and exports
    print(result.table())
    smaller = edgeopt.compress(prepared, overrides=["stages[0].target_sparsity=0.9"])  # no retraining
    smaller.save("runs/digits-90")

Overrides are ``--set``'s ``KEY=VALUE``: a stage is ``stages[0].epochs`` or ``stages.0.epochs``; or a
mapping of those paths to values, used as given (``{"stages[0].target_sparsity": 0.9}``). Either way
the recipe is changed as a typed copy, validated once (:func:`edgeopt.recipe.change_recipe`).

The calls that start TensorFlow (``prepare``, ``compress``, ``run``, ``search``, ``diagnose``) print none
of its log lines or warnings: they go to a log, as on the command line (:func:`edgeopt.logs.quietly`); a
failure's message names the saved log when it holds something. ``run``, ``search`` and ``diagnose`` take
the command line's capture as ``log`` (which honours ``--verbose``) instead of starting their own.

Errors are :class:`edgeopt.errors.EdgeoptError` subclasses carrying the CLI's exit code: bad input
(:class:`~edgeopt.errors.InputError`), a failed check, or the machine's fault.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeopt import bench, inspect, pipeline
from edgeopt.bench import BenchmarkResult
from edgeopt.bench.spec import BenchSpec
from edgeopt.budgets import Budgets
from edgeopt.diagnose import DEFAULT_SAMPLES, Diagnosis, diagnose_recipe
from edgeopt.errors import InputError, RecipeError
from edgeopt.evaluate import Evaluation, evaluate_file
from edgeopt.logs import Capture, captured, quietly
from edgeopt.pipeline import Prepared, Result
from edgeopt.presets import model_and_data, preset_recipe
from edgeopt.recipe import Changes, Recipe, recipe_changes
from edgeopt.recipe import load_recipe as read_recipe
from edgeopt.regress import check as run_check
from edgeopt.regress import load_tolerances
from edgeopt.report import load_report as read_report
from edgeopt.report import render
from edgeopt.tune.study import TuneOptions, tune
from edgeopt.types import Inspection, LatencyEntry, Report
from edgeopt.validation import describe
from edgeopt.zoo import ZOO, ZooEntry

__all__ = ["load_recipe", "prepare", "compress", "run", "Prepared", "Result", "benchmark", "benchmark_models",
           "inspect_tflite", "inspection", "Inspection", "check", "load_report", "render_report", "Recipe",
           "Report", "evaluate_tflite", "Evaluation", "search", "Budgets", "diagnose", "Diagnosis", "models",
           "ZooEntry"]

# The steps that start TensorFlow, train and convert: TensorFlow's log lines and warnings go to a log
# (edgeopt.logs), never to the caller's terminal or notebook, exactly as on the command line.
prepare = quietly(pipeline.prepare)
compress = quietly(pipeline.compress)


def load_recipe(path: str | os.PathLike | None = None, overrides: Changes = None, *,
                preset: str | None = None, model: str | None = None, data: Any = None) -> Recipe:
    """A validated recipe from a YAML file (or none: the defaults) with ``KEY=VALUE`` overrides.

    With ``preset`` (one of :func:`edgeopt.presets.names`: ``ptq-int8``, ``prune-qat-int8``,
    ``prune-cluster-qat-int8``), the recipe shipped under that name, with ``model`` and ``data`` filled
    in; without it, ``model`` and ``data`` replace the file's. ``data`` may be a mapping with options.
    """
    if preset is None:
        return read_recipe(path, [*model_and_data(model, data), *recipe_changes(overrides)])
    if path is not None:
        raise RecipeError(f"give a recipe file ({path}) or a preset ({preset}), not both")
    if model is None or data is None:
        raise RecipeError(f"preset {preset} needs a model and data")
    return preset_recipe(preset, str(model), data, recipe_changes(overrides))


def run(recipe: Recipe, out_dir: str | os.PathLike, *, overwrite: bool = False, quiet: bool = True,
        recipe_path: str | os.PathLike | None = None, log: Capture | None = None) -> Result:
    """What ``edgeopt compress`` (and ``train``) does: :func:`prepare`, :func:`compress` and save into
    ``out_dir``, staged and moved into place only when complete; an existing folder is replaced only
    with ``overwrite``. ``quiet``: no progress lines. ``recipe_path``, the file the recipe came from, is
    protected like the other inputs. ``log``: a capture already running (the command line's, which
    honours ``--verbose``); by default TensorFlow's output is captured here, and kept as edgeopt.log."""
    path = None if recipe_path is None else Path(recipe_path)
    with nullcontext(log) if log is not None else captured(python_too=True) as capture:
        return pipeline.run_recipe(recipe, Path(out_dir), overwrite=overwrite, quiet=quiet, recipe_path=path,
                                   log=capture)


def benchmark(path: str | os.PathLike, target: str = "local", spec: BenchSpec | None = None,
              threads: int | None = None, **settings: Any) -> LatencyEntry:
    """Latency of one ``.tflite`` on one target (``local``, ``ssh://user@host``, ``qemu:cortex-a72``,
    ``estimate:pi4``), with a :class:`~edgeopt.bench.spec.BenchSpec` or its fields as keywords
    (``runs``, ``warmup``, ``min_seconds``, ``xnnpack``, ``timeout``, ``inputs``, ``seed``, ``ssh_config``).
    """
    if spec is None:
        chosen = {"threads": [threads]} if threads else {}
        spec = bench.make_spec({**settings, "targets": [target], **chosen})
    return bench.measure(bench.check_model(path), target, spec, threads=threads)


def benchmark_models(paths: list[str | os.PathLike], spec: BenchSpec | None = None,
                     **settings: Any) -> BenchmarkResult:
    """What ``edgeopt benchmark`` measures: every ``.tflite`` on every target at every thread count of
    ``spec`` (or its fields as keywords, ``targets=["local", "estimate:pi4"], threads=[1, 2]``), one
    row each with its exit code, a failure a row with its reason: each row is :func:`benchmark`'s
    measurement (:func:`edgeopt.bench.measure`)."""
    return bench.benchmark(list(paths), spec if spec is not None else bench.make_spec(settings))


def inspect_tflite(path: str | os.PathLike, pattern: tuple[int, int] = (2, 4)) -> dict[str, Any]:
    """What a ``.tflite`` holds: ops, dtypes, parameters, MACs, sparsity, clusters per tensor, as the
    JSON-ready dict ``edgeopt inspect --json`` prints (:func:`inspection`'s ``to_json()``)."""
    return inspect.inspect_tflite(Path(path), pattern=pattern)


def inspection(path: str | os.PathLike, pattern: tuple[int, int] = (2, 4)) -> Inspection:
    """What ``edgeopt inspect`` shows: :func:`inspect_tflite`'s reading as the frozen
    :class:`~edgeopt.types.Inspection` a report's variant holds, read by attribute (``.params``,
    ``.per_tensor[name].sparsity``, ``.input_details[0].scale``); ``.to_json()`` is the dict.
    ``pattern`` = (M, N): the structured-sparsity pattern checked besides 2:4."""
    return inspect.inspection(Path(path), pattern=pattern)


def evaluate_tflite(path: str | os.PathLike, data: Any, *, batch: int = 256,
                    split: str | None = None) -> Evaluation:
    """Accuracy (and top-5 beyond 5 classes) or MAE and RMSE of any ``.tflite`` on ``data``'s test split
    (``split="all"``: every sample; None: all of an image folder without ``train/`` and ``test/``
    folders), through the LiteRT interpreter in a child process: what ``edgeopt evaluate`` prints.

    ``data`` is a built-in name, an .npz / .csv / image-folder path, a ``data:`` mapping as in a recipe
    (``{"path": "images/", "image_size": [96, 96]}``, ``{"loader": "mypkg.data:load"}``) or a loaded
    :class:`~edgeopt.data.Dataset`. Raises ``InputError`` when the file or the data is unusable or the
    two do not fit (sample shape, labels beyond the outputs), ``CheckFailed`` when LiteRT fails.
    """
    return evaluate_file(path, data, batch=batch, split=split)


def load_report(path: str | os.PathLike) -> Report:
    """A validated report.json as a :class:`~edgeopt.types.Report`."""
    return read_report(Path(path))


def render_report(report: Report | Mapping[str, Any] | str | os.PathLike, fmt: str = "table") -> str:
    """What ``edgeopt report`` writes: ``report`` (a :class:`~edgeopt.types.Report`, its JSON mapping,
    or a report.json path, read by :func:`load_report`) as ``table`` (the terminal table ``compress``
    prints), ``md``, ``html`` (self-contained) or ``json``. Raises ``InputError`` for another format
    or a report that does not validate."""
    if not isinstance(report, Report | Mapping):
        report = load_report(report)
    return render(report, fmt)


def models() -> list[ZooEntry]:
    """The model zoo, as ``edgeopt models`` lists it: one :class:`~edgeopt.zoo.ZooEntry` per model
    (``name``, ``task``, ``default_data``, ``params``, ``about``), in the zoo's order. No TensorFlow."""
    return list(ZOO.values())


def diagnose(recipe: Recipe, *, samples: int = DEFAULT_SAMPLES, log: Capture | None = None) -> Diagnosis:
    """What ``edgeopt diagnose`` finds: the Keras layers full int8 quantization hurts, worst first, for
    ``recipe``'s saved model (as saved: not trained, no stages) on its data, calibrated and compared on
    ``samples`` training inputs (:func:`edgeopt.diagnose.diagnose_recipe`). ``.layers``, ``.lines()``,
    ``.to_json()``. ``log``: a capture already running (the command line's); by default TensorFlow's
    output is captured here. (Reached as ``edgeopt.api.diagnose``: ``edgeopt.diagnose`` is the module.)

    Raises ``InputError`` for a zoo model (nothing trained), a missing or unusable model or data,
    ``ConversionError`` when the converter refuses the model."""
    with nullcontext(log) if log is not None else captured(python_too=True):
        return diagnose_recipe(recipe, samples=samples)


def check(report: Report | str | os.PathLike, baseline: str | os.PathLike,
          tolerances: str | os.PathLike | None = None, *, update: bool = False):
    """What ``edgeopt check`` decides: a report against the baseline file (and the recipe's budgets);
    with ``update``, accept the report as the new baseline when it has no failures of its own."""
    return run_check(report, baseline, load_tolerances(tolerances), update=update)


# What ``search(budgets=...)`` takes: ``--budget``'s ``NAME=VALUE`` strings (one, or several), a
# :class:`~edgeopt.budgets.Budgets`, or a mapping shaped like a recipe's ``budgets:`` section.
BudgetsLike = Budgets | Mapping[str, Any] | Iterable[str] | str | None


def search_budgets(budgets: BudgetsLike) -> Budgets | tuple[str, ...]:
    """``budgets`` as :class:`~edgeopt.tune.study.TuneOptions` takes them: a :class:`~edgeopt.budgets.Budgets`
    as is (a mapping validated into one, once), ``--budget`` strings as given (one string is one flag).

    Raises:
        InputError: a mapping that is no valid ``budgets:`` section.
    """
    if budgets is None:
        return ()
    if isinstance(budgets, str):  # one NAME=VALUE, not a sequence of one-letter ones
        return (budgets,)
    if isinstance(budgets, Mapping):
        try:
            return Budgets.model_validate(dict(budgets))
        except ValidationError as exc:
            raise InputError(describe(exc, root="budgets", whole="budgets")) from None
    return budgets if isinstance(budgets, Budgets) else tuple(budgets)


def search(recipe: str | os.PathLike, study: str | os.PathLike, *, budgets: BudgetsLike = (),
           strategy: str = "bayes", trials: int = 20, objective: str = "size", executor: str = "local",
           workers: int = 1, address: str | None = None, seed: int | None = None,
           overrides: tuple[str, ...] = (), force_new: bool = False, pruner: str = "auto",
           cpus_per_trial: int = 1, progress=None, log: Capture | None = None):
    """What ``edgeopt tune`` does: run or resume the study in ``study`` until it holds ``trials``
    finished trials; returns its :class:`edgeopt.tune.results.Outcome` (``.best``, ``.front``,
    ``.trials``, ``.closest``, ``.to_json()``). ``budgets``: ``"NAME=VALUE"`` strings as on the
    command line, a :class:`~edgeopt.budgets.Budgets`, or a mapping shaped like a recipe's ``budgets:``
    section (:func:`search_budgets`); none (or an empty one): the recipe's. ``pruner`` is ``--pruner``
    (auto: hyperband when a train field is searched); ``progress``, if given, receives one line per
    trial. ``log``: a capture already running (the command line's, which honours ``--verbose``); by
    default TensorFlow's output is captured here. (Not named ``tune``: that is the :mod:`edgeopt.tune`
    package.)"""
    options = TuneOptions(recipe=recipe, study=study, overrides=tuple(overrides),
                          budgets=search_budgets(budgets), strategy=strategy, trials=trials,
                          objective=objective, executor=executor, workers=workers, address=address,
                          seed=seed, force_new=force_new, pruner=pruner, cpus_per_trial=cpus_per_trial)
    with nullcontext(log) if log is not None else captured(python_too=True):
        return tune(options, progress or (lambda line: None))
