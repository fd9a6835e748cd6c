#!/usr/bin/env bash
# Install the system tools the tests need (openssh-server, qemu-user-static; chromium for the HTML
# report browser test), idempotently.
# Skips quietly when not root or when apt-get fails (no network): the tests then skip with the reason.
# Other helpers append their packages to PACKAGES.
set -u
PACKAGES=(openssh-server qemu-user-static chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
{
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
} >/dev/null 2>&1 || echo "install_test_tools: could not install ${missing[*]}; device tests will skip" >&2
exit 0
