"""Fault campaign, CI subset: every fault kind of scripts/bench/faults.py on a small seeded plan.

Each kind applies a plan of ROWS flips through the real engine, REST bridge, MSAL and TLS
while the sandbox misbehaves (503s, resets, timeouts, a 429 storm, token revocation, the
applied-but-errored quirk, a kill -9 + restart of the sandbox, and all of them at once).
The promise: every row ends verified or failed with a reason, the sandbox's state agrees
with the journal for every row (wrong_state == 0), and no plan row is missing from the
journals (lost_journal_rows == 0). The full campaign (5,000 rows per kind) is
`python scripts/bench/faults.py --json OUT`; more seeds run under `-m slow`.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROWS = 120
#: Higher rates than the full campaign so a small plan still meets every fault several times.
CI_RATES = {"503": 0.10, "reset": 0.08, "timeout": 0.06, "applied-error": 0.25}


def _load_campaign() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench" / "faults.py"
    spec = importlib.util.spec_from_file_location("exocm_bench_faults", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


campaign = _load_campaign()


def _assert_nothing_lost_or_wrong(figures: dict[str, Any]) -> None:
    assert figures["rows"] == ROWS
    assert figures["lost_journal_rows"] == 0, figures
    assert figures["wrong_state"] == 0, figures["wrong_examples"]
    assert figures["verified"] + figures["failed_with_reason"] == figures["rows"], figures["final_statuses"]
    assert figures["ended_without_reason"] == 0
    assert figures["journal_lines_unreadable"] == 0, figures["journal_problems"]


@pytest.mark.parametrize("kind", campaign.KINDS)
def test_every_row_ends_verified_or_failed_with_reason_and_the_journal_matches_the_tenant(
        kind: str, tmp_path: Path) -> None:
    figures = campaign.run_kind(kind, rows=ROWS, seed=11, max_runs=6, work=tmp_path / kind, rates=CI_RATES)
    _assert_nothing_lost_or_wrong(figures)
    assert figures["complete"], figures["run_errors"]
    assert figures["verified"] == ROWS  # faults slow the run down; none of them makes a row fail
    # the fault really happened
    injected = figures.get("faults_injected") or {}
    if kind in CI_RATES:
        assert injected.get(kind, 0) > 0, injected
    elif kind == "429-storm":
        assert figures["bridge"]["http_429"] > 0
    elif kind == "token-expiry":
        assert figures["bridge"]["token_refreshes"] > 0
    elif kind in ("restart", "mixed"):
        assert figures["disruptions_fired"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20, 25))
@pytest.mark.parametrize("kind", ["mixed", "restart", "timeout"])
def test_fault_campaign_more_seeds(kind: str, seed: int, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "slow" not in str(request.config.getoption("markexpr") or ""):
        pytest.skip("long campaign: run with -m slow")
    figures = campaign.run_kind(kind, rows=1000, seed=seed, max_runs=8, work=tmp_path / kind)
    assert figures["lost_journal_rows"] == 0 and figures["wrong_state"] == 0, figures
    assert figures["ended_without_reason"] == 0


def test_the_checker_sees_a_journal_that_lies(tmp_path: Path, make_sandbox: Any) -> None:
    """The campaign's own yardstick: a row the journal calls verified but the tenant does not hold is counted."""
    from exocm.core.execute.apply import apply_plan
    from plan_support import connect, dirsynced_plan

    sb = make_sandbox(size=80, seed=5)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=10)
    apply_plan(bridge, plan, data_dir=tmp_path / "data", max_age=None)
    bridge.close()
    state = campaign._cloud_managed_of(sb.tenant)
    assert campaign.check(plan, tmp_path / "data" / "journals", state)["wrong_state"] == 0
    liar = plan.rows[0].identity.lower()
    state[liar] = False  # as if the write had been lost after the journal said verified
    figures = campaign.check(plan, tmp_path / "data" / "journals", state)
    assert figures["wrong_state"] == 1 and liar in figures["wrong_examples"][0].lower()
    # a row whose outcome never reached the journal is counted as lost
    journal = next((tmp_path / "data" / "journals").glob("*.jsonl"))
    lines = journal.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if plan.rows[1].identity not in line]
    journal.write_text("\n".join(kept) + "\n", encoding="utf-8")
    assert campaign.check(plan, tmp_path / "data" / "journals", state)["lost_journal_rows"] == 1
