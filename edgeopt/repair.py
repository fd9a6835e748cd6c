"""Repair an integer export that misses its accuracy budget: try fixes cheapest first, keep the first
that meets the budget.

Contract: :func:`repair` takes the float Keras model an integer format is exported from, the dataset,
the budgets and the reference ``.tflite`` (the float file every drop is measured against), and tries,
in order:

1. ``calibration``: 1000 calibration samples instead of 200, so rare large activations set the ranges;
2. ``percentile`` (int8): each activation tensor's range from the 0.01th to the 99.99th percentile
   (:data:`edgeopt.calibrate.PERCENTILE`) of its values on those samples instead of their min/max, so
   a value seen once no longer sets the step of all the others
   (:func:`~edgeopt.calibrate.percentile_ranges`);
3. ``equalised``: cross-layer equalisation: for each pair of consecutive Dense or Conv2D layers joined
   by a ReLU (or no activation), output channel ``i`` of the first is divided by ``s_i`` and input
   channel ``i`` of the second multiplied by it, with ``s_i = sqrt(r1_i / r2_i)`` from the two weight
   ranges, so both become ``sqrt(r1_i * r2_i)``; the float function is unchanged (ReLU commutes with a
   positive scale), which is checked on samples before the attempt is used;
4. ``bias correction``: each Conv2D, DepthwiseConv2D and Dense bias, layer by layer, less the mean
   error per output channel its integer file shows on the calibration samples, on the equalised model
   when equalisation found pairs (:func:`edgeopt.calibrate.bias_corrected`);
5. ``float layers`` (int8): the layers :func:`edgeopt.diagnose.diagnose_model` ranks worst, one, then
   two, then three, kept in float through the QuantizationDebugger's denylist (every other op stays
   int8), as long as at least 80 % of the file's multiply-accumulates still run in integers.

The first four keep every op integer; an attempt that cannot be made is recorded with its reason. Each
attempt is judged on a validation slice of the training split (never the test split the report's
figures come from): its task metric against the reference file's on the same samples, through
:meth:`edgeopt.recipe.Budgets.allows`, the rule ``check`` uses. The result lists every attempt with its
figures; the caller measures the kept file like any export, and the report's judge has the last word.
TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.calibrate import PERCENTILE, bias_corrected, percentile_ranges
from edgeopt.dataset import Dataset, take
from edgeopt.diagnose import diagnose_model
from edgeopt.errors import ConversionError
from edgeopt.evaluate import predict
from edgeopt.formats import INTEGER_FORMATS
from edgeopt.inspect import inspection
from edgeopt.internals import consuming_layers
from edgeopt.loading import LoadedModel
from edgeopt.recipe import Budgets
from edgeopt.types import TASK_METRIC, Inspection, Task

MORE_CALIBRATION = 1000
VALIDATION_SAMPLES = 1000
MAX_FLOAT_LAYERS = 3
MIN_INTEGER_MACS = 0.8  # a file "int8" in name only is no repair: most of its MACs must stay integer
EQUALISE_ROUNDS = 4
EQUALISABLE = ("Dense", "Conv2D")
HOMOGENEOUS = ("relu", "linear")  # f(s x) = s f(x) for s > 0: a scale passes through


@dataclass(frozen=True)
class Attempt:
    """One repair tried: what it did, its metric on the validation slice and whether it met the budget."""

    name: str
    detail: str
    metric: float | None
    reference: float | None
    within_budget: bool
    float_layers: tuple[str, ...] = ()
    test_within_budget: bool | None = None  # the report's own judge, asked only after validation passed
    integer_mac_share: float | None = None  # of a file with layers in float: what still runs in integers

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "detail": self.detail, "validation_metric": self.metric,
                "validation_reference": self.reference, "within_budget": self.within_budget,
                "test_within_budget": self.test_within_budget, "float_layers": list(self.float_layers),
                "integer_mac_share": self.integer_mac_share}


@dataclass(frozen=True)
class Repair:
    """Every attempt in order; ``kept`` (the file and its attempt) is the first within the budget."""

    attempts: tuple[Attempt, ...] = ()
    kept: bytes | None = field(default=None, repr=False)

    @property
    def kept_attempt(self) -> Attempt | None:
        return next((a for a in self.attempts if a.within_budget and a.test_within_budget is not False), None)

    def to_json(self) -> dict[str, Any]:
        kept = self.kept_attempt
        return {"attempts": [a.to_json() for a in self.attempts], "kept": kept.name if kept else None}


def repairable(data: Dataset, loaded: LoadedModel) -> bool:
    """Repairs need a Keras model to rewrite, with one input and one output (a validation slice scored
    as the report scores it)."""
    single = len(loaded.inputs) == 1 and len(loaded.outputs) == 1
    return loaded.has_keras_model and single and not (data.named_inputs or data.named_outputs)


def repair(model, fmt: str, data: Dataset, budgets: Budgets, reference_file: bytes, *,
           convert: Callable[..., bytes], seed: int = 0, int8_io: str = "int8",
           accept: Callable[[bytes], bool] | None = None,
           progress: Callable[[str], None] = lambda line: None) -> Repair:
    """Try the repairs in order on ``model`` (exported to ``fmt``); stop at the first within budget.

    An attempt within budget on the validation slice is then put to ``accept`` (the caller's judge on
    the test split, the one the report applies), if given: an attempt it refuses is recorded and the
    next one tried, so no repair is kept that the report would then fail."""
    x_val, y_val = _validation(data, seed)
    higher = data.task != "regression"
    with tempfile.TemporaryDirectory(prefix="edgeopt-repair-") as scratch:
        folder = Path(scratch)
        reference = _score(reference_file, x_val, y_val, higher, folder)
        attempts: list[Attempt] = []

        def judge(name: str, detail: str, raw: bytes | None, layers: tuple[str, ...] = ()) -> bool:
            value = _score(raw, x_val, y_val, higher, folder) if raw is not None else None
            share = _integer_share(raw, folder) if raw is not None and layers else None
            ok = value is not None and budgets.allows(reference, value, higher) is True
            ok = ok and (share is None or share >= MIN_INTEGER_MACS)
            on_test = accept(raw) if ok and accept is not None else None
            attempts.append(Attempt(name, detail, value, reference, ok, layers, on_test, share))
            return ok and on_test is not False

        progress(f"repairing {fmt}: more calibration")
        representative = data.representative(count=MORE_CALIBRATION, seed=seed)
        calibrated = convert(model, fmt, representative, int8_io=int8_io)
        if judge("calibration", f"{MORE_CALIBRATION} calibration samples instead of 200", calibrated):
            return Repair(tuple(attempts), calibrated)

        progress(f"repairing {fmt}: percentile ranges")
        raw, detail = _percentile_attempt(model, fmt, representative, int8_io)
        if judge("percentile", detail, raw):
            return Repair(tuple(attempts), raw)

        progress(f"repairing {fmt}: cross-layer equalisation")
        equalised, pairs = equalise(model, take(data.x_train, slice(0, 256)))
        raw = convert(equalised, fmt, representative, int8_io=int8_io) if pairs else None
        detail = (f"{len(pairs)} layer pair(s) equalised: " + ", ".join(f"{a}->{b}" for a, b in pairs)
                  if pairs else "no Dense/Conv2D pair joined by ReLU to equalise")
        if judge("equalised", detail, raw):
            return Repair(tuple(attempts), raw)

        progress(f"repairing {fmt}: bias correction")
        base, first = (equalised, raw) if pairs else (model, calibrated)
        raw, detail = _bias_attempt(base, fmt, representative, int8_io, convert, first, bool(pairs))
        if judge("bias correction", detail, raw):
            return Repair(tuple(attempts), raw)

        if fmt != "int8":
            return Repair(tuple(attempts))
        from edgeopt.convert import float_layers

        progress(f"repairing {fmt}: diagnosing which layers int8 hurts")
        ranked = diagnose_model(model, data, seed=seed).layers
        for count in range(1, min(MAX_FLOAT_LAYERS, len(ranked)) + 1):
            chosen = ranked[:count]
            names = tuple(layer.name for layer in chosen)
            progress(f"repairing {fmt}: {', '.join(names)} in float")
            # Quantization must start after a layer kept in float that reads the model's input (a
            # Normalization of features on different scales): the file then takes float input.
            io = "float" if any(_reads_input(model, name) for name in names) else int8_io
            raw = float_layers(model, representative, [t for layer in chosen for t in layer.tensors],
                               int8_io=io)
            if judge("float layers", f"kept in float: {', '.join(names)} (ranked worst by diagnose)", raw,
                     names):
                return Repair(tuple(attempts), raw)
        return Repair(tuple(attempts))


def _percentile_attempt(model, fmt: str, representative: np.ndarray,
                        int8_io: str) -> tuple[bytes | None, str]:
    """The ``percentile`` attempt's file (None when not made) and its one-line detail."""
    if fmt != "int8":
        return None, "int8 only: TensorFlow's int16x8 quantizer takes no ranges but its own calibration's"
    try:
        raw, narrowed = percentile_ranges(model, representative, int8_io=int8_io)
    except ConversionError as exc:
        return None, f"not made: {exc}"
    return raw, (f"activation ranges from the {100 - PERCENTILE:.3g}th to {PERCENTILE:.4g}th percentile of "
                 f"{MORE_CALIBRATION} samples instead of min/max: {narrowed} tensor(s) narrowed")


