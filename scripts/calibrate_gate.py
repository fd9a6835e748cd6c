"""Calibrate the zoo gate: measure how far each fast variant's figures move, and set tolerances from it.

Training results repeat on one machine but not across CPUs: TensorFlow picks other kernels with
AVX2, AVX-512 or VNNI, and with oneDNN on or off. This script runs every zoo model's fast variant
(``models/<name>/ci.args``) under several kernel settings, which stand in for other machines, and
several seeds, and then:

* writes ``models/<name>/baseline.json`` from the default-kernel, seed-0 run (the run CI repeats);
* writes ``models/<name>/tolerances.yaml``: for every gated figure, the largest deviation from
  that baseline over all runs, times a safety margin, with a floor (a single test sample for
  accuracy); latency settings come from ``models/ci-tolerances.yaml``;
* writes ``models/<name>/spread.json``: every run's figures, for docs/check.md.

    .venv/bin/python scripts/calibrate_gate.py [--models digits_cnn ...] [--seeds 0 1 2]
        [--settings default avx2 onednn_off avx2_onednn_off] [--out runs/calibrate] [--dry-run]

``--dry-run`` prints the spread table without writing anything under models/; ``--table`` prints
the Markdown spread table of docs/check.md from the committed spread.json files, running nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EDGEOPT = ROOT / ".venv" / "bin" / "edgeopt"
SETTINGS = {
    "default": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "onednn_off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "avx2_onednn_off": {"ONEDNN_MAX_CPU_ISA": "AVX2", "TF_ENABLE_ONEDNN_OPTS": "0"},
}
MARGIN = 1.5  # tolerance = margin x the largest deviation seen
FLOORS = {"accuracy": 0.01, "mae": 0.25, "gzip_rel": 0.02, "size_rel": 0.005, "sparsity_abs": 0.005}


def run(model: str, setting: str, seed: int, out: Path) -> dict:
    """One fast-variant compress; returns its report."""
    args = [a for a in (ROOT / "models" / model / "ci.args").read_text().split("\n") if a.strip()]
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")}
    env.update(SETTINGS[setting], TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [str(EDGEOPT), "compress", str(ROOT / "models" / model / "recipe.yaml"), "--out", str(out),
           "--overwrite", "--quiet", *args, "--set", f"seed={seed}"]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"{model} {setting} seed {seed}: edgeopt exited {done.returncode}: {done.stderr[-500:]}")
    report = json.loads((out / "report.json").read_text())
    print(f"  {model:14s} {setting:16s} seed {seed}: {time.perf_counter() - started:5.1f} s", flush=True)
    return report


def figures(report: dict) -> dict[str, dict[str, float]]:
    """Per variant: each metric, size, gzip size and sparsity."""
    out = {}
    for v in report["variants"]:
        if v.get("status") != "ok":
            continue
        row = {name: m["value"] for name, m in (v.get("metrics") or {}).items()}
        for key in ("size_bytes", "gzip_bytes", "sparsity"):
            if v.get(key) is not None and v.get("format") != "keras":
                row[key] = v[key]
        out[v["name"]] = row
    return out


def tolerances(base: dict, runs: list[dict], latency: dict) -> dict:
    """Largest deviation from the baseline over all runs, times MARGIN, floored."""
    metric_dev: dict[str, float] = {}
    size_dev = gzip_dev = sparsity_dev = 0.0
    for other in runs:
        for variant, row in base.items():
            now = other.get(variant, {})
            for key, value in row.items():
                if key not in now:
                    continue
                if key == "size_bytes":
                    size_dev = max(size_dev, abs(now[key] - value) / value)
                elif key == "gzip_bytes":
                    gzip_dev = max(gzip_dev, abs(now[key] - value) / value)
                elif key == "sparsity":
                    sparsity_dev = max(sparsity_dev, abs(now[key] - value))
                else:
                    metric_dev[key] = max(metric_dev.get(key, 0.0), abs(now[key] - value))
    return {
        "metric_abs": {k: round(max(FLOORS.get(k, 0.0), MARGIN * d), 4) for k, d in metric_dev.items()},
        "size_rel": round(max(FLOORS["size_rel"], MARGIN * size_dev), 4),
        "gzip_rel": round(max(FLOORS["gzip_rel"], MARGIN * gzip_dev), 4),
        "sparsity_abs": round(max(FLOORS["sparsity_abs"], MARGIN * sparsity_dev), 4),
        **latency,
    }


def markdown_table(models: list[str]) -> str:
    """Per model, variant and figure: baseline, min and max over the runs, and the tolerance."""
    lines = ["| model | variant | figure | baseline | min | max | runs | tolerance |",
             "|---|---|---|---|---|---|---|---|"]
    for model in models:
        path = ROOT / "models" / model / "spread.json"
        if not path.is_file():
            continue
        spread = json.loads(path.read_text())
        runs, tol = spread["runs"], spread["tolerances"]
        base = runs["default seed 0"]
        for variant, row in base.items():
            for key, value in row.items():
                values = [r[variant][key] for r in runs.values() if key in r.get(variant, {})]
                if key in tol.get("metric_abs", {}):
                    allowed = f"±{tol['metric_abs'][key]:g}"
                elif key == "size_bytes":
                    allowed = f"±{100 * tol['size_rel']:g}%"
                elif key == "gzip_bytes":
                    allowed = f"±{100 * tol['gzip_rel']:g}%"
                else:
                    allowed = f"±{tol['sparsity_abs']:g}"
                lines.append(f"| {model} | {variant} | {key} | {value:.4g} | {min(values):.4g} | "
                             f"{max(values):.4g} | {len(values)} | {allowed} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    zoo = sorted(p.parent.name for p in (ROOT / "models").glob("*/ci.args"))
    parser.add_argument("--models", nargs="+", default=zoo)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "calibrate")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--table", action="store_true")
    ns = parser.parse_args()
    if ns.table:
        print(markdown_table(ns.models))
        return
    shared = yaml.safe_load((ROOT / "models" / "ci-tolerances.yaml").read_text()) or {}
    latency = {k: v for k, v in shared.items() if k.startswith("latency")}
    for model in ns.models:
        print(f"{model}:", flush=True)
        reports = {(s, seed): run(model, s, seed, ns.out / model / f"{s}-seed{seed}")
                   for s in ns.settings for seed in ns.seeds}
        base_key = ("default", 0)
        base = figures(reports[base_key])
        rows = {f"{s} seed {seed}": figures(r) for (s, seed), r in reports.items()}
        tol = tolerances(base, list(rows.values()), latency)
        spread = {"model": model, "ci_args": (ROOT / "models" / model / "ci.args").read_text().split(),
                  "baseline_run": "default seed 0", "margin": MARGIN, "floors": FLOORS,
                  "environment": reports[base_key]["environment"], "runs": rows, "tolerances": tol}
        for variant, row in base.items():
            for key in row:
                values = [r[variant][key] for r in rows.values() if key in r.get(variant, {})]
                print(f"    {variant:16s} {key:11s} min {min(values):.4g}  max {max(values):.4g}  "
                      f"baseline {row[key]:.4g}")
        print(f"    tolerances: {tol}", flush=True)
        if ns.dry_run:
            continue
        folder = ROOT / "models" / model
        (folder / "spread.json").write_text(json.dumps(spread, indent=1) + "\n")
        header = (f"# Written by scripts/calibrate_gate.py from {len(rows)} runs of the fast variant\n"
                  f"# (kernel settings {', '.join(ns.settings)} x seeds {' '.join(map(str, ns.seeds))}):\n"
                  f"# {MARGIN} x the largest deviation from the baseline run, with floors. Raw figures\n"
                  "# in spread.json; the table in docs/check.md.\n")
        (folder / "tolerances.yaml").write_text(header + yaml.safe_dump(tol, sort_keys=False))
        check = subprocess.run([str(EDGEOPT), "check", str(ns.out / model / "default-seed0" / "report.json"),
                                "--baseline", str(folder / "baseline.json"), "--update-baseline",
                                "--tolerances", str(folder / "tolerances.yaml")],
                               capture_output=True, text=True)
        print(f"    baseline: {check.stderr.strip().splitlines()[-1]}", flush=True)


if __name__ == "__main__":
    main()
