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


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def tune(study: Path, strategy: str, seed: int, trials: int, *extra: str) -> tuple[dict, float]:
    command = [
        sys.executable,
        "-m",
        "edgeopt.cli",
        "tune",
        str(RECIPE),
        "--study",
        str(study),
        "--strategy",
        strategy,
        "--seed",
        str(seed),
        "--trials",
        str(trials),
        *BUDGETS,
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


def seed_base(source: Path, study: Path) -> None:
    """Give a new study the trained base another study made (same recipe: same base key)."""
    if (study / "base").exists() or not (source / "base").exists():
        return
    study.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "base", study / "base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=1, help="studies run at once")
    parser.add_argument("--throughput-trials", type=int, default=6)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_tune")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [(s, seed) for seed in args.seeds for s in args.strategies]
    first = args.out / f"{runs[0][0]}-s{runs[0][1]}"
    results: dict[tuple[str, int], tuple[dict, float]] = {
        runs[0]: tune(first, runs[0][0], runs[0][1], args.trials)
    }
    print(f"{runs[0]}: done", flush=True)

    def one(run):
        study = args.out / f"{run[0]}-s{run[1]}"
        seed_base(first, study)
        outcome = tune(study, run[0], run[1], args.trials)
        print(f"{run}: done", flush=True)
        return run, outcome

    with ThreadPoolExecutor(args.parallel) as pool:
        for run, outcome in pool.map(one, runs[1:]):
            results[run] = outcome

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
            }
        )
    figures = {
        "machine": f"{cpu()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "trials": args.trials,
        "seeds": args.seeds,
        "parallel_studies": args.parallel,
        "strategies": rows,
    }

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
        _, run, best = min(candidates, key=lambda c: (c[0], c[2]["drop"]))
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
