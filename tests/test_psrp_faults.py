"""The sandbox's fault knobs on its WinRM endpoint, and how the PSRP bridge types them.

Reads that meet a 500/503/reset are Transient (and retried by the bridge); a write whose request
was sent before the fault is AppliedUnknown (the caller reads back; the bridge never resends it);
the applied-but-errored quirk is a PowerShell error with an empty message after the write landed,
typed AppliedUnknown too.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from exocm.core.bridge.errors import AppliedUnknown, Transient
from exocm.core.bridge.psrp import PsrpBridge, PsrpEndpoint
from exocm.core.bridge.retry import RetryPolicy
from exocm.sandbox.server import Sandbox


def _host(sb: Sandbox, **kw: Any) -> PsrpBridge:
    info = sb.info
    endpoint = PsrpEndpoint(info["winrm_exo_url"], username=info["winrm_username"], password=info["winrm_password"],
                            ca_file=info["ca_file"])
    return PsrpBridge(endpoint, info["tenant"], token_provider=_Tokens(sb), **kw)


class _Tokens:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def token(self) -> str:
        return self.sb.issue_token()

    def refresh(self) -> str:
        return self.sb.issue_token()


def _dirsynced(sb: Sandbox) -> str:
    records = sb.tenant.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, side="exo")
    return next(str(r["ExternalDirectoryObjectId"]) for r in records
                if r.get("IsDirSynced") and r.get("IsExchangeCloudManaged") is False)


@pytest.mark.parametrize("kind", ["500", "503", "reset"])
def test_a_wsman_fault_is_transient_for_a_read_and_applied_unknown_for_a_sent_write(
        kind: str, make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(size=40, seed=3)
    target = _dirsynced(sb)
    with _host(sb, retry_policy=RetryPolicy(max_attempts=1)) as bridge:
        bridge.invoke("Get-Mailbox", {"ResultSize": 1})  # the pool is open: the next request is a Command
        sb.knobs.faults = {kind: 1.0}
        with pytest.raises(Transient):
            bridge.invoke("Get-Mailbox", {"Identity": target})
        sb.knobs.faults = {}
        bridge.invoke("Get-Mailbox", {"ResultSize": 1})
        sb.knobs.faults = {kind: 1.0}
        with pytest.raises(AppliedUnknown):
            bridge.invoke("Set-Mailbox", {"Identity": target, "IsExchangeCloudManaged": True})
        sb.knobs.faults = {}
        # the fault came before the request was acted on: reading back shows it did not apply
        assert bridge.invoke("Get-Mailbox", {"Identity": target})[0]["IsExchangeCloudManaged"] is False
    assert sb.stats.snapshot()["faults_injected"][kind] >= 2


def test_the_applied_error_quirk_over_psrp_is_applied_unknown_and_the_write_landed(
        make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(size=40, seed=3, faults={"applied-error": 1.0})
    target = _dirsynced(sb)
    with _host(sb) as bridge:
        with pytest.raises(AppliedUnknown) as err:
            bridge.invoke("Set-Mailbox", {"Identity": target, "IsExchangeCloudManaged": True})
        assert "empty error message" in err.value.message
        assert bridge.invoke("Get-Mailbox", {"Identity": target})[0]["IsExchangeCloudManaged"] is True
        assert bridge.snapshot()["retries"] == 0  # never resent by the bridge
    assert sb.stats.snapshot()["faults_injected"] == {"applied-error": 1}


def test_reads_survive_wsman_faults_by_retrying_on_a_fresh_pool(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(size=60, seed=4)
    with _host(sb, sleep=lambda s: None) as bridge:
        want = bridge.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
        sb.knobs.faults = {"503": 0.03, "500": 0.03, "reset": 0.03}
        for _ in range(8):
            assert bridge.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}) == want
        sb.knobs.faults = {}
        assert bridge.snapshot()["retries"] > 0
