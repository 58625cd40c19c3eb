"""scripts/bench/apply.py's logic at small sizes: each peer pattern writes its rows, the state
decides what counts as verified, and the best peer is the one with the most verified rows/s."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bench_support import bench_module

apply_bench = bench_module("apply")


def _targets(sb: Any, n: int) -> list[str]:
    rows = sb.tenant.invoke("Get-Mailbox", {"Filter": "IsDirSynced -eq $true -and IsExchangeCloudManaged -eq $false",
                                            "ResultSize": n})
    return [r["ExternalDirectoryObjectId"] for r in rows]


@pytest.mark.parametrize("pattern", apply_bench.PATTERNS)
def test_each_peer_pattern_writes_its_rows_and_the_state_counts_them(
        make_sandbox: Callable[..., Any], pattern: str) -> None:
    from _common import sandbox_bridge

    sb = make_sandbox(size=80, winrm=False)
    ids = _targets(sb, 12)
    assert len(ids) == 12
    before = sb.stats.snapshot()["batch_requests"]
    bridge = sandbox_bridge(sb.info)
    try:
        apply_bench.run_pattern(pattern, bridge, ids)
    finally:
        bridge.close()
    assert apply_bench.ended_true(apply_bench.sandbox_reader(sb), ids) == set(ids)
    batches = sb.stats.snapshot()["batch_requests"] - before
    assert batches == (2 if pattern == "cipp" else 0)  # CIPP: $batch of 10, then of 2


def test_rows_that_did_not_land_are_wrong_or_unverified(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(size=60, winrm=False)
    ids = _targets(sb, 4)
    sb.tenant.invoke("Set-Mailbox", {"Identity": ids[0], "IsExchangeCloudManaged": True}, side="exo")
    true_now = apply_bench.ended_true(apply_bench.sandbox_reader(sb), [*ids, "00000000-0000-0000-0000-000000000000"])
    assert true_now == {ids[0]}
    figures = apply_bench.pattern_figures("x", rows=4, verified=len(true_now), elapsed_s=2.0, http_429=1,
                                          requests=9)
    assert figures["verified"] == 1 and figures["wrong_or_unverified"] == 3
    assert figures["verified_rows_per_s"] == 0.5


def test_best_peer_is_the_most_verified_rows_per_second() -> None:
    baselines = [apply_bench.pattern_figures("a", 10, 10, 5.0, 0, 20),
                 apply_bench.pattern_figures("b", 10, 6, 1.0, 3, 10),  # fast, but only 6 landed
                 apply_bench.pattern_figures("c", 10, 10, 2.0, 0, 1)]
    best = apply_bench.best_peer(baselines)
    assert best is not None and best["pattern"] == "b"
    assert apply_bench.best_peer([]) is None
    assert apply_bench.pattern_figures("z", 0, 0, 0.0, 0, 0)["verified_rows_per_s"] == 0.0
