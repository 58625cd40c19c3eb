"""Resident memory: give back what Arrow's allocator freed but keeps, share what is held twice."""
from __future__ import annotations

import ctypes
import gc
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import pandas as pd
import pyarrow as pa

__all__ = ["fewer_collections", "full_collections_paused", "release_unused_memory", "share_equal_columns", "trim_c_heap"]

_gc_lock = threading.Lock()
#: Blocks in force: fewer_collections ("young") and full_collections_paused ("full").
_gc_users = {"young": 0, "full": 0}
#: The thresholds and freeze state before the first block; restored when the last one ends.
_gc_saved: tuple[tuple[int, int, int], bool] | None = None
_YOUNG_THRESHOLD = 20_000
#: A full collection only after this many collections of the middle generation: never, in practice.
_NO_FULL = 1 << 30


def _apply_gc_settings() -> None:
    """Set the thresholds the blocks in force ask for (call under _gc_lock, with _gc_saved set)."""
    assert _gc_saved is not None
    young, middle, old = _gc_saved[0]
    if _gc_users["young"]:
        young = max(young, _YOUNG_THRESHOLD)
    if _gc_users["full"]:
        old = _NO_FULL
    gc.set_threshold(young, middle, old)


@contextmanager
def _gc_block(kind: str) -> Iterator[None]:
    global _gc_saved
    with _gc_lock:
        if _gc_saved is None:
            _gc_saved = (gc.get_threshold(), gc.get_freeze_count() > 0)
        if kind == "young" and not _gc_users["young"]:
            gc.freeze()
        _gc_users[kind] += 1
        _apply_gc_settings()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users[kind] -= 1
            assert _gc_saved is not None
            if kind == "young" and not _gc_users["young"] and not _gc_saved[1]:
                gc.unfreeze()
            _apply_gc_settings()
            if not any(_gc_users.values()):
                _gc_saved = None


def fewer_collections() -> AbstractContextManager[None]:
    """Run with the cyclic GC's young generation 30x larger and the heap that exists now frozen.

    A parallel read allocates thousands of tuples a page; at the default threshold (700) the
    collector ran ~1,000 times per 100,000-record fetch, and each of its full passes walks every
    object the process holds (70-250 ms with the GIL held, stalling every request thread). Blocks
    may nest and overlap across threads, with each other and with full_collections_paused (one
    state: the first block saves the settings, the last restores them); a heap that was frozen
    before (the TUI's) stays frozen.
    """
    return _gc_block("young")


def full_collections_paused() -> AbstractContextManager[None]:
    """No full collection while the block runs, in any thread; the young generations are still
    collected (short-lived cycles, such as those of HTTP responses, are freed as before). Shares
    fewer_collections' state: concurrent and nested blocks of either kind are counted."""
    return _gc_block("full")


def release_unused_memory() -> None:
    """Return pages that Arrow's allocator (mimalloc) freed but keeps mapped, to the system.

    Building or joining 300,000-row frames frees about as much as it keeps; the freed pages stay
    in the resident set until the allocator purges them, which it does late or not at all, and
    the next step then takes fresh pages instead. Cheap (microseconds): call it after such steps.
    """
    pa.default_memory_pool().release_unused()


def trim_c_heap() -> None:
    """Hand memory that the C allocator holds free back to the OS (glibc's malloc_trim; a no-op
    elsewhere). Pages parsed in many threads leave freed blocks in per-thread arenas: at 300,000
    records that is ~60 MB of resident memory a frame built next would otherwise add on top. A few
    milliseconds: call it after a whole read, not per step."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def share_equal_columns(frame: pd.DataFrame) -> None:
    """Let Arrow-backed str columns with equal values share one array (in place; values unchanged).

    Exports and inventories carry columns that hold the same thing on every row (most of
    CustomAttribute1-15 are empty): at 300,000 rows each keeps 2.3 MB of offsets of its own.
    """
    if not frame.columns.is_unique:
        return
    seen: dict[tuple[int, int, int], list[tuple[pa.ChunkedArray, pd.Series]]] = {}
    for col in list(frame.columns):
        s = frame[col]
        if not isinstance(s.dtype, pd.StringDtype):
            continue
        arr = _chunked(s)
        key = (len(arr), arr.null_count, arr.nbytes)
        for other_arr, other in seen.setdefault(key, []):
            if other.dtype == s.dtype and other_arr.equals(arr):
                frame[col] = pd.Series(other.array, index=frame.index, name=col)
                break
        else:
            seen[key].append((arr, s))


def _chunked(s: pd.Series) -> pa.ChunkedArray:
    arr = pa.array(s.array)
    return arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
