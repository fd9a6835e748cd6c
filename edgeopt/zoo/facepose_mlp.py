"""facepose_mlp: the face-direction regressor, an MLP 1024 -> 32 -> 16 -> 8 -> 2 with tanh.

The 32x32 image is flattened to 1,024 inputs; three tanh hidden layers; a linear output of
(yaw, pitch) in degrees. 33,482 parameters at width 1.0; ``width`` scales the hidden layers.
"""

from __future__ import annotations

from edgeopt.kerasapi import keras


def build(input_shape: tuple[int, ...], output_dim: int, width: float = 1.0, dropout: float = 0.0):
    """Build the model (linear output in label units)."""
    inputs = keras.Input(shape=input_shape, name="face")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, n in enumerate((32, 16, 8), start=1):
        x = keras.layers.Dense(max(1, round(n * width)), activation="tanh", name=f"hidden{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    outputs = keras.layers.Dense(output_dim, name="pose")(x)
    return keras.Model(inputs, outputs, name="facepose_mlp")
