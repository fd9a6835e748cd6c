"""The stage loop: each recipe stage applied, fine-tuned, stripped and recorded, in order.

One loop for ``compress`` and for anything else that runs stages (the technique tests among them),
so what a stage sees (its context, learning rate, guide from an earlier distill stage) cannot drift
between callers. Imports TensorFlow (through :mod:`edgeopt.train`) on first call only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeopt.dataset import Dataset
from edgeopt.progress import Progress
from edgeopt.recipe import Stage
from edgeopt.techniques import TECHNIQUES, StageContext
from edgeopt.trainspec import TrainSpec
from edgeopt.types import StageOutcome


@dataclass(frozen=True)
class StagesRun:
    """What the stages made of the model."""

    model: Any  # after the last stage: integer exports convert it
    float_model: Any  # after the last stage whose model float exports may take (before QAT)
    outcomes: list[StageOutcome]


def run_stages(model: Any, stages: Sequence[Stage], data: Dataset, train: TrainSpec, *, seed: int,
               trust_model: bool = False, progress: Progress | None = None,
               earlier: tuple[str, ...] = ()) -> StagesRun:
    """Run ``stages`` on ``model`` (changed in place by the techniques that train it).

    A stage without its own learning rate fine-tunes at a tenth of the training's; a stage never
    stops early (a pruning schedule must reach its end). ``earlier`` names stages already applied
    to ``model`` elsewhere, which some techniques read (QAT after pruning preserves the zeros).

    Raises:
        Diverged: a stage's loss became NaN or infinite.
    """
    from edgeopt.train import fit

    progress = progress or Progress(quiet=True)
    outcomes, float_model, guide = [], model, None  # guide: a distill teacher wrapping later fine-tunes
    for index, stage in enumerate(stages):
        technique = TECHNIQUES[stage.kind]
        ctx = StageContext(data=data, train=train, seed=seed, stage_index=index, earlier=earlier,
                           trust_model=trust_model)
        tuned = f" ({stage.epochs} epochs)" if stage.epochs else ""  # post-training: no fine-tuning to count
        progress(f"stage {index + 1}/{len(stages)}: {stage.kind}{tuned}")
        wrapped = technique.apply(model, stage, ctx)
        history = fit(
            guide.wrap(wrapped) if guide is not None and technique.guided else wrapped,
            data,
            train,
            epochs=stage.epochs,
            batch_size=stage.batch_size,
            learning_rate=stage.learning_rate or train.learning_rate / 10,
            callbacks=[*technique.callbacks(stage, ctx), progress.keras_callback(stage.kind, stage.epochs)],
            seed=seed,
            early_stopping=False,
            what=f"stage {index + 1} ({stage.kind})",
        )
        model = technique.strip(wrapped)
        outcomes.append(technique.outcome(model, stage, ctx, history))
        guide = technique.guidance(stage, ctx) or guide
        earlier = (*earlier, stage.kind)
        if technique.exports_float_from_here:
            float_model = model
    return StagesRun(model=model, float_model=float_model, outcomes=outcomes)