def _bias_attempt(model, fmt: str, representative: np.ndarray, int8_io: str, convert: Callable[..., bytes],
                  first: bytes, equalised: bool) -> tuple[bytes | None, str]:
    """The ``bias correction`` attempt's file (None when there was nothing to correct) and its detail."""
    def quantize(corrected) -> bytes:
        return convert(corrected, fmt, representative, int8_io=int8_io)

    try:
        _, raw, layers = bias_corrected(model, representative, quantize, first=first)
    except ConversionError as exc:
        return None, f"not made: {exc}"
    if not layers:
        return None, "no Conv2D/DepthwiseConv2D/Dense layer with a bias to correct"
    on = " of the equalised model" if equalised else ""
    return raw, (f"biases{on} less the {fmt} file's mean error per output channel, {len(layers)} "
                 f"layer(s): " + ", ".join(layers))


def needed(stage, fmt: str, variant, reference, budgets: Budgets | None, loaded: LoadedModel,
           data: Dataset) -> bool:
    """Whether the export ``variant`` (just measured) of ``loaded``'s model should be repaired: a
    post-training integer export of the TFLite converter, with ``repair: auto``, that misses the accuracy
    budget on the test split, of a model the repairs can rewrite (:func:`repairable`)."""
    if stage is None or stage.repair != "auto" or stage.mode != "ptq" or stage.backend != "tflite":
        return False
    if not repairable(data, loaded):
        return False
    return misses_budget(fmt, variant, reference, budgets, data)


