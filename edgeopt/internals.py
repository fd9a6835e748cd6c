"""The one module that reaches into private parts of tf_keras and TensorFlow Model Optimization.

Everything here is an attribute or a module their authors do not promise to keep; a version of
tf_keras or TFMOT that moves one breaks edgeopt here and nowhere else. Each entry says why no public
way does the job:

* :func:`is_graph_network` (``model._is_graph_network``): whether a model is a graph of layers
  (Functional or Sequential) rather than a subclassed model with its own ``call``. TFMOT's wrappers
  and edgeopt's channel pruning need the graph; tf_keras has no public test (a subclassed model is
  also a ``keras.Model`` and has ``layers``).
* :func:`nodes_by_depth` (``model._nodes_by_depth``): the graph's layer calls, by depth. Channel
  pruning walks the graph in topological order with each call's inbound layers; tf_keras has no public
  graph walk.
* :func:`producing_layer` (``tensor._keras_history``): the layer that computes a symbolic tensor, to
  name a model's output layers (``model.output_names`` gives names, not layers, and not for every
  kind of model).
* :func:`consuming_layers` (``layer._outbound_nodes``): the layers a layer feeds, for the repair's
  folding of one layer into the next.
* :func:`builtin_layer_classes` (``tf_keras.src.layers.serialization``): the class names tf_keras'
  deserialiser resolves by itself, to tell a model file's own classes from Keras'; tf_keras exports
  no such list.
* :func:`safe_mode_off` (``tf_keras.src.saving.serialization_lib.SafeModeScope``): TFMOT rebuilds a
  model from its config, which safe mode refuses for a Lambda layer the user already trusted; the
  public ``safe_mode=`` argument is not reachable through TFMOT's calls.
* :func:`cluster_weights_class` (``tfmot...clustering.keras.cluster_wrapper.ClusterWeights``): the
  clustering wrapper's class, to find wrapped layers; TFMOT exports the function, not the class.
* :func:`cluster_preserve_registry`, :func:`default_8bit_configs`, :func:`default_8bit_registry`
  (``tfmot...quantization.keras``): the quantize registries and configs, to quantize per layer
  (cluster-preserving only where a layer is clustered), to annotate an output-only layer, and to ask
  which layers TFMOT's 8-bit scheme supports; TFMOT exports only the whole-model schemes.

TFMOT's modules are imported inside the functions, after :mod:`edgeopt.kerasapi` has chosen tf_keras:
importing this module loads neither TensorFlow nor TFMOT.
"""

from __future__ import annotations

from typing import Any


def _tf_keras_chosen() -> None:
    """Load :mod:`edgeopt.kerasapi`, which sets ``TF_USE_LEGACY_KERAS`` before TensorFlow and TFMOT load."""
    import edgeopt.kerasapi  # noqa: F401


def is_graph_network(model: Any) -> bool:
    """Whether ``model`` is a Functional model (a graph of layers); a Sequential one built on an input
    is one too, a subclassed model is not."""
    return bool(getattr(model, "_is_graph_network", False))


def nodes_by_depth(model: Any) -> dict[int, list]:
    """The layer calls (tf_keras ``Node`` s) of a graph model, keyed by depth (0: the outputs')."""
    return model._nodes_by_depth  # noqa: SLF001 - see the module docstring


def producing_layer(tensor: Any) -> Any | None:
    """The layer that computes a symbolic Keras ``tensor``, or None when it records none."""
    history = getattr(tensor, "_keras_history", None)
    return getattr(history, "layer", None)


def consuming_layers(layer: Any) -> list:
    """The layers that take ``layer``'s output, one per call (a layer called twice appears twice)."""
    return [node.outbound_layer for node in layer._outbound_nodes]  # noqa: SLF001 - see the docstring


def builtin_layer_classes() -> frozenset[str]:
    """The class names tf_keras' own layer deserialiser resolves (``Dense``, ``Functional``,
    ``TFOpLambda``...)."""
    _tf_keras_chosen()
    from tf_keras.src.layers import serialization

    serialization.populate_deserializable_objects()
    return frozenset(serialization.LOCAL.ALL_OBJECTS)


def safe_mode_off():
    """A context in which tf_keras deserialises Lambda layers (safe mode off)."""
    _tf_keras_chosen()
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    return SafeModeScope(safe_mode=False)


def cluster_weights_class() -> type:
    """TFMOT's clustering wrapper class (what ``cluster_weights`` wraps a layer in)."""
    _tf_keras_chosen()
    from tensorflow_model_optimization.python.core.clustering.keras.cluster_wrapper import ClusterWeights

    return ClusterWeights


def cluster_preserve_registry():
    """TFMOT's module of the cluster-preserving quantize registry (``cluster_preserve_quantize_registry``)."""
    _tf_keras_chosen()
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
        cluster_preserve_quantize_registry,
    )

    return cluster_preserve_quantize_registry


def default_8bit_configs():
    """TFMOT's module of the default 8-bit quantize configs (``default_8bit_quantize_configs``)."""
    _tf_keras_chosen()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs,
    )

    return default_8bit_quantize_configs


def default_8bit_registry():
    """TFMOT's module of the default 8-bit quantize registry (``default_8bit_quantize_registry``)."""
    _tf_keras_chosen()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    return default_8bit_quantize_registry
