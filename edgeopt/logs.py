"""Quiet by default: TensorFlow's own output goes to a log file, edgeopt's lines to the terminal.

TensorFlow, XLA and absl write from C++ straight to file descriptor 2 (cuInit, oneDNN notices,
NodeDef attribute errors, the converter's ``fully_quantize`` lines), and Keras and the converter
raise Python warnings. None of that is for the user unless something goes wrong. :func:`captured`
points descriptor 2 at a log file for the duration of a command and gives Python's ``sys.stderr`` a
private copy of the original descriptor, so edgeopt's messages and progress still reach the user.
Python warnings go to the same log. The log is kept in the output folder (``edgeopt.log``), or
named in the error line when the run fails. No TensorFlow import.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

LOG_NAME = "edgeopt.log"


class Capture:
    """Where the captured output of the running command goes."""

    def __init__(self, path: Path | None):
        self.path = path

    def copy_into(self, folder: Path) -> None:
        """Copy the log so far into ``folder`` as edgeopt.log (nothing when not capturing)."""
        if self.path is not None and self.path.exists():
            (Path(folder) / LOG_NAME).write_bytes(self.path.read_bytes())

    def hint(self) -> str:
        """`` (TensorFlow's messages: PATH)`` for an error line, when the log holds anything."""
        if self.path is None or not self.path.exists() or self.path.stat().st_size == 0:
            return ""
        return f" (TensorFlow's messages: {self.path})"


NOT_CAPTURING = Capture(None)


@contextlib.contextmanager
def captured(verbose: bool = False) -> Iterator[Capture]:
    """Send descriptor 2 and Python warnings to a log file while the block runs (not when verbose).

    Yields the :class:`Capture`. The log file is removed afterwards unless the block failed.
    """
    try:
        own_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        own_fd = None
    if verbose or own_fd != 2:
        # Verbose, or stderr is not the process's descriptor 2 (a test runner's buffer): nothing to hide.
        yield NOT_CAPTURING
        return
    fd, name = tempfile.mkstemp(prefix="edgeopt-", suffix=".log")
    path = Path(name)
    sys.stderr.flush()
    saved = os.dup(2)
    original = sys.stderr
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = io.TextIOWrapper(os.fdopen(saved, "wb", buffering=0, closefd=False), encoding="utf-8",
                                  errors="replace", line_buffering=True, write_through=True)
    capture = Capture(path)
    with warnings.catch_warnings():
        warnings.showwarning = _to_log(path)
        try:
            yield capture
        except BaseException as exc:
            if hasattr(exc, "message") and capture.hint():
                exc.message += capture.hint()  # an EdgeoptError: its one line names the log
            else:
                path.unlink(missing_ok=True)
            raise
        else:
            path.unlink(missing_ok=True)
        finally:
            sys.stderr.flush()
            sys.stderr = original
            os.dup2(saved, 2)
            os.close(saved)


def _to_log(path: Path):
    def show(message, category, filename, lineno, file=None, line=None):
        with open(path, "a", encoding="utf-8") as log:
            log.write(warnings.formatwarning(message, category, filename, lineno, line))

    return show
