"""Recipe: the schema of a compression run, YAML loading, validation and the resolved dump.

A recipe is immutable once loaded. Precedence is defaults < recipe file < command-line overrides
(``--set train.epochs=2``). Every validation error names the field path
(``stages[0].target_sparsity: must be less than 1, got 1.5``) and unknown keys come with a
"did you mean" suggestion. Each stage is validated by the model of the technique its ``kind`` names
(:data:`edgeopt.techniques.TECHNIQUES`, read at validation time), and the ordering rules the
techniques declare are checked by :func:`check_stage_order`, before any training. This module
imports no TensorFlow.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    Field,
    SerializeAsAny,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)

from edgeopt.bench.spec import BenchSpec
from edgeopt.budgets import Budgets  # the budgets: section, judged by edgeopt.budgets.judge
from edgeopt.documents import check_depth, load_yaml, read_text
from edgeopt.errors import RecipeError
from edgeopt.formats import EXPORT_NAMES
from edgeopt.litert_backend import export_problem
from edgeopt.paths import path_problem
from edgeopt.sources import DataSpec
from edgeopt.strict import SEED_LIMIT, Strict
from edgeopt.techniques import TECHNIQUES
from edgeopt.techniques.base import FineTune, plain_options
from edgeopt.techniques.prune import parse_m_by_n as parse_m_by_n  # re-exported for the CLI
from edgeopt.trainspec import OPTIMIZERS as OPTIMIZERS  # re-exported, with the train section's models
from edgeopt.trainspec import EarlyStopping as EarlyStopping
from edgeopt.trainspec import TrainSpec
from edgeopt.validation import describe
from edgeopt.zoo import ZOO

EXPORT_FORMATS = EXPORT_NAMES  # from the one table of export formats (edgeopt.formats)

# Upper bounds on counts: far above any real run, low enough that a typo (1e9 epochs, 1e20 runs)
# is refused at once instead of running for ever or allocating a billion threads.
# The train section (TrainSpec) and MAX_EPOCHS and MAX_BATCH_SIZE, shared with every stage, live in
# edgeopt.trainspec, below this module and the techniques.
# The benchmark section's bounds live with it (BenchSpec, edgeopt.bench.spec, which `edgeopt benchmark`
# shares); Strict and SEED_LIMIT in edgeopt.strict (imported here, and re-exported, for regress).


@functools.cache
def _stage_adapter(models: tuple[type[FineTune], ...]) -> TypeAdapter:
    return TypeAdapter(Annotated[Union[models], Field(discriminator="kind")])  # noqa: UP007


def _registered_stage(value: Any, handler: Any) -> FineTune:
    """``value`` validated as the stage model of the technique its ``kind`` names."""
    return _stage_adapter(tuple(t.Stage for t in TECHNIQUES.values())).validate_python(value)


# A recipe stage: the stage model of a registered technique, told apart by ``kind``. The registry is
# read at each validation, so a technique registered after this module was imported is accepted too.
Stage = Annotated[SerializeAsAny[FineTune], WrapValidator(_registered_stage)]


class ExportOptions(Strict):
    """How the export formats are produced."""

    int8_io: Literal["int8", "float"] = Field(
        "int8", description="int8 export: int8 input/output tensors, or float ones "
        "(QUANTIZE/DEQUANTIZE inside)")
    sparse_encoding: bool | None = Field(
        None, description="store sparse weights in TFLite's sparse format (default: on with a prune "
        "stage using policy xnnpack_sparse)")


class Recipe(Strict):
    name: str | None = None
    model: str = Field(..., description="zoo model name, or a path to a saved Keras model")
    trust_model: bool = Field(False, description="allow code stored in model files (Lambda layers) to "
                              "run when they are loaded: only for files from a trusted source")
    custom_objects: list[str] = Field(
        default_factory=list, description="modules (dotted names, or .py files) defining the model's custom "
        "layers and objects: imported, which runs their code, only with trust_model")
    model_options: dict[str, Any] = Field(default_factory=dict, description="zoo builder options")
    _plain_model_options = field_validator("model_options")(plain_options)
    data: str | DataSpec = Field(..., description="built-in dataset name; a path to an .npz or .csv file or "
                                 "a folder of class folders; or a mapping with options or a loader")

    @field_validator("model", "data")
    @classmethod
    def _usable_path(cls, value: Any) -> Any:
        """A name or a path a system call can take: not too long, no NUL byte, no symbolic link loop."""
        problem = path_problem(value) if isinstance(value, str) else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("data", mode="before")
    @classmethod
    def _data_mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        try:
            return DataSpec.model_validate(value)
        except ValidationError as exc:  # one line naming the field inside data, not the union's two tries
            raise ValueError(describe(exc)) from None
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)
    train: TrainSpec = Field(default_factory=TrainSpec)
    stages: list[Stage] = Field(default_factory=list)
    export: list[Literal[EXPORT_FORMATS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["float32", "int8"], min_length=1, validate_default=True
    )

    @field_validator("export")
    @classmethod
    def _quantizer_formats(cls, export: list[str], info: ValidationInfo) -> list[str]:
        """The format a LiteRT quantizer recipe makes must be exported; int4 is made by nothing else."""
        if "stages" not in info.data:  # a stage failed: its own error says why
            return export
        problem = export_problem(info.data["stages"], export)
        if problem:
            raise ValueError(problem)
        return export

    export_options: ExportOptions = Field(default_factory=ExportOptions)
    benchmark: BenchSpec = Field(default_factory=BenchSpec)
    budgets: Budgets | None = None

    @model_validator(mode="before")
    @classmethod
    def _saved_models_are_not_retrained(cls, data: Any) -> Any:
        """A saved model is the user's own: ``train.epochs`` defaults to 0 for it (30 for a zoo model)."""
        if not isinstance(data, dict) or not isinstance(data.get("model"), str) or data["model"] in ZOO:
            return data
        train = data.get("train")
        if train is None or (isinstance(train, dict) and train.get("epochs") is None):
            return {**data, "train": {**(train or {}), "epochs": 0}}
        return data

    @model_validator(mode="after")
    def _order(self) -> Recipe:
        check_stage_order([s.kind for s in self.stages])
        if len(set(self.export)) != len(self.export):
            raise ValueError("export lists a format twice")
        return self

    @property
    def run_name(self) -> str:
        return self.name or Path(self.model).stem

    def resolved(self) -> dict[str, Any]:
        """The recipe with every default filled in: plain data that reproduces this run."""
        return self.model_dump(mode="json")

    def with_changes(self, changes: Changes, source: str = "recipe") -> Recipe:
        """This recipe with ``changes`` (field path -> value, or ``KEY=VALUE``): :func:`change_recipe`."""
        return change_recipe(self, changes, source)


