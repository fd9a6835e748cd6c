#!/usr/bin/env bash
# Build an arm64 (aarch64) Python 3.11 + numpy + ai-edge-litert sysroot for `qemu:` targets and the
# device tests, from the package registries only (Debian arm64 packages + PyPI aarch64 wheels).
#
#   scripts/make_arm_sysroot.sh [DIR]      default: ${EDGEOPT_ARM_SYSROOT:-~/.cache/edgeopt/arm-sysroot}
#
# No root and no binfmt_misc: run it as  qemu-aarch64-static -L DIR DIR/usr/bin/python3.11
# (edgeopt's qemu targets use the per-CPU views DIR/cpus/cortex-XXX, whose proc/cpuinfo names that
# core, because LiteRT crashes reading the host's x86 /proc/cpuinfo). Idempotent: an existing complete
# sysroot (DIR/.complete matching this script's version) is kept. Built in DIR.partial, then moved.
set -euo pipefail

SYSROOT_VERSION=1  # bump when the contents change, so cached sysroots are rebuilt
LITERT_VERSION=2.3.0
NUMPY_VERSION=2.4.6
DEBIAN_MIRROR=${EDGEOPT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SUITE=bookworm
DEBS=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libstdc++6 libgcc-s1 libc6
      zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libuuid1 libsqlite3-0 libncursesw6
      libtinfo6 libreadline8 libcrypt1 libzstd1 media-types)
CPUS=(cortex-a53 cortex-a72 cortex-a76)

dir="${1:-${EDGEOPT_ARM_SYSROOT:-$HOME/.cache/edgeopt/arm-sysroot}}"
dir="$(mkdir -p "$(dirname "$dir")" && cd "$(dirname "$dir")" && pwd)/$(basename "$dir")"
if [ -f "$dir/.complete" ] && [ "$(cat "$dir/.complete")" = "$SYSROOT_VERSION" ]; then
  echo "$dir"
  exit 0
fi
command -v apt-get >/dev/null || { echo "make_arm_sysroot: apt-get is needed (Debian/Ubuntu host)" >&2; exit 3; }
command -v dpkg >/dev/null || { echo "make_arm_sysroot: dpkg is needed" >&2; exit 3; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || { echo "make_arm_sysroot: $keyring missing: apt-get install debian-archive-keyring" >&2; exit 3; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python=${PYTHON:-$( [ -x "$root/.venv/bin/python" ] && echo "$root/.venv/bin/python" || command -v python3)}

work="$dir.partial"
rm -rf "$work"
mkdir -p "$work/.apt/lists/partial" "$work/.apt/archives/partial" "$work/.apt/etc/none"
: > "$work/.apt/status"
echo "deb [arch=arm64 signed-by=$keyring] $DEBIAN_MIRROR $DEBIAN_SUITE main" \
  > "$work/.apt/etc/sources.list"
# A private apt: its own architecture, lists, status file and cache; the host's apt is untouched.
cat > "$work/.apt/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
Dir::State "$work/.apt";
Dir::State::Lists "$work/.apt/lists";
Dir::State::status "$work/.apt/status";
Dir::Cache "$work/.apt";
Dir::Cache::archives "$work/.apt/archives";
Dir::Etc::SourceList "$work/.apt/etc/sources.list";
Dir::Etc::SourceParts "$work/.apt/etc/none";
Dir::Etc::Preferences "$work/.apt/etc/preferences";
Dir::Etc::PreferencesParts "$work/.apt/etc/none";
Acquire::Languages "none";
APT::Sandbox::User "$(id -un)";
EOF
export APT_CONFIG="$work/.apt/apt.conf"
apt-get -qq update >/dev/null
(cd "$work/.apt/archives" && apt-get -qq download "${DEBS[@]/%/:arm64}" >/dev/null)
for deb in "$work"/.apt/archives/*.deb; do dpkg -x "$deb" "$work"; done
unset APT_CONFIG
# Debian's merged /usr: the loader and libraries are found through /lib -> usr/lib.
for link in lib bin sbin; do [ -e "$work/$link" ] || ln -s "usr/$link" "$work/$link"; done
[ -x "$work/usr/bin/python3.11" ] || { echo "make_arm_sysroot: python3.11 missing after unpacking" >&2; exit 3; }

# aarch64 wheels; pip needs the manylinux_2_27..2_36 tags spelled out or it picks old versions.
platforms=()
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done
platforms+=(--platform manylinux2014_aarch64)
if ! "$python" -m pip install -q --disable-pip-version-check --no-warn-script-location --no-compile \
  --target "$work/usr/lib/python3/dist-packages" --only-binary=:all: --implementation cp \
  --python-version 3.11 --abi cp311 --abi abi3 --abi none "${platforms[@]}" \
  "ai-edge-litert==$LITERT_VERSION" "numpy==$NUMPY_VERSION" 2>"$work/.apt/pip.log"; then
  cat "$work/.apt/pip.log" >&2
  exit 3
fi
rm -rf "$work/.apt/archives" "$work/.apt/lists"

# One view per emulated core: symlinks to the shared tree plus that core's /proc/cpuinfo.
cpu_part() { case "$1" in cortex-a53) echo 0xd03 ;; cortex-a72) echo 0xd08 ;; cortex-a76) echo 0xd0b ;; esac; }
cpu_features() {
  case "$1" in
    cortex-a76) echo "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
    *) echo "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" ;;
  esac
}
for cpu in "${CPUS[@]}"; do
  view="$work/cpus/$cpu"
  mkdir -p "$view/proc"
  for entry in "$work"/*; do
    name=$(basename "$entry")
    [ "$name" = cpus ] || ln -s "../../$name" "$view/$name"
  done
  : > "$view/proc/cpuinfo"
  for core in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 3\n\n' \
      "$core" "$(cpu_features "$cpu")" "$(cpu_part "$cpu")" >> "$view/proc/cpuinfo"
  done
done
echo "$SYSROOT_VERSION" > "$work/.complete"
rm -rf "$dir"
mv "$work" "$dir"
echo "$dir"
