"""A latency cost model for Raspberry Pi 3B / 4B / 5 from the .tflite alone (provenance ``estimated``).

Contract: :func:`estimate` reads the model's ops (op, dtypes and MACs from its typed inspection,
:func:`edgeopt.inspect.inspection`; tensor shapes from the LiteRT interpreter, never invoked) and
returns a latency entry whose ``p50_ms`` is the estimate for LiteRT with XNNPACK on the device at
the given thread count; the other timing fields are ``None``. Per op, single-thread time is compute
(MACs / the device's MAC rate for that op kind and dtype) plus memory traffic (activation and weight
bytes / effective bandwidth); ops spread over threads with a contention factor,
t(n) = t(1) * (1 + c*(n-1)) / n; a fixed cost per op and per invoke is added. The Pi 4 rates are
fitted to published Pi 4 measurements (MobileNet v1/v2 1.0 224, float32 and int8, 4 threads:
scripts/bench_estimate.py prints the table); Pi 5 is Pi 4 scaled by the published 3.2x (1 thread) /
2.8x (4 threads); Pi 3 is Pi 4 scaled by clock, NEON width and memory ratios and has NOT been
checked against a measurement. The entry's ``cost_model`` object carries the totals and the
compute / memory / overhead split. As a runner of the registry
(:mod:`edgeopt.bench.registry`) this module is the ``estimate:BOARD`` target, ``estimated``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edgeopt.bench.stats import PROVENANCE_ESTIMATED, STATUS_OK, failed_entry, to_entry
from edgeopt.bench.target import RunSettings, Target, choice_target
from edgeopt.errors import InputError
from edgeopt.inspect import inspection
from edgeopt.internals import interpreter_nodes
from edgeopt.types import LatencyEntry, Provenance

COST_MODEL_VERSION = 1
DENSE_OPS = frozenset({"CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV", "CONV_3D",
                       "CONV_3D_TRANSPOSE"})
DEPTHWISE_OPS = frozenset({"DEPTHWISE_CONV_2D"})
# Ops XNNPACK removes or turns into metadata: no data movement worth counting.
FREE_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})
KIND_DENSE, KIND_DEPTHWISE, KIND_OTHER = "dense", "depthwise", "other"
INT8, FLOAT = "int8", "float"
_BYTES = {"float32": 4, "float16": 2, "int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8, "bool": 1}


@dataclass(frozen=True)
class DeviceProfile:
    """What the cost model knows about one board (rates are per core, single thread)."""

    name: str
    description: str
    cores: int
    dense_gmacs: dict[str, float]  # dtype -> GMAC/s for convolutions, 1x1 and fully connected
    depthwise_gmacs: dict[str, float]  # dtype -> GMAC/s for depthwise convolutions
    bandwidth_gbs: float  # effective GB/s of activation + weight traffic
    op_overhead_us: float  # per op per invoke (dispatch, thread-pool wake-up)
    invoke_overhead_us: float
    contention: float  # c in t(n) = t(1) * (1 + c*(n-1)) / n
    calibration: str

    def scaled(self, name: str, description: str, speed: float, contention: float,
               calibration: str, dense: dict[str, float] | None = None,
               bandwidth: float | None = None) -> DeviceProfile:
        """A profile whose single-thread rates are ``speed`` times this one's."""
        return replace(
            self, name=name, description=description,
            dense_gmacs={k: v * (dense or {}).get(k, speed) for k, v in self.dense_gmacs.items()},
            depthwise_gmacs={k: v * (dense or {}).get(k, speed) for k, v in self.depthwise_gmacs.items()},
            bandwidth_gbs=self.bandwidth_gbs * (bandwidth or speed),
            op_overhead_us=self.op_overhead_us / speed, invoke_overhead_us=self.invoke_overhead_us / speed,
            contention=contention, calibration=calibration)


# Pi 4 (4x Cortex-A72 @ 1.5 GHz, LPDDR4): rates fitted by scripts/bench_estimate.py --fit to the
# published Pi 4 figures; depthwise relative efficiency, overheads and contention are priors.
PI4 = DeviceProfile(
    name="pi4", description="Raspberry Pi 4 Model B: 4x Cortex-A72 @ 1.5 GHz (profile)", cores=4,
    dense_gmacs={FLOAT: 3.026, INT8: 9.013}, depthwise_gmacs={FLOAT: 0.917, INT8: 2.277},
    bandwidth_gbs=2.72, op_overhead_us=8.0, invoke_overhead_us=40.0, contention=1 / 9,
    calibration="fitted to published Pi 4 MobileNet v1/v2 1.0 224 float32/int8, XNNPACK, 4 threads")
