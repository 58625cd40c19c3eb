"""A new admin's first session on the embedded SANDBOX, command after command.

The promise: with no profile configured, every command uses one embedded sandbox whose state
is kept between commands (per size and seed), so plan -> show -> apply -> report -> undo ->
apply works across separate processes; every command says SANDBOX and where the state lives;
expected failures are one line with the right exit code; `--help` teaches with examples.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import add_sandbox_profile, exocm, private_env
from exocm.cli.embedded_sandbox import state_lock
from exocm.core.access.config import embedded_sandbox_state
from exocm.core.plan.planfile import load_plan
from exocm.sandbox.server import Sandbox
from exocm.sandbox.tenant import Tenant

SIZE = 300
SEED = 7
SANDBOX = ["--size", str(SIZE), "--seed", str(SEED)]
SHARED = 'RecipientTypeDetails == "SharedMailbox" and IsDirSynced'


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_env(monkeypatch, tmp_path)


EXOCM = [sys.executable, "-c", "from exocm.cli.main import main; main()"]


def exocm_process(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`exocm ARGS` as its own process (what proves state survives between commands)."""
    return subprocess.run([*EXOCM, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=dict(os.environ))


def cloud_managed(size: int = SIZE, seed: int = SEED) -> dict[str, bool]:
    """IsExchangeCloudManaged per mailbox, straight from the saved embedded sandbox."""
    tenant = Tenant.load(embedded_sandbox_state(size, seed))
    return {edoid: bool(r.cloud_managed) for edoid, r in tenant.exo.items()}


def journal_of(output: str) -> str:
    return next(line.split("journal: ", 1)[1].strip() for line in output.splitlines() if "journal: " in line)


def test_plan_apply_report_undo_apply_work_across_separate_commands(tmp_path: Path) -> None:
    plan = tmp_path / "p.json"
    made = exocm_process("plan", *SANDBOX, "--set-cloud-managed", "true", "--where", SHARED, "-o", str(plan))
    assert made.returncode == 0, made.stderr
    set_rows = [r.identity for r in load_plan(plan).set_rows()]
    assert set_rows
    before = cloud_managed()
    assert not any(before[i] for i in set_rows)

    # apply in another process, without --size/--seed: the plan names its sandbox
    applied = exocm_process("apply", str(plan), "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "stale 0" in applied.stderr and f"verified {len(set_rows)}," in applied.stderr
    after = cloud_managed()
    assert all(after[i] for i in set_rows)

    journal = journal_of(applied.stderr)
    report = exocm("report", journal, "--format", "json")
    assert report.exit_code == 0
    assert json.loads(report.stdout)["counts"]["verified"] == len(set_rows)
    table = exocm("report", journal)
    assert table.stdout.startswith(f"# SANDBOX: embedded, {SIZE:,} users, seed {SEED}\n")

    undo_plan = tmp_path / "u.json"
    undo = exocm("undo", journal, "-o", str(undo_plan))
    assert undo.exit_code == 0, undo.output
    shown = exocm("show", str(undo_plan))
    assert shown.exit_code == 1  # something would change
    assert f"(SANDBOX: embedded, {SIZE:,} users, seed {SEED})" in shown.stdout.splitlines()[0]
    assert "OVERWRITE" in shown.stdout  # a true -> false undo lists what the next sync overwrites
    undone = exocm_process("apply", str(undo_plan), "--yes")
    assert undone.returncode == 0, undone.stderr
    assert cloud_managed() == before


def test_every_embedded_command_says_sandbox_and_where_its_state_lives() -> None:
    result = exocm("tenant-default", "show", *SANDBOX)
    assert result.exit_code == 0, result.output
    state = embedded_sandbox_state(SIZE, SEED)
    banner = [line for line in result.stderr.splitlines() if line.startswith("SANDBOX (embedded")]
    assert banner == [f"SANDBOX (embedded, {SIZE:,} users, seed {SEED}, state: {state}; "
                      f"`exocm sandbox reset --size {SIZE} --seed {SEED}` starts over) "
                      "-- a local test tenant, not Microsoft"]
    assert "ExchangeAttributesCloudManagedByDefault: False" in result.stdout
    assert state.exists()


def test_apply_opens_the_sandbox_the_plan_was_made_on_and_refuses_another(tmp_path: Path) -> None:
    plan = tmp_path / "p.json"
    assert exocm("plan", *SANDBOX, "--set-cloud-managed", "true", "--where", SHARED, "-o", str(plan)).exit_code == 0
    assert load_plan(plan).source["embedded_sandbox"] == {"size": SIZE, "seed": SEED}
    other = exocm("apply", str(plan), "--yes", "--size", "400")
    assert other.exit_code == 2
    assert f"made on the embedded sandbox of {SIZE} users, seed {SEED}" in other.output
    assert not embedded_sandbox_state(400, 42).exists()  # refused before anything started


def test_apply_without_yes_on_a_non_interactive_stdin_refuses_with_exit_3_and_changes_nothing(
        tmp_path: Path) -> None:
    plan = tmp_path / "p.json"
    assert exocm("plan", *SANDBOX, "--set-cloud-managed", "true", "--where", SHARED, "-o", str(plan)).exit_code == 0
    before = cloud_managed()
    refused = exocm("apply", str(plan))
    assert refused.exit_code == 3
    assert "exocm: error: refusing to apply without --yes: stdin is not interactive" in refused.stderr
    assert cloud_managed() == before


def test_a_second_command_on_a_busy_embedded_sandbox_gets_one_line_naming_the_holder() -> None:
    assert exocm("tenant-default", "show", *SANDBOX).exit_code == 0  # the state exists
    lock = state_lock(SIZE, SEED)
    lock.acquire("held by this test")
    try:
        busy = exocm("inventory", *SANDBOX)
        assert busy.exit_code == 2
        assert busy.stderr.strip().splitlines()[-1].startswith(
            f"exocm: error: the embedded sandbox ({SIZE} users, seed {SEED}) is in use by another exocm "
            f"command (pid {os.getpid()}")
        refused = exocm("sandbox", "reset", *SANDBOX)
        assert refused.exit_code == 2 and "in use by another exocm command" in refused.stderr
    finally:
        lock.release()
    assert embedded_sandbox_state(SIZE, SEED).exists()  # the refused reset deleted nothing


def test_sandbox_reset_deletes_the_state_and_says_what_it_deleted(tmp_path: Path) -> None:
    assert exocm("tenant-default", "show", *SANDBOX).exit_code == 0
    state = embedded_sandbox_state(SIZE, SEED)
    reset = exocm("sandbox", "reset", *SANDBOX)
    assert reset.exit_code == 0, reset.output
    assert f"deleted {state}\n" in reset.stdout and f"deleted {state}.tls\n" in reset.stdout
    assert not state.exists()
    again = exocm("sandbox", "reset", *SANDBOX)
    assert again.exit_code == 0 and "nothing to reset" in again.stdout


def test_a_damaged_state_is_one_line_that_names_the_reset_command() -> None:
    state = embedded_sandbox_state(SIZE, SEED)
    state.parent.mkdir(parents=True)
    state.write_bytes(b"not a database")
    result = exocm("inventory", *SANDBOX)
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"exocm: error: cannot load the embedded sandbox state {state}")
    assert f"'exocm sandbox reset --size {SIZE} --seed {SEED}' starts over" in last


def test_plan_on_the_embedded_sandbox_checks_its_on_prem_side_like_findings(tmp_path: Path) -> None:
    plan = tmp_path / "p.json"
    result = exocm("plan", *SANDBOX, "--set-cloud-managed", "true", "--all-dirsynced", "-o", str(plan))
    assert result.exit_code == 0, result.output
    assert "not checked" not in result.stderr
    planted = Tenant.load(embedded_sandbox_state(SIZE, SEED)).planted()
    rows = {r.identity: r for r in load_plan(plan).rows}
    duals = [rows[i] for i in planted["DUAL_MAILBOX"] if i in rows]
    assert duals and all(r.action == "skip" for r in duals)


def test_runbook_gate_stops_with_exit_3_and_the_printed_command_resumes_on_the_same_sandbox() -> None:
    run = exocm("runbook", "run", "clear-previous-mailbox-info", "--from-findings", "PREVIOUS_MAILBOX_INFO",
                "--no-interactive", "--yes", *SANDBOX)
    assert run.exit_code == 3, run.output
    assert "cannot be resumed" not in run.output
    command = next(line.strip() for line in run.output.splitlines()
                   if line.strip().startswith("exocm runbook resume ") and "--confirm-irreversible" in line)
    targets = Tenant.load(embedded_sandbox_state(SIZE, SEED)).planted()["PREVIOUS_MAILBOX_INFO"]
    assert f':{len(targets)}"' in command
    resumed = exocm(*shlex.split(command)[1:], "--no-interactive")
    assert resumed.exit_code == 0, resumed.output
    tenant = Tenant.load(embedded_sandbox_state(SIZE, SEED))
    assert all(tenant.exo[t].prev_rtd is None for t in targets)


@pytest.mark.parametrize("command", [
    ["inventory"], ["findings"], ["plan"], ["show"], ["apply"], ["undo"], ["report"],
    ["runbook", "run"], ["sandbox", "serve"], ["sandbox", "reset"], ["sandbox", "sync"], ["profiles", "add"],
    ["login"], ["readiness"],
])
def test_help_teaches_with_examples(command: list[str]) -> None:
    result = exocm(*command, "--help")
    assert result.exit_code == 0
    examples = result.output.split("Examples:", 1)
    assert len(examples) == 2, result.output
    assert f"exocm {' '.join(command)}" in examples[1]


@pytest.mark.parametrize("args", [
    ["show", "missing.json"],
    ["apply", "missing.json", "--yes"],
    ["report", "missing.jsonl"],
    ["inventory", "--profile", "nope"],
])
def test_missing_files_and_unknown_profiles_are_one_line_and_exit_2(args: list[str]) -> None:
    result = exocm(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("exocm: error: "), result.stderr
    assert "Traceback" not in result.output


def test_a_wrong_value_names_its_option() -> None:
    result = exocm("plan", "--set-cloud-managed", "maybe", "--all-dirsynced")
    assert result.exit_code == 2 and "'--set-cloud-managed'" in result.stderr


def test_a_sandbox_profile_whose_sandbox_stopped_fails_in_seconds_with_what_to_do(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sb = make_sandbox(size=50, seed=3, tls_dir=tmp_path / "tls")  # CA kept after stop
    add_sandbox_profile(sb.info, "lab", tmp_path)
    sb.stop()
    started = time.monotonic()
    result = exocm("inventory", "--profile", "lab", "--refresh")
    assert result.exit_code == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "cannot reach" in line and "profile 'lab' is a sandbox that is not running any more" in line
    assert "exocm profiles remove lab" in line
    assert time.monotonic() - started < 30  # a few quick tries, not minutes of backoff


def test_profiles_add_says_when_the_new_profile_became_the_default(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sb = make_sandbox(size=50, seed=3)
    info_file = tmp_path / "sandbox.json"
    info_file.write_text(json.dumps(sb.info) + "\n", encoding="utf-8")
    first = exocm("profiles", "add", "one", "--from-sandbox", str(info_file))
    assert first.exit_code == 0 and "it is now the default" in first.stdout
    second = exocm("profiles", "add", "two", "--from-sandbox", str(info_file))
    assert second.exit_code == 0 and "now the default" not in second.stdout


def test_ctrl_c_during_an_embedded_inventory_exits_130_and_the_next_command_works() -> None:
    size = 20_000  # big enough to still be generating when Ctrl-C comes
    proc = subprocess.Popen([*EXOCM, "inventory", "--size", str(size)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    try:
        first = proc.stderr.readline()
        assert first.startswith("SANDBOX (embedded"), first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert exocm("tenant-default", "show", "--size", "60").exit_code == 0  # nothing left locked or broken
