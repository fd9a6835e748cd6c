"""Accuracy (and top-k) or MAE and RMSE of a ``.tflite`` file on held-out data, through LiteRT.

The very file that ships is run: inputs are quantized with the model's own input scale and zero
point when its input is integer, outputs dequantized likewise. Batches are run by resizing the
input; a model that refuses a batch dimension is run one sample at a time. No TensorFlow here.

:func:`score` turns predictions into every metric, for the pipeline's variants and for ``edgeopt
evaluate`` alike. Classification by one output unit is binary: class 1 where a sigmoid's probability
exceeds 0.5, or where a logit exceeds 0. A ``.tflite`` says which by its last op (LOGISTIC for a
sigmoid, :func:`tflite_head`); predictions given without their model's head are read by their range
(:func:`binary_output`), and the report records which rule decided (``evaluation.binary``).

:func:`evaluate_file` is ``edgeopt evaluate``: any ``.tflite`` on any dataset edgeopt reads, its test
split; an image folder without ``train/`` and ``test/`` folders is the user's test set and is scored
whole (``split="test"``: the share compress holds out of it instead). A classifier at or below chance
gets a warning naming the likely causes with their facts (:func:`below_chance`). A file with one input
and one output takes plain arrays; a file with several inputs or outputs (or data that names its arrays)
is run through its serving signature, inputs fed and outputs scored by name (:func:`predict_named`).
The file and the data are checked against each other before the model runs (each input's sample
shape; by name, the signature's inputs and outputs against the data's; one output's units against the
labels, which several outputs check as each is scored), and the file runs in a child process
(``python -m edgeopt.evaluate``), so a kernel that crashes on an unknown model fails the command in one
line instead of killing it. The file's inputs and outputs are read as the typed
:class:`~edgeopt.types.IoFacts` of its inspection. :class:`Evaluation` is the typed result.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from edgeopt.bench.local import describe_crash
from edgeopt.data import CLASSIFICATION, Dataset, check_outputs, load_dataset, n_samples, take
from edgeopt.errors import CheckFailed, EdgeoptError, InputError
from edgeopt.inspect import inspection, typed
from edgeopt.paths import check_path
from edgeopt.sources import DataSpec
from edgeopt.types import OUTPUT_SEPARATOR, Inspection, IoFacts, Metric
from edgeopt.validation import describe

BATCH = 256
MAX_BATCH = 1 << 16
SCATTER_POINTS = 300
EVALUATED_SPLIT = "test"  # the split evaluate runs by default: the one training never saw
WHOLE = "all"  # every sample, train and test: an image folder with no split of its own, by default
SPLITS = (EVALUATED_SPLIT, WHOLE)
TOP_K = 5  # top-k accuracy is reported when the model has more outputs than this
FREE_DIMENSION = -1  # a .tflite shape signature's mark for a dimension of any size


def _interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    try:
        return Interpreter(model_path=str(path), num_threads=1)
    except ValueError as exc:
        raise InputError(f"{path}: LiteRT cannot load this model ({exc})") from None


def _to_input(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero_point = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def _from_output(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(detail["dtype"], np.integer):
        scale, zero_point = detail["quantization"]
        return (y.astype(np.float32) - zero_point) * scale
    return y.astype(np.float32)


def fits(sample_shape: tuple[int, ...], shape: list[int], signature: list[int] | None = None) -> bool:
    """Whether samples of ``sample_shape`` fit an input of ``shape`` (batch first), whose signature's
    free dimensions (-1) take any size."""
    signature = list(signature) if signature is not None and len(signature) == len(shape) else list(shape)
    wanted = signature[1:]
    return len(sample_shape) == len(wanted) and all(
        w in (FREE_DIMENSION, s) for w, s in zip(wanted, sample_shape, strict=True))


def predict(path: Path, x: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Run every sample of ``x`` through the ``.tflite`` at ``path``, ``batch`` at a time; float outputs."""
    interpreter = _interpreter(path)
    input_detail = interpreter.get_input_details()[0]
    output_index = interpreter.get_output_details()[0]["index"]
    expected = tuple(int(d) for d in input_detail["shape"][1:])
    if not fits(tuple(x.shape[1:]), list(input_detail["shape"]), input_detail.get("shape_signature")):
        raise InputError(
            f"{path}: model input is {expected} but the data has samples of shape {tuple(x.shape[1:])}"
        )
    outputs = []
    try:
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            interpreter.resize_tensor_input(input_detail["index"], [len(chunk), *x.shape[1:]])
            interpreter.allocate_tensors()
            interpreter.set_tensor(input_detail["index"], _to_input(chunk, input_detail))
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(output_index).copy())
    except (RuntimeError, ValueError):
        interpreter = _interpreter(path)  # a fixed batch of 1: one sample at a time
        interpreter.allocate_tensors()
        outputs = []
        for sample in x:
            interpreter.set_tensor(input_detail["index"], _to_input(sample[np.newaxis], input_detail))
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(output_index).copy())
    output_detail = interpreter.get_output_details()[0]
    return _from_output(np.concatenate(outputs), output_detail)


