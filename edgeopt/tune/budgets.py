"""Budgets and objectives of a search, and how one trial's report is judged against them.

Budgets are a recipe's (:class:`edgeopt.budgets.Budgets`): ``--budget NAME=VALUE`` flags, parsed once
into that model, or the recipe's ``budgets:`` section when none is given. Each trial's candidate is
judged by :func:`edgeopt.budgets.judge`, the judge ``edgeopt check`` and ``compress`` use, so a trial
tune calls feasible passes ``check``'s budgets with the same figures:

* ``max_accuracy_drop``: the primary metric's drop against the reference (``trained_float32``, or
  ``original`` for the user's saved model; a fraction for
  accuracy, 0.005 = 0.5 point; for regression the MAE increase, in the metric's unit);
* ``max_error_increase``: regression, the MAE's increase as a fraction of the reference's (when
  given, it judges regression in place of ``max_accuracy_drop``);
* ``max_size_kb`` / ``max_gzip_kb``: the ``.tflite`` on disk / after gzip -9, KB = 1024 bytes;
* ``max_latency_ms=VALUE@TARGET``: p50 on a benchmark target of the recipe (default: its first), at
  the recipe's first thread count; ``@TARGET#Nt`` at its further thread count N (the keys of
  :class:`~edgeopt.types.LatencyKey`, as in a recipe's ``max_latency_ms``).

The size budgets are judged as soon as the ``.tflite`` exists: a trial that misses one skips its
benchmark (its accuracy is still measured). Objectives: ``size`` (gzip bytes), ``latency`` (p50 on
the first latency budget's target and thread count, else the recipe's first target at its first
thread count), ``accuracy`` (the drop), or ``pareto`` (all three).

A trial is judged on typed :class:`~edgeopt.budgets.Figures` (:func:`trial_figures`, read from its
report as ``check`` reads them, every thread count keyed by (target, threads)); what a study stores
with the trial is their JSON (:func:`figures_of`), read back by :meth:`Figures.from_json
<edgeopt.budgets.Figures.from_json>` only when a stored trial is judged again. No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from edgeopt.budgets import NAMES, SIZES, Budgets, Figures, Limit, Verdict
from edgeopt.budgets import judge as judge_figures
from edgeopt.errors import InputError
from edgeopt.report.cells import KB, fmt_time  # KB = 1024 bytes, as budgets.max_size_kb and the reports
from edgeopt.types import HIGHER_IS_BETTER, LatencyKey, Report, Variant, base_metric, finite
from edgeopt.validation import describe

OBJECTIVES = ("size", "latency", "accuracy", "pareto")
EARLY = SIZES  # judged right after conversion
MAY_BE_ZERO = ("max_accuracy_drop", "max_error_increase")  # the others must be > 0


def parse_budget(text: str, targets: list[str], threads: Sequence[int] | None = None) -> Limit:
    """``NAME=VALUE`` or ``max_latency_ms=VALUE@TARGET`` (``@TARGET#Nt`` at N threads), checked
    against the recipe's targets (and thread counts, when given)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep:
        raise InputError(f"--budget {text!r}: expected NAME=VALUE, e.g. --budget max_gzip_kb=12")
    if name not in NAMES:
        raise InputError(f"--budget {text!r}: unknown budget '{name}'; known: {', '.join(NAMES)}")
    raw, _, target = raw.partition("@")
    try:
        limit = float(raw)
    except ValueError:
        raise InputError(f"--budget {text!r}: '{raw}' is not a number") from None
    if not (limit >= 0 and limit < float("inf")) or (limit == 0 and name not in MAY_BE_ZERO):
        raise InputError(f"--budget {text!r}: the limit must be a finite number > 0")
    if name != "max_latency_ms":
        if target:
            raise InputError(f"--budget {text!r}: only max_latency_ms takes @TARGET")
        return Limit(name, limit)
    try:
        key = LatencyKey.parse(target) if target else LatencyKey(targets[0])
    except ValueError as exc:
        raise InputError(f"--budget {text!r}: {exc}") from None
    _check_key(key, targets, threads, f"--budget {text!r}")
    return Limit(name, limit, key)


def _check_key(key: LatencyKey, targets: list[str], threads: Sequence[int] | None, where: str,
               what: str = "target") -> None:
    """Refuse a latency key no trial measures: a target the recipe does not benchmark, or (with the
    recipe's ``benchmark.threads``) a further thread count it does not run."""
    if key.target not in targets:
        raise InputError(
            f"{where}: {what} '{key.target}' is not in the recipe's benchmark.targets "
            f"({', '.join(targets)}); add it there or budget one of those"
        )
    if threads and key.threads is not None and key.threads not in list(threads)[1:]:
        raise InputError(
            f"{where}: '{key}' is the p50 at {key.threads} threads, which the recipe's benchmark.threads "
            f"({', '.join(map(str, threads))}) does not measure as a further thread count; the first, "
            f"{threads[0]}, is spelled '{key.target}'"
        )


def parse_budgets(texts: Iterable[str], targets: list[str], threads: Sequence[int] | None = None) -> Budgets:
    """``--budget`` flags as one :class:`~edgeopt.budgets.Budgets`, the model a recipe's section is,
    its latency budgets keyed by the typed keys :func:`parse_budget` made (never re-spelled)."""
    fields: dict[str, Any] = {}
    for text in texts:
        limit = parse_budget(text, targets, threads)
        if limit.name == "max_latency_ms":
            latency: dict[LatencyKey, float] = fields.setdefault("max_latency_ms", {})
            if limit.target in latency:
                raise InputError(f"--budget {text!r}: max_latency_ms@{limit.target} is given twice")
            latency[limit.target] = limit.limit
        elif limit.name in fields:
            raise InputError(f"--budget {text!r}: {limit.name} is given twice")
        else:
            fields[limit.name] = limit.limit
    try:
        return Budgets.model_validate(fields)
    except ValidationError as exc:  # parse_budget checked every limit: kept as a guard
        raise InputError(f"--budget: {describe(exc)}") from None


def check_budgets(budgets: Budgets, targets: list[str], candidates: list[str], where: str,
                  threads: Sequence[int] | None = None) -> None:
    """Refuse budgets a search could not judge: a latency target the recipe does not benchmark (or,
    with its ``benchmark.threads``, a thread count it does not run), or ``variants`` that leave out
    a format the search picks its candidate from."""
    for key in budgets.max_latency_ms or {}:
        _check_key(key, targets, threads, where, "max_latency_ms target")
    left_out = [fmt for fmt in candidates if not budgets.covers(fmt)]
    if left_out:
        raise InputError(
            f"{where}: variants lists {', '.join(budgets.variants or [])} but tune's candidate can be "
            f"{', '.join(left_out)}: add it to budgets.variants, or drop variants"
        )


@dataclass(frozen=True)
class Goal:
    """What a search minimises and the budgets it must meet."""

    objective: str
    spec: Budgets
    latency: LatencyKey  # the latency objective's entry: a target and its thread count
    extra: dict = field(default_factory=dict)

    @property
    def latency_target(self) -> str:
        """:attr:`latency` as report.json and a trial's stored figures spell it (``local``, ``local#2t``)."""
        return str(self.latency)

    @property
    def budgets(self) -> tuple[Limit, ...]:
        """Every budget given, labelled as ``--budget`` spells it."""
        return self.spec.limits()

    def limits_for(self, figures: TrialFigures) -> tuple[Limit, ...]:
        """The budgets that judge a trial with these figures (by its metric's direction)."""
        return self.spec.limits(typed(figures).higher_is_better)

    def verdicts(self, figures: TrialFigures) -> tuple[Verdict, ...]:
        """A trial's figures judged by :func:`edgeopt.budgets.judge`, as check and compress judge them."""
        return judge_figures(self.spec, typed(figures))

    @property
    def names(self) -> list[str]:
        """Objective names, each minimised."""
        if self.objective == "pareto":
            return ["gzip_kb", "latency_ms", "error"]
        return {"size": ["gzip_kb"], "latency": ["latency_ms"], "accuracy": ["error"]}[self.objective]

    def to_json(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "minimise": self.names,
            "latency_target": self.latency_target,
            "budgets": [b.label for b in self.budgets],
        }

    def early_stop(self, gzip_bytes: int, size_bytes: int) -> str | None:
        """The reason to skip a trial's benchmark when its ``.tflite`` already misses a size budget."""
        verdicts = judge_figures(self.spec, Figures(size_bytes=size_bytes, gzip_bytes=gzip_bytes))
        missed = [v for v in verdicts if v.name in EARLY and not v.ok]
        if not missed:
            return None
        return "not benchmarked: " + "; ".join(f"{v.measured:.2f} KB > {v.label}" for v in missed)

    def objective_values(self, figures: TrialFigures) -> list[float | None]:
        figures = typed(figures)
        return [_objective(name, figures, self.latency) for name in self.names]


def make_goal(objective: str, budgets: Budgets | None, targets: list[str]) -> Goal:
    if objective not in OBJECTIVES:
        raise InputError(f"--objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    budgets = budgets or Budgets()
    latency = next(iter(budgets.max_latency_ms or {}), LatencyKey(targets[0]))
    return Goal(objective, budgets, latency)


# A trial's figures: typed, or as a study stores them (JSON, :func:`figures_of`).
TrialFigures = Figures | Mapping[str, Any]


def typed(figures: TrialFigures) -> Figures:
    """``figures`` typed: as given, or read from a stored trial's JSON (the study's boundary)."""
    return figures if isinstance(figures, Figures) else Figures.from_json(figures)


def _objective(name: str, figures: Figures, latency: LatencyKey) -> float | None:
    if name == "gzip_kb":
        return None if figures.gzip_bytes is None else figures.gzip_bytes / KB
    if name == "latency_ms":
        return figures.latency_ms.get(latency)
    return error_of(figures)


def error_of(figures: TrialFigures) -> float | None:
    """The candidate's own metric, lower is better: 1 - accuracy, or the MAE itself. The objective
    ``accuracy`` minimises this rather than the drop against the reference, so that trials that
    train their own base (and so have their own reference) are ranked by what they ship; with one
    shared reference the two orders are the same."""
    figures = typed(figures)
    value, metric = finite(figures.value), base_metric(str(figures.metric))
    if value is None:
        return None
    if not HIGHER_IS_BETTER.get(metric, True):
        return float(value)
    return 1.0 - float(value) if metric in ("accuracy", "top_k_accuracy") else -float(value)


def candidate(report: Report, fmt: str) -> Variant | None:
    return report.variant(fmt)


def trial_figures(report: Report, fmt: str) -> Figures:
    """What a trial is judged on: its candidate export's figures, read from its report as ``check``
    and ``compress`` read them (:meth:`Figures.of <edgeopt.budgets.Figures.of>`), p50s keyed by
    (target, threads)."""
    variant = report.variant(fmt)
    if variant is None:
        return Figures(variant=fmt, metric=report.primary_metric())
    return Figures.of(report, variant)


def figures_of(report: Report, fmt: str) -> dict[str, Any]:
    """A trial's figures as a study stores them (JSON): its candidate export's sizes, primary metric,
    drop against the reference, and p50 per target and thread count, keyed as report.json spells
    them (``local``, ``local#4t``; measured locally through LiteRT, as the report says)."""
    variant, reference = report.variant(fmt), report.reference
    metric_name = report.primary_metric()
    out: dict[str, Any] = {"format": fmt, "metric": metric_name}
    if variant is None:
        return out
    out["size_bytes"], out["gzip_bytes"] = variant.size_bytes, variant.gzip_bytes
    mine = variant.metric(metric_name)
    out["value"] = mine.number if mine is not None else None
    ref = reference.metric(metric_name) if reference is not None else None
    out["reference"] = ref.number if ref is not None else None
    out["drop"] = mine.drop(ref) if mine is not None and ref is not None else None
    out["latency_ms"] = {  # every thread count, keyed as report.json spells it
        str(key): ms for key, ms in sorted(trial_figures(report, fmt).latency_ms.items())
    }
    return out


def drop_in_points(metric: str | None) -> bool:
    """Drops of an accuracy are shown in points (x 100, "pt") in tune's text, tables and plots; an
    MAE's drop in the metric's own unit."""
    return base_metric(str(metric)) in ("accuracy", "top_k_accuracy")


def budget_label(budget: Limit | Verdict, points: bool) -> str:
    """A budget as tune shows it: its ``--budget`` spelling, and an accuracy-drop budget also in the
    unit its drops are shown in when that is points: ``max_accuracy_drop=0.005 (0.50 pt)``."""
    if points and budget.name == "max_accuracy_drop":
        return f"{budget.label} ({budget.limit * 100:.2f} pt)"
    return budget.label


def judge(goal: Goal, figures: TrialFigures) -> tuple[bool, list[str], dict[str, float]]:
    """(feasible, reasons for each missed or unmeasured budget, budget label -> violation), from
    :func:`edgeopt.budgets.judge`'s verdicts."""
    figures = typed(figures)
    reasons, violations = [], {}
    for verdict in goal.verdicts(figures):
        if verdict.measured is None:
            reasons.append(f"{verdict.label}: not measured")
            continue
        violations[verdict.label] = verdict.violation
        if not verdict.ok:
            points = drop_in_points(figures.metric)
            if points and verdict.name == "max_accuracy_drop":  # drops in points, as everywhere in tune
                measured = f"a drop of {verdict.measured * 100:.2f} pt"
            elif verdict.name == "max_latency_ms":  # as the reports and check show a latency
                measured = fmt_time(verdict.measured)
            else:
                measured = f"{verdict.measured:.4g}"
            reasons.append(f"{budget_label(verdict, points)} missed: {measured}")
    return not reasons, reasons, violations
