"""The search space of a tune recipe: ranges and choices written in place of stage and export fields.

A tune recipe is an ordinary recipe in which some stage fields, or ``export``, hold a search
dimension instead of a value::

    stages:
      - kind: prune
        target_sparsity: {range: [0.5, 0.95]}
        layers: {choice: [null, [conv2, dense]]}
      - kind: cluster
        clusters: {choice: [8, 16, 32]}
    export: {choice: [int8, float16]}

``{range: [low, high]}`` is a number between the two (integers when both ends are, ``step`` and
``log: true`` optional); ``{choice: [...]}`` one of the values listed (any YAML value). Every
dimension is checked before a trial runs: the recipe must validate with each dimension at both of
its ends (so an unknown field, a value out of the field's bounds or an empty range is refused at
once, naming the field), and with every value of a choice (with the other dimensions at their
low, else their high ends), so a bad value in the middle of a list is refused too.

Training settings can be searched too (:data:`TRAINING`: ``train.learning_rate``, ``train.batch_size``,
``train.optimizer``, ``train.l1``, ``train.l2``, ``train.dropout``, ``train.epochs``,
``train.early_stopping.patience``) and so can a zoo model's width (``model_options.width``). Trials
with the same training settings share one trained base; the others train their own. Data, model,
seed and the other training fields (validation split, ...) stay fixed: they define what the trials
are compared on. A recipe without dimensions gets :func:`default_space`. No TensorFlow here.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any

from edgeopt.errors import RecipeError
from edgeopt.recipe import Recipe, parse_recipe
from edgeopt.techniques import TECHNIQUES
from edgeopt.zoo import ZOO

KEYS = {"range", "choice", "log", "step"}
SEARCHABLE = ("stages", "export", "train", "model_options")  # sections whose fields may hold a dimension
# The training settings a study may search: each changes the trained base, so trials differ in it.
TRAINING = (
    "train.learning_rate",
    "train.batch_size",
    "train.optimizer",
    "train.l1",
    "train.l2",
    "train.dropout",
    "train.epochs",
    "train.early_stopping.patience",
)
MODEL_OPTIONS = ("width",)  # a zoo builder's options a study may search (when the builder has them)


@dataclass(frozen=True)
class Dimension:
    """One searched field: ``name`` is its dotted path, as ``--set`` spells it (``stages.0.clusters``)."""

    name: str
    kind: str  # "float", "int" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def to_json(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"name": self.name, "choice": list(self.choices)}
        spec = {"name": self.name, "range": [self.low, self.high]}
        return spec | ({"log": True} if self.log else {}) | ({"step": self.step} if self.step else {})

    @property
    def trains(self) -> bool:
        """Whether this dimension changes the trained base (a training setting or the model's width)."""
        return self.name.startswith(("train.", "model_options."))

    def ends(self) -> tuple[Any, Any]:
        return (self.choices[0], self.choices[-1]) if self.kind == "choice" else (self.low, self.high)

    def encode(self, value: Any) -> Any:
        """The value as an Optuna parameter (a choice of a list or mapping becomes its JSON text)."""
        return json.dumps(value) if self.kind == "choice" and isinstance(value, (list, dict)) else value

    def decode(self, value: Any) -> Any:
        if self.kind == "choice":
            return next(c for c in self.choices if self.encode(c) == value)
        return int(value) if self.kind == "int" else float(value)

    def distribution(self):
        import optuna

        if self.kind == "choice":
            return optuna.distributions.CategoricalDistribution([self.encode(c) for c in self.choices])
        if self.kind == "int":
            return optuna.distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class Space:
    """A recipe's plain data (dimensions taken out) and its dimensions."""

    plain: dict[str, Any]
    dimensions: tuple[Dimension, ...]
    defaulted: bool = False  # the recipe had no dimensions; these are :func:`default_space`'s

    def recipe_data(self, values: dict[str, Any]) -> dict[str, Any]:
        """The plain recipe data with ``values`` (dimension name -> value) written in."""
        data = copy.deepcopy(self.plain)
        for name, value in values.items():
            _put(data, name, value)
        return data

    def recipe(self, values: dict[str, Any], source: str = "tune") -> Recipe:
        return parse_recipe(self.recipe_data(values), source)

    def to_json(self) -> list[dict[str, Any]]:
        return [d.to_json() for d in self.dimensions]

    @property
    def searches_training(self) -> bool:
        """Whether trials differ in their trained base (each set of training values trains one)."""
        return any(d.trains for d in self.dimensions)


def _is_dimension(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and set(value) <= KEYS
        and ("range" in value or "choice" in value)
    )


def _put(data: Any, name: str, value: Any) -> None:
    parts = name.split(".")
    node = data
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _dimension(name: str, spec: dict[str, Any]) -> Dimension:
    where = f"space: {name}"
    if "range" in spec and "choice" in spec:
        raise RecipeError(f"{where}: give either range or choice, not both")
    if "choice" in spec:
        choices = spec["choice"]
        if set(spec) - {"choice"}:
            raise RecipeError(f"{where}: choice takes no {', '.join(sorted(set(spec) - {'choice'}))}")
        if not isinstance(choices, list) or not choices:
            raise RecipeError(f"{where}: choice must be a non-empty list, got {choices!r}")
        if len({json.dumps(c, sort_keys=True) for c in choices}) != len(choices):
            raise RecipeError(f"{where}: choice lists a value twice")
        return Dimension(name, "choice", choices=tuple(choices))
    bounds = spec["range"]
    numbers = (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
    )
    if not numbers:
        raise RecipeError(f"{where}: range must be [low, high] with two finite numbers, got {bounds!r}")
    low, high = bounds
    if not low < high:
        raise RecipeError(
            f"{where}: range [{low}, {high}] is empty or inverted; write [low, high] with low < high"
        )
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise RecipeError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise RecipeError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0):
        raise RecipeError(f"{where}: step must be a number > 0, got {step!r}")
    if step is not None and log:
        raise RecipeError(f"{where}: give step or log, not both")
    integer = all(isinstance(b, int) for b in bounds) and (step is None or isinstance(step, int))
    return Dimension(
        name,
        "int" if integer else "float",
        float(low),
        float(high),
        log,
        float(step) if step is not None else None,
    )


