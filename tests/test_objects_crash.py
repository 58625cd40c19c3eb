"""Crash test for object SOA: `exocm apply` of a nested group plan killed with SIGKILL mid-run, then
resumed. The sandbox runs in this process and survives the kill of the apply subprocess.

After the resume every row is verified exactly once across the journals, the sandbox ran exactly
one PATCH onPremisesSyncBehavior per row (its write log), children were verified before their
parents across both runs, and every journal parses (a torn last line is the only damage a kill
may leave, and readers skip it).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from exocm.core.detect.objects import detect_objects
from exocm.core.execute.journal import journals_for_plan, read_journal
from exocm.core.inventory.objects import fetch_objects
from exocm.core.plan.objects import build_object_plan
from exocm.core.plan.planfile import save_plan
from objects_support import graph_for, sync_behavior_writes
from plan_support import add_profile


def _journal_rows(directory: Path) -> int:
    total = 0
    for path in directory.glob("*.jsonl"):
        try:
            total += path.read_bytes().count(b'"type": "row"')
        except OSError:
            pass
    return total


def _apply_cmd(name: str, plan: Path) -> list[str]:
    return [sys.executable, "-c", "from exocm.cli.main import main; main()", "apply", "--profile", name,
            str(plan), "--yes"]


@pytest.mark.parametrize("seed", [1, 2])
def test_object_apply_resumes_after_kill_and_verifies_every_row_once(
        make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    env = dict(os.environ, EXOCM_DATA_DIR=str(tmp_path / "data"), EXOCM_CONFIG_DIR=str(tmp_path / "config"))
    for key in ("EXOCM_DATA_DIR", "EXOCM_CONFIG_DIR"):
        monkeypatch.setenv(key, env[key])
    log = tmp_path / "writes.jsonl"
    monkeypatch.setenv("EXOCM_SANDBOX_WRITE_LOG", str(log))
    sb = make_sandbox(size=200, seed=200 + seed, groups=1500, latency_ms=1)
    with graph_for(sb) as graph:
        frame = fetch_objects(graph, "group").frame
    synced = [str(i) for i in frame.index[frame["OnPremisesSyncEnabled"].astype(bool)]]
    plan = build_object_plan("group", frame, synced, True, tenant=sb.tenant.tenant_id,
                             findings=detect_objects("group", frame))
    targets = {r.identity for r in plan.set_rows()}
    assert len(targets) > 500 and len({r.wave for r in plan.set_rows()}) > 1
    plan_path = save_plan(plan, tmp_path / "groups.json")
    name = add_profile(sb)
    journals = tmp_path / "data" / "journals"

    rng = random.Random(seed)
    kill_after_rows = rng.randint(50, len(targets) - 50)
    proc = subprocess.Popen(_apply_cmd(name, plan_path), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if _journal_rows(journals) >= kill_after_rows:
            time.sleep(rng.random() * 0.05)  # anywhere inside a chunk, not just after a commit
            break
        time.sleep(0.005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.stderr is not None
    first_err = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    assert "Traceback" not in first_err, first_err

    resumed = subprocess.run([*_apply_cmd(name, plan_path), "--resume"], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    verified: Counter[str] = Counter()
    order: dict[str, tuple[int, int]] = {}
    paths = sorted(journals_for_plan(plan.digest, journals), key=lambda p: p.name)
    assert len(paths) == 2
    assert read_journal(paths[0]).end is None  # the first run was killed, not finished
    for run, path in enumerate(paths):
        contents = read_journal(path)
        assert contents.header is not None and contents.header["object_kind"] == "group"
        assert all("torn write" in w for w in contents.warnings), contents.warnings
        for line, record in enumerate(contents.rows()):
            if record["status"] == "verified":
                verified[record["identity"]] += 1
                order.setdefault(record["identity"], (run, line))
    assert set(verified) == targets, f"missing {len(targets - set(verified))}"
    assert max(verified.values()) == 1  # verified exactly once across the runs
    writes = sync_behavior_writes(log)
    assert set(writes) == targets and max(writes.values()) == 1  # never written again
    violations = [(p, c) for p in targets for c in frame.at[p, "ChildGroups"] if c in targets and order[c] > order[p]]
    assert violations == []
    assert all(sb.tenant.entra_groups[t].cloud_managed for t in targets)