# Pi 5: the published 3.2x single-thread speed-up; contention chosen so that 4 threads give 2.8x.
PI5 = PI4.scaled("pi5", "Raspberry Pi 5: 4x Cortex-A76 @ 2.4 GHz (profile)", speed=3.2,
                 contention=0.1746, calibration="Pi 4 profile scaled by the published Pi 5 / Pi 4 ratios "
                 "(3.2x at 1 thread, 2.8x at 4 threads)")
# Pi 3B: Cortex-A53 @ 1.2 GHz, in order, 64-bit NEON datapath, LPDDR2. Ratios, not a measurement.
PI3 = PI4.scaled("pi3", "Raspberry Pi 3 Model B: 4x Cortex-A53 @ 1.2 GHz (profile)", speed=0.4,
                 dense={FLOAT: 0.3, INT8: 0.35}, bandwidth=0.5, contention=0.15,
                 calibration="Pi 4 profile scaled by clock, NEON throughput and memory ratios; "
                 "not checked against a Pi 3 measurement")
PROFILES = {p.name: p for p in (PI3, PI4, PI5)}

kind = "estimate"
prefix = "estimate:"
provenance = Provenance.ESTIMATED
parallel = False  # it loads the model on this CPU, which would disturb a local measurement
forms = tuple(prefix + name for name in PROFILES)


def _tensor_bytes(detail: dict) -> int:
    size = 1
    for dim in detail["shape"]:
        size *= max(int(dim), 1)
    name = getattr(detail["dtype"], "__name__", str(detail["dtype"]))
    return size * _BYTES.get(name, 4)


