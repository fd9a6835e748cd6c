"""Budgets and objectives of a search, and how one trial's report is judged against them.

Budgets (``--budget NAME=VALUE``, or the recipe's ``budgets:`` section when none is given):

* ``max_accuracy_drop``: the primary metric's drop against the reference (``trained_float32``, or
  ``original`` for the user's saved model; a fraction for
  accuracy, 0.005 = 0.5 point; for regression the MAE increase, in the metric's unit);
* ``max_size_kb`` / ``max_gzip_kb``: the ``.tflite`` on disk / after gzip -9, KB = 1024 bytes;
* ``max_latency_ms=VALUE@TARGET``: p50 on a benchmark target of the recipe (default: its first).

The size budgets are judged as soon as the ``.tflite`` exists: a trial that misses one skips its
benchmark (its accuracy is still measured). Objectives: ``size`` (gzip bytes), ``latency`` (p50 on
the first latency budget's target, else the recipe's first target), ``accuracy`` (the drop), or
``pareto`` (all three). No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeopt.errors import InputError
from edgeopt.report.cells import KB  # 1024 bytes, as budgets.max_size_kb and the reports
from edgeopt.types import HIGHER_IS_BETTER, Report, Variant, base_metric

NAMES = ("max_accuracy_drop", "max_size_kb", "max_gzip_kb", "max_latency_ms")
OBJECTIVES = ("size", "latency", "accuracy", "pareto")
EARLY = ("max_size_kb", "max_gzip_kb")  # judged right after conversion


@dataclass(frozen=True)
class Budget:
    name: str
    limit: float
    target: str | None = None  # max_latency_ms only

    @property
    def label(self) -> str:
        return f"{self.name}={self.limit:g}" + (f"@{self.target}" if self.target else "")

    def measure(self, figures: dict[str, Any]) -> float | None:
        """This budget's figure in a trial's ``figures`` (None: not measured)."""
        if self.name == "max_accuracy_drop":
            return figures.get("drop")
        if self.name == "max_size_kb":
            return None if figures.get("size_bytes") is None else figures["size_bytes"] / KB
        if self.name == "max_gzip_kb":
            return None if figures.get("gzip_bytes") is None else figures["gzip_bytes"] / KB
        return (figures.get("latency_ms") or {}).get(self.target)

    def violation(self, figures: dict[str, Any]) -> float | None:
        """How far past the limit, relative to it (<= 0: met); None when not measured."""
        value = self.measure(figures)
        if value is None:
            return None
        return (value - self.limit) / self.limit if self.limit > 0 else value - self.limit


def parse_budget(text: str, targets: list[str]) -> Budget:
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
    if not (limit >= 0 and limit < float("inf")) or (limit == 0 and name != "max_accuracy_drop"):
        raise InputError(f"--budget {text!r}: the limit must be a finite number > 0")
    if name != "max_latency_ms":
        if target:
            raise InputError(f"--budget {text!r}: only max_latency_ms takes @TARGET")
        return Budget(name, limit)
    target = target or targets[0]
    if target not in targets:
        raise InputError(
            f"--budget {text!r}: target '{target}' is not in the recipe's benchmark.targets "
            f"({', '.join(targets)}); add it there or budget one of those"
        )
    return Budget(name, limit, target)


def recipe_budgets(budgets, targets: list[str]) -> list[Budget]:
    """The recipe's ``budgets:`` section (a :class:`edgeopt.recipe.Budgets`) as search budgets."""
    if budgets is None:
        return []
    found = []
    if budgets.max_accuracy_drop is not None:
        found.append(Budget("max_accuracy_drop", budgets.max_accuracy_drop))
    if budgets.max_size_kb is not None:
        found.append(Budget("max_size_kb", budgets.max_size_kb))
    for target, ms in (budgets.max_latency_ms or {}).items():
        found.append(parse_budget(f"max_latency_ms={ms}@{target}", targets))
    return found


@dataclass(frozen=True)
class Goal:
    """What a search minimises and the budgets it must meet."""

    objective: str
    budgets: tuple[Budget, ...]
    latency_target: str
    extra: dict = field(default_factory=dict)

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
        figures = {"gzip_bytes": gzip_bytes, "size_bytes": size_bytes}
        missed = [b for b in self.budgets if b.name in EARLY and (b.violation(figures) or 0) > 0]
        if not missed:
            return None
        return "not benchmarked: " + "; ".join(f"{b.measure(figures):.2f} KB > {b.label}" for b in missed)

    def objective_values(self, figures: dict[str, Any]) -> list[float | None]:
        return [_objective(name, figures, self.latency_target) for name in self.names]


def make_goal(objective: str, budgets: list[Budget], targets: list[str]) -> Goal:
    if objective not in OBJECTIVES:
        raise InputError(f"--objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    latency = next((b.target for b in budgets if b.name == "max_latency_ms"), targets[0])
    names = [b.name + (f"@{b.target}" if b.target else "") for b in budgets]
    if len(set(names)) != len(names):
        raise InputError("--budget: a budget is given twice")
    return Goal(objective, tuple(budgets), latency)


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
    out["latency_ms"] = {
        key: entry.value()
        for key, entry in variant.latency.items()
        if "#" not in key and entry.value() is not None
    }
    return out


def judge(goal: Goal, figures: dict[str, Any]) -> tuple[bool, list[str], dict[str, float]]:
    """(feasible, reasons for each missed or unmeasured budget, budget label -> violation)."""
    reasons, violations = [], {}
    for budget in goal.budgets:
        value, violation = budget.measure(figures), budget.violation(figures)
        if violation is None:
            reasons.append(f"{budget.label}: not measured")
            continue
        violations[budget.label] = violation
        if violation > 0:
            reasons.append(f"{budget.label} missed: {value:.4g}")
    return not reasons, reasons, violations
