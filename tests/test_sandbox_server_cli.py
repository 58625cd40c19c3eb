"""`exocm sandbox serve` as a separate process: the --print-json contract, curl as the client,
Ctrl-C / SIGTERM, and --state across restarts."""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from exocm.sandbox.server import Sandbox
from sandbox_clients import app_token, invoke, rest_client

CURL = shutil.which("curl")
CONTRACT_KEYS = {"tenant", "authority", "client_id", "client_secret", "scope", "rest_base_url", "ca_file"}


def _clean_env() -> dict[str, str]:
    """The environment minus CA-bundle variables (curl honours CURL_CA_BUNDLE)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}


@contextmanager
def _serve(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    cmd = [sys.executable, "-c", "from exocm.cli.main import main; main()", "sandbox", "serve", "--port", "0",
           "--print-json", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env())
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "sandbox did not print its JSON line in time"
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def _curl(*args: str, stdin: str | None = None) -> dict[str, Any]:
    assert CURL is not None
    out = subprocess.run([CURL, "--silent", "--show-error", "--fail-with-body", *args], input=stdin,
                         capture_output=True, text=True, env=_clean_env(), timeout=60, check=True)
    return dict(json.loads(out.stdout))


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_serve_answers_curl_get_mailbox_with_a_token_from_its_own_endpoint(tmp_path: Path) -> None:
    with _serve("--size", "1000", "--seed", "3") as (proc, info):
        assert CONTRACT_KEYS <= set(info) and info["sandbox"] is True
        ca = info["ca_file"]
        # The secret goes through stdin, never argv.
        form = urlencode({"grant_type": "client_credentials", "client_id": info["client_id"],
                          "client_secret": info["client_secret"], "scope": info["scope"]})
        token = _curl("--cacert", ca, "--data", "@-", f"{info['authority']}/oauth2/v2.0/token",
                      stdin=form)["access_token"]
        header_file = tmp_path / "auth-header"
        header_file.write_text(f"Authorization: Bearer {token}\n", encoding="ascii")
        header_file.chmod(0o600)
        body = json.dumps({"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"ResultSize": 5}}})
        data = _curl("--cacert", ca, "-H", f"@{header_file}", "-H", "Content-Type: application/json",
                     "-H", "Prefer: odata.maxpagesize=1000", "--data", "@-",
                     f"{info['rest_base_url']}/adminapi/beta/{info['tenant']}/InvokeCommand", stdin=body)
        assert len(data["value"]) == 5
        assert all(r["ExternalDirectoryObjectId"] and "RecipientTypeDetails" in r for r in data["value"])
        code, err = _stop(proc, signal.SIGINT)
    assert code == 0 and "SANDBOX stopped" in err


def test_serve_with_state_keeps_writes_ca_and_credentials_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "tenant.sqlite"
    with _serve("--size", "120", "--seed", "5", "--state", str(state)) as (proc, info):
        token = app_token(info)
        with rest_client(info) as c:
            rows = invoke(c, info, token, "Get-Mailbox", ResultSize="Unlimited",
                          Filter="IsDirSynced -eq $true -and IsExchangeCloudManaged -eq $false").json()["value"]
            edoid = rows[0]["ExternalDirectoryObjectId"]
            flip = invoke(c, info, token, "Set-Mailbox", Identity=edoid, IsExchangeCloudManaged=True)
            assert flip.status_code == 200, flip.text
        code, _ = _stop(proc, signal.SIGTERM)
    assert code == 0 and state.exists()
    with _serve("--size", "120", "--seed", "5", "--state", str(state)) as (proc, again):
        assert again["ca_file"] == info["ca_file"] and again["client_secret"] == info["client_secret"]
        assert again["tenant"] == info["tenant"]
        with rest_client(again) as c:
            record = invoke(c, again, app_token(again), "Get-Mailbox", Identity=edoid).json()["value"][0]
        assert record["IsExchangeCloudManaged"] is True
        _stop(proc, signal.SIGINT)


def test_serve_rejects_an_unknown_fault_kind() -> None:
    out = subprocess.run([sys.executable, "-c", "from exocm.cli.main import main; main()", "sandbox", "serve",
                          "--fault", "meteor=0.5"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "meteor" in out.stderr


def test_restart_on_the_same_port_keeps_state_and_accepts_earlier_tokens(tmp_path: Path) -> None:
    state = tmp_path / "t.sqlite"
    first = Sandbox.start(size=60, seed=9, state_file=state, winrm=False)
    try:
        info = first.info
        token = app_token(info)
        edoid = first.tenant.invoke("Get-Mailbox", {"ResultSize": 1, "Filter": "IsDirSynced -eq $true -and "
                                                    "IsExchangeCloudManaged -eq $false"})[0]["ExternalDirectoryObjectId"]
        with rest_client(info) as c:
            assert invoke(c, info, token, "Set-Mailbox", Identity=edoid,
                          IsExchangeCloudManaged=True).status_code == 200
    finally:
        first.stop()
    second = Sandbox.start(size=60, seed=9, state_file=state, port=first.port, winrm=False)
    try:
        assert second.info["rest_base_url"] == info["rest_base_url"] and second.info["ca_file"] == info["ca_file"]
        with rest_client(info) as c:  # the client's old CA file, URL and token still work
            record = invoke(c, info, token, "Get-Mailbox", Identity=edoid).json()["value"][0]
        assert record["IsExchangeCloudManaged"] is True
    finally:
        second.stop()


def test_durable_writes_survive_kill_9(tmp_path: Path) -> None:
    state = tmp_path / "tenant.sqlite"
    with _serve("--size", "80", "--seed", "6", "--state", str(state), "--durable-writes") as (proc, info):
        token = app_token(info)
        with rest_client(info) as c:
            rows = invoke(c, info, token, "Get-Mailbox", ResultSize=1,
                          Filter="IsDirSynced -eq $true -and IsExchangeCloudManaged -eq $false").json()["value"]
            edoid = rows[0]["ExternalDirectoryObjectId"]
            assert invoke(c, info, token, "Set-Mailbox", Identity=edoid,
                          IsExchangeCloudManaged=True).status_code == 200
        proc.kill()  # no chance to save on exit
    with _serve("--size", "80", "--seed", "6", "--state", str(state)) as (proc, again):
        with rest_client(again) as c:
            record = invoke(c, again, app_token(again), "Get-Mailbox", Identity=edoid).json()["value"][0]
        assert record["IsExchangeCloudManaged"] is True
        _stop(proc, signal.SIGINT)


def test_sandbox_sync_runs_a_cycle_on_a_served_sandbox_for_its_own_app_only(make_sandbox: Any,
                                                                            tmp_path: Path) -> None:
    from click.testing import CliRunner
    from exocm.cli.main import cli

    sb = make_sandbox(size=300, seed=7, winrm=False)
    info = sb.info
    with sb.tenant.lock:
        target = next(r for r in sb.tenant.exo.values() if r.rtd == "UserMailbox" and r.dir_synced
                      and not r.cloud_managed and (a := sb.tenant.ad_for(r)) is not None
                      and a.rtd == "RemoteUserMailbox")
        sb.tenant.invoke("Set-RemoteMailbox", {"Identity": target.upn, "CustomAttribute3": "from-onprem"},
                         side="onprem")
    with rest_client(info) as c:
        before = invoke(c, info, app_token(info), "Get-Mailbox", Identity=target.edoid).json()["value"][0]
        assert before["CustomAttribute3"] != "from-onprem"  # not before a sync cycle
        # The control path wants a token of this tenant's app, and a POST.
        assert c.post("/sandbox/sync").status_code == 401
        assert c.post("/sandbox/sync", headers={"Authorization": f"Bearer {make_sandbox(size=20).issue_token()}"}
                      ).status_code == 401
        assert c.get("/sandbox/sync").status_code == 405
        assert invoke(c, info, app_token(info), "Get-Mailbox", Identity=target.edoid).json()["value"][0][
            "CustomAttribute3"] != "from-onprem"
        source = tmp_path / "sandbox.json"
        source.write_text(json.dumps(info) + "\n", encoding="utf-8")
        result = CliRunner().invoke(cli, ["sandbox", "sync", "--from-sandbox", str(source)])
        assert result.exit_code == 0, result.output
        assert "SANDBOX sync cycle (Delta) done" in result.output
        after = invoke(c, info, app_token(info), "Get-Mailbox", Identity=target.edoid).json()["value"][0]
    assert after["CustomAttribute3"] == "from-onprem"


def test_sandbox_sync_on_a_stopped_sandbox_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from exocm.cli.main import cli

    source = tmp_path / "sandbox.json"
    source.write_text(json.dumps({"tenant": "t", "authority": "https://127.0.0.1:9/t", "client_id": "c",
                                  "client_secret": "s", "scope": "https://127.0.0.1:9/.default",
                                  "rest_base_url": "https://127.0.0.1:9",
                                  "ca_file": str(tmp_path / "gone.pem")}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["sandbox", "sync", "--from-sandbox", str(source)])
    assert result.exit_code == 2 and "has stopped" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_state_file_that_is_not_a_sandbox_state_is_one_line_for_serve_and_planted(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from exocm.cli.main import cli

    bad = tmp_path / "tenant.sqlite"
    bad.write_bytes(b"not a database at all")
    for args in (["sandbox", "serve", "--state", str(bad)], ["sandbox", "planted", "--state", str(bad)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert f"{bad} is not a sandbox state file" in result.output and "Traceback" not in result.output
    assert bad.read_bytes() == b"not a database at all"  # left as it was


def test_serve_many_tenants_lists_them_and_profiles_add_makes_one_per_tenant(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cli_support import exocm, private_env
    from exocm.core.access.config import load_config

    private_env(monkeypatch, tmp_path)
    with _serve("--tenants", "3", "--size", "20") as (proc, info):
        members = info["tenants"]
        assert len(members) == 3 and all(CONTRACT_KEYS <= set(m) for m in members)
        assert len({m["tenant"] for m in members}) == 3
        assert len({m["rest_base_url"] for m in members}) == 1  # one port
        for member in members:  # each tenant answers with its own app, on the one port
            with rest_client(member) as client:
                answer = invoke(client, member, app_token(member), "Get-OrganizationConfig")
                assert answer.status_code == 200
                assert answer.json()["value"][0]["Name"] == member["tenant_domain"]
        source = tmp_path / "sbx.json"
        source.write_text(json.dumps(info) + "\n", encoding="utf-8")
        added = exocm("profiles", "add", "msp", "--from-sandbox", str(source))
        assert added.exit_code == 0, added.output
        assert sorted(load_config().profiles) == ["msp-1", "msp-2", "msp-3"]
        assert load_config().profiles["msp-2"].tenant == members[1]["tenant"]
        code, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err
