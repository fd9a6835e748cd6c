#!/usr/bin/env bash
# The README's second command: set up on a fresh machine, lint, run the whole test suite, then the
# zoo regression gate (scripts/ci_gate.sh).
# Device tests need sshd and qemu-user-static: scripts/install_test_tools.sh installs them with
# apt-get where it can (root), and the tests skip with the reason where they are missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
if [ -f scripts/install_test_tools.sh ]; then bash scripts/install_test_tools.sh; fi
.venv/bin/ruff check edgeopt tests scripts
.venv/bin/python -m pytest "$@"
# The zoo gate: a fast variant of every zoo recipe, checked against its committed baseline.
# Skipped when pytest was given a selection (a developer running part of the suite).
if [ $# -eq 0 ]; then bash scripts/ci_gate.sh; fi
