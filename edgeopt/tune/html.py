"""``tune.html``: a self-contained page of a study's outcome (a pure function of the outcome):
summary, the Pareto front (size against accuracy drop, and against latency), best-so-far against
trial number for each strategy run into the study, each trial's training curve (where training was
searched, with where the pruner stopped it), and every trial with its status and reason. A plot
with nothing to draw is left out."""

from __future__ import annotations

import html

from edgeopt.report.cells import fmt_ms
from edgeopt.report.plots import new_figure, png_data_uri
from edgeopt.tune.budgets import KB, budget_label, drop_in_points
from edgeopt.tune.results import FAILED, PRUNED, Outcome, best_so_far, describe

STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td.l,th.l{text-align:left}"
    ".feasible{background:#e8f5e9}.failed{background:#fdecea}.pruned{background:#f3f3f3}img{max-width:100%}"
)


def _plots(outcome: Outcome) -> list[tuple[str, str]]:
    measured = [t for t in outcome.trials if t.status != FAILED and t.figures.get("gzip_bytes") is not None]
    front = {t.number for t in outcome.front}
    out = []
    target = outcome.goal.latency_target
    metric = next((t.figures.get("metric") for t in measured if t.figures.get("metric")), None)
    in_points = drop_in_points(metric)  # drops, their budget and the axis all in points (pt), or all not
    for axis, label in (
        ("drop", "accuracy drop vs the reference (pt)" if in_points
         else f"{metric} increase vs the reference (its unit)"),
        ("latency", f"p50 ms on {target}"),
    ):
        if axis == "latency" and not any((t.figures.get("latency_ms") or {}).get(target) for t in measured):
            continue  # no trial was benchmarked on the target: nothing to draw
        if not measured:
            continue
        fig = new_figure(6.4, 4.2)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.13)
        ceiling = _ceiling(outcome, measured, axis, target, in_points)
        for group, colour, marker in (
            ("infeasible", "#bbbbbb", "x"),
            ("feasible", "#1f77b4", "o"),
            ("front", "#d62728", "*"),
        ):
            points = []
            for t in measured:
                kind = "front" if t.number in front else ("feasible" if t.feasible else "infeasible")
                if kind != group:
                    continue
                y = (
                    t.figures.get("drop")
                    if axis == "drop"
                    else (t.figures.get("latency_ms") or {}).get(target)
                )
                if y is None:
                    continue
                scale = 100 if axis == "drop" and in_points else 1
                points.append((t.figures["gzip_bytes"] / KB, min(y * scale, ceiling)))
            if points:
                ax.scatter(
                    *zip(*points, strict=True),
                    c=colour,
                    marker=marker,
                    s=60 if group == "front" else 30,
                    label=group,
                )
        for budget in outcome.goal.budgets:
            shown = budget_label(budget, in_points)
            if budget.name == "max_gzip_kb":
                ax.axvline(budget.limit, color="#2ca02c", linestyle="--", linewidth=1, label=shown)
            if axis == "drop" and budget.name == "max_accuracy_drop":
                ax.axhline(budget.limit * (100 if in_points else 1), color="#2ca02c", linestyle=":",
                           linewidth=1, label=shown)
            if axis == "latency" and budget.name == "max_latency_ms":
                ax.axhline(budget.limit, color="#2ca02c", linestyle=":", linewidth=1, label=budget.label)
        ax.set_xlabel("gzip size of the .tflite (KB = 1024 bytes)")
        ax.set_ylabel(label)
        cut = f" (drops above {ceiling:g} pt drawn at {ceiling:g} pt)" if ceiling < float("inf") else ""
        ax.set_title(f"Trials: size against {axis}{cut}", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        out.append((f"Pareto front: size against {axis}", png_data_uri(fig)))
    curves = _curves(outcome)
    if curves is not None:
        out.append(curves)
    series = best_so_far(outcome.goal, outcome.trials)
    if not any(v is not None for points in series.values() for _, v in points):
        return out  # no feasible trial yet: no best to draw
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.13)
    for strategy, points in series.items():
        xs = [i + 1 for i, (_, v) in enumerate(points) if v is not None]
        ys = [v for _, v in points if v is not None]
        if xs:
            ax.step(xs, ys, where="post", label=strategy, marker="o", markersize=3)
    ax.set_xlabel("trials of this strategy")
    ax.set_ylabel(f"best feasible {outcome.goal.names[0]} (lower is better)")
    ax.set_title("Best so far")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    out.append(("Best feasible objective so far, per strategy", png_data_uri(fig)))
    return out


