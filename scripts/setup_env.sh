#!/usr/bin/env bash
# Create .venv when missing and install edgeopt (editable) with its test extras.
# Sourced by demo.sh and test.sh; safe to run again (pip skips what is already installed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
stamp=.venv/.edgeopt-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test,ray]"
  touch "$stamp"
fi
