"""A study's outcome, read back from its trials: every trial, the Pareto front, the best trial,
and, when no trial met every budget, the closest trial per budget. No TensorFlow, no Optuna here:
:func:`record` is what the driver stores on each trial, the rest works on those records.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from edgeopt.report.cells import fmt_time
from edgeopt.tune.budgets import KB, Goal, budget_label, drop_in_points, error_of

FEASIBLE, INFEASIBLE, FAILED, PRUNED = "feasible", "infeasible", "failed", "pruned"
STATUSES = (FEASIBLE, INFEASIBLE, FAILED, PRUNED)


@dataclass(frozen=True)
class TrialRecord:
    number: int
    strategy: str
    params: dict[str, Any]  # dimension name -> recipe value
    status: str  # feasible | infeasible | failed | pruned (stopped by the pruner while training)
    reason: str | None
    figures: dict[str, Any] = field(default_factory=dict)
    violations: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    cached: bool = False
    folder: str | None = None
    curve: list[float] | None = None  # the base's training curve, lower is better, when this trial trained it
    curve_metric: str | None = None  # the Keras log it follows (val_mae, val_accuracy as 1 - accuracy)
    pruned_at: int | None = None  # the last epoch trained (0-based) when the pruner stopped the trial

    @property
    def feasible(self) -> bool:
        return self.status == FEASIBLE

    @classmethod
    def from_stored(cls, data: Any) -> TrialRecord:
        """The record the driver stored on its trial, read back from the journal.

        Raises:
            ValueError: naming the first field that is missing, unknown or of the wrong type.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a {type(data).__name__}, not an object")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        missing = [n for n in ("number", "strategy", "params", "status", "reason") if n not in data]
        if unknown or missing:
            raise ValueError(f"unknown field {unknown[0]!r}" if unknown else f"no {missing[0]!r}")
        record = cls(**data)
        number, violations = _is_number, record.violations
        checks = {
            "number": isinstance(record.number, int) and not isinstance(record.number, bool),
            "strategy": isinstance(record.strategy, str),
            "params": isinstance(record.params, dict),
            "status": record.status in STATUSES,
            "reason": record.reason is None or isinstance(record.reason, str),
            "figures": isinstance(record.figures, dict),
            "violations": isinstance(violations, dict) and all(map(number, violations.values())),
            "seconds": record.seconds is None or number(record.seconds),
            "cached": isinstance(record.cached, bool),
            "folder": record.folder is None or isinstance(record.folder, str),
            "curve": record.curve is None or (isinstance(record.curve, list)
                                               and all(map(number, record.curve))),
            "curve_metric": record.curve_metric is None or isinstance(record.curve_metric, str),
            "pruned_at": record.pruned_at is None or isinstance(record.pruned_at, int),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} is {getattr(record, name)!r}"[:120])
        return record

    def to_json(self) -> dict[str, Any]:
        f = self.figures
        return {
            "number": self.number,
            "strategy": self.strategy,
            "params": self.params,
            "status": self.status,
            "feasible": self.feasible,
            "reason": self.reason,
            "format": f.get("format"),
            "size_bytes": f.get("size_bytes"),
            "gzip_bytes": f.get("gzip_bytes"),
            "metric": f.get("metric"),
            "value": f.get("value"),
            "reference": f.get("reference"),
            "drop": f.get("drop"),
            "latency_p50_ms": f.get("latency_ms") or {},
            "violations": self.violations,
            "seconds": self.seconds,
            "cached": self.cached,
            "folder": self.folder,
            "curve": self.curve,
            "curve_metric": self.curve_metric,
            "pruned_at": self.pruned_at,
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def scalar(goal: Goal, trial: TrialRecord) -> float | None:
    """The single objective (the first one for a Pareto search), lower is better."""
    values = goal.objective_values(trial.figures)
    return values[0] if values and values[0] is not None else None


def dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_front(goal: Goal, trials: list[TrialRecord]) -> list[TrialRecord]:
    """Non-dominated trials in (gzip KB, p50 ms, error) among the feasible ones (all measured ones when
    none is feasible), best size first; identical points keep the earliest trial."""

    def point(t):
        gzip, drop = t.figures.get("gzip_bytes"), error_of(t.figures)
        latency = (t.figures.get("latency_ms") or {}).get(goal.latency_target)
        # A trial whose benchmark was skipped (it missed a size budget) counts as infinitely slow.
        return (
            None
            if gzip is None or drop is None
            else [gzip / KB, math.inf if latency is None else latency, drop]
        )

    pool = [t for t in trials if t.feasible] or [t for t in trials if t.status == INFEASIBLE]
    pool = [(t, point(t)) for t in pool if point(t) is not None]
    front, seen = [], set()
    for t, p in pool:
        if any(dominates(q, p) for _, q in pool) or tuple(p) in seen:
            continue
        seen.add(tuple(p))
        front.append(t)
    return sorted(front, key=lambda t: (t.figures["gzip_bytes"], t.number))


def best_trial(goal: Goal, trials: list[TrialRecord], front: list[TrialRecord]) -> TrialRecord | None:
    """The feasible trial with the lowest objective (ties: smaller drop, then earlier); for a Pareto
    search, the front member nearest the ideal point in objectives scaled to the front's ranges."""
    feasible = [t for t in trials if t.feasible]
    if not feasible:
        return None
    if goal.objective == "pareto":
        members = [t for t in front if t.feasible] or feasible
        points = [
            [v if v is not None else math.inf for v in goal.objective_values(t.figures)] for t in members
        ]
        lows = [min(p[i] for p in points) for i in range(3)]
        spans = [(max(p[i] for p in points) - lows[i]) or 1.0 for i in range(3)]
        distance = [math.dist([(p[i] - lows[i]) / spans[i] for i in range(3)], [0, 0, 0]) for p in points]
        return members[min(range(len(members)), key=lambda i: (distance[i], members[i].number))]

    def rank(t):
        value = scalar(goal, t)
        drop = t.figures.get("drop")
        return (math.inf if value is None else value, math.inf if drop is None else drop, t.number)

    return min(feasible, key=rank)


def closest(goal: Goal, trials: list[TrialRecord]) -> dict[str, dict[str, Any]]:
    """Per budget: the trial that came nearest to it (its smallest violation), with its figure."""
    out = {}
    judged = [t for t in trials if t.figures]
    for budget in goal.budgets:
        measured = [t for t in trials if budget.label in t.violations]
        if not measured and judged and not any(budget in goal.limits_for(t.figures) for t in judged):
            continue  # a budget of another task (max_error_increase of a classifier)
        if not measured:
            out[budget.label] = {"trial": None, "value": None, "met_by": 0}
            continue
        near = min(measured, key=lambda t: (t.violations[budget.label], t.number))
        out[budget.label] = {
            "trial": near.number,
            "value": next(v.measured for v in goal.verdicts(near.figures) if v.label == budget.label),
            "met_by": sum(t.violations[budget.label] <= 0 for t in measured),
        }
    return out


def best_so_far(goal: Goal, trials: list[TrialRecord]) -> dict[str, list[tuple[int, float | None]]]:
    """Per strategy, in trial order: (trial number, best feasible objective so far or None)."""
    series: dict[str, list[tuple[int, float | None]]] = {}
    best: dict[str, float | None] = {}
    for t in sorted(trials, key=lambda t: t.number):
        value = scalar(goal, t) if t.feasible else None
        current = best.get(t.strategy)
        if value is not None and (current is None or value < current):
            current = value
        best[t.strategy] = current
        series.setdefault(t.strategy, []).append((t.number, current))
    return series


@dataclass(frozen=True)
class Outcome:
    """Everything a study found."""

    goal: Goal
    trials: list[TrialRecord]
    front: list[TrialRecord]
    best: TrialRecord | None
    closest: dict[str, dict[str, Any]]
    space: list[dict[str, Any]]
    study: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, goal: Goal, trials: list[TrialRecord], space: list[dict], study: dict) -> Outcome:
        trials = sorted(trials, key=lambda t: t.number)
        front = pareto_front(goal, trials)
        return cls(goal, trials, front, best_trial(goal, trials, front), closest(goal, trials), space, study)

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "goal": self.goal.to_json(),
            "space": self.space,
            "trials": [t.to_json() for t in self.trials],
            "pareto_front": [t.number for t in self.front],
            "best": self.best.to_json() if self.best else None,
            "budgets_met": self.best is not None,
            "closest_per_budget": self.closest if self.best is None else {},
            "best_so_far": {
                s: [[n, v] for n, v in points] for s, points in best_so_far(self.goal, self.trials).items()
            },
        }

    def summary(self) -> list[str]:
        """Lines for the terminal: the best trial, or why there is none and what came closest."""
        done = len(self.trials)
        failed = sum(t.status == FAILED for t in self.trials)
        pruned = sum(t.status == PRUNED for t in self.trials)
        lines = [
            f"{done} trials ({sum(t.feasible for t in self.trials)} feasible, {failed} failed"
            + (f", {pruned} pruned" if pruned else "") + "), "
            f"Pareto front: {', '.join(f'#{t.number}' for t in self.front) or 'empty'}"
        ]
        if self.best is not None:
            lines.append(f"best: trial #{self.best.number} {describe(self.best)}")
        elif not self.goal.budgets:
            lines.append("no trial finished")
        else:
            lines.append("no trial met every budget; closest per budget:")
            shown = dict(zip((b.label for b in self.goal.budgets), self.budget_labels(), strict=True))
            for label, near in self.closest.items():
                if near["trial"] is None:
                    lines.append(f"  {shown.get(label, label)}: never measured")
                else:
                    points = label.startswith("max_accuracy_drop") and self.drops_in_points
                    reached = f"a drop of {near['value'] * 100:.2f} pt" if points else f"{near['value']:.4g}"
                    lines.append(
                        f"  {shown.get(label, label)}: trial #{near['trial']} reached {reached} "
                        f"({near['met_by']} trials met this one alone)"
                    )
        return lines

    @property
    def drops_in_points(self) -> bool:
        """Whether the trials' metric is an accuracy (its drops are shown in points, as everywhere)."""
        metric = next((t.figures.get("metric") for t in self.trials if t.figures.get("metric")), None)
        return drop_in_points(metric)

    def budget_labels(self) -> list[str]:
        """The goal's budgets as tune shows them, in their order: see :func:`budget_label`."""
        return [budget_label(b, self.drops_in_points) for b in self.goal.budgets]


