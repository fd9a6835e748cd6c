"""Quiet by default: TensorFlow's own output goes to a log, edgeopt's lines to the terminal.

TensorFlow, XLA and absl write from C++ straight to file descriptor 2 (cuInit, oneDNN notices, NodeDef
attribute errors, the converter's ``fully_quantize`` lines), and Keras and the converter raise Python
warnings. None of that is for the user unless something goes wrong. :func:`captured` points descriptor 2
at an anonymous temporary file (it has no name, so nothing is left behind however the run ends) for the
duration of a command and gives Python's ``sys.stderr`` a private copy of the original descriptor, so
edgeopt's messages and progress still reach the user. Python warnings and TensorFlow's Python loggers
(``tensorflow``, ``absl``: tf_keras' "Gradients do not exist for variables") go to the same log; their
handlers hold the stream of the moment TensorFlow was imported, which may be that private copy of the
terminal, so their records are stopped at the logger and written to the log instead. The Python API runs
each call under :func:`quietly`, the same capture, also where ``sys.stderr`` is not descriptor 2 (a
notebook): Python's noise still goes to the log. The log is kept in the output folder (``edgeopt.log``);
when the run fails, it is saved as ``edgeopt-*.log`` in the temporary folder and named in the error line
only when it holds something beyond the notices TensorFlow prints whenever it is imported. No TensorFlow
import.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from edgeopt.errors import EdgeoptError

LOG_NAME = "edgeopt.log"
# What TensorFlow prints on every import, whether or not it then runs anything: not worth a log.
IMPORT_NOTICES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "Unable to register cu",  # cuDNN / cuFFT / cuBLAS factories registered twice
    "computation placer already registered",
    "TF-TRT Warning: Could not find TensorRT",
)
_CHUNK = 1 << 20
# Python loggers TensorFlow, tf_keras and TFMOT write through (tf_logging: "tensorflow"; absl's own).
TF_LOGGERS = ("tensorflow", "absl")
_ACTIVE: list[int] = []  # the log of the capture in force: a nested one leaves it in charge


class Capture:
    """Where the captured output of the running command goes: a file descriptor (None when not
    capturing) onto an anonymous file."""

    def __init__(self, fd: int | None):
        self.fd = fd

    def text(self) -> bytes:
        """Everything captured so far."""
        if self.fd is None:
            return b""
        chunks, offset = [], 0
        while chunk := os.pread(self.fd, _CHUNK, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def copy_into(self, folder: Path) -> None:
        """Copy the log so far into ``folder`` as edgeopt.log (nothing when not capturing)."""
        if self.fd is not None:
            (Path(folder) / LOG_NAME).write_bytes(self.text())

    def holds_something(self) -> bool:
        """Whether the log holds a line other than TensorFlow's import notices."""
        lines = self.text().decode("utf-8", "replace").splitlines()
        return any(line.strip() and not any(notice in line for notice in IMPORT_NOTICES) for line in lines)

    def keep(self) -> Path | None:
        """Save the log as ``edgeopt-*.log`` in the temporary folder when it holds something; its path."""
        if not self.holds_something():
            return None
        try:
            fd, name = tempfile.mkstemp(prefix="edgeopt-", suffix=".log")
            with os.fdopen(fd, "wb") as saved:
                saved.write(self.text())
        except OSError:
            return None  # a full or read-only temporary folder: the error line stands without it
        return Path(name)

    def hint(self) -> str:
        """`` (TensorFlow's messages: PATH)`` for an error line, saving the log, when it holds something."""
        kept = self.keep()
        return "" if kept is None else f" (TensorFlow's messages: {kept})"


NOT_CAPTURING = Capture(None)


@contextlib.contextmanager
def captured(verbose: bool = False, *, python_too: bool = False) -> Iterator[Capture]:
    """Send descriptor 2, Python warnings and TensorFlow's loggers to an anonymous log while the block
    runs (not when verbose).

    Yields the :class:`Capture`. When the block fails with an edgeopt error, the log is saved and
    named in its message if it holds something (:meth:`Capture.hint`); otherwise it vanishes. Where
    ``sys.stderr`` is not descriptor 2 (a test runner's buffer, a notebook), nothing is captured unless
    ``python_too``: then Python's warnings and TensorFlow's loggers still go to the log. Inside another
    capture, nothing changes: the outer one is in charge.
    """
    try:
        own_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        own_fd = None
    redirect = own_fd == 2
    if verbose or _ACTIVE or not (redirect or python_too):
        # Verbose, already captured, or stderr is not the process's descriptor 2: nothing to hide.
        yield NOT_CAPTURING
        return
    # Anonymous: unlinked at once (or never named), so nothing is left behind however the run ends.
    with tempfile.TemporaryFile(prefix="edgeopt-", suffix=".log") as log, warnings.catch_warnings():
        capture = Capture(log.fileno())
        saved = original = None
        if redirect:
            sys.stderr.flush()
            saved = os.dup(2)
            original = sys.stderr
            os.dup2(capture.fd, 2)
            sys.stderr = io.TextIOWrapper(os.fdopen(saved, "wb", buffering=0, closefd=False),
                                          encoding="utf-8", errors="replace", line_buffering=True,
                                          write_through=True)
        warnings.showwarning = _to_log(capture.fd)
        loggers = _loggers_to(capture.fd)
        _ACTIVE.append(capture.fd)
        try:
            yield capture
        except BaseException as exc:
            if isinstance(exc, EdgeoptError):  # its one line names the log, when worth reading
                exc.message += capture.hint()
            raise
        finally:
            _ACTIVE.pop()
            loggers()
            if redirect:
                sys.stderr.flush()
                sys.stderr = original
                os.dup2(saved, 2)
                os.close(saved)


def quietly(function):
    """``function`` run under :func:`captured` (``python_too``): what the Python API's calls that load,
    train or convert run under, so that TensorFlow says nothing to the caller's terminal or notebook.
    A failure's message names the saved log when it holds something."""
    @functools.wraps(function)
    def quiet(*args, **kwargs):
        with captured(python_too=True):
            return function(*args, **kwargs)

    return quiet


class _ToLog(logging.Filter):
    """A logger filter that writes each record to the log and stops it there: unlike a handler, it
    also holds back the handlers TensorFlow adds to its logger later (on first use)."""

    def __init__(self, fd: int):
        super().__init__()
        self.fd = fd
        self.format = logging.Formatter("%(levelname)s:%(name)s: %(message)s").format

    def filter(self, record: logging.LogRecord) -> bool:
        with contextlib.suppress(OSError):
            os.write(self.fd, (self.format(record) + "\n").encode("utf-8", "replace"))
        return False


def _loggers_to(fd: int):
    """Send :data:`TF_LOGGERS`' records to the log on ``fd`` only; returns the function that undoes it."""
    to_log = _ToLog(fd)
    for name in TF_LOGGERS:
        logging.getLogger(name).addFilter(to_log)

    def undo() -> None:
        for name in TF_LOGGERS:
            logging.getLogger(name).removeFilter(to_log)

    return undo


def _to_log(fd: int):
    def show(message, category, filename, lineno, file=None, line=None):
        text = warnings.formatwarning(message, category, filename, lineno, line)
        os.write(fd, text.encode("utf-8", "replace"))

    return show
