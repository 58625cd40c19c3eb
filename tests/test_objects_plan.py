"""Plan files of object kinds, and the Graph bridge's endpoints, batching and throttling."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from exocm.core.access.config import Profile
from exocm.core.access.graph_host import graph_endpoint
from exocm.core.bridge.graph import GraphCall
from exocm.core.detect.objects import detect_objects
from exocm.core.execute.apply import apply_plan, check_plan
from exocm.core.execute.objects_io import ObjectIO
from exocm.core.inventory.objects import fetch_objects
from exocm.core.plan.objects import build_object_plan
from exocm.core.plan.planfile import Observed, Plan, PlanRow, canonical_json, load_plan, save_plan, sha256_hex
from objects_support import graph_for, sync_behavior_writes


def test_a_plan_says_its_kind_and_an_old_plan_reads_as_mailbox(tmp_path: Path) -> None:
    plan = Plan(tenant="t", bridge="graph", value=True, object_kind="group",
                rows=[PlanRow("a", "", "", "set", "", Observed(False, None, "x", True), wave=1)]).finalise()
    path = save_plan(plan, tmp_path / "g.json")
    data = json.loads(path.read_text())
    assert data["object_kind"] == "group" and data["rows"][0]["wave"] == 1
    assert data["rows"][0]["observed"]["isCloudManaged"] is False
    back = load_plan(path)
    assert back.object_kind == "group" and back.is_graph and back.rows[0].wave == 1
    assert back.rows[0].observed.graph

    old = Plan(tenant="t", bridge="rest", value=True,
               rows=[PlanRow("b", "", "", "set", "", Observed(False, None, "y"))]).finalise().to_json()
    del old["object_kind"]  # a plan file written before object kinds
    body = {k: v for k, v in old.items() if k != "digest"}
    old["digest"] = sha256_hex(canonical_json(body))
    (tmp_path / "old.json").write_text(json.dumps(old))
    legacy = load_plan(tmp_path / "old.json")
    assert legacy.object_kind == "mailbox" and not legacy.is_graph
    check_plan(legacy, "t", max_age=None)  # its digest still verifies
    assert "object_kind" not in legacy.to_json()


@pytest.mark.parametrize(("cloud", "host"), [("commercial", "graph.microsoft.com"), ("gcc", "graph.microsoft.com"),
                                             ("gcchigh", "graph.microsoft.us"), ("dod", "dod-graph.microsoft.us"),
                                             ("china", "microsoftgraph.chinacloudapi.cn")])
def test_graph_host_per_cloud(cloud: str, host: str) -> None:
    profile = Profile(name="p", tenant="contoso.onmicrosoft.com", client_id="c", cloud=cloud)
    assert graph_endpoint(profile) == (f"https://{host}", f"https://{host}/.default")


def test_batches_hold_at_most_twenty_and_advanced_queries_count(make_sandbox: Any) -> None:
    sb = make_sandbox(size=60, seed=5)
    ids = sorted(sb.tenant.entra_groups)
    with graph_for(sb) as graph:
        calls = [GraphCall("GET", f"/groups/{g}?$select=id") for g in ids] * 2
        results = graph.batch(calls, what="read groups")
        assert [r.body["id"] for r in results] == ids * 2
        stats = graph.snapshot()
        assert stats["batches"] == -(-len(calls) // 20) and stats["sub_requests"] == len(calls)
        synced = graph.list_all("/groups", what="synced groups", filter="onPremisesSyncEnabled eq true",
                                select=("id",), advanced=True, top=5)
    assert {g["id"] for g in synced} == {g.id for g in sb.tenant.entra_groups.values() if g.sync_enabled}


def test_a_small_write_budget_throttles_and_every_row_is_written_once(
        make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "writes.jsonl"
    monkeypatch.setenv("EXOCM_SANDBOX_WRITE_LOG", str(log))
    sb = make_sandbox(size=200, seed=12, write_budget=8)
    with graph_for(sb) as graph:
        frame = fetch_objects(graph, "user").frame
        ready = [str(i) for i in frame.index if frame.at[i, "OnPremisesSyncEnabled"]
                 and frame.at[i, "IsCloudManaged"] is False][:60]
        plan = build_object_plan("user", frame, ready, True, tenant=sb.tenant.tenant_id,
                                 findings=detect_objects("user", frame.iloc[0:0]))
        result = apply_plan(graph, plan, io=ObjectIO(graph, "user"), data_dir=tmp_path / "data")
        stats = graph.snapshot()
    assert result.complete and result.counts["verified"] == len(ready)
    assert stats["write_429"] > 0  # the tenant's write budget said no, with Retry-After
    writes = sync_behavior_writes(log)
    assert set(writes) == set(ready) and max(writes.values()) == 1
