"""Private, crash-safe files: the one place that writes a file atomically or makes a 0700 directory,
and reads one whole with a one-line error.

`write_atomic` and `atomic_writer` write to a temp file in the target's directory, fsync it, rename
it over the target and fsync the directory: a crash leaves the old file or the new one, never a
partial one. Files are mode 0600 unless told otherwise (plans, journals, snapshots and exports list
a tenant's mailboxes; config holds profile details).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def read_whole(path: Path, what: str, error: type[Exception]) -> bytes:
    """The bytes of `path`; a missing or unreadable file raises `error` with one line naming `what` it is."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed; a directory exocm creates is mode 0700. Returns it."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
    return path


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` durable (best effort: some filesystems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A binary handle whose contents replace `path` atomically when the block ends without error.

    Missing parent directories are created (plain mode: call `private_dir` first where they must
    be private). On an exception the temp file is removed and `path` is left as it was.
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
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
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
