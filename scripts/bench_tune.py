#!/usr/bin/env python
"""How well `edgeopt tune` searches: random vs hill climbing vs Bayesian optimisation on digits_cnn.

Budget: int8 gzip <= 12 KB (12,288 bytes) at an accuracy drop <= 0.5 point against the trained
float model, over the space in models/digits_cnn/tune.yaml (prune layers, sparsity and epochs,
cluster count; prune- and cluster-preserving QAT). Every (strategy, seed) is its own study of
``--trials`` trials; all of them share one trained base (trained once, then copied into each study
folder, where tune finds and reuses it). Reports, per strategy over the seeds: the median number of
trials until a budget-meeting model was found (``--trials + 1`` when none was), the best gzip size
reached, and the wall time per trial; then the same study run locally (1 worker) and as Ray tasks
(2 workers on a local Ray cluster), for throughput; and whether the best model's best.yaml
reproduces it with `edgeopt compress`.

    .venv/bin/python scripts/bench_tune.py --seeds 0 1 2 3 4 --trials 20 --out runs/bench_tune

``--objective pareto`` runs the same studies as a Pareto search (int8 gzip size, latency and error,
within the same budgets) and reports each study's hypervolume: the share of the objective box, spanned
by every feasible trial of every study in the run, that its feasible trials dominate (higher is
better). ``--strategies`` takes any of tune's strategies, so Optuna's TPE and NSGA-II can be set
against the Gaussian-process sampler on the same seeds and budget; ``--compare-only`` leaves out the
throughput and reproduction runs.

    .venv/bin/python scripts/bench_tune.py --strategies bayes tpe --seeds 0 1 2 --trials 20 \
        --compare-only --parallel 2 --out runs/bench_tune_samplers

``--space training`` measures the other kind of study: the face-direction MLP's training searched
(models/facepose_mlp/tune.yaml: learning rate, batch size, optimiser, L2, then QAT to int8), every
strategy with and without the hyperband pruner. Reported per (strategy, pruner), as medians over the
seeds: trials and wall seconds until a trial's int8 MAE reached ``--target-mae``, the best MAE, and
the study's whole wall time. ``--set`` passes recipe overrides (e.g. a shorter ``train.epochs``).

    .venv/bin/python scripts/bench_tune.py --space training --seeds 0 1 --trials 12 \
        --set train.epochs=120 --out runs/bench_tune_training
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "models/digits_cnn/tune.yaml"
BUDGETS = ["--budget", "max_gzip_kb=12", "--budget", "max_accuracy_drop=0.005"]
STRATEGIES = ("random", "hill", "bayes")
OBJECTIVES = ("gzip_kb", "latency_ms", "error")  # what --objective pareto minimises


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def tune(study: Path, strategy: str, seed: int, trials: int, *extra: str, recipe: Path = RECIPE,
         budgets: tuple[str, ...] = tuple(BUDGETS)) -> tuple[dict, float]:
    command = [
        sys.executable,
        "-m",
        "edgeopt.cli",
        "tune",
        str(recipe),
        "--study",
        str(study),
        "--strategy",
        strategy,
        "--seed",
        str(seed),
        "--trials",
        str(trials),
        *budgets,
        "--json",
        *extra,
    ]
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if run.returncode not in (0, 1):  # 1: no trial met the budgets, a result like any other
        sys.exit(f"tune failed ({run.returncode}): {run.stderr[-2000:]}")
    return json.loads(run.stdout), seconds


def first_feasible(document: dict, trials: int) -> int:
    """Trials until the first budget-meeting model (1-based), or trials + 1 when none was found."""
    ordered = sorted(document["trials"], key=lambda t: t["number"])
    return next((i + 1 for i, t in enumerate(ordered) if t["feasible"]), trials + 1)


def objective_points(document: dict) -> list[list[float]]:
    """(gzip KB, local P50 ms, error) of each feasible trial: what a Pareto study minimises."""
    points = []
    for t in document["trials"]:
        latency = (t["latency_p50_ms"] or {}).get("local")
        if t["feasible"] and latency is not None:
            error = 1.0 - t["value"] if t["metric"] == "accuracy" else t["value"]
            points.append([t["gzip_bytes"] / 1024, latency, error])
    return points


def hypervolumes(documents: dict) -> dict:
    """Per study, the hypervolume its feasible points dominate in the box every study's feasible
    points span (each objective scaled to 0..1 over that box, reference point 1.1 on each): one
    yardstick for all the studies of a run. Uses Optuna's own hypervolume routine."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume  # private, but the one Optuna's samplers use

    every = [p for doc in documents.values() for p in objective_points(doc)]
    if not every:
        return {run: 0.0 for run in documents}
    low, high = np.min(every, axis=0), np.max(every, axis=0)
    scale = np.where(high > low, high - low, 1.0)
    out = {}
    for run, doc in documents.items():
        points = objective_points(doc)
        if not points:
            out[run] = 0.0
            continue
        unit = (np.array(points) - low) / scale
        out[run] = float(compute_hypervolume(unit, np.full(len(OBJECTIVES), 1.1)) / 1.1 ** len(OBJECTIVES))
    return out


