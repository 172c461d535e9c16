"""Reading and writing files that a user or an artifact names, without following them anywhere else.

* :func:`read_regular_file` reads one regular file into memory: opened without following a symbolic link and
  without blocking (a FIFO or a device is refused, never waited on), its size checked against a cap before a
  byte is read, and the bytes read are exactly the size ``fstat`` gave; :func:`hash_regular_file` hashes one
  the same way, a piece at a time.
* :func:`write_file_atomic` replaces an output file whole: the data goes to a new temporary file next to it
  (created exclusively), which is renamed over the destination; a destination that exists and is not a regular
  file (a folder, a symbolic link, a FIFO, a device) is refused, and the temporary file never outlives a failure.
* Temporary names carry the writing process's id (``.NAME.tmp-PID-XXXXXXXX``), so what a killed process left
  behind can be told from what a live one is writing: :func:`remove_stale` deletes the former.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from neurodeploy import limits
from neurodeploy.errors import DataError, NeurodeployError

log = logging.getLogger(__name__)

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def file_kind(mode: int) -> str:
    """What an ``st_mode`` is, in words: ``a folder``, ``a symbolic link``, ``a FIFO``, ..."""
    for test, words in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def read_regular_file(
    path: str | os.PathLike,
    *,
    cap: str = "max_file_bytes",
    size: int | None = None,
    error: type[NeurodeployError] = DataError,
    what: str | None = None,
) -> bytes:
    """The bytes of the regular file ``path``. Refused with ``error`` naming the file: a symbolic link, anything
    but a regular file (checked before opening, and again on the open file), a file of another size than
    ``size`` (when given), and (a :class:`~neurodeploy.errors.LimitError`) one larger than the cap ``cap`` of
    :mod:`neurodeploy.limits`. A missing file raises FileNotFoundError for the caller to word."""
    with _checked(Path(path), cap, size, error, what) as (f, n, what):
        data = _read_exactly(f, n)
        if len(data) != n or f.read(1):
            raise error(f"{what} changed size while it was read")
    return data


def hash_regular_file(
    path: str | os.PathLike,
    *,
    cap: str = "max_file_bytes",
    size: int | None = None,
    error: type[NeurodeployError] = DataError,
    what: str | None = None,
) -> str:
    """The sha256 (hex) of the regular file ``path``, read in pieces (an artifact's file may take gigabytes), with
    :func:`read_regular_file`'s checks."""
    digest = hashlib.sha256()
    with _checked(Path(path), cap, size, error, what) as (f, n, what):
        left = n
        while left > 0:
            piece = f.read(min(left, HASH_PIECE))
            if not piece:
                break
            digest.update(piece)
            left -= len(piece)
        if left or f.read(1):
            raise error(f"{what} changed size while it was read")
    return digest.hexdigest()


HASH_PIECE = 1 << 24
"""Bytes read at a time by :func:`hash_regular_file`."""


@contextmanager
def _checked(
    path: Path, cap: str, size: int | None, error: type[NeurodeployError], what: str | None
) -> Iterator[tuple[BinaryIO, int, str]]:
    """The regular file ``path`` opened unbuffered, with its size (checked against ``size`` and the cap) and the
    words naming it: the checks of :func:`read_regular_file`."""
    what = what or str(path)
    before = os.lstat(path)  # FileNotFoundError / NotADirectoryError go to the caller
    if not stat.S_ISREG(before.st_mode):
        raise error(f"{what} is {file_kind(before.st_mode)}, not a regular file")
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{what} is a symbolic link, not a regular file") from None
        raise
    with os.fdopen(fd, "rb", buffering=0) as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino):
            raise error(f"{what} changed while it was opened; it is {file_kind(info.st_mode)} now")
        if size is not None and info.st_size != size:
            raise error(
                f"{what} does not match its size and checksum in the manifest ({info.st_size:,} bytes, recorded "
                f"{size:,}: edited or corrupted); compile again"
            )
        limits.check(cap, info.st_size, what, "bytes")
        yield f, info.st_size, what


