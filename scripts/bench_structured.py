#!/usr/bin/env python3
"""Channel pruning against unstructured pruning, measured: does the dense .tflite get faster?

Models: the zoo's digits_cnn and mobilenet_v2 (trained by their recipes), and a ResNet-style Keras 3
CNN built here as a user builds one (Conv-BN-ReLU stem, two residual blocks with Adds, one with a 1x1
projection shortcut, a depthwise block, global average pooling), trained in Keras 3 on a folder of
generated striped images (scripts/bench_byo.py's generator, 64x64).

Each model is prepared once (``edgeopt.prepare``: data, trained model, measured float reference), then
compressed several ways from that same model, so every figure is against the same reference:
* ``channels N %``: ``prune_channels`` removing N % of the channels of every prunable group (N = 0, 25,
  50, 75), fine-tuned, then quantization-aware training; float32 and int8 exported;
* ``unstructured 80 %``: TFMOT magnitude pruning to 80 %, then prune-preserving QAT;
* ``ptq``: the trained model quantized after training, nothing removed.
Figures from each emitted ``.tflite``: accuracy (LiteRT, test split), raw and gzip bytes, MACs
(inspect), int8 p50 measured locally (LiteRT, XNNPACK, 1 thread) and estimated for a Raspberry Pi 4
(``estimate:pi4``, in its own column). Prints one Markdown table and writes it, with the machine, to
``--out``/bench_structured.md.

Usage: .venv/bin/python scripts/bench_structured.py [--out runs/bench_structured] [--models ...]
       [--epochs N] [--fine-tune N] [--levels F ...] [--distill] [--qat-epochs N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench_report import publish  # scripts/, beside this file

from edgeopt.types import LatencyKey

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
LEVELS = (0.0, 0.25, 0.5, 0.75)
BENCH = ["benchmark.targets=[local, 'estimate:pi4']", "benchmark.min_seconds=1", "benchmark.warmup=20"]
NO_BUDGET = ["budgets=null"]  # every level is measured; nothing here is judged against a budget


def resnet_style(folder: Path, epochs: int, seed: int = 0) -> tuple[str, dict]:
    """The Keras 3 ResNet-style CNN on a generated image folder; its saved path and data option."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_byo

    sys.path.pop(0)
    images = folder / "images"
    if not images.exists():
        bench_byo.SIZE = SIZE
        bench_byo.write_images(images, per_class=240, seed=seed)
    data_option = {"path": str(images), "scale": 1 / 255}
    from edgeopt.evaluate import load_data
    from edgeopt.keras3 import keras3_module

    data = load_data(data_option)
    keras = keras3_module()
    keras.utils.set_random_seed(seed)

    def conv_bn(x, filters, kernel=3, strides=1, name=""):
        x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                                name=f"{name}_conv")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    inputs = keras.Input(data.x_train.shape[1:])
    x = conv_bn(inputs, 32, strides=2, name="stem")
    shortcut = x
    y = conv_bn(x, 32, name="b1a")
    y = keras.layers.BatchNormalization(momentum=0.9, name="b1b_bn")(
        keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="b1b_conv")(y))
    x = keras.layers.ReLU(name="b1_out")(keras.layers.Add(name="b1_add")([shortcut, y]))
    shortcut = keras.layers.BatchNormalization(momentum=0.9, name="proj_bn")(
        keras.layers.Conv2D(64, 1, strides=2, use_bias=False, name="proj_conv")(x))
    y = conv_bn(x, 64, strides=2, name="b2a")
    y = keras.layers.BatchNormalization(momentum=0.9, name="b2b_bn")(
        keras.layers.Conv2D(64, 3, padding="same", use_bias=False, name="b2b_conv")(y))
    x = keras.layers.ReLU(name="b2_out")(keras.layers.Add(name="b2_add")([shortcut, y]))
    y = conv_bn(x, 128, kernel=1, name="b3_expand")
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="b3_dw")(y)
    y = keras.layers.BatchNormalization(momentum=0.9, name="b3_dw_bn")(y)
    y = keras.layers.ReLU(name="b3_dw_relu")(y)
    x = conv_bn(y, 96, kernel=1, name="b3_project")
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(bench_byo.CLASSES), name="logits")(x))
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    path = folder / "resnet_style.keras"
    model.save(path)
    return str(path), data_option


