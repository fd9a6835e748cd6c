"""Output folders and files: staged, moved into place only when complete, never lost. No TensorFlow.

A run builds its outputs in a hidden staging folder beside ``--out`` (``.NAME.tmp-*``) that records
which process owns it. When the run completes, the folder is renamed into place in one step that
cannot replace an existing folder (``renameat2(RENAME_NOREPLACE)``): if another run created
``--out`` in the meantime, this run keeps its own result under a new name, prints it, and exits 2.
An existing output is replaced only with ``overwrite``, and only at that last step. A failed or
interrupted run removes its staging folder; one killed outright leaves it behind, and the next run
into the same parent removes it once its owner is gone. Outputs get the user's umask. Writing
failures that are the machine's (disk full, read-only or forbidden folder) become
:class:`~edgeopt.errors.EnvironmentProblem` (exit 3).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgeopt.errors import EnvironmentProblem, InputError, OutputExistsError
from edgeopt.paths import check_not_dangling, check_path

STAGING_MARK = ".edgeopt-staging"  # inside a staging folder: who owns it
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_INTERRUPTED = threading.Event()


def _on_interrupt(signum, frame):
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def catch_interrupts() -> None:
    """Remember a Ctrl-C even where Python swallows the KeyboardInterrupt it raises.

    The interrupt lands wherever the main thread happens to be; inside a finalizer (``__del__``,
    which TensorFlow's resources have) the exception is printed and dropped, and the run would
    go on to finish and move its result into place. With this handler the interrupt is also
    recorded, and :func:`staged_output` and the CLI honour it.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_interrupt)


def interrupted() -> bool:
    """Whether a Ctrl-C reached this process since :func:`catch_interrupts`."""
    return _INTERRUPTED.is_set()


def user_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def environment_error(exc: BaseException, where: Path | str) -> EnvironmentProblem | None:
    """An EnvironmentProblem for a write that failed because of the machine, else None."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in ENVIRONMENT_ERRNOS or "No space left on device" in text or "Read-only file system" in text:
        reason = os.strerror(code) if code in ENVIRONMENT_ERRNOS else " ".join(text.split())
        fix = ("free some space or choose another --out" if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
               or "No space" in text else "choose an --out folder you can write to")
        return EnvironmentProblem(f"cannot write into {where}: {reason}; {fix}")
    return None


def check_output(out_dir: Path, overwrite: bool, inputs: Iterable[Path | str | None] = ()) -> None:
    """Fail before any work if ``out_dir`` may not be (re)placed.

    Refused: a path no system call takes (too long, a symbolic link loop: see
    :func:`~edgeopt.paths.check_path`), a symbolic link to nothing (the final rename would find it
    taken, after all the work), the current folder or one of its parents (replacing it would delete
    the working folder), a path that is a file, an existing folder without ``overwrite``, and a folder
    holding one of the run's own ``inputs`` (replacing it would delete them).
    """
    out_dir = check_path(out_dir, "--out")
    check_not_dangling(out_dir, "--out")
    # realpath, not Path.resolve: an input that is a symbolic link loop is the loader's to report
    target = Path(os.path.realpath(out_dir))
    here = Path(os.path.realpath(Path.cwd()))
    if target == here or target in here.parents:
        raise InputError(f"--out {out_dir} is the current folder or one of its parents; replacing it would "
                         "delete what it holds; choose a new folder, e.g. --out runs/NAME")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir} exists and is not a folder; choose a new --out")
    for item in inputs:
        if item is None:
            continue
        path = Path(os.path.realpath(item))
        if path == target or target in path.parents:
            raise InputError(f"--out {out_dir} holds this run's input {item}; choose an output folder "
                             "outside the inputs")
    if out_dir.exists() and not overwrite:
        raise OutputExistsError(f"{out_dir} already exists; pass --overwrite to replace it, "
                                "or choose a new --out")


def _owner_alive(folder: Path) -> bool:
    try:
        mark = json.loads((folder / STAGING_MARK).read_text())
        pid, host = int(mark["pid"]), str(mark["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no readable mark: left by a run that died before writing it, or an old one
    if host != socket.gethostname():
        return True  # another machine's run on a shared disk: not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(out_dir: Path) -> list[Path]:
    """Remove staging folders of earlier runs into ``out_dir`` whose process is gone; return them."""
    out_dir = Path(out_dir)
    parent = out_dir.parent
    if not parent.is_dir():
        return []
    removed = []
    for pattern in (f".{out_dir.name}.tmp-*", f".{out_dir.name}.old-*"):
        for folder in sorted(parent.glob(pattern)):
            if folder.is_dir() and not folder.is_symlink() and not _owner_alive(folder):
                shutil.rmtree(folder, ignore_errors=True)
                if not folder.exists():
                    removed.append(folder)
    return removed


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` in one step, failing with FileExistsError if ``dst`` exists."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST or code == errno.ENOTEMPTY:
            raise FileExistsError(code, os.strerror(code), str(dst))
        if code not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(code, os.strerror(code), str(dst))
    # Without renameat2 (another libc or file system): a check, then a rename.
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def _keep_aside(work: Path, out_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        kept = out_dir.with_name(f"{out_dir.name}.{stamp}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            rename_noreplace(work, kept)
            return kept
        except FileExistsError:
            continue
    return work


def make_dir(path: Path, mode: int | None = None) -> None:
    """Give a folder the user's umask (``mkdtemp`` makes them 0700)."""
    os.chmod(path, (0o777 if mode is None else mode) & ~user_umask())


@contextlib.contextmanager
def staged_output(out_dir: Path, overwrite: bool, notices: list[str] | None = None,
                  inputs: Iterable[Path | str | None] = ()) -> Iterator[Path]:
    """Yield a staging folder; on success it becomes ``out_dir``, on failure it disappears.

    ``notices`` receives one line per leftover removed. Raises OutputExistsError (exit 2) when
    ``out_dir`` appeared during the run and ``overwrite`` was not given; the result is then kept
    beside it under a name the message gives.
    """
    out_dir = Path(out_dir)
    check_output(out_dir, overwrite, inputs)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        for folder in clean_leftovers(out_dir):
            if notices is not None:
                notices.append(f"removed {folder}, left by an interrupted earlier run")
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        make_dir(work)
        (work / STAGING_MARK).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                     "started": time.time()}))
    except OSError as exc:
        raise environment_error(exc, out_dir.parent) or EnvironmentProblem(
            f"cannot create a staging folder in {out_dir.parent}: {exc.strerror or exc}; "
            "choose an --out in a folder you can write to") from None
    try:
        yield work
        if interrupted():
            raise KeyboardInterrupt  # one that a finalizer swallowed: the result is not moved
        (work / STAGING_MARK).unlink(missing_ok=True)
        _move_into_place(work, out_dir, overwrite)
    except OutputExistsError:
        raise  # the result was kept aside under the name the message gives
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        problem = environment_error(exc, out_dir) if isinstance(exc, Exception) else None
        if problem is not None:
            raise problem from None
        raise


def _move_into_place(work: Path, out_dir: Path, overwrite: bool) -> None:
    if overwrite and out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{int(time.time())}")
        out_dir.rename(old)
        try:
            rename_noreplace(work, out_dir)
        except OSError:
            old.rename(out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        rename_noreplace(work, out_dir)
    except FileExistsError:
        kept = _keep_aside(work, out_dir)
        raise OutputExistsError(f"{out_dir} was created by another run while this one worked, so it was "
                                f"left as it is; this run's complete result is in {kept}") from None


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path`` and move it into place (user's umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~user_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
