"""Run the self-contained runner in a child process and classify what comes back.

Contract: :func:`run_runner` executes ``runner.py`` with a given command prefix (``sys.executable``
locally, ``qemu-aarch64-static -L SYSROOT python3.11`` under emulation), bounded by a timeout, and
returns the runner's JSON entry. The runner's exit status maps to edgeopt's errors: 2 raises
:class:`~edgeopt.errors.InputError`, 3 raises :class:`~edgeopt.errors.EnvironmentProblem`; a crash
(signal, no JSON) raises :class:`MeasurementFailed` and a timeout :class:`MeasurementTimeout`, which
:func:`edgeopt.bench.measure` turns into failed rows. The measured code is only ever the runner.
As a runner of the registry (:mod:`edgeopt.bench.registry`) this module is the ``local`` target:
this machine's CPU, ``measured``, never in parallel with other measurements. Each measurement still
gets a fresh child process, but that process is started ahead of need (``runner.py
--args-on-stdin``, see :func:`start`): after each measurement the next one's process starts and
imports numpy and the runtime while the caller converts or trains, instead of during the next
measurement's wall time.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from edgeopt.bench.stats import to_entry
from edgeopt.bench.target import RunSettings, Target
from edgeopt.errors import EdgeoptError, EnvironmentProblem, InputError
from edgeopt.types import LatencyEntry, Provenance

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


def runner_args(model: str, spec: RunSettings, threads: int, *, inputs: str | None,
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
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=child_environment(env), stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise MeasurementTimeout(timeout_message(where, timeout)) from None
    except OSError as exc:
        raise EnvironmentProblem(f"{where}: cannot start {command[0]}: {exc.strerror}") from None
    return parse_runner_output(done.stdout, done.stderr, done.returncode, where, model)


def timeout_message(where: str, timeout: float) -> str:
    return (f"{where}: the benchmark did not finish within {timeout:g} s "
            "(raise --timeout or lower --runs/--min-seconds)")


def child_environment(env: dict | None = None) -> dict:
    """What a runner process gets: ``env`` (default: this process's environment) with TF's log level."""
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return child_env


class _Ahead:
    """The local runner process started ahead of its measurement, the environment it got, and the
    process that started it (a forked copy of edgeopt must neither use nor end its parent's)."""

    process: subprocess.Popen | None = None
    env: dict | None = None
    owner: int | None = None
    lock = threading.Lock()

    @classmethod
    def take(cls) -> tuple[subprocess.Popen | None, dict | None]:
        """Hand over the process (and its environment) and forget it; call with the lock held."""
        process = cls.process if cls.owner == os.getpid() else None
        cls.process = None
        return process, cls.env


def _spawn(env: dict) -> subprocess.Popen:
    command = [sys.executable, str(RUNNER_PATH), "--args-on-stdin"]
    try:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
    except OSError as exc:
        raise EnvironmentProblem(f"local: cannot start {command[0]}: {exc.strerror}") from None


def _discard(process: subprocess.Popen) -> None:
    """End a process started ahead that will not measure (it is importing or waiting for input)."""
    if process.poll() is None:
        process.kill()
    process.communicate()


def start() -> None:
    """Start the next local measurement's process now, so that Python, numpy and the runtime load
    while the caller does other work (a conversion, training) rather than during the measurement.

    Called after every local measurement; call it once more before the first. A process started for
    an environment that has changed by the time it is used is discarded and a new one started.
    """
    env = child_environment()
    with _Ahead.lock:
        process, ready_for = _Ahead.take()
        if process is not None and (ready_for != env or process.poll() is not None):
            _discard(process)
            process = None
        _Ahead.process, _Ahead.env, _Ahead.owner = process or _spawn(env), env, os.getpid()


@atexit.register
def stop() -> None:
    """End the process started ahead, if any (also at exit)."""
    with _Ahead.lock:
        process, _ = _Ahead.take()
        if process is not None:
            _discard(process)


def _take(env: dict) -> subprocess.Popen:
    """The process started ahead when it got ``env`` and still waits, else a new one."""
    with _Ahead.lock:
        process, ready_for = _Ahead.take()
    if process is not None and ready_for == env and process.poll() is None:
        return process
    if process is not None:
        _discard(process)
    return _spawn(env)


def run_local(model: str, spec: RunSettings, threads: int) -> dict:
    """Measure ``model`` on this machine's CPU in a fresh child Python (``sys.executable``).

    The child is the one :func:`start` started ahead if there is one (else it starts now); it gets
    its arguments on stdin and otherwise runs as ``python runner.py ARGS`` would. Afterwards the next
    measurement's child is started.
    """
    args = runner_args(model, spec, threads, inputs=spec.inputs_file)
    env = child_environment()
    process = _take(env)
    request = json.dumps({"args": args, "cwd": os.getcwd()}) + "\n"
    try:
        stdout, stderr = process.communicate(request, timeout=spec.timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise MeasurementTimeout(timeout_message("local", spec.timeout)) from None
    finally:
        with contextlib.suppress(EnvironmentProblem):  # the next measurement will say so itself
            start()
    return parse_runner_output(stdout, stderr, process.returncode, "local", model)


def parse(text: str) -> Target:
    """``local``; InputError for anything else that starts with it."""
    name = text.strip()
    if name != prefix:
        raise InputError(f"unknown target {name!r}: use 'local' for this machine's CPU")
    return Target(kind, "", name, provenance)


def run(model_path: str, target: Target, spec: RunSettings, threads: int) -> LatencyEntry:
    """The registry's entry point: one measurement on this machine."""
    return to_entry(run_local(model_path, spec, threads))
