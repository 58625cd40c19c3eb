"""The live on-prem options on the command line: `--onprem-live` / `--onprem-host`, credentials
from the environment, one clear line when they are wrong, and profiles that remember the endpoint."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import add_sandbox_profile, private_env, run
from exocm.core.access.config import get_profile
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.server import Sandbox

SIZE, SEED = 300, 21
SANDBOX = ["--sandbox", "--size", str(SIZE), "--seed", str(SEED)]


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_env(monkeypatch, tmp_path, "EXOCM_ONPREM_PASSWORD")


def _ids(doc: dict[str, object], code: str) -> set[str]:
    findings = doc["findings"]
    assert isinstance(findings, list)
    return {f["ExternalDirectoryObjectId"] for f in findings if f["code"] == code}


def test_findings_with_onprem_live_read_the_sandbox_over_winrm_and_find_the_dual_mailbox() -> None:
    tenant = generate_tenant(SIZE, SEED)
    planted = tenant.planted()
    code, out, err = run("findings", *SANDBOX, "--onprem-live", "--format", "json")
    assert code == 1, err
    doc = json.loads(out)
    assert _ids(doc, "DUAL_MAILBOX") == set(planted["DUAL_MAILBOX"]) != set()
    assert _ids(doc, "EXCHANGEGUID_MISMATCH") == set(planted["EXCHANGEGUID_MISMATCH"])
    rows = len(tenant.onprem_records())
    assert doc["summary"]["onprem_rows"] == rows == doc["summary"]["onprem_matched"]


def test_wrong_onprem_password_is_one_line_and_exit_code_4(make_sandbox: Callable[..., Sandbox]) -> None:
    onprem = make_sandbox(size=40, seed=2).info
    code, out, err = run("findings", *SANDBOX, "--onprem-host", onprem["winrm_onprem_url"],
                          "--onprem-user", onprem["winrm_username"], "--onprem-ca", onprem["ca_file"],
                          env={"EXOCM_ONPREM_PASSWORD": "not-the-password"})
    assert code == 4
    lines = [line for line in err.splitlines() if line.startswith("exocm: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "rejected the credentials" in lines[0] and "not-the-password" not in err


def test_missing_onprem_password_says_which_variable_to_set(make_sandbox: Callable[..., Sandbox]) -> None:
    onprem = make_sandbox(size=40, seed=2).info
    code, _, err = run("findings", *SANDBOX, "--onprem-host", onprem["winrm_onprem_url"],
                        "--onprem-user", onprem["winrm_username"], "--onprem-ca", onprem["ca_file"])
    assert code == 2 and "EXOCM_ONPREM_PASSWORD" in err and "Traceback" not in err


def test_profile_from_sandbox_remembers_the_winrm_endpoint_but_not_the_password(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sb = make_sandbox(size=120, seed=4)
    add_sandbox_profile(sb.info, "lab", tmp_path)
    prof = get_profile("lab")
    assert prof.extra["winrm_onprem_url"] == sb.info["winrm_onprem_url"]
    assert prof.extra["winrm_username"] == sb.info["winrm_username"]
    config_text = (tmp_path / "config" / "config.toml").read_text(encoding="utf-8")
    assert sb.info["winrm_password"] not in config_text
    planted = sb.tenant.planted()
    code, out, err = run("findings", "--profile", "lab", "--onprem-live", "--format", "json", "--refresh")
    assert code == 1, err
    assert _ids(json.loads(out), "DUAL_MAILBOX") == set(planted["DUAL_MAILBOX"])


def test_onprem_live_and_onprem_csv_exclude_each_other(tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("UserPrincipalName,RecipientTypeDetails\n", encoding="utf-8")
    code, _, err = run("findings", *SANDBOX, "--onprem-live", "--onprem-csv", str(csv))
    assert code == 2 and "exclude each other" in err


def test_inventory_with_onprem_live_adds_the_joined_onprem_columns() -> None:
    tenant = generate_tenant(SIZE, SEED)
    planted = tenant.planted()
    code, out, err = run("inventory", *SANDBOX, "--onprem-live", "--format", "json")
    assert code == 0, err
    records = {r["ExternalDirectoryObjectId"]: r for r in json.loads(out)["records"]}
    assert sum(1 for r in records.values() if r["OnPremJoin"]) == len(tenant.onprem_records())
    for edoid in planted["DUAL_MAILBOX"]:
        local = {"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox"}
        assert records[edoid]["OnPremRecipientTypeDetails"] in local  # the dual: a mailbox on both sides
        assert records[edoid]["RecipientTypeDetails"] in local
    code, out, _ = run("inventory", *SANDBOX, "--onprem-live", "--format", "csv")
    assert code == 0 and "OnPremRecipientTypeDetails" in out.splitlines()[0]


def _add_profile(info: dict[str, object], name: str, directory: Path, *options: str) -> None:
    info_file = directory / f"{name}.json"
    info_file.write_text(json.dumps(info) + "\n", encoding="utf-8")
    code, out, err = run("profiles", "add", name, "--from-sandbox", str(info_file), "--no-default", *options)
    assert code == 0, out + err


def test_a_profile_with_exo_transport_psrp_reaches_exo_through_the_management_host_like_rest(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sb = make_sandbox(size=150, seed=8)
    _add_profile(sb.info, "viarest", tmp_path)
    _add_profile(sb.info, "viahost", tmp_path, "--exo-transport", "psrp")
    assert get_profile("viahost").extra["exo_transport"] == "psrp"
    assert "exo_transport" not in get_profile("viarest").extra

    listed = {}
    for name in ("viarest", "viahost"):
        code, out, err = run("inventory", "--profile", name, "--refresh", "--format", "json")
        assert code == 0, err
        assert "Traceback" not in err
        listed[name] = sorted(json.loads(out)["records"], key=lambda r: r["ExternalDirectoryObjectId"])
    assert listed["viahost"] == listed["viarest"] and listed["viahost"]
    assert "(WinRM host)" in err  # the banner names the way it went

    # a write goes through the host too: plan, apply, and the journal says which bridge did it
    plan = tmp_path / "plan.json"
    code, _, err = run("plan", "--profile", "viahost", "--set-cloud-managed", "true", "--all-dirsynced",
                       "--max", "3", "-o", str(plan))
    assert code in (0, 1), err
    code, _, err = run("apply", str(plan), "--profile", "viahost", "--yes")
    assert code == 0, err
    journal = next((tmp_path / "data" / "journals").glob("*.jsonl"))
    records = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert records[0]["bridge"] == "psrp"
    verified = [r["identity"] for r in records if r.get("type") == "row" and r.get("status") == "verified"]
    assert len(verified) == 3
    for identity in verified:
        assert sb.tenant.invoke("Get-Mailbox", {"Identity": identity})[0]["IsExchangeCloudManaged"] is True


def test_a_wrong_management_host_password_or_transport_is_one_line(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sb = make_sandbox(size=40, seed=3)
    _add_profile(sb.info, "viahost", tmp_path, "--exo-transport", "psrp")
    code, _, err = run("inventory", "--profile", "viahost", "--refresh",
                       env={"EXOCM_EXO_HOST_PASSWORD": "not-the-password"})
    lines = [line for line in err.splitlines() if line.startswith("exocm: error:")]
    assert code == 4 and len(lines) == 1 and "Traceback" not in err
    assert "rejected the credentials" in lines[0] and "not-the-password" not in err

    config = tmp_path / "config" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('exo_transport = "psrp"',
                                                                 'exo_transport = "carrier-pigeon"'),
                      encoding="utf-8")
    code, _, err = run("inventory", "--profile", "viahost")
    assert code == 2 and "exo_transport must be one of rest, psrp" in err and "Traceback" not in err


def test_an_unreachable_or_malformed_onprem_host_is_one_line_that_blames_the_host_not_the_sandbox(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sb = make_sandbox(size=40, seed=6)
    _add_profile(sb.info, "lab", tmp_path)
    code, _, err = run("inventory", "--profile", "lab")  # a snapshot: the next command need not call EXO
    assert code == 0, err
    env = {"EXOCM_ONPREM_PASSWORD": "x"}
    code, _, err = run("findings", "--profile", "lab", "--onprem-host", "https://127.0.0.1:1/PowerShell",
                       "--onprem-user", "u", env=env)
    lines = [line for line in err.splitlines() if line.startswith("exocm: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "https://127.0.0.1:1/PowerShell" in lines[0] and "not running any more" not in lines[0]
    for host in ("https://[::1", "https://ex01:99999/PowerShell", "ex01:abc", "ftp://ex01/PowerShell"):
        code, _, err = run("findings", "--profile", "lab", "--onprem-host", host, "--onprem-user", "u", env=env)
        lines = [line for line in err.splitlines() if line.startswith("exocm: error:")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (host, err)
        assert "WinRM endpoint" in lines[0], (host, lines[0])


@pytest.mark.skipif(__import__("exocm.core.bridge.psrp", fromlist=["x"]).kerberos_available(),
                    reason="Kerberos extras installed here")
def test_kerberos_without_its_extras_is_one_line_that_says_what_to_install(
        make_sandbox: Callable[..., Sandbox]) -> None:
    onprem = make_sandbox(size=40, seed=2).info
    code, _, err = run("findings", *SANDBOX, "--onprem-host", onprem["winrm_onprem_url"], "--onprem-auth", "kerberos",
                       "--onprem-user", "CONTOSO\\someone", "--onprem-ca", onprem["ca_file"],
                       env={"EXOCM_ONPREM_PASSWORD": "pw"})
    lines = [line for line in err.splitlines() if line.startswith("exocm: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "pypsrp[kerberos]" in lines[0] and "negotiate" in lines[0]


def test_a_client_certificate_that_is_not_a_pem_pair_is_one_line_naming_the_certificate(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    onprem = make_sandbox(size=40, seed=2).info
    junk = tmp_path / "not-a-cert.pem"
    junk.write_text("hello\n", encoding="utf-8")
    code, _, err = run("findings", *SANDBOX, "--onprem-host", onprem["winrm_onprem_url"], "--onprem-auth",
                       "certificate", "--onprem-cert", str(junk), "--onprem-key", str(junk),
                       "--onprem-ca", onprem["ca_file"])
    lines = [line for line in err.splitlines() if line.startswith("exocm: error:")]
    assert code == 4 and len(lines) == 1 and "Traceback" not in err
    assert "client certificate" in lines[0]
