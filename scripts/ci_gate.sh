#!/usr/bin/env bash
# The CI gate on the zoo: for every models/<name>/ with a baseline.json, run a fast variant of its
# recipe (the --set overrides in models/<name>/ci.args, one word per line) and `edgeopt check` the
# report against the committed baseline. Exit 1 on any regression.
#
#   scripts/ci_gate.sh                    check every zoo model against its baseline
#   scripts/ci_gate.sh --update-baseline  (re)write models/<name>/baseline.json from a fresh run,
#                                         for review in a commit: this is how baselines are produced
# Outputs go to runs/ci/<name>/ (report.json, report.md, report.html, junit.xml).
# Tolerances: models/<name>/tolerances.yaml, measured by scripts/calibrate_gate.py over seeds and
# TensorFlow kernel settings (ONEDNN_MAX_CPU_ISA, TF_ENABLE_ONEDNN_OPTS), so the gate holds on CPUs
# other than the one the baseline was made on; models/ci-tolerances.yaml where there is none.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
edgeopt=.venv/bin/edgeopt
export TF_CPP_MIN_LOG_LEVEL=3  # TensorFlow C++ log noise stays out of CI logs
update=()
[ "${1:-}" = "--update-baseline" ] && update=(--update-baseline)
status=0
for dir in models/*/; do
  name=$(basename "$dir")
  [ -f "$dir/recipe.yaml" ] || continue
  [ -f "$dir/baseline.json" ] || [ ${#update[@]} -gt 0 ] || continue
  mapfile -t fast < <(grep -v '^\s*$' "$dir/ci.args" 2>/dev/null || true)
  out="runs/ci/$name"
  echo "== $name: compress (fast variant) and check against $dir/baseline.json" >&2
  "$edgeopt" compress "$dir/recipe.yaml" --out "$out" --overwrite --quiet "${fast[@]}" >/dev/null || status=1
  # Tolerances measured by scripts/calibrate_gate.py (seeds x kernel settings), else the shared ones.
  tolerances=models/ci-tolerances.yaml
  [ -f "$dir/tolerances.yaml" ] && tolerances="$dir/tolerances.yaml"
  "$edgeopt" check "$out/report.json" --baseline "$dir/baseline.json" --junit "$out/junit.xml" \
    --markdown "$out/check.md" --tolerances "$tolerances" "${update[@]}" || status=1
done
exit $status
