"""A realistic report.json (docs/report-schema.md, version 1) for the report and check tests.

Numbers are shaped like a real digits_cnn / facepose_mlp run (pruned to 80%, exported float32 and
int8); they are test inputs, not measurements. Each call returns a fresh deep copy.
"""

from __future__ import annotations

import copy
import functools
import random
from typing import Any

FLOAT_OPS = [{"index": 0, "op": "CONV_2D"}, {"index": 1, "op": "CONV_2D"},
             {"index": 2, "op": "FULLY_CONNECTED"}, {"index": 3, "op": "FULLY_CONNECTED"},
             {"index": 4, "op": "SOFTMAX"}]


def _latency(p50: float, threads: int = 1, provenance: str = "measured") -> dict[str, Any]:
    return {
        "provenance": provenance, "threads": threads, "runs": 812, "warmup": 20,
        "p50_ms": p50, "p90_ms": p50 * 1.15, "p99_ms": p50 * 2.2, "mean_ms": p50 * 1.05,
        "std_ms": p50 * 0.14, "min_ms": p50 * 0.92, "cv": 0.14, "init_ms": 3.1,
        "first_invoke_ms": p50 * 10, "peak_rss_mb": 61.2, "runtime": "ai_edge_litert 2.3.0",
        "delegate": "xnnpack", "cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz", "governor": None,
        "status": "ok", "reason": None,
    }


TIMING_FIELDS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms")


def scale_latency(entry: dict[str, Any], factor: float) -> None:
    """Make a latency entry ``factor`` times slower (every timing field), as a real slowdown would."""
    for field in TIMING_FIELDS:
        entry[field] *= factor


def _metric(task: str, value: float, provenance: str) -> dict[str, dict[str, Any]]:
    if task == "classification":
        return {"accuracy": {"value": value, "unit": "fraction", "higher_is_better": True,
                             "provenance": provenance}}
    return {"mae": {"value": value, "unit": "degrees", "higher_is_better": False, "provenance": provenance}}


def _per_tensor(sparsity: float, unique: int | None) -> dict[str, dict[str, Any]]:
    names = ["sequential/conv2d/Conv2D", "sequential/conv2d_1/Conv2D", "sequential/dense/MatMul",
             "sequential/dense_1/MatMul"]
    return {n: {"sparsity": round(sparsity * (0.9 + 0.05 * i), 4), "unique_values": unique or 100 * (i + 2),
                "shape": [16, 3, 3, 1], "dtype": "int8"} for i, n in enumerate(names)}


