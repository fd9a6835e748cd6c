"""The LiteRT quantizer as a second post-training quantization backend: float32 ``.tflite`` -> quantized.

Contract: :func:`quantize` takes the float32 ``.tflite`` bytes the TFLite converter made, the export
format the recipe's quantize stage makes (:data:`RECIPES`: ``static_wi8_ai8`` -> ``int8``,
``static_wi8_ai16`` -> ``int16x8``, ``dynamic_wi8_afp32`` -> ``dynamic``, the int4 recipes -> ``int4``),
the stage (``backend: litert-quantizer``, its ``recipe`` and per-layer ``layers``), representative
samples and the Keras model's layer names, and returns the quantized ``.tflite`` bytes. The stage's
recipe covers the whole model; each entry of ``layers`` gives one Keras layer another recipe, or
``float`` (left unquantized). The quantizer selects ops by regular expressions over an op's output
tensor names, so a Keras layer becomes the exact names of the ops it owns in the float file: an op
belongs to a layer when the layer's name is a path component (``/`` or ``;`` separated) of the name
of one of its outputs or constant inputs (``facepose_mlp/pose/MatMul`` is the kernel of ``pose``,
whose output tensor is only ``StatefulPartitionedCall:0``). Static recipes are calibrated on the
representative samples, one at a time, keeping each activation's minimum and maximum over all of them
(:func:`_calibrate`). ``int16x8`` keeps float input and output, as the TFLite converter's does, and
``int8`` follows ``export_options.int8_io``. Library failures, and a result LiteRT cannot load, become
:class:`~edgeopt.errors.ConversionError` on one line (exit 1); overrides naming no layer of the model,
or a layer that owns no op of the float file, are :class:`~edgeopt.errors.InputError` (exit 2).
The tables and the checks a recipe needs are plain Python (recipe validation imports them): LiteRT and
``litert_quantizer`` are imported inside the functions that run them, and TensorFlow not at all (the
float32 file comes from :func:`edgeopt.convert.convert`).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from edgeopt.errors import ConversionError, InputError
from edgeopt.formats import CONVERTER, QUANTIZER, QUANTIZER_ONLY
from edgeopt.types import Format

BACKEND = QUANTIZER
BACKENDS = (CONVERTER, QUANTIZER)
FLOAT = "float"  # a per-layer override that leaves the layer unquantized

# The recipes edgeopt offers, by the quantizer's own names ('b32': blockwise, 32 weights per scale),
# and the export format each makes. Blockwise int4 is dynamic only: the quantizer's weight-only
# recipes leave blockwise weights in float.
RECIPES: dict[str, Format] = {
    "static_wi8_ai8": Format.INT8,
    "static_wi8_ai16": Format.INT16X8,
    "dynamic_wi8_afp32": Format.DYNAMIC,
    "dynamic_wi4_afp32": Format.INT4,
    "dynamic_wi4b32_afp32": Format.INT4,
    "dynamic_wi4b64_afp32": Format.INT4,
    "weight_only_wi4_afp32": Format.INT4,
}

_NO_QUANTIZE = "no_quantize"
# A scope regex of its own that matches every op: the quantizer lets the last matching regex decide,
# in the order regexes were first added, so these entries come after the recipe's '.*' and the layers'.
_EVERY_SCOPE = "^"
_CALIBRATION_THREADS = max(1, min(os.cpu_count() or 1, 16))


# -- checks a recipe needs (no TensorFlow) ----------------------------------------------------------


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def backend_problem(backend: Any) -> str | None:
    """Why ``backend`` is not a backend, naming the valid ones; None when it is one."""
    if backend in BACKENDS:
        return None
    return f"unknown backend '{backend}'{did_you_mean(backend, BACKENDS)}; choose from {', '.join(BACKENDS)}"


def recipe_problem(name: Any, allow_float: bool = False) -> str | None:
    """Why ``name`` is not a recipe (or ``float``, with ``allow_float``), naming the valid ones; else None."""
    valid = [*RECIPES, FLOAT] if allow_float else list(RECIPES)
    if name in valid:
        return None
    return f"unknown recipe '{name}'{did_you_mean(name, valid)}; choose from {', '.join(valid)}"


def layer_problem(layers: Iterable[str], model_layers: Sequence[str]) -> str | None:
    """Why the overridden ``layers`` do not fit a model with layers ``model_layers``, or None."""
    unknown = [name for name in layers if name not in model_layers]
    if not unknown:
        return None
    hints = "".join(did_you_mean(name, model_layers) for name in unknown[:1])
    shown = ", ".join(model_layers[:12]) + (", ..." if len(model_layers) > 12 else "")
    return (f"{', '.join(unknown)} {'is not a layer' if len(unknown) == 1 else 'are not layers'} of the "
            f"model{hints}; its layers: {shown or 'none (a SavedModel graph has no Keras layers)'}")


def makes(stage: Any, fmt: str) -> bool:
    """Whether the quantize ``stage`` (or None) has the LiteRT quantizer make export format ``fmt``."""
    return (stage is not None and getattr(stage, "backend", None) == BACKEND
            and RECIPES.get(getattr(stage, "recipe", None)) == fmt)


def export_problem(stages: Sequence[Any], export: Sequence[str]) -> str | None:
    """Why ``export`` does not fit the recipe's LiteRT quantizer stage, or None: the format its recipe
    makes must be exported, and ``int4`` is made by nothing else."""
    made = set()
    for index, stage in enumerate(stages):
        if getattr(stage, "backend", None) == BACKEND and stage.recipe in RECIPES:
            fmt = RECIPES[stage.recipe]
            made.add(fmt)
            if fmt not in export:
                return (f"stages[{index}].recipe {stage.recipe} makes the {fmt} export, which export does "
                        f"not list ({', '.join(export)}): add {fmt} to export")
    for only in QUANTIZER_ONLY:  # int4: made by nothing else
        if only in export and only not in made:
            recipes = [name for name, fmt in RECIPES.items() if fmt == only]
            return (f"{only} is made by the LiteRT quantizer: add a stage {{kind: quantize, mode: ptq, "
                    f"backend: {BACKEND}, recipe: {recipes[-1]}}} ({only} recipes: {', '.join(recipes)})")
    return None


def owners(tensor_names: Iterable[str], layer_names: Iterable[str]) -> set[str]:
    """The layers among ``layer_names`` that are a path component of one of ``tensor_names``."""
    parts = {part for name in tensor_names for part in re.split(r"[/;]", name)}
    return {layer for layer in layer_names if layer in parts}


# -- the quantizer (TensorFlow, LiteRT and litert_quantizer inside) ----------------------------------


def quantize(float_tflite: bytes, fmt: str, stage: Any, representative: np.ndarray | dict | None,
             layer_names: Sequence[str], *, int8_io: str = "int8") -> bytes:
    """Quantize a float32 ``.tflite`` with the LiteRT quantizer, as ``stage`` asks, into format ``fmt``.

    Args:
        float_tflite: the model converted to float32 by the TFLite converter.
        fmt: the export format the stage's recipe makes (:data:`RECIPES`).
        stage: the recipe's quantize stage: ``recipe`` for the whole model, ``layers`` (Keras layer
            name -> a recipe of :data:`RECIPES`, or ``float``) for single layers.
        representative: calibration inputs for static recipes: an array, or a dict by input name.
        layer_names: the Keras model's layer names (empty for a SavedModel graph).
        int8_io: ``int8`` for int8 input/output tensors of an ``int8`` export, ``float`` for float ones.

    Raises:
        InputError: an override names no layer of the model, or a layer with no op in the float file.
        ConversionError: the quantizer failed, or LiteRT cannot load its result (one line).
    """
    problem = layer_problem(stage.layers, list(layer_names))
    if problem:
        raise InputError(f"quantize stage layers: {problem}")
    scopes = _layer_scopes(float_tflite, list(stage.layers))
    empty = [name for name in stage.layers if not scopes[name]]
    if empty:
        owns = "owns" if len(empty) == 1 else "own"
        raise InputError(f"quantize stage layers: {', '.join(empty)} {owns} no op of the converted model "
                         "(the converter folded it away or into another layer's op): override a layer "
                         "that computes")
    overrides = {name: (choice, scopes[name]) for name, choice in stage.layers.items()}
    plan = library_recipe(stage.recipe, overrides, float_io=fmt != Format.INT8 or int8_io == "float")
    from litert_quantizer import quantizer as litert

    try:
        with _quiet():
            engine = litert.Quantizer(float_tflite, plan)
            calibration = None
            if engine.need_calibration:
                if representative is None:
                    raise ValueError(f"recipe {stage.recipe} needs representative data to calibrate")
                calibration = _calibrate(float_tflite, plan, representative)
            quantized = bytes(engine.quantize(calibration, enable_progress_report=False).quantized_model)
        _check_loads(quantized)
    except Exception as exc:  # the library raises ValueError, RuntimeError, KeyError, ...
        raise ConversionError(f"{fmt} conversion failed: the LiteRT quantizer ({stage.recipe}): "
                              f"{_reason(exc, layer_names)}") from None
    return quantized


def library_recipe(name: str, overrides: Mapping[str, tuple[str, Sequence[str]]],
                   float_io: bool) -> list[dict]:
    """The quantizer's recipe: ``name`` over the whole model, then each overridden layer's recipe (or
    no quantization) on the exact scopes of its ops, then, with ``float_io``, float input and output."""
    from litert_quantizer import recipe as recipes

    plan = [dict(entry) for entry in getattr(recipes, name)()]
    for choice, scopes in overrides.values():
        regex = "^(?:" + "|".join(re.escape(scope) for scope in scopes) + ")$"
        if choice == FLOAT:
            plan.append({"regex": regex, "operation": "*", "algorithm_key": _NO_QUANTIZE, "op_config": {}})
        else:
            plan += [{**entry, "regex": regex} for entry in getattr(recipes, choice)()]
    if float_io:
        plan += [{"regex": _EVERY_SCOPE, "operation": op, "algorithm_key": _NO_QUANTIZE, "op_config": {}}
                 for op in ("INPUT", "OUTPUT")]
    return plan


def _layer_scopes(float_tflite: bytes, layers: Sequence[str]) -> dict[str, list[str]]:
    """Each layer's op scopes, as the quantizer matches them: an op belongs to a layer named in one of
    its output tensors or constant input tensors (the float file's weights: inputs no op produces)."""
    from litert_quantizer.utils import tfl_flatbuffer_utils as flatbuffer

    scopes: dict[str, list[str]] = {name: [] for name in layers}
    if not layers:
        return scopes
    model = flatbuffer.read_model(float_tflite)
    for subgraph in model.subgraphs:
        names = [flatbuffer.get_tensor_name(tensor) for tensor in subgraph.tensors]
        produced = {int(i) for op in subgraph.operators for i in op.outputs}
        produced |= {int(i) for i in subgraph.inputs}
        for op in subgraph.operators:
            named = [names[i] for i in op.outputs if i >= 0]
            named += [names[i] for i in op.inputs if i >= 0 and int(i) not in produced]
            for layer in owners(named, layers):
                scopes[layer].append(flatbuffer.get_op_scope(op, subgraph.tensors))
    return scopes


def _calibrate(float_tflite: bytes, plan: list[dict], representative: np.ndarray | dict) -> dict:
    """Each tensor's range over every representative sample, by the quantizer's own calibrator.

    Its default keeps a 0.95 moving average of each sample's minimum and maximum, which, fed one
    sample at a time, settles well inside the range the data reaches: facepose_mlp's output in degrees
    was clipped and its static int8 MAE went from 15.8 to 22.1. The running minimum and maximum kept
    here are what the TFLite converter's calibrator keeps, so both backends calibrate alike.
    """
    from litert_quantizer import calibrator, recipe_manager
    from litert_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(plan)
    calibration = calibrator.Calibrator(float_tflite, num_threads=_CALIBRATION_THREADS,
                                        qsv_update_func=qsv_utils.min_max_update)
    calibration.calibrate(_calibration_data(float_tflite, representative), manager)
    return calibration.get_model_qsvs()


def _calibration_data(float_tflite: bytes, representative: np.ndarray | dict) -> dict[str, list[dict]]:
    """The representative samples one at a time, by the float file's signature and input names."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=float_tflite).get_signature_list()
    key = next(iter(signatures))
    if isinstance(representative, dict):
        count = len(next(iter(representative.values())))
        samples = [{name: np.asarray(values[i:i + 1], dtype=np.float32)
                    for name, values in representative.items()} for i in range(count)]
        return {key: samples}
    (name,) = signatures[key]["inputs"]
    return {key: [{name: np.asarray(sample[np.newaxis], dtype=np.float32)} for sample in representative]}


def _check_loads(quantized: bytes) -> None:
    """Raise when LiteRT cannot load and allocate the quantized model (then nothing could run it)."""
    from ai_edge_litert.interpreter import Interpreter

    Interpreter(model_content=quantized).allocate_tensors()


@contextlib.contextmanager
def _quiet():
    """The quantizer's calibration progress bar (written to sys.stderr) and its debug-mode interpreter
    warning kept off the user's terminal; its errors are raised as usual."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        yield


def _reason(exc: Exception, layer_names: Sequence[str]) -> str:
    """The library's reason on one line, with what to do when a block size does not divide a layer."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    reason = text if len(text) <= 400 else text[:397] + "..."
    if "block size" in text:
        tensor = re.search(r"tensor:? ([^\s,]+?)\.?(?:\s|$)", text)
        layers = sorted(owners([tensor.group(1)], layer_names)) if tensor else []
        which = layers[0] if layers else "<layer>"
        reason += f"; give that layer a channelwise recipe: layers: {{{which}: dynamic_wi4_afp32}}"
    return reason
