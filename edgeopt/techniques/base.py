"""The contract every compression technique fulfils: one :class:`Technique` subclass per module.

A technique module defines its stage model and one instance of its :class:`Technique` subclass,
``TECHNIQUE``, registered under its ``kind`` in :data:`edgeopt.techniques.TECHNIQUES`. Its members
come in this order in every module:

- ``kind`` and ``Stage``: the recipe's ``kind:`` and the pydantic model of the stage;
- ``placement``: where the stage may stand in a recipe, as data (:class:`Placement`), read by the
  one ordering check, :func:`edgeopt.recipe.check_stage_order`;
- ``validate``: what is refused before any training, without TensorFlow;
- ``apply``, ``callbacks``, ``strip``, ``scope``: TFMOT's vocabulary (wrap the model, training-time
  hooks, remove the wrappers before export, custom objects to load a wrapped model);
- ``outcome``: what was achieved versus what was asked, and which layers were skipped and why;
- ``checks``: whether what was achieved is really in each exported ``.tflite``;
- hooks for what the pipeline would otherwise ask by name, each with a neutral default here:
  ``exports_float_from_here``, ``guided``, ``guidance``, ``sparse_encoding``, ``inspect_pattern``,
  ``model_files``;
- what the stage needs of the model, asked of the loaded model's capabilities before any work
  (:func:`edgeopt.loading.check_capabilities`): ``needs_training`` and ``needs_wrapping`` (a model
  :func:`wrappable` says TFMOT can wrap), True by default as every technique fine-tunes and rewrites
  or reads the model's layers.

Importing a technique never imports TensorFlow: Keras and TFMOT are imported inside the methods that
use them, so a recipe is validated, and refused, without them. Nor does it import the recipe, which
builds its stage list from the registry: what a stage model shares with the recipe's own sections
(the bounds on training counts, the check on builder options) lives here.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import Field

from edgeopt.internals import is_graph_network
from edgeopt.strict import Strict
from edgeopt.trainspec import MAX_BATCH_SIZE, MAX_EPOCHS  # the stages' bounds, re-exported
from edgeopt.types import Check, StageOutcome, Variant

if TYPE_CHECKING:
    from edgeopt.dataset import Dataset
    from edgeopt.trainspec import TrainSpec



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


def wrappable(model: Any) -> bool:
    """Whether TFMOT can wrap ``model``'s layers and edgeopt read its graph: a Sequential or Functional
    tf_keras model, not a subclassed one (its own ``call``). The one definition: the loaded model's
    ``wrappable`` (:class:`edgeopt.loading.LoadedModel`) and the techniques that wrap ask it."""
    from edgeopt.kerasapi import keras

    return is_graph_network(model) or isinstance(model, keras.Sequential)


class FineTune(Strict):
    """Fields shared by every stage, since every stage may fine-tune: how long and how fast."""

    epochs: int = Field(2, ge=0, le=MAX_EPOCHS)
    learning_rate: float | None = Field(None, gt=0, description="default: train.learning_rate / 10")
    batch_size: int | None = Field(None, ge=1, le=MAX_BATCH_SIZE, description="default: train.batch_size")


@dataclass(frozen=True)
class Placement:
    """Where a technique's stage may stand in a recipe: data for :func:`edgeopt.recipe.check_stage_order`."""

    once: bool = False  # at most one stage of this kind
    first: bool = False  # before every other stage
    last: bool = False  # after every other stage
    after: tuple[str, ...] = ()  # kinds that must come before this one when the recipe has them
    before: tuple[str, ...] = ()  # kinds that must come after this one when the recipe has them
    why: str = ""  # the reason the rules hold, quoted in their error messages


@dataclass
class StageContext:
    """What a technique may know about the run it is part of."""

    data: Dataset
    train: TrainSpec
    seed: int
    stage_index: int
    earlier: tuple[str, ...] = ()  # kinds of the stages already applied, in order
    trust_model: bool = False  # may model files named by the stage (a teacher) run their code
    notes: dict = field(default_factory=dict)  # per-stage facts a technique records for outcome()


