"""The places a model can be benchmarked: one runner per kind of target, in one plain dict.

Contract: :data:`RUNNERS` maps a target kind to its runner, a module (or any object) with

* ``kind``: its key here; ``prefix``: how its targets start (``local``, ``ssh://``, ``qemu:``...);
* ``provenance``: what its numbers are (:class:`~edgeopt.types.Provenance`);
* ``parallel``: whether its rows may run at the same time as others (each target's rows still run
  one after another);
* ``forms``: the targets it accepts, for help and messages (concrete names, or a template with ``[``);
* ``parse(text) -> Target``: validate a target that starts with its prefix, InputError otherwise;
* ``run(model_path, target, spec, threads) -> LatencyEntry``: one measurement. Bad input raises
  InputError, an unusable target EnvironmentProblem, a crash or timeout
  :class:`~edgeopt.bench.local.MeasurementFailed` / ``MeasurementTimeout``;
* optionally ``start()``: get ready for the next measurement ahead of it (``local`` starts its child
  process), called by :func:`edgeopt.bench.start`.

Adding a kind of target is one module and one line below; parsing, dispatch, the parallel plan, the
CLI help and the error messages all read this dict. No TensorFlow.
"""

from __future__ import annotations

import difflib
from typing import Protocol

from edgeopt.bench import estimate, local, qemu, ssh
from edgeopt.bench.target import RunSettings, Target
from edgeopt.errors import InputError
from edgeopt.types import LatencyEntry, Provenance


class Runner(Protocol):
    """What every entry of :data:`RUNNERS` provides (see the module docstring)."""

    kind: str
    prefix: str
    provenance: Provenance
    parallel: bool
    forms: tuple[str, ...]

    def parse(self, text: str) -> Target: ...

    def run(self, model_path: str, target: Target, spec: RunSettings, threads: int) -> LatencyEntry: ...


RUNNERS: dict[str, Runner] = {
    "local": local,
    "ssh": ssh,
    "qemu": qemu,
    "estimate": estimate,
}


def runner_for(target: Target) -> Runner:
    """The runner that parsed ``target``."""
    return RUNNERS[target.kind]


def parse_target(text: str) -> Target:
    """Parse a target string with the runner whose prefix it starts with (the longest such prefix).

    Raises:
        InputError: no runner claims it (with a "did you mean" and the accepted forms), or the
            runner that claims it refuses it (naming what it accepts).
    """
    name = str(text).strip()
    claiming = [r for r in RUNNERS.values() if name.startswith(r.prefix)]
    if claiming:
        return max(claiming, key=lambda r: len(r.prefix)).parse(name)
    names = [form for form in target_forms() if "[" not in form]
    guess = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    raise InputError(f"unknown target {name!r}{hint}: use {targets_help(', ')}")


def target_forms() -> list[str]:
    """Every accepted target form, runner by runner (``local``, ``ssh://[user@]host[:port]``,
    ``qemu:cortex-a53``, ...): for help texts, messages and renderers."""
    return [form for runner in RUNNERS.values() for form in runner.forms]


def target_kinds() -> dict[str, Provenance]:
    """Each kind of target and the provenance of its numbers (``{"local": "measured", ...}``)."""
    return {kind: runner.provenance for kind, runner in RUNNERS.items()}


def targets_help(separator: str = " | ") -> str:
    """The accepted forms in one line, choices after a shared prefix folded:
    ``local | ssh://[user@]host[:port] | qemu:cortex-a53|cortex-a72|cortex-a76 | ...``."""
    parts = []
    for runner in RUNNERS.values():
        forms = list(runner.forms)
        if len(forms) > 1 and all(f.startswith(runner.prefix) for f in forms):
            parts.append(runner.prefix + "|".join(f[len(runner.prefix):] for f in forms))
        else:
            parts += forms
    return separator.join(parts)


def provenance_help() -> str:
    """Which targets give which provenance: ``measured (local, ssh://), emulated (qemu:), ...``."""
    by_provenance: dict[str, list[str]] = {}
    for runner in RUNNERS.values():
        by_provenance.setdefault(str(runner.provenance), []).append(runner.prefix)
    return ", ".join(f"{what} ({', '.join(prefixes)})" for what, prefixes in by_provenance.items())


def parallel_prefixes() -> list[str]:
    """Prefixes of the targets whose rows run in parallel with the others."""
    return [runner.prefix for runner in RUNNERS.values() if runner.parallel]
