"""The one module that reaches into private parts of the libraries edgeopt builds on: tf_keras,
TensorFlow Model Optimization, TensorFlow's converter, the LiteRT interpreter and Optuna.

Everything here is an attribute or a module their authors do not promise to keep; a version of
one of them that moves one breaks edgeopt here and nowhere else. Each entry says why no public
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
* :func:`calibrated_model` (the converter's ``_experimental_calibrate_only``) and
  :func:`quantize_calibrated` (``tensorflow.lite.python.convert.mlir_quantize``): the converter's
  calibration and its MLIR quantizer as two steps, so that edgeopt can narrow the calibrated ranges in
  between (the int8 repair); TensorFlow's own QuantizationDebugger goes the same way, and there is no
  public entry to either step.
* :func:`interpreter_nodes` (LiteRT ``Interpreter._get_ops_details``): each node's input and output
  tensors, for the latency estimate's per-op bytes; the public interface lists tensors, not nodes.
* :func:`set_trial_attr`, :func:`fail_trial`, :func:`stored_trial` (Optuna ``study._storage`` and
  ``trial._trial_id``): a sampler sees frozen trials and a driver restarting after a crash sees running
  ones; Optuna's public calls change neither, so these write through the study's storage.
* :func:`journal_operations` (``optuna.storages.journal._storage.JournalOperation``): the operation
  codes a journal line may hold, to check a damaged journal line by line before Optuna replays it.

The libraries are imported inside the functions (TFMOT's after :mod:`edgeopt.kerasapi` has chosen
tf_keras): importing this module loads neither TensorFlow, TFMOT nor Optuna.
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


# -- TensorFlow's converter --------------------------------------------------------------------------


def calibrated_model(converter) -> bytes:
    """What a post-training integer ``converter`` makes when stopped after calibration: the float model
    whose activation tensors carry the calibrated min/max in their quantization parameters, for edgeopt
    to change before :func:`quantize_calibrated`."""
    _tf_keras_chosen()
    converter._experimental_calibrate_only = True  # noqa: SLF001 - see the module docstring
    return converter.convert()


def quantize_calibrated(calibrated: bytes, *, int8_io: str = "int8") -> bytes:
    """Full int8 from a :func:`calibrated_model` (its tensors' min/max), with int8 input and output for
    ``int8_io="int8"``, float otherwise: what the converter's MLIR quantizer makes from its own
    calibration."""
    _tf_keras_chosen()
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize

    io = tf.int8 if int8_io == "int8" else tf.float32
    return mlir_quantize(calibrated, input_data_type=io, output_data_type=io)


# -- LiteRT --------------------------------------------------------------------------------------------


def interpreter_nodes(interpreter) -> list[dict[str, Any]]:
    """Each node of a LiteRT ``interpreter`` (allocated) with its input and output tensor indices."""
    return interpreter._get_ops_details()  # noqa: SLF001 - see the module docstring


# -- Optuna --------------------------------------------------------------------------------------------


def set_trial_attr(study, trial, key: str, value: Any, *, system: bool = False) -> None:
    """Record ``key`` on ``trial`` (running or frozen) through ``study``'s storage: a user attribute, or
    with ``system`` a system one (where a sampler keeps what it drew)."""
    storage = study._storage  # noqa: SLF001 - see the module docstring
    if system:
        storage.set_trial_system_attr(trial._trial_id, key, value)  # noqa: SLF001
    else:
        storage.set_trial_user_attr(trial._trial_id, key, value)  # noqa: SLF001


def fail_trial(study, trial) -> None:
    """Mark a trial that is still running (its driver died) as failed."""
    from optuna.trial import TrialState

    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # noqa: SLF001


def stored_trial(study, trial):
    """The frozen trial ``study``'s storage holds for a running ``trial`` (its current attributes)."""
    return study._storage.get_trial(trial._trial_id)  # noqa: SLF001 - see the module docstring


def journal_operations() -> frozenset[int]:
    """The operation codes a line of an Optuna journal may hold."""
    from optuna.storages.journal._storage import JournalOperation

    return frozenset(operation.value for operation in JournalOperation)