def make_report(task: str = "classification", seed: int = 0) -> dict[str, Any]:
    """A schema-v1 report with keras_float, trained_float32, float32 and int8 variants, one target."""
    rng = random.Random(seed)
    prov = "measured: LiteRT 2.3.0 interpreter on the test split (n=360), x86_64"
    good = (0.975, 0.972, 0.969) if task == "classification" else (4.1, 4.2, 4.4)
    variants = [
        {"name": "keras_float", "format": "keras", "path": "model.keras", "status": "ok", "reason": None,
         "size_bytes": 402_113, "gzip_bytes": 351_002, "params": 33_482, "sparsity": 0.0,
         "metrics": _metric(task, good[0], "keras"), "latency": {}, "inspect": {}, "evaluation": {}},
        {"name": "trained_float32", "format": "float32", "path": "trained_float32.tflite", "status": "ok",
         "reason": None, "size_bytes": 136_400, "gzip_bytes": 124_020, "params": 33_482, "sparsity": 0.0,
         "metrics": _metric(task, good[0], prov), "latency": {"local": _latency(0.050)},
         "inspect": {"ops": {"CONV_2D": 2, "FULLY_CONNECTED": 2, "SOFTMAX": 1}, "int8_op_coverage": 0.0,
                     "float_ops": FLOAT_OPS,
                     "per_tensor": _per_tensor(0.0, None)}},
        {"name": "float32", "format": "float32", "path": "float32.tflite", "status": "ok", "reason": None,
         "size_bytes": 136_400, "gzip_bytes": 31_200, "params": 33_482, "sparsity": 0.80,
         "metrics": _metric(task, good[1], prov), "latency": {"local": _latency(0.049)},
         "inspect": {"ops": {"CONV_2D": 2, "FULLY_CONNECTED": 2, "SOFTMAX": 1}, "int8_op_coverage": 0.0,
                     "float_ops": FLOAT_OPS,
                     "per_tensor": _per_tensor(0.80, None)}},
        {"name": "int8", "format": "int8", "path": "int8.tflite", "status": "ok", "reason": None,
         "size_bytes": 38_900, "gzip_bytes": 11_750, "params": 33_482, "sparsity": 0.80,
         "metrics": _metric(task, good[2], prov), "latency": {"local": _latency(0.021)},
         "inspect": {"ops": {"QUANTIZE": 1, "CONV_2D": 2, "FULLY_CONNECTED": 2, "SOFTMAX": 1,
                             "DEQUANTIZE": 1},
                     "int8_op_coverage": 1.0, "float_ops": [], "per_tensor": _per_tensor(0.80, 52)}},
    ]
    for v in variants[1:]:
        if task == "classification":
            matrix = [[0] * 10 for _ in range(10)]
            for i in range(10):
                matrix[i][i] = 34 + rng.randint(0, 3)
                matrix[i][(i + 3) % 10] = rng.randint(0, 2)
            v["evaluation"] = {"confusion_matrix": matrix}
        else:
            true = [[rng.uniform(-40, 40), rng.uniform(-30, 30)] for _ in range(120)]
            pred = [[y + rng.gauss(0, 4), p + rng.gauss(0, 4)] for y, p in true]
            v["evaluation"] = {"scatter": {"true": true, "pred": pred}}
    history_metric = "accuracy" if task == "classification" else "mae"
    model = "digits_cnn" if task == "classification" else "facepose_mlp"
    data = "digits" if task == "classification" else "facepose"
    report = {
        "schema_version": 1,
        "edgeopt_version": "0.1.0",
        "created_utc": "2026-11-21T14:00:00Z",
        "name": model,
        "task": task,
        "recipe": {"name": None, "model": model, "model_options": {}, "data": data, "seed": 0,
                   "train": {"epochs": 4}, "stages": [{"kind": "prune", "target_sparsity": 0.8}],
                   "export": ["float32", "int8"],
                   "benchmark": {"targets": ["local"], "threads": 1, "runs": 100, "warmup": 10,
                                 "min_seconds": 0.5}},
        "seed": 0,
        "environment": {"cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz", "isa": ["avx", "avx2", "fma"],
                        "cores": 2, "machine": "x86_64",
                        "os": "Linux", "python": "3.11.2", "tensorflow": "2.21.0", "tf_keras": "2.21.0",
                        "tfmot": "0.8.1", "litert": "2.3.0", "numpy": "2.4.6", "hostname": "ci"},
        "data": {"name": data, "n_train": 1437, "n_test": 360, "input_shape": [8, 8, 1],
                 "output_dim": 10 if task == "classification" else 2},
        "training": {"history": {"loss": [1.9, 0.8, 0.4, 0.25], "val_loss": [1.5, 0.7, 0.45, 0.3],
                                 history_metric: [0.4, 0.8, 0.9, 0.95],
                                 f"val_{history_metric}": [0.5, 0.8, 0.88, 0.93]},
                     "epochs_run": 4},
        "stages": [{"kind": "prune", "params": {"target_sparsity": 0.8},
                    "history": {"loss": [0.3, 0.28], history_metric: [0.94, 0.95]},
                    "achieved": {"sparsity": 0.80},
                    "skipped_layers": {"Flatten": 1, "MaxPooling2D": 1},
                    "summary": "2 layers not pruned: 1 Flatten, 1 MaxPooling2D"}],
        "variants": variants,
        "checks": [{"variant": "int8", "check": "sparsity", "expected": ">= 0.78", "measured": 0.80,
                    "status": "ok", "message": "weight sparsity 0.800 (asked 0.80)"}],
        "status": "ok",
    }
    if task == "regression":
        report["data"].update({"input_shape": [1024], "mean_predictor_mae": 17.9})
    return copy.deepcopy(report)


@functools.cache
def rendered_html(task: str = "classification") -> str:
    """``render_html(make_report(task))``, rendered once per test session (plots take seconds)."""
    from edgeopt.report import render_html

    return render_html(make_report(task))