class Guide(Protocol):
    """What :meth:`Technique.guidance` returns: it wraps a later stage's model for that stage's fine-tune."""

    def wrap(self, model: Any) -> Any: ...


class Technique:
    """One compression technique: subclasses set ``kind``, ``Stage`` and ``placement``, and define ``apply``.

    Every method takes the stage as parsed from the recipe (an instance of ``Stage``). The defaults
    are neutral: no refusal, no callbacks, nothing to strip, no custom objects, nothing achieved,
    no checks, and none of the hooks' effects.
    """

    kind: ClassVar[str] = ""
    Stage: ClassVar[type[FineTune]] = FineTune
    placement: ClassVar[Placement] = Placement()
    exports_float_from_here: ClassVar[bool] = True
    """Whether the float export formats may come from this stage's model (False: from the one before)."""
    guided: ClassVar[bool] = True
    """Whether a guide from an earlier stage (:meth:`guidance`) wraps this stage's fine-tune."""

    def validate(self, stage: FineTune, index: int, data: Dataset, train: TrainSpec) -> None:
        """Refuse, before any training and without TensorFlow, a stage that cannot work on this data.

        Raises :class:`~edgeopt.errors.InputError` naming ``stages[index]``.
        """

    def apply(self, model: Any, stage: FineTune, ctx: StageContext) -> Any:
        """Wrap ``model`` for this technique and return the model to fine-tune; ``model`` is consumed."""
        raise NotImplementedError(f"{type(self).__name__}.apply")

    def callbacks(self, stage: FineTune, ctx: StageContext) -> list:
        """Keras callbacks the fine-tune of the wrapped model needs."""
        return []

    def strip(self, model: Any) -> Any:
        """The wrapped, fine-tuned ``model`` without its training-time wrappers, ready to export."""
        return model

    def scope(self) -> contextlib.AbstractContextManager:
        """A context manager with the custom objects needed to load a wrapped model."""
        return contextlib.nullcontext()

    def outcome(self, stripped: Any, stage: FineTune, ctx: StageContext, history: dict) -> StageOutcome:
        """What the stage achieved versus what it asked, and which layers it skipped and why."""
        return stage_outcome(stage, history)

    def checks(self, outcome: StageOutcome, variants: Sequence[Variant]) -> list[Check]:
        """Whether what ``outcome`` achieved is in each exported ``.tflite`` (see :func:`exported`)."""
        return []

    def guidance(self, stage: FineTune, ctx: StageContext) -> Guide | None:
        """After ``apply`` and the fine-tune: a guide for the fine-tuning of the later stages, or None."""
        return None

    def sparse_encoding(self, stage: FineTune) -> bool:
        """Whether the exports should store sparse weights in TFLite's sparse format by default."""
        return False

    def inspect_pattern(self, stage: FineTune) -> tuple[int, int] | None:
        """The M:N pattern (at most M non-zeros in N) inspection should measure the ``.tflite`` files for."""
        return None

    def model_files(self, stage: FineTune) -> tuple[tuple[str, str], ...]:
        """(field, value) of each stage field naming a model, which may be a saved file to guard and check."""
        return ()

    def needs_training(self, stage: FineTune) -> bool:
        """Whether the stage trains the model (fine-tunes it), so needs one edgeopt can train."""
        return True

    def needs_wrapping(self, stage: FineTune) -> bool:
        """Whether the stage needs a model TFMOT can wrap (:func:`wrappable`): it wraps the layers, or
        reads the layers' graph and shapes."""
        return True


def stage_outcome(stage: FineTune, history: dict, achieved: dict | None = None,
                  skipped_layers: dict[str, int] | None = None, summary: str = "") -> StageOutcome:
    """The outcome of ``stage`` in report.json's shape: the stage's fields as its params."""
    return StageOutcome(kind=stage.kind, params=stage.model_dump(mode="json"), history=history,
                        achieved=achieved or {}, skipped_layers=skipped_layers or {}, summary=summary)


def exported(variants: Sequence[Variant], inspected: bool = False) -> list[Variant]:
    """The variants a technique's checks look at: compressed exports that were made (and inspected)."""
    return [v for v in variants if v.is_export and v.ok and (not v.inspect.empty or not inspected)]
