"""Paths the user gives, checked before anything uses them. No TensorFlow.

:func:`check_path` refuses, in one line naming the option, a path no system call could take: a NUL
byte, more than ``PATH_MAX`` bytes in all, a name longer than its file system allows (``NAME_MAX`` of
the nearest existing folder, 255 when it cannot be asked), or a symbolic link loop. Unchecked,
``pathlib`` raises ``OSError: File name too long`` from ``exists()``, and reads a loop as "not
found". The command line's path options check through :class:`UserPath` (an output is also refused
when it is a symbolic link to nothing), the recipe's model and data through :func:`path_problem` (a
pydantic validator names the field); ``tune`` and any other caller can use either.
:func:`open_regular` opens a file of data only when it is a regular file: a FIFO would block for
ever, a device would never end.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

import click

from edgeopt.errors import InputError

PATH_MAX = 4096  # bytes, with the terminating NUL: a path holds at most 4095
NAME_MAX = 255  # bytes per name, when the file system cannot be asked
SHOWN = 60  # characters of a path shown in a message
NOT_REGULAR = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder"}


def shorten(text: str, limit: int = SHOWN) -> str:
    """``text`` as a message shows it: its first ``limit`` characters, then ``...`` when longer."""
    return text if len(text) <= limit else text[:limit] + "..."


def name_max(path: Path) -> int:
    """The longest name, in bytes, the file system of ``path`` (or of its nearest existing folder) allows."""
    for folder in (path, *path.parents):
        try:
            limit = os.pathconf(folder, "PC_NAME_MAX")
        except (OSError, ValueError):  # missing, itself too long, or not a question this system answers
            continue
        return limit if limit > 0 else NAME_MAX
    return NAME_MAX


def path_problem(path: str | os.PathLike) -> str | None:
    """Why no system call can take ``path`` (a sentence naming it, shortened), or None when it can."""
    raw = os.fsencode(path)
    shown = shorten(os.fsdecode(raw))
    if b"\0" in raw:
        return f"the path {shown!r} holds a NUL byte, which no file name may hold"
    if len(raw) >= PATH_MAX:
        return (f"the path {shown} is {len(raw):,} bytes long, more than the {PATH_MAX - 1:,} a path may "
                "have; give a shorter path")
    given = Path(os.fsdecode(raw))
    limit = name_max(given)
    for part in given.parts:
        size = len(os.fsencode(part))
        if size > limit:
            return (f"the path {shown} has a name of {size:,} bytes ({shorten(part, 20)}), more than the "
                    f"{limit} the file system allows; give a shorter name")
    try:
        os.stat(raw)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return (f"the path {shown} is a loop of symbolic links (one leads back to itself); point the "
                    "link at a real file or give another path")
        if exc.errno == errno.ENAMETOOLONG:
            return f"the path {shown} is too long for its file system; give a shorter path"
    return None


def check_path(path: str | os.PathLike, option: str) -> Path:
    """``path`` as a Path, when a system call can take it (see :func:`path_problem`).

    Raises:
        InputError: naming ``option`` (``--out``, ``model``) and the path, shortened.
    """
    problem = path_problem(path)
    if problem is not None:
        raise InputError(f"{option}: {problem}")
    return Path(os.fsdecode(path))


def check_not_dangling(path: Path, option: str) -> None:
    """Refuse an output path that is a symbolic link to nothing: writing would replace the link, or
    (a folder's final rename) find the name taken after all the work.

    Raises:
        InputError: naming ``option``, the link and where it points.
    """
    if path.is_symlink() and not path.exists():
        raise InputError(f"{option} {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
                         f"remove the link or choose another {option}")


class UserPath(click.Path):
    """``click.Path`` (as a ``pathlib.Path``) checked by :func:`check_path`, naming the option; with
    ``output``, also refused when it is a symbolic link to nothing (:func:`check_not_dangling`)."""

    def __init__(self, output: bool = False, **options):
        super().__init__(path_type=Path, **options)
        self.output = output

    def convert(self, value, param, ctx):
        if param is None:
            option = "path"
        elif isinstance(param, click.Option):
            option = param.opts[0]
        else:
            option = param.human_readable_name
        path = check_path(value, option)
        if self.output:
            check_not_dangling(path, option)
        return super().convert(value, param, ctx)


def check_regular_file(path: str | os.PathLike, what: str) -> None:
    """Refuse a path that exists but is not a regular file (a FIFO, socket, device or folder).

    A path that cannot be looked at (missing, forbidden) is left to the caller's own open.

    Raises:
        InputError: ``{what}: {path} is not a regular file (a FIFO); ...``.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    _refuse_irregular(mode, path, what)


def _refuse_irregular(mode: int, path: str | os.PathLike, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = NOT_REGULAR.get(stat.S_IFMT(mode), "not a file")
        raise InputError(f"{what}: {os.fsdecode(path)} is not a regular file ({kind}); give a file, "
                         "not a pipe, device or folder")


def open_regular(path: str | os.PathLike, what: str) -> BinaryIO:
    """Open ``path`` for reading in binary, only when it is a regular file; never blocks opening it.

    Raises:
        InputError: the path is a FIFO, socket, device or folder (see :func:`check_regular_file`).
        OSError: it cannot be opened (missing, forbidden): the caller says so in its own words.
    """
    check_regular_file(path, what)
    # Non-blocking: a FIFO put in its place since the check opens at once instead of waiting for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        _refuse_irregular(os.fstat(fd).st_mode, path, what)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise

