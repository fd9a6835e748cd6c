#!/usr/bin/env python
"""Side-by-side compression benchmark: float32 vs the TFMOT-tutorial recipe vs edgeopt's best.

Per model (digits_cnn, facepose_mlp, mobilenet_v2, each with its ``models/<name>/recipe.yaml`` data
and train section) and seed, :func:`edgeopt.prepare` trains the model once and each row is one
:func:`edgeopt.compress` of it, measured from its ``.tflite`` through the LiteRT interpreter
(accuracy / MAE on the test split, latency measured locally, 1 thread):

* ``float32`` / ``int8_ptq``: the trained model exported as is / with full-integer PTQ only.
* ``tfmot_tutorial``: TFMOT's pruning tutorial by hand: polynomial pruning 50% -> 80% over 2 epochs,
  then full-integer post-training quantization (int8 in and out).
* ``edgeopt_best``: :data:`BEST` (prune the layers holding the weights, sparsity-preserving
  clustering, collaborative QAT, int8; for mobilenet_v2 first distillation into the student).
* ``student_alone`` / ``student_distilled``: the narrow student (:data:`STUDENT`) trained alone by
  its own ``prepare``, or left untrained and taught only by a distill stage from the trained model
  for as many epochs; both float32, to show what distillation itself buys.

Usage: ``python scripts/bench_compress.py [--models ...] [--seeds 0 1 2] [--out runs/bench_compress]
[--quick] [--sparse-encoding]``. ``--quick`` caps every epoch count (training and stages) at
:data:`QUICK_EPOCHS`: a smoke run, its figures mean nothing. Runs are saved in
``<out>/<model>/seed<N>/<run>/``; ``results_<model>.json`` lists the rows of the model's latest
invocation and the report.json each is read from; the table over every model in ``--out`` and the
issue's targets with pass/fail are printed and written to ``table.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edgeopt
from edgeopt.types import LatencyKey, Metric, finite

LOCAL = LatencyKey("local")  # this machine, at the recipe's first thread count

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("digits_cnn", "facepose_mlp", "mobilenet_v2")
BENCHMARK = {"targets": ["local"], "threads": 1, "runs": 100, "warmup": 10, "min_seconds": 0.3}
QUICK_EPOCHS = 2
STUDENT = {"digits_cnn": {"width": 0.25}, "facepose_mlp": {"width": 0.5}, "mobilenet_v2": {"width": 0.5}}
DISTILL = {"alpha": 0.1, "temperature": 4.0}
BEST: dict[str, dict[str, dict[str, Any]]] = {
    # conv1 (288 weights) and the 10-class head (640) pruned to 90% cost most of the accuracy lost.
    "digits_cnn": {"prune": {"layers": ["conv2", "dense"], "target_sparsity": 0.92, "epochs": 20}},
    # hidden1 holds 98% of the weights; pruning the 8->2 output layer to 80% cost 6 degrees.
    "facepose_mlp": {"prune": {"layers": ["hidden1"]}},
    # Per-channel scales, biases and depthwise kernels (TFMOT neither prunes nor clusters them) are
    # most of the full-width file: distil into the STUDENT first.
    "mobilenet_v2": {"distill": {"epochs": 20}, "prune": {"target_sparsity": 0.8}},
}
# Each table row: (row, the run folder whose report.json holds it, the variant it reads there).
ROWS = (("float32", "float32", "float32"), ("int8_ptq", "float32", "int8"),
        ("tfmot_tutorial", "tfmot_tutorial", "int8"), ("edgeopt_best", "edgeopt_best", "int8"),
        ("student_alone", "student_alone", "float32"), ("student_distilled", "student_distilled", "float32"))
UNTRAINED = ["train.epochs=0", "train.dropout=0", "train.early_stopping=null"]  # to compress only


def tutorial_stages(lr: float) -> list[dict[str, Any]]:
    """TFMOT's pruning tutorial: PolynomialDecay 0.50 -> 0.80 over 2 epochs, then int8 PTQ.

    The tutorial updates masks every 100 steps on MNIST (422 steps per epoch); these datasets have
    far fewer steps per epoch (41 for digits), where 100 would never reach the target, so the mask
    frequency is scaled to 10 steps, as a user adapting the tutorial would.
    """
    return [{"kind": "prune", "initial_sparsity": 0.5, "target_sparsity": 0.8, "schedule": "polynomial",
             "epochs": 2, "begin_epoch": 0, "end_epoch": 2, "frequency": 10, "learning_rate": lr},
            {"kind": "quantize", "mode": "ptq"}]


def best_stages(model: str, lr: float, teacher: str) -> list[dict[str, Any]]:
    """edgeopt's best: [distill from ``teacher``,] prune, cluster to 16, collaborative QAT."""
    best = BEST[model]
    prune = {"kind": "prune", "initial_sparsity": 0.5, "target_sparsity": 0.9, "schedule": "polynomial",
             "epochs": 12, "end_epoch": 8, "frequency": 10, "learning_rate": lr, **best.get("prune", {})}
    cluster = {"kind": "cluster", "clusters": 16, "centroid_init": "kmeans_plus_plus", "epochs": 3,
               "learning_rate": lr / 10}
    qat = {"kind": "quantize", "mode": "qat", "epochs": 3, "learning_rate": lr / 20}
    if "distill" not in best:
        return [prune, cluster, qat]
    return [{"kind": "distill", "teacher": teacher, "learning_rate": lr, **DISTILL, **best["distill"]},
            prune, cluster, qat]


