"""Training: fit a Keras model to a dataset with a :class:`~edgeopt.recipe.TrainSpec`.

Owns the pieces every training-like step shares (the optimizer, the task's loss and metric, the
validation split, early stopping, L1/L2 regularisation), so the compression stages fine-tune with
exactly the same rules as the initial training.

The loss follows the data and the model's output: classification data scored by one output unit is
binary (:data:`~edgeopt.data.BINARY`: binary cross-entropy, on probabilities for a sigmoid head and on
logits otherwise); several units take sparse categorical cross-entropy; regression takes MSE. A model
with several outputs gets one loss and metric per output by the same rule, from each output's labels
and head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeopt.dataset import BINARY, CLASSIFICATION, Dataset, check_outputs, n_samples, take
from edgeopt.errors import Diverged, InputError
from edgeopt.internals import producing_layer
from edgeopt.kerasapi import keras
from edgeopt.trainspec import TrainSpec


def make_optimizer(name: str, learning_rate: float):
    """The optimizer a recipe names (``momentum`` and ``nesterov`` are SGD with momentum 0.9)."""
    factories = {
        "sgd": lambda: keras.optimizers.SGD(learning_rate),
        "momentum": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "nesterov": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
        "adagrad": lambda: keras.optimizers.Adagrad(learning_rate),
    }
    return factories[name]()


def head_activation(model) -> str:
    """The activation of the model's output: ``softmax``, ``sigmoid``, ``linear`` (logits or label
    units) or another name. Looks through TFMOT's wrappers (prune, cluster, QAT) to the layer."""
    return _activation(model.layers[-1])


def head_activations(model) -> list[str]:
    """:func:`head_activation` of each of the model's outputs, in the model's output order."""
    return [_activation(layer) for layer in output_layers(model)]


def output_layers(model) -> list:
    """The layer that computes each of the model's outputs, in order (the last layer if unknown)."""
    layers = []
    for tensor in model.outputs or []:
        layers.append(producing_layer(tensor) or model.layers[-1])
    return layers


def output_names(model) -> list[str]:
    """The model's output names, as Keras keys them (the output layers' names)."""
    return [str(name) for name in getattr(model, "output_names", None) or []]


def input_names(model) -> list[str]:
    """The model's input names (its Input layers' names)."""
    return [str(name) for name in getattr(model, "input_names", None) or []]


def _activation(layer) -> str:
    while hasattr(layer, "layer"):  # PruneLowMagnitude, ClusterWeights, QuantizeWrapper(V2)
        layer = layer.layer
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    activation = getattr(activation, "activation", activation)  # QAT's QuantizeAwareActivation
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", None)
    return name or "linear"


def each_output_units(model) -> list[int | None]:
    """Units (last dimension) of each of the model's outputs, None where the model cannot say (a
    subclassed wrapper that was never called)."""
    try:
        shapes = model.output_shape
    except (AttributeError, RuntimeError):
        return [None] * len(model.outputs or [])
    shapes = shapes if isinstance(shapes, list) else [shapes]
    return [int(shape[-1]) if shape and shape[-1] is not None else None for shape in shapes]


def output_units(model) -> int | None:
    """Units of the model's one output; None when it has several outputs or the model cannot say."""
    units = each_output_units(model)
    return units[0] if len(units) == 1 else None


def training_task(task: str, units: int | None) -> str:
    """The task as training sees it: classification scored by one output unit is :data:`BINARY`."""
    return BINARY if task == CLASSIFICATION and units == 1 else task


def check_model_fits_data(model, data: Dataset, where: str = "the model") -> None:
    """Refuse, before any training, a model whose outputs cannot score the data's labels.

    With named outputs (data matched to the model, :meth:`~edgeopt.data.Dataset.for_model`), each
    output is checked against its own labels.

    Raises:
        InputError: labels beyond the outputs (a binary head given labels other than 0 and 1, among
            them), a target count that differs, or a softmax over one unit (always 1).
    """
    if data.named_outputs:
        for name, units, head in zip(data.outputs, each_output_units(model), head_activations(model),
                                     strict=False):
            if units is not None:
                _check_output(data.output(name), units, head, f"{where}'s output '{name}'")
        return
    units = output_units(model)
    if units is None:
        return
    _check_output(data, units, head_activation(model) if units == 1 else None, where)


def _check_output(data: Dataset, units: int, head: str | None, where: str) -> None:
    check_outputs(data, units, where)
    if data.task == CLASSIFICATION and units == 1 and head == "softmax":
        raise InputError(f"{where} ends in a softmax over one unit, which always outputs 1; for two "
                         "classes use one sigmoid unit (or a logit), or two softmax units")


def loss_and_metrics(task: str, head: str = "linear") -> tuple[Any, list[Any]]:
    """The loss that matches the task and the model's head: cross-entropy on probabilities for a
    softmax (sigmoid, when binary) head, on logits otherwise (zoo models output logits); MSE for
    regression. The accuracy metric is named ``accuracy`` in both classification tasks."""
    if task == BINARY:
        probabilities = head == "sigmoid"
        # A logit is class 1 above 0, a probability above 0.5: the same decision edgeopt scores.
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.5 if probabilities else 0.0)
        return keras.losses.BinaryCrossentropy(from_logits=not probabilities), [accuracy]
    if task == CLASSIFICATION:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=head != "softmax"), ["accuracy"]
    return keras.losses.MeanSquaredError(), [keras.metrics.MeanAbsoluteError(name="mae")]


