"""edgeopt's own overhead: `edgeopt compress` on the digits recipe against the same work written by hand.

The hand-written side is scripts/overhead_handwritten.py (tf_keras + TFMOT + LiteRT, no edgeopt): with
op determinism on, train with early stopping and save the model, convert, evaluate and time the trained
float reference, prune 30 -> 80 % over 12 epochs, prune-preserving QAT for 5 epochs, convert float32
and int8, evaluate both on the test split, time each file as the recipe asks (20 warm-up invokes, then
>= 200 runs and >= 1 s), gzip -9 every file: the work compress does for its report, like for like. Both run as
fresh processes (imports included), paired and alternating so that a busy machine slows both alike.
Prints the wall times, their medians and spread, the median of the per-pair ratios, and how much of
the machine other processes used during each run (from /proc/stat, less the run's own CPU time):
other jobs on a shared VM move single pairs far more than anything edgeopt does. Also the CPU time
of each side (its processes' user + system time), which other jobs disturb less than wall time.

    .venv/bin/python scripts/bench_overhead.py --pairs 5

``--bare`` times the script without op determinism, warm-up, gzip sizes and the saved Keras model, as a
quick script would be written: the difference is the price of repeatable runs and of those figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGEOPT = [sys.executable, "-m", "edgeopt.cli", "compress", str(ROOT / "models/digits_cnn/recipe.yaml"),
           "--quiet", "--overwrite"]  # run from ROOT: this tree's edgeopt
HANDWRITTEN = [sys.executable, str(ROOT / "scripts" / "overhead_handwritten.py")]


def busy_seconds() -> float:
    """CPU seconds, all cores, that every process on this machine has used since boot (/proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds of ``cmd``, its CPU seconds, and the share of the CPUs other processes used meanwhile."""
    busy, own, start = busy_seconds(), children_seconds(), time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    used = children_seconds() - own
    others = (busy_seconds() - busy) - used
    return wall, used, max(0.0, others) / (wall * len(os.sched_getaffinity(0)))


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--bare", action="store_true",
                        help="the script without op determinism, warm-up, gzip sizes, model.keras")
    args = parser.parse_args()
    ours, theirs, busy = [], [], []  # busy: per pair, the most of the CPUs others used in either run
    cpu_ours, cpu_theirs = [], []
    with tempfile.TemporaryDirectory() as scratch:
        command = [*EDGEOPT, "--out", str(Path(scratch) / "run")]
        for pair in range(args.pairs):
            first_ours = pair % 2 == 0  # alternate which side goes first
            shares = []
            for side in ((True, False) if first_ours else (False, True)):
                handwritten = [*HANDWRITTEN, *(["--bare"] if args.bare else [])]
                wall, used, share = timed(command if side else handwritten)
                (ours if side else theirs).append(wall)
                (cpu_ours if side else cpu_theirs).append(used)
                shares.append(share)
            busy.append(max(shares))
            print(f"pair {pair + 1}: edgeopt {ours[-1]:.1f} s, hand-written {theirs[-1]:.1f} s, "
                  f"ratio {ours[-1] / theirs[-1]:.3f}; CPU {cpu_ours[-1]:.1f} s vs {cpu_theirs[-1]:.1f} s; "
                  f"other processes used up to {100 * busy[-1]:.0f} % of the CPUs", flush=True)
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    cpu_ratios = [a / b for a, b in zip(cpu_ours, cpu_theirs, strict=True)]
    figures = {
        "machine": f"{cpu()}, {len(os.sched_getaffinity(0))} cores, {platform.machine()}",
        "pairs": args.pairs,
        "handwritten_bare": args.bare,
        "others_cpu_share": {"min": min(busy), "max": max(busy)},
        "edgeopt_s": spread(ours),
        "handwritten_s": spread(theirs),
        "ratio": spread(ratios),
        "edgeopt_cpu_s": spread(cpu_ours),
        "handwritten_cpu_s": spread(cpu_theirs),
        "cpu_ratio": spread(cpu_ratios),
        "per_pair": [dict(zip(("edgeopt_s", "handwritten_s", "edgeopt_cpu_s", "handwritten_cpu_s",
                               "others_cpu_share"), row, strict=True))
                     for row in zip(ours, theirs, cpu_ours, cpu_theirs, busy, strict=True)],
    }
    print(f"edgeopt compress: median {figures['edgeopt_s']['median']:.1f} s "
          f"(range {min(ours):.1f}-{max(ours):.1f}); hand-written: median "
          f"{figures['handwritten_s']['median']:.1f} s (range {min(theirs):.1f}-{max(theirs):.1f}); "
          f"ratio median {figures['ratio']['median']:.3f} (range {min(ratios):.3f}-{max(ratios):.3f}); "
          f"CPU time ratio median {figures['cpu_ratio']['median']:.3f} "
          f"(range {min(cpu_ratios):.3f}-{max(cpu_ratios):.3f}) on {figures['machine']}; "
          f"other processes used {100 * min(busy):.0f}-{100 * max(busy):.0f} % of the CPUs")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