def check_stage_order(kinds: list[str]) -> None:
    """Reject stage orders that cannot work, before any training, from each technique's placement.

    A technique declares its rules as data (:class:`edgeopt.techniques.base.Placement`): ``once``,
    ``first``, ``last`` and the kinds it must come ``after`` (or ``before``), with the reason. Today
    distillation trains the student, so it comes first and once; channel pruning rebuilds the model, so
    it comes before the stages that shape weights; pruning comes before clustering (clustering
    after pruning can keep the zeros; pruning after clustering would break the clusters); and
    quantization comes last and once: QAT preserves what came before, but nothing after it can
    preserve QAT. Rules are checked in that order (once, first, last, after), each technique in
    registry order; kinds no technique registers are left to the stage validation.
    """
    placed = [(kind, technique.placement) for kind, technique in TECHNIQUES.items() if kind in kinds]
    where = {kind: [i for i, k in enumerate(kinds) if k == kind] for kind, _ in placed}
    for kind, rule in placed:
        if rule.once and len(where[kind]) > 1:
            raise ValueError(f"stages: only one {kind} stage is allowed (found {len(where[kind])})")
    for kind, rule in placed:
        late = next((i for i in where[kind] if i != 0), None)
        if rule.first and late is not None:
            before = f"'{kinds[late - 1]}' comes before it and would be undone"
            raise ValueError(f"stages: {kind} must be the first stage{_because(rule.why, before)}")
    for kind, rule in placed:
        early = next((i for i in where[kind] if i != len(kinds) - 1), None)
        if rule.last and early is not None:
            after = f"'{kinds[early + 1]}' follows it"
            raise ValueError(f"stages: {kind} must be the last stage{_because(rule.why, after)}")
    for kind, rule in placed:
        for earlier in rule.after:
            if earlier in kinds and max(i for i, k in enumerate(kinds) if k == earlier) > where[kind][0]:
                raise ValueError(f"stages: {earlier} must come before {kind}{_because(rule.why)}")
        for later in rule.before:
            if later in kinds and min(i for i, k in enumerate(kinds) if k == later) < where[kind][-1]:
                raise ValueError(f"stages: {kind} must come before {later}{_because(rule.why)}")


