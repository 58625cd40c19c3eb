"""Many tenants: one sandbox port serving several tenants, profiles NAME-1..N, tenant sets in one
process (--profiles / --all-profiles), and findings history (--since)."""
from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import exocm, private_env, run
from exocm.core.access.config import load_config, store_sandbox_secret
from exocm.sandbox.server import Sandbox

TENANTS = 5
SIZE = 60


@pytest.fixture
def tenants(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    private_env(monkeypatch, tmp_path)
    sbs = Sandbox.start(tenants=TENANTS, size=SIZE, seed=300)
    try:
        info_file = tmp_path / "sandbox.json"
        info_file.write_text(json.dumps(sbs.info) + "\n", encoding="utf-8")
        added = exocm("profiles", "add", "msp", "--from-sandbox", str(info_file))
        assert added.exit_code == 0, added.output
        yield sbs
    finally:
        sbs.stop()


def _token(member: dict[str, Any], scope_key: str = "scope") -> str:
    with httpx.Client(verify=ssl.create_default_context(cafile=member["ca_file"])) as client:
        answer = client.post(f"{member['authority']}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": member["client_id"],
            "client_secret": member["client_secret"], "scope": member[scope_key]})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_one_port_serves_isolated_tenants(tenants: Any) -> None:
    members = tenants.info["tenants"]
    assert len(members) == TENANTS
    assert len({m["tenant"] for m in members}) == TENANTS
    assert len({m["client_secret"] for m in members}) == TENANTS
    assert len({m["rest_base_url"] for m in members}) == 1  # one port
    first, second = members[0], members[1]
    token = _token(first)
    body = {"CmdletInput": {"CmdletName": "Get-OrganizationConfig", "Parameters": {}}}
    with httpx.Client(verify=ssl.create_default_context(cafile=first["ca_file"])) as client:
        own = client.post(f"{first['rest_base_url']}/adminapi/beta/{first['tenant']}/InvokeCommand", json=body,
                          headers={"Authorization": f"Bearer {token}"})
        other = client.post(f"{first['rest_base_url']}/adminapi/beta/{second['tenant']}/InvokeCommand", json=body,
                            headers={"Authorization": f"Bearer {token}"})
    assert own.status_code == 200
    assert own.json()["value"][0]["Name"] == first["tenant_domain"]
    assert other.status_code == 401  # a token of one tenant opens no other
    # knobs are per tenant: a fault on tenant 2 leaves tenant 1 alone
    tenants.members[1].knobs.faults = {"503": 1.0}
    with httpx.Client(verify=ssl.create_default_context(cafile=first["ca_file"])) as client:
        again = client.post(f"{first['rest_base_url']}/adminapi/beta/{first['tenant']}/InvokeCommand", json=body,
                            headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 200
    names = sorted(load_config().profiles)
    assert names == [f"msp-{k}" for k in range(1, TENANTS + 1)]


def test_tenant_set_findings_one_wrong_secret(tenants: Any) -> None:
    store_sandbox_secret("msp-3", "not-the-secret")
    code, out, err = run("findings", "--all-profiles", "--format", "json")
    doc = json.loads(out)
    assert sorted(doc["tenants"]) == [f"msp-{k}" for k in range(1, TENANTS + 1)]
    bad = doc["tenants"]["msp-3"]
    assert "authentication failed" in bad["error"] and "AADSTS7000215" in bad["error"]
    for k in (1, 2, 4, 5):
        good = doc["tenants"][f"msp-{k}"]
        assert "error" not in good
        assert good["meta"]["tenant"] == tenants.info["tenants"][k - 1]["tenant"]
        planted = tenants.members[k - 1].tenant.planted()
        assert good["summary"]["by_code"]["DUAL_MAILBOX"]["count"] == len(planted["DUAL_MAILBOX"]) > 0
    assert code == 4  # the worst tenant's: authentication failed
    code, out, err = run("findings", "--profiles", "msp-1,msp-3")
    assert code == 4
    assert "1 of 2 tenants completed; failed: msp-3" in out
    assert "msp-3" in err and "auth" in err


def test_since_last_shows_exactly_the_out_of_band_changes(tenants: Any) -> None:
    member = tenants.members[0]
    code, out, err = run("findings", "--profile", "msp-1", "--onprem-live", "--refresh", "--format", "json")
    assert code in (0, 1), err
    t = member.tenant
    with t.lock:
        flip = next(r for r in t.exo.values() if r.rtd == "UserMailbox" and t.ad_for(r) is not None
                    and t.ad_for(r).rtd == "RemoteUserMailbox" and not r.cloud_managed)
        flip_id = flip.edoid
        dual = next(r for r in t.exo.values() if r.rtd == "UserMailbox" and r is not flip
                    and t.ad_for(r) is not None and t.ad_for(r).rtd == "RemoteUserMailbox" and not r.cloud_managed)
        ad = t.ad_for(dual)
        assert ad is not None
        with t.editing_ad(ad):  # the mailbox comes back on-prem with its own GUID: a second mailbox
            ad.rtd = "UserMailbox"
            ad.exchange_guid = t.new_guid()
            ad.remote_routing = None
    t.invoke("Set-Mailbox", {"Identity": flip_id, "IsExchangeCloudManaged": True}, side="exo")
    code, out, err = run("findings", "--profile", "msp-1", "--onprem-live", "--refresh", "--since", "last",
                         "--format", "json")
    drift = json.loads(out)
    assert drift["cloud_managed_changed"] == [{"ExternalDirectoryObjectId": flip_id, "before": False, "now": True,
                                               "by_exocm": False}]  # flipped outside exocm
    new = {(f["code"], f["ExternalDirectoryObjectId"]) for f in drift["new"]}
    assert ("DUAL_MAILBOX", dual.edoid) in new
    assert all(f[1] in (dual.edoid, flip_id) for f in new), new
    assert drift["tenant_default"] is None
    assert code == 1  # a new critical finding
    code, out, err = run("findings", "--profile", "msp-1", "--onprem-live", "--refresh", "--since", "last")
    assert code == 0, out  # nothing new since the run just before
    assert "0 new, 0 resolved, 0 changed findings; 0 IsExchangeCloudManaged changes" in out
    code, out, err = run("findings", "--profile", "msp-1", "--onprem-live", "--refresh", "--since", drift["since"]["run_id"],
                         "--format", "html", "--no-history")
    assert code == 1 and "<h1>What changed</h1>" in out and "DUAL_MAILBOX" in out


def test_tenant_set_plan_show_apply_report(tenants: Any, tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    names = "msp-1,msp-2"
    assert run("findings", "--profiles", names)[0] in (0, 1)  # the run --since compares with after the apply
    code, out, err = run("plan", "--profiles", names, "--set-cloud-managed", "true", "--all-dirsynced",
                         "--max", "5", "-o", str(plans))
    assert code == 1, out + err  # plans with changes
    assert sorted(p.name for p in plans.iterdir()) == ["msp-1.json", "msp-2.json"]
    code, out, err = run("show", str(plans), "--profiles", names, "--format", "json")
    doc = json.loads(out)
    assert code == 1
    assert {n: d["tenant"] for n, d in doc["tenants"].items()} == {
        "msp-1": tenants.info["tenants"][0]["tenant"], "msp-2": tenants.info["tenants"][1]["tenant"]}
    assert run("apply", str(plans), "--profiles", names)[0] == 2  # a tenant set needs --yes
    code, out, err = run("apply", str(plans), "--profiles", names, "--yes")
    assert code == 0, out + err
    assert "2 of 2 tenants completed" in out
    code, out, err = run("findings", "--profiles", names, "--since", "last", "--format", "json")
    for name in ("msp-1", "msp-2"):
        flips = json.loads(out)["tenants"][name]["drift"]["cloud_managed_changed"]
        assert len(flips) == 5 and all(f["by_exocm"] and f["now"] is True for f in flips), flips
    code, out, err = run("report", str(plans), "--profiles", names, "--format", "json")
    doc = json.loads(out)
    assert code == 0, out
    for name in ("msp-1", "msp-2"):
        assert doc["tenants"][name]["remaining"] == 0
        assert doc["tenants"][name]["counts"]["verified"] == 5
    code, out, err = run("inventory", "--profiles", names, "--format", "json")
    assert code == 0
    assert json.loads(out)["tenants"]["msp-2"]["recipients"] > 0
    undo = tmp_path / "undo"
    code, out, err = run("undo", str(plans), "--profiles", names, "-o", str(undo))
    assert code == 1, out + err  # undo plans with changes
    for name in ("msp-1", "msp-2"):
        assert len(json.loads((undo / f"{name}.json").read_text(encoding="utf-8"))["rows"]) == 5
    code, out, err = run("apply", str(undo), "--profiles", names, "--yes")
    assert code == 0, out + err


def test_msp_app_profiles_share_one_app_registration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """One multi-tenant app (client id + certificate), a profile per customer tenant (authority per tenant)."""
    from exocm.core.access.config import save_app

    private_env(monkeypatch, tmp_path)
    sbs = Sandbox.start(tenants=3, size=30, seed=500, shared_app=True, winrm=False)
    try:
        members = sbs.info["tenants"]
        assert len({m["client_id"] for m in members}) == 1
        first = members[0]
        save_app("msp", {"client_id": first["client_id"], "cloud": "custom", "auth": "certificate",
                         "authority": f"{sbs.base_url}/{{tenant}}", "rest_base_url": first["rest_base_url"],
                         "scope": first["scope"], "ca_file": first["ca_file"],
                         "cert_pem_file": first["client_cert_pem_file"], "key_pem_file": first["client_key_pem_file"],
                         "cert_thumbprint": first["client_cert_thumbprint"]})
        args = [a for m in members for a in ("--tenant", m["tenant_domain"])]
        added = exocm("profiles", "add-tenants", "--app", "msp", *args)
        assert added.exit_code == 0, added.output
        profiles = load_config().profiles
        assert sorted(profiles) == ["msp-contoso500", "msp-contoso501", "msp-contoso502"]
        assert profiles["msp-contoso501"].resolved_authority() == f"{sbs.base_url}/contoso501.onmicrosoft.com"
        code, out, err = run("inventory", "--all-profiles", "--format", "json")
        assert code == 0, out + err
        doc = json.loads(out)["tenants"]
        assert {doc[f"msp-contoso{500 + k}"]["tenant"] for k in range(3)} == {m["tenant_domain"] for m in members}
        assert all(doc[n]["recipients"] > 0 for n in doc)
    finally:
        sbs.stop()


def test_since_last_across_a_tenant_set(tenants: Any) -> None:
    names = "msp-1,msp-2"
    code, out, err = run("findings", "--profiles", names)
    assert code in (0, 1), out + err
    t = tenants.members[1].tenant
    with t.lock:
        flip = next(r for r in t.exo.values() if r.rtd == "UserMailbox" and not r.cloud_managed
                    and t.ad_for(r) is not None)
    t.invoke("Set-Mailbox", {"Identity": flip.edoid, "IsExchangeCloudManaged": True}, side="exo")
    code, out, err = run("findings", "--profiles", names, "--since", "last")
    assert code == 0, out + err  # a flip is drift, not a new finding at or above high
    assert f"FLIPPED IsExchangeCloudManaged False -> True {flip.edoid} (outside exocm)" in out
    assert out.count("FLIPPED") == 1  # msp-1 did not change
    code, out, err = run("findings", "--profiles", names, "--since", "last", "--format", "json")
    doc = json.loads(out)["tenants"]
    assert doc["msp-1"]["drift"]["cloud_managed_changed"] == [] and doc["msp-2"]["drift"]["cloud_managed_changed"] == []


def test_readiness_across_a_tenant_set(tenants: Any) -> None:
    store_sandbox_secret("msp-2", "not-the-secret")
    code, out, err = run("readiness", "--profiles", "msp-1,msp-2", "--format", "json")
    doc = json.loads(out)["tenants"]
    assert "authentication failed" in doc["msp-2"]["error"]
    good = doc["msp-1"]
    assert good["meta"]["tenant"] == tenants.info["tenants"][0]["tenant"] and good["checks"]
    assert good["meta"]["onprem_source"].startswith("live over WinRM")
    assert good["summary"]["scope"] == "flip"
    assert code == 4


def test_tenant_set_findings_as_one_csv_and_one_html_page(tenants: Any, tmp_path: Path) -> None:
    import csv
    import io

    store_sandbox_secret("msp-2", "not-the-secret")
    code_json, out_json, _ = run("findings", "--profiles", "msp-1,msp-2,msp-3", "--format", "json",
                                 "--no-history")
    expected = {name: len(doc.get("findings", [])) for name, doc in json.loads(out_json)["tenants"].items()}
    assert expected["msp-1"] > 0 and expected["msp-3"] > 0 and expected["msp-2"] == 0

    report = tmp_path / "msp.csv"
    code, _, err = run("findings", "--profiles", "msp-1,msp-2,msp-3", "--format", "csv", "-o", str(report),
                       "--no-history")
    assert code == code_json == 4  # the worst tenant: msp-2 could not sign in
    assert "msp-2: auth" in err
    rows = list(csv.DictReader(io.StringIO(report.read_text(encoding="utf-8-sig"))))
    assert list(rows[0])[:3] == ["profile", "tenant", "code"]
    by_profile = {name: sum(1 for r in rows if r["profile"] == name) for name in expected}
    assert by_profile == expected
    members = {f"msp-{k}": m["tenant"] for k, m in enumerate(tenants.info["tenants"], start=1)}
    assert {r["tenant"] for r in rows if r["profile"] == "msp-1"} == {members["msp-1"]}

    page = tmp_path / "msp.html"
    code, _, _ = run("findings", "--profiles", "msp-1,msp-2,msp-3", "--format", "html", "-o", str(page),
                     "--no-history")
    assert code == 4
    html = page.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and "SANDBOX" in html
    assert "authentication failed" in html  # msp-2's row says why
    for name in ("msp-1", "msp-3"):
        assert f">{name} <small>{members[name]}</small></h2>" in html
    assert html.count("<tr><td data-key=") == expected["msp-1"] + expected["msp-3"]  # one row per finding

    code, _, err = run("findings", "--profiles", "msp-1", "--format", "csv", "--since", "last")
    assert code == 2 and "--since" in err


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_a_tenant_set_apply_over_worker_processes_settles_and_resumes(
        tenants: Any, tmp_path: Path, presses: int) -> None:
    """Ctrl-C from a terminal reaches the command and its worker processes: each settles its writes
    (a second Ctrl-C while they settle does not cut that short), the command exits 130 leaving no
    process behind, and running it again finishes every plan."""
    import os
    import signal
    import subprocess
    import sys
    import time

    names = "msp-1,msp-2,msp-3,msp-4"
    plans = tmp_path / "plans"
    code, out, err = run("plan", "--profiles", names, "--set-cloud-managed", "true", "--all-dirsynced",
                         "-o", str(plans))
    assert code == 1, out + err
    planned = {name: sum(1 for row in json.loads((plans / f"{name}.json").read_text(encoding="utf-8"))["rows"]
                         if row["action"] == "set") for name in names.split(",")}
    assert all(planned.values())
    for member in tenants.members:
        member.knobs.latency_ms = 500  # every tenant is still applying when Ctrl-C comes
    command = [sys.executable, "-c", "from exocm.cli.main import main; main()", "apply", str(plans),
               "--profiles", names, "--yes", "--tenant-processes", "2", "--parallel-tenants", "4"]
    proc = subprocess.Popen(command, env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    journals = tmp_path / "data" / "journals"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            p.stat().st_size > 0 for p in journals.rglob("*") if p.is_file()):
        time.sleep(0.05)
    time.sleep(0.5)
    for press in range(presses):
        time.sleep(0.2 * press)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no worker process left behind
    for member in tenants.members:
        member.knobs.latency_ms = 0
    code, out, err = run("report", str(plans), "--profiles", names, "--format", "json")
    left = {name: doc["remaining"] for name, doc in json.loads(out)["tenants"].items()}
    assert sum(left.values()) > 0, left  # the interrupt came mid-apply
    code, out, err = run("apply", str(plans), "--profiles", names, "--yes")
    assert code == 0, out + err
    code, out, err = run("report", str(plans), "--profiles", names, "--format", "json")
    doc = json.loads(out)
    for name, rows in planned.items():
        assert doc["tenants"][name]["remaining"] == 0
        assert doc["tenants"][name]["counts"]["verified"] == rows


def test_readiness_of_a_tenant_set_as_one_csv_and_one_html_page(tenants: Any, tmp_path: Path) -> None:
    import csv
    import io

    store_sandbox_secret("msp-2", "not-the-secret")
    names = "msp-1,msp-2,msp-3"
    code_json, out_json, _ = run("readiness", "--profiles", names, "--format", "json")
    docs = json.loads(out_json)["tenants"]
    expected = {name: len(doc.get("checks", [])) for name, doc in docs.items()}
    assert expected["msp-1"] > 0 and expected["msp-3"] > 0 and expected["msp-2"] == 0

    report = tmp_path / "ready.csv"
    code, _, err = run("readiness", "--profiles", names, "--format", "csv", "-o", str(report))
    assert code == code_json == 4 and "msp-2: auth" in err
    rows = list(csv.DictReader(io.StringIO(report.read_text(encoding="utf-8-sig"))))
    assert list(rows[0])[:4] == ["profile", "tenant", "verdict", "code"]
    assert {name: sum(1 for r in rows if r["profile"] == name) for name in expected} == expected
    assert {r["verdict"] for r in rows if r["profile"] == "msp-1"} == {docs["msp-1"]["summary"]["verdict"]}

    page = tmp_path / "ready.html"
    code, _, _ = run("readiness", "--profiles", names, "--format", "html", "-o", str(page))
    assert code == 4
    html = page.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and "authentication failed" in html
    assert html.count("<tr data-code=") == expected["msp-1"] + expected["msp-3"]  # one row per check
    verdict = docs["msp-3"]["summary"]["verdict"].upper()
    assert f'<a href="#t2">msp-3</a></td><td>{tenants.info["tenants"][2]["tenant"]}</td>' in html
    assert f">{verdict}</span>" in html
