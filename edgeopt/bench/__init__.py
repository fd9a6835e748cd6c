"""Benchmark a .tflite on a target: the desktop, a board over SSH, emulated ARM, or a cost model.

Contract: :func:`measure` returns one latency entry (docs/report-schema.md) for one model on one
target at one thread count. Targets are ``local``, ``ssh://[user@]host[:port]``,
``qemu:cortex-a53|cortex-a72|cortex-a76`` and ``estimate:pi3|pi4|pi5``. A measurement that fails
(the runtime crashes, a step times out) comes back as an entry with ``status: failed`` and a one-line
``reason``; bad input (missing file, not a flatbuffer, custom op the runtime lacks, inputs of the wrong
shape) raises :class:`~edgeopt.errors.InputError` and an unusable environment (no sshd answer, no
runtime on the board, no qemu) raises :class:`~edgeopt.errors.EnvironmentProblem`.
:func:`benchmark` runs the model x target x threads grid, SSH boards in parallel, and never raises
for a single row: each failure becomes a row with its reason and the worst exit code is returned.
Nothing here imports TensorFlow; the measured code is always ``runner.py`` in a child process.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.bench.local import MeasurementFailed, MeasurementTimeout, run_local
from edgeopt.bench.stats import (
    PROVENANCE_EMULATED,
    PROVENANCE_ESTIMATED,
    PROVENANCE_MEASURED,
    failed_entry,
    tidy,
)
from edgeopt.errors import EXIT_OK, EdgeoptError, InputError

__all__ = ["measure", "benchmark", "check_model", "check_settings", "parse_target", "Target",
           "BenchmarkResult"]

TFLITE_IDENTIFIER = b"TFL3"
QEMU_CPUS = ("cortex-a53", "cortex-a72", "cortex-a76")
ESTIMATE_DEVICES = ("pi3", "pi4", "pi5")
TARGET_FORMS = ("local", "ssh://[user@]host[:port]", "qemu:" + "|".join(QEMU_CPUS),
                "estimate:" + "|".join(ESTIMATE_DEVICES))


@dataclass(frozen=True)
class Target:
    """A parsed target: ``kind`` is local, ssh, qemu or estimate; ``spec`` the part after it."""

    kind: str
    spec: str
    name: str

    @property
    def provenance(self) -> str:
        """What kind of number this target produces."""
        return {"qemu": PROVENANCE_EMULATED, "estimate": PROVENANCE_ESTIMATED}.get(
            self.kind, PROVENANCE_MEASURED)


def parse_target(text: str) -> Target:
    """Parse a target string; raise InputError naming the accepted forms when it is not one."""
    name = text.strip()
    if name == "local":
        return Target("local", "", name)
    if name.startswith("ssh://") and len(name) > len("ssh://"):
        from edgeopt.bench.ssh import parse_ssh_target

        parse_ssh_target(name)  # validates
        return Target("ssh", name[len("ssh://"):], name)
    for kind, choices in (("qemu", QEMU_CPUS), ("estimate", ESTIMATE_DEVICES)):
        if name.startswith(kind + ":"):
            spec = name[len(kind) + 1:]
            if spec not in choices:
                raise InputError(f"unknown {kind} target {name!r}: use one of "
                                 + ", ".join(f"{kind}:{c}" for c in choices))
            return Target(kind, spec, name)
    guess = difflib.get_close_matches(name, ["local"] + [f"qemu:{c}" for c in QEMU_CPUS]
                                      + [f"estimate:{d}" for d in ESTIMATE_DEVICES], n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    raise InputError(f"unknown target {name!r}{hint}: use " + ", ".join(TARGET_FORMS))


MAX_TIMEOUT_S = 24 * 3600.0


def check_settings(*, threads: Sequence[int], runs: int, warmup: int, min_seconds: float, timeout: float,
                   seed: int) -> None:
    """Refuse measurement settings out of range (the recipe's benchmark section has the same bounds).

    Raises:
        InputError: naming the setting, its range and the value given.
    """
    from edgeopt.recipe import MAX_MIN_SECONDS, MAX_RUNS, MAX_THREADS, MAX_WARMUP, SEED_LIMIT

    counts = [("threads", t, 1, MAX_THREADS) for t in threads]
    counts += [("runs", runs, 1, MAX_RUNS), ("warmup", warmup, 0, MAX_WARMUP),
               ("seed", seed, 0, SEED_LIMIT - 1)]
    for name, value, low, high in counts:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InputError(f"{name} must be a whole number in {low}..{high:,}, got {value!r}")
    # Written so that NaN fails every comparison and so is refused.
    if not (isinstance(min_seconds, (int, float)) and 0 <= min_seconds <= MAX_MIN_SECONDS):
        raise InputError(f"min_seconds must be a number of seconds from 0 to {MAX_MIN_SECONDS:g}, "
                         f"got {min_seconds!r}")
    if not (isinstance(timeout, (int, float)) and 0 < timeout <= MAX_TIMEOUT_S):
        raise InputError(f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}, "
                         f"got {timeout!r}")


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


def _measure_or_raise(model: Path, target: Target, *, threads: int, runs: int, warmup: int,
                      min_seconds: float, use_xnnpack: bool, timeout: float, seed: int,
                      inputs: str | None) -> dict:
    """One measurement; every failure is raised as a typed edgeopt error."""
    common = {"threads": threads, "runs": runs, "warmup": warmup, "min_seconds": min_seconds,
              "use_xnnpack": use_xnnpack, "timeout": timeout, "seed": seed, "inputs": inputs}
    if target.kind == "local":
        return run_local(str(model), **common)
    if target.kind == "ssh":
        from edgeopt.bench.ssh import run_ssh

        return run_ssh(str(model), target.name, **common)
    if target.kind == "qemu":
        from edgeopt.bench.qemu import run_qemu

        return run_qemu(str(model), target.spec, **common)
    from edgeopt.bench.estimate import estimate

    return estimate(str(model), target.spec, threads=threads, use_xnnpack=use_xnnpack)


def measure(model_path: str | os.PathLike, target: str = "local", threads: int = 1, runs: int = 100,
            warmup: int = 10, min_seconds: float = 0.5, use_xnnpack: bool = True,
            timeout: float = 300, *, seed: int = 0, inputs: str | os.PathLike | None = None) -> dict:
    """Measure one model on one target at one thread count.

    Args:
        model_path: the .tflite file.
        target: ``local``, ``ssh://[user@]host[:port]``, ``qemu:cortex-a53|a72|a76`` or
            ``estimate:pi3|pi4|pi5``.
        threads: interpreter threads.
        runs: at least this many timed invokes.
        warmup: at least this many warm-up invokes (and at least 0.1 s).
        min_seconds: time invokes for at least this long.
        use_xnnpack: keep LiteRT's default XNNPACK delegate (False: builtin kernels only).
        timeout: seconds allowed for the measurement (per step over SSH).
        seed: seed of the random inputs.
        inputs: optional .npy/.npz of input values instead of random ones.

    Returns:
        A latency entry (rounded, schema field order). A crash or timeout gives ``status: failed``.

    Raises:
        InputError: bad model, target or inputs file.
        EnvironmentProblem: the target cannot be used (unreachable, no runtime, no qemu/sysroot).
    """
    model = check_model(model_path)
    parsed = parse_target(target)
    check_settings(threads=[threads], runs=runs, warmup=warmup, min_seconds=min_seconds, timeout=timeout,
                   seed=seed)
    try:
        entry = _measure_or_raise(model, parsed, threads=threads, runs=runs, warmup=warmup,
                                  min_seconds=min_seconds, use_xnnpack=use_xnnpack, timeout=timeout,
                                  seed=seed, inputs=None if inputs is None else str(inputs))
    except (MeasurementFailed, MeasurementTimeout) as exc:
        entry = failed_entry(str(exc), provenance=parsed.provenance, threads=threads,
                             delegate="xnnpack" if use_xnnpack else "none")
    return tidy(entry)


@dataclass
class BenchmarkResult:
    """Rows of a model x target x threads run, each row's exit code, and the worst of them."""

    rows: list[dict] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    exit_code: int = EXIT_OK

    def to_json(self) -> dict:
        """The ``--json`` / ``benchmark.json`` document: rows use report.json's latency field names."""
        import datetime
        import platform

        from edgeopt import __version__

        return {"schema_version": 1, "kind": "benchmark", "edgeopt_version": __version__,
                "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "host": platform.node(), "status": "ok" if self.exit_code == EXIT_OK else "failed",
                "rows": self.rows}


def benchmark(models: Sequence[str | os.PathLike], targets: Sequence[str], threads: Sequence[int] = (1,),
              *, runs: int = 100, warmup: int = 10, min_seconds: float = 0.5, use_xnnpack: bool = True,
              timeout: float = 300, seed: int = 0, inputs: str | os.PathLike | None = None
              ) -> BenchmarkResult:
    """Run every model on every target at every thread count; one row each, failures included.

    Targets are parsed (and models checked) first, so a typo fails before anything runs. SSH
    targets run in parallel with each other (a fleet); local, qemu and estimate rows run one after
    another so that they do not disturb each other's timings.

    Returns:
        Rows ``{"model", "target", **latency entry}`` in model, target, threads order, and the worst
        exit code over the rows (0 all ok, 1 a measurement failed, 2 bad input, 3 environment).

    Raises:
        InputError: an unknown target form, or no model / target / thread count given.
    """
    if not models or not targets or not threads:
        raise InputError("give at least one model, one --target and one thread count")
    parsed = [parse_target(t) for t in targets]
    check_settings(threads=threads, runs=runs, warmup=warmup, min_seconds=min_seconds, timeout=timeout,
                   seed=seed)
    common = {"runs": runs, "warmup": warmup, "min_seconds": min_seconds, "use_xnnpack": use_xnnpack,
              "timeout": timeout, "seed": seed, "inputs": None if inputs is None else str(inputs)}
    cells = [(str(m), t, n) for m in models for t in parsed for n in threads]
    results: dict[tuple, tuple[dict, int]] = {}

    def run_cells(cell_list: list) -> None:
        for model, target, n in cell_list:
            results[(model, target.name, n)] = _row(model, target, n, common)

    remote = [c for c in cells if c[1].kind == "ssh"]
    others = [c for c in cells if c[1].kind != "ssh"]
    by_host: dict[str, list] = {}
    for cell in remote:
        by_host.setdefault(cell[1].name, []).append(cell)
    with ThreadPoolExecutor(max_workers=max(len(by_host), 1)) as pool:
        futures = [pool.submit(run_cells, host_cells) for host_cells in by_host.values()]
        run_cells(others)
        for future in futures:
            future.result()

    result = BenchmarkResult()
    for model, target, n in cells:
        entry, code = results[(model, target.name, n)]
        result.rows.append({"model": model, "target": target.name, **entry})
        result.codes.append(code)
        result.exit_code = max(result.exit_code, code)
    return result


def _row(model: str, target: Target, threads: int, common: dict) -> tuple[dict, int]:
    """One cell of the grid: (entry, exit code), never raising for an edgeopt error."""
    try:
        path = check_model(model)
        entry = _measure_or_raise(path, target, threads=threads, **common)
        return tidy(entry), EXIT_OK
    except EdgeoptError as exc:
        delegate = "xnnpack" if common["use_xnnpack"] else "none"
        return (tidy(failed_entry(str(exc), provenance=target.provenance, threads=threads,
                                  delegate=delegate)), exc.exit_code)