def _find(node: Any, path: str, found: list[tuple[str, dict]]) -> None:
    """Collect (dotted path, spec) of every dimension under ``node``; misplaced ones are refused."""
    if _is_dimension(node):
        found.append((path, node))
        return
    if isinstance(node, dict):
        for key, value in node.items():
            _find(value, f"{path}.{key}" if path else str(key), found)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _find(value, f"{path}.{index}", found)


def default_space(recipe: Recipe) -> list[Dimension]:
    """What a recipe without dimensions searches: each prune stage's target sparsity, each cluster
    stage's cluster count and each channel-pruning stage's fraction of channels removed. (A student's
    width is not searched: trials share one base.)"""
    dims = []
    for index, stage in enumerate(recipe.stages):
        if stage.kind == "prune" and stage.structure == "unstructured":
            dims.append(Dimension(f"stages.{index}.target_sparsity", "float", 0.5, 0.95))
        elif stage.kind == "cluster":
            dims.append(Dimension(f"stages.{index}.clusters", "choice", choices=(8, 16, 32)))
        elif stage.kind == "prune_channels":
            dims.append(Dimension(f"stages.{index}.fraction", "float", 0.0, 0.75))
    return dims


def parse_space(data: dict[str, Any], source: str = "recipe") -> Space:
    """Take the dimensions out of tune recipe data, validate them, and return the :class:`Space`."""
    found: list[tuple[str, dict]] = []
    _find(data, "", found)
    plain = copy.deepcopy(data)
    dims = []
    for name, spec in found:
        top = name.split(".")[0]
        if top not in SEARCHABLE:
            raise RecipeError(
                f"space: {name}: only stage fields, export, training settings ({_names(TRAINING)}) and "
                "model_options.width can be searched; model, data and seed define what trials are compared on"
            )
        if top == "train" and name not in TRAINING:
            raise RecipeError(
                f"space: {name}: is not a training setting tune can search; search one of {_names(TRAINING)}"
            )
        if top == "model_options":
            _check_model_option(data, name)
        if (name == "export" or name.startswith("export.")) and (name != "export" or "range" in spec):
            raise RecipeError(f"space: {name}: search the export format as export: {{choice: [int8, ...]}}")
        if name.endswith(".kind"):
            raise RecipeError(f"space: {name}: a stage's kind cannot be searched")
        dims.append(_dimension(name, spec))
    # Validate: the recipe must hold with every dimension at each of its ends.
    space = Space(plain, tuple(dims))
    for dim in dims:
        _check_field(space, dim.name)
    for end in (0, 1):
        values = {d.name: _as_field(d, d.ends()[end]) for d in dims}
        try:
            space.recipe(values, source)
        except RecipeError as exc:
            which = "low" if end == 0 else "high"
            raise RecipeError(
                f"{exc} (with every searched field at the {which} end of its range or choice)"
            ) from None
    for dim in dims:
        if dim.kind == "choice":
            for value in dim.choices[1:-1]:  # the ends were checked above
                _check_choice(space, dim, value, source)
    if not dims:
        recipe = space.recipe({}, source)
        return Space(plain, tuple(default_space(recipe)), defaulted=True)
    return space


