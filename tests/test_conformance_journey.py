"""The CLI journey against each conformance variant of the sandbox (sandbox/variants.py).

Every variant is a reading of Exchange Online that public sources allow; exocm must survive each
one alone and the `--strict` set together: inventory (also --dirsynced-only), findings, plan,
show, apply, report, undo, tenant-default show/set, and both kinds of runbook, on the embedded
sandbox run under EXOCM_SANDBOX_VARIANT. The journey asserts outcomes (rows verified, the
tenant's real state), never timings.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from cli_support import exocm, private_env
from exocm.core.access.config import embedded_sandbox_state
from exocm.core.plan.planfile import load_plan
from exocm.sandbox.tenant import Tenant
from exocm.sandbox.variants import VARIANTS

SIZE = 200
SEED = 7
SANDBOX = ["--size", str(SIZE), "--seed", str(SEED)]
SHARED = 'RecipientTypeDetails == "SharedMailbox" and IsDirSynced'
WORLDS = ["default", "strict", *VARIANTS]


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_env(monkeypatch, tmp_path)


def tenant() -> Tenant:
    return Tenant.load(embedded_sandbox_state(SIZE, SEED))


def journal_of(output: str) -> str:
    return next(line.split("journal: ", 1)[1].strip() for line in output.splitlines() if "journal: " in line)


def run_through_gate(*args: str) -> None:
    """`exocm runbook run ...` unattended; at a gate (exit 3), the printed resume command finishes it."""
    first = exocm("runbook", "run", *args, "--no-interactive", "--yes", *SANDBOX)
    if first.exit_code == 3:
        command = next(line.strip() for line in first.output.splitlines()
                       if line.strip().startswith("exocm runbook resume ") and "--confirm-irreversible" in line)
        first = exocm(*shlex.split(command)[1:], "--no-interactive")
    assert first.exit_code == 0, first.output


@pytest.mark.parametrize("world", WORLDS)
def test_the_cli_journey_survives_the_variant(world: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if world != "default":
        monkeypatch.setenv("EXOCM_SANDBOX_VARIANT", world)

    inventory = exocm("inventory", *SANDBOX, "--refresh")
    assert inventory.exit_code == 0, inventory.output
    dirsynced = exocm("inventory", *SANDBOX, "--dirsynced-only", "--refresh")
    assert dirsynced.exit_code == 0, dirsynced.output
    state = tenant()
    dirsynced_mailboxes = sum(1 for r in state.exo.values() if r.dir_synced and r.rtd.endswith("Mailbox"))
    assert dirsynced_mailboxes > 0

    findings = exocm("findings", *SANDBOX, "--format", "json", "--refresh")
    assert findings.exit_code in (0, 1), findings.output
    codes = {f["code"] for f in json.loads(findings.stdout)["findings"]}
    planted = {code for code, ids in state.planted().items() if ids}
    assert {"DUAL_MAILBOX", "PREVIOUS_MAILBOX_INFO"} <= codes & planted

    plan_path = tmp_path / "p.json"
    made = exocm("plan", *SANDBOX, "--set-cloud-managed", "true", "--where", SHARED, "-o", str(plan_path),
                 "--refresh")
    assert made.exit_code == 0, made.output
    set_rows = [r.identity for r in load_plan(plan_path).set_rows()]
    assert set_rows
    assert exocm("show", str(plan_path)).exit_code == 1  # something would change

    applied = exocm("apply", str(plan_path), "--yes")
    assert applied.exit_code == 0, applied.output
    assert f"verified {len(set_rows)}," in applied.stderr
    assert all(tenant().exo[i].cloud_managed for i in set_rows)
    journal = journal_of(applied.stderr)
    report = exocm("report", journal, "--format", "json")
    assert report.exit_code == 0 and json.loads(report.stdout)["counts"]["verified"] == len(set_rows)

    undo_path = tmp_path / "u.json"
    undo = exocm("undo", journal, "-o", str(undo_path))
    assert undo.exit_code == 0, undo.output
    assert "writeback to AD: " in undo.stderr
    undone = exocm("apply", str(undo_path), "--yes")
    assert undone.exit_code == 0, undone.output
    assert not any(tenant().exo[i].cloud_managed for i in set_rows)

    shown = exocm("tenant-default", "show", *SANDBOX)
    assert shown.exit_code == 0, shown.output
    assert "ExchangeAttributesCloudManagedByDefault: False (server)" in shown.stdout
    changed = exocm("tenant-default", "set", "cloud", "--yes", *SANDBOX)
    assert changed.exit_code == 0, changed.output
    assert tenant().org_config["ExchangeAttributesCloudManagedByDefault"] is True
    again = exocm("tenant-default", "show", *SANDBOX)
    assert "ExchangeAttributesCloudManagedByDefault: True (cloud)" in again.stdout
    if world in ("strict", "org-config-block"):
        assert "read from: BlockExchangeProvisioningFromOnPremEnabled" in again.stdout
    assert exocm("tenant-default", "set", "server", "--yes", *SANDBOX).exit_code == 0

    previous = state.planted()["PREVIOUS_MAILBOX_INFO"]
    duals = state.planted()["DUAL_MAILBOX"]
    run_through_gate("clear-previous-mailbox-info", "--from-findings", "PREVIOUS_MAILBOX_INFO")
    run_through_gate("dual-mailbox-keep-cloud", "--from-findings", "DUAL_MAILBOX")
    after = tenant()
    assert all(after.exo[i].prev_rtd is None for i in previous)
    assert not set(duals) & set(after.planted()["DUAL_MAILBOX"])


def test_an_unknown_embedded_variant_is_one_line_and_the_banner_names_the_ones_in_force(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOCM_SANDBOX_VARIANT", "nope")
    bad = exocm("tenant-default", "show", *SANDBOX)
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("exocm: error: EXOCM_SANDBOX_VARIANT: unknown variant 'nope'")
    monkeypatch.setenv("EXOCM_SANDBOX_VARIANT", "prtd-null,cursor-advances")
    good = exocm("tenant-default", "show", *SANDBOX)
    assert good.exit_code == 0, good.output
    lines = good.stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("SANDBOX (embedded"))
    assert lines[at + 1] == "SANDBOX: conformance variants in force: cursor-advances, prtd-null"
