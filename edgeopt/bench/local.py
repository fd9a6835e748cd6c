"""Run the self-contained runner in a child process and classify what comes back.

Contract: :func:`run_runner` executes ``runner.py`` with a given command prefix (``sys.executable``
locally, ``qemu-aarch64-static -L SYSROOT python3.11`` under emulation), bounded by a timeout, and
returns the runner's JSON entry. The runner's exit status maps to edgeopt's errors: 2 raises
:class:`~edgeopt.errors.InputError`, 3 raises :class:`~edgeopt.errors.EnvironmentProblem`; a crash
(signal, no JSON) raises :class:`MeasurementFailed` and a timeout :class:`MeasurementTimeout`, which
:func:`edgeopt.bench.measure` turns into failed rows. The measured code is only ever the runner.
As a runner of the registry (:mod:`edgeopt.bench.registry`) this module is the ``local`` target:
this machine's CPU, ``measured``, never in parallel with other measurements.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgeopt.bench.spec import Target
from edgeopt.bench.stats import to_entry
from edgeopt.errors import EdgeoptError, EnvironmentProblem, InputError
from edgeopt.types import LatencyEntry, Provenance

if TYPE_CHECKING:
    from edgeopt.bench.spec import BenchSpec

kind = "local"
prefix = "local"
provenance = Provenance.MEASURED
parallel = False  # two timings on this CPU at once would slow each other down
forms = ("local",)

RUNNER_PATH = Path(__file__).with_name("runner.py")

RUNNER_EXIT_BAD_INPUT = 2
RUNNER_EXIT_ENVIRONMENT = 3


class MeasurementFailed(EdgeoptError):
    """The runner crashed or reported a failure that is neither bad input nor environment."""

    exit_code = 1


class MeasurementTimeout(EnvironmentProblem):
    """A step did not finish within its timeout."""


def runner_args(model: str, spec: BenchSpec, threads: int, *, inputs: str | None,
                dump_inputs: str | None = None, dump_outputs: str | None = None,
                board_facts: bool = False) -> list[str]:
    """The runner's command-line arguments for one measurement with ``spec`` at ``threads``.

    ``inputs`` is the inputs file as the runner will see it (a board's copy, a dumped file), or None
    for the spec's seeded random inputs.
    """
    args = [model, "--threads", str(threads), "--runs", str(spec.runs), "--warmup", str(spec.warmup),
            "--min-seconds", repr(float(spec.min_seconds)), "--seed", str(spec.seed)]
    if not spec.xnnpack:
        args.append("--no-xnnpack")
    for flag, value in (("--inputs", inputs), ("--dump-inputs", dump_inputs),
                        ("--dump-outputs", dump_outputs)):
        if value:
            args += [flag, value]
    if board_facts:
        args.append("--board-facts")
    return args


def parse_runner_output(stdout: str, stderr: str, returncode: int, where: str, model: str = "") -> dict:
    """Classify a finished runner: return its entry or raise the matching edgeopt error.

    Args:
        stdout: the runner's standard output (one JSON document when it got that far).
        stderr: its standard error, used for the reason when there is no JSON.
        returncode: its exit status (negative: killed by that signal).
        where: a short label of the place it ran, for messages (``local``, ``qemu:cortex-a72``).
        model: the user's name for the model, prefixed to bad-input reasons.
    """
    entry = None
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            break
    if entry is not None and returncode == 0 and entry.get("status") == "ok":
        return entry
    if entry is not None:
        reason = entry.get("reason") or f"runner exited with status {returncode}"
        if returncode == RUNNER_EXIT_BAD_INPUT:
            raise InputError(f"{model}: {reason}" if model and model not in reason else reason)
        if returncode == RUNNER_EXIT_ENVIRONMENT:
            raise EnvironmentProblem(f"{where}: {reason}")
        raise MeasurementFailed(reason)
    raise MeasurementFailed(f"{where}: {describe_crash(returncode, stderr)}")


def describe_crash(returncode: int, stderr: str) -> str:
    """One line about a child that died without printing its JSON."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        what = f"the runtime crashed ({name})"
    elif returncode > 128 and returncode - 128 in {s.value for s in signal.Signals}:
        what = f"the runtime crashed ({signal.Signals(returncode - 128).name})"
    else:
        what = f"the runner exited with status {returncode} without a result"
    lines = [ln.strip() for ln in stderr.strip().splitlines()
             if ln.strip() and not ln.startswith(("INFO:", "WARNING: All log"))]
    return f"{what}: {' '.join(lines[-1].split())}" if lines else what


def run_runner(prefix: Sequence[str], args: Sequence[str], *, timeout: float, where: str,
               env: dict | None = None, model: str = "") -> dict:
    """Run ``prefix + [runner.py] + args`` and return the runner's latency entry.

    Raises:
        InputError: the runner rejected the model or the inputs (exit 2).
        EnvironmentProblem: no runtime / numpy where it ran (exit 3), or the command is missing.
        MeasurementTimeout: it did not finish within ``timeout`` seconds (the child is killed).
        MeasurementFailed: it crashed or failed otherwise.
    """
    command = [*prefix, str(RUNNER_PATH), *args]
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=child_env,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise MeasurementTimeout(f"{where}: the benchmark did not finish within {timeout:g} s "
                                 "(raise --timeout or lower --runs/--min-seconds)") from None
    except OSError as exc:
        raise EnvironmentProblem(f"{where}: cannot start {command[0]}: {exc.strerror}") from None
    return parse_runner_output(done.stdout, done.stderr, done.returncode, where, model)


def run_local(model: str, spec: BenchSpec, threads: int) -> dict:
    """Measure ``model`` on this machine's CPU in a child Python (``sys.executable``)."""
    args = runner_args(model, spec, threads, inputs=spec.inputs_file)
    return run_runner([sys.executable], args, timeout=spec.timeout, where="local", model=model)


def parse(text: str) -> Target:
    """``local``; InputError for anything else that starts with it."""
    name = text.strip()
    if name != prefix:
        raise InputError(f"unknown target {name!r}: use 'local' for this machine's CPU")
    return Target(kind, "", name, provenance)


def run(model_path: str, target: Target, spec: BenchSpec, threads: int) -> LatencyEntry:
    """The registry's entry point: one measurement on this machine."""
    return to_entry(run_local(model_path, spec, threads))