def configurations(fine_tune: int, levels=LEVELS, distill: bool = False, qat_epochs: int = 2,
                   learning_rate: float | None = None) -> dict[str, list[dict]]:
    qat = {"kind": "quantize", "mode": "qat", "epochs": qat_epochs}
    rows = {"ptq": [{"kind": "quantize", "mode": "ptq"}]}
    for level in levels:
        channels = {"kind": "prune_channels", "fraction": level, "epochs": fine_tune}
        if distill:
            channels["distill"] = True
        if learning_rate:
            channels["learning_rate"] = learning_rate
        rows[f"channels {level:.0%}" + (" distilled" if distill else "")] = [channels, qat]
    rows["unstructured 80 %"] = [{"kind": "prune", "target_sparsity": 0.8, "epochs": fine_tune}, qat]
    return rows


def recipe_for(name: str, folder: Path, epochs: int):
    import edgeopt

    if name == "resnet_style":
        model, data = resnet_style(folder, epochs)
        return edgeopt.load_recipe(preset="ptq-int8", model=model, data=data, overrides=BENCH + NO_BUDGET)
    return edgeopt.load_recipe(ROOT / "models" / name / "recipe.yaml", BENCH + NO_BUDGET)


def measure(name: str, folder: Path, epochs: int, fine_tune: int, levels=LEVELS, distill: bool = False,
            qat_epochs: int = 2, learning_rate: float | None = None) -> list[dict]:
    import edgeopt
    from edgeopt.errors import EdgeoptError

    started = time.time()
    prepared = edgeopt.prepare(recipe_for(name, folder, epochs))
    reference = prepared.reference
    rows = []
    for label, stages in configurations(fine_tune, levels, distill, qat_epochs, learning_rate).items():
        try:
            result = edgeopt.compress(prepared, stages=stages, export=["float32", "int8"])
        except EdgeoptError as exc:
            rows.append({"model": name, "variant": label, "status": f"refused: {exc}"})
            continue
        for v in result.report.variants:
            if v.format in ("float32", "int8") and v.name in ("float32", "int8"):
                rows.append(row(name, label, v, reference))
    print(f"{name}: {time.time() - started:.0f} s", file=sys.stderr)
    return rows


def row(model: str, label: str, v, reference) -> dict:
    metric = v.metric("accuracy")
    ref = reference.metric("accuracy")
    local, pi4 = v.latency.get(LatencyKey("local")), v.latency.get(LatencyKey("estimate:pi4"))
    return {"model": model, "variant": label, "format": v.format,
            "accuracy": metric.value if metric else None,
            "delta_pt": (metric.value - ref.value) * 100 if metric and ref else None,
            "bytes": v.size_bytes, "gzip": v.gzip_bytes, "macs": v.inspect.macs,
            "local_p50": local.p50_ms if local and local.ok else None,
            "local_p90": local.p90_ms if local and local.ok else None,
            "pi4_p50": pi4.p50_ms if pi4 and pi4.ok else None, "status": v.status, "reason": v.reason}


def markdown(rows: list[dict]) -> str:
    out = ["| model | variant | format | accuracy (change) | bytes | gzip | MACs "
           "| local p50 ms (p90), measured | Pi 4 p50 ms, estimated |",
           "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "format" not in r:
            out.append(f"| {r['model']} | {r['variant']} | | {r['status']} | | | | | |")
            continue
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.2%} ({r['delta_pt']:+.2f} pt)"
        local = "-" if r["local_p50"] is None else f"{r['local_p50']:.4g} ({r['local_p90']:.4g})"
        pi4 = "-" if r["pi4_p50"] is None else f"{r['pi4_p50']:.4g}"
        out.append(f"| {r['model']} | {r['variant']} | {r['format']} | {acc} | {r['bytes']:,} | "
                   f"{r['gzip']:,} | {r['macs']:,} | {local} | {pi4} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_structured"))
    parser.add_argument("--models", nargs="+", default=["digits_cnn", "resnet_style", "mobilenet_v2"])
    parser.add_argument("--epochs", type=int, default=20, help="Keras 3 training of the ResNet-style CNN")
    parser.add_argument("--fine-tune", type=int, default=4, help="fine-tuning epochs after pruning")
    parser.add_argument("--levels", type=float, nargs="+", default=list(LEVELS),
                        help="fractions of channels removed, one row each")
    parser.add_argument("--distill", action="store_true", help="channel pruning fine-tunes distilled")
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=None, help="channel fine-tuning's rate")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from edgeopt import environment

    rows = []
    for name in args.models:
        rows += measure(name, args.out, args.epochs, args.fine_tune, args.levels, args.distill,
                        args.qat_epochs, args.learning_rate)
    machine = environment.describe()
    header = (f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, ISA {' '.join(machine['isa'])}; "
              f"LiteRT {machine.get('litert')}; local p50 measured through LiteRT with XNNPACK, 1 thread; "
              "Pi 4 p50 estimated (edgeopt's estimate:pi4 model).")
    table = markdown(rows)
    publish(args.out, "bench_structured", header, table, machine, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