def _signature_runner(path: Path, interpreter):
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise InputError(f"{path} has {len(signatures)} signatures; a model with several inputs or outputs "
                         "is run through its one serving signature, which names them")
    return interpreter.get_signature_runner(next(iter(signatures)))


def match_outputs(path: Path, given: list[str], wanted: list[str] | None) -> dict[str, str]:
    """Which signature output of a ``.tflite`` is each of the model's outputs ``wanted`` (Keras output
    names), as ``{keras name: signature name}``; the only output under ``""`` when ``wanted`` is None.

    The converter orders output tensors its own way, so outputs are matched by name, never by place: a
    signature output is the Keras output of its name, or of its name without TFMOT's ``quant_`` prefix.

    Raises:
        InputError: an output with no signature output of its name, naming both sides.
    """
    if wanted is None:
        if len(given) != 1:
            raise InputError(f"{path} has {len(given)} outputs ({', '.join(given)}) but the data has one "
                             "unnamed output array; name the labels by the model's outputs")
        return {"": given[0]}
    found = {}
    for name in wanted:
        match = name if name in given else QAT_PREFIX + name if QAT_PREFIX + name in given else None
        if match is None:
            raise InputError(f"{path} has outputs {', '.join(sorted(given))} in its signature but the data "
                             f"has outputs {', '.join(wanted)}; name the labels by the model's outputs")
        found[name] = match
    return found


def predict_named(path: Path, x: np.ndarray | dict[str, np.ndarray], outputs: list[str] | None = None,
                  batch: int = BATCH) -> dict[str, np.ndarray]:
    """Run a ``.tflite`` with several inputs or outputs through its serving signature, which keys both by
    the Keras names, ``batch`` samples at a time; float outputs by the model's output name.

    Args:
        x: one array per input, by input name (one unnamed array for a model of one input).
        outputs: the Keras output names to return (see :func:`match_outputs`); None: the only output,
            under the name ``""``.

    Raises:
        InputError: names or sample shapes that do not match the file's.
    """
    interpreter = _interpreter(path)
    runner = _signature_runner(path, interpreter)
    input_details, output_details = runner.get_input_details(), runner.get_output_details()
    if not isinstance(x, dict):
        if len(input_details) != 1:
            raise InputError(f"{path} has inputs {', '.join(sorted(input_details))} but the data has one "
                             "unnamed input array; name the arrays by the model's inputs")
        x = {next(iter(input_details)): x}
    if set(x) != set(input_details):
        raise InputError(f"{path} has inputs {', '.join(sorted(input_details))} in its signature but the "
                         f"data has inputs {', '.join(x)}")
    for name, array in x.items():
        detail = input_details[name]
        if not fits(tuple(array.shape[1:]), list(detail["shape"]), detail.get("shape_signature")):
            wanted = _shown(list(detail["shape"]), detail.get("shape_signature"))
            raise InputError(f"{path}: input '{name}' takes samples of shape {wanted} but the data has "
                             f"samples of shape {tuple(array.shape[1:])}")
    chosen = match_outputs(path, list(output_details), outputs)
    n = n_samples(x)

    def run(step: int) -> dict[str, list[np.ndarray]]:
        collected: dict[str, list[np.ndarray]] = {name: [] for name in chosen}
        for start in range(0, n, step):
            feed = {name: _to_input(array[start:start + step], input_details[name])
                    for name, array in x.items()}
            result = runner(**feed)
            for name, signature_name in chosen.items():
                collected[name].append(result[signature_name].copy())
        return collected

    try:
        collected = run(batch)
    except (RuntimeError, ValueError):  # a fixed batch of 1: one sample at a time
        runner = _signature_runner(path, _interpreter(path))
        collected = run(1)
    return {name: _from_output(np.concatenate(parts), output_details[chosen[name]])
            for name, parts in collected.items()}


def provenance(n: int) -> str:
    runtime = f"LiteRT {version('ai-edge-litert')} interpreter"
    return f"measured: {runtime} on the test split (n={n}), {platform.machine()}"


def metric(name: str, value: float, prov: str, unit: str = "", **extra: Any) -> dict:
    """A metric's JSON object (report.json's shape): :meth:`Metric.of`'s, with ``extra`` keys."""
    return {**Metric.of(name, value, prov, unit).to_json(), **extra}


# What a binary head's one output is, and where it is class 1: a sigmoid's probability above 0.5, a
# logit (any other head) above 0.
PROBABILITY, LOGIT = "probability", "logit"
BINARY_THRESHOLD = {PROBABILITY: 0.5, LOGIT: 0.0}
# Ops that move or convert a .tflite's output without computing it: looked through to find its head.
_NOT_THE_HEAD = frozenset({"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CAST"})
QAT_PREFIX = "quant_"  # TFMOT's quantize wrapper renames layer X to quant_X (and so the signature's output)


