#!/usr/bin/env python3
"""Benchmark fidelity: edgeopt's `local` p50 versus a bare `interpreter.invoke()` loop, same models.

For each model, alternating over several rounds to cancel drift on a shared machine:
  * edgeopt: ``edgeopt.bench.measure(model, "local")`` (the runner in a child process);
  * bare: this process builds the same ai_edge_litert Interpreter (same threads, XNNPACK default,
    same kind of seeded random inputs), warms up, and times each ``invoke()`` with perf_counter.
The figure per model is the median over rounds of (edgeopt p50 / bare p50) - 1, each round pairing the
two measurements taken back to back; "spread" is the interquartile range of those per-round ratios, the
machine's noise: when it is far above the tolerance (a loaded machine), the run cannot resolve 3%.
Exit 1 when any |difference| exceeds --tolerance (default 3%).

    .venv/bin/python scripts/bench_harness.py [--rounds 7] [--threads 1] [--json]
    .venv/bin/python scripts/bench_harness.py --qemu cortex-a53,cortex-a72,cortex-a76

--qemu instead reports, per small model and emulated core, the max abs difference between ARM and x86
outputs on the same inputs, next to the spread of the x86 outputs (so that a zero is not vacuous).

Models (built once into ~/.cache/edgeopt/harness): a small MLP and a small CNN (float32), MobileNetV2
alpha 0.35 at 96x96 (float32 and int8), and MobileNet v2 1.0 224 int8 (from scripts/bench_estimate.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

CACHE = Path.home() / ".cache" / "edgeopt" / "harness"


def convert(model, path: Path, int8: bool, shape: tuple[int, ...]) -> Path:
    """Write ``model`` as a float32 or full-int8 .tflite (random representative data)."""
    import numpy as np

    from edgeopt.kerasapi import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(8):
                yield [rng.uniform(-1, 1, (1, *shape)).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    partial = path.with_suffix(".partial")
    partial.write_bytes(converter.convert())
    partial.replace(path)
    return path


def harness_models() -> list[Path]:
    """The models timed by the harness, built on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    specs = ["mlp_float32", "cnn_float32", "mobilenetv2_035_96_bn_float32", "mobilenetv2_035_96_bn_int8"]
    paths = [CACHE / f"{name}.tflite" for name in specs]
    if not all(p.exists() for p in paths):
        from edgeopt.kerasapi import keras

        keras.utils.set_random_seed(0)
        layers = keras.layers
        mlp = keras.Sequential([layers.Input((64,)), layers.Dense(256, activation="relu"),
                                layers.Dense(256, activation="relu"), layers.Dense(10)])
        cnn = keras.Sequential([layers.Input((32, 32, 3)), layers.Conv2D(32, 3, activation="relu"),
                                layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu"),
                                layers.GlobalAveragePooling2D(), layers.Dense(10)])
        mobile = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None,
                                                classes=10)
        # Fresh batch-norm statistics make a randomly initialised MobileNet's activations die out and its
        # outputs constant; one training-mode pass with momentum 0 sets them from random data, so that
        # the outputs vary and the --qemu comparison is not vacuous.
        import numpy as np

        for layer in mobile.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = 0.0
        mobile(np.random.default_rng(0).uniform(-1, 1, (16, 96, 96, 3)).astype("float32"), training=True)
        convert(mlp, paths[0], False, (64,))
        convert(cnn, paths[1], False, (32, 32, 3))
        convert(mobile, paths[2], False, (96, 96, 3))
        convert(mobile, paths[3], True, (96, 96, 3))
    calibration = Path.home() / ".cache" / "edgeopt" / "calibration" / "mobilenet_v2_224_int8.tflite"
    if calibration.exists():
        paths.append(calibration)
    return paths


