#!/usr/bin/env python
"""Side-by-side compression benchmark: float32 vs the TFMOT-tutorial recipe vs edgeopt's best.

For each model (digits_cnn on digits, facepose_mlp on facepose, mobilenet_v2 on digits32) and seed,
every figure comes from an ``edgeopt compress`` run (:func:`edgeopt.pipeline.run_recipe`), i.e. from
the emitted ``.tflite`` through the LiteRT interpreter (accuracy / MAE on the test split, latency
measured locally, 1 thread):

* ``float32``: the model trained with its ``models/<name>/recipe.yaml`` train section, exported as is.
  Its ``model.keras`` is the starting point (``train.epochs: 0``) of the two compressed rows, so all
  three rows of a seed compress the very same trained model.
* ``int8_ptq``: that same trained model, full-integer post-training quantization only.
* ``tfmot_tutorial``: what TFMOT's pruning tutorial does by hand: polynomial pruning 50% -> 80% over
  2 epochs, then full-integer post-training quantization (int8 in and out).
* ``edgeopt_best``: the recipe below per model (distillation into a narrower student where it helps,
  pruning, sparsity-preserving clustering, collaborative QAT, int8).
* ``student_alone`` / ``student_distilled``: the same narrow student trained alone with the train
  section, or trained only by distillation from the float32 model for the same number of epochs;
  both exported as float32, to show what distillation itself buys.

Usage: ``python scripts/bench_compress.py [--models ...] [--seeds 0 1 2] [--out runs/bench_compress]``.
Writes ``results_<model>.json`` (every run's figures) and ``table.md`` (over every model benchmarked
into ``--out`` so far) and prints the table and the issue's targets with pass/fail.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = {"digits_cnn": "digits", "facepose_mlp": "facepose", "mobilenet_v2": "digits32"}
BENCHMARK = {"targets": ["local"], "threads": 1, "runs": 100, "warmup": 10, "min_seconds": 0.3}

# Narrow students for distillation (zoo width options) and how long they train.
STUDENT = {
    "digits_cnn": {"width": 0.25},
    "facepose_mlp": {"width": 0.5},
    "mobilenet_v2": {"width": 0.5},
}
DISTILL = {"alpha": 0.1, "temperature": 4.0}


def tutorial_stages(train: dict[str, Any]) -> list[dict[str, Any]]:
    """TFMOT's pruning tutorial: PolynomialDecay 0.50 -> 0.80 over 2 epochs, then int8 PTQ.

    The tutorial updates masks every 100 steps on MNIST (422 steps per epoch); these datasets have
    far fewer steps per epoch (41 for digits), where 100 would never reach the target, so the mask
    frequency is scaled to 10 steps, as a user adapting the tutorial would.
    """
    return [
        {
            "kind": "prune",
            "initial_sparsity": 0.5,
            "target_sparsity": 0.8,
            "schedule": "polynomial",
            "epochs": 2,
            "begin_epoch": 0,
            "end_epoch": 2,
            "frequency": 10,
            "learning_rate": train.get("learning_rate", 1e-3),
        },
        {"kind": "quantize", "mode": "ptq"},
    ]


def best_stages(
    model: str, train: dict[str, Any], teacher: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """edgeopt's best recipe per model: (recipe fields, stages).

    Prune (the layers that hold the weights, not the small first and last ones), sparsity-preserving
    clustering, collaborative QAT; for mobilenet_v2 first distillation from the trained model into a
    half-width student, since per-channel scales, biases and depthwise kernels (which TFMOT neither
    prunes nor clusters) make up most of its compressed size.
    """
    lr = train.get("learning_rate", 1e-3)
    best = BEST[model]
    prune = {
        "kind": "prune",
        "initial_sparsity": 0.5,
        "target_sparsity": 0.9,
        "schedule": "polynomial",
        "epochs": 12,
        "end_epoch": 8,
        "frequency": 10,
        "learning_rate": lr,
        **best.get("prune", {}),
    }
    cluster = {
        "kind": "cluster",
        "clusters": 16,
        "centroid_init": "kmeans_plus_plus",
        "epochs": 3,
        "learning_rate": lr / 10,
        **best.get("cluster", {}),
    }
    qat = {"kind": "quantize", "mode": "qat", "epochs": 3, "learning_rate": lr / 20}
    stages = [prune, cluster, qat]
    if "student" not in best:
        return {"model": teacher}, stages
    distill = {"kind": "distill", "teacher": teacher, "learning_rate": lr, **DISTILL, **best["distill"]}
    return {"model": model, "model_options": best["student"]}, [distill, *stages]


BEST: dict[str, dict[str, dict[str, Any]]] = {
    # conv1 (288 weights) and the 10-class head (640) pruned to 90% cost most of the accuracy lost.
    "digits_cnn": {"prune": {"layers": ["conv2", "dense"], "target_sparsity": 0.92, "epochs": 20}},
    # hidden1 holds 98% of the weights; pruning the 8->2 output layer to 80% cost 6 degrees.
    "facepose_mlp": {"prune": {"layers": ["hidden1"]}},
    "mobilenet_v2": {
        "student": {"width": 0.5},
        "distill": {"epochs": 20},
        "prune": {"target_sparsity": 0.8},
    },
}


def run(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    from edgeopt.pipeline import run_recipe
    from edgeopt.recipe import parse_recipe

    started = time.monotonic()
    report = run_recipe(parse_recipe(recipe), out, overwrite=True, quiet=True).report.to_json()
    report["_seconds"] = time.monotonic() - started
    return report


def row(report: dict[str, Any], variant: str) -> dict[str, Any]:
    v = next(x for x in report["variants"] if x["name"] == variant)
    metric_name = "accuracy" if report["task"] == "classification" else "mae"
    latency = v["latency"].get("local") or {}
    return {
        "status": v["status"],
        "reason": v["reason"],
        metric_name: v["metrics"].get(metric_name, {}).get("value"),
        "size_bytes": v["size_bytes"],
        "gzip_bytes": v["gzip_bytes"],
        "sparsity": v["sparsity"],
        "int8_op_coverage": (v["inspect"] or {}).get("int8_op_coverage"),
        "p50_ms": latency.get("p50_ms"),
        "latency_provenance": latency.get("provenance"),
        "checks_failed": [c["message"] for c in report["checks"] if c["status"] != "ok"],
        "run_status": report["status"],
        "seconds": round(report["_seconds"], 1),
    }


def bench_model(model: str, seeds: list[int], out: Path, log, results: list[dict[str, Any]]) -> None:
    """Run every row of ``model`` for each seed, appending to ``results`` and saving after each seed."""
    base = yaml.safe_load((ROOT / "models" / model / "recipe.yaml").read_text())
    train = base["train"]
    common = {"data": DATA[model], "benchmark": BENCHMARK}
    for seed in seeds:
        where = out / model / f"seed{seed}"
        log(f"{model} seed {seed}: float32 (training)")
        a = run(
            {
                **common,
                "name": f"{model}_float32",
                "model": model,
                "model_options": base.get("model_options", {}),
                "seed": seed,
                "train": train,
                "stages": [],
                "export": ["float32", "int8"],
            },
            where / "float32",
        )
        trained = str(where / "float32" / "model.keras")
        frozen = {**train, "epochs": 0, "dropout": 0.0}
        frozen.pop("early_stopping", None)
        log(f"{model} seed {seed}: tfmot_tutorial")
        b = run(
            {
                **common,
                "name": f"{model}_tutorial",
                "model": trained,
                "seed": seed,
                "train": frozen,
                "stages": tutorial_stages(train),
                "export": ["int8"],
            },
            where / "tfmot_tutorial",
        )
        log(f"{model} seed {seed}: edgeopt_best")
        fields, stages = best_stages(model, train, trained)
        c = run(
            {
                **common,
                "name": f"{model}_best",
                **fields,
                "seed": seed,
                "train": frozen,
                "stages": stages,
                "export": ["int8"],
            },
            where / "edgeopt_best",
        )
        log(f"{model} seed {seed}: student alone / distilled")
        student_train = {**train, "dropout": 0.0}
        s = run(
            {
                **common,
                "name": f"{model}_student",
                "model": model,
                "model_options": STUDENT[model],
                "seed": seed,
                "train": student_train,
                "stages": [],
                "export": ["float32"],
            },
            where / "student_alone",
        )
        epochs_alone = s["training"]["epochs_run"]
        d = run(
            {
                **common,
                "name": f"{model}_distilled",
                "model": model,
                "model_options": STUDENT[model],
                "seed": seed,
                "train": {**frozen, "learning_rate": train.get("learning_rate", 1e-3)},
                "stages": [
                    {
                        "kind": "distill",
                        "teacher": trained,
                        "epochs": epochs_alone,
                        "learning_rate": train.get("learning_rate", 1e-3),
                        **DISTILL,
                    }
                ],
                "export": ["float32"],
            },
            where / "student_distilled",
        )
        results += [
            {"model": model, "seed": seed, "variant": "float32", **row(a, "float32")},
            {"model": model, "seed": seed, "variant": "int8_ptq", **row(a, "int8")},
            {"model": model, "seed": seed, "variant": "tfmot_tutorial", **row(b, "int8")},
            {"model": model, "seed": seed, "variant": "edgeopt_best", **row(c, "int8")},
            {
                "model": model,
                "seed": seed,
                "variant": "student_alone",
                **row(s, "float32"),
                "epochs": epochs_alone,
            },
            {
                "model": model,
                "seed": seed,
                "variant": "student_distilled",
                **row(d, "float32"),
                "epochs": epochs_alone,
            },
        ]
        (out / f"results_{model}.json").write_text(json.dumps(results, indent=1))


def sparse_encoding_effect(out: Path, log, seed: int = 0) -> list[dict[str, Any]]:
    """What TFLite's sparse encoding does to size and latency, on mobilenet_v2's 1x1 convolutions.

    The trained mobilenet_v2 of ``seed`` (from the main benchmark, or trained here) is pruned with
    the ``xnnpack_sparse`` policy (1x1 convolutions only, 80%), then exported twice from the same
    weights, with and without sparse encoding; each file is measured locally with XNNPACK and
    without it (builtin kernels), 1 thread.
    """
    from edgeopt import bench

    trained = out / "mobilenet_v2" / f"seed{seed}" / "float32" / "model.keras"
    base = yaml.safe_load((ROOT / "models" / "mobilenet_v2" / "recipe.yaml").read_text())
    if not trained.exists():
        log("sparse encoding: training mobilenet_v2 first")
        run(
            {
                "data": "digits32",
                "benchmark": BENCHMARK,
                "model": "mobilenet_v2",
                "seed": seed,
                "model_options": base.get("model_options", {}),
                "train": base["train"],
                "stages": [],
                "export": ["float32"],
            },
            trained.parent,
        )
    frozen = {**base["train"], "epochs": 0}
    frozen.pop("early_stopping", None)
    prune = {
        "kind": "prune",
        "target_sparsity": 0.8,
        "initial_sparsity": 0.3,
        "policy": "xnnpack_sparse",
        "epochs": 6,
        "end_epoch": 4,
        "frequency": 10,
        "learning_rate": 5e-4,
    }
    rows = []
    for encoded in (False, True):
        log(f"sparse encoding: {'on' if encoded else 'off'}")
        where = out / "sparse_encoding" / ("encoded" if encoded else "dense")
        report = run(
            {
                "data": "digits32",
                "benchmark": BENCHMARK,
                "model": str(trained),
                "seed": seed,
                "train": frozen,
                "stages": [prune],
                "export": ["float32", "int8"],
                "export_options": {"sparse_encoding": encoded},
            },
            where,
        )
        for v in report["variants"]:
            if v["name"] not in ("float32", "int8") or v["status"] != "ok":
                continue
            path = where / v["path"]
            builtin = bench.measure(
                path,
                target="local",
                threads=1,
                runs=BENCHMARK["runs"],
                warmup=10,
                min_seconds=BENCHMARK["min_seconds"],
                use_xnnpack=False,
            )
            rows.append(
                {
                    "format": v["name"],
                    "sparse_encoding": encoded,
                    "accuracy": v["metrics"]["accuracy"]["value"],
                    "size_bytes": v["size_bytes"],
                    "gzip_bytes": v["gzip_bytes"],
                    "sparsity": v["sparsity"],
                    "densify_ops": v["inspect"]["ops"].get("DENSIFY", 0),
                    "p50_ms_xnnpack": v["latency"]["local"].get("p50_ms"),
                    "p50_ms_builtin": builtin.get("p50_ms"),
                }
            )
    (out / "sparse_encoding.json").write_text(json.dumps(rows, indent=1))
    return rows


def sparse_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| format | sparse encoding | accuracy | raw bytes | gzip bytes | weight sparsity | DENSIFY ops | "
        "p50 ms XNNPACK | p50 ms builtin |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['format']} | {'on' if r['sparse_encoding'] else 'off'} | {r['accuracy']:.4f} | "
            f"{r['size_bytes']:,} | {r['gzip_bytes']:,} | {r['sparsity']:.3f} | {r['densify_ops']} | "
            f"{r['p50_ms_xnnpack']} | {r['p50_ms_builtin']} |"
        )
    return "\n".join(lines) + "\n"


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _std(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.pstdev(values) if len(values) > 1 else 0.0 if values else None


def summarise(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Mean over seeds per (model, variant), and the issue's targets checked on those means."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["model"], r["variant"]), []).append(r)
    table = []
    for (model, variant), rows in groups.items():
        metric = "accuracy" if "accuracy" in rows[0] else "mae"
        table.append(
            {
                "model": model,
                "variant": variant,
                "metric": metric,
                "seeds": len(rows),
                "value": _mean([r[metric] for r in rows]),
                "value_std": _std([r[metric] for r in rows]),
                "size_bytes": _mean([r["size_bytes"] for r in rows]),
                "gzip_bytes": _mean([r["gzip_bytes"] for r in rows]),
                "sparsity": _mean([r["sparsity"] for r in rows]),
                "int8_op_coverage": _mean([r["int8_op_coverage"] for r in rows]),
                "p50_ms": _mean([r["p50_ms"] for r in rows]),
                "failed": sum(r["status"] != "ok" or r["run_status"] != "ok" for r in rows),
            }
        )
    by = {(t["model"], t["variant"]): t for t in table}
    targets = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    if ("digits_cnn", "float32") in by and ("digits_cnn", "edgeopt_best") in by:
        f, b = by[("digits_cnn", "float32")], by[("digits_cnn", "edgeopt_best")]
        ratio = f["gzip_bytes"] / b["gzip_bytes"]
        drop = (f["value"] - b["value"]) * 100
        targets.append(
            f"{verdict(ratio >= 20 and drop <= 0.5)} digits_cnn gzip {ratio:.1f}x smaller than "
            f"float32 (target >= 20x) at {drop:+.2f} point accuracy drop (target <= 0.5)"
        )
    for model in DATA:
        if (model, "tfmot_tutorial") in by and (model, "edgeopt_best") in by:
            t, b = by[(model, "tfmot_tutorial")], by[(model, "edgeopt_best")]
            ratio = t["gzip_bytes"] / b["gzip_bytes"]
            better = b["value"] >= t["value"] if b["metric"] == "accuracy" else b["value"] <= t["value"]
            targets.append(
                f"{verdict(ratio >= 1.5 and better)} {model}: edgeopt_best gzip {ratio:.2f}x smaller than "
                f"tfmot_tutorial (target >= 1.5x) with {b['metric']} {b['value']:.4f} vs {t['value']:.4f} "
                f"(target: equal or better)"
            )
        if (model, "student_alone") in by and (model, "student_distilled") in by:
            s, d = by[(model, "student_alone")], by[(model, "student_distilled")]
            better = d["value"] > s["value"] if s["metric"] == "accuracy" else d["value"] < s["value"]
            targets.append(
                f"{verdict(better)} {model}: distilled student {s['metric']} {d['value']:.4f} vs "
                f"student alone {s['value']:.4f}"
            )
    for variant in ("int8_ptq", "edgeopt_best"):
        if ("facepose_mlp", variant) in by:
            b = by[("facepose_mlp", variant)]
            targets.append(
                f"{verdict(b['value'] <= 15)} facepose_mlp {variant} int8 MAE {b['value']:.2f} deg "
                f"(target <= 15)"
            )
    return table, targets


def markdown(table: list[dict[str, Any]], targets: list[str], command: str) -> str:
    lines = [
        "| model | variant | accuracy / MAE (mean ± std) | raw bytes | gzip bytes | weight sparsity | "
        "int8 op coverage | p50 ms | failed runs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in table:
        value = (
            "-"
            if t["value"] is None
            else (
                f"{t['value']:.4f} ± {t['value_std']:.4f}"
                if t["metric"] == "accuracy"
                else f"{t['value']:.2f}° ± {t['value_std']:.2f}"
            )
        )
        lines.append(
            f"| {t['model']} | {t['variant']} | {value} | {t['size_bytes'] or 0:,.0f} | "
            f"{t['gzip_bytes'] or 0:,.0f} | "
            f"{(t['sparsity'] or 0):.3f} | {(t['int8_op_coverage'] or 0):.2f} | "
            f"{'-' if t['p50_ms'] is None else format(t['p50_ms'], '.4f')} | {t['failed']} |"
        )
    lines += ["", "Targets (means over seeds):", ""] + [f"- {t}" for t in targets]
    lines += [
        "",
        f"Reproduce: `{command}`. Accuracy/MAE: LiteRT interpreter on the test split; latency: "
        "measured locally, LiteRT interpreter, 1 thread, p50 of >= 100 runs (mean over seeds).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DATA), choices=list(DATA))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_compress")
    parser.add_argument(
        "--sparse-encoding",
        action="store_true",
        help="only measure sparse encoding's effect on mobilenet_v2 (size, latency)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    if args.sparse_encoding:
        rows = sparse_encoding_effect(args.out, log, args.seeds[0])
        text = sparse_markdown(rows)
        (args.out / "sparse_encoding.md").write_text(text)
        print(text)
        return 0
    for model in args.models:
        bench_model(model, args.seeds, args.out, log, [])
    # Every model benchmarked into this folder so far (separate invocations may each run one model).
    results = [r for path in sorted(args.out.glob("results_*.json")) for r in json.loads(path.read_text())]
    table, targets = summarise(results)
    command = "python scripts/bench_compress.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(table, targets, command.strip())
    (args.out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
