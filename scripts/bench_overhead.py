"""edgeopt's own overhead: `edgeopt compress` on the digits recipe against the same work written by hand.

The hand-written side is scripts/overhead_handwritten.py (tf_keras + TFMOT + LiteRT, no edgeopt):
train with early stopping, prune 30 -> 80 % over 12 epochs, prune-preserving QAT for 5 epochs,
convert float32 and int8, evaluate both on the test split, a 1-second latency loop each. Both run as
fresh processes (imports included), paired and alternating so that a busy machine slows both alike.
Prints the wall times, their medians and spread, the median of the per-pair ratios, and the load
average before each pair (other jobs on a shared VM show up there, not in the ratio's median).

    .venv/bin/python scripts/bench_overhead.py --pairs 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    ours, theirs, loads = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        command = [*EDGEOPT, "--out", str(Path(scratch) / "run")]
        for pair in range(args.pairs):
            loads.append(os.getloadavg()[0])
            first_ours = pair % 2 == 0  # alternate which side goes first
            for side in ((True, False) if first_ours else (False, True)):
                (ours if side else theirs).append(timed(command if side else HANDWRITTEN))
            print(f"pair {pair + 1}: edgeopt {ours[-1]:.1f} s, hand-written {theirs[-1]:.1f} s, "
                  f"ratio {ours[-1] / theirs[-1]:.3f} (load average {loads[-1]:.2f})", flush=True)
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    figures = {
        "machine": f"{cpu()}, {len(os.sched_getaffinity(0))} cores, {platform.machine()}",
        "pairs": args.pairs,
        "load_average_1min": {"min": min(loads), "max": max(loads)},
        "edgeopt_s": {"median": statistics.median(ours), "min": min(ours), "max": max(ours)},
        "handwritten_s": {"median": statistics.median(theirs), "min": min(theirs), "max": max(theirs)},
        "ratio": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
    }
    print(f"edgeopt compress: median {figures['edgeopt_s']['median']:.1f} s "
          f"(range {min(ours):.1f}-{max(ours):.1f}); hand-written: median "
          f"{figures['handwritten_s']['median']:.1f} s (range {min(theirs):.1f}-{max(theirs):.1f}); "
          f"ratio median {figures['ratio']['median']:.3f} (range {min(ratios):.3f}-{max(ratios):.3f}) "
          f"on {figures['machine']}; load average {min(loads):.2f}-{max(loads):.2f} before the pairs")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
