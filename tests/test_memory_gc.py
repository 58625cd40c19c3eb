"""core/memory.py's GC blocks: the fetch's fewer_collections and the TUI's full-collection pause share
one state, so blocks of both kinds may overlap in any order and the settings still come back."""
from __future__ import annotations

import gc

from exocm.core.memory import fewer_collections, full_collections_paused


def test_overlapping_blocks_of_both_kinds_restore_the_thresholds_and_the_freeze() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    young = fewer_collections()
    young.__enter__()
    assert gc.get_threshold()[0] >= 20_000 and gc.get_freeze_count() > 0
    pause = full_collections_paused()
    pause.__enter__()
    assert gc.get_threshold()[0] >= 20_000 and gc.get_threshold()[2] > 1_000_000
    young.__exit__(None, None, None)  # the fetch ends inside a pause that began after it
    assert gc.get_threshold() == (before[0], before[1], gc.get_threshold()[2]) and gc.get_threshold()[2] > 1_000_000
    pause.__exit__(None, None, None)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