def load(model: str, seed: int, quick: bool, *changes: str):
    """The model's recipe with this benchmark's seed and settings, no stages; ``changes`` win."""
    quick_train = [f"train.epochs={QUICK_EPOCHS}"] if quick else []
    return edgeopt.load_recipe(ROOT / "models" / model / "recipe.yaml", [
        f"seed={seed}", f"benchmark={json.dumps(BENCHMARK)}", "stages=[]", *quick_train, *changes])


def shorten(stages: list[dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    fields = ("epochs", "begin_epoch", "end_epoch") if quick else ()
    return [{k: min(v, QUICK_EPOCHS) if k in fields else v for k, v in s.items()} for s in stages]


def bench_seed(model: str, seed: int, out: Path, quick: bool, log) -> list[dict[str, Any]]:
    """Every run of one (model, seed), saved under ``out``; its rows for ``results_<model>.json``."""
    where = out / model / f"seed{seed}"

    def run(folder: str, prepared, stages: list[dict[str, Any]], export: list[str]):
        log(f"{model} seed {seed}: {folder}")
        result = edgeopt.compress(prepared, stages=shorten(stages, quick), export=export)
        result.save(where / folder, overwrite=True)
        return result.report

    log(f"{model} seed {seed}: training")
    trained = edgeopt.prepare(load(model, seed, quick))
    lr = trained.recipe.train.learning_rate
    run("float32", trained, [], ["float32", "int8"])
    teacher = str(where / "float32" / "model.keras")  # the trained model, saved by the run above
    run("tfmot_tutorial", trained, tutorial_stages(lr), ["int8"])
    student = f"model_options={json.dumps(STUDENT[model])}"
    untrained_student = edgeopt.prepare(load(model, seed, quick, student, *UNTRAINED))
    best_on = untrained_student if "distill" in BEST[model] else trained
    run("edgeopt_best", best_on, best_stages(model, lr, teacher), ["int8"])
    log(f"{model} seed {seed}: training the student alone")
    alone = edgeopt.prepare(load(model, seed, quick, student, "train.dropout=0"))
    epochs = run("student_alone", alone, [], ["float32"]).training["epochs_run"]
    distill = {"kind": "distill", "teacher": teacher, "epochs": epochs, "learning_rate": lr, **DISTILL}
    run("student_distilled", untrained_student, [distill], ["float32"])
    return [{"model": model, "seed": seed, "variant": row, "reads": variant,
             "report": f"{model}/seed{seed}/{folder}/report.json"} for row, folder, variant in ROWS]


def sparse_encoding_effect(out: Path, seed: int, quick: bool, log) -> list[dict[str, Any]]:
    """What TFLite's sparse encoding does to size and latency, on mobilenet_v2's 1x1 convolutions.

    The trained mobilenet_v2 of ``seed`` (from the main benchmark, or trained here) is pruned with
    the ``xnnpack_sparse`` policy (1x1 convolutions only, 80%), then exported twice from the same
    weights, with and without sparse encoding; each file is measured locally with XNNPACK and
    without it (builtin kernels), 1 thread.
    """
    trained = out / "mobilenet_v2" / f"seed{seed}" / "float32" / "model.keras"
    saved = [f"model={json.dumps(str(trained))}", "model_options={}", *UNTRAINED] if trained.exists() else []
    log(f"sparse encoding: {'loading ' + str(trained) if saved else 'training mobilenet_v2 first'}")
    prepared = edgeopt.prepare(load("mobilenet_v2", seed, quick, *saved))
    prune = {"kind": "prune", "target_sparsity": 0.8, "initial_sparsity": 0.3, "policy": "xnnpack_sparse",
             "epochs": 6, "end_epoch": 4, "frequency": 10, "learning_rate": 5e-4}
    rows = []
    for encoded in (False, True):
        log(f"sparse encoding: {'on' if encoded else 'off'}")
        result = edgeopt.compress(prepared, stages=shorten([prune], quick), export=["float32", "int8"],
                                  overrides=[f"export_options.sparse_encoding={json.dumps(encoded)}"])
        folder = result.save(out / "sparse_encoding" / ("encoded" if encoded else "dense"), overwrite=True)
        for v in filter(lambda v: v.ok, (result.report.variant("float32"), result.report.variant("int8"))):
            builtin = edgeopt.benchmark(folder / v.path, threads=1, runs=BENCHMARK["runs"], warmup=10,
                                        min_seconds=BENCHMARK["min_seconds"], use_xnnpack=False)
            rows.append({"format": v.name, "sparse_encoding": encoded,
                         "accuracy": v.metric(result.report.primary_metric()).value,
                         "size_bytes": v.size_bytes, "gzip_bytes": v.gzip_bytes, "sparsity": v.sparsity,
                         "densify_ops": v.inspect.ops.get("DENSIFY", 0),
                         "p50_ms_xnnpack": v.latency[LOCAL].value(), "p50_ms_builtin": builtin.value()})
    (out / "sparse_encoding.json").write_text(json.dumps(rows, indent=1))
    return rows


def sparse_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| format | sparse encoding | accuracy | raw bytes | gzip bytes | weight sparsity | DENSIFY ops "
             "| p50 ms XNNPACK | p50 ms builtin |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['format']} | {'on' if r['sparse_encoding'] else 'off'} | {r['accuracy']:.4f} | "
              f"{r['size_bytes']:,} | {r['gzip_bytes']:,} | {r['sparsity']:.3f} | {r['densify_ops']} | "
              f"{r['p50_ms_xnnpack']} | {r['p50_ms_builtin']} |" for r in rows]
    return "\n".join(lines) + "\n"


def mean(values) -> float | None:
    values = [x for x in map(finite, values) if x is not None]
    return statistics.fmean(values) if values else None


@dataclass(frozen=True)
class Summary:
    """One (model, row) over its seeds: the task metric's mean (with its unit and direction) and std,
    the means of the other figures, and how many runs failed."""

    metric_name: str
    metric: Metric
    std: float | None
    size_bytes: float | None
    gzip_bytes: float | None
    sparsity: float | None
    int8_op_coverage: float | None
    p50_ms: float | None
    failed: int

    @classmethod
    def of(cls, runs: list) -> Summary:
        """From (report, variant) pairs, one per seed."""
        name = runs[0][0].primary_metric()
        metrics = [v.metric(name) for _, v in runs if v.metric(name) is not None]
        values = [m.number for m in metrics if m.number is not None]
        first = metrics[0] if metrics else Metric(None)  # for its unit and direction
        return cls(name, first.replace(value=mean(values), provenance="mean over seeds"),
                   statistics.pstdev(values) if values else None, mean(v.size_bytes for _, v in runs),
                   mean(v.gzip_bytes for _, v in runs), mean(v.sparsity for _, v in runs),
                   mean(v.inspect.int8_op_coverage for _, v in runs),
                   mean(v.latency[LOCAL].value() if LOCAL in v.latency else None for _, v in runs),
                   sum(not (v.ok and report.ok) for report, v in runs))

    def metric_text(self) -> str:
        """Accuracy to 4 places; MAE to 2, in degrees where it is."""
        value, unit = self.metric.value, self.metric.unit
        if value is None:
            return "-"
        if unit == "fraction":
            return f"{value:.4f} ± {self.std:.4f}"
        return f"{value:.2f}{'°' if unit == 'degrees' else ''} ± {self.std:.2f}"


def summarise(out: Path) -> dict[tuple[str, str], Summary]:
    """Every row listed in ``out``'s results files, read from its report.json, over its seeds."""
    runs: dict[tuple[str, str], list] = {}
    for path in sorted(out.glob("results_*.json")):
        for row in json.loads(path.read_text()):
            report = edgeopt.load_report(out / row["report"])
            runs.setdefault((row["model"], row["variant"]), []).append((report, report.variant(row["reads"])))
    return {key: Summary.of(pairs) for key, pairs in runs.items()}


def number(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def targets(by: dict[tuple[str, str], Summary]) -> list[str]:
    """The issue's targets, checked on the means over seeds."""
    found = []

    def check(ok: bool, text: str) -> None:
        found.append(f"{'PASS' if ok else 'FAIL'} {text}")

    if ("digits_cnn", "float32") in by and ("digits_cnn", "edgeopt_best") in by:
        f, b = by["digits_cnn", "float32"], by["digits_cnn", "edgeopt_best"]
        ratio, drop = f.gzip_bytes / b.gzip_bytes, b.metric.drop(f.metric)
        points = None if drop is None else drop * 100
        check(ratio >= 20 and points is not None and points <= 0.5,
              f"digits_cnn gzip {ratio:.1f}x smaller than float32 (target >= 20x) at "
              f"{number(points, '+.2f')} point accuracy drop (target <= 0.5)")
    for model in MODELS:
        if (model, "tfmot_tutorial") in by and (model, "edgeopt_best") in by:
            t, b = by[model, "tfmot_tutorial"], by[model, "edgeopt_best"]
            ratio, drop = t.gzip_bytes / b.gzip_bytes, b.metric.drop(t.metric)
            check(ratio >= 1.5 and drop is not None and drop <= 0,
                  f"{model}: edgeopt_best gzip {ratio:.2f}x smaller than tfmot_tutorial (target >= 1.5x) "
                  f"with {b.metric_name} {number(b.metric.value)} vs {number(t.metric.value)} "
                  "(target: equal or better)")
        if (model, "student_alone") in by and (model, "student_distilled") in by:
            s, d = by[model, "student_alone"], by[model, "student_distilled"]
            check(d.metric.better(s.metric), f"{model}: distilled student {s.metric_name} "
                  f"{number(d.metric.value)} vs student alone {number(s.metric.value)}")
    for variant in ("int8_ptq", "edgeopt_best"):
        if ("facepose_mlp", variant) in by:
            mae = by["facepose_mlp", variant].metric.number
            check(mae is not None and mae <= 15,
                  f"facepose_mlp {variant} int8 MAE {number(mae, '.2f')} deg (target <= 15)")
    return found


def markdown(table: dict[tuple[str, str], Summary], command: str) -> str:
    lines = ["| model | variant | accuracy / MAE (mean ± std) | raw bytes | gzip bytes | weight sparsity | "
             "int8 op coverage | p50 ms | failed runs |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {model} | {row} | {t.metric_text()} | {t.size_bytes or 0:,.0f} | "
              f"{t.gzip_bytes or 0:,.0f} | {t.sparsity or 0:.3f} | {t.int8_op_coverage or 0:.2f} | "
              f"{number(t.p50_ms)} | {t.failed} |"
              for (model, row), t in table.items()]
    lines += ["", "Targets (means over seeds):", "", *[f"- {t}" for t in targets(table)], "",
              f"Reproduce: `{command}`. Accuracy/MAE: LiteRT interpreter on the test split; latency: "
              "measured locally, LiteRT interpreter, 1 thread, p50 of >= 100 runs (mean over seeds)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_compress")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: every epoch count at most {QUICK_EPOCHS} (figures mean nothing)")
    parser.add_argument("--sparse-encoding", action="store_true",
                        help="only measure sparse encoding's effect on mobilenet_v2 (size, latency)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    if args.sparse_encoding:
        text = sparse_markdown(sparse_encoding_effect(args.out, args.seeds[0], args.quick, log))
        (args.out / "sparse_encoding.md").write_text(text)
        print(text)
        return 0
    for model in args.models:
        rows = []
        for seed in args.seeds:  # written after each seed, so a long run can be read before it ends
            rows += bench_seed(model, seed, args.out, args.quick, log)
            (args.out / f"results_{model}.json").write_text(json.dumps(rows, indent=1))
    command = "python scripts/bench_compress.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(summarise(args.out), command.strip())  # every model benchmarked into --out so far
    (args.out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
