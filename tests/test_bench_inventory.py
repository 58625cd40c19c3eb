"""scripts/bench/inventory.py's logic at small sizes: both sequential pagers (all properties, and
CIPP's `$select`) read every mailbox once, pages are counted against the truth, and the speedups
are the baselines' times over exocm's."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench_support import bench_module

inventory_bench = bench_module("inventory")


def test_count_pages_finds_missing_and_duplicate_ids() -> None:
    pages = [[{"ExternalDirectoryObjectId": "A"}, {"ExternalDirectoryObjectId": "b"}],
             [{"ExternalDirectoryObjectId": "B"}]]
    figures = inventory_bench.count_pages("seq", pages, {"a", "b", "c"})
    assert figures == {"seq_records": 3, "seq_missing": 1, "seq_duplicates": 1, "seq_pages": 2}


def test_speedups_are_each_baseline_over_exocm() -> None:
    assert inventory_bench.speedups({"sequential_s": 8.0, "sequential_select_s": 6.0, "exocm_s": 2.0}) == {
        "speedup": 4.0, "speedup_vs_select": 3.0}
    assert inventory_bench.speedups({"sequential_s": 8.0, "exocm_s": 0.0}) == {
        "speedup": None, "speedup_vs_select": None}


def test_both_sequential_pagers_read_every_mailbox_and_select_asks_for_fewer_properties(
        make_sandbox: Callable[..., Any]) -> None:
    from _common import sandbox_bridge
    from exocm.core.inventory.fetch import SELECT
    from exocm.sandbox.objects import MAILBOX_TYPES

    sb = make_sandbox(size=120, winrm=False)
    truth = inventory_bench._mailbox_ids(sb.tenant)
    bridge = sandbox_bridge(sb.info)
    try:
        full = list(inventory_bench._all_properties_pages(bridge))
        selected = list(inventory_bench._selected_pages(bridge))
    finally:
        bridge.close()
    for name, pages in (("a", full), ("b", selected)):
        figures = inventory_bench.count_pages(name, pages, truth)
        assert figures[f"{name}_missing"] == 0 and figures[f"{name}_duplicates"] == 0
        assert figures[f"{name}_records"] == len(truth) > 0
    assert set(selected[0][0]) <= set(SELECT["Get-Mailbox"])
    assert len(full[0][0]) > len(selected[0][0])
    assert all(r["RecipientTypeDetails"] in MAILBOX_TYPES for page in selected for r in page)
