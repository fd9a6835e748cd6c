"""The model zoo: builders by name, with the metadata the CLI lists without importing TensorFlow.

``ZOO`` maps a name to a :class:`ZooEntry`; ``build(name, input_shape, output_dim, **options)``
imports the builder lazily. ``params`` is the parameter count at the default options and is checked
against the built model by the tests.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from edgeopt.errors import InputError


@dataclass(frozen=True)
class ZooEntry:
    name: str
    builder: str  # "module:function" under edgeopt.zoo
    task: str  # classification | regression
    default_data: str
    params: int
    about: str
    options: tuple[str, ...] = ("width", "dropout")  # the builder's keyword options (tune may search them)


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            "digits_cnn",
            "edgeopt.zoo.digits_cnn:build",
            "classification",
            "digits",
            85_066,
            "small CNN for 8x8 digits; width option for students",
        ),
        ZooEntry(
            "facepose_mlp",
            "edgeopt.zoo.facepose_mlp:build",
            "regression",
            "facepose",
            33_482,
            "MLP 1024-32-16-8-2 (tanh) for face yaw/pitch; width option for students",
        ),
        ZooEntry(
            "mobilenet_v2",
            "edgeopt.zoo.mobilenet_v2:build",
            "classification",
            "digits32",
            53_162,
            "MobileNetV2-style (depthwise-separable, BN, ReLU6) for 32x32x1; width multiplier",
        ),
    )
}


def get_entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise InputError(
            f"unknown zoo model '{name}' (known: {', '.join(ZOO)}; or give a path to a saved Keras model)"
        )
    return ZOO[name]


def default_data_for(name: str) -> str:
    return get_entry(name).default_data


def build(name: str, input_shape: tuple[int, ...], output_dim: int, **options):
    """Build zoo model ``name`` for the given input shape and output size (imports TensorFlow)."""
    entry = get_entry(name)
    module_name, func_name = entry.builder.split(":")
    builder = getattr(importlib.import_module(module_name), func_name)
    try:
        return builder(input_shape=input_shape, output_dim=output_dim, **options)
    except TypeError as exc:
        raise InputError(f"model_options for '{name}': {exc}") from None