def binary_output(head: str | None, predictions: np.ndarray) -> tuple[str, str]:
    """Whether a binary head's output is a probability or a logit, and what decided it.

    ``head`` is the model's output activation when known (``sigmoid``: probability; another name:
    logit). Otherwise the outputs decide: any value outside [0, 1] is a logit; all inside are read
    as probabilities, which misreads only a logit head whose every output falls in [0, 1], i.e. a
    model that puts every sample in class 1 with little confidence.
    """
    if head is not None:
        return (PROBABILITY if head == "sigmoid" else LOGIT), f"{head} head"
    inside = bool(np.all((predictions >= 0) & (predictions <= 1)))
    return (PROBABILITY if inside else LOGIT), "output range"


def tflite_head(info: Inspection | Mapping[str, Any]) -> str:
    """The activation of a one-output ``.tflite``'s head, read from its last computing op
    (:func:`edgeopt.inspect.inspect_tflite`'s ``op_list``): ``sigmoid`` for LOGISTIC, ``softmax``, else
    ``linear``. With one output and no dead ops, the op that computes the output runs last."""
    ops = [op.op for op in typed(info).op_list if (op.subgraph or 0) == 0]
    last = next((op for op in reversed(ops) if op not in _NOT_THE_HEAD), None)
    return {"LOGISTIC": "sigmoid", "SOFTMAX": "softmax"}.get(last, "linear")


def score(predictions: np.ndarray, data: Dataset, prov: str, *, head: str | None = None,
          output_names: list[str] | None = None) -> tuple[dict, dict]:
    """Metrics and plot data for predictions on ``data``'s test split.

    Classification gives ``accuracy`` and, beyond :data:`TOP_K` outputs, ``top_k_accuracy`` (its
    ``k`` in the metric); one output is a binary head (see :func:`binary_output`, ``head`` being the
    model's output activation when known), scored 0/1 with a 2x2 confusion matrix. Regression gives
    ``mae`` and ``rmse`` in the data's unit, and a sample of (true, predicted) pairs named by the data's
    ``output_names``, else by ``output_names`` (the model's), else not at all.

    Raises:
        InputError: the outputs cannot score the labels (:func:`edgeopt.data.check_outputs`).
    """
    n = len(data.y_test)
    units = predictions.reshape(n, -1).shape[1]
    check_outputs(data, units, "the model")
    if data.task == CLASSIFICATION:
        predictions = predictions.reshape(n, -1)
        details: dict[str, Any] = {}
        if units == 1:
            output, decided_by = binary_output(head, predictions)
            threshold = BINARY_THRESHOLD[output]
            predicted = (predictions[:, 0] > threshold).astype(np.int64)
            details["binary"] = {"output": output, "threshold": threshold, "decided_by": decided_by}
        else:
            predicted = predictions.argmax(axis=1)
        k = max(data.output_dim, units, 2)
        confusion = np.zeros((k, k), dtype=int)
        np.add.at(confusion, (data.y_test, predicted), 1)
        metrics = {"accuracy": metric("accuracy", np.mean(predicted == data.y_test), prov)}
        if units > TOP_K:
            best = np.argpartition(-predictions, TOP_K - 1, axis=1)[:, :TOP_K]
            hits = np.mean(np.any(best == data.y_test[:, None], axis=1))
            metrics["top_k_accuracy"] = metric("top_k_accuracy", hits, prov, k=TOP_K)
        return metrics, {"confusion_matrix": confusion.tolist(), **details}
    predicted = predictions.reshape(data.y_test.shape)
    error = predicted - data.y_test
    squared = float(np.mean(error.astype(np.float64) ** 2))
    metrics = {"mae": metric("mae", np.mean(np.abs(error)), prov, data.unit),
               "rmse": metric("rmse", math.sqrt(squared), prov, data.unit)}
    take = np.linspace(0, n - 1, min(SCATTER_POINTS, n)).astype(int)
    details = {"scatter": {"true": np.round(data.y_test[take], 3).tolist(),
                           "pred": np.round(predicted[take], 3).tolist()}}
    names = list(data.output_names) or list(output_names or [])
    if names:
        details["output_names"] = names
    return metrics, details


def signature_output_names(path: Path, units: int) -> list[str]:
    """``<layer>[i]`` for each of the units of a ``.tflite``'s one output, the layer named by its
    serving signature (the Keras output layer, without TFMOT's ``quant_`` prefix); ``<layer>`` for one
    unit; empty when the file has no such signature."""
    try:
        signatures = _interpreter(path).get_signature_list()
    except (InputError, ValueError, RuntimeError):
        return []
    outputs = [names for signature in signatures.values() for names in signature.get("outputs", [])]
    if len(outputs) != 1:
        return []
    layer = outputs[0].removeprefix(QAT_PREFIX)
    return [layer] if units == 1 else [f"{layer}[{i}]" for i in range(units)]


