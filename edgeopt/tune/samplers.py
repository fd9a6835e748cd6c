"""Search strategies for ``edgeopt tune``: random, hill climbing with restarts, constrained Bayesian,
and Optuna's own TPE and NSGA-II (measured against the Bayesian sampler in docs/tune.md).

Both samplers written here are Optuna samplers that keep no state of their own: every proposal is a
pure function of the study's trial history and of ``(seed, trial.number)``. A study resumed in a new
process with a fresh sampler therefore continues exactly as an uninterrupted one would, and two
workers asking at once get different points. Budgets are Optuna constraints (``trial.set_constraint``,
feasible iff every value <= 0); objectives are one direction or several (a Pareto search). Parameters
are encoded to the unit cube (log scale for log distributions, categoricals by index, or one-hot for
the Gaussian process) and every proposal is decoded to a value its distribution contains.
No TensorFlow here; scikit-learn is imported only when the Bayesian sampler fits its first model.
"""

from __future__ import annotations

import math
import secrets
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import intersection_search_space
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from threadpoolctl import threadpool_limits

from edgeopt.errors import InputError
from edgeopt.internals import set_trial_attr

STRATEGIES = ("random", "hill", "bayes", "tpe", "nsga2")

# System attributes written on each trial, for the record (and, for the climb, for its replay).
HILL_ATTR = "edgeopt.hill"  # {"climb": int, "role": ROLE_*}
BAYES_ATTR = "edgeopt.bayes"  # one of MODE_*

ROLE_START = "start"  # a random point that opens (or reopens) the current climb
ROLE_RESTART = "restart"  # a random point that opens a new climb after `patience` failed moves
ROLE_MOVE = "move"  # a neighbour of the current climb's best point

MODE_RANDOM = "random"  # fewer complete trials than `startup`
MODE_FEASIBILITY = "feasibility"  # no feasible trial yet: maximise P(feasible)
MODE_EI = "ei"  # expected improvement over the best feasible value x P(feasible)

# Salts keep the random streams of one trial apart: (seed, trial.number, salt).
_SALT_RELATIVE = 1
_SALT_WEIGHTS = 2
_MAX_STEP_SIGMAS = 3.0  # a hill move is a Gaussian truncated at this many `step`s
_NEIGHBOUR_TRIES = 16  # attempts at a neighbour nobody has tried yet
_LOCAL_CENTRES = 5  # best trials around which the GP acquisition is also searched
_PAREGO_RHO = 0.05  # weight of the sum in ParEGO's augmented Chebyshev scalarisation
_GP_MAXITER = 60  # L-BFGS iterations for the GP hyperparameters: bounded time per proposal
_PENDING_RADIUS = 0.1  # feature-space radius kept away from pending trials in feasibility mode


class UnknownStrategyError(InputError, ValueError):
    """The strategy is not one of :data:`STRATEGIES`."""


class TrialSeededRandomSampler(RandomSampler):
    """Optuna's random sampler drawing trial ``n``'s point from (seed, n): a resumed study goes on
    with new points instead of repeating the first ones of the earlier run (a fresh RandomSampler
    with the same seed would)."""

    def __init__(self, seed: int | None = None):
        super().__init__(seed=seed)
        self._base_seed = seed if seed is not None else int(np.random.SeedSequence().entropy % (2**31))

    def before_trial(self, study, trial: FrozenTrial) -> None:
        from optuna.samplers._lazy_random_state import LazyRandomState

        state = np.random.SeedSequence([self._base_seed, trial.number]).generate_state(1)[0]
        self._rng = LazyRandomState(int(state))
        super().before_trial(study, trial)


class _TrialSeeded:
    """Mixin for an Optuna sampler that keeps its randomness in ``_rng`` and ``_random_sampler``
    (TPE, NSGA-II): trial ``n`` draws from (seed, n), so a resumed study does not repeat the random
    points the first run drew (those are cached trials: it would spend its budget on nothing)."""

    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any):
        super().__init__(*args, seed=seed, **kwargs)
        self._base_seed = seed if seed is not None else secrets.randbits(31)

    def before_trial(self, study, trial: FrozenTrial) -> None:
        own, independent = np.random.SeedSequence([self._base_seed, trial.number]).generate_state(2)
        self._rng.rng.seed(int(own))
        self._random_sampler._rng.rng.seed(int(independent))
        super().before_trial(study, trial)


