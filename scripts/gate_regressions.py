"""Show that the calibrated zoo gate still fails real regressions (the table in docs/check.md).

Runs digits_cnn's fast CI variant with one fault at a time and checks each report against the
committed baseline with the calibrated tolerances, twice: the full gate, and the gate with its
recipe comparison switched off (so the figures alone must catch the fault, as they would a bug in
edgeopt's own code that leaves the recipe unchanged).

    .venv/bin/python scripts/gate_regressions.py [--model digits_cnn] [--out runs/gate_regressions]

Faults: the prune stage stops at 30% instead of 80% (sparsity lost); QAT switched off (post-training
quantization instead); the model made 10% bigger (width 1.05); a float fallback in the int8 model.
The last cannot be produced from a recipe (the int8 export allows int8 kernels only), so it is
injected into the no-fault report: the int8 variant's inspection gains a FULLY_CONNECTED op in float.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EDGEOPT = str(ROOT / ".venv" / "bin" / "edgeopt")
FAULTS = {
    "none (control)": [],
    "prune stops at 30% (sparsity lost)": ["--set", "stages.0.target_sparsity=0.3"],
    "QAT switched off (PTQ instead)": ["--set", "stages.1.mode=ptq", "--set", "stages.1.epochs=0"],
    "model 10% bigger (width 1.05)": ["--set", "model_options.width=1.05"],
}
FALLBACK = "float fallback in int8 (injected)"


def check(report: Path, baseline: Path, tolerances: Path) -> dict:
    done = subprocess.run([EDGEOPT, "check", str(report), "--baseline", str(baseline), "--tolerances",
                           str(tolerances), "--json"], capture_output=True, text=True)
    return json.loads(done.stdout)


def failing(result: dict) -> str:
    found = [f"{f['variant']} {f['check']}" for f in result["findings"] if f["failing"]]
    return ", ".join(found[:5]) + (f" (+{len(found) - 5})" if len(found) > 5 else "") or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits_cnn")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gate_regressions")
    ns = parser.parse_args()
    folder = ROOT / "models" / ns.model
    fast = [a for a in (folder / "ci.args").read_text().split("\n") if a.strip()]
    tolerances = folder / "tolerances.yaml"
    no_recipe = Path(tempfile.mkdtemp()) / "tolerances.yaml"
    loaded = yaml.safe_load(tolerances.read_text())
    no_recipe.write_text(yaml.safe_dump({**loaded, "skip": [*loaded.get("skip", []), "recipe"]}))
    reports = {}
    for name, sets in FAULTS.items():
        out = ns.out / name.split(" ")[0].replace("%", "")
        subprocess.run([EDGEOPT, "compress", str(folder / "recipe.yaml"), "--out", str(out), "--overwrite",
                        "--quiet", *fast, *sets], capture_output=True, text=True)
        reports[name] = out / "report.json"
    injected = json.loads(reports["none (control)"].read_text())
    for variant in injected["variants"]:
        if variant["name"] == "int8":
            variant["inspect"]["float_ops"] = [*variant["inspect"]["float_ops"], {"index": 0,
                                                                                  "op": "FULLY_CONNECTED"}]
    reports[FALLBACK] = ns.out / "fallback.json"
    reports[FALLBACK].write_text(json.dumps(injected))
    print("| fault | gate | failing findings | gate without the recipe check | failing findings |")
    print("|---|---|---|---|---|")
    for name, report in reports.items():
        full, figures = check(report, folder / "baseline.json", tolerances), check(report, folder /
                                                                                  "baseline.json", no_recipe)
        verdict = {True: "pass", False: "**FAIL**"}
        print(f"| {name} | {verdict[full['passed']]} | {failing(full)} | {verdict[figures['passed']]} | "
              f"{failing(figures)} |")


if __name__ == "__main__":
    main()