def score_outputs(predictions: dict[str, np.ndarray], data: Dataset, prov: str,
                  heads: Mapping[str, str] | None = None) -> tuple[dict, dict]:
    """:func:`score` of each named output on its own labels: metrics keyed ``<metric>/<output>``
    (``accuracy/label``, ``mae/angle``) and plot data under ``outputs`` by output name. ``heads`` are
    the outputs' activations when known (a binary output's sigmoid or logit)."""
    metrics: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for name in data.outputs:
        view = data.output(name)
        units = predictions[name].reshape(len(predictions[name]), -1).shape[1]
        names = [name] if units == 1 else [f"{name}[{i}]" for i in range(units)]
        scored, details[name] = score(predictions[name], view, prov, head=(heads or {}).get(name),
                                      output_names=names)
        metrics.update({f"{metric_name}{OUTPUT_SEPARATOR}{name}": m for metric_name, m in scored.items()})
    return metrics, {"outputs": details}


def evaluate_tflite(path: Path, data: Dataset, heads: Mapping[str, str] | None = None,
                    info: Inspection | None = None) -> tuple[dict, dict]:
    """Metrics (see :func:`score`) of the ``.tflite`` at ``path`` on the test split, and plot data.

    A binary head is read from the file's last op (from ``info``, its inspection, when the caller has
    it); regression outputs without names in the data are named after the file's output layer. Data
    with named outputs is scored per output (:func:`score_outputs`, ``heads`` by output name), named
    inputs are fed by name."""
    if data.named_outputs:
        predictions = predict_named(path, data.x_test, list(data.outputs))
        return score_outputs(predictions, data, provenance(data.n_test), heads)
    predictions = predict_named(path, data.x_test)[""] if data.named_inputs else predict(path, data.x_test)
    head = names = None
    if data.task == CLASSIFICATION and predictions.reshape(len(predictions), -1).shape[1] == 1:
        head = tflite_head(info if info is not None else inspection(path))
    elif data.task != CLASSIFICATION and not data.output_names:
        names = signature_output_names(path, data.output_dim)
    return score(predictions, data, provenance(data.n_test), head=head, output_names=names)


# -- `edgeopt evaluate`: any .tflite on any dataset, in a child process --------------------------------


@dataclass(frozen=True)
class Evaluation:
    """The figures of one ``.tflite`` on one dataset's test split, measured through LiteRT.

    ``metrics`` holds ``accuracy`` (and ``top_k_accuracy`` with ``k`` in its extra, when the model has
    more than :data:`TOP_K` outputs) for classification, ``mae`` and ``rmse`` for regression.
    ``held_out`` says where the test split comes from: the dataset's own, or a seeded share held out
    by edgeopt. ``details`` is the confusion matrix, or a sample of (true, predicted) pairs.
    """

    model: str
    data: str
    task: str
    samples: int
    held_out: str
    metrics: dict[str, Metric]
    input: dict[str, Any]
    output: dict[str, Any]
    correct: int | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    split: str = EVALUATED_SPLIT

    def to_json(self) -> dict[str, Any]:
        """One JSON document: what was evaluated on what, and the metrics with their provenance."""
        data = {"name": self.data, "task": self.task, "split": self.split, "samples": self.samples,
                "held_out": self.held_out}
        if self.preprocessing:
            data["preprocessing"] = self.preprocessing
        document = {"model": self.model, "data": data, "input": self.input, "output": self.output,
                    "metrics": {name: m.to_json() for name, m in self.metrics.items()}}
        if self.correct is not None:
            document["correct"] = self.correct
        if self.warnings:
            document["warnings"] = list(self.warnings)
        return {**document, **self.details}

    def lines(self) -> list[str]:
        """The evaluation for a terminal: what ran on what, one metric a line, where the figures come from."""
        scored = (self.held_out if self.split == WHOLE else
                  f"{self.split} split, {self.samples:,} samples ({self.held_out})")
        head = f"{self.model} on {self.data}: {scored}"
        rows = [head]
        for name, m in self.metrics.items():
            label = f"top-{m.extra.get('k', TOP_K)} accuracy" if name == "top_k_accuracy" else name
            if m.unit == "fraction":
                value = f"{m.value:.4f}"
                if name == "accuracy" and self.correct is not None:
                    value += f" ({self.correct:,} of {self.samples:,} correct)"
            else:
                value = f"{m.value:.4g}" + (f" {m.unit}" if m.unit else "")
            rows.append(f"  {label:<16} {value}")
        provenance = next(iter(self.metrics.values())).provenance if self.metrics else ""
        if provenance:
            rows.append(f"  {provenance}")
        return rows


# -- the Keras reference: the trained model scored in Keras, beside the .tflite figures --------------

KERAS_PROVENANCE = "keras (reference only, not a .tflite figure)"
KERAS_BATCH = 256


def keras_metrics(model, data: Dataset) -> tuple[dict, dict]:
    """A tf_keras model's metrics on ``data``'s test split, scored as a ``.tflite`` is (:func:`score`):
    the report's Keras reference row."""
    from edgeopt.train import head_activation

    if data.named_inputs or data.named_outputs:
        return _keras_metrics_named(model, data)
    # Direct calls in batches: the same outputs as model.predict without its per-call set-up.
    predictions = np.concatenate([np.asarray(model(data.x_test[i:i + KERAS_BATCH], training=False))
                                  for i in range(0, len(data.x_test), KERAS_BATCH)])
    return score(np.asarray(predictions, dtype=np.float32), data, KERAS_PROVENANCE,
                 head=head_activation(model))