def seed_base(source: Path, study: Path) -> None:
    """Give a new study the trained base another study made (same recipe: same base key)."""
    if (study / "base").exists() or not (source / "base").exists():
        return
    study.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "base", study / "base")


def to_target(document: dict, target: float) -> tuple[int | None, float | None]:
    """(trials, wall seconds spent on them) until the first trial whose int8 MAE is <= ``target``;
    (None, None) when none reached it. Pruned and failed trials count: their time was spent."""
    spent = 0.0
    for index, t in enumerate(sorted(document["trials"], key=lambda t: t["number"])):
        spent += t["seconds"] or 0.0
        if t["status"] != "pruned" and t["value"] is not None and t["value"] <= target:
            return index + 1, spent
    return None, None


def training_space(args) -> None:
    """Strategies x pruner (none, hyperband) over the face-direction MLP's training space."""
    recipe = ROOT / "models/facepose_mlp/tune.yaml"
    extra = [item for override in args.set for item in ("--set", override)]
    runs = [(s, p, seed) for seed in args.seeds for s in args.strategies for p in ("none", "hyperband")]

    def one(run):
        strategy, pruner, seed = run
        study = args.out / f"{strategy}-{pruner}-s{seed}"
        document, seconds = tune(study, strategy, seed, args.trials, "--objective", "accuracy",
                                 "--pruner", pruner, *extra, recipe=recipe, budgets=())
        print(f"{run}: {seconds:.0f} s", flush=True)
        return run, (document, seconds)

    with ThreadPoolExecutor(args.parallel) as pool:
        results = dict(pool.map(one, runs))
    rows = []
    for strategy in args.strategies:
        for pruner in ("none", "hyperband"):
            docs = [results[(strategy, pruner, seed)] for seed in args.seeds]
            reached = [to_target(d, args.target_mae) for d, _ in docs]
            best = [min((t["value"] for t in d["trials"]
                         if t["value"] is not None and t["status"] != "pruned"), default=None)
                    for d, _ in docs]
            trials = [n if n is not None else args.trials + 1 for n, _ in reached]
            rows.append({
                "strategy": strategy,
                "pruner": pruner,
                "trials_to_target": trials,
                "median_trials_to_target": statistics.median(trials),
                "seconds_to_target": [round(s, 1) if s is not None else None for _, s in reached],
                "seeds_reaching_target": sum(n is not None for n, _ in reached),
                "best_mae": [round(b, 2) if b is not None else None for b in best],
                "median_best_mae": statistics.median([b for b in best if b is not None] or [float("nan")]),
                "pruned_trials": [sum(t["status"] == "pruned" for t in d["trials"]) for d, _ in docs],
                "study_wall_s": [round(s, 1) for _, s in docs],
                "median_study_wall_s": statistics.median(s for _, s in docs),
            })
    figures = {
        "machine": f"{cpu()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "recipe": "models/facepose_mlp/tune.yaml", "overrides": args.set, "trials": args.trials,
        "seeds": args.seeds, "target_mae": args.target_mae, "parallel_studies": args.parallel, "rows": rows,
    }
    (args.out / "figures.json").write_text(json.dumps(figures, indent=1))
    lines = ["| strategy | pruner | trials to MAE <= target (median; per seed) | seconds to target | "
             "best int8 MAE (median) | pruned trials | study wall s (median) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['pruner']} | {r['median_trials_to_target']:g}; "
                     f"{r['trials_to_target']} | {r['seconds_to_target']} | {r['median_best_mae']:.2f}; "
                     f"{r['best_mae']} | {r['pruned_trials']} | {r['median_study_wall_s']:.0f}; "
                     f"{r['study_wall_s']} |")
    (args.out / "figures.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=("compression", "training"), default="compression")
    parser.add_argument("--target-mae", type=float, default=12.0,
                        help="--space training: the int8 MAE to reach")
    parser.add_argument("--set", action="append", default=[], help="--space training: a recipe override")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=1, help="studies run at once")
    parser.add_argument("--objective", choices=("size", "pareto"), default="size",
                        help="compression space: what every study minimises within the budgets")
    parser.add_argument("--compare-only", action="store_true",
                        help="compression space: the strategies only, no throughput or reproduction runs")
    parser.add_argument("--throughput-trials", type=int, default=6)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_tune")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.space == "training":
        training_space(args)
        return
    runs = [(s, seed) for seed in args.seeds for s in args.strategies]
    first = args.out / f"{runs[0][0]}-s{runs[0][1]}"
    objective = ("--objective", args.objective)
    results: dict[tuple[str, int], tuple[dict, float]] = {
        runs[0]: tune(first, runs[0][0], runs[0][1], args.trials, *objective)
    }
    print(f"{runs[0]}: done", flush=True)

    def one(run):
        study = args.out / f"{run[0]}-s{run[1]}"
        seed_base(first, study)
        outcome = tune(study, run[0], run[1], args.trials, *objective)
        print(f"{run}: done", flush=True)
        return run, outcome

    with ThreadPoolExecutor(args.parallel) as pool:
        for run, outcome in pool.map(one, runs[1:]):
            results[run] = outcome

    volumes = hypervolumes({run: doc for run, (doc, _) in results.items()})
    rows = []
    for strategy in args.strategies:
        found, best, per_trial = [], [], []
        for seed in args.seeds:
            document, _ = results[(strategy, seed)]
            found.append(first_feasible(document, args.trials))
            feasible = [t["gzip_bytes"] for t in document["trials"] if t["feasible"]]
            best.append(min(feasible) if feasible else None)
            per_trial += [t["seconds"] for t in document["trials"] if t["seconds"] and not t["cached"]]
        reached = [b for b in best if b is not None]
        rows.append(
            {
                "strategy": strategy,
                "trials_to_budget": found,
                "median_trials_to_budget": statistics.median(found),
                "best_gzip_bytes": best,
                "best_gzip_bytes_min": min(reached) if reached else None,
                "seeds_meeting_budget": len(reached),
                "median_seconds_per_trial": statistics.median(per_trial) if per_trial else None,
                "hypervolume": [round(volumes[(strategy, seed)], 4) for seed in args.seeds],
                "median_hypervolume": statistics.median(volumes[(strategy, seed)] for seed in args.seeds),
            }
        )
    figures = {
        "machine": f"{cpu()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "trials": args.trials,
        "seeds": args.seeds,
        "parallel_studies": args.parallel,
        "objective": args.objective,
        "strategies": rows,
    }
    if args.compare_only:
        (args.out / "figures.json").write_text(json.dumps(figures, indent=1))
        print(json.dumps(figures, indent=1))
        return

    # Throughput: one study locally (1 worker) and as Ray tasks (2 workers), same seed and trials.
    throughput = {}
    configs = [("local", [])] + ([] if args.no_ray else [("ray", ["--executor", "ray", "--workers", "2"])])
    for name, extra in configs:
        study = args.out / f"throughput-{name}"
        shutil.rmtree(study, ignore_errors=True)
        seed_base(first, study)
        document, seconds = tune(study, "random", 100, args.throughput_trials, *extra)
        throughput[name] = {
            "trials": len(document["trials"]),
            "wall_s": seconds,
            "trials_per_minute": 60 * len(document["trials"]) / seconds,
        }
    figures["throughput"] = throughput

    # Reproduction: the best model over every study, again with edgeopt compress from its best.yaml.
    candidates = [
        (t["gzip_bytes"], run, t) for run, (doc, _) in results.items() for t in doc["trials"] if t["feasible"]
    ]
    if candidates:
        _, run, best = min(candidates, key=lambda c: (c[0], c[2]["drop"]))  # one reference: drop ranks
        out = args.out / "reproduce"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "edgeopt.cli",
                "compress",
                str(args.out / f"{run[0]}-s{run[1]}" / "best.yaml"),
                "--out",
                str(out),
                "--overwrite",
                "--quiet",
            ],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )
        report = json.loads((out / "report.json").read_text())
        int8 = next(v for v in report["variants"] if v["name"] == "int8")
        reference = next(v for v in report["variants"] if v["name"] == "trained_float32")
        figures["reproduce"] = {
            "study": f"{run[0]}-s{run[1]}",
            "trial": best["number"],
            "params": best["params"],
            "tune_gzip_bytes": best["gzip_bytes"],
            "tune_drop": best["drop"],
            "compress_gzip_bytes": int8["gzip_bytes"],
            "compress_drop": reference["metrics"]["accuracy"]["value"] - int8["metrics"]["accuracy"]["value"],
        }
    (args.out / "figures.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
