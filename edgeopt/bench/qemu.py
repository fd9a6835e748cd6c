"""Emulated ARM: the same runner under aarch64 user-mode QEMU, checked against x86 outputs.

Contract: :func:`run_qemu` runs ``runner.py`` with ``qemu-aarch64-static -L VIEW VIEW/usr/bin/python3.11``
where VIEW is the per-core view ``SYSROOT/cpus/cortex-XXX`` built by ``scripts/make_arm_sysroot.sh``
(its ``proc/cpuinfo`` names the core; ``QEMU_CPU`` is set to the same real core, because the default
``max`` CPU gave wrong int8 results with XNNPACK). The runner uses the classic ``Interpreter`` only
(LiteRT's CompiledModel path loads code the Cortex-A72 cannot execute). The inputs used on ARM are the
ones a local x86 run of the runner used, and the entry carries ``max_abs_diff``: the largest absolute
difference between the ARM and x86 outputs, in the output tensors' own units. Timings are labelled
``emulated``: they are QEMU's, not the board's. As a runner of the registry
(:mod:`edgeopt.bench.registry`) this module is the ``qemu:CPU`` target, never run in parallel with
other measurements (emulation is CPU-bound on this machine).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgeopt.bench.local import run_runner, runner_args
from edgeopt.bench.stats import PROVENANCE_EMULATED, to_entry
from edgeopt.bench.target import RunSettings, Target, choice_target
from edgeopt.errors import EnvironmentProblem
from edgeopt.types import LatencyEntry, Provenance

CPUS = ("cortex-a53", "cortex-a72", "cortex-a76")  # each needs a view in the sysroot
kind = "qemu"
prefix = "qemu:"
provenance = Provenance.EMULATED
parallel = False  # emulation is CPU-bound on this machine, like a local measurement
forms = tuple(prefix + cpu for cpu in CPUS)

SYSROOT_ENV = "EDGEOPT_ARM_SYSROOT"
SYSROOT_VERSION = "1"  # must match SYSROOT_VERSION in scripts/make_arm_sysroot.sh
QEMU_BINARIES = ("qemu-aarch64-static", "qemu-aarch64")
PYTHON_IN_SYSROOT = "usr/bin/python3.11"
# Startup of an emulated Python with numpy and LiteRT takes seconds; the timed part is on top.
STARTUP_ALLOWANCE_S = 60.0


def default_sysroot() -> Path:
    """Where the arm64 sysroot is looked for: ``$EDGEOPT_ARM_SYSROOT`` or ~/.cache/edgeopt/arm-sysroot."""
    configured = os.environ.get(SYSROOT_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "edgeopt" / "arm-sysroot"


def find_qemu() -> str:
    """Path of the aarch64 user-mode QEMU; EnvironmentProblem with the install command when absent."""
    for name in QEMU_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    raise EnvironmentProblem("qemu-aarch64-static not found: install it with "
                             "`sudo apt-get install qemu-user-static` (Debian/Ubuntu)")


def sysroot_view(cpu: str, sysroot: Path | None = None) -> Path:
    """The per-core view of a complete sysroot; EnvironmentProblem naming the build command if missing."""
    root = sysroot or default_sysroot()
    marker = root / ".complete"
    view = root / "cpus" / cpu
    complete = marker.is_file() and marker.read_text().strip() == SYSROOT_VERSION
    if not complete or not (view / PYTHON_IN_SYSROOT).exists():
        raise EnvironmentProblem(f"no arm64 sysroot at {root}: build it with "
                                 f"`scripts/make_arm_sysroot.sh {root}` (Debian packages + PyPI wheels, "
                                 "about 160 MB)")
    return view


def emulated_python(cpu: str, sysroot: Path | None = None) -> tuple[list[str], dict]:
    """The command prefix and environment that run the sysroot's Python as ``cpu``."""
    view = sysroot_view(cpu, sysroot)
    env = {key: value for key, value in os.environ.items()
           if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")}
    env.update({"QEMU_CPU": cpu, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"})
    return [find_qemu(), "-L", str(view), str(view / PYTHON_IN_SYSROOT)], env


def max_abs_diff(first: Path, second: Path) -> float:
    """Largest absolute difference between same-named arrays of two .npz files."""
    with np.load(first) as a, np.load(second) as b:
        if sorted(a.files) != sorted(b.files):
            return float("inf")
        worst = 0.0
        for name in a.files:
            x, y = a[name].astype(np.float64), b[name].astype(np.float64)
            if x.shape != y.shape:
                return float("inf")
            if x.size:
                worst = max(worst, float(np.max(np.abs(x - y))))
    return worst


def run_qemu(model: str, cpu: str, spec: RunSettings, threads: int, sysroot: Path | None = None) -> dict:
    """Measure ``model`` under emulated ``cpu`` and compare its outputs with an x86 run.

    Returns:
        A latency entry with provenance ``emulated``, plus ``max_abs_diff`` and ``reference``.

    Raises:
        EnvironmentProblem: QEMU or the sysroot is missing.
        InputError: the model or inputs are rejected (by the x86 reference run first).
        MeasurementFailed / MeasurementTimeout: the emulated run crashed or took too long.
    """
    prefix_argv, env = emulated_python(cpu, sysroot)
    where = f"qemu:{cpu}"
    once = spec.model_copy(update={"runs": 1, "warmup": 0, "min_seconds": 0.0})  # outputs, not timings
    with tempfile.TemporaryDirectory(prefix="edgeopt-qemu-") as tmp:
        used_inputs, reference, emulated = (str(Path(tmp) / n) for n in ("in.npz", "x86.npz", "arm.npz"))
        x86 = run_runner([sys.executable], runner_args(
            model, once, threads, inputs=spec.inputs_file, dump_inputs=used_inputs, dump_outputs=reference),
            timeout=spec.timeout, where="local", model=model)
        entry = run_runner(prefix_argv, runner_args(
            model, spec, threads, inputs=used_inputs, dump_outputs=emulated),
            timeout=spec.timeout + STARTUP_ALLOWANCE_S, where=where, env=env, model=model)
        entry["max_abs_diff"] = max_abs_diff(Path(reference), Path(emulated))
    entry["provenance"] = PROVENANCE_EMULATED
    entry["cpu"] = f"{cpu} (QEMU_CPU, qemu-aarch64 user mode on {x86.get('cpu')})"
    entry["governor"] = None
    entry["reference"] = f"x86_64 {x86.get('runtime')}, same inputs"
    return entry


def parse(text: str) -> Target:
    """``qemu:`` and one of :data:`CPUS`; InputError listing them otherwise."""
    return choice_target(text, kind, prefix, CPUS, provenance)


def run(model_path: str, target: Target, spec: RunSettings, threads: int) -> LatencyEntry:
    """The registry's entry point: one emulated measurement."""
    return to_entry(run_qemu(model_path, target.detail, spec, threads))