REPAIRED_FORMATS = INTEGER_FORMATS  # the formats with integer activations
DIAGNOSED_LAYERS = 8  # the worst layers a report keeps of a diagnosis


def misses_budget(fmt: str, variant, reference, budgets: Budgets | None, data: Dataset) -> bool:
    """Whether an integer export's task metric misses the accuracy budget (the report's judge)."""
    if fmt not in REPAIRED_FORMATS or budgets is None or not variant.ok or data.task not in TASK_METRIC:
        return False
    name = TASK_METRIC[Task(data.task)]
    value, ref = variant.metric(name), reference.metric(name)
    return value is not None and ref is not None and budgets.allows(ref.value, value.value,
                                                                     ref.higher_is_better) is False


def diagnosis_summary(model, data: Dataset, seed: int = 0) -> dict[str, Any]:
    """What a report keeps of :func:`edgeopt.diagnose.diagnose_model` for an export over budget: its
    verdict and its worst layers, as ``edgeopt diagnose --json`` gives them."""
    found = diagnose_model(model, data, seed=seed)
    document = found.to_json()
    return {"verdict": found.verdict(), "layers": document["layers"][:DIAGNOSED_LAYERS],
            "method": document["method"], "samples": document["samples"]}


# -- the validation slice ------------------------------------------------------------------------------


