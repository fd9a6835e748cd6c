"""The study's Optuna journal (``journal.log``), opened so that a damaged one names its bad line.

Optuna's file backend skips a last line cut mid-record (the next append then glues onto it, and
from then on the journal no longer loads), fails on any other bad line with a bare JSON error, and
on a well-formed record it cannot apply with a ``KeyError`` or an ``assert`` deep in its replay.
:func:`open_journal` first reads every line (a complete JSON object with an Optuna operation
code), then replays the journal through a backend that counts lines, and raises
:class:`JournalDamaged` with the line number either way. Imported by the driver only: loads Optuna.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from edgeopt.errors import InputError
from edgeopt.internals import journal_operations
from edgeopt.outputs import environment_error

# A record with another operation code would reach an `assert False` in Optuna's replay.
OPERATIONS = journal_operations()


class JournalDamaged(Exception):
    """``journal.log`` cannot be read back: where (``line N``, 1-based) and what is wrong there."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


def first_bad_line(path: Path) -> tuple[int, str] | None:
    """The first line of the journal that is not a complete Optuna record, and why; else None."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                return number, "cut off mid-record"
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond the parser
                return number, "not a JSON record"
            if not (
                isinstance(record, dict)
                and type(record.get("op_code")) is int
                and record["op_code"] in OPERATIONS
                and isinstance(record.get("worker_id"), str)
            ):
                return number, "a JSON record that is not Optuna's"
    return None


class _CountingBackend(JournalFileBackend):
    """Optuna's file backend, remembering which line the replay has reached."""

    line = 0

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        for number, record in enumerate(super().read_logs(log_number_from), start=log_number_from + 1):
            self.line = number
            yield record


def open_journal(path: Path) -> JournalStorage:
    """Optuna's journal storage on ``path`` (created when absent), its records replayed.

    Raises:
        JournalDamaged: a line is cut off, not JSON, not an Optuna record, or cannot be replayed.
        EnvironmentProblem: the file cannot be read or created (permissions, disk).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = None
    try:
        if path.exists():
            bad = first_bad_line(path)
            if bad is not None:
                raise JournalDamaged(f"line {bad[0]}", bad[1])
        backend = _CountingBackend(str(path))
        return JournalStorage(backend)
    except JournalDamaged:
        raise
    except OSError as exc:
        raise environment_error(exc, path) or InputError(
            f"{path}: cannot be read ({exc.strerror or exc}); check its permissions"
        ) from None
    except Exception as exc:  # Optuna's replay of a record it cannot apply: KeyError, ValueError, assert
        if backend is None:
            raise
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        raise JournalDamaged(f"line {backend.line}", f"a record Optuna cannot replay: {text}") from None


def load_study(storage: JournalStorage, name: str, directions: list[str], sampler) -> optuna.Study:
    """The study ``name`` in the journal, created when it is not there yet.

    Raises:
        JournalDamaged: the journal holds a study of that name with other objectives (hand-edited:
            its trials could not be told).
    """
    study = optuna.create_study(
        storage=storage, study_name=name, directions=directions, sampler=sampler, load_if_exists=True
    )
    held = [d.name.lower() for d in study.directions]
    if held != directions:
        raise JournalDamaged(f"study {name}", f"it records {len(held)} objective(s) {held}, not {directions}")
    return study
