#!/usr/bin/env python3
"""Self-contained LiteRT benchmark runner: the only code that runs on a target.

Contract: ``python3 runner.py MODEL.tflite [options]`` loads the model with whichever of
``ai_edge_litert``, ``tflite_runtime`` or ``tensorflow.lite`` is importable (classic ``Interpreter``
only), fills every input (seeded random values within the input's dtype and quantization range, or
values from ``--inputs`` .npy/.npz), warms up (at least ``--warmup`` invokes and ``--warmup-seconds``),
then times ``invoke()`` alone for at least ``--runs`` invokes and at least ``--min-seconds``. It prints
exactly one JSON document to stdout holding the latency-entry fields of docs/report-schema.md
(plus a ``board`` object with ``--board-facts``). Failures print the same document with
``status: failed`` and a one-line ``reason``; the exit status says whose problem it is:
0 ok, 2 bad input (model or inputs file), 3 environment (no runtime, no numpy), 1 anything else.
It imports nothing from edgeopt and needs only the standard library, numpy and a runtime, so it
can be copied to a board and run there (Python >= 3.7).

``python3 runner.py --args-on-stdin`` starts before its model is known: it imports numpy and the
runtime, then reads its arguments as one JSON line on stdin (see :func:`read_request`), and from
there runs exactly as if they had been given on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3

STATUS_OK = "ok"
STATUS_FAILED = "failed"
PROVENANCE_MEASURED = "measured"

TIMING_FIELDS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "cv")
INSTALL_HINT = "python3 -m pip install ai-edge-litert numpy"

# ARM "CPU part" ids from /proc/cpuinfo, so a board reports "Cortex-A72" rather than a hex number.
ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd4d": "Cortex-A715", "0xb76": "ARM1176",
    "0xc07": "Cortex-A7", "0xc08": "Cortex-A8", "0xc09": "Cortex-A9", "0xc0f": "Cortex-A15",
}


class RunnerError(Exception):
    """A failure with the exit status that classifies it."""

    def __init__(self, reason: str, exit_code: int = EXIT_FAILED):
        super().__init__(reason)
        self.reason = " ".join(str(reason).split())
        self.exit_code = exit_code


def empty_entry(args: argparse.Namespace) -> dict:
    """A latency entry with every schema field present and nothing measured yet."""
    entry = {"provenance": PROVENANCE_MEASURED, "threads": args.threads, "runs": 0, "warmup": 0}
    for name in TIMING_FIELDS:
        entry[name] = None
    entry.update({
        "init_ms": None, "first_invoke_ms": None, "peak_rss_mb": None, "runtime": None,
        "delegate": "none" if args.no_xnnpack else "xnnpack", "cpu": cpu_name(),
        "governor": read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "status": STATUS_OK, "reason": None,
    })
    return entry


def read_text(path: str) -> str | None:
    """First line of a small text file, stripped of NULs, or None when unreadable."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(4096).decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None
    return text.splitlines()[0].strip() if text else None