def model_costs(model_path: str) -> list[dict]:
    """Per op of the main subgraph: ``op``, ``kind``, ``dtype`` (float/int8), ``macs``, ``bytes``.

    Raises:
        InputError: the file cannot be read as a .tflite, or has ops the runtime does not know.
    """
    ops = [op for op in inspection(model_path).op_list if op.subgraph == 0]
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        interpreter = Interpreter(model_path=str(model_path),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
        tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
        nodes = interpreter_nodes(interpreter)
    except (ValueError, RuntimeError) as exc:  # ValueError includes names that are not UTF-8
        raise InputError(f"{model_path}: the runtime cannot load it for an estimate: "
                         f"{' '.join(str(exc).split())}") from None
    if len(nodes) != len(ops):
        raise InputError(f"{model_path}: {len(ops)} ops in the file but {len(nodes)} in the interpreter")
    costs = []
    for op, node in zip(ops, nodes, strict=True):
        name = op.op
        kind = KIND_DENSE if name in DENSE_OPS else KIND_DEPTHWISE if name in DEPTHWISE_OPS else KIND_OTHER
        moved = 0 if name in FREE_OPS else sum(
            _tensor_bytes(tensors[i]) for i in [*node["inputs"], *node["outputs"]] if i in tensors)
        costs.append({"op": name, "kind": kind, "dtype": INT8 if op.compute == "int8" else FLOAT,
                      "macs": int(op.macs or 0), "bytes": moved})
    return costs


def split_seconds(costs: list[dict], profile: DeviceProfile) -> dict[str, float]:
    """Single-thread compute and memory seconds, and overhead seconds, of one invoke."""
    compute = memory = 0.0
    for op in costs:
        if op["kind"] == KIND_DENSE:
            compute += op["macs"] / (profile.dense_gmacs[op["dtype"]] * 1e9)
        elif op["kind"] == KIND_DEPTHWISE:
            compute += op["macs"] / (profile.depthwise_gmacs[op["dtype"]] * 1e9)
        memory += op["bytes"] / (profile.bandwidth_gbs * 1e9)
    overhead = (len(costs) * profile.op_overhead_us + profile.invoke_overhead_us) * 1e-6
    return {"compute": compute, "memory": memory, "overhead": overhead}


def thread_factor(profile: DeviceProfile, threads: int) -> float:
    """t(n) / t(1) for the parallel part; threads beyond the board's cores do not help."""
    n = min(max(threads, 1), profile.cores)
    return (1 + profile.contention * (n - 1)) / n


def estimate(model_path: str, device: str, *, threads: int = 1, use_xnnpack: bool = True) -> dict:
    """Estimated latency entry for ``model_path`` on ``device`` (pi3, pi4, pi5) at ``threads``.

    The model describes LiteRT with XNNPACK; with ``use_xnnpack=False`` the row is failed (no
    profile exists for the builtin kernels) rather than silently reusing the XNNPACK figure.

    Raises:
        InputError: unknown device, or a model the cost model cannot read.
    """
    if device not in PROFILES:
        raise InputError(f"unknown estimate device {device!r}: use one of {', '.join(PROFILES)}")
    profile = PROFILES[device]
    runtime = f"edgeopt cost model v{COST_MODEL_VERSION}"
    if not use_xnnpack:
        return failed_entry("the estimate models LiteRT with XNNPACK only; drop --no-xnnpack for estimate:",
                            provenance=PROVENANCE_ESTIMATED, threads=threads, delegate="none",
                            runtime=runtime, cpu=profile.description)
    costs = model_costs(model_path)
    parts = split_seconds(costs, profile)
    seconds = (parts["compute"] + parts["memory"]) * thread_factor(profile, threads) + parts["overhead"]
    return {
        "provenance": PROVENANCE_ESTIMATED, "threads": threads, "runs": 0, "warmup": 0,
        "p50_ms": seconds * 1000.0, "p90_ms": None, "p99_ms": None, "mean_ms": None, "std_ms": None,
        "min_ms": None, "cv": None, "init_ms": None, "first_invoke_ms": None, "peak_rss_mb": None,
        "runtime": runtime, "delegate": "xnnpack", "cpu": profile.description, "governor": None,
        "status": STATUS_OK, "reason": None,
        "cost_model": {"macs": sum(op["macs"] for op in costs), "bytes": sum(op["bytes"] for op in costs),
                  "ops": len(costs), "compute_ms_1t": parts["compute"] * 1000.0,
                  "memory_ms_1t": parts["memory"] * 1000.0, "overhead_ms": parts["overhead"] * 1000.0,
                  "calibration": profile.calibration},
    }


def fit_profile(measured_ms: dict, device: str = "pi4", threads: int = 4) -> dict:
    """Least-squares (relative error) fit of a profile's dense/depthwise rates and bandwidth.

    Args:
        measured_ms: .tflite path -> measured milliseconds on ``device`` at ``threads``.
        device: the profile whose priors (depthwise/dense ratio, overheads, contention) are kept.
        threads: the thread count of the measurements.

    Returns:
        ``dense_gmacs``, ``depthwise_gmacs`` and ``bandwidth_gbs`` for pasting into a profile, and the
        fitted relative errors per model.
    """
    base = PROFILES[device]
    factor = thread_factor(base, threads)
    rows, targets, names = [], [], []
    for path, ms in measured_ms.items():
        costs = model_costs(str(path))
        feature = {"dense_float": 0.0, "dense_int8": 0.0, "dw_float": 0.0, "dw_int8": 0.0, "bytes": 0.0}
        for op in costs:
            if op["kind"] == KIND_DENSE:
                feature[f"dense_{op['dtype']}"] += op["macs"]
            elif op["kind"] == KIND_DEPTHWISE:
                feature[f"dw_{op['dtype']}"] += op["macs"]
            feature["bytes"] += op["bytes"]
        overhead = (len(costs) * base.op_overhead_us + base.invoke_overhead_us) * 1e-3
        ratio = {dtype: base.depthwise_gmacs[dtype] / base.dense_gmacs[dtype] for dtype in (FLOAT, INT8)}
        # unknowns: 1/dense_float, 1/dense_int8 (ns per MAC), 1/bandwidth (ns per byte)
        row = [(feature["dense_float"] + feature["dw_float"] / ratio[FLOAT]) * factor * 1e-6,
               (feature["dense_int8"] + feature["dw_int8"] / ratio[INT8]) * factor * 1e-6,
               feature["bytes"] * factor * 1e-6]
        rows.append([v / ms for v in row])
        targets.append((ms - overhead) / ms)
        names.append(str(path))
    solution, *_ = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)
    solution = np.maximum(solution, 1e-6)
    dense = {FLOAT: 1 / solution[0], INT8: 1 / solution[1]}
    depthwise = {dtype: dense[dtype] * base.depthwise_gmacs[dtype] / base.dense_gmacs[dtype]
                 for dtype in (FLOAT, INT8)}
    return {"dense_gmacs": {k: round(v, 3) for k, v in dense.items()},
            "depthwise_gmacs": {k: round(v, 3) for k, v in depthwise.items()},
            "bandwidth_gbs": round(1 / solution[2], 3),
            "relative_error": {name: round(float(np.dot(r, solution) - t), 4)
                               for name, r, t in zip(names, rows, targets, strict=True)}}


def parse(text: str) -> Target:
    """``estimate:`` and one of the profiled boards; InputError listing them otherwise."""
    return choice_target(text, kind, prefix, tuple(PROFILES), provenance)


def run(model_path: str, target: Target, spec: RunSettings, threads: int) -> LatencyEntry:
    """The registry's entry point: one estimate."""
    return to_entry(estimate(model_path, target.detail, threads=threads, use_xnnpack=spec.xnnpack))