class SeededTPESampler(_TrialSeeded, optuna.samplers.TPESampler):
    """Optuna's TPE (multivariate, constant liar for parallel workers), seeded per trial. It reads
    the budgets from each trial's constraints as Optuna 5 samplers do."""


class SeededNSGAIISampler(_TrialSeeded, optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, seeded per trial; infeasible trials rank behind feasible ones."""


TPE_STARTUP = 5  # random trials before TPE models: the same as the Gaussian-process sampler's
NSGA2_POPULATION = 8  # a generation; Optuna's default (50) would leave a 20-trial study all random


def make_sampler(strategy: str, seed: int | None = None) -> BaseSampler:
    """The Optuna sampler for a tune strategy.

    Args:
        strategy: one of :data:`STRATEGIES`.
        seed: seed of every random draw; ``None`` draws one (the run is then not reproducible).

    Returns:
        ``RandomSampler`` for "random", :class:`HillClimbSampler` for "hill",
        :class:`ConstrainedGPSampler` for "bayes", Optuna's TPE for "tpe" and NSGA-II for "nsga2"
        (both seeded per trial, see :class:`SeededTPESampler`).

    Raises:
        UnknownStrategyError: (a ``ValueError``) for any other strategy.
    """
    if strategy == "random":
        return TrialSeededRandomSampler(seed=seed)
    if strategy == "hill":
        return HillClimbSampler(seed=seed)
    if strategy == "bayes":
        return ConstrainedGPSampler(seed=seed)
    if strategy == "tpe":
        with warnings.catch_warnings():  # multivariate TPE is "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return SeededTPESampler(seed=seed, n_startup_trials=TPE_STARTUP, multivariate=True,
                                    constant_liar=True)
    if strategy == "nsga2":
        return SeededNSGAIISampler(seed=seed, population_size=NSGA2_POPULATION)
    raise UnknownStrategyError(f"unknown strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")


# --------------------------------------------------------------------------- encoding


def _is_categorical(dist: BaseDistribution) -> bool:
    return isinstance(dist, CategoricalDistribution)


def _log_bounds(dist: Any) -> tuple[float, float]:
    return (math.log(dist.low), math.log(dist.high)) if dist.log else (float(dist.low), float(dist.high))


def _step(dist: Any) -> float | None:
    """The grid step of a numeric distribution in its own units (None when continuous)."""
    if isinstance(dist, IntDistribution):
        return float(dist.step)
    return None if dist.step is None else float(dist.step)


def _to_unit(dist: BaseDistribution, values: np.ndarray) -> np.ndarray:
    """Numeric values -> [0, 1] (log scale for log distributions); categoricals stay indices."""
    if _is_categorical(dist):
        return values.astype(float)
    lo, hi = _log_bounds(dist)
    v = np.log(values) if dist.log else values.astype(float)
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def _from_unit(dist: BaseDistribution, units: np.ndarray) -> np.ndarray:
    """[0, 1] -> values on the distribution's grid, inside its bounds (categoricals: indices)."""
    if _is_categorical(dist):
        return np.clip(np.rint(units), 0, len(dist.choices) - 1)
    lo, hi = _log_bounds(dist)
    v = lo + np.clip(units, 0.0, 1.0) * (hi - lo)
    if dist.log:
        v = np.exp(v)
    step = _step(dist)
    if step is not None:
        v = dist.low + np.rint((v - dist.low) / step) * step
    return np.clip(v, dist.low, dist.high)


class _Space:
    """A relative search space as rows: one column per parameter, a unit value or a choice index."""

    def __init__(self, search_space: dict[str, BaseDistribution]):
        self.names = list(search_space)
        self.dists = [search_space[name] for name in self.names]
        widths = [len(d.choices) if _is_categorical(d) else 1 for d in self.dists]
        self.n_features = sum(widths)
        self._offsets = np.cumsum([0, *widths[:-1]])

    def row(self, trial: FrozenTrial) -> np.ndarray | None:
        """The trial's point, or None when it lacks a parameter (or drew it from another range)."""
        cells = []
        for name, dist in zip(self.names, self.dists, strict=True):
            if name not in trial.params or trial.distributions.get(name) != dist:
                return None
            internal = dist.to_internal_repr(trial.params[name])
            cells.append(_to_unit(dist, np.array([internal], dtype=float))[0])
        return np.array(cells)

    def params(self, row: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, dist, u in zip(self.names, self.dists, row, strict=True):
            value = _from_unit(dist, np.array([u]))[0]
            if _is_categorical(dist):
                out[name] = dist.choices[int(value)]
            elif isinstance(dist, IntDistribution):
                out[name] = int(value)
            else:
                out[name] = float(value)
        return out

    def snap(self, rows: np.ndarray) -> np.ndarray:
        """Rows moved onto the points the distributions contain (grids, integer choice indices)."""
        out = np.empty_like(rows)
        for j, dist in enumerate(self.dists):
            column = _from_unit(dist, rows[:, j])
            out[:, j] = column if _is_categorical(dist) else _to_unit(dist, column)
        return out

    def random_rows(self, rng: np.random.Generator, n: int) -> np.ndarray:
        rows = np.empty((n, len(self.dists)))
        for j, dist in enumerate(self.dists):
            rows[:, j] = _random_units(dist, rng, n)
        return self.snap(rows)

    def features(self, rows: np.ndarray) -> np.ndarray:
        """Rows as GP inputs in [0, 1]: numeric columns as they are, categoricals one-hot."""
        out = np.zeros((len(rows), self.n_features))
        for j, (dist, offset) in enumerate(zip(self.dists, self._offsets, strict=True)):
            if _is_categorical(dist):
                out[np.arange(len(rows)), offset + rows[:, j].astype(int)] = 1.0
            else:
                out[:, offset] = rows[:, j]
        return out


def _random_units(dist: BaseDistribution, rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform draws: every choice and every grid point of a linear grid equally likely."""
    if _is_categorical(dist):
        return rng.integers(len(dist.choices), size=n).astype(float)
    step = _step(dist)
    if step is not None and not dist.log:
        points = int(round((dist.high - dist.low) / step)) + 1
        return _to_unit(dist, dist.low + rng.integers(points, size=n) * step)
    return rng.uniform(0.0, 1.0, size=n)


def _key(seen: np.ndarray) -> tuple[float, ...]:
    return tuple(np.round(seen, 9).tolist())


# --------------------------------------------------------------------------- ranking


def _signs(directions: Sequence[StudyDirection]) -> np.ndarray:
    return np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in directions])


def _violation_scales(trials: Sequence[FrozenTrial]) -> dict[str, float]:
    """Per constraint, the largest finite |value| seen: violations of different units add up."""
    scales: dict[str, float] = {}
    for trial in trials:
        for name, value in trial.constraints.items():
            if math.isfinite(value):
                scales[name] = max(scales.get(name, 0.0), abs(value))
    return {name: scale if scale > 0 else 1.0 for name, scale in scales.items()}


def _violation(trial: FrozenTrial, scales: dict[str, float]) -> float:
    return sum(max(value, 0.0) / scales.get(name, 1.0) for name, value in trial.constraints.items())


class _Ranker:
    """Orders complete trials: feasible before infeasible; feasible ones by objective, infeasible ones
    by their total violation. Several objectives are summed after normalising each by its range."""

    def __init__(self, complete: Sequence[FrozenTrial], directions: Sequence[StudyDirection]):
        self._signs = _signs(directions)
        values = np.array([t.values for t in complete], dtype=float).reshape(-1, len(self._signs))
        values = np.where(np.isfinite(values), values * self._signs, np.nan)
        with warnings.catch_warnings():  # an all-NaN column is fine: its span falls back to 1
            warnings.simplefilter("ignore", RuntimeWarning)
            self._low = np.nan_to_num(np.nanmin(values, axis=0)) if len(values) else 0.0
            span = np.nanmax(values, axis=0) - self._low if len(values) else np.ones(len(self._signs))
        self._span = np.where(np.isfinite(span) & (span > 0), span, 1.0)
        self._scales = _violation_scales(complete)

    def key(self, trial: FrozenTrial) -> tuple[int, float]:
        violation = _violation(trial, self._scales)
        if violation > 0:
            return (1, violation)
        values = np.asarray(trial.values, dtype=float) * self._signs
        if len(values) == 1:
            return (0, float(values[0]))
        return (0, float(np.sum((values - self._low) / self._span)))


# --------------------------------------------------------------------------- base


def _rng(seed: int, number: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, number, salt])


def _record(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    set_trial_attr(study, trial, key, value, system=True)  # a sampler sees FrozenTrials


class _HistorySampler(BaseSampler):
    """What both samplers share: a seed, the relative space, and seeded independent draws."""

    def __init__(self, seed: int | None):
        # SeedSequence wants a non-negative integer; a None seed is drawn once per sampler.
        self._seed = secrets.randbits(32) if seed is None else int(seed) % 2**32

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        space = intersection_search_space(complete)
        return {name: dist for name, dist in space.items() if not dist.single()}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        rng = _rng(self._seed, trial.number, 1000 + zlib.crc32(param_name.encode()))
        row = _random_units(param_distribution, rng, 1)
        return _Space({param_name: param_distribution}).params(row)[param_name]


# --------------------------------------------------------------------------- hill climbing


class HillClimbSampler(_HistorySampler):
    """Hill climbing with restarts, replayed from the trial history at every proposal.

    The first ``startup`` trials are random and open climb 0. Each later trial is a neighbour of the
    current climb's best trial: one or two parameters change, a numeric one by a Gaussian step of
    ``step`` times its range in unit space (log scale for log distributions; truncated at three
    steps, rounded onto its grid, at least one grid point away), a categorical one to another choice.
    After ``patience`` consecutive moves that do not beat the climb's best (a failed or pruned trial
    does not), the next trial is a fresh random point that opens a new climb. "Better" is the order of
    :class:`_Ranker`. Each trial records ``{"climb", "role"}`` under :data:`HILL_ATTR`, so the climb
    is replayed exactly whichever process proposes the next trial.

    Args:
        seed: seed of every random draw, combined with the trial number.
        patience: non-improving moves before a restart.
        step: standard deviation of a numeric move, as a fraction of the range.
        startup: number of random trials before the first move.
    """

    def __init__(self, seed: int | None = None, patience: int = 4, step: float = 0.15, startup: int = 1):
        super().__init__(seed)
        if patience < 1 or not 0 < step <= 1 or startup < 1:
            raise ValueError(
                f"need patience >= 1, 0 < step <= 1, startup >= 1; got {patience}, {step}, {startup}"
            )
        self._patience = patience
        self._step = step
        self._startup = startup

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        space = _Space(search_space)
        history = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
        climb, role, base = self._next_step(trial.number, history, space, study.directions)
        _record(study, trial, HILL_ATTR, {"climb": climb, "role": role})
        if not search_space:
            return {}
        rng = _rng(self._seed, trial.number, _SALT_RELATIVE)
        if base is None:
            return space.params(space.random_rows(rng, 1)[0])
        seen = {_key(row) for row in (space.row(t) for t in history) if row is not None}
        for _ in range(_NEIGHBOUR_TRIES):
            row = self._neighbour(space, base, rng)
            if _key(row) not in seen:
                break
        return space.params(row)

    def _next_step(
        self,
        number: int,
        history: list[FrozenTrial],
        space: _Space,
        directions: Sequence[StudyDirection],
    ) -> tuple[int, str, np.ndarray | None]:
        """(climb, role, base row of a move or None for a random point) for the next trial."""
        if number < self._startup:
            return 0, ROLE_START, None
        climbs = _climb_of_each(history)
        current = max((climb for _, climb, _ in climbs), default=0)
        members = [(t, role) for t, climb, role in climbs if climb == current]
        ranker = _Ranker([t for t in history if t.state == TrialState.COMPLETE], directions)
        best: FrozenTrial | None = None
        stale = 0
        for member, role in members:
            if not member.state.is_finished():
                continue
            better = member.state == TrialState.COMPLETE and (
                best is None or ranker.key(member) < ranker.key(best)
            )
            if better:
                best, stale = member, 0
            elif role == ROLE_MOVE:
                stale += 1
        if stale >= self._patience:
            return current + 1, ROLE_RESTART, None
        if best is not None and (row := space.row(best)) is not None:
            return current, ROLE_MOVE, row
        # The climb's opening point is still running (parallel workers): move around it.
        for member, role in members:
            if (
                role != ROLE_MOVE
                and not member.state.is_finished()
                and (row := space.row(member)) is not None
            ):
                return current, ROLE_MOVE, row
        return current, ROLE_START, None

    def _neighbour(self, space: _Space, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        changed = 1 if len(base) == 1 else int(rng.integers(1, 3))
        row = base.copy()
        for j in rng.choice(len(base), size=changed, replace=False):
            row[j] = self._move(space.dists[j], float(base[j]), rng)
        return row

    def _move(self, dist: BaseDistribution, unit: float, rng: np.random.Generator) -> float:
        if _is_categorical(dist):
            other = int(rng.integers(len(dist.choices) - 1))
            return float(other + int(other >= int(unit)))
        bound = _MAX_STEP_SIGMAS * self._step
        delta = float(np.clip(rng.normal(0.0, self._step), -bound, bound))
        target = unit + delta if 0.0 <= unit + delta <= 1.0 else unit - delta  # mirror at a bound
        moved = float(_to_unit(dist, _from_unit(dist, np.array([target])))[0])
        step = _step(dist)
        if step is None or abs(moved - unit) > 1e-12:
            return moved
        # Rounded back onto the same grid point: take the next one in the move's direction.
        value = float(_from_unit(dist, np.array([unit]))[0])
        direction = 1.0 if delta >= 0 else -1.0
        if not dist.low <= value + direction * step <= dist.high:
            direction = -direction
        return float(_to_unit(dist, np.array([value + direction * step]))[0])


def _climb_of_each(history: list[FrozenTrial]) -> list[tuple[FrozenTrial, int, str]]:
    """(trial, climb, role) in trial order; a trial without a record (enqueued, or proposed by
    another sampler) joins the latest climb as a starting point."""
    out = []
    latest = 0
    for trial in sorted(history, key=lambda t: t.number):
        record = trial.system_attrs.get(HILL_ATTR)
        if isinstance(record, dict):
            climb, role = int(record["climb"]), str(record["role"])
        else:
            climb, role = latest, ROLE_START
        latest = max(latest, climb)
        out.append((trial, climb, role))
    return out


# --------------------------------------------------------------------------- Bayesian optimisation


class ConstrainedGPSampler(_HistorySampler):
    """Bayesian optimisation with Gaussian processes that honours the budgets (constraints).

    One GP (Matern 5/2 with a length scale per input, plus white noise, on normalised targets) models
    the objective and one GP models each constraint. The acquisition is expected improvement over the
    best feasible value times the probability that every constraint is <= 0; until a feasible trial
    exists it is the probability of feasibility alone. Several objectives are scalarised ParEGO-style:
    each is normalised to [0, 1] over the complete trials and combined by an augmented Chebyshev sum
    with a random weight vector per trial. Running trials enter the objective GP at the best value so
    far (constant liar), and no proposal repeats a point already tried or running. The first
    ``startup`` complete trials are random. The acquisition is maximised over ``candidates`` random
    points plus as many again around the best trials, in log space; every draw comes from
    ``(seed, trial.number)``.

    Args:
        seed: seed of every random draw, combined with the trial number.
        startup: complete trials needed before the GP is used.
        candidates: random candidate points per proposal.
    """

    def __init__(self, seed: int | None = None, startup: int = 5, candidates: int = 2000):
        super().__init__(seed)
        if startup < 2 or candidates < 1:
            raise ValueError(f"need startup >= 2 and candidates >= 1; got {startup}, {candidates}")
        self._startup = startup
        self._candidates = candidates

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        space = _Space(search_space)
        history = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
        complete = [
            (t, row)
            for t in history
            if t.state == TrialState.COMPLETE
            and np.all(np.isfinite(t.values))
            and (row := space.row(t)) is not None
        ]
        if not search_space or len(complete) < self._startup:
            _record(study, trial, BAYES_ATTR, MODE_RANDOM)
            return {}  # sample_independent draws each parameter at random
        rng = _rng(self._seed, trial.number, _SALT_RELATIVE)
        weights = _rng(self._seed, trial.number, _SALT_WEIGHTS).dirichlet(np.ones(len(study.directions)))
        trials = [t for t, _ in complete]
        rows = np.array([row for _, row in complete])
        y = _scalarise(trials, study.directions, weights)
        scales = _violation_scales(trials)
        violations = np.array([_violation(t, scales) for t in trials])
        feasible = violations <= 0
        pending = np.array(
            [row for t in history if t.state == TrialState.RUNNING and (row := space.row(t)) is not None]
        ).reshape(-1, len(space.names))
        # A trial the pruner stopped was judged a loser from its curve: the surrogate takes it as no
        # better than the worst complete trial, and proposals keep away from it as from a pending
        # trial, so the search moves on instead of asking for the same point again.
        pruned = np.array(
            [row for t in history if t.state == TrialState.PRUNED and (row := space.row(t)) is not None]
        ).reshape(-1, len(space.names))
        seen = {_key(row) for row in (space.row(t) for t in history) if row is not None}

        candidates = self._candidate_rows(space, rows, y, feasible, violations, rng)
        fresh = np.array([_key(row) not in seen for row in candidates])
        if fresh.any():
            candidates = candidates[fresh]
        features = space.features(candidates)
        with _quiet_single_threaded():
            log_pf = _log_feasibility(space.features(rows), trials, features)
            if feasible.any():
                mode = MODE_EI
                liar = np.full(len(pending), y[feasible].min())
                loser = np.full(len(pruned), y.max())
                x_obj = space.features(np.concatenate([rows, pruned, pending]))
                mean, std = _fit(x_obj, np.concatenate([y, loser, liar])).predict(features, return_std=True)
                acquisition = (_log_expected_improvement(mean, std, y[feasible].min()) + log_pf
                               + _log_pending_penalty(features, space.features(pruned)))
            else:
                mode = MODE_FEASIBILITY
                acquisition = log_pf + _log_pending_penalty(
                    features, space.features(np.concatenate([pending, pruned])))
        _record(study, trial, BAYES_ATTR, mode)
        return space.params(candidates[int(np.argmax(acquisition))])

    def _candidate_rows(
        self,
        space: _Space,
        rows: np.ndarray,
        y: np.ndarray,
        feasible: np.ndarray,
        violations: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Random points, plus Gaussian perturbations (of several widths) of the best trials."""
        uniform = space.random_rows(rng, self._candidates)
        order = np.lexsort((np.where(feasible, y, violations), ~feasible))
        centres = rows[order[:_LOCAL_CENTRES]]
        per_centre = max(1, self._candidates // len(centres))
        local = np.repeat(centres, per_centre, axis=0)
        widths = np.exp(rng.uniform(math.log(0.01), math.log(0.2), size=(len(local), 1)))
        numeric = np.array([not _is_categorical(d) for d in space.dists])
        moved = local + rng.normal(size=local.shape) * widths
        local = np.where(numeric, np.clip(moved, 0.0, 1.0), local)
        # Each categorical changes with probability 1 / (number of parameters).
        flip = (~numeric) & (rng.uniform(size=local.shape) < 1.0 / len(space.dists))
        local = np.where(flip, space.random_rows(rng, len(local)), local)
        return np.concatenate([uniform, space.snap(local)])


def _scalarise(
    trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection], weights: np.ndarray
) -> np.ndarray:
    """One value to minimise per trial: the objective, or ParEGO's augmented Chebyshev scalarisation."""
    values = np.array([t.values for t in trials], dtype=float) * _signs(directions)
    if values.shape[1] == 1:
        return values[:, 0]
    low, high = values.min(axis=0), values.max(axis=0)
    normalised = (values - low) / np.where(high > low, high - low, 1.0)
    weighted = normalised * weights
    return weighted.max(axis=1) + _PAREGO_RHO * weighted.sum(axis=1)


def _log_feasibility(x: np.ndarray, trials: Sequence[FrozenTrial], candidates: np.ndarray) -> np.ndarray:
    """log P(every constraint <= 0) at the candidates, one GP per constraint."""
    from scipy.special import log_ndtr

    total = np.zeros(len(candidates))
    names = sorted({name for t in trials for name in t.constraints})
    for name in names:
        values = np.array([t.constraints.get(name, np.nan) for t in trials], dtype=float)
        known = np.isfinite(values)
        if known.sum() < 2:
            continue
        mean, std = _fit(x[known], values[known]).predict(candidates, return_std=True)
        total += log_ndtr(-mean / np.maximum(std, 1e-9))
    return total


def _log_expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """log EI for minimisation, accurate far into the tail where EI itself underflows to 0."""
    from scipy.special import erfcx, ndtr

    std = np.maximum(std, 1e-9)
    z = (best - mean) / std
    log_phi = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    # EI = std * h(z), h(z) = z Phi(z) + phi(z): direct above 0, through erfcx (no underflow) down to
    # -25, and by its asymptotic series phi(z) / z^2 (1 - 3/z^2 + 15/z^4 - 105/z^6) below.
    log_h = np.empty_like(z)
    upper, middle, lower = z >= 0, (z < 0) & (z >= -25), z < -25
    zu, zm, zl = z[upper], z[middle], z[lower]
    log_h[upper] = np.log(zu * ndtr(zu) + np.exp(log_phi[upper]))
    log_h[middle] = log_phi[middle] + np.log(1 + zm * math.sqrt(math.pi / 2) * erfcx(-zm / math.sqrt(2)))
    series = -3 / zl**2 + 15 / zl**4 - 105 / zl**6
    log_h[lower] = log_phi[lower] - 2 * np.log(-zl) + np.log1p(series)
    return log_h + np.log(std)


def _log_pending_penalty(candidates: np.ndarray, pending: np.ndarray) -> np.ndarray:
    """Keeps proposals away from a running trial (while only feasibility is sought) and from a trial
    the pruner stopped."""
    if len(pending) == 0:
        return np.zeros(len(candidates))
    d2 = ((candidates[:, None, :] - pending[None, :, :]) ** 2).sum(axis=2)
    return np.log1p(-0.99 * np.exp(-d2 / (2 * _PENDING_RADIUS**2))).sum(axis=1)


def _fit(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
        length_scale=np.full(x.shape[1], 0.5), length_scale_bounds=(1e-2, 1e2), nu=2.5
    ) + WhiteKernel(1e-3, (1e-6, 1e-1))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, optimizer=_bounded_lbfgs, random_state=0)
    return gp.fit(x, y)


def _bounded_lbfgs(objective: Any, theta: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy.optimize import minimize

    result = minimize(
        objective, theta, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": _GP_MAXITER}
    )
    return result.x, float(result.fun)


@contextmanager
def _quiet_single_threaded() -> Iterator[None]:
    """GP fits without ConvergenceWarnings, on one BLAS thread: on a small machine shared with the
    trials, threads only contend (5x slower measured), and one thread keeps the sums reproducible."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
