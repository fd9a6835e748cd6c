"""Progress bars: drawn on a terminal, silent in CI logs and with --quiet."""

from __future__ import annotations

import io

import numpy as np

from edgeopt.progress import Progress, bars_enabled


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_drawn_on_a_terminal():
    stream = FakeTerminal()
    with Progress(stream=stream) as progress:
        task = progress.task("benchmark int8 on local", total=3)
        for _ in range(3):
            task.advance()
        task.done()
    assert "benchmark int8 on local" in stream.getvalue()
    assert "3/3" in stream.getvalue()


def test_silent_when_not_a_terminal_or_quiet():
    log = io.StringIO()
    terminal = FakeTerminal()
    assert not bars_enabled(stream=log)
    assert not bars_enabled(quiet=True, stream=terminal)
    for stream, quiet in ((log, False), (terminal, True)):
        with Progress(quiet=quiet, stream=stream) as progress:
            task = progress.task("stage", total=2)
            task.advance()
            task.update(completed=2, description="x")
            task.done()
            assert not task.active
        assert stream.getvalue() == ""


def test_status_lines_in_logs_but_not_with_quiet():
    log = io.StringIO()
    with Progress(stream=log) as progress:
        progress("stage 1/2: prune")
    assert log.getvalue().endswith("s] stage 1/2: prune\n")
    quiet = FakeTerminal()
    with Progress(quiet=True, stream=quiet) as progress:
        progress("stage 1/2: prune")
    assert quiet.getvalue() == ""
    terminal = FakeTerminal()
    with Progress(stream=terminal) as progress:
        progress.task("bar", total=1)
        progress("stage 2/2: quantize")
    assert "stage 2/2: quantize" in terminal.getvalue()


def test_keras_callback_advances_one_step_per_epoch():
    from edgeopt.kerasapi import keras

    stream = FakeTerminal()
    model = keras.Sequential([keras.layers.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 3), dtype="float32")
    with Progress(stream=stream) as progress:
        callback = progress.keras_callback("train", epochs=3)
        model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[callback])
    text = stream.getvalue()
    assert "train (loss" in text and "3/3" in text


def test_status_lines_of_the_first_seconds_print_only_once_the_run_goes_on():
    log = io.StringIO()
    with Progress(stream=log) as progress:
        progress.status("loading data digits")  # a refusal here leaves the error as the only line
    assert log.getvalue() == ""
    with Progress(stream=log) as progress:
        progress.status("loading data digits")
        progress.status("building digits_cnn (starting TensorFlow)")
        progress("training digits_cnn on digits (3 epochs max)")
    lines = [line.split("] ", 1)[1] for line in log.getvalue().splitlines()]
    assert lines == ["loading data digits", "building digits_cnn (starting TensorFlow)",
                     "training digits_cnn on digits (3 epochs max)"]
    with Progress(quiet=True, stream=log) as progress:
        progress.status("loading")
        progress("training")
    assert len(log.getvalue().splitlines()) == 3


def test_a_status_shows_at_once_on_a_terminal_and_vanishes_when_refused():
    with Progress(stream=FakeTerminal()) as progress:
        progress.status("loading model.keras (starting TensorFlow)")
        shown = [task.description for task in progress._rich.tasks]
        assert shown == ["loading model.keras (starting TensorFlow)"]
        progress.status("rebuilt model.keras in tf_keras")  # the next status replaces it
        assert [task.description for task in progress._rich.tasks] == ["rebuilt model.keras in tf_keras"]
    assert progress._status is None  # taken down before the error line a refusal prints