def cpu_name() -> str:
    """A human name for the CPU: x86 model name, or ARM core names with their count."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, list[str]] = {}
    for line in lines:
        if ":" in line:
            key, value = line.split(":", 1)
            fields.setdefault(key.strip().lower(), []).append(value.strip())
    machine = platform.machine()
    if fields.get("model name") and not fields.get("cpu part"):
        return f"{fields['model name'][0]} ({len(fields['model name'])} logical, {machine})"
    parts = fields.get("cpu part", [])
    if parts:
        names = [ARM_PARTS.get(p.lower(), f"ARM part {p}") for p in parts]
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        return " + ".join(f"{n}x {name}" for name, n in counts.items()) + f" ({machine})"
    return (fields.get("hardware") or [platform.processor() or machine])[0]


def board_facts() -> dict:
    """What a board is and what state it is in: model, kernel, temperature, throttling."""
    temp = read_text("/sys/class/thermal/thermal_zone0/temp")
    facts = {
        "model": read_text("/proc/device-tree/model"),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "temperature_c": round(int(temp) / 1000.0, 1) if temp and temp.lstrip("-").isdigit() else None,
        "throttled": None,
    }
    vcgencmd = shutil.which("vcgencmd")
    if vcgencmd:
        try:
            out = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=5)
            facts["throttled"] = out.stdout.strip().split("=", 1)[-1] or None
        except (OSError, subprocess.SubprocessError):
            pass
    return facts


def load_runtime():
    """Import the first available runtime; return (Interpreter class, resolver enum, runtime label)."""
    errors = []
    try:
        from ai_edge_litert import interpreter as litert

        version = getattr(__import__("ai_edge_litert"), "__version__", "unknown")
        return litert.Interpreter, getattr(litert, "OpResolverType", None), f"ai_edge_litert {version}"
    except Exception as exc:  # noqa: BLE001 - any import failure means "try the next runtime"
        errors.append(f"ai_edge_litert: {exc}")
    try:
        import tflite_runtime
        from tflite_runtime import interpreter as tfl

        version = getattr(tflite_runtime, "__version__", "unknown")
        return tfl.Interpreter, getattr(tfl, "OpResolverType", None), f"tflite_runtime {version}"
    except Exception as exc:  # noqa: BLE001
        errors.append(f"tflite_runtime: {exc}")
    try:
        import tensorflow as tf

        resolver = getattr(tf.lite.experimental, "OpResolverType", None)
        return tf.lite.Interpreter, resolver, f"tensorflow.lite {tf.__version__}"
    except Exception:  # noqa: BLE001
        errors.append("tensorflow: not importable")
    raise RunnerError(
        f"no LiteRT runtime on this host (python {platform.python_version()}, {platform.machine()}); "
        f"install one with: {INSTALL_HINT}", EXIT_ENVIRONMENT)


def classify_load_error(exc: Exception) -> RunnerError:
    """Turn an interpreter construction/allocation error into a one-line, classified reason."""
    text = " ".join(str(exc).split())
    marker = "unresolved custom op:"
    if marker in text.lower():
        start = text.lower().index(marker) + len(marker)
        op = text[start:].strip().split()[0].rstrip(".,;")
        return RunnerError(f"the model uses custom op {op!r}, which this runtime does not provide",
                           EXIT_BAD_INPUT)
    if "identifier" in text.lower() or "flatbuffer" in text.lower() or "could not open" in text.lower():
        return RunnerError(f"not a valid .tflite flatbuffer (truncated or corrupt?): {text}",
                           EXIT_BAD_INPUT)
    return RunnerError(f"the runtime could not load the model: {text}", EXIT_BAD_INPUT)


def make_interpreter(args: argparse.Namespace):
    """Build and allocate the interpreter; return (interpreter, runtime label, init milliseconds)."""
    interpreter_cls, resolver, runtime = load_runtime()
    kwargs = {"model_path": args.model, "num_threads": args.threads}
    if args.no_xnnpack:
        if resolver is None:
            raise RunnerError(f"{runtime} cannot disable the default delegates (--no-xnnpack)",
                              EXIT_ENVIRONMENT)
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    start = time.perf_counter()
    try:
        interpreter = interpreter_cls(**kwargs)
        resize_dynamic_inputs(interpreter)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise classify_load_error(exc) from None
    return interpreter, runtime, (time.perf_counter() - start) * 1000.0


def resize_dynamic_inputs(interpreter) -> None:
    """Give dynamic (-1) input dimensions the size 1 so the model can be allocated and run."""
    for detail in interpreter.get_input_details():
        signature = detail.get("shape_signature")
        if signature is not None and any(int(d) < 0 for d in signature):
            interpreter.resize_tensor_input(detail["index"], [max(int(d), 1) for d in signature])


def random_input(detail: dict, rng):
    """Seeded values spanning the input's dtype, or its real range for float inputs."""
    import numpy as np

    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(d) for d in detail["shape"])
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        scale, _zero = detail.get("quantization", (0.0, 0))
        if scale:  # a quantized input: the whole integer range is meaningful
            low, high = int(info.min), int(info.max)
        else:  # ids or counts: keep them small and non-negative so lookups stay in range
            low, high = 0, min(int(info.max), 9)
        return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def load_inputs(path: str, details: list) -> list:
    """Read inputs from .npy (one input) or .npz (by input name, else in order); check shapes."""
    import numpy as np

    if not os.path.isfile(path):
        raise RunnerError(f"inputs file {path} does not exist", EXIT_BAD_INPUT)
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic != b"\x93NUMPY" and magic[:4] != b"PK\x03\x04":
        raise RunnerError(f"inputs file {path} is neither a .npy nor an .npz file: save the inputs with "
                          "numpy.save or numpy.savez", EXIT_BAD_INPUT)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arrays = [loaded]
        else:
            names = list(loaded.files)
            by_name = [d["name"] for d in details]
            arrays = [loaded[n] for n in by_name] if all(n in names for n in by_name) else \
                [loaded[n] for n in names]
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for a damaged file
        reason = " ".join(str(exc).split())
        if "allow_pickle" in reason:  # numpy's own advice would be to unpickle: never for inputs
            reason = "it holds Python objects (pickled data), which are never loaded; save numeric arrays"
        raise RunnerError(f"cannot read inputs file {path}: {reason}", EXIT_BAD_INPUT) from None
    for array in arrays:
        if array.dtype.kind not in "biuf":
            raise RunnerError(f"inputs file {path} holds {array.dtype} values; save numeric arrays",
                              EXIT_BAD_INPUT)
    if len(arrays) != len(details):
        raise RunnerError(f"inputs file has {len(arrays)} arrays, the model has {len(details)} inputs",
                          EXIT_BAD_INPUT)
    values = []
    for array, detail in zip(arrays, details):  # noqa: B905 - runs on boards with Python < 3.10
        shape = tuple(int(d) for d in detail["shape"])
        if array.shape != shape and array.shape[1:] == shape[1:] and len(array) >= shape[0] >= 1:
            array = array[: shape[0]]  # a dataset: take the first batch
        elif array.shape != shape and array.shape == shape[1:] and shape[:1] == (1,):
            array = array[None]  # one sample without its batch axis
        if array.shape != shape:
            raise RunnerError(f"input {detail['name']!r} expects shape {list(shape)}, "
                              f"the inputs file gives {list(array.shape)}", EXIT_BAD_INPUT)
        values.append(np.asarray(array).astype(detail["dtype"], copy=False))
    return values


