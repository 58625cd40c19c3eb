"""Atomic writes never replace a device or a FIFO: `-o /dev/null` run as root must leave /dev/null a device."""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from exocm.core.files import write_atomic


def test_an_atomic_write_to_a_fifo_writes_through_it_and_leaves_the_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "out.pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    write_atomic(fifo, b"plan contents\n")
    reader.join(timeout=10)
    assert received == [b"plan contents\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pipe"], "a temp file was left behind"
