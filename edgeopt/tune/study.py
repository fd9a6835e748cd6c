"""The tune driver: a resumable Optuna study, asked and told from here, whose trials run elsewhere.

The study folder (``--study DIR``) holds everything, written so that an interrupted or killed run
never leaves it corrupt:

* ``study.json``: the tune recipe, budgets and objective the study belongs to (another recipe is
  refused unless ``force_new``); ``journal.log``: Optuna's append-only journal of every trial;
* ``base/<key>/``: the trained base (``model.keras``, ``trained_float32.tflite``, its measurements),
  made once by :func:`edgeopt.prepare` and reused by every trial and every resume;
* ``trials/<key>/``: each trial's ``report.json``, ``.tflite``, ``recipe.resolved.yaml`` and
  ``trial.json``, staged and moved into place when complete; ``<key>`` hashes the base and the
  trial's stages, so a repeated point or a resumed trial costs nothing;
* ``tune.json``, ``tune.html``, ``best.yaml``: the outcome, rewritten atomically after the trials;
* ``previous-N/``: earlier studies that ``force_new`` replaced (see :mod:`edgeopt.tune.folder`).

Only this driver writes the folder (workers return their results), and one driver at a time holds
its lock. A trial left running by a killed driver is marked failed (interrupted) and queued again.
Every path is checked before any work. A damaged ``study.json`` or ``journal.log`` is refused in
one line naming it (and the journal's line), unless ``force_new`` starts a new study beside it; a
damaged base or cached trial is a cache miss: it is computed again.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeopt.budgets import Budgets, Figures
from edgeopt.documents import load_json
from edgeopt.errors import EdgeoptError, InputError, RecipeError
from edgeopt.internals import fail_trial, set_trial_attr
from edgeopt.loading import training_limits
from edgeopt.outputs import environment_error, staged_output, write_text_atomic
from edgeopt.pipeline import check_recipe, prepare
from edgeopt.progress import Progress
from edgeopt.recipe import read_recipe_data
from edgeopt.tune.budgets import (
    Goal,
    check_budgets,
    figures_of,
    judge,
    make_goal,
    parse_budgets,
    trial_figures,
)
from edgeopt.tune.executors import check_ray, connect_ray, disconnect_ray, make_executor
from edgeopt.tune.folder import (
    BASE,
    JOURNAL,
    OUTPUTS,
    STUDY_FILE,
    TRIALS,
    check_layout,
    check_path,
    damaged,
    is_study_entry,
    keep_aside,
    locked,
    retire,
)
from edgeopt.tune.html import render_html
from edgeopt.tune.pruning import PRUNER_ATTR, PRUNERS, Snapshot, resolve
from edgeopt.tune.results import (
    FAILED,
    FEASIBLE,
    INFEASIBLE,
    PRUNED,
    Outcome,
    TrialRecord,
    best_recipe,
    describe,
    params_text,
    scalar,
)
from edgeopt.tune.space import Space, _as_field, parse_space, values_for
from edgeopt.tune.trial import BASE_FILES, Base, Damaged, Job, cache_key
from edgeopt.types import Report
from edgeopt.version import __version__

EXECUTORS = ("local", "ray")
MAX_SEED = 2**32 - 1  # numpy's seeds, and a recipe's seed field, are 0 ... 2**32 - 1


@dataclass(frozen=True)
class TuneOptions:
    recipe: str | Path
    study: str | Path
    overrides: tuple[str, ...] = ()
    budgets: Budgets | tuple[str, ...] = ()  # --budget flags, or a Budgets (the API's); none: the recipe's
    strategy: str = "bayes"
    trials: int = 20
    objective: str = "size"
    executor: str = "local"
    workers: int = 1
    address: str | None = None
    seed: int | None = None  # the sampler's; default the recipe's seed
    force_new: bool = False
    cpus_per_trial: int = 1
    pruner: str = "auto"  # none | median | hyperband; auto: hyperband when training is searched


@dataclass
class Setup:
    """A validated tune request: the space, the goal and the study's identity."""

    options: TuneOptions
    tune_data: dict[str, Any]
    space: Space
    base_recipe: Any
    goal: Goal
    fingerprint: str
    study_name: str
    base_key: str  # the base at the low end of every dimension (the one base when training is fixed)
    seed: int
    pruner: str = "none"
    max_epochs: int = 0  # the most epochs a trial's training may run (the pruner's full budget)
    notes: list[str] = field(default_factory=list)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path) -> str | None:
    """Content hash of a file; for a folder, of its files' names, sizes and modification times."""
    if path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    if path.is_dir():
        return _digest(
            sorted(
                (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                for p in path.rglob("*")
                if p.is_file()
            )
        )
    return None


def base_key(recipe) -> str:
    """What the trained base depends on: model, data, seed, training, benchmark settings, the
    contents of the model and data files, and edgeopt's version."""
    resolved = recipe.resolved()
    fixed = {
        name: resolved[name]
        for name in ("model", "model_options", "data", "seed", "train", "trust_model", "custom_objects",
                     "benchmark")
    }
    files = {}
    for name in ("model", "data"):
        value = resolved[name]
        path = value.get("path") if isinstance(value, dict) else value
        if isinstance(path, str) and Path(path).exists():
            files[name] = _file_digest(Path(path))
    return _digest({"fixed": fixed, "files": files, "edgeopt": __version__})[:20]


def setup(options: TuneOptions) -> Setup:
    """Read and check everything before any work: recipe, space, budgets, objective, executor."""
    from edgeopt.tune.samplers import STRATEGIES

    if options.pruner not in PRUNERS:
        raise InputError(f"--pruner {options.pruner!r}: choose one of {', '.join(PRUNERS)}")
    if options.strategy not in STRATEGIES:
        raise InputError(f"--strategy {options.strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if options.executor not in EXECUTORS:
        raise InputError(f"--executor {options.executor!r}: choose one of {', '.join(EXECUTORS)}")
    if not 1 <= options.trials <= 10_000:
        raise InputError(f"--trials {options.trials}: give a number of trials from 1 to 10000")
    if not 1 <= options.workers <= 256:
        raise InputError(f"--workers {options.workers}: give 1 to 256 workers")
    if options.seed is not None and not 0 <= options.seed <= MAX_SEED:
        raise InputError(f"--seed {options.seed}: give a seed from 0 to {MAX_SEED}, as for a recipe's seed")

    data, source = read_recipe_data(options.recipe, list(options.overrides))
    space = parse_space(data, source)
    base_recipe = space.recipe({d.name: _low(d) for d in space.dimensions}, source)

    cannot = training_limits(base_recipe.model, "tune (its trials fine-tune stages, and edgeopt cannot "
                                                "fine-tune this model)")
    if cannot is not None:  # the model's loader says why, before any work
        raise InputError(cannot)
    if not space.dimensions:
        raise RecipeError(
            f"{source}: nothing to search: add a range or choice to a stage field (e.g. "
            "target_sparsity: {range: [0.5, 0.95]}), or a prune or cluster stage"
        )
    targets = list(base_recipe.benchmark.targets)
    exports = next((d.choices for d in space.dimensions if d.name == "export"), None)
    candidates = list(exports) if exports else [base_recipe.export[-1]]  # the format each trial judges
    threads = list(base_recipe.benchmark.threads)
    given = options.budgets
    if given and not isinstance(given, Budgets):
        given = parse_budgets(given, targets, threads)
    if isinstance(given, Budgets) and given != Budgets():
        budgets = given
        check_budgets(budgets, targets, candidates, "--budget", threads)
    else:
        budgets = base_recipe.budgets
        if budgets is not None:
            check_budgets(budgets, targets, candidates, f"{source}: budgets", threads)
    goal = make_goal(options.objective, budgets, targets)
    if options.executor == "ray":
        check_ray()
    pruner = resolve(options.pruner, space.searches_training)
    max_epochs = max_training_epochs(space, base_recipe)
    if pruner != "none" and not (space.searches_training and max_epochs > 0):
        why = ("no train field is searched, so every trial shares one trained base" if not
               space.searches_training else "train.epochs is 0")
        raise InputError(
            f"--pruner {pruner}: this study's trials train nothing the pruner could stop ({why}); "
            "drop --pruner, or search a training setting such as train.learning_rate"
        )
    identity = {"recipe": data, "goal": goal.to_json()} | ({"pruner": pruner} if pruner != "none" else {})
    fingerprint = _digest(identity)

    check_recipe(base_recipe)
    return Setup(
        options,
        data,
        space,
        base_recipe,
        goal,
        fingerprint,
        f"edgeopt-{fingerprint[:12]}",
        base_key(base_recipe),
        base_recipe.seed if options.seed is None else options.seed,
        pruner,
        max_epochs,
    )


def max_training_epochs(space: Space, recipe) -> int:
    """The most epochs any trial's base may train: the high end of ``train.epochs`` when searched."""
    for dim in space.dimensions:
        if dim.name == "train.epochs":
            return int(max(dim.ends()))
    return recipe.train.epochs


def _low(dim) -> Any:
    return _as_field(dim, dim.ends()[0])


# -- the study folder ------------------------------------------------------------------------------


def open_folder(s: Setup, folder: Path) -> tuple[list[str], Any]:
    """Check (or start) the study folder for this request (the folder's lock is held, its layout
    checked); return notices for the user and the study's journal storage."""
    from edgeopt.tune.journal import JournalDamaged, open_journal

    known, problem = _read_study_file(folder)
    fix = "restore it from a copy"
    if known is not None and known.get("fingerprint") != s.fingerprint:
        same_recipe = _digest(known.get("recipe")) == _digest(s.tune_data)
        what = "budgets, objective or pruner" if same_recipe else "recipe"
        if not s.options.force_new:
            raise InputError(
                f"--study {folder}: this study was made with another {what}; use the same "
                "command, another --study folder, or --force-new to start a new study there"
            )
        return _start_study(s, folder, f"--force-new; the folder's study was made with another {what}")
    if known is not None:
        journal = folder / JOURNAL
        if not (journal.exists() and journal.stat().st_size) and any((folder / n).exists() for n in OUTPUTS):
            return _start_study(s, folder, f"{JOURNAL} is missing or empty")
        try:
            return [], open_journal(journal)
        except JournalDamaged as exc:
            problem, fix = f"{JOURNAL} is damaged at {exc.where} ({exc.reason})", "repair or remove that line"
    elif problem is None:  # no study.json
        others = [p.name for p in folder.iterdir() if not is_study_entry(p.name)]
        held = [name for name in (JOURNAL, *OUTPUTS) if name in others]
        if len(held) < len(others):
            raise InputError(
                f"--study {folder}: is not a tune study folder (no {STUDY_FILE}); give a new or empty folder"
            )
        if held:
            problem = f"{STUDY_FILE} is missing (the folder holds {', '.join(held)})"
    if problem is not None:
        if not s.options.force_new:
            raise damaged(folder, problem, fix)
        return _start_study(s, folder, f"--force-new; {problem}")
    return _start_study(s, folder, "")


def _read_study_file(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """study.json's content, or what is wrong with it; (None, None) when there is none."""
    path = folder / STUDY_FILE
    if not path.exists():
        return None, None
    try:
        known = load_json(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise environment_error(exc, path) or InputError(
            f"--study {folder}: {STUDY_FILE} cannot be read ({exc.strerror or exc})"
        ) from None
    except (ValueError, InputError):  # not JSON, not UTF-8, or nested beyond the limit
        return None, f"{STUDY_FILE} is damaged (not valid JSON)"
    if not isinstance(known, dict):
        return None, f"{STUDY_FILE} is damaged (it holds {json.dumps(known)[:40]}, not a JSON object)"
    return known, None


def _start_study(s: Setup, folder: Path, why: str) -> tuple[list[str], Any]:
    """Start this request's study in ``folder``: the files of an earlier one (replaced for ``why``)
    move to the next ``previous-N/`` first; the caches (base/, trials/) stay for the new study."""
    from edgeopt.tune.journal import open_journal

    kept = retire(folder)
    notices = []
    if kept is not None:
        notices.append(f"started a new study in {folder} ({why}); the earlier one's files are kept in {kept}")
    write_text_atomic(
        folder / STUDY_FILE,
        json.dumps(
            {
                "fingerprint": s.fingerprint,
                "study_name": s.study_name,
                "created_utc": _now(),
                "edgeopt_version": __version__,
                "recipe": s.tune_data,
                "goal": s.goal.to_json(),
                "space": s.space.to_json(),
                "pruner": s.pruner,
            },
            indent=1,
        ),
    )
    return notices, open_journal(folder / JOURNAL)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def base_for(s: Setup, folder: Path, progress: Callable[[str], None]) -> Base:
    """The study's trained base: read from the folder, or prepared (trained once) and saved there."""
    where = folder / BASE / s.base_key
    try:
        base = Base.read(where)
    except Damaged as exc:  # a cache entry: made again, and replaced once the new one is complete
        progress(f"the trained base in {where} is damaged ({exc}); training it again")
        base = None
    if base is not None:
        progress(f"reusing the trained base in {where}")
        return base

    progress(f"training the base model once for every trial (saved in {where})")
    with Progress(quiet=True) as quiet:
        prepared = prepare(s.base_recipe, quiet, checked=True)  # checked once, at setup
    base = Base.of(prepared, s.base_key)
    where.parent.mkdir(parents=True, exist_ok=True)
    with staged_output(where, overwrite=where.exists()) as work:
        base.write_into(work)
    return base


# -- the study ------------------------------------------------------------------------------------


def _suggest(trial, dim) -> Any:
    if dim.kind == "choice":
        return trial.suggest_categorical(dim.name, [dim.encode(c) for c in dim.choices])
    if dim.kind == "int":
        return trial.suggest_int(dim.name, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
    return trial.suggest_float(dim.name, dim.low, dim.high, step=dim.step, log=dim.log)


def recover(study) -> int:
    """Trials a killed driver left running: mark them failed (interrupted) and queue their points
    again. Returns how many."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        set_trial_attr(study, t, "interrupted", True)
        fail_trial(study, t)
        study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number}, skip_if_exists=False)
    return len(stale)


def finished(study) -> list:
    """Trials that count towards ``--trials``: complete, pruned, or failed for a reason of their own."""
    from optuna.trial import TrialState

    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))
    ]


def records(study, folder: Path) -> list[TrialRecord]:
    """The records the driver stored on the finished trials; a damaged one is refused, naming it."""
    out = []
    for t in finished(study):
        if "record" not in t.user_attrs:
            continue
        try:
            out.append(TrialRecord.from_stored(t.user_attrs["record"]))
        except (TypeError, ValueError) as exc:
            what = f"{JOURNAL} holds a damaged record of trial #{t.number} ({exc})"
            raise damaged(folder, what, "repair or remove its lines") from None
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Damaged(f"{path.name} is missing") from None
    except (ValueError, RecursionError):
        raise Damaged(f"{path.name} is not valid JSON") from None


def _read_cached(folder: Path) -> dict[str, Any] | None:
    """A trial's saved result (``report``, the report.json document), or None when never saved.

    Raises:
        Damaged: the trial's folder exists but trial.json or report.json is missing or unreadable.
    """
    if not folder.exists():
        return None
    summary, report = _read_json(folder / "trial.json"), _read_json(folder / "report.json")
    if not isinstance(summary, dict):
        raise Damaged("trial.json is not an object")
    try:
        Report.from_json(report)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise Damaged(f"report.json is not a report ({type(exc).__name__}: {exc})") from None
    return {"summary": summary, "report": report}


def _save_trial(folder: Path, result: dict[str, Any], summary: dict[str, Any]) -> None:
    try:
        if _read_cached(folder) is not None:  # the same point finished twice at once: the first copy stands
            return
        replace = False
    except Damaged:  # a damaged copy (this trial computed it again): replaced
        replace = True
    folder.parent.mkdir(parents=True, exist_ok=True)
    with staged_output(folder, overwrite=replace) as work:
        for name, content in result["files"].items():
            if name not in BASE_FILES:  # the base's model.keras and reference live once, in base/
                (work / name).write_bytes(content)
        (work / "recipe.resolved.yaml").write_text(result["recipe"])
        (work / "report.json").write_text(json.dumps(result["report"], indent=2))
        (work / "trial.json").write_text(json.dumps(summary, indent=1))


class Driver:
    """Asks the sampler for points, runs them on an executor, tells the results, reports progress."""

    def __init__(self, s: Setup, folder: Path, progress: Callable[[str], None], done: list[TrialRecord]):
        self.s, self.folder, self.progress = s, folder, progress
        self._records_seen = list(done)  # finished trials, for the progress line's best so far
        self.running: dict[int, tuple[Any, dict[str, Any], Job]] = {}

    def run(self, study, executor) -> None:
        target = self.s.options.trials
        while len(finished(study)) + len(self.running) < target or self.running:
            while len(self.running) < executor.workers and len(finished(study)) + len(self.running) < target:
                self._start(study, executor)
            for result in executor.wait():
                self._finish(study, result)

    def _start(self, study, executor) -> None:
        trial = study.ask()
        trial.set_user_attr("strategy", self.s.options.strategy)
        params = {d.name: _suggest(trial, d) for d in self.s.space.dimensions}
        values = values_for(self.s.space, params)
        try:
            recipe = self.s.space.recipe(values, f"trial {trial.number}")
        except RecipeError as exc:  # a combination the recipe rules refuse (checked at both ends only)
            self._tell_failed(study, trial, values, str(exc))
            return
        fmt = values["export"][0] if "export" in values else recipe.export[-1]
        stages = [st.model_dump(mode="json") for st in recipe.stages]
        early = [b.label for b in self.s.goal.budgets if b.name in ("max_size_kb", "max_gzip_kb")]
        bkey = base_key(recipe) if self.s.space.searches_training else self.s.base_key
        key = cache_key(bkey, stages, fmt, early)
        job = Job(trial.number, key, stages, fmt, self.s.goal if early else None, base_key=bkey)
        self.running[trial.number] = (trial, values, job)
        try:
            cached = _read_cached(self.folder / TRIALS / key)
        except Damaged as exc:  # a cache entry: computed again, and replaced when done
            where = self.folder / TRIALS / key
            self.progress(f"trial #{trial.number}: its saved result in {where} is damaged ({exc}); rerunning")
            cached = None
        if cached is not None:
            report = cached["report"]
            self._finish(study, {"number": trial.number, "key": key, "cached": True, "report": report})
            return
        if not self.s.space.searches_training:
            executor.submit(job)
            return
        base = self._saved_base(bkey)
        if base is None:  # these training settings are new: the worker trains them, the pruner watching
            job = replace(job, train=recipe.resolved(), pruning=self._snapshot(study, trial.number))
            self.running[trial.number] = (trial, values, job)
        executor.submit(job, base)

    def _saved_base(self, key: str) -> Base | None:
        where = self.folder / BASE / key
        try:
            return Base.read(where)
        except Damaged as exc:  # trained again by the trial, and replaced when complete
            self.progress(f"the trained base in {where} is damaged ({exc}); training it again")
            return None

    def _snapshot(self, study, number: int):
        """The study's earlier trials as the pruner sees them (see :mod:`edgeopt.tune.pruning`)."""
        if self.s.pruner == "none":
            return None
        trials = []
        for t in study.get_trials(deepcopy=False):
            stored = t.user_attrs.get("record")
            if t.number >= number or not isinstance(stored, dict) or not stored.get("curve"):
                continue
            trials.append({"number": t.number, "curve": stored["curve"], "pruned": stored["status"] == PRUNED,
                           "attrs": t.user_attrs.get(PRUNER_ATTR) or {}})
        return Snapshot(self.s.study_name, self.s.pruner, self.s.max_epochs, tuple(trials))

    def _tell_failed(self, study, trial, values, reason: str, seconds: float | None = None,
                     learned: dict[str, Any] | None = None) -> None:
        from optuna.trial import TrialState

        record = TrialRecord(
            trial.number, self.s.options.strategy, values, FAILED, reason, seconds=seconds, folder=None,
            **_curve(learned or {}),
        )
        trial.set_user_attr("record", _plain(record))
        study.tell(trial, state=TrialState.FAIL)
        self.running.pop(trial.number, None)
        self._line(record)

    def _tell_pruned(self, study, trial, values, result: dict[str, Any]) -> None:
        from optuna.trial import TrialState

        curve, epoch = result.get("curve") or [], result["pruned_at"]
        last = f"; its {result.get('curve_metric')} was {_curve_text(result)}" if curve else ""
        record = TrialRecord(
            trial.number, self.s.options.strategy, values, PRUNED,
            f"stopped by the {self.s.pruner} pruner after epoch {epoch + 1} of training{last}",
            seconds=result.get("seconds"), folder=None, **_curve(result),
        )
        trial.set_user_attr("record", _plain(record))
        trial.set_user_attr(PRUNER_ATTR, result.get("attrs") or {})
        study.tell(trial, state=TrialState.PRUNED)
        self.running.pop(trial.number, None)
        self._line(record)

    def _save_base(self, base: Base) -> None:
        """A base a worker trained, saved for every later trial with the same training settings."""
        where = self.folder / BASE / base.key
        try:
            if Base.read(where) is not None:
                return  # two trials trained the same settings at once: the first copy stands
            replace_it = False
        except Damaged:
            replace_it = True
        where.parent.mkdir(parents=True, exist_ok=True)
        with staged_output(where, overwrite=replace_it) as work:
            base.write_into(work)

    def _finish(self, study, result: dict[str, Any]) -> None:
        trial, values, job = self.running[result["number"]]
        folder = self.folder / TRIALS / job.key
        if result.get("attrs"):
            trial.set_user_attr(PRUNER_ATTR, result["attrs"])
        if result.get("base") is not None:
            self._save_base(result["base"])
        if result.get("pruned"):
            self._tell_pruned(study, trial, values, result)
            return
        if "error" in result:
            self._tell_failed(study, trial, values, result["error"], result.get("seconds"), result)
            return
        cached = result.get("cached", False)
        report = Report.from_json(result["report"])
        if cached:
            seconds = 0.0
        else:
            summary = {"params": values, "format": job.export, "seconds": result["seconds"], **_curve(result)}
            _save_trial(folder, result, summary)
            seconds = result["seconds"]
        figures = trial_figures(report, job.export)  # typed once: judged, constrained and told from it
        feasible, reasons, violations = judge(self.s.goal, figures)
        unverified = [c.message for c in report.checks if not c.ok]
        variant = report.variant(job.export)
        if variant is None or not variant.ok:
            self._tell_failed(
                study, trial, values, variant.reason if variant else f"{job.export}: not exported", seconds
            )
            return
        reasons = [*(f"verification: {m}" for m in unverified), *reasons]
        status = FEASIBLE if feasible and not unverified else INFEASIBLE
        record = TrialRecord(
            trial.number,
            self.s.options.strategy,
            values,
            status,
            "; ".join(reasons) or None,
            figures_of(report, job.export),
            violations,
            seconds,
            cached,
            str(folder.relative_to(self.folder)),
            **_curve(result),
        )
        trial.set_user_attr("record", _plain(record))
        positive = [v for v in violations.values() if v > 0]
        judged = {b.label for b in self.s.goal.limits_for(figures)}
        for budget in self.s.goal.budgets:  # unmeasured (benchmark skipped): as bad as what stopped it;
            # one that does not judge this task (max_error_increase of a classifier): met
            worst = violations.get(budget.label, max(positive, default=1.0))
            trial.set_constraint(budget.label, worst if budget.label in judged else 0.0)
        study.tell(trial, self._values(study, figures))
        self.running.pop(trial.number)
        self._line(record)

    def _values(self, study, figures: Figures) -> list[float]:
        """Objective values to tell; one not measured (benchmark skipped) counts as the worst seen."""
        values = self.s.goal.objective_values(figures)
        out = []
        for index, value in enumerate(values):
            if value is None or not math.isfinite(value):
                seen = [t.values[index] for t in study.get_trials(deepcopy=False) if t.values]
                value = max(seen) * 1.5 if seen else 1e3
            out.append(float(value))
        return out

    def _line(self, record: TrialRecord) -> None:
        self._records_seen.append(record)
        done = len(self._records_seen)
        feasible = [r for r in self._records_seen if r.feasible]

        best = min(feasible, key=lambda r: (scalar(self.s.goal, r) or math.inf, r.number), default=None)
        took = "cached" if record.cached else (f"{record.seconds:.1f} s" if record.seconds else "")
        text = describe(record) if record.status != FAILED else params_text(record.params)
        self.progress(
            f"trial #{record.number} [{record.strategy}] {record.status}: {text}"
            f"{' -- ' + record.reason if record.reason else ''} ({took}); "
            f"{done}/{self.s.options.trials} done, "
            f"running {len(self.running)}; best so far: " + (f"#{best.number}" if best else "none")
        )


def _curve(result: dict[str, Any]) -> dict[str, Any]:
    """The record fields of a trial that trained its base: its curve, and where it was pruned."""
    if not result.get("curve"):
        return {}
    return {"curve": [float(v) for v in result["curve"]], "curve_metric": result.get("curve_metric"),
            "pruned_at": result.get("pruned_at")}


def _curve_text(result: dict[str, Any]) -> str:
    value = result["curve"][-1]
    if str(result.get("curve_metric")).endswith("accuracy"):
        return f"{(1 - value) * 100:.2f} %"
    return f"{value:.4g}"


def _plain(record: TrialRecord) -> dict[str, Any]:
    return json.loads(json.dumps(record.__dict__, default=str))


def write_outcome(s: Setup, folder: Path, outcome: Outcome) -> None:
    write_text_atomic(folder / "tune.json", json.dumps(outcome.to_json(), indent=1))
    write_text_atomic(folder / "tune.html", render_html(outcome))
    if outcome.best is not None:
        write_text_atomic(
            folder / "best.yaml", best_recipe(s.space, outcome.best, outcome, list(s.base_recipe.export))
        )
    elif (folder / "best.yaml").exists():  # an earlier run's best no longer holds: kept aside, never lost
        keep_aside(folder / "best.yaml")


def tune(options: TuneOptions, progress: Callable[[str], None] = lambda line: None) -> Outcome:
    """Run (or resume) a study until it holds ``options.trials`` finished trials; return its outcome."""
    s = setup(options)
    folder = Path(options.study)
    check_path(folder)
    connected = False
    if options.executor == "ray":  # before any work: an unreachable cluster fails in seconds
        connected = connect_ray(options.address)
    try:
        return _tune(s, folder, progress)
    finally:
        if connected:
            disconnect_ray()


def _tune(s: Setup, folder: Path, progress: Callable[[str], None]) -> Outcome:
    from edgeopt.tune.journal import JournalDamaged, load_study
    from edgeopt.tune.samplers import make_sampler

    options = s.options
    with locked(folder):
        check_layout(folder, s.base_key)  # before any work: a file named base/ fails now, not after training
        notices, storage = open_folder(s, folder)
        for notice in notices:
            progress(notice)
        directions = ["minimize"] * len(s.goal.names)
        try:
            study = load_study(storage, s.study_name, directions, make_sampler(options.strategy, s.seed))
        except JournalDamaged as exc:
            raise damaged(folder, f"{JOURNAL} is damaged: {exc.where} ({exc.reason})", "repair it") from None
        driver = Driver(s, folder, progress, records(study, folder))  # a damaged record fails before training
        requeued = recover(study)
        if requeued:
            progress(f"{requeued} trial(s) interrupted earlier are queued again")
        done = len(finished(study))
        if done:
            progress(f"resuming: {done} finished trial(s) in {folder}")
        base = None
        if done >= options.trials:
            progress(
                f"the study already has {done} finished trials (--trials {options.trials}): nothing to run"
            )
        elif s.space.searches_training:
            progress(f"training is searched: each new set of training settings trains its own base "
                     f"(saved in {folder / BASE}); pruner: {s.pruner}")
        else:
            base = base_for(s, folder, progress)
        if done < options.trials:
            executor = make_executor(options.executor, base, options.workers, options.cpus_per_trial)
            try:
                driver.run(study, executor)
            except (KeyboardInterrupt, EdgeoptError):
                executor.close()
                write_outcome(s, folder, _outcome(s, study, folder))
                raise
            executor.close()
        outcome = _outcome(s, study, folder)
        write_outcome(s, folder, outcome)
        return outcome


def _outcome(s: Setup, study, folder: Path) -> Outcome:
    return Outcome.of(
        s.goal,
        records(study, folder),
        s.space.to_json(),
        {
            "folder": str(folder),
            "name": s.study_name,
            "base": s.base_key,
            "seed": s.seed,
            "defaulted_space": s.space.defaulted,
            "pruner": s.pruner,
        },
    )