def _keras_metrics_named(model, data: Dataset) -> tuple[dict, dict]:
    """:func:`keras_metrics` of a model with several inputs or outputs: fed in its input order, scored
    per output (:func:`score_outputs`)."""
    from edgeopt.train import head_activation, keras_inputs

    batches = []
    for start in range(0, data.n_test, KERAS_BATCH):
        out = model(keras_inputs(take(data.x_test, slice(start, start + KERAS_BATCH))), training=False)
        outputs = out if isinstance(out, list | tuple) else [out]
        batches.append([np.asarray(o, dtype=np.float32) for o in outputs])
    columns = [np.concatenate(column) for column in zip(*batches, strict=True)]
    if not data.named_outputs:
        return score(columns[0], data, KERAS_PROVENANCE, head=head_activation(model))
    return score_outputs(dict(zip(data.outputs, columns, strict=True)), data, KERAS_PROVENANCE,
                         heads=output_heads(model, data))


def output_heads(model, data: Dataset) -> dict[str, str] | None:
    """Each named output's activation in a tf_keras model (a binary output is scored by its sigmoid or
    logit), by name; None for unnamed outputs. A caller with no Keras model (a graph) has no heads to
    give and does not ask."""
    from edgeopt.train import head_activations

    if not data.named_outputs:
        return None
    return dict(zip(data.outputs, head_activations(model), strict=True))


def load_data(data: Any) -> Dataset:
    """A :class:`Dataset` from what a user names: a Dataset, a built-in name, a path, or a ``data:``
    mapping (``{path: images/, image_size: [96, 96]}``, ``{loader: "mypkg.data:load"}``) or DataSpec."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, Mapping):
        try:
            data = DataSpec.model_validate(dict(data))
        except ValidationError as exc:
            raise InputError(describe(exc, root="data")) from None
    if isinstance(data, DataSpec):
        return load_dataset(data)
    if isinstance(data, str | os.PathLike):
        return load_dataset(os.fspath(data))
    raise InputError(f"data: expected a dataset name, a path or a mapping, got {type(data).__name__}")


def evaluate_file(path: str | os.PathLike, data: Any, *, batch: int = BATCH,
                  split: str | None = None) -> Evaluation:
    """Accuracy (and top-k) or MAE and RMSE of the ``.tflite`` at ``path`` on ``data``.

    Args:
        path: a ``.tflite`` file. With one input and one output it takes plain arrays; with several,
            the data names its input arrays and its outputs' labels by the model's (Keras) names,
            matched through the file's one serving signature, and each output is scored on its own.
        data: what :func:`load_data` takes: a built-in name, an .npz / .csv / image-folder path, a
            ``data:`` mapping, or a loaded :class:`Dataset`.
        batch: samples per interpreter call (a model with a fixed batch runs one sample at a time).
        split: ``test``, the test split (the data's own, or the share edgeopt holds out, as compress
            does); ``all``, every sample. None: ``all`` for an image folder without ``train/`` and
            ``test/`` folders (the folder a user calls test is the test set), ``test`` otherwise.

    Raises:
        InputError: not a readable flatbuffer, unusable data, or a model and data that do not fit
            (sample shape, classes beyond the outputs, target count), each in one line.
        CheckFailed: LiteRT failed or crashed running the model.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise InputError(f"batch must be an integer from 1 to {MAX_BATCH:,}, got {batch!r}")
    if split is not None and split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    path = check_path(path, "model")
    if path.is_dir():
        raise InputError(f"{path} is a folder: pass the path of a .tflite file")
    info = inspection(path)
    dataset = load_data(data)
    if split is None:
        split = WHOLE if whole_folder(dataset) else EVALUATED_SPLIT
    scored = with_every_sample(dataset) if split == WHOLE else dataset
    several = len(info.input_details) != 1 or len(info.output_details) != 1
    if several or dataset.named_inputs or dataset.named_outputs:
        evaluation = _evaluate_named(path, info, scored, batch)
    else:
        model_input, model_output = _one_input_one_output(path, info)
        check_fits(path, model_input, model_output, scored)
        predictions = predict_in_child(path, scored.x_test, batch)
        evaluation = _evaluation(path, scored, predictions, model_input, model_output, head=tflite_head(info))
        clipped = clipped_inputs(model_input, scored.x_test)
        evaluation = replace(evaluation, warnings=(clipped,)) if clipped else evaluation
    if split == WHOLE:
        where = provenance(scored.n_test).replace("on the test split", "on every sample")
        evaluation = replace(evaluation, split=WHOLE, held_out=_whole(dataset, scored, data),
                             metrics={k: replace(m, provenance=where) for k, m in evaluation.metrics.items()})
    accuracy = evaluation.metrics.get("accuracy")
    if accuracy is not None and not scored.named_outputs:
        inputs = info.input_details
        warning = below_chance(accuracy.value, scored, inputs[0] if len(inputs) == 1 else None)
        if warning:
            evaluation = replace(evaluation, warnings=(*evaluation.warnings, warning))
    return evaluation


