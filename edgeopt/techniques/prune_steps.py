"""A prune stage's schedule in optimizer steps, and its refusal before training (no TensorFlow).

Kept apart from :mod:`edgeopt.techniques.prune` so that a recipe whose schedule cannot work is
refused without importing TensorFlow.
"""

from __future__ import annotations

from edgeopt.data import Dataset, steps_per_epoch
from edgeopt.errors import InputError
from edgeopt.recipe import PruneStage, TrainSpec


def schedule_steps(stage: PruneStage, data: Dataset, train: TrainSpec) -> tuple[int, int, int]:
    """(begin step, step of the update that reaches the target, steps in the fine-tune)."""
    spe = steps_per_epoch(data, train, stage.batch_size)
    total = max(1, stage.epochs * spe)
    begin = int(round(stage.begin_epoch * spe))
    if stage.schedule == "constant":  # the first update sets the target; step 0 never runs one
        return begin, begin if begin >= 1 else stage.frequency, total
    end_epoch = stage.end_epoch if stage.end_epoch is not None else 0.8 * stage.epochs
    end = min(total, int(round(end_epoch * spe)))
    # Land the last mask update exactly on end_step: updates happen every `frequency` steps from begin.
    span = max(stage.frequency, ((end - begin) // stage.frequency) * stage.frequency)
    return begin, begin + span, total


def check_reachable(stage: PruneStage, index: int, data: Dataset, train: TrainSpec) -> None:
    """Refuse, before any training, a schedule whose target-sparsity update never runs.

    TFMOT numbers the fine-tune's steps 1 .. total when it updates masks; an update due after
    ``total`` never runs and leaves the model short of its target, with only a failed check at
    the end to show for the training time.
    """
    _, last, total = schedule_steps(stage, data, train)
    if last > total:
        what = "starts" if stage.schedule == "constant" else "reaches target_sparsity"
        raise InputError(
            f"stages[{index}] prune: the schedule {what} at step {last}, but the fine-tune has only "
            f"{total} steps ({stage.epochs} epochs x {total // max(1, stage.epochs)}); lower "
            f"stages[{index}].frequency (now {stage.frequency}), begin_epoch or end_epoch, or raise epochs"
        )
