"""Budgets: the limits a compressed variant must meet, and the one judge of a variant's figures.

:class:`Budgets` is a recipe's ``budgets:`` section (also what ``edgeopt tune --budget NAME=VALUE``
is parsed into); :func:`judge` decides, budget by budget, whether one variant's :class:`Figures` meet
them. ``edgeopt check`` and ``compress`` (:mod:`edgeopt.regress`), the quantization repair, and
``edgeopt tune`` (its feasibility, constraints and early stop, :mod:`edgeopt.tune.budgets`) all call
it, so they cannot disagree. Sizes are in KB = 1024 bytes, as every report shows them. No TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator

from edgeopt.report.cells import KB  # 1024 bytes, as the reports show sizes
from edgeopt.strict import Strict
from edgeopt.types import HIGHER_IS_BETTER, LatencyKey, Report, Variant, base_metric, finite

# Every budget, in the order they are judged and listed (``variants`` says which variants, not a limit).
NAMES = ("max_accuracy_drop", "max_error_increase", "max_size_kb", "max_gzip_kb", "max_latency_ms")
SIZES = ("max_size_kb", "max_gzip_kb")  # measurable as soon as the .tflite exists
SLACK = 1e-12  # a figure exactly at its limit meets it despite float rounding


def _latency_key(value: Any) -> LatencyKey:
    """A ``max_latency_ms`` key as written (``local``, ``local#2t``), or already typed, as a key."""
    if isinstance(value, LatencyKey):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a latency key is a target (or TARGET#Nt), got {value!r}")
    return LatencyKey.parse(value)  # a benchmark target, or TARGET#Nt for a further thread count


# A budget's latency key: validated once from its recipe/report.json spelling, written back the same.
BudgetKey = Annotated[LatencyKey, PlainValidator(_latency_key), PlainSerializer(str, return_type=str),
                      WithJsonSchema({"type": "string"})]


class Budgets(Strict):
    """Limits the compressed variants must meet; `edgeopt check` fails (exit 1) when one is missed."""

    max_size_kb: float | None = Field(None, gt=0, description="size on disk, KB = 1024 bytes")
    max_gzip_kb: float | None = Field(None, gt=0, description="size after gzip -9, KB = 1024 bytes")
    max_accuracy_drop: float | None = Field(
        None, ge=0, description="accuracy drop vs the reference (fraction, 0.01 = 1 point); for regression, "
        "the MAE increase in the label's units unless max_error_increase is given"
    )
    max_error_increase: float | None = Field(
        None, ge=0, description="regression: the MAE's increase vs the reference as a fraction of the "
        "reference's MAE (0.05 = 5 %); when given, it judges regression and max_accuracy_drop classification"
    )
    max_latency_ms: dict[BudgetKey, float] | None = Field(  # keys typed here, once; written as spelled
        None, description="target -> p50 milliseconds at the first thread count; TARGET#Nt -> at N threads"
    )
    variants: list[str] | None = Field(None, description="variants budgeted (default: every export)")

    @model_validator(mode="after")
    def _positive_latency(self) -> Budgets:
        for key, ms in (self.max_latency_ms or {}).items():
            if not ms > 0:
                raise ValueError(f"max_latency_ms.{key} must be > 0, got {ms}")
        return self

    def limits(self, higher_is_better: bool | None = None) -> tuple[Limit, ...]:
        """Every budget given, in :data:`NAMES` order (latency per typed key). With the task metric's
        direction, only those that judge it: for a lower-is-better metric (MAE) ``max_error_increase``
        when given, else ``max_accuracy_drop``; ``max_error_increase`` never judges accuracy."""
        found = []
        for name in NAMES[:-1]:
            limit = getattr(self, name)
            if limit is None:
                continue
            relative = self.max_error_increase is not None
            if name == "max_accuracy_drop" and higher_is_better is False and relative:
                continue
            if name == "max_error_increase" and higher_is_better is True:
                continue
            found.append(Limit(name, float(limit)))
        for key, ms in (self.max_latency_ms or {}).items():  # typed when validated
            found.append(Limit("max_latency_ms", float(ms), key))
        return tuple(found)

    def covers(self, variant: str) -> bool:
        """Whether ``variant`` is budgeted (``variants`` lists it, or lists nothing)."""
        return self.variants is None or variant in self.variants

    def allows(self, reference: float, value: float, higher_is_better: bool) -> bool | None:
        """Whether ``value`` of the task metric is within the accuracy budget against ``reference``
        (None: no accuracy budget applies): :func:`judge` on those two figures alone."""
        figures = Figures(value=value, reference=reference, higher_is_better=higher_is_better)
        verdicts = [v for v in judge(self, figures) if v.name in ("max_accuracy_drop", "max_error_increase")]
        return verdicts[0].ok if verdicts else None


@dataclass(frozen=True)
class Limit:
    """One budget: its name, its limit, and for ``max_latency_ms`` its target."""

    name: str
    limit: float
    target: LatencyKey | None = None

    @property
    def label(self) -> str:
        """``max_gzip_kb=12``, ``max_latency_ms=2@local``: the spelling of ``tune --budget``."""
        return f"{self.name}={self.limit:g}" + (f"@{self.target}" if self.target else "")


@dataclass(frozen=True)
class Figures:
    """What one variant measured, as budgets read it (None: not measured, or not a finite number)."""

    size_bytes: float | None = None
    gzip_bytes: float | None = None
    value: float | None = None  # the task metric of the variant
    reference: float | None = None  # the same metric of the reference
    higher_is_better: bool | None = None  # the task metric's direction (None: unknown)
    latency_ms: Mapping[LatencyKey, float] = field(default_factory=dict)  # p50 per target and threads
    variant: str | None = None  # its name, for ``Budgets.variants`` (None: budgeted)
    metric: str | None = None  # the task metric's name (``accuracy``, ``mae``), for showing a drop

    @classmethod
    def of(cls, report: Report, variant: Variant) -> Figures:
        """A variant's figures in its report: its sizes, task metric against the reference's, p50s."""
        name = report.primary_metric()
        mine = variant.metric(name)
        reference = report.reference.metric(name) if report.reference is not None else None
        direction = next((m.higher_is_better for m in (reference, mine) if m is not None), None)
        return cls(
            size_bytes=variant.size_bytes,
            gzip_bytes=variant.gzip_bytes,
            value=mine.value if mine is not None else None,
            reference=reference.value if reference is not None else None,
            higher_is_better=HIGHER_IS_BETTER.get(base_metric(name)) if direction is None else direction,
            latency_ms={key: p50 for key, entry in variant.latency.items()
                        if (p50 := entry.value("p50_ms")) is not None},
            variant=variant.name,
            metric=name,
        )

    @classmethod
    def from_json(cls, figures: Mapping[str, Any]) -> Figures:
        """From ``edgeopt tune``'s stored figures of a trial (:func:`edgeopt.tune.budgets.figures_of`):
        JSON read back from a study, its latencies keyed as report.json spells them (``local``,
        ``local#4t``); a trial being judged is judged on :meth:`of` directly."""
        metric = figures.get("metric")
        return cls(
            size_bytes=figures.get("size_bytes"),
            gzip_bytes=figures.get("gzip_bytes"),
            value=figures.get("value"),
            reference=figures.get("reference"),
            higher_is_better=HIGHER_IS_BETTER.get(base_metric(metric)) if isinstance(metric, str) else None,
            latency_ms=_latency_keys(figures.get("latency_ms") or {}),
            variant=figures.get("format"),
            metric=metric if isinstance(metric, str) else None,
        )


@dataclass(frozen=True)
class Verdict:
    """One budget judged on one variant: ``measured`` in the limit's unit (KB, drop, relative
    increase, ms), None when it was not measured (which fails the budget)."""

    name: str
    limit: float
    measured: float | None
    target: LatencyKey | None = None  # max_latency_ms's

    @property
    def ok(self) -> bool:
        return self.measured is not None and self.measured <= self.limit + SLACK

    @property
    def violation(self) -> float | None:
        """How far past the limit, relative to it (<= 0: met; absolute for a limit of 0); None when
        not measured."""
        if self.measured is None:
            return None
        over = self.measured - self.limit
        relative = over / self.limit if self.limit > 0 else over
        return min(relative, 0.0) if self.ok else relative

    @property
    def label(self) -> str:
        return Limit(self.name, self.limit, self.target).label


def _latency_keys(stored: Mapping[str, float]) -> dict[LatencyKey, float]:
    """Stored p50s (JSON: target -> ms) by typed key; a key no target spells counts as not measured."""
    keys = {}
    for text, ms in stored.items():
        try:
            keys[LatencyKey.parse(text)] = ms
        except ValueError:
            continue
    return keys


def judge(budgets: Budgets, figures: Figures) -> tuple[Verdict, ...]:
    """The verdict of every budget that applies to the variant these figures are of (none when
    ``budgets.variants`` leaves it out), in :meth:`Budgets.limits` order: the one judge of
    ``check``, ``compress`` and ``tune``."""
    if figures.variant is not None and not budgets.covers(figures.variant):
        return ()
    return tuple(Verdict(limit.name, limit.limit, _measure(limit, figures), limit.target)
                 for limit in budgets.limits(figures.higher_is_better))


def _measure(limit: Limit, figures: Figures) -> float | None:
    """The figure ``limit`` is compared with, in its unit."""
    if limit.name == "max_size_kb":
        size = finite(figures.size_bytes)
        return None if size is None else size / KB
    if limit.name == "max_gzip_kb":
        size = finite(figures.gzip_bytes)
        return None if size is None else size / KB
    if limit.name == "max_latency_ms":
        return finite(figures.latency_ms.get(limit.target))
    value, reference = finite(figures.value), finite(figures.reference)
    if value is None or reference is None:
        return None
    if limit.name == "max_error_increase":  # lower is better: the MAE's rise relative to the reference's
        return (value - reference) / reference if reference > 0 else None
    higher = True if figures.higher_is_better is None else figures.higher_is_better
    return reference - value if higher else value - reference
