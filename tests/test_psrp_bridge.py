"""The PSRP transport against the sandbox's WinRM endpoint, through the real client (pypsrp):
what an Exchange remoting endpoint sends, what the bridge makes of it, and how it fails."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from exocm.core.bridge.errors import AppliedUnknown, AuthFailed, InvalidInput, NotFound, Transient
from exocm.core.bridge.normalize import normalize_records
from exocm.core.bridge.psrp import PsrpBridge, PsrpEndpoint
from exocm.core.bridge.retry import RetryPolicy
from exocm.sandbox.server import Sandbox
from pypsrp.complex_objects import GenericComplexObject
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

INJECTIONS = [
    "O'Brien; Remove-Mailbox x",
    "$(Remove-Mailbox -Identity * -Confirm:$false)",
    "x'; Disable-Mailbox -Identity * -Confirm:$false; '",
    "x\nRemove-Mailbox y",
    "`; Set-RemoteMailbox * -ExchangeGuid 00000000-0000-0000-0000-000000000000",
    "& { Remove-Mailbox x }",
]


def _onprem(sb: Sandbox, **kw: Any) -> PsrpBridge:
    info = sb.info
    endpoint = PsrpEndpoint(info["winrm_onprem_url"], username=info["winrm_username"],
                            password=kw.pop("password", info["winrm_password"]), ca_file=info["ca_file"])
    return PsrpBridge(endpoint, info["tenant"], **kw)


def _raw_pool(sb: Sandbox) -> RunspacePool:
    info = sb.info
    port = int(info["winrm_onprem_url"].rsplit(":", 1)[1].split("/")[0])
    wsman = WSMan("127.0.0.1", port=port, path="PowerShell", ssl=True, auth="basic",
                  username=info["winrm_username"], password=info["winrm_password"],
                  cert_validation=info["ca_file"], no_proxy=True)
    return RunspacePool(wsman, configuration_name="Microsoft.Exchange")


def test_pypsrp_opens_microsoft_exchange_and_gets_exchange_typed_objects(sandbox: Sandbox) -> None:
    with _raw_pool(sandbox) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-RemoteMailbox").add_parameter("ResultSize", 3)
        out = ps.invoke()
    assert not ps.had_errors and len(out) == 3
    obj = out[0]
    assert isinstance(obj, GenericComplexObject)
    assert obj.types[0] == "Deserialized.Microsoft.Exchange.Data.Directory.Management.RemoteMailbox"
    rtd = obj.adapted_properties["RecipientTypeDetails"]
    assert isinstance(rtd, GenericComplexObject) and str(rtd).startswith("Remote")  # an enum, by name
    addresses = obj.adapted_properties["EmailAddresses"]
    assert "Deserialized.Microsoft.Exchange.Data.ProxyAddressCollection" in addresses.types
    assert addresses.property_sets[0].startswith("<LST>")  # pypsrp leaves the typed collection raw


def test_onprem_records_are_the_tenants_records(sandbox: Sandbox) -> None:
    with _onprem(sandbox) as bridge:
        for cmdlet in ("Get-Mailbox", "Get-RemoteMailbox", "Get-User"):
            got = bridge.invoke(cmdlet, {"ResultSize": "Unlimited"})
            want = normalize_records(sandbox.tenant.invoke(cmdlet, {"ResultSize": "Unlimited"}, side="onprem"))
            assert got == want and got
        assert bridge.snapshot()["pools_opened"] == 1  # one runspace pool, reused


def test_select_object_runs_remotely_and_keeps_types(sandbox: Sandbox) -> None:
    with _onprem(sandbox) as bridge:
        rows = bridge.invoke("Get-RemoteMailbox", {"ResultSize": 5},
                             properties=["UserPrincipalName", "ExchangeGuid", "EmailAddresses", "WhenChanged"])
    assert len(rows) == 5
    for row in rows:
        assert list(row) == ["UserPrincipalName", "ExchangeGuid", "EmailAddresses", "WhenChanged"]
        assert isinstance(row["EmailAddresses"], list) and row["WhenChanged"].tzinfo is not None


@pytest.mark.parametrize("identity", INJECTIONS)
def test_injection_in_an_identity_is_data_and_only_fails_to_resolve(make_sandbox: Callable[..., Sandbox],
                                                                      identity: str) -> None:
    sb = make_sandbox(size=60, seed=3)
    before = sb.tenant.onprem_records()
    with _onprem(sb) as bridge:
        for cmdlet in ("Get-Mailbox", "Get-RemoteMailbox", "Set-RemoteMailbox"):
            params: dict[str, Any] = {"Identity": identity}
            if cmdlet == "Set-RemoteMailbox":
                params["CustomAttribute1"] = "x"
            with pytest.raises(NotFound) as info:
                bridge.invoke(cmdlet, params)
            assert " ".join(identity.split()) in info.value.message  # messages are one line
    assert sb.tenant.onprem_records() == before


def test_script_text_is_refused_by_the_no_language_endpoint(sandbox: Sandbox) -> None:
    before = len(sandbox.tenant.onprem_records())
    with _raw_pool(sandbox) as pool:
        ps = PowerShell(pool)
        ps.add_script("Get-RemoteMailbox | Disable-RemoteMailbox -Confirm:$false")
        out = ps.invoke()
    assert out == [] and ps.had_errors
    assert "no-language mode" in str(ps.streams.error[0])
    assert len(sandbox.tenant.onprem_records()) == before


def test_task_errors_use_the_error_stream_and_engine_errors_fail_the_pipeline(sandbox: Sandbox) -> None:
    with _raw_pool(sandbox) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Mailbox").add_parameter("Identity", "nobody@nowhere.example")
        assert ps.invoke() == []
        assert not ps.had_errors and ps.streams.error  # non-terminating: only the error stream says so
        assert ps.streams.error[0].reason == "ManagementObjectNotFoundException"
        ps2 = PowerShell(pool)
        ps2.add_cmdlet("Get-Mailbox").add_parameter("NoSuchParameter", 1)
        ps2.invoke()
        assert ps2.had_errors  # terminating: the pipeline failed
    with _onprem(sandbox) as bridge:
        with pytest.raises(NotFound):
            bridge.invoke("Get-Mailbox", {"Identity": "nobody@nowhere.example"})
        with pytest.raises(InvalidInput):
            bridge.invoke("Get-Mailbox", {"NoSuchParameter": 1})


def test_bad_credentials_give_one_clear_line_without_the_password(sandbox: Sandbox) -> None:
    with _onprem(sandbox, password="Wr0ng-Passw0rd!") as bridge, pytest.raises(AuthFailed) as info:
        bridge.invoke("Get-Mailbox", {"ResultSize": 1})
    message = info.value.message
    assert "\n" not in message and "Wr0ng-Passw0rd!" not in message
    assert "rejected the credentials" in message and sandbox.info["winrm_username"] in message


def test_dropped_connection_mid_receive_is_transient_and_a_retry_succeeds(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(size=60, seed=5)
    winrm = sb.winrm
    with _onprem(sb, retry_policy=RetryPolicy(max_attempts=1)) as bridge:
        want = bridge.invoke("Get-RemoteMailbox", {"ResultSize": "Unlimited"})
        winrm.faults.drop_receives = 1
        with pytest.raises(Transient):
            bridge.invoke("Get-RemoteMailbox", {"ResultSize": "Unlimited"})
        assert bridge.invoke("Get-RemoteMailbox", {"ResultSize": "Unlimited"}) == want  # the retry


def test_reads_retry_a_dropped_connection_by_themselves(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(size=60, seed=5)
    slept: list[float] = []
    with _onprem(sb, sleep=slept.append) as bridge:
        want = bridge.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
        sb.winrm.faults.drop_receives = 1
        assert bridge.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}) == want
        assert bridge.snapshot()["retries"] == 1 and len(slept) == 1


def test_a_write_whose_connection_drops_is_applied_unknown_and_reads_back(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(size=60, seed=5)
    target = next(r for r in sb.tenant.invoke("Get-RemoteMailbox", {"ResultSize": "Unlimited"}, side="onprem"))
    with _onprem(sb, sleep=lambda s: None) as bridge:
        sb.winrm.faults.drop_receives = 1
        with pytest.raises(AppliedUnknown):
            bridge.invoke("Set-RemoteMailbox", {"Identity": target["Guid"], "CustomAttribute4": "written"})
        assert bridge.invoke("Get-RemoteMailbox", {"Identity": target["Guid"]})[0]["CustomAttribute4"] == "written"


def test_exo_host_needs_connect_exchangeonline_and_a_valid_token(sandbox: Sandbox) -> None:
    info = sandbox.info
    port = int(info["winrm_exo_url"].rsplit(":", 1)[1].split("/")[0])
    wsman = WSMan("127.0.0.1", port=port, path="wsman", ssl=True, auth="basic", username=info["winrm_username"],
                  password=info["winrm_password"], cert_validation=info["ca_file"], no_proxy=True)
    with RunspacePool(wsman, configuration_name="Microsoft.PowerShell") as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Mailbox").add_parameter("ResultSize", 1)
        ps.invoke()
        assert ps.had_errors and "is not recognized" in str(ps.streams.error[0])  # module not connected
        bad = PowerShell(pool)
        bad.add_cmdlet("Connect-ExchangeOnline").add_parameter("AccessToken", "not-a-jwt")
        bad.add_parameter("Organization", info["tenant"])
        bad.invoke()
        assert bad.had_errors
        good = PowerShell(pool)
        good.add_cmdlet("Connect-ExchangeOnline").add_parameter("AccessToken", sandbox.issue_token())
        good.add_parameter("Organization", info["tenant"]).add_parameter("ShowBanner", False)
        good.invoke()
        assert not good.had_errors and not good.streams.error
        after = PowerShell(pool)
        after.add_cmdlet("Get-Mailbox").add_parameter("ResultSize", 1)
        assert len(after.invoke()) == 1


class _Tokens:
    """A token source that hands out an expired token first (what a stale MSAL cache would)."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.refreshes = 0
        self._current = sb.issue_token(lifetime_s=-60)

    @property
    def expires_at(self) -> float:
        return 0.0

    @property
    def username(self) -> str | None:
        return None

    def token(self) -> str:
        return self._current

    def refresh(self) -> str:
        self.refreshes += 1
        self._current = self.sb.issue_token()
        return self._current


