"""tune's pruner, asked in the worker from a snapshot of the study: Optuna's own pruners decide."""

from __future__ import annotations

import pytest

from edgeopt.tune.pruning import Snapshot, TrialPruned, curve_metric, curve_value, epoch_callback, resolve


def finished(n: int, curve: list[float]) -> tuple[dict, ...]:
    return tuple({"number": i, "curve": curve, "pruned": False, "attrs": {}} for i in range(n))


def feed(callback, values: list[float], metric: str = "val_mae") -> None:
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {metric: value, "loss": 1.0})


def test_the_median_pruner_stops_a_curve_worse_than_the_earlier_trials_and_keeps_a_better_one():
    snapshot = Snapshot("s", "median", 10, finished(4, [10.0, 8.0, 6.0, 5.0, 4.0]))
    bad = epoch_callback(snapshot, 4, "val_mae")
    with pytest.raises(TrialPruned) as stopped:
        feed(bad, [20.0, 19.0, 18.0, 17.0])
    assert stopped.value.epoch == 1  # the warm-up (one epoch in ten) over, at the first check
    assert bad.curve == [20.0, 19.0]
    good = epoch_callback(snapshot, 4, "val_mae")
    feed(good, [9.0, 7.0, 5.0, 4.0, 3.0])
    assert good.curve == [9.0, 7.0, 5.0, 4.0, 3.0]


def test_without_earlier_trials_or_a_pruner_nothing_is_stopped():
    for snapshot in (Snapshot("s", "median", 10), Snapshot("s", "none", 10, finished(4, [1.0])), None):
        callback = epoch_callback(snapshot, 0 if snapshot is None or not snapshot.trials else 4, "val_mae")
        feed(callback, [50.0] * 6)
        assert len(callback.curve) == 6


def test_the_replica_keeps_the_study_s_trial_numbers_for_hyperband_s_brackets():
    # trials 0 and 2 finished with curves; 1 is still running elsewhere (not in the snapshot)
    trials = ({"number": 0, "curve": [3.0, 2.0], "attrs": {}}, {"number": 2, "curve": [4.0], "pruned": True})
    study, trial = Snapshot("edgeopt-x", "hyperband", 27, trials).replica(3)
    assert trial.number == 3 and study.study_name == "edgeopt-x"
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "FAIL", "PRUNED", "RUNNING"]


def run_study(kind: str, curves: list[list[float]], max_epochs: int) -> list[int | None]:
    """Trials one after the other as the driver runs them: each one's snapshot holds the earlier
    ones with the pruner's bookkeeping. Returns, per trial, the epoch it was stopped at (or None)."""
    done: list[dict] = []
    stopped_at = []
    for number, curve in enumerate(curves):
        callback = epoch_callback(Snapshot("s", kind, max_epochs, tuple(done)), number, "val_mae")
        try:
            feed(callback, curve)
            stopped_at.append(None)
        except TrialPruned as stop:
            stopped_at.append(stop.epoch)
        done.append({"number": number, "curve": callback.curve, "pruned": stopped_at[-1] is not None,
                     "attrs": callback.attrs})
    return stopped_at


def test_hyperband_stops_the_losers_of_a_rung_and_keeps_the_winners():
    levels = [7, 15, 3, 19, 11, 1, 17, 9, 13, 5, 20, 2, 16, 8, 12, 4, 18, 6, 14, 10]  # each trial's quality
    curves = [[level * (1 - 0.01 * epoch) for epoch in range(27)] for level in levels]
    stopped = run_study("hyperband", curves, 27)
    pruned = [level for level, s in zip(levels, stopped, strict=True) if s is not None]
    kept = [level for level, s in zip(levels, stopped, strict=True) if s is None]
    assert len(pruned) >= 5
    assert 1 in kept and 2 in kept  # the best trials run to their end
    assert sum(pruned) / len(pruned) > sum(kept) / len(kept) + 3  # the stopped ones are the worse ones


def test_the_curve_is_lower_is_better():
    assert curve_value({"val_accuracy": 0.9}, "val_accuracy") == pytest.approx(0.1)
    assert curve_value({"val_mae": 4.0}, "val_mae") == 4.0
    assert curve_value({}, "val_mae") is None
    assert curve_metric("regression", True) == "val_mae"
    assert curve_metric("classification", False) == "accuracy"
    assert resolve("auto", True) == "hyperband" and resolve("auto", False) == "none"
