"""Private, crash-safe files: the one place that writes a file atomically or makes a private directory,
and reads one whole with a one-line error.

`write_atomic` and `atomic_writer` write to a temp file in the target's directory, fsync it, rename
it over the target and fsync the directory: a crash leaves the old file or the new one, never a
partial one. Plans, journals, snapshots and exports list a tenant's mailboxes and config holds
profile details, so on POSIX files are mode 0600 unless told otherwise and directories exocm
creates are 0700.

Windows (docs/platforms.md) has no POSIX modes: there the files live in the user's profile
(platformdirs' %LOCALAPPDATA%), whose inherited ACLs admit only that user, SYSTEM and
Administrators. Mode calls are made only where `os` has them. Windows cannot fsync a directory (the
rename is journalled by NTFS), so that step is skipped; and it refuses to rename over a file another
process holds open (a reader of a snapshot or a plan), so the rename is retried briefly.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

#: True on Windows. A seam: tests set it to walk the Windows paths on Linux.
ON_WINDOWS: bool = sys.platform == "win32"
#: Waits between attempts to rename over a file another process holds open on Windows
#: (about 3 s in all: a reader of a snapshot or plan closes it well within that).
REPLACE_BACKOFF: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.5)
#: The clock the replace retry sleeps on (tests replace it).
sleep: Callable[[float], None] = time.sleep


def set_private_mode(path: str | os.PathLike[str], mode: int = 0o600) -> None:
    """Set POSIX permission bits on `path` where they mean something (not on Windows); best effort."""
    if ON_WINDOWS or not hasattr(os, "fchmod"):
        # os.chmod exists on Windows but only toggles the read-only flag; the profile folder's ACLs
        # protect the file there (docs/platforms.md)
        return
    with contextlib.suppress(OSError):
        os.chmod(path, mode)


def read_whole(path: Path, what: str, error: type[Exception]) -> bytes:
    """The bytes of `path`; a missing or unreadable file raises `error` with one line naming `what` it is."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed; a directory exocm creates is mode 0700 on POSIX. Returns it."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        set_private_mode(path, 0o700)
    return path


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` durable (best effort: some filesystems refuse; Windows can't)."""
    if ON_WINDOWS:
        return  # a directory cannot be opened for fsync there; NTFS journals the rename itself
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """`os.replace`, retried briefly on Windows while another process holds `target` open.

    Windows refuses to rename over an open file (PermissionError: access denied or a sharing
    violation) until its reader closes it; POSIX never does, so a PermissionError there is real
    and raised at once.
    """
    for wait in (*REPLACE_BACKOFF, None) if ON_WINDOWS else (None,):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if wait is None:
                raise
            sleep(wait)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A binary handle whose contents replace `path` atomically when the block ends without error.

    Missing parent directories are created (plain mode: call `private_dir` first where they must
    be private). On an exception the temp file is removed and `path` is left as it was. `mode`
    applies on POSIX only.
    """
    target = Path(path)
    if target.exists() and not target.is_file() and not target.is_dir():
        # a device or a FIFO (`-o /dev/null`, a pipe): write through it; renaming over it would
        # replace the device with a regular file (as root, /dev/null itself)
        with open(target, "wb") as device:
            yield device
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if not ON_WINDOWS and hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> Path:
    """Write `data` to `path` atomically (temp file, fsync, rename, directory fsync); returns the path."""
    with atomic_writer(path, mode=mode) as handle:
        handle.write(data)
    return Path(path)
