"""Benchmark a .tflite on a target: the desktop, a board over SSH, emulated ARM, or a cost model.

Contract: :func:`measure` returns one :class:`~edgeopt.types.LatencyEntry` (docs/report-schema.md)
for one model on one target at one thread count, with the settings of a
:class:`~edgeopt.bench.spec.BenchSpec`. Targets are parsed and run by the runners of
:data:`~edgeopt.bench.registry.RUNNERS` (``local``, ``ssh://[user@]host[:port]``,
``qemu:cortex-a53|cortex-a72|cortex-a76``, ``estimate:pi3|pi4|pi5``); nothing here names one.
A measurement that fails (the runtime crashes, a step times out) comes back as an entry with
``status: failed`` and a one-line ``reason``; bad input (missing file, not a flatbuffer, custom op
the runtime lacks, inputs of the wrong shape, bad settings) raises :class:`~edgeopt.errors.InputError`
and an unusable environment (no sshd answer, no runtime on the board, no qemu) raises
:class:`~edgeopt.errors.EnvironmentProblem`. :func:`benchmark` runs the spec's model x target x
threads grid, the rows of parallel runners (SSH boards) at the same time, and never raises for a
single row: each failure becomes a row with its reason and the worst exit code is returned.
Nothing here imports TensorFlow; the measured code is always ``runner.py`` in a child process.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from edgeopt.bench.local import MeasurementFailed, MeasurementTimeout
from edgeopt.bench.registry import (
    RUNNERS,
    parallel_prefixes,
    parse_target,
    provenance_help,
    runner_for,
    target_forms,
    target_kinds,
    targets_help,
)
from edgeopt.bench.spec import MAX_THREADS, BenchSpec, Target, make_spec
from edgeopt.bench.stats import failed_entry, to_entry
from edgeopt.errors import EXIT_CHECK_FAILED, EXIT_OK, EdgeoptError, InputError
from edgeopt.types import LatencyEntry
from edgeopt.version import __version__

__all__ = ["measure", "benchmark", "start", "check_model", "parse_target", "Target", "BenchSpec", "make_spec",
           "BenchmarkResult", "RUNNERS", "target_forms", "target_kinds", "targets_help", "provenance_help",
           "parallel_prefixes"]

TFLITE_IDENTIFIER = b"TFL3"
# measure()'s keyword settings from before BenchSpec -> the spec's field names.
_LEGACY_SETTINGS = {"runs": "runs", "warmup": "warmup", "min_seconds": "min_seconds",
                    "use_xnnpack": "xnnpack", "timeout": "timeout", "seed": "seed", "inputs": "inputs"}


def check_model(model_path: str | os.PathLike) -> Path:
    """Check that ``model_path`` is a readable TFLite flatbuffer; return it as a Path.

    Raises:
        InputError: the file is missing, empty, unreadable or lacks the ``TFL3`` identifier.
    """
    path = Path(model_path)
    if path.is_dir():
        raise InputError(f"{path} is a folder: pass the path of a .tflite file")
    if not path.is_file():
        raise InputError(f"model file {path} does not exist: pass the path of a .tflite file")
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise InputError(f"cannot read model file {path}: {exc.strerror}") from None
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise InputError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier): "
                         "pass a .tflite file written by the TFLite/LiteRT converter")
    return path


def failed(reason: str, target: Target, spec: BenchSpec, threads: int) -> LatencyEntry:
    """The entry of a measurement of ``target`` that could not be made, with its one-line reason."""
    return to_entry(failed_entry(reason, provenance=target.provenance, threads=threads,
                                 delegate=spec.delegate))


@overload
def measure(model_path: str | os.PathLike, target: str, spec: BenchSpec, threads: int | None = None
            ) -> LatencyEntry: ...


@overload
def measure(model_path: str | os.PathLike, target: str = "local", spec: None = None, threads: int = 1,
            **settings: Any) -> dict: ...


def measure(model_path, target="local", spec=None, threads=None, **settings):
    """Measure one model on one target at one thread count.

    Args:
        model_path: the .tflite file.
        target: one of :func:`target_forms`, e.g. ``local``, ``ssh://pi@board``, ``qemu:cortex-a72``,
            ``estimate:pi4``.
        spec: the settings (runs, warm-up, minimum time, XNNPACK, timeout, inputs, seed, SSH config);
            its ``targets`` are not used here.
        threads: interpreter threads (default: the spec's first thread count).
        **settings: without ``spec`` only, the settings as keywords as before BenchSpec (``runs``,
            ``warmup``, ``min_seconds``, ``use_xnnpack``, ``timeout``, ``seed``, ``inputs``;
            ``threads`` defaults to 1): the result is then the entry's JSON dict. Kept for scripts.

    Returns:
        The latency entry (its ``to_json()`` is rounded, in schema field order). A crash or timeout
        gives ``status: failed``.

    Raises:
        InputError: bad model, target, settings or inputs file.
        EnvironmentProblem: the target cannot be used (unreachable, no runtime, no qemu/sysroot).
    """
    if spec is None:
        unknown = sorted(set(settings) - set(_LEGACY_SETTINGS))
        if unknown:
            raise TypeError(f"measure() got unexpected keyword arguments: {', '.join(unknown)}")
        values = {_LEGACY_SETTINGS[k]: str(v) if k == "inputs" else v
                  for k, v in settings.items() if v is not None}
        legacy = make_spec({**values, "threads": [1 if threads is None else threads]})
        return measure(model_path, target, legacy).to_json()
    if settings:
        raise TypeError("measure() takes its settings from spec: drop " + ", ".join(sorted(settings)))
    model = check_model(model_path)
    parsed = parse_target(target)
    count = spec.threads[0] if threads is None else threads
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_THREADS:
        raise InputError(f"threads: input should be a whole number in 1..{MAX_THREADS}, got {count!r}")
    try:
        return runner_for(parsed).run(str(model), parsed, spec, count)
    except (MeasurementFailed, MeasurementTimeout) as exc:
        return failed(str(exc), parsed, spec, count)


def start(spec: BenchSpec) -> None:
    """Let the spec's targets get ready for their first measurement while the caller works on.

    Runners that can (``local``: its child process starts and loads numpy and the runtime) start
    now, so that a caller that calls this before training or converting does not wait for it in
    the first measurement. Optional: :func:`measure` works without it. Never raises for a target
    that cannot start; its measurement will report that.
    """
    for kind in dict.fromkeys(parse_target(t).kind for t in spec.targets):
        begin = getattr(RUNNERS[kind], "start", None)
        if begin is not None:
            with contextlib.suppress(EdgeoptError):
                begin()


@dataclass
class BenchmarkResult:
    """Rows of a model x target x threads run, each row's exit code, and the worst of them."""

    rows: list[dict] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    exit_code: int = EXIT_OK

    def to_json(self) -> dict:
        """The ``--json`` / ``benchmark.json`` document: rows use report.json's latency field names."""

        return {"schema_version": 1, "kind": "benchmark", "edgeopt_version": __version__,
                "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "host": platform.node(), "status": "ok" if self.exit_code == EXIT_OK else "failed",
                "rows": self.rows}


def benchmark(models: Sequence[str | os.PathLike], spec: BenchSpec) -> BenchmarkResult:
    """Run every model on every target at every thread count of ``spec``; one row each, failures included.

    Targets are parsed first, so a typo fails before anything runs. The rows of a runner marked
    ``parallel`` (SSH boards) run at the same time as the others, one target's rows after another;
    the other rows run one after another so that they do not disturb each other's timings.

    Returns:
        Rows ``{"model", "target", **latency entry}`` in model, target, threads order, and the worst
        exit code over the rows (0 all ok, 1 a measurement failed, 2 bad input, 3 environment).

    Raises:
        InputError: an unknown target form, or no model or no target given.
    """
    if not models or not spec.targets:
        raise InputError("give at least one model and one target")
    parsed = [parse_target(t) for t in spec.targets]
    cells = [(str(m), t, n) for m in models for t in parsed for n in spec.threads]
    results: dict[tuple, tuple[LatencyEntry, int]] = {}

    def run_cells(cell_list: list) -> None:
        for model, target, n in cell_list:
            results[(model, target.name, n)] = _row(model, target, n, spec)

    serial = [c for c in cells if not runner_for(c[1]).parallel]
    by_target: dict[str, list] = {}
    for cell in cells:
        if runner_for(cell[1]).parallel:
            by_target.setdefault(cell[1].name, []).append(cell)
    with ThreadPoolExecutor(max_workers=max(len(by_target), 1)) as pool:
        futures = [pool.submit(run_cells, target_cells) for target_cells in by_target.values()]
        run_cells(serial)
        for future in futures:
            future.result()

    result = BenchmarkResult()
    for model, target, n in cells:
        entry, code = results[(model, target.name, n)]
        result.rows.append({"model": model, "target": target.name, **entry.to_json()})
        result.codes.append(code)
        result.exit_code = max(result.exit_code, code)
    return result


def _row(model: str, target: Target, threads: int, spec: BenchSpec) -> tuple[LatencyEntry, int]:
    """One cell of the grid: (entry, exit code), never raising for an edgeopt error."""
    try:
        entry = measure(model, target.name, spec, threads=threads)
    except EdgeoptError as exc:
        return failed(str(exc), target, spec, threads), exc.exit_code
    return entry, EXIT_OK if entry.ok else EXIT_CHECK_FAILED
