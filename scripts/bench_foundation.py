#!/usr/bin/env python3
"""Measure the foundation targets on both zoo recipes and print a Markdown table for the README.

Runs models/digits_cnn and models/facepose_mlp exactly as committed (`edgeopt compress`), then reads
each report.json: accuracy/MAE of the emitted .tflite files through LiteRT, gzip sizes, and local
latency (LiteRT + XNNPACK, 1 thread, same run, so the int8/float32 ratio is like for like).

Usage: .venv/bin/python scripts/bench_foundation.py [--out runs/bench_foundation]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edgeopt.pipeline import run_recipe
from edgeopt.recipe import load_recipe


def variant(report: dict, name: str) -> dict:
    return next(v for v in report["variants"] if v["name"] == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_foundation")
    args = parser.parse_args()
    rows = []
    for name in ("digits_cnn", "facepose_mlp"):
        start = time.monotonic()
        report = run_recipe(
            load_recipe(f"models/{name}/recipe.yaml"), Path(args.out) / name, overwrite=True, quiet=True
        ).report.to_json()
        seconds = time.monotonic() - start
        ref, int8 = variant(report, "trained_float32"), variant(report, "int8")
        metric = "accuracy" if report["task"] == "classification" else "mae"
        scale, unit = (100, " %") if metric == "accuracy" else (1, " deg")
        ref_m, int8_m = ref["metrics"][metric]["value"] * scale, int8["metrics"][metric]["value"] * scale
        ref_l, int8_l = ref["latency"]["local"], int8["latency"]["local"]
        rows.append(
            [
                name,
                f"{metric}: {ref_m:.2f}{unit} -> {int8_m:.2f}{unit} ({int8_m - ref_m:+.2f})",
                f"{ref['gzip_bytes'] / int8['gzip_bytes']:.1f}x "
            f"({ref['gzip_bytes']:,} -> {int8['gzip_bytes']:,} B)",
                f"{int8['sparsity']:.3f}",
                f"{ref_l['p50_ms'] * 1000:.1f} / {int8_l['p50_ms'] * 1000:.1f} us "
                f"(int8/float32 {int8_l['p50_ms'] / ref_l['p50_ms']:.2f}; p90 {ref_l['p90_ms'] * 1000:.1f} / "
                f"{int8_l['p90_ms'] * 1000:.1f}; {ref_l['runs']}/{int8_l['runs']} runs)",
                f"{seconds:.0f} s",
            ]
        )
        if metric == "mae":
            rows[-1][1] += f"; mean predictor {report['data']['mean_predictor_mae']:.1f} deg"
    env = report["environment"]
    print(
        f"Measured {time.strftime('%Y-%m-%d')} on {env['cpu']} ({env['cores']} cores), "
        f"LiteRT {env['litert']}, "
        "XNNPACK, 1 thread; accuracy/MAE of the .tflite files on the test split.\n"
    )
    print(
        "| model | trained float32 -> int8 (LiteRT) | gzip smaller | int8 weight sparsity | "
        "local p50 float32 / int8 | run time |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
