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
* ``max_latency_ms=VALUE@TARGET``: p50 on a benchmark target of the recipe (default: its first).

The size budgets are judged as soon as the ``.tflite`` exists: a trial that misses one skips its
benchmark (its accuracy is still measured). Objectives: ``size`` (gzip bytes), ``latency`` (p50 on
the first latency budget's target, else the recipe's first target), ``accuracy`` (the drop), or
``pareto`` (all three). No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from edgeopt.budgets import NAMES, SIZES, Budgets, Figures, Limit, Verdict
from edgeopt.budgets import judge as judge_figures
from edgeopt.errors import InputError
from edgeopt.report.cells import KB  # 1024 bytes, as budgets.max_size_kb and the reports
from edgeopt.types import HIGHER_IS_BETTER, LatencyKey, Report, Variant, base_metric
from edgeopt.validation import describe

OBJECTIVES = ("size", "latency", "accuracy", "pareto")
EARLY = SIZES  # judged right after conversion
MAY_BE_ZERO = ("max_accuracy_drop", "max_error_increase")  # the others must be > 0


def parse_budget(text: str, targets: list[str]) -> Limit:
    """``NAME=VALUE`` or ``max_latency_ms=VALUE@TARGET``, checked against the recipe's targets."""
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
    target = target or targets[0]
    if target not in targets:
        raise InputError(
            f"--budget {text!r}: target '{target}' is not in the recipe's benchmark.targets "
            f"({', '.join(targets)}); add it there or budget one of those"
        )
    return Limit(name, limit, LatencyKey(target))


def parse_budgets(texts: Iterable[str], targets: list[str]) -> Budgets:
    """``--budget`` flags as one :class:`~edgeopt.budgets.Budgets`, the model a recipe's section is."""
    fields: dict[str, Any] = {}
    for text in texts:
        limit = parse_budget(text, targets)
        if limit.name == "max_latency_ms":
            latency = fields.setdefault("max_latency_ms", {})
            if str(limit.target) in latency:
                raise InputError(f"--budget {text!r}: max_latency_ms@{limit.target} is given twice")
            latency[str(limit.target)] = limit.limit  # the budgets: section's spelling
        elif limit.name in fields:
            raise InputError(f"--budget {text!r}: {limit.name} is given twice")
        else:
            fields[limit.name] = limit.limit
    try:
        return Budgets.model_validate(fields)
    except ValidationError as exc:  # parse_budget checked every limit: kept as a guard
        raise InputError(f"--budget: {describe(exc)}") from None


def check_budgets(budgets: Budgets, targets: list[str], candidates: list[str], where: str) -> None:
    """Refuse budgets a search could not judge: a latency target the recipe does not benchmark, or
    ``variants`` that leave out a format the search picks its candidate from."""
    for target in budgets.max_latency_ms or {}:
        if target not in targets:
            raise InputError(
                f"{where}: max_latency_ms target '{target}' is not in the recipe's benchmark.targets "
                f"({', '.join(targets)}); add it there or budget one of those"
            )
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
    latency_target: str
    extra: dict = field(default_factory=dict)

    @property
    def budgets(self) -> tuple[Limit, ...]:
        """Every budget given, labelled as ``--budget`` spells it."""
        return self.spec.limits()

    def limits_for(self, figures: dict[str, Any]) -> tuple[Limit, ...]:
        """The budgets that judge a trial with these figures (by its metric's direction)."""
        return self.spec.limits(Figures.from_json(figures).higher_is_better)

    def verdicts(self, figures: dict[str, Any]) -> tuple[Verdict, ...]:
        """A trial's figures judged by :func:`edgeopt.budgets.judge`, as check and compress judge them."""
        return judge_figures(self.spec, Figures.from_json(figures))

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

    def objective_values(self, figures: dict[str, Any]) -> list[float | None]:
        return [_objective(name, figures, self.latency_target) for name in self.names]


def make_goal(objective: str, budgets: Budgets | None, targets: list[str]) -> Goal:
    if objective not in OBJECTIVES:
        raise InputError(f"--objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    budgets = budgets or Budgets()
    latency = next(iter(budgets.max_latency_ms or {}), targets[0])
    return Goal(objective, budgets, latency)


def _objective(name: str, figures: dict[str, Any], target: str) -> float | None:
    if name == "gzip_kb":
        return None if figures.get("gzip_bytes") is None else figures["gzip_bytes"] / KB
    if name == "latency_ms":
        return (figures.get("latency_ms") or {}).get(target)
    return error_of(figures)


def error_of(figures: dict[str, Any]) -> float | None:
    """The candidate's own metric, lower is better: 1 - accuracy, or the MAE itself. The objective
    ``accuracy`` minimises this rather than the drop against the reference, so that trials that
    train their own base (and so have their own reference) are ranked by what they ship; with one
    shared reference the two orders are the same."""
    value, metric = figures.get("value"), base_metric(str(figures.get("metric")))
    if value is None:
        return None
    if not HIGHER_IS_BETTER.get(metric, True):
        return float(value)
    return 1.0 - float(value) if metric in ("accuracy", "top_k_accuracy") else -float(value)


def candidate(report: Report, fmt: str) -> Variant | None:
    return report.variant(fmt)


def figures_of(report: Report, fmt: str) -> dict[str, Any]:
    """A trial's figures: its candidate export's sizes, primary metric, drop against the reference,
    and p50 per target (measured locally through LiteRT, as the report says)."""
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
    out["latency_ms"] = {  # stored with the trial as JSON: at the first thread count, by target
        key.target: entry.value()
        for key, entry in variant.latency.items()
        if key.first and entry.value() is not None
    }
    return out


def judge(goal: Goal, figures: dict[str, Any]) -> tuple[bool, list[str], dict[str, float]]:
    """(feasible, reasons for each missed or unmeasured budget, budget label -> violation), from
    :func:`edgeopt.budgets.judge`'s verdicts."""
    reasons, violations = [], {}
    for verdict in goal.verdicts(figures):
        if verdict.measured is None:
            reasons.append(f"{verdict.label}: not measured")
            continue
        violations[verdict.label] = verdict.violation
        if not verdict.ok:
            accuracy = verdict.name == "max_accuracy_drop" and base_metric(str(figures.get("metric"))) in (
                "accuracy", "top_k_accuracy")
            measured = f"a drop of {verdict.measured * 100:.2f} pt" if accuracy else f"{verdict.measured:.4g}"
            reasons.append(f"{verdict.label} missed: {measured}")  # drops in points, as everywhere in tune
    return not reasons, reasons, violations