def compile_model(model, task: str, optimizer: str, learning_rate: float,
                  tasks: dict[str, str] | None = None) -> None:
    """Compile with the task's loss and metric; with ``tasks`` (one per named output, in the model's
    output order) each output gets the loss and metric of its own task and head."""
    if tasks:
        chosen = [loss_and_metrics(training_task(t, units), head)
                  for t, units, head in zip(tasks.values(), each_output_units(model), head_activations(model),
                                            strict=True)]
        model.compile(optimizer=make_optimizer(optimizer, learning_rate), loss=[loss for loss, _ in chosen],
                      metrics=[metrics for _, metrics in chosen])
        return
    loss, metrics = loss_and_metrics(training_task(task, output_units(model)), head_activation(model))
    model.compile(optimizer=make_optimizer(optimizer, learning_rate), loss=loss, metrics=metrics)


def keras_inputs(arrays):
    """Named arrays as Keras takes them: a list in the model's order (the data is in that order, see
    :meth:`~edgeopt.data.Dataset.for_model`), since TFMOT's wrappers rename the outputs; one array as is."""
    return list(arrays.values()) if isinstance(arrays, dict) else arrays


def with_regularization(model, l1: float, l2: float):
    """A copy of ``model`` whose kernels carry L1/L2 penalties (the model itself if both are 0).

    Works for zoo and loaded models alike: the layers' configs get the regulariser and the model is
    rebuilt from its config with the same weights.
    """
    if not l1 and not l2:
        return model
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2)
    config = model.get_config()
    for layer_config in config["layers"]:
        if "kernel_regularizer" in layer_config["config"]:
            layer_config["config"]["kernel_regularizer"] = keras.regularizers.serialize(regularizer)
    rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def fit(
    model,
    data: Dataset,
    spec: TrainSpec,
    *,
    epochs: int | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    callbacks: Sequence[Any] = (),
    seed: int = 0,
    compile_first: bool = True,
    early_stopping: bool = True,
    what: str = "training",
) -> dict[str, list[float]]:
    """Fit ``model`` on ``data``'s training split; return the per-epoch history (plain floats).

    Validation uses a fixed, seeded slice of the training split (``spec.validation_split``); the
    test split is never seen here. Compression stages pass ``early_stopping=False``: their schedules
    (pruning's end step, for one) must run to the end to reach what was asked.

    Raises:
        InputError: the model's outputs cannot score the data's labels (:func:`check_model_fits_data`),
            checked even when there is nothing to train.
        Diverged: the loss became NaN or infinite; training stops after that epoch. ``what`` names the
            training in the message ("training", "stage 2 (quantize)").
    """
    check_model_fits_data(model, data)
    epochs = spec.epochs if epochs is None else epochs
    if epochs == 0:
        return {}
    if compile_first:
        compile_model(model, data.task, spec.optimizer, learning_rate or spec.learning_rate,
                      tasks=data.tasks if data.named_outputs else None)
    x, y = data.x_train, data.y_train
    validation = None
    if spec.validation_split > 0:  # the same samples of every named array
        n = n_samples(x)
        order = np.random.default_rng(seed).permutation(n)
        n_val = max(1, int(round(n * spec.validation_split)))
        val_idx, train_idx = order[:n_val], order[n_val:]
        validation = (keras_inputs(take(x, val_idx)), keras_inputs(take(y, val_idx)))
        x, y = take(x, train_idx), take(y, train_idx)
    x, y = keras_inputs(x), keras_inputs(y)
    watch = _StopOnNonFinite()
    all_callbacks = [watch, *callbacks]
    if early_stopping and spec.early_stopping is not None:
        all_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=spec.early_stopping.monitor,
                patience=spec.early_stopping.patience,
                restore_best_weights=spec.early_stopping.restore_best_weights,
            )
        )
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size or spec.batch_size,
        validation_data=validation,
        callbacks=all_callbacks,
        shuffle=True,
        verbose=0,
    )
    if watch.bad_epoch is not None:
        raise Diverged(f"{what} diverged: the loss became {watch.bad_value} in epoch {watch.bad_epoch + 1}; "
                       "lower its learning_rate, or check the data for extreme values")
    return {k: [float(v) for v in values] for k, values in history.history.items()}


class _StopOnNonFinite(keras.callbacks.Callback):
    """Stops training after the first epoch whose loss is NaN or infinite, and remembers which.

    Checked per epoch, not per batch: a callback with a batch hook makes tf_keras copy every
    batch's logs out of the graph, which cost ~0.7 ms a step (a third of the digits recipe's
    training time). A NaN or infinite batch loss carries into the epoch's mean, so none is missed.
    """

    def __init__(self):
        super().__init__()
        self.bad_epoch: int | None = None
        self.bad_value = ""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.bad_epoch, self.bad_value = epoch, "NaN" if np.isnan(float(loss)) else "infinite"
            self.model.stop_training = True
