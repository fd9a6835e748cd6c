"""Accuracy or MAE of a ``.tflite`` file on held-out data, through the LiteRT interpreter.

The very file that ships is run: inputs are quantized with the model's own input scale and zero
point when its input is integer, outputs dequantized likewise. Batches are run by resizing the
input; a model that refuses a batch dimension is run one sample at a time. No TensorFlow here.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np

from edgeopt.data import CLASSIFICATION, Dataset
from edgeopt.errors import InputError

BATCH = 256
SCATTER_POINTS = 300


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


def predict(path: Path, x: np.ndarray) -> np.ndarray:
    """Run every sample of ``x`` through the ``.tflite`` at ``path``; float outputs."""
    interpreter = _interpreter(path)
    input_detail = interpreter.get_input_details()[0]
    output_index = interpreter.get_output_details()[0]["index"]
    expected = tuple(int(d) for d in input_detail["shape"][1:])
    if tuple(x.shape[1:]) != expected:
        raise InputError(
            f"{path}: model input is {expected} but the data has samples of shape {tuple(x.shape[1:])}"
        )
    outputs = []
    try:
        for start in range(0, len(x), BATCH):
            chunk = x[start : start + BATCH]
            interpreter.resize_tensor_input(input_detail["index"], [len(chunk), *expected])
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


def provenance(n: int) -> str:
    import platform

    runtime = f"LiteRT {version('ai-edge-litert')} interpreter"
    return f"measured: {runtime} on the test split (n={n}), {platform.machine()}"


def metric(name: str, value: float, prov: str, unit: str = "") -> dict:
    higher = name == "accuracy"
    return {
        "value": float(value),
        "unit": unit or ("fraction" if higher else ""),
        "higher_is_better": higher,
        "provenance": prov,
    }


def score(predictions: np.ndarray, data: Dataset, prov: str) -> tuple[dict, dict]:
    """Metrics and plot data for predictions on ``data``'s test split."""
    if data.task == CLASSIFICATION:
        predicted = predictions.argmax(axis=1)
        k = data.output_dim
        confusion = np.zeros((k, k), dtype=int)
        np.add.at(confusion, (data.y_test, predicted), 1)
        return (
            {"accuracy": metric("accuracy", np.mean(predicted == data.y_test), prov)},
            {"confusion_matrix": confusion.tolist()},
        )
    mae = float(np.mean(np.abs(predictions.reshape(data.y_test.shape) - data.y_test)))
    take = np.linspace(0, len(data.y_test) - 1, min(SCATTER_POINTS, len(data.y_test))).astype(int)
    return (
        {"mae": metric("mae", mae, prov, data.unit)},
        {
            "scatter": {
                "true": np.round(data.y_test[take], 3).tolist(),
                "pred": np.round(predictions.reshape(data.y_test.shape)[take], 3).tolist(),
            }
        },
    )


def evaluate_tflite(path: Path, data: Dataset) -> tuple[dict, dict]:
    """Metrics (accuracy or MAE) of the ``.tflite`` at ``path`` on the test split, and plot data."""
    return score(predict(path, data.x_test), data, provenance(len(data.x_test)))