def describe(t: TrialRecord) -> str:
    f = t.figures
    parts = [params_text(t.params)]
    if f.get("gzip_bytes") is not None:
        parts.append(f"{f['format']} gzip {f['gzip_bytes'] / KB:.2f} KB")
    if f.get("value") is not None:
        drop = f.get("drop")
        unit = " pt" if drop_in_points(f.get("metric")) else ""
        scale = 100 if drop_in_points(f.get("metric")) else 1
        parts.append(
            f"{f['metric']} {f['value'] * scale:.2f}"
            + (f" (drop {drop * scale:+.2f}{unit})" if drop is not None else "")
        )
    for target, ms in (f.get("latency_ms") or {}).items():
        parts.append(f"p50 {fmt_time(ms)} @{target}")
    return "; ".join(parts)


def params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def best_recipe(space, best: TrialRecord, outcome: Outcome, recipe_export: list[str]) -> str:
    """``best.yaml``: the tune recipe with the best trial's values, ready for ``edgeopt compress``."""
    data = space.recipe_data(best.params)
    if "export" not in best.params:
        fmt = best.figures.get("format")
        export = data.get("export") or recipe_export
        data["export"] = export if fmt in export else [fmt]
    data = copy.deepcopy(data)
    header = [
        f"# Best trial #{best.number} of the tune study {outcome.study.get('folder', '')}: {describe(best)}",
        f"# Objective {outcome.goal.objective}; "
        f"budgets: {', '.join(outcome.budget_labels()) or 'none'}.",
        "# Reproduce with: edgeopt compress best.yaml --out DIR (retrains the base with the same seed).",
    ]
    return "\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False)
