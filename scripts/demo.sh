#!/usr/bin/env bash
# The README's first command: set up on a fresh machine, compress digits_cnn with its zoo recipe,
# and print the report table. Output goes to runs/digits_cnn (replaced if it exists).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
exec .venv/bin/edgeopt compress models/digits_cnn/recipe.yaml --out runs/digits_cnn --overwrite "$@"
