#!/usr/bin/env bash
# The README's second command: set up on a fresh machine, lint, then run the whole test suite.
# Device tests need sshd and qemu-user-static: scripts/install_test_tools.sh installs them with
# apt-get where it can (root), and the tests skip with the reason where they are missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
if [ -f scripts/install_test_tools.sh ]; then bash scripts/install_test_tools.sh; fi
.venv/bin/ruff check edgeopt tests scripts
exec .venv/bin/python -m pytest "$@"