def _names(paths: tuple[str, ...]) -> str:
    return ", ".join(p.removeprefix("train.") for p in paths)


def _check_model_option(data: dict[str, Any], name: str) -> None:
    """``model_options.width`` needs a zoo model whose builder has a width."""
    option = name.removeprefix("model_options.")
    model = data.get("model")
    entry = ZOO.get(model) if isinstance(model, str) else None
    if entry is None:
        raise RecipeError(
            f"space: {name}: the model {model!r} has no {option} to search: only a zoo model's builder "
            f"({', '.join(ZOO)}) has model options"
        )
    if option not in MODEL_OPTIONS or option not in entry.options:
        known = [o for o in entry.options if o in MODEL_OPTIONS]
        raise RecipeError(
            f"space: {name}: the zoo model {model} has no searchable option {option!r}"
            + (f"; it has {', '.join(known)}" if known else "")
        )


def _check_choice(space: Space, dim: Dimension, value: Any, source: str) -> None:
    """One value of a choice must make a valid recipe with the other dimensions at their low ends,
    or else at their high ends (a value valid only with other values is caught when drawn)."""
    problems = []
    for end in (0, 1):
        values = {d.name: _as_field(d, d.ends()[end]) for d in space.dimensions}
        values[dim.name] = _as_field(dim, value)
        try:
            space.recipe(values, source)
            return
        except RecipeError as exc:
            problems.append(exc)
    shown = json.dumps(value)
    raise RecipeError(
        f"space: {dim.name}: the choice value {shown} is not valid ({problems[0]}); fix or drop it"
    ) from None


def _as_field(dim: Dimension, value: Any) -> Any:
    """A dimension's value as its recipe field holds it (``export`` is a list of one format)."""
    if dim.name == "export":
        return [value]
    return int(value) if dim.kind == "int" else value


def _check_field(space: Space, name: str) -> None:
    """A dimension must sit on a field the stage declares (pydantic would reject it anyway; this
    names the dimension)."""
    if not name.startswith("stages."):
        return
    parts = name.split(".")
    if len(parts) != 3:
        raise RecipeError(f"space: {name}: a dimension sits directly on a stage field (stages.N.field)")

    stage = space.plain["stages"][int(parts[1])]
    kind = stage.get("kind") if isinstance(stage, dict) else None
    technique = TECHNIQUES.get(kind)
    if technique is not None and parts[2] not in technique.Stage.model_fields:
        raise RecipeError(f"space: {name}: '{parts[2]}' is not a field of a {kind} stage")


def values_for(space: Space, params: dict[str, Any]) -> dict[str, Any]:
    """Optuna parameters (encoded) -> recipe field values."""
    dims = {d.name: d for d in space.dimensions}
    return {name: _as_field(dims[name], dims[name].decode(value)) for name, value in params.items()}
