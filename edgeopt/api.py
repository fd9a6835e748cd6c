"""The Python API: the steps of ``edgeopt compress``, ``benchmark``, ``inspect``, ``check`` as calls.

Everything here is also reachable as ``edgeopt.<name>``. Importing it does not import TensorFlow;
the first call that trains, converts or loads a model does.

    import edgeopt

    recipe = edgeopt.load_recipe("models/digits_cnn/recipe.yaml", ["train.epochs=5"])
    prepared = edgeopt.prepare(recipe)               # data, trained model, measured reference
    result = edgeopt.compress(prepared)              # the recipe's stages and exports
    print(result.table())
    smaller = edgeopt.compress(prepared, overrides=["stages[0].target_sparsity=0.9"])  # no retraining
    smaller.save("runs/digits-90")

Errors are :class:`edgeopt.errors.EdgeoptError` subclasses carrying the CLI's exit code: bad input
(:class:`~edgeopt.errors.InputError`), a failed check, or the machine's fault.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeopt.pipeline import Prepared, Result, compress, prepare
from edgeopt.recipe import Recipe
from edgeopt.types import LatencyEntry, Report

__all__ = ["load_recipe", "prepare", "compress", "Prepared", "Result", "benchmark", "inspect_tflite", "check",
           "load_report", "Recipe", "Report"]


def load_recipe(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Recipe:
    """A validated recipe from a YAML file (or none: the defaults) with ``KEY=VALUE`` overrides."""
    from edgeopt.recipe import load_recipe as load

    return load(path, list(overrides or []))


def benchmark(path: str | os.PathLike, target: str = "local", **settings: Any) -> LatencyEntry:
    """Latency of one ``.tflite`` on one target (``local``, ``ssh://user@host``, ``qemu:cortex-a72``,
    ``estimate:pi4``). ``settings``: ``threads``, ``runs``, ``warmup``, ``min_seconds``, ``timeout``.
    """
    from edgeopt import bench

    entry = bench.measure(bench.check_model(path), target=target, **settings)
    return entry if isinstance(entry, LatencyEntry) else LatencyEntry.from_json(entry)


def inspect_tflite(path: str | os.PathLike, pattern: tuple[int, int] = (2, 4)) -> dict[str, Any]:
    """What a ``.tflite`` holds: ops, dtypes, parameters, MACs, sparsity, clusters per tensor."""
    from edgeopt import inspect

    return inspect.inspect_tflite(Path(path), pattern=pattern)


def load_report(path: str | os.PathLike) -> Report:
    """A validated report.json as a :class:`~edgeopt.types.Report`."""
    from edgeopt.report import load_report as load

    report = load(Path(path))
    return report if isinstance(report, Report) else Report.from_json(report)


def check(report: Report | str | os.PathLike, baseline: Report | str | os.PathLike,
          tolerances: str | os.PathLike | None = None):
    """Compare a report with its baseline (and the recipe's budgets), as ``edgeopt check`` does."""
    from edgeopt.regress import compare, load_tolerances

    def as_json(value):
        return (value if isinstance(value, Report) else load_report(value)).to_json()

    return compare(as_json(report), as_json(baseline), load_tolerances(tolerances))
