"""What machine and which versions a run used, for the report. No TensorFlow import."""

from __future__ import annotations

import os
import platform
import socket
from importlib.metadata import PackageNotFoundError, version

PACKAGES = {
    "tensorflow": "tensorflow",
    "tf_keras": "tf-keras",
    "tfmot": "tensorflow-model-optimization",
    "litert": "ai-edge-litert",
    "numpy": "numpy",
}


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Instruction-set extensions that change which kernels TensorFlow (oneDNN) and LiteRT (XNNPACK) run.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "amx_int8", "asimd", "asimddp", "i8mm")
# Environment variables that change TensorFlow's kernels (and so training results).
KERNEL_SETTINGS = ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")


def cpu_isa() -> list[str]:
    """The kernel-relevant instruction-set extensions this CPU reports (x86 flags, ARM features)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("flags", "features")):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in ISA_FLAGS if flag in present]
    except OSError:
        pass
    return []


def kernel_settings() -> dict[str, str | None]:
    """The environment variables that select TensorFlow's kernels, as this process sees them."""
    return {name: os.environ.get(name) for name in KERNEL_SETTINGS}


def governor() -> str | None:
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") as f:
            return f.read().strip()
    except OSError:
        return None


def package_version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def describe() -> dict:
    """CPU, cores, OS and the versions of every package a figure depends on."""
    info = {
        "cpu": cpu_model(),
        "isa": cpu_isa(),
        "kernel_settings": kernel_settings(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "governor": governor(),
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "edgeopt": package_version("edgeopt"),
    }
    info.update({key: package_version(dist) for key, dist in PACKAGES.items()})
    return info
