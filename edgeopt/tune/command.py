"""``edgeopt tune``: the Click command, a skin over :func:`edgeopt.api.search` (which runs
:func:`edgeopt.tune.study.tune`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgeopt import api
from edgeopt.errors import EXIT_CHECK_FAILED
from edgeopt.logs import captured


@click.command("tune")
@click.argument("recipe_path", metavar="RECIPE.yaml", type=click.Path(path_type=Path))
@click.option(
    "--study",
    "study",
    required=True,
    type=click.Path(path_type=Path),
    help="Study folder: created, or resumed when it holds this recipe's study.",
)
@click.option(
    "--budget",
    "budgets",
    multiple=True,
    metavar="NAME=VALUE",
    help="max_accuracy_drop=0.005 | max_error_increase=0.05 | max_size_kb=N | max_gzip_kb=N | "
    "max_latency_ms=N[@TARGET] (repeatable; default: the recipe's budgets section).",
)
@click.option("--strategy", default="bayes", show_default=True, help="random | hill | bayes | tpe | nsga2.")
@click.option(
    "--trials", default=20, show_default=True, help="Finished trials the study should hold in total."
)
@click.option("--objective", default="size", show_default=True, help="size | latency | accuracy | pareto.")
@click.option("--executor", default="local", show_default=True, help="local (process pool) | ray.")
@click.option("--workers", default=1, show_default=True, help="Trials running at once.")
@click.option("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray).")
@click.option("--cpus-per-trial", default=1, show_default=True, help="CPUs each Ray trial task reserves.")
@click.option("--seed", type=int, default=None, help="The sampler's seed (default: the recipe's seed).")
@click.option(
    "--pruner",
    default="auto",
    show_default=True,
    help="none | median | hyperband: stop a trial whose training curve shows it will lose (Optuna's "
    "pruners); auto is hyperband when a train field is searched, else none.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe field, as for compress (repeatable).",
)
@click.option(
    "--force-new",
    is_flag=True,
    help="Start a new study in a folder made by another recipe or budgets, or whose study.json or "
    "journal.log is damaged; the earlier study's files move to previous-N/ (nothing is deleted).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome (every trial, front, best) as JSON.")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own messages (hidden by default).")
def tune_cmd(
    recipe_path,
    study,
    budgets,
    strategy,
    trials,
    objective,
    executor,
    workers,
    address,
    cpus_per_trial,
    seed,
    pruner,
    overrides,
    force_new,
    as_json,
    verbose,
) -> None:
    """Search stage, export and training settings for the smallest, fastest or most accurate model
    within budgets.

    Trials with the same training settings compress one shared trained base (trained once per
    study); a trial with new training settings trains its own, and the pruner may stop it early.
    The study resumes when run again with the same --study; --trials counts its total. Writes
    tune.json, tune.html (Pareto front, best so far per strategy, training curves) and best.yaml
    (run it with edgeopt compress) into the study folder. Exit 1 when no trial meets every budget.
    """

    def progress(line: str) -> None:
        click.echo(line, err=True)

    try:
        with captured(verbose) as log:
            outcome = api.search(
                recipe_path,
                study,
                budgets=tuple(budgets),
                strategy=strategy,
                trials=trials,
                objective=objective,
                executor=executor,
                workers=workers,
                address=address,
                seed=seed,
                overrides=tuple(overrides),
                force_new=force_new,
                pruner=pruner,
                cpus_per_trial=cpus_per_trial,
                progress=progress,
                log=log,
            )
    except KeyboardInterrupt:
        click.echo(
            f"edgeopt: tune interrupted; finished trials are kept in {study}: run the same command to resume",
            err=True,
        )
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(outcome.to_json(), indent=2))
    for line in outcome.summary():
        click.echo(line, err=True)
    click.echo(f"wrote {study}/tune.json, tune.html" + (", best.yaml" if outcome.best else ""), err=True)
    if outcome.best is None and outcome.goal.budgets:
        click.get_current_context().exit(EXIT_CHECK_FAILED)