def _because(*reasons: str) -> str:
    """`` (reason; fact)`` for an error message, leaving out what is empty."""
    given = [r for r in reasons if r]
    return f" ({'; '.join(given)})" if given else ""


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    """Validate plain data as a Recipe; raise RecipeError naming the first failing field path."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        problem = describe(exc, tags=TECHNIQUES, whole="recipe", count_more=True)
        raise RecipeError(f"{source}: {problem}") from None


_KEY_PART = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")  # a field name and its [index]es


def override_path(key: str) -> list[str | int]:
    """The fields and list indexes of an override's key: ``stages[0].target_sparsity`` and
    ``stages.0.target_sparsity`` both give ``["stages", 0, "target_sparsity"]`` (a number after a dot
    is an index when it lands on a list, else a mapping key).

    Raises:
        RecipeError: the key is not a field path (empty part, unclosed bracket).
    """
    path: list[str | int] = []
    for dotted in key.split("."):
        match = _KEY_PART.fullmatch(dotted.strip())
        if match is None:
            raise RecipeError(f"--set {key}: not a field path; write e.g. stages[0].target_sparsity=0.8")
        name, indexes = match.groups()
        path.append(name)
        path += [int(i) for i in re.findall(r"\d+", indexes)]
    return path


def spell_path(path: list[str | int]) -> str:
    """A field path as validation errors spell it: ``stages[0].target_sparsity``."""
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


@dataclass(frozen=True)
class RecipeChange:
    """One change to a recipe: the field at ``key`` takes ``value``.

    ``key`` is a field path, ``stages[0].epochs`` or ``stages.0.epochs``. The value is either typed
    (``value``, used as given: never written out and read back) or, for ``--set KEY=VALUE``, the text
    ``text``, read as YAML once, when the change is applied. Made by :func:`recipe_changes`.
    """

    key: str
    value: Any = None
    text: str | None = None  # --set's VALUE, read as YAML when applied (None: ``value`` is the value)

    @classmethod
    def parse(cls, item: str) -> RecipeChange:
        """``KEY=VALUE`` as ``--set`` takes it."""
        if not isinstance(item, str) or "=" not in item:
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=2")
        key, text = item.split("=", 1)
        return cls(key, text=text)

    def read_value(self, key: str) -> Any:
        """The value: as given, or ``text`` read as YAML (``key``: the path as messages spell it)."""
        if self.text is None:
            return self.value
        try:
            return load_yaml(self.text, f"--set {key}", RecipeError)
        except RecipeError as exc:
            raise RecipeError(f"{exc}; quote a value meant as text, e.g. --set 'name=\"[draft]\"'") from None


# Changes to a recipe: ``KEY=VALUE`` strings (``--set``'s), :class:`RecipeChange` items, or a mapping
# of field paths to typed values (``{"stages[0].target_sparsity": 0.9}``), applied in order.
Changes = Iterable["str | RecipeChange"] | Mapping[str, Any] | None


def recipe_changes(changes: Changes) -> tuple[RecipeChange, ...]:
    """``changes`` as :class:`RecipeChange` items, in order (a ``KEY=VALUE`` string's syntax checked)."""
    if not changes:
        return ()
    if isinstance(changes, Mapping):
        return tuple(RecipeChange(str(key), value) for key, value in changes.items())
    if isinstance(changes, str):  # one KEY=VALUE, not a sequence of one-letter ones
        changes = [changes]
    return tuple(c if isinstance(c, RecipeChange) else RecipeChange.parse(c) for c in changes)


def apply_overrides(data: dict[str, Any], overrides: Changes) -> dict[str, Any]:
    """Apply changes (``dotted.path=value`` strings, values read as YAML; or typed, see :data:`Changes`)
    to plain recipe data, returning a copy; a list item is ``stages[0].epochs`` or ``stages.0.epochs``,
    and messages spell it the first way. :func:`change_recipe` applies them to a validated recipe."""
    result = copy.deepcopy(data) or {}
    for change in recipe_changes(overrides):
        _apply(result, change)
    return result


def change_recipe(recipe: Recipe, changes: Changes, source: str = "recipe") -> Recipe:
    """A new validated recipe: ``recipe`` with ``changes`` applied, validated once.

    The recipe is never written out and read back: its sections stay the validated objects they are,
    except those a change reaches into, which become plain data to change (``stages[0].epochs``
    changes a plain copy of ``stages``); the result is validated once, as a whole, so every rule across
    sections still holds (a stage's export format, the stage order). ``recipe`` itself is unchanged.

    Raises:
        RecipeError: a change names no field path, or the result does not validate (naming the field).
    """
    items = recipe_changes(changes)
    if not items:
        return recipe
    data: dict[str, Any] = dict(recipe)  # field -> its validated value
    for change in items:
        _apply(data, change)
    check_depth(data, source, RecipeError)
    return parse_recipe(data, source)


def _plain(value: Any) -> Any:
    """A plain-data copy of a recipe value: models as mappings of their fields, lists as lists."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return copy.deepcopy(value)


def _apply(data: dict[str, Any], change: RecipeChange) -> None:
    """Write ``change`` into ``data`` (field -> value), making absent (or null) sections on the way;
    the section it reaches into becomes a plain copy first (a validated section is never changed)."""
    parts = override_path(change.key)
    if len(parts) > 1 and isinstance(data, dict) and parts[0] in data:
        data[parts[0]] = _plain(data[parts[0]])
    node: Any = data
    for i, part in enumerate(parts):
        if isinstance(node, list) and isinstance(part, str) and part.isdigit():
            part = parts[i] = int(part)  # stages.0: an index of that list
        _check_step(node, part, parts, i)
        if i == len(parts) - 1:
            break
        if isinstance(node, dict) and node.get(part) is None:  # absent or `budgets: null`: starts it
            if isinstance(parts[i + 1], int):
                where = spell_path(parts[: i + 1])
                raise RecipeError(f"--set {spell_path(parts)}: {where} is not set; give it whole, "
                                  f"e.g. --set '{where}=[...]'")
            node[part] = {}
        node = node[part]
        if not isinstance(node, (dict, list)):
            where = spell_path(parts[: i + 1])
            raise RecipeError(f"--set {spell_path(parts)}: '{where}' is not a section")
    node[parts[-1]] = change.read_value(spell_path(parts))


def _check_step(node: Any, part: str | int, parts: list[str | int], i: int) -> None:
    """Refuse the ``i``-th step of an override's path into ``node``: a list needs an index it has,
    a mapping a name."""
    key, where = spell_path(parts), spell_path(parts[:i])
    if isinstance(node, list):
        have = f"it has {len(node)} item{'s' if len(node) != 1 else ''}"
        if not isinstance(part, int):
            raise RecipeError(f"--set {key}: {where} is a list ({have}); give an index, e.g. {where}[0]")
        if part >= len(node):
            raise RecipeError(f"--set {key}: {part} is not an index of {where} ({have})")
    elif isinstance(part, int):
        raise RecipeError(f"--set {key}: {where} is not a list")


def load_recipe(path: str | Path | None, overrides: Changes = None) -> Recipe:
    """Load a recipe file (or none: overrides only), apply overrides (:data:`Changes`, as
    :func:`change_recipe` applies them), validate once."""
    return parse_recipe(*read_recipe_data(path, overrides))


def read_recipe_data(path: str | Path | None, overrides: Changes = None) -> tuple[dict, str]:
    """A recipe file's plain data with ``overrides`` applied, not yet validated, and its source name."""
    data: Any = {}
    source = "recipe"
    if path is not None:
        path = Path(path)
        source = str(path)
        if path.is_dir():
            raise RecipeError(f"{path}: is a folder; give the path of a recipe.yaml")
        if not path.is_file():
            raise RecipeError(f"{path}: recipe file not found (give the path to a recipe.yaml)")
        data = load_yaml(read_text(path, RecipeError), source, RecipeError)
        if data is None:
            data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    data = apply_overrides(data, overrides or [])
    check_depth(data, source, RecipeError)
    return data, source


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML, in field order."""
    return yaml.safe_dump(recipe.resolved(), sort_keys=False)
