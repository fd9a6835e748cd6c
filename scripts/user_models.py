"""Keras 3 models that full-integer int8 breaks, built as users build them (never shipped with edgeopt).

* :func:`tabular`: an MLP that standardises 8 CSV features whose scales run from 1e-3 to 1e4 with a
  ``Normalization`` layer named ``norm``; one int8 scale for its raw input erases the small features.
* :func:`spiky_cnn`: a CNN on the built-in digits whose convolution ``spiky`` has one channel firing on
  ~5 % of positions, ~300x larger than the others (the function is kept by scaling the next layer's
  input down and fine-tuning); one int8 scale for that tensor leaves the other channels a few steps.

Used by scripts/bench_quant.py and the tests, each building into a folder of its own. Seeded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCALES = np.array([1e-3, 1.0, 50.0, 1e3, 1e4, 0.1, 5.0, 300.0])
OUTLIER = 300.0


def tabular(folder: Path, rows: int = 600, epochs: int = 60, hidden: tuple[int, ...] = (32,),
            seed: int = 0) -> tuple[Path, Path]:
    """Write ``tab.csv`` (features f0..f7, label) and train and save ``tab.keras``; their paths.
    The model is fitted on the first 80 % of the rows, the share edgeopt's seeded split trains on."""
    import keras

    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(rows, 8)) * SCALES + SCALES * 3).astype("float32")
    y = (((x - SCALES * 3) / SCALES) @ rng.normal(size=(8, 3))).argmax(1)
    csv = folder / "tab.csv"
    with open(csv, "w") as f:
        f.write(",".join(f"f{i}" for i in range(8)) + ",label\n")
        f.writelines(",".join(f"{v:.7g}" for v in row) + f",{label}\n"
                     for row, label in zip(x, y, strict=True))
    train = int(rows * 0.8)
    keras.utils.set_random_seed(seed)
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(x[:train])
    layers = [keras.layers.Dense(units, activation="relu") for units in hidden]
    model = keras.Sequential([keras.Input((8,)), norm, *layers, keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:train], y[:train], epochs=epochs, verbose=0)
    model.save(folder / "tab.keras")
    return folder / "tab.keras", csv


def spiky_cnn(folder: Path, epochs: int = 30, seed: int = 0) -> tuple[Path, Path]:
    """Write ``digits.npz`` (the built-in digits) and train and save ``spiky.keras``; their paths."""
    import keras

    from edgeopt.data import load_dataset

    data = load_dataset("digits")
    npz = folder / "digits.npz"
    np.savez(npz, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(data.x_train.shape[1:])
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="spiky")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv3")(x)
    outputs = keras.layers.Dense(10, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    kernel, bias = model.get_layer("spiky").get_weights()
    active = keras.Model(inputs, model.get_layer("spiky").output).predict(data.x_train, verbose=0)
    channel = int(active.reshape(-1, 16).mean(0).argmax())
    threshold = np.quantile(active[..., channel][active[..., channel] > 0], 0.98)
    kernel[..., channel] *= OUTLIER  # fires on ~5 % of positions, hundreds of times larger
    bias[channel] = (bias[channel] - threshold) * OUTLIER
    model.get_layer("spiky").set_weights([kernel, bias])
    k3, b3 = model.get_layer("conv3").get_weights()
    k3[:, :, channel, :] /= OUTLIER
    model.get_layer("conv3").set_weights([k3, b3])
    model.fit(data.x_train, data.y_train, epochs=10, batch_size=32, verbose=0)
    model.save(folder / "spiky.keras")
    return folder / "spiky.keras", npz
