"""The digits recipe written by hand with TFMOT and LiteRT: the yardstick for edgeopt's own overhead.

Does the work of ``edgeopt compress models/digits_cnn/recipe.yaml`` that a user would otherwise write
themselves, for the figures compress's report gives: with TensorFlow's op determinism on (compress's
runs repeat themselves on one machine), train with early stopping and save the Keras model; convert
it to float32, evaluate and time it (the reference every speed-up and accuracy change is measured
against); prune 30 -> 80 % over 12 epochs, prune-preserving QAT for 5 epochs, convert float32 and
int8, evaluate both ``.tflite`` on the test split through LiteRT; time each file as the recipe's
benchmark asks (20 warm-up invokes, then at least 200 runs and 1 second); gzip -9 every file (the
report's sizes). Run by scripts/bench_overhead.py; prints one JSON line.

``--bare`` leaves out what a quick script would skip: op determinism, the warm-up, the gzip sizes and
the saved Keras model.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


def model_for(shape, classes):
    inputs = keras.Input(shape=shape)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def compile_for(model, lr):
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def evaluate(path, x, y):
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    correct = 0
    for sample, label in zip(x, y, strict=True):
        value = sample[np.newaxis]
        if inp["dtype"] == np.int8:
            value = np.clip(np.round(value / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], value)
        interpreter.invoke()
        correct += int(interpreter.get_tensor(out["index"]).argmax() == label)
    return correct / len(y), interpreter


def latency_ms(interpreter, warmup: int, runs=200, seconds=1.0):
    for _ in range(warmup):
        interpreter.invoke()
    times, start = [], time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def main() -> None:
    started = time.perf_counter()
    bare = "--bare" in sys.argv[1:]
    if not bare:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2,
                                                        stratify=digits.target, random_state=0)
    model = model_for(x_train.shape[1:], 10)
    compile_for(model, 1e-3)
    stop = keras.callbacks.EarlyStopping(patience=6, restore_best_weights=True)
    model.fit(x_train, y_train, epochs=40, batch_size=32, validation_split=0.1, callbacks=[stop], verbose=0)
    folder = Path(tempfile.mkdtemp(prefix="handwritten-"))
    if not bare:
        model.save(folder / "model.keras")
    (folder / "reference.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())

    steps = int(np.ceil(len(x_train) * 0.9 / 32)) * 12
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.3, 0.8, begin_step=0, end_step=int(steps * 0.8),
                                                    frequency=10)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    compile_for(pruned, 5e-4)
    pruned.fit(x_train, y_train, epochs=12, batch_size=32, validation_split=0.1, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)

    annotated = tfmot.quantization.keras.quantize_annotate_model(stripped)
    qat = tfmot.quantization.keras.quantize_apply(
        annotated, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
    compile_for(qat, 1e-4)
    qat.fit(x_train, y_train, epochs=5, batch_size=32, validation_split=0.1, verbose=0)

    (folder / "float32.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(stripped).convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(qat)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[np.newaxis]] for s in x_train[:200])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    (folder / "int8.tflite").write_bytes(converter.convert())

    figures = {}
    for name in ("reference", "float32", "int8"):
        accuracy, interpreter = evaluate(folder / f"{name}.tflite", x_test, y_test)
        raw = (folder / f"{name}.tflite").read_bytes()
        figures[name] = {"accuracy": accuracy, "p50_ms": latency_ms(interpreter, warmup=0 if bare else 20),
                         "size_bytes": len(raw)}
        if not bare:
            figures[name]["gzip_bytes"] = len(gzip.compress(raw, compresslevel=9, mtime=0))
    if not bare:
        figures["keras_gzip_bytes"] = len(gzip.compress((folder / "model.keras").read_bytes(), 9, mtime=0))
    print(json.dumps({"seconds": time.perf_counter() - started, **figures}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
