"""What to measure and how: :class:`BenchSpec`, the benchmark settings, and :class:`Target`. No TensorFlow.

Contract: a :class:`BenchSpec` holds every benchmark setting (targets, thread counts, runs, warm-up,
minimum time, XNNPACK, timeout, inputs, seed, SSH config), validated once with bounds that refuse a
typo (a billion runs) before anything runs. It is the recipe's ``benchmark:`` section and what
``edgeopt benchmark`` builds from its options, and every runner reads its settings from it; there is
no other form. :func:`make_spec` validates plain data and raises
:class:`~edgeopt.errors.InputError` naming the first bad setting. A :class:`Target` is one parsed
target string, made by its runner's ``parse`` (see :mod:`edgeopt.bench.registry`); it lives, with
what a runner reads of a ``BenchSpec``, in :mod:`edgeopt.bench.target`, below the runners.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, field_validator

from edgeopt.bench.registry import parse_target
from edgeopt.bench.target import Target as Target  # re-exported
from edgeopt.bench.target import choice_target as choice_target  # re-exported
from edgeopt.errors import InputError
from edgeopt.strict import SEED_LIMIT, Strict
from edgeopt.validation import describe

# Far above any real measurement, low enough that a typo (1e9 runs, 1000 threads) is refused at once
# instead of running for ever or asking a runtime for a thousand threads.
MAX_THREADS = 256
MAX_RUNS = 1_000_000
MAX_WARMUP = 100_000
MAX_MIN_SECONDS = 3600.0
MAX_TIMEOUT_S = 24 * 3600.0
RANDOM_INPUTS = "random"
DELEGATE_XNNPACK, DELEGATE_NONE = "xnnpack", "none"


def _known_target(text: str) -> str:
    try:
        return parse_target(text).name
    except InputError as exc:
        raise ValueError(str(exc)) from None


def _no_repeats(values: list) -> list:
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise ValueError(f"{repeated[0]!r} is listed twice")
    return values


ThreadCount = Annotated[int, Field(ge=1, le=MAX_THREADS)]


class BenchSpec(Strict):
    """How to benchmark: where, at which thread counts, for how long, with which inputs."""

    # Strict types: `runs: true` or `threads: "2"` is a mistake, not a 1 or a 2.
    model_config = ConfigDict(strict=True)

    targets: list[Annotated[str, AfterValidator(_known_target)]] = Field(
        default_factory=lambda: ["local"],
        description="where to run: local, ssh://[user@]host[:port], qemu:CPU, estimate:BOARD "
        "(empty: no benchmark)")
    threads: list[ThreadCount] = Field(
        default_factory=lambda: [1], min_length=1,
        description="interpreter thread counts (a single number is a list of one)")
    runs: int = Field(100, ge=1, le=MAX_RUNS, description="at least this many timed invokes")
    warmup: int = Field(10, ge=0, le=MAX_WARMUP, description="at least this many warm-up invokes (and 0.1 s)")
    min_seconds: float = Field(0.5, ge=0, le=MAX_MIN_SECONDS, description="and time for at least this long")
    xnnpack: bool = Field(True, description="keep LiteRT's default XNNPACK delegate (false: builtin kernels)")
    timeout: float = Field(300.0, gt=0, le=MAX_TIMEOUT_S,
                           description="seconds allowed per measurement (and per SSH step)")
    inputs: str = Field(RANDOM_INPUTS, min_length=1,
                        description="'random': seeded values spanning each input's dtype and "
                        "quantization range; or a .npy (one input) / .npz (by input name or order) file, "
                        "first sample used")
    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="seed of the random inputs")
    ssh_config: str | None = Field(None, min_length=1, description="SSH config file passed to ssh -F "
                                   "(default: $EDGEOPT_SSH_CONFIG, else ssh's own)")

    @field_validator("threads", mode="before")
    @classmethod
    def _one_count_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    _targets_once = field_validator("targets")(_no_repeats)
    _threads_once = field_validator("threads")(_no_repeats)

    @property
    def inputs_file(self) -> str | None:
        """The inputs file, or None for seeded random inputs."""
        return None if self.inputs == RANDOM_INPUTS else self.inputs

    @property
    def delegate(self) -> str:
        """The delegate label a latency entry records for these settings."""
        return DELEGATE_XNNPACK if self.xnnpack else DELEGATE_NONE


def make_spec(values: Mapping[str, Any] | None = None, *, names: Mapping[str, str] | None = None
              ) -> BenchSpec:
    """Validate plain settings as a :class:`BenchSpec`.

    Args:
        values: field name -> value; absent fields take their defaults.
        names: how the caller's user spells each field (``{"min_seconds": "--min-seconds"}``), for
            the message; fields not named here are spelt as the field, with list indices.

    Raises:
        InputError: one line naming the first bad setting, what it must be and the value given.
    """
    try:
        return BenchSpec.model_validate(dict(values or {}))
    except ValidationError as exc:
        raise InputError(describe(exc, names=names)) from None


