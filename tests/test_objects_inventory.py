"""Object inventory and findings through the real msal + httpx Graph bridge against the sandbox:
every kind's rows equal the sandbox's truth, and every object finding equals `planted`."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from exocm.core.detect.objects import codes_for, detect_objects, nesting_waves, planted_shape
from exocm.core.inventory.objects import fetch_objects
from exocm.core.inventory.snapshot import load_object_snapshot, save_object_snapshot
from exocm.sandbox.object_findings import planted_objects
from exocm.sandbox.server import Sandbox
from objects_support import ad_when_changed, graph_for


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """A small tenant with nested groups and (odd seed) one nesting cycle."""
    sandbox = Sandbox.start(size=300, seed=7)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def inventories(sb: Sandbox) -> dict[str, Any]:
    with graph_for(sb) as graph:
        return {kind: fetch_objects(graph, kind) for kind in ("group", "contact", "user")}


def test_group_inventory_equals_the_sandbox(sb: Sandbox, inventories: dict[str, Any]) -> None:
    t = sb.tenant
    frame = inventories["group"].frame
    assert set(frame.index) == set(t.entra_groups)
    for gid, g in t.entra_groups.items():
        row = frame.loc[gid]
        assert bool(row["OnPremisesSyncEnabled"]) == bool(g.sync_enabled)
        assert row["IsCloudManaged"] == (bool(g.cloud_managed) if g.sync_enabled else None)
        assert set(row["ChildGroups"]) == {c for c in g.member_groups if c in t.entra_groups}
        members = (len([u for u in g.members if u in t.entra_users]) + len(row["ChildGroups"])
                   + len([c for c in g.member_contacts if c in t.entra_contacts]))
        assert row["MemberCount"] == members
        assert row["OwnerCount"] == len([u for u in g.owners if u in t.entra_users])
        assert row["LicenseCount"] == len(g.licenses)
        if "DynamicMembership" in g.group_types:
            assert row["GroupType"] == "Dynamic"
        elif "Unified" in g.group_types:
            assert row["GroupType"] == "Microsoft365" and bool(row["WrittenBack"]) == bool(g.written_back)
    # parents are the inverse of children
    for gid in frame.index:
        for child in frame.at[gid, "ChildGroups"]:
            assert gid in frame.at[child, "ParentGroups"]
    assert {"Distribution", "Security", "Dynamic"} <= set(frame["GroupType"])


def test_contact_and_user_inventory_equal_the_sandbox(sb: Sandbox, inventories: dict[str, Any]) -> None:
    t = sb.tenant
    for kind, truth in (("contact", t.entra_contacts), ("user", t.entra_users)):
        frame = inventories[kind].frame
        assert set(frame.index) == set(truth), kind
        for oid, o in truth.items():
            assert bool(frame.at[oid, "OnPremisesSyncEnabled"]) == bool(o.sync_enabled)
            assert frame.at[oid, "IsCloudManaged"] == (bool(o.cloud_managed) if o.sync_enabled else None)
    users = inventories["user"].frame
    assert (users["UserPrincipalName"] != "").all()


@pytest.mark.parametrize("kind", ["group", "contact", "user"])
def test_findings_equal_planted_for_every_code(sb: Sandbox, inventories: dict[str, Any], kind: str,
                                               tmp_path: Path) -> None:
    frame = inventories[kind].frame
    onprem = ad_when_changed(sb, kind, frame, tmp_path)
    found = detect_objects(kind, frame, now=sb.tenant.now(), onprem_when_changed=onprem)
    truth = planted_objects(sb.tenant)[kind]
    got = planted_shape(kind, found)
    assert set(truth) == set(codes_for(kind))
    for code in codes_for(kind):
        assert got[code] == truth[code], code
    if kind == "group":  # the tenant plants every group code
        assert all(truth[c] for c in codes_for("group") if c != "OBJECT_RECENT_ONPREM_EDIT")


def test_without_onprem_data_recent_edits_are_not_guessed(inventories: dict[str, Any]) -> None:
    found = detect_objects("group", inventories["group"].frame)
    assert "OBJECT_RECENT_ONPREM_EDIT" not in set(found["code"])


def test_nesting_waves_put_children_first_and_leave_cycles_out() -> None:
    children = {"a": ("b", "c"), "b": ("c",), "c": (), "x": ("y",), "y": ("x",), "z": ("x",)}
    waves = nesting_waves(children, children)
    assert waves["c"] == 0 and waves["b"] == 1 and waves["a"] == 2
    assert "x" not in waves and "y" not in waves  # a cycle: no order exists, and no hang
    assert waves["z"] == 0


def test_object_snapshot_round_trips(inventories: dict[str, Any], tmp_path: Path) -> None:
    for kind, inv in inventories.items():
        save_object_snapshot(inv, root=tmp_path)
        back = load_object_snapshot(inv.tenant, kind, root=tmp_path)
        assert back is not None and back.from_snapshot and back.kind == kind
        pd.testing.assert_frame_equal(back.frame, inv.frame, check_dtype=False)


def test_inventory_reads_in_batches_of_twenty(sb: Sandbox) -> None:
    with graph_for(sb) as graph:
        inv = fetch_objects(graph, "group")
        stats = graph.snapshot()
    groups = len(inv.frame)
    synced = int(inv.frame["OnPremisesSyncEnabled"].sum())
    assert stats["sub_requests"] >= 2 * groups + synced
    assert stats["batches"] * 20 >= stats["sub_requests"]
    assert stats["batches"] < stats["sub_requests"]