def _curves(outcome: Outcome) -> tuple[str, str] | None:
    """Each trial that trained its base: its curve per epoch; a pruned one ends in a cross where the
    pruner stopped it. None when no trial trained (training not searched)."""
    trained = [t for t in outcome.trials if t.curve]
    if not trained:
        return None
    metric = next(t.curve_metric for t in trained if t.curve_metric)
    accuracy = str(metric).endswith("accuracy")
    scale = 100 if accuracy else 1
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.13)
    best = outcome.best.number if outcome.best is not None else None
    for t in trained:
        epochs = range(1, len(t.curve) + 1)
        ys = [v * scale for v in t.curve]
        if t.status == PRUNED:
            ax.plot(epochs, ys, color="#999999", linewidth=0.8, alpha=0.8)
            ax.scatter([len(ys)], [ys[-1]], color="#999999", marker="x", s=25)
        else:
            ax.plot(epochs, ys, color="#d62728" if t.number == best else "#1f77b4",
                    linewidth=2.0 if t.number == best else 0.9, alpha=0.9)
    pruned = sum(t.status == PRUNED for t in trained)
    name = str(metric).removeprefix("val_")
    label = "validation error, 1 - accuracy (%)" if accuracy else f"validation {name}"
    if not str(metric).startswith("val_"):
        label = label.replace("validation", "training")
    ax.set_xlabel("epoch")
    ax.set_ylabel(label + ", lower is better", fontsize=9)
    values = [v for t in trained for v in t.curve if v > 0]
    if values and max(values) > 20 * min(values):  # curves spanning decades: a log axis keeps them apart
        ax.set_yscale("log")
    ax.set_title(f"Training curves: {len(trained)} trials trained, {pruned} stopped by the pruner (x)"
                 + (f"; best #{best} in red" if best is not None and any(t.number == best for t in trained)
                    else ""), fontsize=10)
    ax.grid(alpha=0.3)
    return "Training curves of the trials that trained their base", png_data_uri(fig)


def _ceiling(outcome: Outcome, measured, axis: str, target: str, points: bool = True) -> float:
    """The top of the drop axis: a few times the drop budget (at least 2 points), so that a trial
    that lost 40 points does not squash the ones near the budget; latency and MAE are not cut."""
    if axis != "drop" or not points:
        return float("inf")
    budget = next((b.limit * 100 for b in outcome.goal.budgets if b.name == "max_accuracy_drop"), 1.0)
    drops = [t.figures["drop"] * 100 for t in measured if t.figures.get("drop") is not None]
    top = max(4 * budget, 2.0)
    return top if drops and max(drops) > top else float("inf")


def render_html(outcome: Outcome) -> str:
    e = html.escape
    goal = outcome.goal
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>edgeopt tune</title><style>{STYLE}</style>"
        "</head><body><h1>edgeopt tune</h1>",
        f"<p>Study <code>{e(str(outcome.study.get('folder', '')))}</code>; "
        f"objective <b>{e(goal.objective)}</b> (minimise {e(', '.join(goal.names))}); "
        f"budgets: {e(', '.join(outcome.budget_labels()) or 'none')}. "
        "Every figure is measured from the trial's .tflite through the LiteRT interpreter (accuracy on the "
        f"test split; latency on {e(goal.latency_target)} as each trial's report.json records).</p>",
    ]
    parts += [f"<p>{e(line)}</p>" for line in outcome.summary()]
    for title, uri in _plots(outcome):
        parts.append(f"<h2>{e(title)}</h2><img alt='{e(title)}' src='{uri}'>")
    head = [
        "#",
        "strategy",
        "status",
        "parameters",
        "format",
        "size B",
        "gzip B",
        "metric",
        "drop",
        "p50 ms",
        "time s",
        "reason",
    ]
    parts.append("<h2>Trials</h2><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>")
    front = {t.number for t in outcome.front}
    for t in outcome.trials:
        f = t.figures
        latency = (f.get("latency_ms") or {}).get(goal.latency_target)
        cells = [
            f"{t.number}{' *' if t.number in front else ''}",
            t.strategy,
            t.status,
            ", ".join(f"{k}={v}" for k, v in t.params.items()),
            f.get("format") or "",
            _n(f.get("size_bytes")),
            _n(f.get("gzip_bytes")),
            _metric(f.get("value"), f.get("metric")),
            _drop(f.get("drop"), f.get("metric")),
            "" if latency is None else fmt_ms(latency),
            "cached" if t.cached else _g(t.seconds),
            t.reason or "",
        ]
        left = {1, 2, 3, 4, 11}
        parts.append(
            f"<tr class='{t.status}'>"
            + "".join(
                f"<td class='l'>{e(str(c))}</td>" if i in left else f"<td>{e(str(c))}</td>"
                for i, c in enumerate(cells)
            )
            + "</tr>"
        )
    parts.append("</table><p>* on the Pareto front.</p>")
    if outcome.best is not None:
        parts.append(f"<p>best.yaml reproduces trial #{outcome.best.number}: {e(describe(outcome.best))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _metric(value, metric) -> str:
    if value is None:
        return ""
    return f"{value * 100:.2f} %" if drop_in_points(metric) else _g(value)


def _drop(value, metric) -> str:
    """A drop as the text and the plots give it: points for an accuracy, the metric's unit else."""
    if value is None:
        return ""
    return f"{value * 100:+.2f} pt" if drop_in_points(metric) else f"{value:+.4g}"


def _n(value) -> str:
    return "" if value is None else f"{value:,}"


def _g(value) -> str:
    return "" if value is None else f"{value:.4g}"