def _read_exactly(f: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes of ``f`` (fewer only at the end of the file), read into one buffer (joining pieces would
    hold the file twice)."""
    buffer = bytearray(n)
    view, got = memoryview(buffer), 0
    while got < n:
        count = f.readinto(view[got : got + (1 << 30)])  # type: ignore[attr-defined]
        if not count:
            break
        got += count
    view.release()
    if got < n:
        del buffer[got:]
    return buffer  # (a bytearray: bytes would copy it once more)


def open_regular_file(path: str | os.PathLike, *, error: type[NeurodeployError] = DataError) -> BinaryIO:
    """``path`` opened for reading, refused (with ``error``) unless it is a regular file and no symbolic link;
    for files too large to read into memory at once (the caller bounds what it reads)."""
    path = Path(path)
    before = os.lstat(path)
    if not stat.S_ISREG(before.st_mode):
        raise error(f"{path} is {file_kind(before.st_mode)}, not a regular file")
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{path} is a symbolic link, not a regular file") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise error(f"{path} changed while it was opened")
    return os.fdopen(fd, "rb")


# -- temporary names ----------------------------------------------------------------------------------------


def temporary_name(name: str, kind: str = "tmp") -> str:
    """``.NAME.KIND-PID-XXXXXXXX``: a hidden sibling name for ``name`` that says which process made it."""
    return f".{name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """True unless the process ``pid`` surely does not exist (one of another user's counts as alive)."""
    if pid <= 0:
        return True  # not a process id we write; leave it alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def remove_stale(folder: Path, name: str, kinds: tuple[str, ...] = ("tmp",)) -> list[Path]:
    """Remove what killed processes left next to ``folder / name``: entries named exactly as
    :func:`temporary_name` names them, of the same type as what we write there (folders for ``kinds`` ending
    in ``/``, regular files otherwise; never a symbolic link), whose process no longer exists. Entries of live
    processes (and of this one) are left alone; one that cannot be removed is logged. Returns what was removed."""
    folder = Path(folder)
    pattern = re.compile(
        rf"^\.{re.escape(name)}\.(?P<kind>{'|'.join(re.escape(k.rstrip('/')) for k in kinds)})-(?P<pid>[0-9]{{1,10}})"
        r"-[0-9a-f]{8}$"
    )
    folders = {k.rstrip("/") for k in kinds if k.endswith("/")}
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or pid_alive(pid):
            continue
        path = folder / entry.name
        try:
            mode = os.lstat(path).st_mode
            if match["kind"] in folders:
                if not stat.S_ISDIR(mode):
                    continue
                shutil.rmtree(path)
            else:
                if not stat.S_ISREG(mode):
                    continue
                os.unlink(path)
        except FileNotFoundError:
            continue  # another process removed it first
        except OSError as exc:
            log.warning("cannot remove %s, left by a process that no longer runs (%s); remove it by hand", path, exc)
            continue
        log.info("removed %s, left by process %d, which no longer runs", path, pid)
        removed.append(path)
    return removed


# -- output files -------------------------------------------------------------------------------------------


def output_mode(path: Path, what: str, *, error: type[NeurodeployError] = DataError) -> int | None:
    """The ``st_mode`` of an output path (not following a link), None when it does not exist; any other failure
    is ``error`` saying ``cannot write {what}``."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"cannot write {what}: {exc.strerror or exc}") from None


def check_output_file(path: str | os.PathLike, *, error: type[NeurodeployError] = DataError) -> None:
    """Refuse an output path that exists and is not a regular file (a folder, a symbolic link, a FIFO, a device,
    a socket): writing it would replace or write through something that is not ours."""
    path = Path(path)
    mode = output_mode(path, str(path), error=error)
    if mode is None:
        return
    if not stat.S_ISREG(mode):
        raise error(
            f"output {path} exists and is {file_kind(mode)}, not a regular file; neurodeploy replaces only regular "
            "files: choose another output file"
        )


def write_file_atomic(
    path: str | os.PathLike,
    data: bytes | Callable[[BinaryIO], None],
    *,
    error: type[NeurodeployError] = DataError,
) -> Path:
    """Write ``data`` (bytes, or a function writing into a binary file) to ``path`` all at once: into a new
    temporary file beside it (``O_CREAT | O_EXCL``, a name no one else uses), flushed to disk, then renamed over
    ``path``. ``path`` must be absent or a regular file (see :func:`check_output_file`); its folder must exist.
    On any failure or interruption the temporary file is removed and ``path`` is untouched. Returns ``path``."""
    path = Path(path)
    check_output_file(path, error=error)
    folder = path.parent
    remove_stale(folder, path.name)
    tmp = folder / temporary_name(path.name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        check_output_file(path, error=error)  # again, just before replacing it
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise error(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return path
