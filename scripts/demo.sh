#!/usr/bin/env bash
# The README's first command: set up on a fresh machine, compress digits_cnn with its zoo recipe,
# print the report table, then say where the HTML report is. Output goes to runs/digits_cnn
# (replaced if it exists). Extra arguments are passed to `edgeopt compress`, e.g. --set train.epochs=5.
# Exits with edgeopt's exit code (1: the report was written but a verification check failed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out=runs/digits_cnn
bash scripts/setup_env.sh
started="$(mktemp)"
trap 'rm -f "$started"' EXIT
status=0
.venv/bin/edgeopt compress models/digits_cnn/recipe.yaml --out "$out" --overwrite "$@" || status=$?
# Point at the report only if this run wrote it (a failed run leaves an older folder untouched).
if [ -f "$out/report.html" ] && [ "$out/report.html" -nt "$started" ]; then
  echo "HTML report: open $out/report.html (report.json, the .tflite files and edgeopt.log are beside it)" >&2
fi
exit "$status"
