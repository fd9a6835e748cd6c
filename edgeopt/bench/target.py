"""What a runner is given: a parsed :class:`Target` and the :class:`RunSettings` it reads. No TensorFlow.

These sit below the runners, and so below :mod:`edgeopt.bench.registry` and :mod:`edgeopt.bench.spec`:
a runner imports them, the registry imports the runners, and :class:`~edgeopt.bench.spec.BenchSpec`
validates its targets with the registry. :class:`RunSettings` is the part of a ``BenchSpec`` a
runner reads (a ``BenchSpec`` is one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from edgeopt.errors import InputError
from edgeopt.types import Provenance


@dataclass(frozen=True)
class Target:
    """A parsed target.

    Attributes:
        kind: the key of its runner in :data:`edgeopt.bench.registry.RUNNERS` (``local``, ``ssh``...).
        detail: what follows the runner's prefix (``pi@board:2222``, ``cortex-a72``, ``pi4``; ``""``).
        name: the whole target as written, stripped: the key of its latency entry in report.json.
        provenance: what kind of number its runner produces.
    """

    kind: str
    detail: str
    name: str
    provenance: Provenance


def choice_target(text: str, kind: str, prefix: str, choices: tuple[str, ...],
                  provenance: Provenance) -> Target:
    """Parse ``prefix + one of choices`` (``qemu:cortex-a72``); InputError listing the choices otherwise."""
    name = text.strip()
    detail = name[len(prefix):] if name.startswith(prefix) else None
    if detail not in choices:
        raise InputError(f"unknown {kind} target {name!r}: use one of "
                         + ", ".join(prefix + choice for choice in choices))
    return Target(kind, detail, name, provenance)


class RunSettings(Protocol):
    """The settings of one measurement, as a runner reads them (:class:`~edgeopt.bench.spec.BenchSpec`)."""

    runs: int
    warmup: int
    min_seconds: float
    xnnpack: bool
    timeout: float
    seed: int
    ssh_config: str | None

    @property
    def inputs_file(self) -> str | None: ...

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> RunSettings: ...