def whole_folder(data: Dataset) -> bool:
    """Data whose source takes a folder without a split of its own for the user's test set, read without
    one: an image folder without ``train/`` and ``test/`` folders (or a test folder of its own)."""
    return data.source.whole_when_unsplit and "split" in data.preprocessing


def with_every_sample(data: Dataset) -> Dataset:
    """``data`` whose test split is every sample, its training split's and its test split's."""
    def joined(train, test):
        if isinstance(train, dict):
            return {name: np.concatenate([train[name], test[name]]) for name in train}
        return np.concatenate([train, test])

    return replace(data, x_test=joined(data.x_train, data.x_test), y_test=joined(data.y_train, data.y_test))


def _whole(data: Dataset, scored: Dataset, given: Any) -> str:
    """What ``split="all"`` scored, in words."""
    source = _source_path(given) or data.name
    if whole_folder(data):
        return (f"scored all {scored.n_test:,} {data.source.samples} of {source} (no train/ and test/ "
                "folders; --split test scores the share compress holds out)")
    return f"scored all {scored.n_test:,} samples of {source} (its training and test splits together)"


def _source_path(given: Any) -> str | None:
    """The path a user named as data, when they named one."""
    if isinstance(given, DataSpec):
        return given.path
    if isinstance(given, Mapping):
        value = given.get("path", given.get("train"))
        return str(value) if value is not None else None
    if isinstance(given, str | os.PathLike):
        return os.fspath(given)
    return None


CHANCE_MARGIN = 0.02  # accuracy within this of 1/classes counts as chance
CHANCE_MIN_SAMPLES = 20  # fewer samples (or fewer than 3 per class) say too little to warn
CLASSES_SHOWN = 12  # class names listed in a warning
PIXEL_RANGE = 1.5  # data above this looks like pixels 0..255 (a model trained on 0..1 takes less)


def below_chance(accuracy: float, data: Dataset, model_input: IoFacts | None = None, *,
                 first_layer: str | None = None) -> str | None:
    """A warning when a classifier scores at or below chance on ``data``'s test split, naming the
    likely causes with their facts: the class order edgeopt read (folders and text labels sort
    alphabetically) and the input range of the data against what the model expects (an integer
    input's representable range from ``model_input``, a .tflite input detail; ``first_layer``, what
    a Keras model's first layer does to its input). None when above chance or measured on too few.
    """
    if data.task != CLASSIFICATION or data.named_outputs or data.named_inputs:
        return None
    classes = max(data.output_dim, 2)
    n = data.n_test
    chance = 1 / classes
    if n < max(CHANCE_MIN_SAMPLES, 3 * classes) or accuracy > chance + CHANCE_MARGIN:
        return None
    causes = []
    names = data.preprocessing.get("classes")
    if names:
        shown = ", ".join(f"{i} {name}" for i, name in enumerate(names[:CLASSES_SHOWN]))
        more = f", ... ({len(names)} in all)" if len(names) > CLASSES_SHOWN else ""
        why = ("class folders sort alphabetically" if data.source.folder_classes
               else "text labels sort alphabetically")
        causes.append(f"the class order: edgeopt read the classes as {shown}{more} ({why}); the model's "
                      "outputs must be in that order")
    else:
        causes.append(f"the class order: the labels are the data's own class indices 0..{classes - 1}; "
                      "the model's outputs must be in that order")
    x = data.x_test
    low, high = float(np.min(x)), float(np.max(x))
    seen = f"the data's input values span [{low:.4g}, {high:.4g}]"
    images = data.source.pixels
    if images:
        seen += f" (pixels 0..255 times data.scale {data.preprocessing.get('scale', 1):g})"
    expected = _expected_range(model_input)
    if expected is not None:
        seen += (f" while the model's {model_input.dtype} input represents "
                 f"[{expected[0]:.4g}, {expected[1]:.4g}]")
    elif first_layer is not None:
        seen += f" while the model's first layer {first_layer}"
    else:
        seen += "; it must be the range the model was trained on"
    if images and high > PIXEL_RANGE:
        seen += "; for a model trained on 0..1, set data.scale: 0.00392156862745098 (1/255)"
    causes.append(f"the input range: {seen}")
    return (f"accuracy {accuracy:.3f} is at or below chance (1/{classes} = {chance:.3f}) on {n:,} samples; "
            f"likely causes: (1) {causes[0]}; (2) {causes[1]}")


