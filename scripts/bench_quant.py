#!/usr/bin/env python3
"""Post-training quantization, measured: full int8, repaired int8, int16x8 and the LiteRT quantizer's
recipes on the zoo models and on two models that int8 breaks, side by side in one table.

The two broken models are built by scripts/user_models.py, as a user builds them in Keras 3 (never
shipped): ``tabular``, a Normalization-first MLP on 8 CSV features whose scales run from 1e-3 to 1e4
(1200 rows, two hidden layers); ``spiky``, a CNN on digits one of whose convolutions has a channel
firing on ~5 % of positions, ~300x larger than the others.

Each model is prepared once (data, model, measured float reference: ``edgeopt.prepare``) and every
row is one ``edgeopt.compress`` of it, so every figure is against the same reference. Sizes, the task
metric and the share of multiply-accumulates in integer ops come from the emitted ``.tflite``
(inspect, LiteRT interpreter on the test split); p50 is measured locally through LiteRT with XNNPACK on
1 thread. Prints one Markdown table and writes it, with the machine, to ``--out``/bench_quant.md.

Usage: .venv/bin/python scripts/bench_quant.py [--out runs/bench_quant] [--models tabular spiky ...]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from bench_report import publish  # scripts/, beside this file

from edgeopt.types import LatencyKey

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = ["budgets.max_accuracy_drop=0.01", "budgets.max_error_increase=0.05"]
QUICK_BENCH = ["benchmark.min_seconds=0.5", "benchmark.warmup=20"]
ZOO = {"digits_cnn": [], "facepose_mlp": [], "mobilenet_v2": []}

PTQ = {"kind": "quantize", "mode": "ptq"}
# row label -> (stages, export)
ROWS = {
    "int8, calibrated": ([{**PTQ, "repair": "off"}], ["int8"]),
    "int8, repair auto": ([{**PTQ, "repair": "auto"}], ["int8"]),
    "int16x8": ([{**PTQ, "repair": "off"}], ["int16x8"]),
    "litert static_wi8_ai8": ([{**PTQ, "backend": "litert-quantizer", "recipe": "static_wi8_ai8"}], ["int8"]),
    "litert static_wi8_ai16": ([{**PTQ, "backend": "litert-quantizer", "recipe": "static_wi8_ai16"}],
                               ["int16x8"]),
    "litert dynamic_wi8_afp32": ([{**PTQ, "backend": "litert-quantizer", "recipe": "dynamic_wi8_afp32"}],
                                 ["dynamic"]),
    "litert dynamic_wi4_afp32": ([{**PTQ, "backend": "litert-quantizer", "recipe": "dynamic_wi4_afp32"}],
                                 ["int4"]),
}


def recipe_for(name: str, folder: Path):
    import edgeopt

    overrides = BUDGETS + QUICK_BENCH
    if name in ZOO:
        return edgeopt.load_recipe(ROOT / "models" / name / "recipe.yaml", overrides + ZOO[name])
    import user_models  # next to this script

    build = {"tabular": lambda f: user_models.tabular(f, rows=1200, epochs=40, hidden=(32, 32)),
             "spiky": user_models.spiky_cnn}[name]
    (folder / name).mkdir(parents=True, exist_ok=True)
    model, data = (str(path) for path in build(folder / name))
    return edgeopt.load_recipe(preset="ptq-int8", model=model, data=data, overrides=overrides)


def rows_for(name: str, folder: Path) -> list[dict]:
    import edgeopt
    from edgeopt.errors import EdgeoptError
    from edgeopt.repair import integer_mac_share

    started = time.time()
    prepared = edgeopt.prepare(recipe_for(name, folder))
    reference = prepared.reference
    metric = "accuracy" if prepared.data.task != "regression" else "mae"
    rows = [row(name, f"{reference.name} (reference)", reference, reference, metric, None)]
    for label, (stages, export) in ROWS.items():
        try:
            result = edgeopt.compress(prepared, stages=stages, export=export)
        except EdgeoptError as exc:
            rows.append({"model": name, "variant": label, "status": f"refused: {exc}"})
            continue
        variant = next(v for v in result.report.variants if v.format == export[0])
        rows.append(row(name, label, variant, reference, metric, integer_mac_share(variant.inspect)))
    print(f"{name}: {time.time() - started:.0f} s", file=sys.stderr)
    return rows


def row(model: str, label: str, variant, reference, metric: str, share: float | None) -> dict:
    value = variant.metric(metric)
    ref = reference.metric(metric)
    latency = variant.latency.get(LatencyKey("local"))
    return {"model": model, "variant": label, "metric": metric,
            "value": value.value if value else None,
            "delta": value.value - ref.value if value and ref else None,
            "size": variant.size_bytes, "gzip": variant.gzip_bytes,
            "p50_ms": latency.p50_ms if latency and latency.ok else None,
            "p50_spread": f"{latency.p90_ms / latency.p50_ms:.2f}" if latency and latency.ok else None,
            "integer_macs": share,
            "status": variant.status + (f": {variant.reason}" if variant.reason else ""),
            "note": variant.note}


def markdown(rows: list[dict]) -> str:
    lines = ["| model | variant | metric | change vs reference | size (B) | gzip (B) | p50 ms (p90/p50) "
             "| MACs in integer ops | status |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "metric" not in r:
            lines.append(f"| {r['model']} | {r['variant']} | | | | | | | {r['status']} |")
            continue
        pct = r["metric"] == "accuracy"
        value = "-" if r["value"] is None else (f"{r['value']:.2%}" if pct else f"{r['value']:.3f}")
        delta = "" if r["delta"] is None or r["variant"].endswith("(reference)") else (
            f"{r['delta'] * 100:+.2f} pt" if pct else f"{r['delta']:+.3f}")
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.4g} ({r['p50_spread']})"
        share = "-" if r["integer_macs"] is None else f"{r['integer_macs']:.0%}"
        status = r["status"].split(";")[0][:90]
        lines.append(f"| {r['model']} | {r['variant']} | {r['metric']} {value} | {delta} | {r['size']:,} | "
                     f"{r['gzip']:,} | {p50} | {share} | {status} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_quant"))
    parser.add_argument("--models", nargs="+", default=["tabular", "spiky", *ZOO])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from edgeopt import environment

    rows = []
    for name in args.models:
        rows += rows_for(name, args.out)
    machine = environment.describe()
    table = markdown(rows)
    header = (f"Machine: {machine.get('cpu') or platform.processor()}, {machine.get('cores')} cores, "
              f"{machine.get('machine')}, ISA {' '.join(machine.get('isa') or [])}; LiteRT "
              f"{machine.get('litert')}; p50 measured locally through LiteRT with XNNPACK, 1 thread.")
    publish(args.out, "bench_quant", header, table, machine, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
