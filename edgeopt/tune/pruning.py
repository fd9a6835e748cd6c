"""Multi-fidelity tune: Optuna's pruners stop a trial whose training curve already shows it will lose.

A trial that trains its own base (its training settings differ from every earlier trial's) reports
its validation metric after every epoch. The decision to stop it is Optuna's own pruner
(:class:`optuna.pruners.MedianPruner` or :class:`optuna.pruners.HyperbandPruner`), asked in the
worker that trains, locally or on Ray, where the study's journal is not at hand. So the driver sends
each training job a :class:`Snapshot` of the study's earlier trials (their curves and the pruner's
own bookkeeping) and the worker replays it into an in-memory Optuna study with the same name and
trial numbers: the pruner sees what it would see in the journal, and hyperband puts each trial in
the same bracket. Trials still running elsewhere are not in a snapshot; a pruner that decides with
what has finished is the price of running trials in parallel.

The curve is always lower-is-better: the validation MAE of a regression, one minus the validation
accuracy of a classifier (the training split's own figure when the recipe keeps no validation split).
No TensorFlow at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeopt.internals import stored_trial

PRUNERS = ("auto", "none", "median", "hyperband")
PRUNER_ATTR = "edgeopt.pruner"  # the pruner's own system attributes (hyperband's rungs), per trial


class TrialPruned(Exception):  # noqa: N818 (Optuna's name for the same event)
    """Raised from the training loop when the pruner stops the trial after ``epoch`` (0-based)."""

    def __init__(self, epoch: int):
        super().__init__(f"stopped after epoch {epoch + 1}")
        self.epoch = epoch


def resolve(kind: str, searches_training: bool) -> str:
    """``auto`` is hyperband when trials train, else none."""
    if kind == "auto":
        return "hyperband" if searches_training else "none"
    return kind


def make_pruner(kind: str, max_epochs: int):
    """The Optuna pruner for ``kind`` (``none`` gives None). Hyperband's largest budget is the most
    epochs a trial may train; its smallest is a tenth of it, so that the first rung judges a curve
    past its first noisy epochs (at a twentieth, the face-direction study stopped a trial whose
    settings reached the best MAE elsewhere while its curve still sat on its early plateau)."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=max(1, max_epochs // 10))
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, max_epochs // 10), max_resource=max(1, max_epochs), reduction_factor=3
        )
    return None


@dataclass(frozen=True)
class Snapshot:
    """What a worker needs to make the pruner's decisions: the study's name, the pruner, and every
    earlier trial (by number) as the pruner sees it."""

    study_name: str
    kind: str
    max_epochs: int
    trials: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # number, curve, finished, attrs

    def replica(self, number: int):
        """An in-memory study holding this snapshot's trials as numbers 0 .. ``number`` - 1, and the
        Optuna trial ``number`` to report to."""
        import optuna
        from optuna.trial import TrialState

        study = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(),
            study_name=self.study_name,
            direction="minimize",
            pruner=make_pruner(self.kind, self.max_epochs),
        )
        known = {t["number"]: t for t in self.trials}
        for n in range(number):
            t = known.get(n)
            curve = (t or {}).get("curve") or []
            if not curve:  # not trained here, not finished, or unknown: a placeholder keeps the numbering
                study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
                continue
            steps = {step: float(v) for step, v in enumerate(curve)}
            attrs = dict(t.get("attrs") or {})
            if t.get("pruned"):
                trial = optuna.trial.create_trial(
                    state=TrialState.PRUNED, intermediate_values=steps, system_attrs=attrs
                )
            else:
                trial = optuna.trial.create_trial(
                    value=float(curve[-1]), intermediate_values=steps, system_attrs=attrs
                )
            study.add_trial(trial)
        trial = study.ask()
        assert trial.number == number, (trial.number, number)
        return study, trial


def curve_metric(task: str, validated: bool) -> str:
    """The Keras log the curve follows: validation MAE or accuracy (training's without validation)."""
    name = "mae" if task == "regression" else "accuracy"
    return f"val_{name}" if validated else name


def curve_value(logs: dict[str, Any], metric: str) -> float | None:
    """One epoch's curve point, lower is better."""
    value = logs.get(metric)
    if value is None:
        return None
    value = float(value)
    return 1.0 - value if metric.endswith("accuracy") else value


def epoch_callback(snapshot: Snapshot | None, number: int, metric: str):
    """A tf_keras callback that records the curve and, with a snapshot, asks the pruner after each
    epoch; it raises :class:`TrialPruned` when the pruner says stop. Read ``.curve`` and ``.attrs``
    (the pruner's system attributes for this trial) afterwards."""
    from edgeopt.kerasapi import keras

    replica = snapshot.replica(number) if snapshot is not None and snapshot.kind != "none" else None

    class Curve(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.curve: list[float] = []
            self.attrs: dict[str, Any] = {}

        def on_epoch_end(self, epoch, logs=None):
            value = curve_value(logs or {}, metric)
            if value is None:
                return
            self.curve.append(value)
            if replica is None:
                return
            study, trial = replica
            trial.report(value, epoch)
            stop = trial.should_prune()
            frozen = stored_trial(study, trial)
            self.attrs = {k: v for k, v in frozen.system_attrs.items() if not k.startswith("fixed_params")}
            if stop:
                raise TrialPruned(epoch)

    return Curve()
