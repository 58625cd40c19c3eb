"""Python's cyclic garbage collector, kept out of the UI thread's way.

A full collection walks every tracked object and stops every thread while it does (the UI thread
too, mid-keystroke): ~50 ms for the libraries the app imports alone on a small machine, and an
inventory being built triggers one after another. The app sets aside the heap it starts with
(`freeze`) and pauses full collections while a worker builds an inventory
(`full_collections_paused`, core/memory.py: one reference-counted state with the fetch's
`fewer_collections`): what survives there is large, long-lived and free of reference
cycles, so a full collection would find nothing in it.
"""
from __future__ import annotations

import gc

from exocm.core.memory import full_collections_paused

__all__ = ["freeze", "full_collections_paused", "unfreeze"]


def freeze() -> None:
    """Move every object tracked now out of the collector's reach (until `unfreeze`)."""
    gc.freeze()


def unfreeze() -> None:
    """Give the frozen objects back to the collector."""
    gc.unfreeze()
