"""Crash test: `exocm apply` of 2,000 rows killed with SIGKILL at a random moment, then resumed.

The sandbox runs in this test process, so it survives the kill of the apply subprocess.
After the resume: every row is verified exactly once across the journals, the sandbox ran
exactly one Set-Mailbox per row (nothing written again after it was verified, nothing
written twice at all), and every journal parses (a torn last line is the only thing a
killed run may leave, and readers skip it).
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
from pathlib import Path
from typing import Any

import pytest
from exocm.core.execute.journal import journals_for_plan, read_journal
from exocm.core.plan.planfile import save_plan
from plan_support import SetMailboxCounter, add_profile, cloud_managed, connect, dirsynced_plan

ROWS = 2000
DEFAULT_SEEDS = (1, 2, 3)
SLOW_SEEDS = tuple(range(4, 13))


def _journal_records(directory: Path) -> list[dict[str, Any]]:
    """Every whole JSON record in the journals so far (a line still being written is skipped)."""
    records: list[dict[str, Any]] = []
    for path in directory.glob("*.jsonl"):
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # torn or half-written last line
            if isinstance(record, dict):
                records.append(record)
    return records


def _journal_rows(directory: Path) -> int:
    return sum(1 for r in _journal_records(directory) if r.get("type") == "row")


def _verified_rows(directory: Path) -> set[str]:
    return {str(r["identity"]) for r in _journal_records(directory)
            if r.get("type") == "row" and r.get("status") == "verified"}


def _apply_cmd(name: str, plan: Path) -> list[str]:
    return [sys.executable, "-c", "from exocm.cli.main import main; main()", "apply", "--profile", name,
            str(plan), "--yes"]


def crash_and_resume(make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    env = dict(os.environ, EXOCM_DATA_DIR=str(tmp_path / "data"), EXOCM_CONFIG_DIR=str(tmp_path / "config"))
    for key in ("EXOCM_DATA_DIR", "EXOCM_CONFIG_DIR"):
        monkeypatch.setenv(key, env[key])
    sb = make_sandbox(size=2500, seed=100 + seed)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=ROWS)
    bridge.close()
    targets = {r.identity for r in plan.set_rows()}
    assert len(targets) == ROWS
    plan_path = save_plan(plan, tmp_path / "plan.json")
    name = add_profile(sb)
    counter = SetMailboxCounter(sb)
    journals = tmp_path / "data" / "journals"

    rng = random.Random(seed)
    kill_after_rows = rng.randint(0, ROWS - 50)
    proc = subprocess.Popen(_apply_cmd(name, plan_path), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if _journal_rows(journals) >= kill_after_rows:
            time.sleep(rng.random() * 0.05)  # land anywhere inside a chunk, not just after a commit
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the apply ended before the kill: the test proved nothing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the child was not killed by SIGKILL: {proc.returncode}"
    done_before_resume = _verified_rows(journals)
    assert done_before_resume < targets, "the kill left no rows to resume"
    assert proc.stderr is not None
    first_err = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    assert "Traceback" not in first_err, first_err

    resumed = subprocess.run([*_apply_cmd(name, plan_path), "--resume"], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    verified: Counter[str] = Counter()
    for path in journals_for_plan(plan.digest, journals):
        contents = read_journal(path)
        assert contents.header is not None
        assert all("torn write" in w for w in contents.warnings), contents.warnings
        verified.update(r["identity"] for r in contents.rows() if r["status"] == "verified")
    notes = sum(1 for p in journals_for_plan(plan.digest, journals) for r in read_journal(p).rows()
                if "interrupted earlier run" in (r.get("note") or ""))
    print(f"seed {seed}: killed after {kill_after_rows} rows; runs {len(journals_for_plan(plan.digest, journals))}; "
          f"resolved by read-back {notes}")
    assert set(verified) == targets, f"missing {len(targets - set(verified))}"
    assert max(verified.values()) == 1  # verified exactly once across the runs
    assert {k for k in counter.counts} == {t.lower() for t in targets}
    assert max(counter.counts.values()) == 1  # one Set-Mailbox per row, never written again
    assert all(cloud_managed(sb, t) is True for t in targets)


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_apply_resumes_after_kill_without_rewriting_verified_rows(
        make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    crash_and_resume(make_sandbox, tmp_path, monkeypatch, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_apply_resumes_after_kill_without_rewriting_verified_rows_more_seeds(
        make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int,
        request: pytest.FixtureRequest) -> None:
    if "slow" not in str(request.config.getoption("markexpr") or ""):
        pytest.skip("long campaign: run with -m slow")
    crash_and_resume(make_sandbox, tmp_path, monkeypatch, seed)


def test_ctrl_c_stops_cleanly_prints_the_resume_command_and_exits_130(
        make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = dict(os.environ, EXOCM_DATA_DIR=str(tmp_path / "data"), EXOCM_CONFIG_DIR=str(tmp_path / "config"))
    for key in ("EXOCM_DATA_DIR", "EXOCM_CONFIG_DIR"):
        monkeypatch.setenv(key, env[key])
    sb = make_sandbox(size=300, seed=40, latency_ms=5)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=150)
    bridge.close()
    plan_path = save_plan(plan, tmp_path / "plan.json")
    name = add_profile(sb)
    journals = tmp_path / "data" / "journals"
    proc = subprocess.Popen(_apply_cmd(name, plan_path), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _journal_rows(journals) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"exocm apply {plan_path} --resume" in " ".join(err.split())
    (journal,) = journals_for_plan(plan.digest, journals)
    assert str(journal.name) in err.replace("\n", "")
    contents = read_journal(journal)
    assert contents.warnings == [] and contents.end is not None and contents.end["cancelled"] is True
    statuses = Counter(r["status"] for r in contents.rows())
    assert 0 < statuses["verified"] < 150 and set(statuses) <= {"verified", "interrupted", "skipped"}
    resumed = subprocess.run([*_apply_cmd(name, plan_path), "--resume"], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert all(cloud_managed(sb, r.identity) is True for r in plan.set_rows())