def bare_p50(path: Path, threads: int, runs: int, min_seconds: float, warmup: int, seed: int) -> float:
    """p50 (ms) of a plain invoke() loop in this process, mirroring the runner's defaults."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from edgeopt.bench.runner import random_input  # the runner's own inputs: only the loop differs

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], random_input(detail, rng))
    invoke = interpreter.invoke
    clock = time.perf_counter
    start = clock()
    done = 0
    while done < warmup or clock() - start < 0.1:
        invoke()
        done += 1
    times = []
    start = clock()
    while len(times) < runs or clock() - start < min_seconds:
        t0 = clock()
        invoke()
        times.append((clock() - t0) * 1000.0)
    return statistics.median(times)


def output_spread(path: Path) -> float:
    """Standard deviation of the model's x86 outputs on seed-0 inputs (0 would make a diff vacuous)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from edgeopt.bench.runner import random_input

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], random_input(detail, rng))
    interpreter.invoke()
    return float(np.std(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])))


def qemu_check(cpus: list[str], as_json: bool) -> int:
    """Max abs output difference, emulated ARM vs x86, for the small harness models."""
    from edgeopt.bench import measure

    rows = []
    for path in harness_models():
        if path.parent != CACHE:
            continue  # 224x224 models take seconds per invoke under emulation
        spread = output_spread(path)
        for cpu in cpus:
            entry = measure(path, f"qemu:{cpu}", runs=3, warmup=1, min_seconds=0.0)
            rows.append({"model": path.name, "target": f"qemu:{cpu}", "status": entry["status"],
                         "max_abs_diff": entry.get("max_abs_diff"), "x86_output_std": round(spread, 5),
                         "reason": entry["reason"]})
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'model':38} {'target':17} {'max abs diff':>12} {'x86 output std':>15}")
        for r in rows:
            diff = r["max_abs_diff"] if r["status"] == "ok" else f"failed: {r['reason']}"
            print(f"{r['model']:38} {r['target']:17} {diff!s:>12} {r['x86_output_std']:15.4g}")
        print("same inputs on both sides; int8 outputs in quantized steps, float outputs in their units")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def iqr(values: list[float]) -> float:
    """Interquartile range: how much the per-round ratios scatter (machine noise)."""
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q3 - q1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--tolerance", type=float, default=0.03)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--qemu", metavar="CPUS",
                        help="instead: compare outputs under qemu:CPU (comma separated) with x86")
    args = parser.parse_args()
    if args.qemu:
        return qemu_check(args.qemu.split(","), args.json)
    from edgeopt.bench import measure

    rows = []
    for path in harness_models():
        ours, bare, ratios = [], [], []
        for round_index in range(args.rounds):
            # Alternate which side goes first, and pair each round's two figures, so that slow drift
            # of a shared machine's load cancels in the per-round ratio.
            pair = {}
            for side in (("edgeopt", "bare") if round_index % 2 == 0 else ("bare", "edgeopt")):
                if side == "edgeopt":
                    entry = measure(path, "local", threads=args.threads, runs=args.runs, warmup=10,
                                    min_seconds=args.min_seconds, seed=round_index)
                    if entry["status"] != "ok":
                        print(f"{path.name}: edgeopt failed: {entry['reason']}", file=sys.stderr)
                        return 1
                    pair[side] = entry["p50_ms"]
                else:
                    pair[side] = bare_p50(path, args.threads, args.runs, args.min_seconds, 10, round_index)
            ours.append(pair["edgeopt"])
            bare.append(pair["bare"])
            ratios.append(pair["edgeopt"] / pair["bare"])
        rows.append({"model": path.name, "threads": args.threads,
                     "edgeopt_p50_ms": round(statistics.median(ours), 5),
                     "bare_p50_ms": round(statistics.median(bare), 5),
                     "difference": round(statistics.median(ratios) - 1, 4),
                     "round_spread": round(iqr(ratios), 4)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'model':38} {'edgeopt p50 ms':>15} {'bare p50 ms':>12} {'difference':>10} {'spread':>8}")
        for r in rows:
            print(f"{r['model']:38} {r['edgeopt_p50_ms']:15.5g} {r['bare_p50_ms']:12.5g}"
                  f" {r['difference']:+10.2%} {r['round_spread']:8.1%}")
        load = os.getloadavg()[0]
        print(f"local, {args.threads} thread(s), median of {args.rounds} paired rounds; tolerance "
              f"{args.tolerance:.0%}; load average {load:.1f} on {os.cpu_count()} cores")
    return 0 if all(abs(r["difference"]) <= args.tolerance for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
