"""Plan files: observed state per row, skip reasons, digest, and one clear error for a bad file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from exocm.cli.main import cli
from exocm.core.detect.engine import detect
from exocm.core.detect.readiness import flip_readiness
from exocm.core.inventory.fetch import fetch_inventory
from exocm.core.inventory.onprem import onprem_frame_from_records
from exocm.core.plan.planfile import (
    ALREADY,
    BLOCKED,
    NOT_DIRSYNCED,
    SCHEMA_VERSION,
    UNSUPPORTED_TYPE,
    Observed,
    PlanDigestError,
    PlanError,
    PlanFormatError,
    PlanSchemaError,
    build_plan,
    fingerprint,
    load_plan,
    save_plan,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_support import connect, mailbox


@pytest.fixture(scope="module")
def inventory(sandbox: Any) -> Any:
    bridge = connect(sandbox)
    try:
        return fetch_inventory(bridge)
    finally:
        bridge.close()


def test_plan_rows_carry_the_observed_state_and_the_reasons_to_skip(sandbox: Any, inventory: Any) -> None:
    frame = inventory.frame
    onprem = onprem_frame_from_records(sandbox.tenant.onprem_records()).frame
    findings = detect(frame, onprem).findings
    readiness = flip_readiness(frame, findings, True)
    plan = build_plan(frame, list(frame.index), True, tenant=str(sandbox.info["tenant"]), bridge="rest",
                      readiness=readiness)
    reasons = {r.reason for r in plan.rows}
    assert {"", ALREADY, NOT_DIRSYNCED, UNSUPPORTED_TYPE} <= reasons
    planted = sandbox.tenant.planted()
    blocked = {r.identity for r in plan.rows if r.reason == BLOCKED}
    assert blocked and all("_" in r.detail for r in plan.rows if r.reason == BLOCKED)  # finding codes
    assert not blocked & set(planted.get("ALREADY_CLOUD_MANAGED", []))
    row = plan.set_rows()[0]
    truth = mailbox(sandbox, row.identity)
    assert row.observed == Observed.from_record(truth)  # the inventory and a fresh read agree
    assert row.observed.fingerprint == fingerprint(truth)
    assert row.observed.is_cloud_managed is False and row.upn == truth["UserPrincipalName"]


def test_a_saved_plan_loads_back_and_is_named_by_its_digest(sandbox: Any, inventory: Any, tmp_path: Path) -> None:
    frame = inventory.frame
    plan = build_plan(frame, list(frame.index[:50]), True, tenant="contoso", bridge="rest")
    path = save_plan(plan, tmp_path / "p.json")
    loaded = load_plan(path)
    assert loaded.digest == plan.digest == loaded.compute_digest()
    assert loaded.rows == plan.rows and loaded.schema_version == SCHEMA_VERSION
    data = json.loads(path.read_text(encoding="utf-8"))
    assert {"schema_version", "tenant", "bridge", "created_at", "tool_version", "operation", "value",
            "rows", "digest"} <= set(data)
    assert set(data["rows"][0]) >= {"identity", "display_name", "upn", "action", "reason", "observed"}
    assert set(data["rows"][0]["observed"]) == {"IsExchangeCloudManaged", "WhenChanged", "fingerprint"}


def _saved(inventory: Any, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    frame = inventory.frame
    path = save_plan(build_plan(frame, list(frame.index[:10]), True, tenant="contoso", bridge="rest"),
                     tmp_path / "p.json")
    return path, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("edit", "error", "words"), [
    (lambda d: d["rows"][0].update(action={"set": "skip", "skip": "set"}[d["rows"][0]["action"]]),
     PlanDigestError, "does not match its digest"),
    (lambda d: d.update(tenant="fabrikam"), PlanDigestError, "does not match its digest"),
    (lambda d: d.update(schema_version=99), PlanSchemaError, "schema version 99"),
    (lambda d: d.pop("schema_version"), PlanSchemaError, "no schema_version"),
    (lambda d: d.pop("digest"), PlanDigestError, "does not match its digest"),
])
def test_edited_plans_are_refused_with_one_clear_line(inventory: Any, tmp_path: Path, edit: Any,
                                                      error: type[Exception], words: str) -> None:
    path, data = _saved(inventory, tmp_path)
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(error, match=words):
        load_plan(path)
    out = CliRunner().invoke(cli, ["show", str(path)])
    assert out.exit_code == 2 and words in out.output and "Traceback" not in out.output


def test_truncated_and_non_json_plans_are_refused(inventory: Any, tmp_path: Path) -> None:
    path, _ = _saved(inventory, tmp_path)
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2])
    with pytest.raises(PlanFormatError, match="truncated"):
        load_plan(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PlanFormatError, match="not UTF-8"):
        load_plan(path)
    with pytest.raises(PlanError, match="does not exist"):
        load_plan(tmp_path / "nope.json")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=4000), junk=st.binary(max_size=20))
def test_any_damage_to_a_plan_file_is_a_plan_error(inventory: Any, tmp_path: Path, cut: int, junk: bytes) -> None:
    path, _ = _saved(inventory, tmp_path)
    text = path.read_bytes()
    damaged = text[:cut] + junk + text[cut + len(junk):]
    if damaged == text:
        return
    path.write_bytes(damaged)
    try:
        load_plan(path)
    except PlanError:
        return
    # the only way through: the damage hit insignificant whitespace
    assert json.loads(damaged) == json.loads(text)


def test_show_prints_counts_and_exits_like_kubectl_diff(inventory: Any, tmp_path: Path) -> None:
    frame = inventory.frame
    already = list(frame.index[frame["IsExchangeCloudManaged"].fillna(False).to_numpy(dtype=bool)][:3])
    assert len(already) == 3
    nothing = save_plan(build_plan(frame, already, True, tenant="contoso", bridge="rest"), tmp_path / "a.json")
    out = CliRunner().invoke(cli, ["show", str(nothing)])
    assert out.exit_code == 0 and "already in the target state" in out.output
    some = save_plan(build_plan(frame, list(frame.index[:40]), True, tenant="contoso", bridge="rest"),
                     tmp_path / "b.json")
    out = CliRunner().invoke(cli, ["show", str(some), "--format", "json"])
    assert out.exit_code == 1
    data = json.loads(out.output)
    assert data["counts"]["set"] == len(load_plan(some).set_rows())
    out = CliRunner().invoke(cli, ["show", str(some), "--format", "csv"])
    assert out.exit_code == 1 and out.output.startswith("\ufeff\"Identity\"")


def test_plan_from_a_csv_reports_lines_that_match_nothing_and_show_lists_them(sandbox: Any, inventory: Any,
                                                                               tmp_path: Path) -> None:
    from plan_support import add_profile

    frame = inventory.frame
    upns = frame["UserPrincipalName"].dropna().head(2).tolist()
    csv = tmp_path / "targets.csv"
    csv.write_text("UserPrincipalName\r\n" + "\r\n".join([upns[0], "ghost@nowhere.example", upns[1]]) + "\r\n",
                   encoding="utf-8-sig")
    name = add_profile(sandbox)
    out_path = tmp_path / "plan.json"
    made = CliRunner().invoke(cli, ["plan", "--profile", name, "--set-cloud-managed", "true", "--csv", str(csv),
                                    "--no-detect", "-o", str(out_path)])
    assert made.exit_code == 0, made.output
    assert "line 3: 'ghost@nowhere.example' matches no mailbox" in " ".join(made.output.split())
    plan = load_plan(out_path)
    assert len(plan.rows) == 2 and plan.source["column"] == "UserPrincipalName"
    assert plan.input_report[0]["line"] == 3
    shown = CliRunner().invoke(cli, ["show", str(out_path)])
    assert "# input: targets.csv line 3" in shown.output
