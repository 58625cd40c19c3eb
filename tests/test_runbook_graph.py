"""The runbooks' Graph client against the sandbox's Graph over loopback TLS: its own token audience,
and typed errors from Graph's error JSON."""
from __future__ import annotations

import pytest
from exocm.core.access.config import sandbox_profile
from exocm.core.access.graph_host import graph_endpoint, open_graph
from exocm.core.bridge.errors import AuthFailed, InvalidInput, NotFound
from exocm.core.bridge.graph import GraphBridge
from exocm.sandbox.server import Sandbox


@pytest.fixture(scope="module")
def graph(sandbox: Sandbox) -> GraphBridge:
    prof = sandbox_profile("g", sandbox.info)
    assert prof.secret_env is not None
    return open_graph(prof, env={prof.secret_env: sandbox.info["client_secret"]}, persist_tokens=False)


def test_graph_endpoint_comes_from_the_profile_or_its_cloud(sandbox: Sandbox) -> None:
    prof = sandbox_profile("g", sandbox.info)
    assert graph_endpoint(prof) == (sandbox.info["graph_base_url"], sandbox.info["graph_scope"])
    prof.extra.clear()
    prof.cloud = "gcchigh"
    assert graph_endpoint(prof) == ("https://graph.microsoft.us", "https://graph.microsoft.us/.default")


def test_reads_licenses_and_groups_with_a_graph_audience_token(sandbox: Sandbox, graph: GraphBridge) -> None:
    t = sandbox.tenant
    r = next(r for r in sorted(t.exo.values(), key=lambda r: r.edoid)
             if r.rtd == "UserMailbox" and t.entra_users[r.edoid].groups)
    user = graph.get_user(r.edoid)
    assert user["id"] == r.edoid and user["licenseAssignmentStates"]
    assert {d["skuId"] for d in graph.license_details(r.upn)} == set(t.licensed_skus(t.entra_users[r.edoid]))
    groups = graph.member_of(r.edoid)
    assert {g["id"] for g in groups} == t.entra_users[r.edoid].groups
    assert "onPremisesSyncEnabled" in graph.get_group(groups[0]["id"])


def test_graph_errors_become_typed_errors(sandbox: Sandbox, graph: GraphBridge) -> None:
    t = sandbox.tenant
    with pytest.raises(NotFound):
        graph.get_user("nobody@nowhere.example")
    synced = next(g for g in t.entra_groups.values() if g.sync_enabled and g.members)
    with pytest.raises(InvalidInput, match="on-premises mastered"):
        graph.remove_group_member(synced.id, sorted(synced.members)[0])


def test_a_token_for_exchange_is_not_accepted_by_graph(sandbox: Sandbox) -> None:
    class ExoToken:
        expires_at = 0.0
        username = None

        def token(self) -> str:
            return sandbox.issue_token()  # audience: the REST endpoint, not Graph

        def refresh(self) -> str:
            return self.token()

    client = GraphBridge(sandbox.info["graph_base_url"], ExoToken(), ca_file=sandbox.info["ca_file"])
    with pytest.raises(AuthFailed), client:
        client.get_user(next(iter(sandbox.tenant.entra_users)))

