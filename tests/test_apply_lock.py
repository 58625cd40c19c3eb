"""Two `exocm apply` of one plan: the second refuses in one line naming the owner; a dead owner's lock is taken over.

Extends the in-process lock test of test_apply_sandbox.py with real processes: the lock is
an flock on `<data dir>/locks/apply-<digest>.lock` with the owner's pid, host and start
time in `...owner.json`. The sandbox runs in this test process and counts every
Set-Mailbox it runs, so a double write cannot hide.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from exocm.cli.main import cli
from exocm.core.execute.apply import PlanLock
from exocm.core.execute.journal import journals_for_plan, read_journal
from exocm.core.plan.planfile import Plan, save_plan
from plan_support import SetMailboxCounter, add_profile, cloud_managed, connect, dirsynced_plan

ROWS = 40


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    values = {"EXOCM_DATA_DIR": str(tmp_path / "data"), "EXOCM_CONFIG_DIR": str(tmp_path / "config")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    yield dict(os.environ, **values)


def _apply_cmd(profile: str, plan: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from exocm.cli.main import main; main()", "apply", "--profile", profile,
            str(plan), "--yes", *extra]


def _owner_file(data: Path, plan: Plan) -> Path:
    return PlanLock(data / "locks", plan.digest).owner_path


def _wait_for(predicate: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("exocm: error:")]


def _setup(make_sandbox: Any, tmp_path: Path, seed: int) -> tuple[Any, Plan, Path, str, SetMailboxCounter]:
    # a write budget of 15/s keeps the first apply busy for a few seconds
    sb = make_sandbox(size=150, seed=seed, write_budget=15)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=ROWS)
    bridge.close()
    path = save_plan(plan, tmp_path / "plan.json")
    return sb, plan, path, add_profile(sb), SetMailboxCounter(sb)


def test_second_apply_of_a_running_plan_refuses_in_one_line_naming_the_owner_pid_and_never_double_writes(
        make_sandbox: Any, tmp_path: Path, env: dict[str, str]) -> None:
    sb, plan, path, profile, counter = _setup(make_sandbox, tmp_path, seed=31)
    first = subprocess.Popen(_apply_cmd(profile, path), env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        owner = _owner_file(tmp_path / "data", plan)
        assert _wait_for(owner.exists), "the first apply never took the lock"
        second = CliRunner().invoke(cli, _apply_cmd(profile, path)[3:])  # the same command, in this process
        assert first.poll() is None, "the first apply ended before the second was tried; slow it down"
    finally:
        out, err = first.communicate(timeout=180)
    assert second.exit_code == 2 and isinstance(second.exception, SystemExit), second.output
    lines = _error_lines(second.stderr)
    assert len(lines) == 1, second.stderr
    assert "already being applied" in lines[0] and f"pid {first.pid} " in lines[0]
    assert "Traceback" not in err
    assert first.returncode == 0, err[-2000:]
    targets = {r.identity.lower() for r in plan.set_rows()}
    assert set(counter.counts) == targets and max(counter.counts.values()) == 1  # never written twice
    assert len(journals_for_plan(plan.digest, tmp_path / "data" / "journals")) == 1  # the refused run wrote none
    assert not owner.exists()  # released with the lock


def test_two_applies_started_together_write_every_row_exactly_once(
        make_sandbox: Any, tmp_path: Path, env: dict[str, str]) -> None:
    sb, plan, path, profile, counter = _setup(make_sandbox, tmp_path, seed=32)
    procs = [subprocess.Popen(_apply_cmd(profile, path), env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=180), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    # one runs; the other is refused while it runs, or (if it came second) finds nothing left to do
    assert codes in ([0, 2], [0, 0]), results
    for code, err in results:
        assert "Traceback" not in err
        if code == 2:
            assert len(_error_lines(err)) == 1 and "already being applied" in err
    assert max(counter.counts.values()) == 1 and len(counter.counts) == ROWS
    assert all(cloud_managed(sb, r.identity) is True for r in plan.set_rows())


def test_a_lock_left_by_a_killed_apply_is_taken_over_and_the_resume_never_rewrites(
        make_sandbox: Any, tmp_path: Path, env: dict[str, str]) -> None:
    sb, plan, path, profile, counter = _setup(make_sandbox, tmp_path, seed=33)
    journals = tmp_path / "data" / "journals"
    first = subprocess.Popen(_apply_cmd(profile, path), env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    owner = _owner_file(tmp_path / "data", plan)
    assert _wait_for(lambda: sum(counter.counts.values()) >= 10), "the first apply wrote nothing"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    # the dead run's owner file is still there: the lock looks held, but its flock died with it
    assert json.loads(owner.read_text(encoding="utf-8"))["pid"] == first.pid

    resumed = CliRunner().invoke(cli, _apply_cmd(profile, path, "--resume")[3:])
    assert resumed.exit_code == 0, resumed.output[-2000:]
    assert f"took over the lock of a run that is gone (pid {first.pid} " in " ".join(resumed.stderr.split())
    runs = journals_for_plan(plan.digest, journals)
    assert len(runs) == 2
    header = read_journal(runs[-1]).header
    assert header is not None and f"pid {first.pid} " in str(header.get("lock_taken_over_from"))
    assert set(counter.counts) == {r.identity.lower() for r in plan.set_rows()}
    assert max(counter.counts.values()) == 1
    assert not owner.exists()
