#!/usr/bin/env bash
# Prepare a fresh Raspberry Pi OS (or any Debian-like) board for `edgeopt benchmark --target ssh://HOST`:
# a venv at ~/edgeopt-venv with numpy and a LiteRT runtime (ai-edge-litert; tflite-runtime as the
# fallback on 32-bit boards), which edgeopt's ssh target prefers over the system python3.
#
#   scripts/provision_board.sh [ssh://][user@]host[:port]
#
# Uses the system OpenSSH client like edgeopt does: your ~/.ssh/config, agent and known_hosts apply
# ($EDGEOPT_SSH_CONFIG is passed as -F), BatchMode (no password prompts), host keys checked. Installs
# python3-venv with `sudo -n apt-get` only when venv creation fails and passwordless sudo is available.
# Safe to run again. Exit 0 ready, 2 bad usage, 3 the board could not be prepared (reason printed).
set -euo pipefail

LITERT_VERSION=${EDGEOPT_LITERT_VERSION:-2.3.0}
if [ $# -ne 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: $0 [ssh://][user@]host[:port]" >&2
  exit 2
fi
target=${1#ssh://}
target=${target%/}
port=
if [[ "$target" =~ ^(.*):([0-9]+)$ ]]; then
  target=${BASH_REMATCH[1]}
  port=${BASH_REMATCH[2]}
fi
ssh_args=(-o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3)
[ -n "${EDGEOPT_SSH_CONFIG:-}" ] && ssh_args+=(-F "$EDGEOPT_SSH_CONFIG")
[ -n "$port" ] && ssh_args+=(-p "$port")

remote_script=$(cat <<EOF
set -e
venv="\$HOME/edgeopt-venv"
if ! command -v python3 >/dev/null 2>&1; then
  echo "provision: no python3 on the board: sudo apt-get install -y python3 python3-venv" >&2
  exit 3
fi
if [ ! -x "\$venv/bin/python" ]; then
  if ! python3 -m venv "\$venv" >/dev/null 2>&1; then
    rm -rf "\$venv"
    if sudo -n true 2>/dev/null; then
      sudo -n apt-get update -qq && sudo -n apt-get install -y -qq python3-venv python3-pip >/dev/null
      python3 -m venv "\$venv"
    else
      echo "provision: python3 -m venv failed and sudo needs a password: run 'sudo apt-get install -y python3-venv' on the board" >&2
      exit 3
    fi
  fi
fi
"\$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
if ! "\$venv/bin/python" -m pip install -q --disable-pip-version-check "ai-edge-litert==$LITERT_VERSION" numpy; then
  echo "provision: ai-edge-litert has no wheel for this board (\$(uname -m)); trying tflite-runtime" >&2
  "\$venv/bin/python" -m pip install -q --disable-pip-version-check tflite-runtime numpy || {
    echo "provision: no LiteRT runtime installs on \$(uname -m) with \$(python3 --version)" >&2; exit 3; }
fi
"\$venv/bin/python" - <<'PY'
import platform
try:
    import ai_edge_litert as rt
    name = "ai_edge_litert"
except ImportError:
    import tflite_runtime as rt
    name = "tflite_runtime"
import numpy
model = ""
try:
    model = open("/proc/device-tree/model", "rb").read().decode(errors="replace").strip("\x00 \n")
except OSError:
    pass
print(f"ready: {model or platform.node()} ({platform.machine()}), python {platform.python_version()}, "
      f"{name} {getattr(rt, '__version__', '?')}, numpy {numpy.__version__}")
PY
EOF
)
status=0
ssh "${ssh_args[@]}" "$target" "$remote_script" || status=$?
if [ "$status" -eq 255 ]; then
  echo "provision: cannot connect to $target (unreachable, authentication or host key problem; see above)" >&2
  exit 3
fi
exit "$status"
