#!/usr/bin/env python3
"""Bring your own model and data, measured: a Keras 3 MobileNetV2 on a folder of images, through edgeopt.

1. Writes a seeded, synthetic but learnable image-folder dataset: 4 classes of striped 96x96 RGB PNGs
   (horizontal, vertical, diagonal stripes, checkerboard) in random colours, periods and phases, with
   pixel noise; 300 images per class, one folder per class.
2. Builds `keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None,
   classes=4, classifier_activation=None)` in Keras 3 (random init; a logits head), trains it briefly
   in Keras 3 on the training split edgeopt will use (read with `edgeopt.evaluate.load_data`, pixels
   scaled by 1/255; Adam with cosine decay) and saves it as `model.keras`.
3. Runs the quick path, as a user would type it:
   `edgeopt compress --model model.keras --data '{path: images, scale: 1/255}' --preset prune-qat-int8`
   edgeopt rebuilds the Keras 3 model as tf_keras and checks the rebuild, prunes to 50 %, runs
   prune-preserving QAT and exports float32 and int8, each evaluated and benchmarked (LiteRT,
   XNNPACK, 1 thread). Then the same with `--preset ptq-int8`, which separates what int8 costs from
   what pruning costs.
4. Cross-checks the int8 accuracy with `edgeopt evaluate`, and prints Markdown for the README: the
   rebuild's max abs difference, accuracies, sizes (bytes and gzip), local p50, and wall times.

The batch-norm momentum of the model is set to 0.9 (Keras' MobileNetV2 uses 0.999): with a few
hundred training steps from random init, 0.999 leaves the moving statistics near their initial
values and inference accuracy near chance, whatever the training accuracy.

Usage: .venv/bin/python scripts/bench_byo.py [--out runs/bench_byo] [--epochs 15] [--per-class 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZE = 96
CLASSES = ("horizontal", "vertical", "diagonal", "checker")
SCALE = 1 / 255
PERIOD = (10, 22)  # stripe period in pixels
MIN_CONTRAST = 200  # summed over R, G and B, of 765
NOISE = 12  # pixel noise sigma, of 255
EPOCHS = 15
BATCH = 32
PRESETS = ("prune-qat-int8", "ptq-int8")  # the first is the one measured in full
# The first preset with nothing pruned: fine-tuning and QAT alone, to tell what pruning costs.
CONTROL = ("prune-qat-int8, 0 % pruned", "prune-qat-int8",
           ["stages.0.target_sparsity=0", "stages.0.initial_sparsity=0"])


VERIFIED_ON = {"samples": "256 images of the training split", "synthetic": "seeded random inputs"}

def stripes(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One 96x96 RGB image of ``kind``: two random colours, random period and phase, pixel noise."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    period = rng.uniform(PERIOD[0], PERIOD[1])
    phase = rng.uniform(0, 2 * np.pi)
    wave = {
        "horizontal": np.sin(2 * np.pi * yy / period + phase),
        "vertical": np.sin(2 * np.pi * xx / period + phase),
        "diagonal": np.sin(2 * np.pi * (xx + yy) / (period * np.sqrt(2)) + phase),
        "checker": np.sin(2 * np.pi * xx / period + phase) * np.sin(2 * np.pi * yy / period + phase),
    }[kind]
    mask = (wave > 0).astype(np.float64)[..., None]
    low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    while np.abs(high - low).sum() < MIN_CONTRAST:  # keep the stripes visible
        high = rng.uniform(0, 255, 3)
    image = low * (1 - mask) + high * mask + rng.normal(0, NOISE, (SIZE, SIZE, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_images(folder: Path, per_class: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        (folder / kind).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(stripes(kind, rng), "RGB").save(folder / kind / f"{i:04d}.png")


def train_keras3(data, epochs: int, seed: int, path: Path) -> dict:
    """MobileNetV2 0.35 at 96x96 from random init, trained in Keras 3 and saved; its own test accuracy."""
    from edgeopt.keras3 import keras3_module  # chooses tf_keras for TensorFlow, then imports Keras 3

    keras = keras3_module()
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(alpha=0.35, input_shape=(SIZE, SIZE, 3), weights=None,
                                           classes=len(CLASSES), classifier_activation=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    steps = epochs * int(np.ceil(len(data.x_train) / BATCH))
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps)  # ends near 0: settled
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(schedule), loss, metrics=["accuracy"])
    history = model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=BATCH, verbose=0)
    accuracy = float(np.mean(model.predict(data.x_test, verbose=0).argmax(axis=1) == data.y_test))
    model.save(path)
    return {"keras_version": keras.__version__, "params": int(model.count_params()),
            "layers": len(model.layers), "keras3_test_accuracy": accuracy,
            "keras3_train_accuracy": float(history.history["accuracy"][-1])}


def edgeopt_command() -> list[str]:
    console = Path(sys.executable).with_name("edgeopt")
    if console.exists():
        return [str(console)]
    return [sys.executable, "-c", "from edgeopt.cli import main; main()"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compress(model_path: Path, data_option: str, preset: str, out: Path,
             overrides: list[str] = ()) -> tuple[dict, float]:
    """``edgeopt compress --preset`` as a user runs it; its report.json and wall time."""
    sets = [arg for item in overrides for arg in ("--set", item)]
    print(f"$ edgeopt compress --model {model_path} --data '{data_option}' --preset {preset} --out {out}"
          + "".join(f" {arg}" for arg in sets), file=sys.stderr)
    start = time.monotonic()
    done = subprocess.run([*edgeopt_command(), "compress", "--model", str(model_path), "--data", data_option,
                           "--preset", preset, "--out", str(out), "--quiet", "--json", *sets],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"edgeopt compress --preset {preset} failed (exit {done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout), time.monotonic() - start


def row(label: str, variant: dict, reference: dict) -> str:
    accuracy = variant["metrics"]["accuracy"]["value"]
    drop = (accuracy - reference["metrics"]["accuracy"]["value"]) * 100
    local = variant["latency"]["local"]
    return (f"| {label} | {accuracy:.4f} ({drop:+.2f}) | {variant['size_bytes']:,} | "
            f"{variant['gzip_bytes']:,} ({reference['gzip_bytes'] / variant['gzip_bytes']:.1f}x) | "
            f"{variant['sparsity']:.3f} | "
            f"{local['p50_ms']:.3f} (p90 {local['p90_ms']:.3f}, {local['runs']} runs) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_byo", type=Path)
    parser.add_argument("--epochs", default=EPOCHS, type=int, help="Keras 3 training epochs")
    parser.add_argument("--per-class", default=300, type=int, help="images per class")
    parser.add_argument("--seed", default=0, type=int)
    args = parser.parse_args()
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    images, model_path = out / "images", out / "model.keras"
    started = time.monotonic()

    write_images(images, args.per_class, args.seed)
    data_option = f"{{path: {images}, scale: {SCALE!r}}}"
    seconds = {"images": time.monotonic() - started}

    from edgeopt.evaluate import load_data

    start = time.monotonic()
    data = load_data({"path": str(images), "scale": SCALE})  # the very split edgeopt will hold out
    trained = train_keras3(data, args.epochs, args.seed, model_path)
    seconds["Keras 3 training"] = time.monotonic() - start
    reports = {}
    for preset in PRESETS:
        reports[preset], seconds[f"compress {preset}"] = compress(model_path, data_option, preset,
                                                                  out / preset)
    label, preset, overrides = CONTROL
    control, seconds["compress control"] = compress(model_path, data_option, preset, out / "control",
                                                    overrides)
    start = time.monotonic()
    evaluated = subprocess.run([*edgeopt_command(), "evaluate", str(out / PRESETS[0] / "int8.tflite"),
                                "--data", data_option, "--json"], capture_output=True, text=True, check=True)
    seconds["evaluate"] = time.monotonic() - start
    total = time.monotonic() - started
    evaluation = json.loads(evaluated.stdout)

    main_report = reports[PRESETS[0]]
    variants = {v["name"]: v for v in main_report["variants"]}
    ptq = {v["name"]: v for v in reports["ptq-int8"]["variants"]}
    unpruned = {v["name"]: v for v in control["variants"]}
    facts, env, described = main_report["model_file"], main_report["environment"], main_report["data"]
    reference = variants["original"]
    isa = ", ".join(flag for flag in env.get("isa", []) if flag in ("avx2", "avx512f", "avx512_vnni"))
    print(f"Measured {time.strftime('%Y-%m-%d')} on {cpu_name()} ({os.cpu_count()} cores, {isa}; shared with "
          f"other jobs), Python {platform.python_version()}, Keras {trained['keras_version']} -> tf_keras "
          f"{env.get('tf_keras', '')}, LiteRT {env.get('litert')} with XNNPACK, 1 thread.\n")
    print(f"Data: {len(CLASSES)} classes x {args.per_class} generated PNGs, {SIZE}x{SIZE} RGB, read with "
          f"scale 1/255; {described['n_train']} train / {described['n_test']} test (the seeded, stratified "
          f"20 % edgeopt holds out). Model: Keras 3 MobileNetV2 alpha 0.35, {trained['params']:,} "
          f"parameters, {trained['layers']} layers, trained {args.epochs} epochs with Adam, cosine decay "
          f"from 1e-3 (its own accuracy in Keras 3: train {trained['keras3_train_accuracy']:.4f}, test "
          f"{trained['keras3_test_accuracy']:.4f}).\n")
    inputs = VERIFIED_ON.get(facts["verified_on"], facts["verified_on"])
    print(f"Rebuild as tf_keras: max abs output difference {facts['max_abs_diff']:.3g} against the Keras 3 "
          f"model on {inputs} (largest output {facts['output_scale']:.3g}, tolerance "
          f"{facts['tolerance']:.3g}).\n")
    print("| variant | accuracy (points vs file) | bytes | gzip bytes (smaller) | weight sparsity | "
          "local p50 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    print(row("original: the file as given", reference, reference))
    print(row("`ptq-int8`: int8", ptq["int8"], reference))
    print(row(f"`{PRESETS[0]}`: float32, pruned", variants["float32"], reference))
    print(row(f"`{PRESETS[0]}`: int8", variants["int8"], reference))
    print(row(f"control, `{label}`: float32", unpruned["float32"], reference))
    print(row(f"control, `{label}`: int8", unpruned["int8"], reference))
    print(f"\n`edgeopt evaluate` on the `{PRESETS[0]}` int8 file: accuracy "
          f"{evaluation['metrics']['accuracy']['value']:.4f} ({evaluation['correct']} of "
          f"{evaluation['data']['samples']}), as in its report.\n")
    print("Wall time: " + ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items())
          + f"; **total {total:.0f} s**.")
    print(f"\nOutputs in {out}: images/, model.keras, and a folder per preset (report.json, report.html, "
          "recipe.resolved.yaml, the .tflite files).", file=sys.stderr)


if __name__ == "__main__":
    main()
