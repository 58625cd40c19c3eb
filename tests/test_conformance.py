"""Bridge conformance: the same tests run on both transports -- REST (InvokeCommand) and PSRP to a
Windows management host running ExchangeOnlineManagement -- against one sandbox tenant, and must
give identical records, identical warnings and identical typed errors.

Expected records are the tenant model's own answer (normalised the way every transport promises),
so "both pass" means "both are identical to each other".
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from exocm.core.access.config import sandbox_profile
from exocm.core.access.connect import open_bridge, token_provider_for
from exocm.core.bridge.base import Bridge
from exocm.core.bridge.errors import BridgeError, InvalidInput, NotFound
from exocm.core.bridge.normalize import normalize_records
from exocm.core.bridge.psrp import PsrpBridge, PsrpEndpoint
from exocm.sandbox.server import Sandbox

TRANSPORTS = ("rest", "psrp")


@pytest.fixture(scope="module")
def tenant_sandbox() -> Iterator[Sandbox]:
    """A private tenant for this module (it writes)."""
    sb = Sandbox.start(size=300, seed=11)
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture(scope="module")
def bridges(tenant_sandbox: Sandbox) -> Iterator[dict[str, Bridge]]:
    """One bridge per transport, both signed in through the same MSAL app registration."""
    info = tenant_sandbox.info
    prof = sandbox_profile("conformance", info)
    assert prof.secret_env is not None
    env = {prof.secret_env: str(info["client_secret"])}
    rest = open_bridge(prof, env=env, persist_tokens=False)
    psrp = PsrpBridge(
        PsrpEndpoint(info["winrm_exo_url"], username=info["winrm_username"], password=info["winrm_password"],
                     ca_file=info["ca_file"]),
        info["tenant"],
        token_provider=token_provider_for(prof, env=env, persist_tokens=False),
    )
    try:
        yield {"rest": rest, "psrp": psrp}
    finally:
        rest.close()
        psrp.close()


@pytest.fixture(params=TRANSPORTS)
def bridge(request: pytest.FixtureRequest, bridges: dict[str, Bridge]) -> Bridge:
    """The bridge under test."""
    return bridges[request.param]


def _expected(sb: Sandbox, cmdlet: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return normalize_records(sb.tenant.invoke(cmdlet, dict(params), side="exo"))


def _a_mailbox(sb: Sandbox, *, synced: bool) -> dict[str, Any]:
    for rec in sb.tenant.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, side="exo"):
        if rec["IsDirSynced"] is synced and rec["RecipientTypeDetails"] == "UserMailbox":
            return dict(rec)
    raise AssertionError("the generated tenant has no such mailbox")


READS: list[tuple[str, dict[str, Any]]] = [
    ("Get-Mailbox", {"ResultSize": "Unlimited"}),
    ("Get-Mailbox", {"Filter": "IsDirSynced -eq $true", "ResultSize": "Unlimited"}),
    ("Get-User", {"ResultSize": "Unlimited"}),
    ("Get-Recipient", {"ResultSize": "Unlimited"}),
    ("Get-MailUser", {"ResultSize": "Unlimited"}),
    ("Get-OrganizationConfig", {}),
]


@pytest.mark.parametrize(("cmdlet", "params"), READS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(READS)])
def test_reads_give_the_tenants_records_exactly(bridge: Bridge, tenant_sandbox: Sandbox, cmdlet: str,
                                                params: dict[str, Any]) -> None:
    records = bridge.invoke(cmdlet, dict(params))
    assert records == _expected(tenant_sandbox, cmdlet, params)
    assert records, "a read that returns nothing proves nothing"


def test_identity_reads_and_pages_agree(bridge: Bridge, tenant_sandbox: Sandbox) -> None:
    mailbox = _a_mailbox(tenant_sandbox, synced=True)
    for identity in (mailbox["UserPrincipalName"], mailbox["ExternalDirectoryObjectId"], mailbox["Alias"]):
        assert bridge.invoke("Get-Mailbox", {"Identity": identity}) == _expected(
            tenant_sandbox, "Get-Mailbox", {"Identity": identity})
    pages = list(bridge.stream("Get-User", {"ResultSize": "Unlimited"}, page_size=100))
    assert [r for page in pages for r in page] == _expected(tenant_sandbox, "Get-User", {"ResultSize": "Unlimited"})


def test_result_size_cut_warns_the_same_way(bridge: Bridge, tenant_sandbox: Sandbox) -> None:
    records = bridge.invoke("Get-Mailbox", {"ResultSize": 5})
    assert len(records) == 5
    warnings = bridge.last_warnings  # type: ignore[attr-defined]
    assert warnings == ["There are more results available than are currently displayed. To view them, "
                        "increase the value for the ResultSize parameter."]


ERRORS: list[tuple[str, dict[str, Any], type[BridgeError]]] = [
    ("Get-Mailbox", {"Identity": "nobody@nowhere.example"}, NotFound),
    ("Get-Mailbox", {"Identity": "O'Brien; Remove-Mailbox x"}, NotFound),
    ("Get-Mailbox", {"Identity": "$(Remove-Mailbox -Identity * -Confirm:$false)"}, NotFound),
    ("Get-Mailbox", {"Bogus": 1}, InvalidInput),
    ("Get-Nothing", {}, InvalidInput),
    ("Get-Mailbox", {"Filter": "Foo -eq"}, InvalidInput),
    ("Set-Mailbox", {"Identity": "nobody@nowhere.example", "CustomAttribute1": "x"}, NotFound),
]


@pytest.mark.parametrize(("cmdlet", "params", "error"), ERRORS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(ERRORS)])
def test_errors_are_the_same_typed_errors(bridges: dict[str, Bridge], cmdlet: str, params: dict[str, Any],
                                          error: type[BridgeError]) -> None:
    seen: dict[str, tuple[type[BridgeError], str]] = {}
    for name in TRANSPORTS:
        with pytest.raises(BridgeError) as info:
            bridges[name].invoke(cmdlet, dict(params))
        assert type(info.value) is error, (name, info.value)
        seen[name] = (type(info.value), info.value.message)
    assert seen["rest"] == seen["psrp"]


def test_write_refused_for_a_dirsynced_mailbox_is_the_same_error(bridges: dict[str, Bridge],
                                                                   tenant_sandbox: Sandbox) -> None:
    mailbox = _a_mailbox(tenant_sandbox, synced=True)
    if mailbox["IsExchangeCloudManaged"]:
        pytest.skip("first synced mailbox is cloud-managed")
    outcomes = []
    for name in TRANSPORTS:
        with pytest.raises(BridgeError) as info:
            bridges[name].invoke("Set-Mailbox", {"Identity": mailbox["ExternalDirectoryObjectId"],
                                                 "CustomAttribute3": "x"})
        outcomes.append((type(info.value), info.value.message))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("writer", TRANSPORTS)
def test_a_write_on_one_transport_reads_back_on_the_other(bridges: dict[str, Bridge], tenant_sandbox: Sandbox,
                                                           writer: str) -> None:
    mailbox = _a_mailbox(tenant_sandbox, synced=False)
    identity = mailbox["ExternalDirectoryObjectId"]
    value = f"conformance-{writer}"
    out = bridges[writer].invoke("Set-Mailbox", {"Identity": identity, "CustomAttribute9": value})
    assert out == []
    reader = bridges["psrp" if writer == "rest" else "rest"]
    assert reader.invoke("Get-Mailbox", {"Identity": identity})[0]["CustomAttribute9"] == value
    # The same write again changes nothing, and both transports say so with the same warning.
    bridges[writer].invoke("Set-Mailbox", {"Identity": identity, "CustomAttribute9": value})
    repeat = bridges[writer].last_warnings  # type: ignore[attr-defined]
    reader.invoke("Set-Mailbox", {"Identity": identity, "CustomAttribute9": value})
    assert repeat and reader.last_warnings == repeat  # type: ignore[attr-defined]


def test_invoke_many_gives_per_call_results_in_order(bridge: Bridge, tenant_sandbox: Sandbox) -> None:
    from exocm.core.bridge.base import Call

    mailbox = _a_mailbox(tenant_sandbox, synced=True)
    calls = [Call("Get-Mailbox", {"Identity": mailbox["UserPrincipalName"]}),
             Call("Get-Mailbox", {"Identity": "nobody@nowhere.example"}),
             Call("Get-OrganizationConfig", {})]
    results = bridge.invoke_many(calls)
    assert [r.call for r in results] == calls
    assert results[0].records == _expected(tenant_sandbox, "Get-Mailbox", {"Identity": mailbox["UserPrincipalName"]})
    assert isinstance(results[1].error, NotFound) and results[1].records == []
    assert results[2].error is None and len(results[2].records) == 1


def test_the_whole_inventory_is_identical_over_both_transports(bridges: dict[str, Bridge]) -> None:
    import pandas as pd
    from exocm.core.inventory.fetch import fetch_inventory

    frames = {name: fetch_inventory(bridges[name]).frame.sort_index() for name in TRANSPORTS}
    assert len(frames["rest"]) > 0
    pd.testing.assert_frame_equal(frames["rest"], frames["psrp"])


def test_the_psrp_inventory_reads_only_the_inventory_columns_and_gives_the_same_frame(
        bridges: dict[str, Bridge]) -> None:
    import pandas as pd
    from exocm.core.inventory.fetch import fetch_inventory

    psrp = bridges["psrp"]
    assert isinstance(psrp, PsrpBridge)
    before = psrp.snapshot()
    selected = fetch_inventory(psrp)
    after = psrp.snapshot()
    pipelines = after["pipelines"] - before["pipelines"]
    assert pipelines > 0
    assert after["selected_pipelines"] - before["selected_pipelines"] == pipelines  # every read: Select-Object
    whole = fetch_inventory(psrp, select_properties=False)
    assert psrp.snapshot()["selected_pipelines"] == after["selected_pipelines"]
    pd.testing.assert_frame_equal(selected.frame.sort_index(), whole.frame.sort_index())