def _validation(data: Dataset, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to VALIDATION_SAMPLES training samples, seeded: the test split stays the report's alone."""
    rng = np.random.default_rng(seed + 1)
    n = len(data.x_train)
    idx = np.sort(rng.choice(n, size=min(VALIDATION_SAMPLES, n), replace=False))
    return data.x_train[idx], np.asarray(data.y_train)[idx]


def _score(raw: bytes, x: np.ndarray, y: np.ndarray, higher: bool, folder: Path) -> float:
    """Accuracy (classification; a one-unit output thresholded at its head) or MAE of a .tflite on x."""
    path = folder / "attempt.tflite"
    path.write_bytes(raw)
    predictions = predict(path, x)
    if not higher:
        return float(np.mean(np.abs(predictions.reshape(len(y), -1) - np.asarray(y).reshape(len(y), -1))))
    if predictions.ndim == 1 or predictions.shape[-1] == 1:
        flat = predictions.reshape(-1)
        cut = 0.5 if float(flat.min()) >= 0 and float(flat.max()) <= 1 else 0.0
        labels = (flat > cut).astype(np.int64)
    else:
        labels = predictions.argmax(-1)
    return float(np.mean(labels == np.asarray(y).reshape(-1)))


# -- cross-layer equalisation ----------------------------------------------------------------------------


def equalise(model, samples: np.ndarray) -> tuple[Any, list[tuple[str, str]]]:
    """A copy of ``model`` with every equalisable pair rescaled; the pairs, by layer name.

    A pair is a Dense or Conv2D whose only consumer is another (directly, or through a ReLU layer), the
    first's activation ReLU or linear. Returns the model unchanged (and no pairs) when the rescaled copy
    does not compute the same function on ``samples`` (to float32 rounding).
    """
    from edgeopt.kerasapi import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    links = _pairs(copy)
    for _ in range(EQUALISE_ROUNDS if links else 0):  # a chain's scales settle over a few sweeps
        for first, second in links:
            _equalise_pair(first, second)
    pairs = [(first.name, second.name) for first, second in links]
    if not pairs:
        return model, []
    before = np.asarray(model(samples, training=False))
    after = np.asarray(copy(samples, training=False))
    tolerance = 1e-3 * max(1.0, float(np.abs(before).max()))
    if not float(np.abs(before - after).max()) <= tolerance:
        return model, []
    return copy, pairs


def _equalise_pair(first, second) -> None:
    """Rescale output channel i of ``first`` by 1/s_i and input channel i of ``second`` by s_i."""
    w1, b1 = first.get_weights()[:2] if first.use_bias else (first.get_weights()[0], None)
    w2 = second.get_weights()
    r1 = np.abs(w1).reshape(-1, w1.shape[-1]).max(axis=0)  # per output channel of the first
    k2 = w2[0]
    r2 = np.abs(np.moveaxis(k2, -2, 0)).reshape(k2.shape[-2], -1).max(axis=1)  # per input channel
    if len(r1) != len(r2):
        return
    scale = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.maximum(r2, 1e-30)), 1.0).astype(w1.dtype)
    first_weights = [w1 / scale] + ([b1 / scale] if b1 is not None else [])
    first.set_weights(first_weights + first.get_weights()[len(first_weights):])
    shape = [1] * k2.ndim
    shape[-2] = len(scale)
    second.set_weights([k2 * scale.reshape(shape), *w2[1:]])


def _pairs(model) -> list[tuple[Any, Any]]:
    """(first, second) layer pairs joined by a positive-homogeneous activation, in model order; a layer
    may be the second of one pair and the first of the next (a chain is equalised link by link)."""
    found = []
    for layer in model.layers:
        if type(layer).__name__ not in EQUALISABLE:
            continue
        if getattr(layer.activation, "__name__", "") not in HOMOGENEOUS:
            continue
        nxt = _only_consumer(model, layer)
        if nxt is not None and type(nxt).__name__ == "ReLU" and not _relu_is_plain(nxt):
            nxt = None
        if nxt is not None and type(nxt).__name__ == "ReLU":
            nxt = _only_consumer(model, nxt)
        if nxt is None or type(nxt).__name__ not in EQUALISABLE:
            continue
        if type(nxt).__name__ == "Conv2D" and getattr(nxt, "groups", 1) != 1:
            continue
        found.append((layer, nxt))
    return found


def _reads_input(model, name: str) -> bool:
    """Whether the layer called ``name`` takes one of the model's inputs directly."""
    try:
        layer = model.get_layer(name)
    except ValueError:
        return False
    inputs = {id(t) for t in model.inputs}
    given = layer.input if isinstance(layer.input, list | tuple) else [layer.input]
    return any(id(t) in inputs for t in given)


def _relu_is_plain(layer) -> bool:
    return not layer.max_value and not layer.negative_slope and not layer.threshold


def _only_consumer(model, layer):
    consumers = [consumer for consumer in consuming_layers(layer) if consumer in model.layers]
    return consumers[0] if len(consumers) == 1 else None


# -- selective precision ---------------------------------------------------------------------------------


def _integer_share(raw: bytes, folder: Path) -> float | None:
    path = folder / "share.tflite"
    path.write_bytes(raw)
    return integer_mac_share(inspection(path))


def integer_mac_share(info: Inspection) -> float | None:
    """The share of the file's multiply-accumulates that run in int8 or int16, from its inspection."""
    ops = info.op_list
    total = sum(op.macs or 0 for op in ops)
    integer = sum(op.macs or 0 for op in ops if op.compute in ("int8", "int16"))
    return integer / total if total else None
