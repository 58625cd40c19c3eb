"""tui/heap.py: full collections paused while inventories are built, the thresholds restored after."""
from __future__ import annotations

import gc
import threading

from exocm.tui import heap


def test_full_collections_are_paused_inside_and_the_thresholds_come_back_after_the_last_pause() -> None:
    before = gc.get_threshold()
    entered, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        with heap.full_collections_paused():
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=other_worker)
    worker.start()
    assert entered.wait(10)
    with heap.full_collections_paused():
        young, middle, old = gc.get_threshold()
        assert (young, middle) == before[:2] and old > 1_000_000  # young generations still collected
        with heap.full_collections_paused():  # nested
            assert gc.get_threshold()[2] == old
    assert gc.get_threshold()[2] == old  # the other worker's pause still holds
    release.set()
    worker.join(10)
    assert gc.get_threshold() == before and gc.isenabled()


def test_a_pause_ends_when_its_block_raises() -> None:
    before = gc.get_threshold()
    try:
        with heap.full_collections_paused():
            raise ValueError("the fetch failed")
    except ValueError:
        pass
    assert gc.get_threshold() == before


def test_freeze_sets_the_heap_aside_until_unfreeze() -> None:
    heap.freeze()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        heap.unfreeze()
    assert gc.get_freeze_count() == 0
