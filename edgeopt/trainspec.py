"""The recipe's ``train:`` section (:class:`TrainSpec`) and the bounds every stage's fine-tuning shares.

It sits below both :mod:`edgeopt.recipe`, whose ``train`` field it is, and :mod:`edgeopt.techniques`,
whose stages fine-tune with it, so neither imports the other to reach it (``edgeopt.recipe`` re-exports
its names). No TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from edgeopt.strict import Strict

if TYPE_CHECKING:
    from edgeopt.dataset import Dataset

# Upper bounds on training counts, for the recipe's train section and every stage: far above any
# real run, low enough that a typo (1e9 epochs) is refused at once instead of running for ever.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 1 << 20
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "rmsprop", "adagrad")


class EarlyStopping(Strict):
    patience: int = Field(5, ge=1, le=MAX_EPOCHS,
                          description="epochs without improvement of monitor before stopping")
    monitor: str = "val_loss"
    restore_best_weights: bool = True


class TrainSpec(Strict):
    epochs: int = Field(30, ge=0, le=MAX_EPOCHS, description="default 30 for a zoo model; 0 for a saved "
                        "model, which is compressed as given unless you ask for fine-tuning")
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


def steps_per_epoch(data: Dataset, spec: TrainSpec, batch_size: int | None = None) -> int:
    """Optimizer steps in one epoch of :func:`edgeopt.train.fit` (after the validation slice is taken out)."""
    n = data.n_train
    if spec.validation_split > 0:
        n -= max(1, int(round(n * spec.validation_split)))
    return int(np.ceil(n / (batch_size or spec.batch_size)))