def percentile(sorted_values: list, q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (numpy's default method)."""
    position = (len(sorted_values) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(times_ms: list) -> dict:
    """Timing statistics over the timed invokes (sample standard deviation)."""
    ordered = sorted(times_ms)
    count = len(ordered)
    mean = sum(ordered) / count
    std = (sum((t - mean) ** 2 for t in ordered) / (count - 1)) ** 0.5 if count > 1 else 0.0
    return {
        "p50_ms": percentile(ordered, 50), "p90_ms": percentile(ordered, 90),
        "p99_ms": percentile(ordered, 99), "mean_ms": mean, "std_ms": std, "min_ms": ordered[0],
        "cv": std / mean if mean > 0 else 0.0,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB.

    Linux's VmHWM where there is one: ru_maxrss survives exec, so a runner started by a process
    holding a gigabyte of TensorFlow would report that gigabyte as its own. Else ru_maxrss (KiB on
    Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def benchmark(args: argparse.Namespace, entry: dict) -> None:
    """Load, fill, warm up and time; fill ``entry`` in place."""
    try:
        import numpy as np
    except ImportError:
        raise RunnerError(f"numpy is not installed on this host; install it with: {INSTALL_HINT}",
                          EXIT_ENVIRONMENT) from None
    if not os.path.isfile(args.model):
        raise RunnerError(f"model file {args.model} does not exist", EXIT_BAD_INPUT)
    interpreter, entry["runtime"], entry["init_ms"] = make_interpreter(args)
    details = interpreter.get_input_details()
    if args.inputs:
        values = load_inputs(args.inputs, details)
    else:
        rng = np.random.default_rng(args.seed)
        values = [random_input(d, rng) for d in details]
    if args.dump_inputs:
        save_npz(args.dump_inputs, {f"input_{i}": v for i, v in enumerate(values)})
    for detail, value in zip(details, values):  # noqa: B905 - lengths checked; Python < 3.10
        interpreter.set_tensor(detail["index"], value)

    invoke = interpreter.invoke
    clock = time.perf_counter
    start = clock()
    try:
        invoke()
    except (RuntimeError, ValueError) as exc:
        raise RunnerError(f"invoke failed: {exc}", EXIT_FAILED) from None
    entry["first_invoke_ms"] = (clock() - start) * 1000.0

    warmup = 0
    warm_start = clock()
    while warmup < args.warmup or clock() - warm_start < args.warmup_seconds:
        invoke()
        warmup += 1
    entry["warmup"] = warmup

    times_ms = []
    timed_start = clock()
    while len(times_ms) < args.runs or clock() - timed_start < args.min_seconds:
        t0 = clock()
        invoke()
        times_ms.append((clock() - t0) * 1000.0)
    entry["runs"] = len(times_ms)
    entry.update(summarize(times_ms))
    entry["peak_rss_mb"] = peak_rss_mb()

    if args.dump_outputs:
        outputs = {f"output_{i}": interpreter.get_tensor(d["index"])
                   for i, d in enumerate(interpreter.get_output_details())}
        save_npz(args.dump_outputs, outputs)


def save_npz(path: str, arrays: dict) -> None:
    """Write arrays to ``path`` atomically (temp file, then rename)."""
    import numpy as np

    partial = path + ".partial.npz"
    np.savez(partial, **arrays)
    os.replace(partial, path)


def parse_args(argv: list) -> argparse.Namespace:
    """Command-line options of the runner."""
    parser = argparse.ArgumentParser(description="Time a .tflite model's invoke() with LiteRT.")
    parser.add_argument("model", help="path to the .tflite file")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--runs", type=int, default=100, help="at least this many timed invokes")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="and at least this long")
    parser.add_argument("--warmup", type=int, default=10, help="at least this many warm-up invokes")
    parser.add_argument("--warmup-seconds", type=float, default=0.1, help="and at least this long")
    parser.add_argument("--no-xnnpack", action="store_true", help="disable the default XNNPACK delegate")
    parser.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    parser.add_argument("--inputs", help=".npy (one input) or .npz (by name or order) input values")
    parser.add_argument("--dump-inputs", help="write the inputs used to this .npz")
    parser.add_argument("--dump-outputs", help="write the last outputs to this .npz")
    parser.add_argument("--board-facts", action="store_true", help="add a 'board' object")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.runs < 1 or args.warmup < 0 or args.min_seconds < 0:
        parser.error("--threads and --runs must be >= 1, --warmup and --min-seconds >= 0")
    return args


ARGS_ON_STDIN = "--args-on-stdin"


def read_request(stream) -> list:
    """The arguments of a process started ahead of its measurement (``--args-on-stdin``).

    numpy and the runtime are imported first, the work a process does before it can measure, so a
    caller can start the process early and let that work overlap its own. Then one JSON line
    ``{"args": [...], "cwd": folder}`` is read; an empty input (the caller no longer needs this
    process) ends it with status 0 and no output.
    """
    try:  # a missing runtime or numpy is reported by the run itself, as without this option
        import numpy  # noqa: F401
        load_runtime()
    except Exception:  # noqa: BLE001, S110
        pass
    line = stream.readline()
    if not line.strip():
        raise SystemExit(EXIT_OK)
    request = json.loads(line)
    if request.get("cwd"):
        os.chdir(request["cwd"])  # relative paths in the arguments are the caller's
    return [str(a) for a in request["args"]]


def main(argv: list | None = None) -> int:
    """Run the benchmark and print one JSON document; return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == [ARGS_ON_STDIN]:
        argv = read_request(sys.stdin)
    args = parse_args(argv)
    entry = empty_entry(args)
    code = EXIT_OK
    try:
        benchmark(args, entry)
    except RunnerError as exc:
        code = exc.exit_code
        entry.update({name: None for name in TIMING_FIELDS})
        entry.update({"status": STATUS_FAILED, "reason": exc.reason})
    except MemoryError:
        code = EXIT_FAILED
        entry.update({name: None for name in TIMING_FIELDS})
        entry.update({"status": STATUS_FAILED, "reason": "out of memory"})
    if args.board_facts:
        entry["board"] = board_facts()
    sys.stdout.write(json.dumps(entry) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
