"""mobilenet_v2: a small MobileNetV2-style classifier for 32x32 single-channel images (``digits32``).

Stem Conv 3x3/2 -> inverted residual blocks (1x1 expansion, 3x3 depthwise, linear 1x1 projection,
residual add when the shape allows) -> 1x1 Conv -> global average pool -> Dense(classes), with batch
norm and ReLU6 throughout, as in Sandler et al. 2018 but sized for 32x32 inputs. It exercises what
QAT and pruning treat differently from plain Conv/Dense stacks: depthwise kernels, batch norm folding,
ReLU6 and residual adds. ``width`` is the width multiplier (channels rounded to multiples of 8).
"""

from __future__ import annotations

from edgeopt.kerasapi import keras

# (expansion, output channels, repeats, first stride) per stage, for 32x32 inputs.
BLOCKS = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 1, 1))
STEM_CHANNELS = 16
HEAD_CHANNELS = 128
# Batch-norm statistics must settle within a few hundred steps on 1,437 images (Keras' 0.99 needs ~1k).
BN_MOMENTUM = 0.9


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10% (MobileNet's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, activation: bool = True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if activation else x


def _inverted_residual(x, expansion: int, filters: int, stride: int, name: str):
    channels = int(x.shape[-1])
    y = x
    if expansion != 1:
        y = _conv_bn(y, channels * expansion, 1, 1, f"{name}_expand")
    y = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(y)
    y = keras.layers.ReLU(6.0, name=f"{name}_dw_relu6")(y)
    y = _conv_bn(y, filters, 1, 1, f"{name}_project", activation=False)
    if stride == 1 and channels == filters:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def build(input_shape: tuple[int, ...], output_dim: int, width: float = 1.0, dropout: float = 0.0):
    """Build the model (logits out; train with a from-logits loss)."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, make_divisible(STEM_CHANNELS * width), 3, 2, "stem")
    for stage, (expansion, channels, repeats, stride) in enumerate(BLOCKS, start=1):
        for r in range(repeats):
            x = _inverted_residual(x, expansion, make_divisible(channels * width), stride if r == 0 else 1,
                                   f"block{stage}_{r + 1}")
    x = _conv_bn(x, make_divisible(HEAD_CHANNELS * max(1.0, width)), 1, 1, "head")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(output_dim, name="logits")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2")
