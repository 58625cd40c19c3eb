"""Python's cyclic garbage collector, kept out of the UI thread's way.

A full collection walks every tracked object and stops every thread while it does (the UI thread
too, mid-keystroke): ~50 ms for the libraries the app imports alone on a small machine, and an
inventory being built triggers one after another. The app sets aside the heap it starts with
(`freeze`) and pauses full collections while a worker builds an inventory
(`full_collections_paused`): what survives there is large, long-lived and free of reference
cycles, so a full collection would find nothing in it.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_thresholds = gc.get_threshold()
#: A full collection only after this many collections of the middle generation: never, in practice.
_NO_FULL = 1 << 30


def freeze() -> None:
    """Move every object tracked now out of the collector's reach (until `unfreeze`)."""
    gc.freeze()


def unfreeze() -> None:
    """Give the frozen objects back to the collector."""
    gc.unfreeze()


@contextmanager
def full_collections_paused() -> Iterator[None]:
    """No full collection while the block runs, in any thread; the young generations are still
    collected (short-lived cycles, such as those of HTTP responses, are freed as before).
    Concurrent and nested pauses are counted: the thresholds come back when the last one ends."""
    global _pauses, _thresholds
    with _lock:
        if _pauses == 0:
            _thresholds = gc.get_threshold()
            gc.set_threshold(_thresholds[0], _thresholds[1], _NO_FULL)
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0:
                gc.set_threshold(*_thresholds)
