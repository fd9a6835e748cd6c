"""Recipe: the schema of a compression run, YAML loading, validation and the resolved dump.

A recipe is immutable once loaded. Precedence is defaults < recipe file < command-line overrides
(``--set train.epochs=2``). Every validation error names the field path
(``stages[0].target_sparsity: must be less than 1, got 1.5``) and unknown keys come with a
"did you mean" suggestion. Stage ordering rules live in :func:`check_stage_order` and run before any
training. This module imports no TensorFlow.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from edgeopt.bench.spec import BenchSpec
from edgeopt.documents import check_depth, load_yaml, read_text
from edgeopt.errors import RecipeError
from edgeopt.strict import SEED_LIMIT, Strict

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "rmsprop", "adagrad")
EXPORT_FORMATS = ("float32", "float16", "dynamic", "int8", "int16x8")

# Upper bounds on counts: far above any real run, low enough that a typo (1e9 epochs, 1e20 runs)
# is refused at once instead of running for ever or allocating a billion threads.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 1 << 20
MAX_STEPS = 10_000_000  # prune frequency, in optimizer steps
# The benchmark section's bounds live with it (BenchSpec, edgeopt.bench.spec, which `edgeopt benchmark`
# shares); Strict and SEED_LIMIT in edgeopt.strict (imported here, and re-exported, for regress).


def plain_options(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse builder options that are not plain finite data (a field validator for ``*_options``)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ValueError(f"key {key!r} must be a string")
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"'{where}' must be a finite number, got {item}")
        elif item is not None and not isinstance(item, (str, int, float, bool)):
            raise ValueError(f"'{where}' must be a string, number, boolean, list or mapping, "
                             f"got {type(item).__name__}")
    return value


class EarlyStopping(Strict):
    patience: int = Field(5, ge=1, le=MAX_EPOCHS,
                          description="epochs without improvement of monitor before stopping")
    monitor: str = "val_loss"
    restore_best_weights: bool = True


class TrainSpec(Strict):
    epochs: int = Field(30, ge=0, le=MAX_EPOCHS)
    batch_size: int = Field(32, ge=1, le=MAX_BATCH_SIZE)
    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    learning_rate: float = Field(1e-3, gt=0)
    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    validation_split: float = Field(0.1, ge=0, lt=1)
    early_stopping: EarlyStopping | None = None

    @model_validator(mode="after")
    def _early_stopping_needs_validation(self) -> TrainSpec:
        if self.early_stopping is not None and self.validation_split == 0:
            raise ValueError("early_stopping needs validation_split > 0")
        return self


class FineTune(Strict):
    """Fields shared by every stage that fine-tunes: how long and how fast."""

    epochs: int = Field(2, ge=0, le=MAX_EPOCHS)
    learning_rate: float | None = Field(None, gt=0, description="default: train.learning_rate / 10")
    batch_size: int | None = Field(None, ge=1, le=MAX_BATCH_SIZE, description="default: train.batch_size")


class PruneStage(FineTune):
    kind: Literal["prune"] = "prune"
    target_sparsity: float = Field(..., ge=0, lt=1, description="default 1 - M/N with structure M:N")
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="polynomial schedule start")
    schedule: Literal["polynomial", "constant"] = "polynomial"
    frequency: int = Field(10, ge=1, le=MAX_STEPS, description="steps between mask updates")
    begin_epoch: float = Field(0.0, ge=0, le=MAX_EPOCHS,
                               description="fraction of the fine-tune epochs, or epochs")
    end_epoch: float | None = Field(None, ge=0, le=MAX_EPOCHS,
                                    description="default: 80% of the fine-tune epochs")
    layers: list[str] | None = Field(None, description="glob patterns on layer names or class names")
    structure: str = Field(
        "unstructured",
        description="'unstructured', or 'M:N' (at most M non-zeros "
        "in every N consecutive input-channel weights, e.g. '2:4')",
    )
    policy: Literal["all", "xnnpack_sparse"] = Field(
        "all",
        description="'xnnpack_sparse': prune only 1x1 convolutions (XNNPACK's sparse kernels) "
        "and export with TFLite's sparse encoding",
    )

    @model_validator(mode="before")
    @classmethod
    def _structured_target(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("target_sparsity") is None:
            m_by_n = parse_m_by_n(data.get("structure", "unstructured"))
            if m_by_n is not None:
                data = {**data, "target_sparsity": 1 - m_by_n[0] / m_by_n[1]}
        return data

    @model_validator(mode="after")
    def _initial_below_target(self) -> PruneStage:
        m_by_n = parse_m_by_n(self.structure)
        if m_by_n is not None and abs(self.target_sparsity - (1 - m_by_n[0] / m_by_n[1])) > 1e-9:
            raise ValueError(
                f"structure {self.structure} fixes target_sparsity at "
                f"{1 - m_by_n[0] / m_by_n[1]:g}; remove target_sparsity or make it match"
            )
        if self.schedule == "polynomial" and self.initial_sparsity > self.target_sparsity:
            raise ValueError("initial_sparsity must not exceed target_sparsity")
        return self

    @property
    def m_by_n(self) -> tuple[int, int] | None:
        return parse_m_by_n(self.structure)


def parse_m_by_n(structure: Any) -> tuple[int, int] | None:
    """``'2:4'`` -> (2, 4); ``'unstructured'`` -> None; anything else is a ValueError."""
    if structure in (None, "unstructured"):
        return None
    parts = str(structure).split(":")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        m, n = int(parts[0]), int(parts[1])
        if 0 < m < n:
            return m, n
    raise ValueError(
        f"structure must be 'unstructured' or 'M:N' with 0 < M < N (e.g. '2:4'), got {structure!r}"
    )


CENTROID_INITS = ("kmeans_plus_plus", "linear", "density_based", "random")


class ClusterStage(FineTune):
    kind: Literal["cluster"] = "cluster"
    clusters: int = Field(16, ge=2, le=256, description="centroids per clustered weight tensor")
    centroid_init: Literal[CENTROID_INITS] = "kmeans_plus_plus"  # type: ignore[valid-type]
    layers: list[str] | None = Field(None, description="glob patterns on layer names or class names")
    preserve_sparsity: bool | None = Field(None, description="default: true when a prune stage came before")


class QuantizeStage(FineTune):
    kind: Literal["quantize"] = "quantize"
    mode: Literal["qat", "ptq"] = "qat"
    preserve: Literal["auto", "none"] = Field(
        "auto",
        description="'auto': collaborative QAT keeping earlier sparsity and clusters; "
        "'none': plain QAT (for comparison)",
    )

    @model_validator(mode="before")
    @classmethod
    def _ptq_defaults_to_no_training(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") == "ptq" and "epochs" not in data:
            data = {**data, "epochs": 0}
        return data

    @model_validator(mode="after")
    def _ptq_has_no_training(self) -> QuantizeStage:
        if self.mode == "ptq" and self.epochs:
            raise ValueError("mode ptq needs no training: set epochs to 0 (or use mode qat)")
        return self


class DistillStage(FineTune):
    kind: Literal["distill"] = "distill"
    teacher: str = Field(
        ...,
        description="zoo model name (trained by this recipe's train section) "
        "or a path to a saved Keras model",
    )
    teacher_options: dict[str, Any] = Field(default_factory=dict, description="zoo builder options")
    _plain_teacher_options = field_validator("teacher_options")(plain_options)
    alpha: float = Field(0.1, ge=0, le=1, description="weight of the label loss; 1 - alpha on the teacher")
    temperature: float = Field(4.0, gt=0, description="softmax temperature (classification)")
    guide_later_stages: bool = Field(False, description="the teacher keeps guiding the fine-tuning of "
                                     "the stages after this one (prune, cluster, QAT) with the same loss")
    teacher_epochs: int | None = Field(None, ge=0, le=MAX_EPOCHS, description="zoo teacher's training epochs "
                                       "(default: train.epochs, or this stage's epochs when that is 0)")


Stage = Annotated[PruneStage | ClusterStage | QuantizeStage | DistillStage, Field(discriminator="kind")]
STAGE_KINDS = ("prune", "cluster", "quantize", "distill")


class ExportOptions(Strict):
    """How the export formats are produced."""

    int8_io: Literal["int8", "float"] = Field(
        "int8", description="int8 export: int8 input/output tensors, or float ones "
        "(QUANTIZE/DEQUANTIZE inside)")
    sparse_encoding: bool | None = Field(
        None, description="store sparse weights in TFLite's sparse format (default: on with a prune "
        "stage using policy xnnpack_sparse)")


class Budgets(Strict):
    """Limits the compressed variants must meet; `edgeopt check` fails (exit 1) when one is missed."""

    max_size_kb: float | None = Field(None, gt=0, description="size on disk, KB = 1024 bytes")
    max_accuracy_drop: float | None = Field(
        None, ge=0, description="accuracy drop vs trained_float32 (fraction); for regression, MAE increase"
    )
    max_latency_ms: dict[str, float] | None = Field(None, description="target -> p50 milliseconds")
    variants: list[str] | None = Field(None, description="variants budgeted (default: every export)")

    @model_validator(mode="after")
    def _positive_latency(self) -> Budgets:
        for target, ms in (self.max_latency_ms or {}).items():
            if not ms > 0:
                raise ValueError(f"max_latency_ms.{target} must be > 0, got {ms}")
        return self


class Recipe(Strict):
    name: str | None = None
    model: str = Field(..., description="zoo model name, or a path to a saved Keras model")
    trust_model: bool = Field(False, description="allow code stored in model files (Lambda layers) to "
                              "run when they are loaded: only for files from a trusted source")
    model_options: dict[str, Any] = Field(default_factory=dict, description="zoo builder options")
    _plain_model_options = field_validator("model_options")(plain_options)
    data: str = Field(..., description="built-in dataset name, or a path to an .npz file")
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)
    train: TrainSpec = Field(default_factory=TrainSpec)
    stages: list[Stage] = Field(default_factory=list)
    export: list[Literal[EXPORT_FORMATS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["float32", "int8"], min_length=1
    )
    export_options: ExportOptions = Field(default_factory=ExportOptions)
    benchmark: BenchSpec = Field(default_factory=BenchSpec)
    budgets: Budgets | None = None

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


def check_stage_order(kinds: list[str]) -> None:
    """Reject stage orders that cannot work, before any training.

    Distillation trains the student, so it comes first and once. Structure-changing stages come
    next: prune, then cluster (clustering after pruning can keep the zeros; pruning after clustering
    would break the clusters). Quantization comes last and once: QAT preserves what came before,
    but nothing after it can preserve QAT.
    """
    for kind in ("distill", "prune", "cluster", "quantize"):
        if kinds.count(kind) > 1:
            raise ValueError(f"stages: only one {kind} stage is allowed (found {kinds.count(kind)})")
    if "distill" in kinds and kinds[0] != "distill":
        raise ValueError(
            f"stages: distill must be the first stage (it trains the student; "
            f"'{kinds[kinds.index('distill') - 1]}' comes before it and would be undone)"
        )
    if "quantize" in kinds and kinds[-1] != "quantize":
        after = kinds[kinds.index("quantize") + 1]
        raise ValueError(f"stages: quantize must be the last stage ('{after}' follows it)")
    if "prune" in kinds and "cluster" in kinds and kinds.index("cluster") < kinds.index("prune"):
        raise ValueError(
            "stages: prune must come before cluster (pruning after clustering breaks the clusters)"
        )


def _format_loc(loc: tuple[Any, ...]) -> str:
    path = ""
    previous_was_index = False
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            previous_was_index = True
            continue
        if previous_was_index and part in STAGE_KINDS:
            previous_was_index = False  # pydantic's discriminator tag: not a field of the recipe
            continue
        previous_was_index = False
        if part in ("function-after", "function-before") or str(part).startswith("literal["):
            continue
        path += f".{part}" if path else str(part)
    return path or "recipe"


def _format_error(err: dict[str, Any]) -> str:
    path = _format_loc(tuple(err["loc"]))
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    msg = msg[0].lower() + msg[1:] if msg else msg
    if err["type"] == "missing":
        return f"{path}: required field is missing"
    if err["type"] in ("value_error", "union_tag_invalid") or "unknown key" in msg:
        return f"{path}: {msg}"
    return f"{path}: {msg}, got {err.get('input')!r}"


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    """Validate plain data as a Recipe; raise RecipeError naming the first failing field path."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = _format_error(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise RecipeError(f"{source}: {first}{more}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.path=value`` overrides (values parsed as YAML) to plain recipe data."""
    result = copy.deepcopy(data) or {}
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=2")
        key, raw = item.split("=", 1)
        try:
            value = load_yaml(raw, f"--set {key}", RecipeError)
        except RecipeError as exc:
            raise RecipeError(f"{exc}; quote a value meant as text, e.g. --set 'name=\"[draft]\"'") from None
        node: Any = result
        parts = key.split(".")
        for part in parts[:-1]:
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise RecipeError(f"--set {key}: '{part}' is not an index of that list")
                node = node[int(part)]
            else:
                if node.get(part) is None:  # absent or `budgets: null`: the override starts the section
                    node[part] = {}
                node = node[part]
            if not isinstance(node, (dict, list)):
                raise RecipeError(f"--set {key}: '{part}' is not a section")
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise RecipeError(f"--set {key}: '{last}' is not an index of that list")
            node[int(last)] = value
        else:
            node[last] = value
    return result


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> Recipe:
    """Load a recipe file (or none: overrides only), apply overrides, validate."""
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
    return parse_recipe(data, source)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML, in field order."""
    return yaml.safe_dump(recipe.resolved(), sort_keys=False)
