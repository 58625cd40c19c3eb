"""scripts/bench/faults.py's verdict: ok only when every row ended verified or failed with a
reason, at most 1 % of a kind's rows failed, and nothing is wrong in the tenant or lost."""
from __future__ import annotations

from typing import Any

from bench_support import bench_module

faults_bench = bench_module("faults")


def _figures(**over: Any) -> dict[str, Any]:
    base = {"rows": 1000, "verified": 1000, "failed_with_reason": 0, "ended_without_reason": 0,
            "wrong_state": 0, "lost_journal_rows": 0}
    base.update(over)
    return base


def test_a_kind_is_ok_when_every_row_is_verified_or_failed_with_a_reason_within_one_percent() -> None:
    assert faults_bench.kind_ok(_figures())
    assert faults_bench.kind_ok(_figures(verified=990, failed_with_reason=10))


def test_a_kind_is_not_ok_when_rows_fail_in_bulk_even_with_reasons() -> None:
    assert not faults_bench.kind_ok(_figures(verified=0, failed_with_reason=1000))
    assert not faults_bench.kind_ok(_figures(verified=989, failed_with_reason=11))


def test_a_kind_is_not_ok_with_wrong_lost_or_unexplained_rows() -> None:
    assert not faults_bench.kind_ok(_figures(verified=999, wrong_state=1))
    assert not faults_bench.kind_ok(_figures(verified=999, lost_journal_rows=1))
    assert not faults_bench.kind_ok(_figures(verified=999, ended_without_reason=1))
    assert not faults_bench.kind_ok(_figures(rows=0, verified=0))
