"""digits_cnn: a small CNN for 8x8 (or larger) single-channel digit images.

Conv(32) -> Conv(64) -> MaxPool -> Dense(64) -> Dense(classes), ReLU, logits out. ``width`` scales
every hidden layer (students for distillation); ``dropout`` goes before the classifier.
"""

from __future__ import annotations

from edgeopt.kerasapi import keras


def build(input_shape: tuple[int, ...], output_dim: int, width: float = 1.0, dropout: float = 0.0):
    """Build the model (logits out; train with a from-logits loss)."""

    def units(n: int) -> int:
        return max(1, round(n * width))

    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(units(32), 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(units(64), 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(units(64), activation="relu", name="dense")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(output_dim, name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")
