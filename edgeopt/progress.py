"""Progress display for long work: rich bars on an interactive terminal, no bars anywhere else.

Bars are drawn on stderr only when stderr is a TTY and the user did not pass ``--quiet``; in CI
logs (no TTY) and with ``--quiet`` every bar call is a no-op, so library code can report progress
unconditionally. Calling the :class:`Progress` object with a message prints one status line per step
(on a terminal above the bars, in logs as a plain line), and nothing with ``--quiet``.
:meth:`Progress.status` is for the first seconds, steps that may still end in a refusal (loading the
data, starting TensorFlow with the model, rebuilding and verifying it): shown at once on a terminal,
and printed as lines once a later step confirms the run goes on, so that a bad input stays one line.
:meth:`Progress.keras_callback` builds a tf_keras ``Callback`` that advances a bar once per epoch;
the Keras class is created on first use, so importing this module does not import TensorFlow.

Usage::

    with Progress(quiet=quiet) as progress:
        progress("training digits_cnn")          # a status line (also in CI logs, unless quiet)
        model.fit(..., callbacks=[progress.keras_callback("train", epochs)])
        bench = progress.task("benchmark int8 on local", total=runs)
        for _ in range(runs):
            ...; bench.advance()
        bench.done()
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

_CALLBACK_CLASS: type | None = None


def bars_enabled(quiet: bool = False, stream: TextIO | None = None) -> bool:
    """True when progress bars should be drawn: not quiet and the stream (stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    if quiet:
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


class Task:
    """One bar. A disabled task (no terminal, or quiet) accepts every call and does nothing."""

    def __init__(self, progress: Any | None, task_id: Any | None):
        self._progress = progress
        self._id = task_id

    @property
    def active(self) -> bool:
        """Whether this task draws anything."""
        return self._progress is not None

    def advance(self, steps: float = 1, description: str | None = None) -> None:
        """Move the bar forward, optionally replacing its text."""
        if self._progress is not None:
            kwargs = {"description": description} if description is not None else {}
            self._progress.update(self._id, advance=steps, **kwargs)

    def update(self, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        """Set the bar's position, length or text."""
        if self._progress is not None:
            kwargs: dict[str, Any] = {}
            if completed is not None:
                kwargs["completed"] = completed
            if total is not None:
                kwargs["total"] = total
            if description is not None:
                kwargs["description"] = description
            self._progress.update(self._id, **kwargs)

    def done(self) -> None:
        """Mark the bar complete (fills it even if fewer steps ran, e.g. early stopping)."""
        if self._progress is not None:
            task = self._progress.tasks[self._progress.task_ids.index(self._id)]
            end = task.total if task.total is not None else task.completed
            self._progress.update(self._id, completed=end)
            self._progress.stop_task(self._id)


class Progress:
    """A context manager owning the bars of one command.

    Args:
        quiet: never draw anything.
        stream: where bars go (default stderr); bars are drawn only if it is a terminal.
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None):
        self.quiet = quiet
        self.enabled = bars_enabled(quiet, stream)
        self._stream = sys.stderr if stream is None else stream
        self._rich: Any | None = None
        self._start = time.monotonic()
        self._pending: list[str] = []  # status lines not yet printed (see status)
        self._status: Any | None = None  # the rich task showing the latest of them on a terminal

    def _stamped(self, message: str) -> str:
        return f"[{time.monotonic() - self._start:6.1f}s] {message}"

    def __call__(self, message: str) -> None:
        """One status line per step (``[  12.3s] stage 1/2: prune``), on any stream, unless quiet.

        Step lines are few and useful in CI logs too; only the bars are terminal-only. The status
        lines held so far (:meth:`status`) are printed first: the run got past them.
        """
        if self.quiet:
            return
        self._clear_status()
        for line in [*self._pending, self._stamped(message)]:
            if self._rich is not None:
                self._rich.console.print(line, markup=False, highlight=False)
            else:
                print(line, file=self._stream, flush=True)
        self._pending = []

    def status(self, message: str) -> None:
        """A step of the first seconds that may still end in a refusal (``loading data digits``): shown
        at once on a terminal, replacing the previous status, and kept as a line (with the time it
        started) once the next step line is printed; never printed when the run is refused before
        that, so a bad input is still one line of error. Nothing when quiet."""
        if self.quiet:
            return
        self._pending.append(self._stamped(message))
        if self._rich is not None:
            self._clear_status()
            self._status = self._rich.add_task(message, total=None)

    def _clear_status(self) -> None:
        if self._status is not None and self._rich is not None:
            self._rich.remove_task(self._status)
        self._status = None

    def __enter__(self) -> Progress:
        if self.enabled:
            self._rich = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(file=self._stream), transient=False,
            )
            self._rich.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._rich is not None:
            self._clear_status()  # a refusal's one line is not preceded by what was being tried
            self._rich.stop()
            self._rich = None

    def task(self, description: str, total: float | None = None) -> Task:
        """Add a bar (``total`` None: an indeterminate spinner-like bar)."""
        if self._rich is None:
            return Task(None, None)
        return Task(self._rich, self._rich.add_task(description, total=total))

    def keras_callback(self, description: str, epochs: int) -> Any:
        """A tf_keras ``Callback`` advancing one bar per epoch and showing the latest loss; no bar for
        0 epochs (a post-training stage, a model used as given): there is nothing to count.

        Imports TensorFlow (through :mod:`edgeopt.kerasapi`) on first call only.
        """
        task = self.task(description, total=epochs) if epochs else Task(None, None)
        return make_keras_callback(task, description)


def make_keras_callback(task: Task, description: str) -> Any:
    """Wrap ``task`` in a tf_keras Callback (the class is defined on first use)."""
    global _CALLBACK_CLASS
    if _CALLBACK_CLASS is None:
        from edgeopt.kerasapi import keras

        class EpochProgress(keras.callbacks.Callback):
            """Advances a :class:`Task` at the end of every epoch; completes it when training ends."""

            def __init__(self, task: Task, description: str):
                super().__init__()
                self.task = task
                self.description = description

            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in (logs or {}).items()
                                  if k in ("loss", "val_loss") and isinstance(v, (int, float)))
                self.task.advance(1, description=f"{self.description} ({shown})" if shown else None)

            def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
                self.task.done()

        _CALLBACK_CLASS = EpochProgress
    return _CALLBACK_CLASS(task, description)