def test_exo_host_bridge_refreshes_a_rejected_token_once(sandbox: Sandbox) -> None:
    info = sandbox.info
    tokens = _Tokens(sandbox)
    endpoint = PsrpEndpoint(info["winrm_exo_url"], username=info["winrm_username"], password=info["winrm_password"],
                            ca_file=info["ca_file"])
    with PsrpBridge(endpoint, info["tenant"], token_provider=tokens) as bridge:
        assert len(bridge.invoke("Get-Mailbox", {"ResultSize": 2})) == 2
    assert tokens.refreshes == 1


def test_certificate_auth_maps_the_client_certificate_to_a_user(sandbox: Sandbox) -> None:
    info = sandbox.info
    endpoint = PsrpEndpoint(info["winrm_onprem_url"], auth="certificate", certificate_pem=info["client_cert_pem_file"],
                            certificate_key_pem=info["client_key_pem_file"], ca_file=info["ca_file"])
    with PsrpBridge(endpoint, info["tenant"]) as bridge:
        assert len(bridge.invoke("Get-User", {"ResultSize": 2})) == 2


def test_negotiate_is_handed_to_pypsrp_and_a_server_without_it_is_a_clear_auth_failure(sandbox: Sandbox) -> None:
    info = sandbox.info
    endpoint = PsrpEndpoint(info["winrm_onprem_url"], auth="negotiate", username="CONTOSO\\someone",
                            password="pw", ca_file=info["ca_file"])
    with PsrpBridge(endpoint, info["tenant"]) as bridge, pytest.raises(AuthFailed) as err:
        bridge.invoke("Get-User", {"ResultSize": 1})
    assert "(negotiate auth)" in err.value.message and "\n" not in err.value.message
