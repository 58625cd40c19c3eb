"""Undo: built from the journal, only verified rows, drifted rows skipped, overwritten values shown."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from exocm.cli.main import cli
from exocm.core.csvio import read_csv
from exocm.core.execute.apply import apply_plan
from exocm.core.execute.undo import build_undo_plan, overwritten_frame
from exocm.core.inventory.onprem import onprem_frame_from_records
from exocm.core.plan.planfile import DRIFTED, load_plan
from plan_support import add_profile, cloud_managed, connect, dirsynced_plan, mailbox


def test_undo_restores_exactly_the_verified_rows_and_skips_a_drifted_one(make_sandbox: Any) -> None:
    sb = make_sandbox(size=120, seed=21)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=20)
    ids = [r.identity for r in plan.set_rows()]
    stale = ids[0]
    sb.tenant.invoke("Set-Mailbox", {"Identity": stale, "IsExchangeCloudManaged": True}, side="exo")
    run = apply_plan(bridge, plan)
    assert run.counts["verified"] == 19 and run.counts["stale"] == 1
    drifted = ids[1]
    sb.tenant.invoke("Set-Mailbox", {"Identity": drifted, "IsExchangeCloudManaged": False}, side="exo")

    undo = build_undo_plan(bridge, run.journal_path)
    assert undo.kind == "undo" and undo.value is False
    rows = {r.identity: r for r in undo.rows}
    assert set(rows) == set(ids[1:])  # built from the journal's verified rows only: not the stale one
    assert rows[drifted].action == "skip" and rows[drifted].reason == DRIFTED
    undone = apply_plan(bridge, undo)
    assert undone.counts["verified"] == 18 and undone.complete
    assert all(cloud_managed(sb, i) is False for i in ids[2:])
    assert cloud_managed(sb, stale) is True  # never ours: untouched
    assert cloud_managed(sb, drifted) is False

    # undo of the undo works the same way: back to true, for the rows the undo verified
    redo = build_undo_plan(bridge, undone.journal_path)
    assert redo.value is True and {r.identity for r in redo.set_rows()} == set(ids[2:])
    assert apply_plan(bridge, redo).counts["verified"] == 18
    assert all(cloud_managed(sb, i) is True for i in ids[2:])


def test_undo_of_a_flip_to_cloud_lists_the_cloud_values_the_next_sync_overwrites(
        make_sandbox: Any, tmp_path: Path) -> None:
    sb = make_sandbox(size=120, seed=22)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=8)
    run = apply_plan(bridge, plan)
    edited = plan.set_rows()[0].identity
    before = mailbox(sb, edited)["CustomAttribute3"]
    # now cloud-managed, the mailbox is edited in EXO (through the product's bridge, as an admin would)
    bridge.invoke("Set-Mailbox", {"Identity": edited, "CustomAttribute3": "=edited in the cloud"})
    assert mailbox(sb, edited)["CustomAttribute3"] == "=edited in the cloud"

    name = add_profile(sb)
    undo_path, export = tmp_path / "undo.json", tmp_path / "overwritten.csv"
    out = CliRunner().invoke(cli, ["undo", "--profile", name, str(run.journal_path), "-o", str(undo_path),
                                   "--export-overwritten", str(export)])
    assert out.exit_code == 0, out.output
    assert "overwrite" in out.output
    undo = load_plan(undo_path)
    row = next(r for r in undo.rows if r.identity == edited)
    assert row.overwritten == {"CustomAttribute3": {"cloud": "=edited in the cloud", "onprem": before or None,
                                                    "basis": "backup"}}
    assert all(not r.overwritten for r in undo.rows if r.identity != edited)
    exported = read_csv(export).frame
    assert exported.to_dict("records") == [{
        "Identity": edited, "DisplayName": row.display_name, "UserPrincipalName": row.upn,
        "Attribute": "CustomAttribute3", "CloudValue": "=edited in the cloud", "OnPremValue": before or "",
        "Basis": "backup"}]
    assert b"'=edited" in export.read_bytes()  # formula-escaped for Excel
    shown = CliRunner().invoke(cli, ["show", str(undo_path)])
    assert shown.exit_code == 1
    assert "OVERWRITE" in shown.output and "CustomAttribute3: =edited in the cloud" in shown.output

    # with on-prem data the comparison is with what on-prem holds (and the sync really overwrites it)
    onprem = onprem_frame_from_records(sb.tenant.onprem_records()).frame
    sharp = build_undo_plan(bridge, run.journal_path, onprem=onprem)
    assert overwritten_frame(sharp).query("Identity == @edited")["Basis"].tolist() == ["onprem"]
    apply_plan(bridge, sharp)
    sb.run_sync_cycle()
    assert mailbox(sb, edited)["CustomAttribute3"] != "=edited in the cloud"  # what the export saved
