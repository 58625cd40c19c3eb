"""Crash campaign: `exocm apply` killed with SIGKILL at several seeded random points in a row, then finished.

Extends E's single-kill test (tests/test_apply_crash.py: one kill per seed, 2,000 rows) to a
chain of kills on one plan: run, kill, resume, kill, resume, ... and a last resume that is let
finish. The promise: the tenant ends in exactly the state an uninterrupted run of the same plan
leaves in a twin sandbox (same seed: IsExchangeCloudManaged and every writeback attribute of
every recipient), every row is verified exactly once across the journals, the sandbox ran one
Set-Mailbox per row (a resume reads back what a killed run may have written, it never writes
it again), and every journal reads back with at most a torn last line.

Default run: one chain of KILLS kill points. `-m slow`: SLOW_CHAINS chains of SLOW_KILLS each
(50 kill points). Runbooks: `tests/test_runbook_crash.py` kills a runbook run at every step.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from exocm.core.execute.apply import apply_plan
from exocm.core.execute.journal import journals_for_plan, read_journal
from exocm.core.plan.planfile import save_plan, writeback_values
from exocm.sandbox.generator import generate_tenant
from plan_support import SetMailboxCounter, add_profile, connect, dirsynced_plan

ROWS = 300
KILLS = 3
SLOW_CHAINS = 10
SLOW_KILLS = 5
SLOW_ROWS = 1000
FROZEN = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def tenant_state(sb: Any) -> dict[str, tuple[Any, ...]]:
    """Per recipient: IsExchangeCloudManaged and the writeback attributes (no timestamps)."""
    records = sb.tenant.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, side="exo")
    return {str(r["ExternalDirectoryObjectId"]).lower():
            (r.get("IsExchangeCloudManaged"), tuple(sorted((k, repr(v)) for k, v in writeback_values(r).items())))
            for r in records}


def _rows_journaled(directory: Path) -> int:
    """Row records in the journals so far (parsed, so the JSON's spacing does not matter)."""
    total = 0
    for path in directory.glob("*.jsonl"):
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line still being written
            total += isinstance(record, dict) and record.get("type") == "row"
    return total


def run_chain(make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, seed: int, rows: int,
              kills: int) -> dict[str, Any]:
    env = dict(os.environ, EXOCM_DATA_DIR=str(tmp_path / "data"), EXOCM_CONFIG_DIR=str(tmp_path / "config"))
    for key in ("EXOCM_DATA_DIR", "EXOCM_CONFIG_DIR"):
        monkeypatch.setenv(key, env[key])
    size = int(rows * 1.35) + 100
    # twins: one seed and one frozen clock, so even WhenChanged is the same in both
    twins = [generate_tenant(size, seed, clock=lambda: FROZEN) for _ in range(2)]
    # a write budget keeps each run busy long enough for the kills to land inside it
    sb = make_sandbox(tenant=twins[0], write_budget=150, winrm=False)
    twin = make_sandbox(tenant=twins[1], winrm=False)
    assert tenant_state(sb) == tenant_state(twin)  # same seed, same tenant
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=rows)
    bridge.close()
    targets = {r.identity for r in plan.set_rows()}
    assert len(targets) == rows
    plan_path = save_plan(plan, tmp_path / "plan.json")

    # the yardstick: the same plan, applied once without interruption, to the twin
    twin_bridge = connect(twin)
    uninterrupted = apply_plan(twin_bridge, plan, data_dir=tmp_path / "twin-data", max_age=None)
    twin_bridge.close()
    assert uninterrupted.complete and uninterrupted.counts["verified"] == rows

    name = add_profile(sb)
    counter = SetMailboxCounter(sb)
    journals = tmp_path / "data" / "journals"
    rng = random.Random(seed)
    command = [sys.executable, "-c", "from exocm.cli.main import main; main()", "apply", "--profile", name,
               str(plan_path), "--yes"]
    landed = 0
    for k in range(kills):
        done = _rows_journaled(journals)
        left = rows - done
        if left < 20:
            break
        target = done + rng.randint(1, max(1, left // (kills - k + 1)))
        proc = subprocess.Popen([*command, *(["--resume"] if k else [])], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and _rows_journaled(journals) < target:
            time.sleep(0.005)
        time.sleep(rng.random() * 0.05)  # anywhere inside a chunk: before, during or after its write
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            landed += 1
        proc.wait(timeout=30)
        assert proc.stderr is not None
        err = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
        assert "Traceback" not in err, err[-2000:]
    final = subprocess.run([*command, "--resume"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]

    verified: Counter[str] = Counter()
    runs = journals_for_plan(plan.digest, journals)
    for path in runs:
        contents = read_journal(path)
        assert contents.header is not None
        assert all("torn write" in w for w in contents.warnings), contents.warnings
        verified.update(r["identity"] for r in contents.rows() if r["status"] == "verified")
    assert set(verified) == targets and max(verified.values()) == 1  # verified exactly once
    assert set(counter.counts) == {t.lower() for t in targets}
    assert max(counter.counts.values()) == 1  # one Set-Mailbox per row, never written again
    assert tenant_state(sb) == tenant_state(twin)  # converged to the uninterrupted run's state
    return {"kills": landed, "runs": len(runs)}


def test_apply_killed_several_times_converges_to_the_uninterrupted_state_writing_each_row_once(
        make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_chain(make_sandbox, tmp_path, monkeypatch, seed=41, rows=ROWS, kills=KILLS)
    assert result["kills"] >= KILLS - 1  # (a run may finish before its kill point: then it is one kill short)
    assert result["runs"] >= result["kills"] + 1


@pytest.mark.slow
@pytest.mark.parametrize("chain", range(SLOW_CHAINS))
def test_fifty_kill_points_all_converge(make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        chain: int, request: pytest.FixtureRequest) -> None:
    if "slow" not in str(request.config.getoption("markexpr") or ""):
        pytest.skip("long campaign: run with -m slow")
    result = run_chain(make_sandbox, tmp_path, monkeypatch, seed=100 + chain, rows=SLOW_ROWS, kills=SLOW_KILLS)
    assert result["kills"] >= SLOW_KILLS - 1
