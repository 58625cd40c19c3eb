"""The sandbox's Graph side for object-level SOA (issue 15): groups, contacts and users with
paging, $select, $count and the advanced-query rules, members and owners,
onPremisesSyncBehavior per version with its permission, $batch, throttling, the sync cycle
that honours isCloudManaged, and the generator's planted objects. Real msal + httpx clients."""
from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.object_findings import GROUP_CODES, OBJECT_CODES
from exocm.sandbox.server import Sandbox
from sandbox_clients import app_token

SOA_GROUP = "Group-OnPremisesSyncBehavior.ReadWrite.All"
EVENTUAL = {"ConsistencyLevel": "eventual"}


def _client(sb: Sandbox, version: str = "v1.0", token: str | None = None) -> httpx.Client:
    info = sb.info
    token = token or app_token(info, scope=info["graph_scope"])
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    return httpx.Client(base_url=f"{info['graph_base_url']}/{version}", verify=ctx, trust_env=False,
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture
def sb(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox(size=60, seed=43, groups=40, winrm=False)


@pytest.fixture
def v1(sb: Sandbox) -> Iterator[httpx.Client]:
    with _client(sb) as c:
        yield c


@pytest.fixture
def beta(sb: Sandbox) -> Iterator[httpx.Client]:
    with _client(sb, "beta") as c:
        yield c


def _all_pages(client: httpx.Client, first: httpx.Response) -> list[dict[str, Any]]:
    assert first.status_code == 200, first.text
    body = first.json()
    rows = list(body["value"])
    while "@odata.nextLink" in body:
        nxt = client.get(body["@odata.nextLink"])
        assert nxt.status_code == 200, nxt.text
        body = nxt.json()
        rows += body["value"]
    return rows


def _synced_group(sb: Sandbox, **want: Any) -> Any:
    with sb.tenant.lock:
        return next(g for g in sb.tenant.entra_groups.values() if g.sync_enabled and g.ad_guid
                    and all(getattr(g, k) == v for k, v in want.items()))


# ----------------------------------------------------------------------------- listing
def test_synced_groups_page_with_count_and_select(sb: Sandbox, v1: httpx.Client) -> None:
    first = v1.get("/groups", params={"$filter": "onPremisesSyncEnabled eq true", "$count": "true", "$top": "7",
                                      "$select": "id,displayName,onPremisesSyncEnabled,groupTypes"},
                   headers=EVENTUAL)
    body = first.json()
    with sb.tenant.lock:
        truth = {g.id for g in sb.tenant.entra_groups.values() if g.sync_enabled}
    assert body["@odata.count"] == len(truth)
    assert len(body["value"]) == 7 and "$skiptoken=" in body["@odata.nextLink"]
    rows = _all_pages(v1, first)
    assert {r["id"] for r in rows} == truth and len(rows) == len(truth)
    assert all(set(r) == {"id", "displayName", "onPremisesSyncEnabled", "groupTypes"} for r in rows)


def test_group_record_has_graph_property_names(sb: Sandbox, v1: httpx.Client) -> None:
    with sb.tenant.lock:
        g = next(x for x in sb.tenant.entra_groups.values() if x.sync_enabled and x.mail_enabled and x.ca)
    rec = v1.get(f"/groups/{g.id}").json()
    for key in ("id", "displayName", "mail", "mailEnabled", "securityEnabled", "groupTypes", "onPremisesSyncEnabled",
                "onPremisesLastSyncDateTime", "onPremisesSecurityIdentifier", "onPremisesSamAccountName",
                "proxyAddresses", "onPremisesExtensionAttributes", "assignedLicenses"):
        assert key in rec, key
    assert rec["onPremisesSyncEnabled"] is True and rec["onPremisesLastSyncDateTime"].endswith("Z")
    assert set(rec["onPremisesExtensionAttributes"]) == {f"extensionAttribute{i}" for i in range(1, 16)}
    assert v1.get(f"/groups/{g.id}", params={"$select": "id,mail"}).json().keys() == {"@odata.context", "id", "mail"}


def test_advanced_query_rules(v1: httpx.Client) -> None:
    # eq works by default; $count=true without ConsistencyLevel is silently ignored (Graph docs).
    plain = v1.get("/groups", params={"$filter": "onPremisesSyncEnabled eq true", "$count": "true"})
    assert plain.status_code == 200 and "@odata.count" not in plain.json()
    # ne needs both advanced query parameters.
    for params, headers in (({"$filter": "onPremisesSyncEnabled ne true"}, EVENTUAL),
                            ({"$filter": "onPremisesSyncEnabled ne true", "$count": "true"}, {})):
        bad = v1.get("/groups", params=params, headers=headers)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "Request_UnsupportedQuery"
        assert "ConsistencyLevel:eventual" in bad.json()["error"]["message"]
    ok = v1.get("/groups", params={"$filter": "onPremisesSyncEnabled ne true", "$count": "true"}, headers=EVENTUAL)
    assert ok.status_code == 200 and ok.json()["@odata.count"] > 0
    # null on onPremisesSyncEnabled is refused even as an advanced query.
    null = v1.get("/groups", params={"$filter": "onPremisesSyncEnabled eq null", "$count": "true"}, headers=EVENTUAL)
    assert null.status_code == 400 and "'onPremisesSyncEnabled' of resource 'Group'" in null.json()["error"]["message"]
    # $count segment needs the header; $top is 1..999.
    assert v1.get("/groups/$count").status_code == 400
    assert int(v1.get("/groups/$count", headers=EVENTUAL).text) > 0
    top = v1.get("/groups", params={"$top": "1000"})
    assert top.status_code == 400 and top.json()["error"]["code"] == "Request_UnsupportedQuery"
    dyn = v1.get("/groups", params={"$filter": "groupTypes/any(c:c eq 'DynamicMembership')"}).json()["value"]
    assert dyn and all("DynamicMembership" in g["groupTypes"] and g["membershipRule"] for g in dyn)


def test_contacts_and_users_list_synced_objects(sb: Sandbox, v1: httpx.Client, beta: httpx.Client) -> None:
    with sb.tenant.lock:
        contacts = {c.id for c in sb.tenant.entra_contacts.values() if c.sync_enabled}
        users = {u.id for u in sb.tenant.entra_users.values() if u.sync_enabled}
    for client in (v1, beta):
        got = _all_pages(client, client.get("/contacts", params={"$filter": "onPremisesSyncEnabled eq true",
                                                                  "$count": "true"}, headers=EVENTUAL))
        assert {c["id"] for c in got} == contacts
    got = _all_pages(v1, v1.get("/users", params={"$filter": "onPremisesSyncEnabled eq true", "$top": "999",
                                                  "$select": "id,onPremisesSyncEnabled,onPremisesExtensionAttributes"}))
    assert {u["id"] for u in got} == users


def test_members_and_owners_carry_odata_type(sb: Sandbox, v1: httpx.Client) -> None:
    with sb.tenant.lock:
        parent = next(g for g in sb.tenant.entra_groups.values() if g.member_groups and g.members)
        owned = next(g for g in sb.tenant.entra_groups.values() if g.owners)
        expected = set(parent.members) | set(parent.member_groups) | set(parent.member_contacts)
    members = _all_pages(v1, v1.get(f"/groups/{parent.id}/members", params={"$top": "2", "$select": "id"}))
    assert {m["id"] for m in members} == expected
    types = {m["@odata.type"] for m in members}
    assert "#microsoft.graph.user" in types and "#microsoft.graph.group" in types
    assert all(set(m) == {"@odata.type", "id"} for m in members)
    owners = v1.get(f"/groups/{owned.id}/owners").json()["value"]
    assert {o["id"] for o in owners} == owned.owners
    assert v1.get("/groups/00000000-0000-0000-0000-000000000000/members").status_code == 404


# ----------------------------------------------------------------------------- onPremisesSyncBehavior
def test_group_sync_behavior_get_and_patch_on_v1(sb: Sandbox, v1: httpx.Client) -> None:
    g = _synced_group(sb, cloud_managed=False)
    got = v1.get(f"/groups/{g.id}/onPremisesSyncBehavior")
    assert got.status_code == 200 and got.json()["isCloudManaged"] is False and got.json()["id"] == g.id
    assert "onPremisesSyncBehavior" in got.json()["@odata.context"]
    patched = v1.patch(f"/groups/{g.id}/onPremisesSyncBehavior", json={"isCloudManaged": True})
    assert patched.status_code == 204 and patched.content == b""
    assert v1.get(f"/groups/{g.id}/onPremisesSyncBehavior").json()["isCloudManaged"] is True
    bad = v1.patch(f"/groups/{g.id}/onPremisesSyncBehavior", json={"isCloudManaged": "yes"})
    assert bad.status_code == 400


def test_contacts_and_users_sync_behavior_are_beta_only(sb: Sandbox, v1: httpx.Client, beta: httpx.Client) -> None:
    with sb.tenant.lock:
        contact = next(c for c in sb.tenant.entra_contacts.values() if c.sync_enabled and not c.cloud_managed)
        user = next(u for u in sb.tenant.entra_users.values() if u.sync_enabled and not u.cloud_managed)
    for kind, ident in (("contacts", contact.id), ("users", user.id)):
        on_v1 = v1.get(f"/{kind}/{ident}/onPremisesSyncBehavior")
        assert on_v1.status_code == 400 and "onPremisesSyncBehavior" in on_v1.json()["error"]["message"]
        assert beta.get(f"/{kind}/{ident}/onPremisesSyncBehavior").json()["isCloudManaged"] is False
        assert beta.patch(f"/{kind}/{ident}/onPremisesSyncBehavior", json={"isCloudManaged": True}).status_code == 204
        assert beta.get(f"/{kind}/{ident}/onPremisesSyncBehavior").json()["isCloudManaged"] is True


def test_cloud_only_object_refuses_the_flip(sb: Sandbox, v1: httpx.Client) -> None:
    with sb.tenant.lock:
        cloud = next(g for g in sb.tenant.entra_groups.values() if not g.sync_enabled)
    assert v1.get(f"/groups/{cloud.id}/onPremisesSyncBehavior").json()["isCloudManaged"] is False
    assert v1.patch(f"/groups/{cloud.id}/onPremisesSyncBehavior", json={"isCloudManaged": True}).status_code == 400


def test_token_without_the_permission_gets_403(sb: Sandbox) -> None:
    g = _synced_group(sb, cloud_managed=False)
    sb.knobs.graph_roles = ["Group.Read.All"]  # admin consent without the SOA permission
    try:
        with _client(sb) as client:  # a fresh msal app: a fresh token with the knob's roles
            assert client.get("/groups").status_code == 200
            for resp in (client.get(f"/groups/{g.id}/onPremisesSyncBehavior"),
                         client.patch(f"/groups/{g.id}/onPremisesSyncBehavior", json={"isCloudManaged": True})):
                assert resp.status_code == 403
                assert resp.json()["error"]["code"] == "Authorization_RequestDenied"
    finally:
        sb.knobs.graph_roles = None
    no_roles = sb.issue_token(audience=sb.info["graph_base_url"], roles=[])
    with _client(sb, token=no_roles) as client:
        assert client.get("/groups").status_code == 403
    with _client(sb, token=sb.issue_token(audience=sb.info["graph_base_url"], roles=[SOA_GROUP])) as client:
        assert client.patch(f"/groups/{g.id}/onPremisesSyncBehavior", json={"isCloudManaged": True}).status_code == 204
    assert sb.tenant.entra_groups[g.id].cloud_managed is True


# ----------------------------------------------------------------------------- $batch, throttling
def test_batch_runs_up_to_20_requests(sb: Sandbox, v1: httpx.Client) -> None:
    with sb.tenant.lock:
        ids = [g.id for g in sb.tenant.entra_groups.values() if g.sync_enabled and not g.cloud_managed][:3]
    reqs = [{"id": str(i), "method": "PATCH", "url": f"/groups/{gid}/onPremisesSyncBehavior",
             "headers": {"Content-Type": "application/json"}, "body": {"isCloudManaged": True}}
            for i, gid in enumerate(ids)]
    reqs.append({"id": "r", "method": "GET", "url": f"/groups/{ids[0]}/onPremisesSyncBehavior"})
    out = v1.post("/$batch", json={"requests": reqs})
    assert out.status_code == 200
    by_id = {r["id"]: r for r in out.json()["responses"]}
    assert all(by_id[str(i)]["status"] == 204 for i in range(len(ids)))
    assert by_id["r"]["status"] == 200 and by_id["r"]["body"]["isCloudManaged"] is True
    too_many = [{"id": str(i), "method": "GET", "url": "/groups?$top=1"} for i in range(21)]
    assert v1.post("/$batch", json={"requests": too_many}).status_code == 400


def test_write_budget_gives_429_with_retry_after(sb: Sandbox, v1: httpx.Client) -> None:
    with sb.tenant.lock:
        ids = [g.id for g in sb.tenant.entra_groups.values() if g.sync_enabled and not g.cloud_managed][:4]
    sb.knobs.write_budget = 1.0  # burst of one write, then one per second
    try:
        statuses = [v1.patch(f"/groups/{gid}/onPremisesSyncBehavior", json={"isCloudManaged": True}) for gid in ids]
    finally:
        sb.knobs.write_budget = None
    throttled = [r for r in statuses if r.status_code == 429]
    assert statuses[0].status_code == 204 and throttled
    assert all(int(r.headers["Retry-After"]) >= 1 and r.json()["error"]["code"] == "TooManyRequests"
               for r in throttled)
    sb.knobs.concurrency_limit = 0  # no request may run
    try:
        busy = v1.get("/groups")
    finally:
        sb.knobs.concurrency_limit = None
    assert busy.status_code == 429 and "Retry-After" in busy.headers


# ----------------------------------------------------------------------------- sync cycle
def test_cloud_managed_group_ignores_ad_until_handed_back(sb: Sandbox, v1: httpx.Client) -> None:
    t = sb.tenant
    g = _synced_group(sb, cloud_managed=False)
    assert v1.patch(f"/groups/{g.id}/onPremisesSyncBehavior", json={"isCloudManaged": True}).status_code == 204
    assert v1.patch(f"/groups/{g.id}", json={"displayName": "Cloud name"}).status_code == 204
    with t.lock:
        cloud_user = next(u.id for u in t.entra_users.values() if not u.sync_enabled and u.id not in g.members)
    ref = {"@odata.id": f"{sb.info['graph_base_url']}/v1.0/directoryObjects/{cloud_user}"}
    assert v1.post(f"/groups/{g.id}/members/$ref", json=ref).status_code == 204
    t.onprem_edit_group(g.ad_guid, display_name="AD name", ext={3: "From-AD"})
    assert sb.run_sync_cycle()["soa_blocked"] >= 1
    rec = v1.get(f"/groups/{g.id}").json()
    assert rec["displayName"] == "Cloud name" and rec["onPremisesExtensionAttributes"]["extensionAttribute3"] != "From-AD"
    # Hand it back: the next cycle makes AD's values win, and drops the cloud-only member.
    assert v1.patch(f"/groups/{g.id}/onPremisesSyncBehavior", json={"isCloudManaged": False}).status_code == 204
    sb.run_sync_cycle()
    rec = v1.get(f"/groups/{g.id}").json()
    assert rec["displayName"] == "AD name" and rec["onPremisesExtensionAttributes"]["extensionAttribute3"] == "From-AD"
    members = {m["id"] for m in _all_pages(v1, v1.get(f"/groups/{g.id}/members"))}
    assert cloud_user not in members


def test_synced_group_refuses_cloud_edits(sb: Sandbox, v1: httpx.Client) -> None:
    g = _synced_group(sb, cloud_managed=False)
    assert v1.patch(f"/groups/{g.id}", json={"displayName": "x"}).status_code == 400


def test_user_and_contact_soa_block_ad_changes(sb: Sandbox, beta: httpx.Client) -> None:
    t = sb.tenant
    with t.lock:
        contact = next(c for c in t.entra_contacts.values() if c.sync_enabled and not c.cloud_managed)
        user = next(u for u in t.entra_users.values() if u.sync_enabled and not u.cloud_managed)
    assert beta.patch(f"/contacts/{contact.id}/onPremisesSyncBehavior", json={"isCloudManaged": True}).status_code == 204
    assert beta.patch(f"/users/{user.id}/onPremisesSyncBehavior", json={"isCloudManaged": True}).status_code == 204
    t.onprem_edit_contact(contact.ad_guid, display_name="Contact from AD")
    t.onprem_edit_user(user.ad_guid, display_name="User from AD")
    sb.run_sync_cycle()
    assert t.entra_contacts[contact.id].display_name != "Contact from AD"
    assert t.entra_users[user.id].display_name != "User from AD"
    assert beta.patch(f"/contacts/{contact.id}/onPremisesSyncBehavior", json={"isCloudManaged": False}).status_code == 204
    assert beta.patch(f"/users/{user.id}/onPremisesSyncBehavior", json={"isCloudManaged": False}).status_code == 204
    sb.run_sync_cycle()
    assert t.entra_contacts[contact.id].display_name == "Contact from AD"
    assert t.entra_users[user.id].display_name == "User from AD"


# ----------------------------------------------------------------------------- generator, planted
def test_generator_is_deterministic_and_plants_every_code() -> None:
    a = generate_tenant(60, 43, groups=40)
    b = generate_tenant(60, 43, groups=40)
    assert a.planted_objects() == b.planted_objects()
    assert sorted(a.entra_groups) == sorted(b.entra_groups)
    truth = a.planted_objects()
    assert set(truth) == {"group", "contact", "user"}
    assert set(truth["group"]) == set(GROUP_CODES) and all(truth["group"][c] for c in GROUP_CODES)
    for kind in ("contact", "user"):
        assert set(truth[kind]) == set(OBJECT_CODES) and all(truth[kind][c] for c in OBJECT_CODES)
    assert len(truth["group"]["GROUP_NESTING_CYCLE"]) == 3
    even = generate_tenant(60, 42, groups=40)
    assert not even.planted_objects()["group"]["GROUP_NESTING_CYCLE"]
    assert generate_tenant(60, 42, groups=40, nesting_cycle=True).planted_objects()["group"]["GROUP_NESTING_CYCLE"]


def test_groups_knob_scales_and_mailbox_truth_is_unchanged() -> None:
    small = generate_tenant(60, 7, groups=12)
    big = generate_tenant(60, 7, groups=300)
    assert len(big.entra_groups) - len(small.entra_groups) == 288
    assert small.planted() == big.planted()  # groups draw from their own RNG


def test_planted_objects_survive_save_and_load(tmp_path: Any) -> None:
    from exocm.sandbox.tenant import Tenant

    t = generate_tenant(60, 43, groups=30)
    t.save(tmp_path / "s.sqlite")
    back = Tenant.load(tmp_path / "s.sqlite")
    assert back.planted_objects() == t.planted_objects()
    assert back.run_sync_cycle(full=True)["groups_updated"] == 0


def test_last_sync_time_agrees_with_recent_edits(sb: Sandbox, beta: httpx.Client) -> None:
    """onPremisesLastSyncDateTime follows the last AD change, so a reader without on-prem data
    sees the same recent edits as the planted truth; beta groups carry writebackConfiguration."""
    from datetime import datetime

    from exocm.sandbox.tenant import RECENT_WINDOW

    truth = sb.tenant.planted_objects()
    cutoff = sb.tenant.now() - RECENT_WINDOW
    for kind, path in (("group", "/groups"), ("contact", "/contacts"), ("user", "/users")):
        rows = _all_pages(beta, beta.get(path, params={"$top": "999", "$select": "id,onPremisesLastSyncDateTime,"
                                                       "onPremisesSyncEnabled,groupTypes,writebackConfiguration"}))
        recent = {r["id"] for r in rows if r["onPremisesSyncEnabled"] and r["onPremisesLastSyncDateTime"]
                  and datetime.fromisoformat(r["onPremisesLastSyncDateTime"].replace("Z", "+00:00")) >= cutoff}
        assert recent == set(truth[kind]["OBJECT_RECENT_ONPREM_EDIT"]), kind
        if kind == "group":
            unified = [r for r in rows if "Unified" in r["groupTypes"]]
            assert {r["writebackConfiguration"]["isEnabled"] for r in unified} == {True, False}


def test_cli_planted_prints_objects() -> None:
    import json

    from click.testing import CliRunner
    from exocm.cli.main import cli

    out = CliRunner().invoke(cli, ["sandbox", "planted", "--size", "60", "--seed", "43", "--groups", "20"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert "DUAL_MAILBOX" in data
    assert data["objects"] == generate_tenant(60, 43, groups=20).planted_objects()


# ----------------------------------------------------------------------------- on-prem data
def test_onprem_groups_and_contacts_over_winrm(make_sandbox: Callable[..., Sandbox]) -> None:
    """On-prem data shows the last AD edit (whenChanged) of groups and contacts; an on-prem edit
    moves it, so OBJECT_RECENT_ONPREM_EDIT can be read from on-prem data."""
    from exocm.core.bridge.psrp import PsrpBridge, PsrpEndpoint

    sbx = make_sandbox(size=40, seed=43, groups=16)
    info = sbx.info
    t = sbx.tenant
    g = next(x for x in t.ad_groups.values() if x.kind == "distribution")
    t.onprem_edit_group(g.guid, ext={4: "Edited"})
    with PsrpBridge(PsrpEndpoint(info["winrm_onprem_url"], username=info["winrm_username"],
                                 password=info["winrm_password"], ca_file=info["ca_file"]), info["tenant"]) as bridge:
        groups = bridge.invoke("Get-ADGroup", {"Filter": "*", "Properties": "whenChanged,member,extensionAttribute4"})
        dls = bridge.invoke("Get-DistributionGroup", {"ResultSize": "Unlimited"})
        contacts = bridge.invoke("Get-MailContact", {"ResultSize": "Unlimited"})
    assert {x["objectGUID"] for x in groups} == set(t.ad_groups)
    mine = next(x for x in groups if x["objectGUID"] == g.guid)
    assert mine["extensionAttribute4"] == "Edited" and mine["GroupCategory"] == "Distribution"
    assert {x["Guid"] for x in dls} == {x.guid for x in t.ad_groups.values() if x.kind != "security"}
    assert {x["Guid"] for x in contacts} == set(t.ad_contacts)
    t.run_sync_cycle()
    assert t.entra_groups[g.entra_id].id in t.planted_objects()["group"]["OBJECT_RECENT_ONPREM_EDIT"]


def test_graph_faults_knob(sb: Sandbox, v1: httpx.Client) -> None:
    sb.knobs.graph_faults = {"503": 1.0}
    try:
        unavailable = v1.get("/groups")
        sb.knobs.graph_faults = {"reset": 1.0}
        with pytest.raises(httpx.TransportError):
            v1.get("/groups")
    finally:
        sb.knobs.graph_faults = {}
    assert unavailable.status_code == 503 and unavailable.json()["error"]["code"] == "ServiceUnavailable"
    assert v1.get("/groups").status_code == 200


def test_state_file_from_before_groups_still_loads(tmp_path: Any) -> None:
    """A state file written before contacts and the new group/user fields existed loads with
    their defaults (and saves again)."""
    import json
    import sqlite3

    from exocm.sandbox.tenant import Tenant

    path = tmp_path / "old.sqlite"
    generate_tenant(40, 5, groups=0, contacts=0).save(path)
    con = sqlite3.connect(path)
    with con:
        con.execute("DROP TABLE ad_contacts")
        con.execute("DROP TABLE entra_contacts")
        for table, keep in (("ad_groups", 7), ("entra_groups", 8), ("entra_users", 12)):
            rows = con.execute(f"SELECT key, data FROM {table}").fetchall()
            con.executemany(f"UPDATE {table} SET data = ? WHERE key = ?",
                            [(json.dumps(json.loads(d)[:keep]), k) for k, d in rows])
    con.close()
    t = Tenant.load(path)
    assert len(t.entra_groups) == 3 and not t.entra_contacts
    assert not any(u.cloud_managed for u in t.entra_users.values())
    t.run_sync_cycle(full=True)
    t.save(path)
    assert len(Tenant.load(path).entra_groups) == 3


def test_group_member_of_lists_its_parents(sb: Sandbox, v1: httpx.Client) -> None:
    with sb.tenant.lock:
        parent = next(g for g in sb.tenant.entra_groups.values() if g.member_groups)
        child = sorted(parent.member_groups)[0]
        parents = {g.id for g in sb.tenant.entra_groups.values() if child in g.member_groups}
    got = _all_pages(v1, v1.get(f"/groups/{child}/memberOf", params={"$select": "id"}))
    assert {g["id"] for g in got} == parents and parent.id in parents
    transitive = _all_pages(v1, v1.get(f"/groups/{parent.id}/transitiveMembers", params={"$top": "999"}))
    assert {g["id"] for g in transitive} >= set(parent.member_groups) | set(parent.members)


def test_quick_user_records_equal_the_full_ones(sb: Sandbox, v1: httpx.Client) -> None:
    from exocm.sandbox.graph_directory import QUICK_USER, quick_user_record, user_record

    with sb.tenant.lock:
        for u in list(sb.tenant.entra_users.values())[:20]:
            full = user_record(sb.tenant, u)
            quick = quick_user_record(u)
            assert {k.lower() for k in quick} == QUICK_USER
            assert all(full[k] == v for k, v in quick.items()), u.id
