"""`exocm runbook`: list, run (identity / CSV / findings), gates at the prompt and unattended,
status, resume, abort; against a sandbox profile whose sync runs on a fast timer."""
from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import add_sandbox_profile, exocm, private_env
from exocm.sandbox.server import Sandbox


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_env(monkeypatch, tmp_path, "EXOCM_TEST_CRASH_AT")


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> Sandbox:
    sb = make_sandbox(size=300, seed=7, sync_interval=0.1)
    add_sandbox_profile(sb.info, "lab", tmp_path)
    return sb


FAST = ["--profile", "lab", "--poll-interval", "0.05", "--wait-timeout", "20"]


def test_list_names_the_builtin_runbooks_what_they_fix_and_their_irreversible_steps() -> None:
    result = exocm("runbook", "list", "--steps")
    assert result.exit_code == 0
    for name in ("dual-mailbox-keep-onprem", "dual-mailbox-keep-cloud", "clear-previous-mailbox-info"):
        assert name in result.output
    assert "fixes DUAL_MAILBOX" in result.output and "fixes PREVIOUS_MAILBOX_INFO" in result.output
    assert "[gate] Confirm: permanently destroy the cloud mailbox content" in result.output
    assert "Set-User -PermanentlyClearPreviousMailboxInfo (IRREVERSIBLE)" in result.output


def test_unattended_run_stops_at_the_gate_with_exit_3_and_the_exact_command_to_continue(sandbox: Sandbox) -> None:
    target = sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"][0]
    result = exocm("runbook", "run", "clear-previous-mailbox-info", "--identity", target, "--no-interactive", "--yes",
                   *FAST)
    assert result.exit_code == 3, result.output
    assert sandbox.tenant.exo[target].prev_rtd == "UserMailbox"  # nothing irreversible happened
    expected = f'--confirm-irreversible "{sandbox.tenant.tenant_id}:1"'
    assert "permanently destroys the cloud mailbox content of 1 user(s)" in result.output
    command = next(line.strip() for line in result.output.splitlines() if expected in line)
    assert command.startswith("exocm runbook resume ")
    again = exocm(*shlex.split(command)[1:], "--no-interactive")
    assert again.exit_code == 0, again.output
    assert sandbox.tenant.exo[target].prev_rtd is None


def test_interactive_gate_refuses_a_wrong_confirmation_then_passes_the_right_one(sandbox: Sandbox) -> None:
    target = sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"][0]
    tid = sandbox.tenant.tenant_id
    result = exocm("runbook", "run", "clear-previous-mailbox-info", "--identity", target, "--interactive", "--yes",
                   *FAST, input=f"{tid}:2\nyes\n\n")
    assert result.exit_code == 3, result.output
    assert "IRREVERSIBLE" in result.output and f'Type "{tid}:1"' in result.output
    assert result.output.count("not confirmed") == 2
    assert sandbox.tenant.exo[target].prev_rtd == "UserMailbox"
    run_id = re.search(r"run (\S+) \(state:", result.output).group(1)  # type: ignore[union-attr]
    resumed = exocm("runbook", "resume", run_id, "--interactive", "--poll-interval", "0.05", input=f"{tid}:1\n")
    assert resumed.exit_code == 0, resumed.output
    assert sandbox.tenant.exo[target].prev_rtd is None


def test_confirmation_on_the_command_line_for_the_wrong_count_stops_at_the_gate(sandbox: Sandbox) -> None:
    targets = sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"]
    result = exocm("runbook", "run", "clear-previous-mailbox-info", "--from-findings", "PREVIOUS_MAILBOX_INFO",
                   "--no-interactive", "--confirm-irreversible", f"{sandbox.tenant.tenant_id}:1", *FAST)
    assert result.exit_code == 3, result.output
    assert f'"{sandbox.tenant.tenant_id}:{len(targets)}"' in result.output
    assert all(sandbox.tenant.exo[t].prev_rtd == "UserMailbox" for t in targets)


def test_csv_targets_report_unknown_lines_and_status_shows_the_run(sandbox: Sandbox, tmp_path: Path) -> None:
    target = sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"][0]
    upn = sandbox.tenant.exo[target].upn
    csv = tmp_path / "who.csv"
    csv.write_text(f"UserPrincipalName\n{upn}\nnobody@nowhere.example\n", encoding="utf-8")
    result = exocm("runbook", "run", "clear-previous-mailbox-info", "--csv", str(csv), "--no-interactive", "--yes",
                   *FAST)
    assert result.exit_code == 3, result.output
    assert "skipped: who.csv line 3: 'nobody@nowhere.example' matches no user" in result.output
    listing = exocm("runbook", "status")
    assert listing.exit_code == 0 and "clear-previous-mailbox-info" in listing.output
    assert "needs_confirmation" in listing.output
    detail = exocm("runbook", "status", "last")
    assert detail.exit_code == 0 and upn in detail.output and "confirm-clear" in detail.output
    assert "continue exocm runbook resume" in detail.output
    as_json = json.loads(exocm("runbook", "status", "last", "--format", "json").output)
    assert as_json["objects"][target]["step"] == "confirm-clear"
    deprecated = json.loads(exocm("runbook", "status", "last", "--json").output)
    assert deprecated == as_json


