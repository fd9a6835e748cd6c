#!/usr/bin/env python
"""What TensorFlow's op determinism costs a training run: the digits CNN's fit (18 epochs, batch 32,
Adam), timed in fresh processes with and without ``tf.config.experimental.enable_op_determinism()``
(which compress turns on so that a run repeats itself on one machine), alternating; prints the
medians and ranges. Used by docs/overhead.md.

    .venv/bin/python scripts/bench_determinism.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = """
import os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf, tf_keras as keras
from sklearn.datasets import load_digits
if sys.argv[1] == "1":
    tf.config.experimental.enable_op_determinism()
keras.utils.set_random_seed(0)
digits = load_digits()
x, y = (digits.images / 16.0).astype(np.float32)[..., None][:1437], digits.target[:1437]
inputs = keras.Input((8, 8, 1))
h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(h)
h = keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(h))
model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Dense(64, activation="relu")(h)))
model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
start = time.perf_counter()
model.fit(x, y, epochs=18, batch_size=32, validation_split=0.1, verbose=0)
print(time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fits of each kind")
    args = parser.parse_args()
    times: dict[bool, list[float]] = {True: [], False: []}
    for run in range(args.runs):
        for deterministic in ((False, True) if run % 2 == 0 else (True, False)):
            out = subprocess.run([sys.executable, "-c", CHILD, "1" if deterministic else "0"], check=True,
                                 capture_output=True, text=True, env=os.environ.copy())
            times[deterministic].append(float(out.stdout.split()[-1]))
    for deterministic, values in times.items():
        state = "on " if deterministic else "off"
        print(f"op determinism {state}: fit median {statistics.median(values):.2f} s "
              f"(range {min(values):.2f}-{max(values):.2f}, {len(values)} runs)")
    print(f"ratio of the medians: {statistics.median(times[True]) / statistics.median(times[False]):.2f}")


if __name__ == "__main__":
    main()
