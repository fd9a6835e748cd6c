"""The study folder's own paths, checked before any work, its lock, and its earlier generations.

:func:`check_path` refuses a ``--study`` path that cannot be a folder (a file, a path under a
file, a name the file system refuses) and :func:`check_layout` one whose study files and folders
(``study.json``, ``journal.log``, ``base/``, ``trials/``, the outcome) are of the wrong kind, each in
one line and before any training. :func:`retire` moves a study that ``--force-new`` replaces (its
``study.json``, ``journal.log`` and outcome) into the next free ``previous-N/`` (``previous-1/`` is
the oldest), so no earlier study's results are ever overwritten; ``base/`` and ``trials/`` are
caches keyed by content hashes and serve the new study too. :func:`damaged` words the refusal of a
damaged study file. Nothing here deletes anything but Optuna's stale lock link. No TensorFlow or
Optuna.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeopt.errors import EdgeoptError, InputError
from edgeopt.outputs import environment_error

STUDY_FILE, JOURNAL, LOCK = "study.json", "journal.log", ".lock"
JOURNAL_LOCK = JOURNAL + ".lock"  # Optuna's link, held only while it appends a record
OUTPUTS = ("tune.json", "tune.html", "best.yaml")
BASE, TRIALS = "base", "trials"
RETIRED = (*OUTPUTS, JOURNAL, STUDY_FILE)  # what a generation holds; study.json last (see retire)
PREVIOUS = re.compile(r"previous-([1-9][0-9]*)")
FILES = (STUDY_FILE, JOURNAL, LOCK, *OUTPUTS)
FOLDERS = (BASE, TRIALS)


def _unusable(folder: Path, exc: OSError) -> EdgeoptError:
    return environment_error(exc, folder) or InputError(
        f"--study {folder}: cannot be used as a folder ({exc.strerror or exc}); give another --study path"
    )


def check_path(folder: Path) -> None:
    """Refuse a ``--study`` path that is a file, lies under a file, or that the system refuses."""
    try:
        if folder.exists():
            if not folder.is_dir():
                raise InputError(f"--study {folder}: is a file; give a folder for the study")
            return
        for parent in folder.parents:  # the nearest existing parent must be a folder
            if parent.exists():
                if not parent.is_dir():
                    raise InputError(
                        f"--study {folder}: {parent} is a file, not a folder; give a --study path in a folder"
                    )
                return
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise _unusable(folder, exc) from None


def _kind(path: Path) -> str:
    return "folder" if path.is_dir() else "file"


def _wrong_kind(folder: Path, name: str, expected: str) -> InputError:
    path = folder / name
    return InputError(
        f"--study {folder}: {name} is a {_kind(path)}, but the study keeps a {expected} of that name; "
        f"move {path} out of the study folder, or give another --study folder"
    )


def check_layout(folder: Path, base_key: str) -> None:
    """Refuse study paths of the wrong kind before any work (a file named ``base``, a folder named
    ``journal.log``), and drop Optuna's lock link left by a killed driver (we hold the study's lock,
    so no one else is appending)."""
    for name in FILES:
        if (folder / name).exists() and not (folder / name).is_file():
            raise _wrong_kind(folder, name, "file")
    for name in (*FOLDERS, f"{BASE}/{base_key}"):
        if (folder / name).exists() and not (folder / name).is_dir():
            raise _wrong_kind(folder, name, "folder")
    if (folder / TRIALS).is_dir():
        for entry in (folder / TRIALS).iterdir():
            if not entry.name.startswith(".") and not entry.is_dir():
                raise _wrong_kind(folder, f"{TRIALS}/{entry.name}", "folder (one per cached trial)")
    link = folder / JOURNAL_LOCK
    if link.is_symlink():
        link.unlink()  # else Optuna waits 30 s for it, then removes it itself
    elif link.exists():
        raise _wrong_kind(folder, JOURNAL_LOCK, "short-lived link")


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the study folder's lock: one driver at a time."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unusable(folder, exc) from None
    if (folder / LOCK).exists() and not (folder / LOCK).is_file():
        raise _wrong_kind(folder, LOCK, "file")
    handle = (folder / LOCK).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError(
            f"--study {folder}: another edgeopt tune is running on this study; wait for it "
            "or use another --study folder"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def is_study_entry(name: str) -> bool:
    """Whether a name in a folder without study.json may be left there by tune itself: the lock,
    the caches (a base copied in from another study of the same recipe is welcome), generations,
    and a temporary file of an atomic write."""
    return (
        name in (LOCK, JOURNAL_LOCK, BASE, TRIALS)
        or PREVIOUS.fullmatch(name) is not None
        or any(name.startswith(f".{known}.") for known in RETIRED)
    )


def next_generation(folder: Path) -> Path:
    """``previous-N``: one past the highest generation in ``folder``."""
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := PREVIOUS.fullmatch(p.name))]
    return folder / f"previous-{max(numbers, default=0) + 1}"


def retire(folder: Path) -> Path | None:
    """Move the folder's study (outcome, journal, study.json) into the next ``previous-N/``; return
    it, or None when there was nothing to move. study.json goes last: a run killed half-way leaves a
    folder that still names its study, and the next ``--force-new`` moves the rest."""
    present = [name for name in RETIRED if os.path.lexists(folder / name)]
    if not present:
        return None
    target = next_generation(folder)
    target.mkdir()
    for name in present:
        os.replace(folder / name, target / name)
    return target


def damaged(folder: Path, what: str, fix: str) -> InputError:
    """The one-line refusal of a damaged study file: what, the repair, or --force-new."""
    return InputError(
        f"--study {folder}: {what}; {fix}, or use --force-new to start a new study there (this one's "
        f"files are then kept in {next_generation(folder)})"
    )


def keep_aside(path: Path) -> Path:
    """Move ``path`` to ``NAME.previous`` (else ``NAME.previous-2``, ...), never over an earlier one."""
    for number in range(1, 10_000):
        kept = path.with_name(f"{path.name}.previous" + (f"-{number}" if number > 1 else ""))
        if not os.path.lexists(kept):
            os.replace(path, kept)
            return kept
    raise InputError(f"{path}: 10,000 earlier copies are kept beside it; move some away")