def first_layer_fact(model: Any) -> str | None:
    """What a Keras model's first rescaling layer does to its input, in words (None without one): the
    input range a model expects is set there (``Rescaling(1/255)`` takes pixels 0..255)."""
    for layer in getattr(model, "layers", ())[:4]:  # an input layer, maybe a reshape, then the scaling
        kind = type(layer).__name__
        if kind == "Rescaling":
            scale, offset = float(np.mean(layer.scale)), float(np.mean(layer.offset))
            return (f"{layer.name} (Rescaling) multiplies inputs by {scale:.4g} and adds {offset:g}: "
                    f"pixels 0..255 become [{offset:.3g}, {255 * scale + offset:.3g}]")
        if kind == "Normalization" and getattr(layer, "mean", None) is not None:
            mean = float(np.mean(np.asarray(layer.mean)))
            std = float(np.sqrt(np.mean(np.asarray(layer.variance))))
            return f"{layer.name} (Normalization) expects inputs around {mean:.4g} (std {std:.4g})"
    return None


def _expected_range(model_input: IoFacts | None) -> tuple[float, float] | None:
    """The real values an integer .tflite input represents, from its scale and zero point."""
    if model_input is None or not model_input.dtype:
        return None
    dtype, scale = np.dtype(model_input.dtype), model_input.scale
    if not np.issubdtype(dtype, np.integer) or scale is None or scale <= 0:
        return None
    info = np.iinfo(dtype)
    return (info.min - model_input.zero_point) * scale, (info.max - model_input.zero_point) * scale


CLIPPED_SHARE = 0.01  # more input values than this outside an integer input's range: say so


def clipped_inputs(model_input: IoFacts, x: np.ndarray) -> str | None:
    """A warning when many input values fall outside what an integer input can represent.

    Such values are clipped when quantized, which is what happens when the data is not scaled as it
    was for training (pixels 0-255 for a model trained on 0-1): the figures are then of other data.
    """
    expected = _expected_range(model_input)
    if expected is None:
        return None
    low, high = expected
    scale, dtype = model_input.scale, np.dtype(model_input.dtype)
    outside = float(np.mean((x < low - scale) | (x > high + scale)))
    if outside <= CLIPPED_SHARE:
        return None
    return (f"{outside:.0%} of the input values lie outside [{low:.3g}, {high:.3g}], the range of the "
            f"model's {dtype} input, and are clipped; is the data scaled as it was for training "
            "(--data '{path: ..., scale: ...}')?")


def _one_input_one_output(path: Path, info: Inspection) -> tuple[IoFacts, IoFacts]:
    """The file's one input and one output (a file with several is run by :func:`_evaluate_named`)."""
    inputs, outputs = info.input_details, info.output_details
    if len(inputs) != 1 or len(outputs) != 1:
        raise InputError(f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; this path takes "
                         "one of each (several are run by name through the serving signature)")
    return inputs[0], outputs[0]


def _shown(shape: list[int], signature: list[int] | None) -> tuple:
    """A sample shape as a user reads it: free dimensions as None, the batch left out."""
    dims = signature if signature is not None and len(signature) == len(shape) else shape
    return tuple(None if d == FREE_DIMENSION else int(d) for d in dims[1:])


def check_fits(path: Path, model_input: IoFacts, model_output: IoFacts, data: Dataset) -> None:
    """Refuse, before anything runs, data the model cannot take or whose labels it cannot score."""
    sample = tuple(data.input_shape)
    shape, signature = list(model_input.shape or []), model_input.shape_signature
    if not fits(sample, shape, signature):
        wanted = _shown(shape, signature)
        hint = ""
        if data.source.pixels:
            hint = ("; read the images to that shape with --data '{path: ..., image_size: [H, W], "
                    "color_mode: grayscale|rgb|rgba}'")
        raise InputError(f"{path} takes samples of shape {wanted} but data '{data.name}' has samples of "
                         f"shape {sample}{hint}")
    out_shape = list(model_output.shape or [])
    units = int(np.prod(out_shape[1:], dtype=np.int64)) if len(out_shape) > 1 else 1
    check_outputs(data, units, f"{path} (output shape {tuple(out_shape[1:])})")


# What an evaluation records of each input and output of the file (its JSON, report.json's form).
KEPT_DETAILS = ("name", "shape", "shape_signature", "dtype", "quantization")


def _kept(detail: IoFacts, keep: tuple[str, ...] = KEPT_DETAILS) -> dict[str, Any]:
    written = detail.to_json()
    return {k: written.get(k) for k in keep}


def _evaluate_named(path: Path, info: Inspection, data: Dataset, batch: int) -> Evaluation:
    """:func:`evaluate_file` of a ``.tflite`` with several inputs or outputs, or of named data: run
    through the file's serving signature, inputs fed and outputs matched by name, scored per output."""
    outputs = list(data.outputs) if data.named_outputs else None
    predictions = predict_in_child(path, data.x_test, batch, outputs=outputs, signature=True)
    prov = provenance(data.n_test)
    if outputs is None:
        raw, details = score(predictions[""], data, prov, head=tflite_head(info))
    else:  # without the model, a binary output's head is read from its range (see binary_output)
        raw, details = score_outputs(predictions, data, prov)
    metrics = {name: Metric.read(name, m) for name, m in raw.items()}
    return Evaluation(model=str(path), data=data.name, task=data.task, samples=data.n_test,
                      held_out=_held_out(data), metrics=metrics,
                      input={"tensors": [_kept(d) for d in info.input_details]},
                      output={"tensors": [_kept(d) for d in info.output_details]},
                      preprocessing=dict(data.preprocessing), details=details)


