#!/usr/bin/env python3
"""Does the LiteRT runtime edgeopt ships run XNNPACK's sparse kernels? Measured, not assumed.

Builds a float model that meets XNNPACK's documented conditions for sparse inference: the first layer
a 3x3 stride-2 convolution over 3 channels (``ZeroPadding2D(1)`` then a VALID conv, the explicit
padding XNNPACK requires), then MobileNet-style blocks of a 3x3 depthwise and a 1x1 convolution,
ending in a mean (global average pooling) and a Dense head. The 1x1 kernels are pruned by magnitude
to ``--sparsity`` (at least 2/3 zeros). Three files: the unpruned model, the pruned one stored dense,
and the pruned one stored sparse (the converter's ``EXPERIMENTAL_SPARSITY``, whose DENSIFY ops the
XNNPACK delegate reads as static sparse weights). Each runs locally through the LiteRT interpreter
(XNNPACK, 1 thread: measured) and, with ``--qemu``, under aarch64 QEMU on a Cortex-A72 view
(emulated: QEMU's timings, not a board's, shown in their own columns). Outputs of the dense and the
sparse-stored file are compared. If the sparse-stored file is not faster than the dense one on a
target, the sparse kernels did not pay there.

Usage: .venv/bin/python scripts/bench_sparse.py [--out runs/bench_sparse] [--sparsity 0.8] [--qemu]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SIZE = 96
BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1))  # (1x1 filters, dw stride)


def build(seed: int = 0):
    from edgeopt.kerasapi import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.ZeroPadding2D(1)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="valid", activation="relu", name="stem")(x)
    for i, (filters, stride) in enumerate(BLOCKS):
        if stride == 2:
            x = keras.layers.ZeroPadding2D(1)(x)
        x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="valid" if stride == 2 else "same",
                                         activation="relu", name=f"dw{i}")(x)
        x = keras.layers.Conv2D(filters, 1, activation="relu", name=f"pw{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="head")(x))


def prune_pointwise(model, sparsity: float):
    """A copy whose 1x1 kernels keep only their largest (1 - sparsity) weights by magnitude."""
    from edgeopt.kerasapi import keras

    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    for layer in pruned.layers:
        if layer.name.startswith("pw"):
            kernel, bias = layer.get_weights()
            cut = np.quantile(np.abs(kernel), sparsity)
            layer.set_weights([np.where(np.abs(kernel) <= cut, 0.0, kernel).astype(kernel.dtype), bias])
    return pruned


def convert(model, sparse: bool) -> bytes:
    from edgeopt.kerasapi import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if sparse:
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return converter.convert()


def outputs(path: Path, x: np.ndarray) -> np.ndarray:
    from edgeopt.evaluate import predict

    return predict(path, x)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_sparse"))
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--qemu", action="store_true", help="also run under aarch64 QEMU (emulated)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import edgeopt
    from edgeopt import environment

    model = build()
    pruned = prune_pointwise(model, args.sparsity)
    files = {"unpruned, dense": convert(model, False), "pruned, dense": convert(pruned, False),
             "pruned, sparse-stored": convert(pruned, True)}
    rows = []
    x = np.random.default_rng(0).random((8, SIZE, SIZE, 3), dtype=np.float32)
    reference = None
    for label, raw in files.items():
        path = args.out / (label.replace(", ", "_").replace("-", "_") + ".tflite")
        path.write_bytes(raw)
        info = edgeopt.inspect_tflite(path)
        y = outputs(path, x)
        if label == "pruned, dense":
            reference = y
        row = {"file": label, "bytes": len(raw), "densify_ops": info["ops"].get("DENSIFY", 0),
               "sparsity": info["sparsity"], "macs": info["macs"]}
        local = edgeopt.benchmark(path, "local", min_seconds=args.min_seconds, runs=200, warmup=50)
        row.update(local_p50=local.p50_ms, local_p90=local.p90_ms, local_runs=local.runs)
        if args.qemu:
            emulated = edgeopt.benchmark(path, "qemu:cortex-a72", min_seconds=args.min_seconds, runs=20,
                                         warmup=3, timeout=1800)
            row.update(qemu_p50=emulated.p50_ms if emulated.ok else None, qemu_status=str(emulated.status),
                       qemu_reason=emulated.reason)
        rows.append((row, y))
    for row, y in rows:
        row["max_abs_diff_vs_pruned_dense"] = float(np.abs(y - reference).max())
    machine = environment.describe()
    emulated_note = "; qemu = emulated aarch64 Cortex-A72 under QEMU user mode, the same LiteRT for aarch64"
    lines = [f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, ISA {' '.join(machine['isa'])}; "
             f"LiteRT {machine.get('litert')}; local = measured, XNNPACK, 1 thread"
             + (emulated_note if args.qemu else ""), "",
             "| file | bytes | DENSIFY ops | weight sparsity | MACs | local p50 ms (p90) |"
             + (" qemu p50 ms (emulated) |" if args.qemu else ""),
             "|---|---:|---:|---:|---:|---:|" + ("---:|" if args.qemu else "")]
    for row, _ in rows:
        line = (f"| {row['file']} | {row['bytes']:,} | {row['densify_ops']} | {row['sparsity']:.3f} | "
                f"{row['macs']:,} | {row['local_p50']:.4g} ({row['local_p90']:.4g}) |")
        if args.qemu:
            line += f" {row['qemu_p50']:.4g} |" if row.get("qemu_p50") else f" {row.get('qemu_reason')} |"
        lines.append(line)
    text = "\n".join(lines)
    print(text)
    (args.out / "bench_sparse.md").write_text(text + "\n")
    (args.out / "bench_sparse.json").write_text(json.dumps({"machine": machine, "rows": [r for r, _ in rows]},
                                                           indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
