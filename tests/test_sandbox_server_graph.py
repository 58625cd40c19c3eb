"""The sandbox's minimal Graph (users, licenses, groups) over loopback TLS with msal tokens."""
from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sandbox_clients import app_token

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"


@pytest.fixture
def graph(make_sandbox: Callable[..., Any]) -> Iterator[tuple[Any, httpx.Client]]:
    sb = make_sandbox(size=60)
    info = sb.info
    token = app_token(info, scope=info["graph_scope"])
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    with httpx.Client(base_url=f"{info['graph_base_url']}/v1.0", verify=ctx, trust_env=False,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield sb, client


def _cloud_group_and_outsider(sb: Any) -> tuple[str, str]:
    with sb.tenant.lock:
        group = next(g for g in sb.tenant.entra_groups.values() if not g.sync_enabled)
        outsider = next(u.id for u in sb.tenant.entra_users.values() if u.id not in group.members)
    return group.id, outsider


def test_graph_reads_a_user_and_its_license_details(graph: Any) -> None:
    sb, client = graph
    with sb.tenant.lock:
        user = next(u for u in sb.tenant.entra_users.values() if sb.tenant.licensed_skus(u))
    data = client.get(f"/users/{user.upn}").json()
    assert data["id"] == user.id and data["assignedLicenses"]
    details = client.get(f"/users/{user.id}/licenseDetails").json()["value"]
    assert {d["skuId"] for d in details} == {a["skuId"] for a in data["assignedLicenses"]}


def test_graph_assigns_and_removes_a_direct_license(graph: Any) -> None:
    sb, client = graph
    with sb.tenant.lock:
        user = next(u for u in sb.tenant.entra_users.values() if not sb.tenant.licensed_skus(u) and u.usage_location)
    added = client.post(f"/users/{user.id}/assignLicense", json={"addLicenses": [{"skuId": E3, "disabledPlans": []}],
                                                                  "removeLicenses": []})
    assert added.status_code == 200 and E3 in {a["skuId"] for a in added.json()["assignedLicenses"]}
    removed = client.post(f"/users/{user.id}/assignLicense", json={"addLicenses": [], "removeLicenses": [E3]})
    assert removed.status_code == 200 and not removed.json()["assignedLicenses"]


def test_graph_group_membership_add_and_remove(graph: Any) -> None:
    sb, client = graph
    group, outsider = _cloud_group_and_outsider(sb)
    ref = {"@odata.id": f"{sb.info['graph_base_url']}/v1.0/directoryObjects/{outsider}"}
    assert client.post(f"/groups/{group}/members/$ref", json=ref).status_code == 204
    assert outsider in {m["id"] for m in client.get(f"/groups/{group}/members").json()["value"]}
    assert group in {g["id"] for g in client.get(f"/users/{outsider}/memberOf").json()["value"]}
    assert client.delete(f"/groups/{group}/members/{outsider}/$ref").status_code == 204
    assert outsider not in {m["id"] for m in client.get(f"/groups/{group}/members").json()["value"]}


def test_graph_errors_have_graph_shape(graph: Any) -> None:
    sb, client = graph
    missing = client.get("/users/nobody@example.org")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "Request_ResourceNotFound"
    rest_token = app_token(sb.info)  # audience = the EXO REST endpoint, not Graph
    wrong = client.get("/groups", headers={"Authorization": f"Bearer {rest_token}"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "InvalidAuthenticationToken"
