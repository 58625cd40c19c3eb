"""Live on-prem inventory over WinRM feeds the same join as the CSV path, and detection finds the
same problems through it."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from exocm.core.access.config import sandbox_profile
from exocm.core.access.connect import open_bridge
from exocm.core.bridge.psrp import PsrpBridge, PsrpEndpoint
from exocm.core.detect.engine import detect
from exocm.core.inventory.fetch import fetch_inventory
from exocm.core.inventory.onprem import load_onprem_csv, onprem_frame_from_records
from exocm.core.inventory.onprem_live import fetch_onprem_records, load_onprem_live, with_onprem_columns
from exocm.core.model import ONPREM_COLUMNS
from exocm.sandbox.server import Sandbox


def _onprem_bridge(sb: Sandbox) -> PsrpBridge:
    info = sb.info
    return PsrpBridge(PsrpEndpoint(info["winrm_onprem_url"], username=info["winrm_username"],
                                   password=info["winrm_password"], ca_file=info["ca_file"]), info["tenant"])


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame, *, seconds: bool = False) -> None:
    key = ["DistinguishedName"]
    left = a.sort_values(key).reset_index(drop=True)[list(ONPREM_COLUMNS)]
    right = b.sort_values(key).reset_index(drop=True)[list(ONPREM_COLUMNS)]
    if seconds:
        # AD's whenChanged has one-second resolution and the export script writes whole seconds;
        # the sandbox keeps sub-second times, which only the live path carries over.
        for col in ("WhenChanged", "WhenCreated"):  # the CSV carries whole seconds
            left[col] = pd.to_datetime(left[col], utc=True).dt.floor("s")
            right[col] = pd.to_datetime(right[col], utc=True).dt.floor("s")
    pd.testing.assert_frame_equal(left, right, check_dtype=False)


def test_live_fetch_selects_only_the_export_columns_and_equals_the_tenants_rows(sandbox: Sandbox) -> None:
    events = []
    with _onprem_bridge(sandbox) as bridge:
        records = fetch_onprem_records(bridge, progress=events.append)
    want = sandbox.tenant.onprem_records()
    assert len(records) == len(want) > 0
    assert all(list(r) == list(ONPREM_COLUMNS) for r in records)
    assert events[-1].message == "done" and events[-1].done == len(records)
    _frames_equal(onprem_frame_from_records(records).frame, onprem_frame_from_records(want).frame)


def test_live_onprem_frame_equals_the_csv_path_for_the_same_tenant(sandbox: Sandbox, tmp_path: Path) -> None:
    from exocm.sandbox.onprem_export import write_onprem_csv

    path = tmp_path / "onprem.csv"
    write_onprem_csv(sandbox.tenant, path)
    from_csv = load_onprem_csv(path)
    with _onprem_bridge(sandbox) as bridge:
        live = load_onprem_live(bridge)
    assert not from_csv.bad_rows and not live.bad_rows
    assert live.columns_present == from_csv.columns_present
    _frames_equal(live.frame, from_csv.frame, seconds=True)


def test_a_planted_dual_mailbox_is_found_through_the_live_path(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(size=400, seed=21)
    planted = sb.tenant.planted()
    assert planted["DUAL_MAILBOX"], "the generator plants dual mailboxes"
    info = sb.info
    prof = sandbox_profile("live", info)
    assert prof.secret_env is not None
    with open_bridge(prof, env={prof.secret_env: info["client_secret"]}, persist_tokens=False) as rest:
        inventory = fetch_inventory(rest)
    with _onprem_bridge(sb) as bridge:
        onprem = load_onprem_live(bridge)
    result = detect(inventory.frame, onprem.frame, now=sb.tenant.now())
    found = result.findings
    for code in ("DUAL_MAILBOX", "EXCHANGEGUID_MISMATCH"):
        ids = sorted(found.loc[found["code"] == code, "ExternalDirectoryObjectId"])
        assert ids == planted[code], code
    # The inventory view of the same join: the dual mailboxes show a local on-prem mailbox.
    joined = with_onprem_columns(inventory.frame, onprem.frame)
    duals = joined.loc[planted["DUAL_MAILBOX"]]
    assert set(duals["OnPremRecipientTypeDetails"]) <= {"UserMailbox", "SharedMailbox", "RoomMailbox",
                                                        "EquipmentMailbox"}
    assert duals["OnPremJoin"].notna().all()
    assert int(joined["OnPremJoin"].notna().sum()) == len(onprem.frame)


def test_parallel_live_fetch_reads_every_row_once_even_when_the_server_refuses_extra_shells(
        make_sandbox: Callable[..., Sandbox]) -> None:
    from exocm.core.inventory.onprem_live import onprem_slices

    sb = make_sandbox(size=200, concurrency_limit=2)  # 2 shells: two of the four pools are refused
    with _onprem_bridge(sb) as bridge:
        records = fetch_onprem_records(bridge, shells=4)
    want = sb.tenant.onprem_records()
    assert sorted(r["DistinguishedName"] for r in records) == sorted(r["DistinguishedName"] for r in want)
    assert sb.winrm.service.stats.get("quota_faults", 0) >= 1
    # the slices are disjoint and complete by construction: the last is the others' complement
    slices = onprem_slices(8)
    assert slices[-1] == "-not (" + " -or ".join(f"({s})" for s in slices[:-1]) + ")"
    assert onprem_slices(1) == [None]