def test_abort_ends_a_run_for_good(sandbox: Sandbox) -> None:
    target = sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"][0]
    exocm("runbook", "run", "clear-previous-mailbox-info", "--identity", target, "--no-interactive", "--yes", *FAST)
    aborted = exocm("runbook", "abort", "last")
    assert aborted.exit_code == 0 and "aborted" in aborted.output
    resumed = exocm("runbook", "resume", "last", "--no-interactive", "--confirm-irreversible",
                    f"{sandbox.tenant.tenant_id}:1")
    assert resumed.exit_code == 2 and "is aborted; nothing to resume" in resumed.output
    assert sandbox.tenant.exo[target].prev_rtd == "UserMailbox"


def test_run_needs_exactly_one_source_of_targets() -> None:
    result = exocm("runbook", "run", "clear-previous-mailbox-info")
    assert result.exit_code == 2 and "exactly one of --identity, --from-findings or --csv" in result.output
    wrong = exocm("runbook", "run", "clear-previous-mailbox-info", "--from-findings", "DUAL_MAILBOX")
    assert wrong.exit_code == 2 and "fixes PREVIOUS_MAILBOX_INFO, not DUAL_MAILBOX" in wrong.output


def test_run_previews_steps_objects_and_writes_then_without_yes_and_no_terminal_stops_before_writing(
        sandbox: Sandbox) -> None:
    target = sandbox.tenant.planted()["DUAL_MAILBOX"][0]
    upn = sandbox.tenant.exo[target].upn
    user = sandbox.tenant.entra_users[target]
    licences = sandbox.tenant.licensed_skus(user)
    writes = sandbox.stats.snapshot()["writes"]
    result = exocm("runbook", "run", "dual-mailbox-keep-onprem", "--identity", target, *FAST)
    assert result.exit_code == 3, result.output
    out = result.output
    assert upn in out and "objects (1):" in out
    # every step, numbered, with what it does; the writes and the irreversible one stand out
    assert "1. [automatic] Check the dual mailbox still exists  (reads only)" in out
    assert "3. [automatic] Remove the Exchange license (Graph; on-prem groups over PSRP when allowed)  (WRITES)" in out
    assert "6. [gate] Confirm: permanently destroy the cloud mailbox content  (typed confirmation before an " \
           "irreversible step)" in out
    assert "7. [automatic] Set-User -PermanentlyClearPreviousMailboxInfo  (WRITES, IRREVERSIBLE)" in out
    assert "3 of 11 steps write to the tenant (first: step 3" in out and "IRREVERSIBLE: step 7" in out
    assert "not started" in out and "--yes" in out
    assert f'--confirm-irreversible "{sandbox.tenant.tenant_id}:1"' in out
    # nothing was started, nothing was written
    assert "no runbook runs yet" in exocm("runbook", "status").output
    assert sandbox.stats.snapshot()["writes"] == writes
    assert licences and sandbox.tenant.licensed_skus(user) == licences


def test_interactive_run_asks_before_the_first_write_and_enter_means_no(sandbox: Sandbox) -> None:
    target = sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"][0]
    result = exocm("runbook", "run", "clear-previous-mailbox-info", "--identity", target, "--interactive", *FAST,
                   input="\n")
    assert result.exit_code == 3, result.output
    assert "Start? exocm writes to the tenant from step 4" in result.output
    assert "not started; nothing was written" in result.output
    assert "no runbook runs yet" in exocm("runbook", "status").output
    assert sandbox.tenant.exo[target].prev_rtd == "UserMailbox"


def test_confirm_irreversible_implies_yes_for_an_unattended_run(sandbox: Sandbox) -> None:
    target = sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"][0]
    result = exocm("runbook", "run", "clear-previous-mailbox-info", "--identity", target, "--no-interactive",
                   "--confirm-irreversible", f"{sandbox.tenant.tenant_id}:1", *FAST)
    assert result.exit_code == 0, result.output
    assert "(WRITES, IRREVERSIBLE)" in result.output
    assert sandbox.tenant.exo[target].prev_rtd is None