NAMED_KEY = "_"  # an .npz member stands for the only, unnamed output (npz names cannot be empty)


def predict_in_child(path: Path, x: np.ndarray | dict[str, np.ndarray], batch: int = BATCH, *,
                     outputs: list[str] | None = None,
                     signature: bool = False) -> np.ndarray | dict[str, np.ndarray]:
    """:func:`predict` in a child Python, so that a crash in a LiteRT kernel fails one call, not us.

    With ``signature`` (or ``x`` a dict of named inputs, or ``outputs`` given) the child runs
    :func:`predict_named` through the file's serving signature, and a dict of outputs comes back
    (``""``: the only one).

    Raises:
        InputError: the child refused the model or the data (exit 2).
        CheckFailed: LiteRT failed or the child died (a signal, no result).
    """
    named = signature or isinstance(x, dict) or outputs is not None
    with tempfile.TemporaryDirectory(prefix="edgeopt-evaluate-") as folder:
        suffix = ".npz" if named else ".npy"
        x_file, out_file = Path(folder) / f"x{suffix}", Path(folder) / f"predictions{suffix}"
        if isinstance(x, dict):
            np.savez(x_file, **{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in x.items()})
        elif named:
            np.savez(x_file, **{NAMED_KEY: np.ascontiguousarray(x, dtype=np.float32)})
        else:
            np.save(x_file, np.ascontiguousarray(x, dtype=np.float32))
        command = [sys.executable, "-m", "edgeopt.evaluate", str(path), str(x_file), str(out_file),
                   str(batch)] + ([json.dumps(outputs)] if named else [])
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        done = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                              check=False)
        if done.returncode == 0 and out_file.is_file():
            if not named:
                return np.load(out_file, allow_pickle=False)
            with np.load(out_file, allow_pickle=False) as saved:
                return {("" if k == NAMED_KEY else k): saved[k] for k in saved.files}
    failure = None
    for line in reversed(done.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                failure = json.loads(line)
            except ValueError:
                continue
            break
    if isinstance(failure, dict) and failure.get("exit_code") == InputError.exit_code:
        raise InputError(str(failure.get("error")))
    if isinstance(failure, dict):
        raise CheckFailed(f"{path}: {failure.get('error')}")
    raise CheckFailed(f"{path}: {describe_crash(done.returncode, done.stderr)}")


def _evaluation(path: Path, data: Dataset, predictions: np.ndarray, model_input: IoFacts,
                model_output: IoFacts, head: str | None = None) -> Evaluation:
    raw, details = score(predictions, data, provenance(len(data.x_test)), head=head)
    metrics = {name: Metric.read(name, m) for name, m in raw.items()}
    correct = None
    if data.task == CLASSIFICATION:  # accuracy is a count over the samples: give it back exactly
        correct = int(round(metrics["accuracy"].value * len(data.y_test)))
    return Evaluation(model=str(path), data=data.name, task=data.task, samples=len(data.x_test),
                      held_out=_held_out(data), metrics=metrics, correct=correct,
                      input=_kept(model_input), output=_kept(model_output),
                      preprocessing=dict(data.preprocessing), details=details)


def _held_out(data: Dataset) -> str:
    split = data.preprocessing.get("split")
    if data.preprocessing.get("test"):
        return f"the test file {data.preprocessing['test']}"
    if not split:
        return "the dataset's own test split"
    return (f"{split['test_split']:.0%} held out by edgeopt with seed {split['seed']}"
            + (", stratified" if split.get("stratified") else ""))


def _child(argv: list[str]) -> int:
    """``python -m edgeopt.evaluate MODEL X.npy OUT.npy BATCH``: predictions saved, or a JSON failure
    line; ``MODEL X.npz OUT.npz BATCH OUTPUTS_JSON``: named inputs in, named outputs out."""
    model, x_file, out_file, batch, *outputs = argv
    try:
        if outputs:
            with np.load(x_file, allow_pickle=False) as saved:
                x = {k: saved[k] for k in saved.files}
            predictions = predict_named(Path(model), x.pop(NAMED_KEY) if NAMED_KEY in x else x,
                                        json.loads(outputs[0]), batch=int(batch))
        else:
            predictions = predict(Path(model), np.load(x_file, allow_pickle=False), batch=int(batch))
    except EdgeoptError as exc:
        print(json.dumps({"error": str(exc), "exit_code": exc.exit_code}))
        return exc.exit_code
    except Exception as exc:  # LiteRT raises RuntimeError and others from a kernel that fails
        print(json.dumps({"error": f"LiteRT failed running the model ({type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())})", "exit_code": CheckFailed.exit_code}))
        return CheckFailed.exit_code
    if outputs:
        np.savez(out_file, **{(k or NAMED_KEY): v for k, v in predictions.items()})
    else:
        np.save(out_file, predictions)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
