"""Directory objects for object-level SOA through Graph: group, orgContact and user records,
their members and owners, and onPremisesSyncBehavior (issue 15).

Property names are Graph's (Microsoft Graph v1.0 `group`, `orgContact`, `user` resources):
`onPremisesSyncEnabled` is true for synced objects and null for cloud-only ones;
`onPremisesLastSyncDateTime` is ISO 8601 UTC with a trailing "Z". Records are built when a page
is read (RecordSet), so listing 50,000 groups stays cheap.

onPremisesSyncBehavior (Graph docs `onpremisessyncbehavior-get`, `onpremisessyncbehavior-update`,
docs/exchange-facts.md "Object-level SOA through Graph"): GET returns {id, isCloudManaged};
PATCH {"isCloudManaged": bool} answers 204. true blocks on-prem AD changes at the next sync
cycles; false hands the object back to AD: the next sync cycle overwrites the cloud values
with the AD values (sync.py). Sandbox-made: PATCH on an object that is not synced is refused
with 400 (the service's exact answer there is not documented).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from exocm.sandbox import write_log
from exocm.sandbox.errors import CmdletError
from exocm.sandbox.objects import AdUser, EntraContact, EntraGroup, EntraUser

if TYPE_CHECKING:
    from exocm.sandbox.tenant import Record, RecordSet, Tenant

#: The three kinds of onPremisesSyncBehavior, by Graph collection name.
SOA_COLLECTIONS = ("groups", "contacts", "users")


def iso(v: datetime | None) -> str | None:
    """Graph's DateTimeOffset text (UTC, seconds, trailing Z)."""
    return None if v is None else v.strftime("%Y-%m-%dT%H:%M:%SZ")


def not_found(ident: str) -> CmdletError:
    """Graph's 404 for an unknown object id (text from Microsoft Graph)."""
    return CmdletError("Request_ResourceNotFound", "ObjectNotFound",
                       f"Resource '{ident}' does not exist or one of its queried reference-property objects "
                       "are not present.", http_status=404)


def ext_attributes(ca: dict[int, str] | None) -> dict[str, str | None]:
    """onPremisesExtensionAttributes: extensionAttribute1..15, null when unset."""
    ca = ca or {}
    return {f"extensionAttribute{i}": ca.get(i) for i in range(1, 16)}


# ----------------------------------------------------------------------------- records
def group_record(t: Tenant, g: EntraGroup, beta: bool = False) -> Record:
    """Graph `group` with the properties SOA work reads; on beta also `writebackConfiguration`
    (group writeback of Microsoft 365 groups: isEnabled, onPremisesGroupType; a beta-only property).

    onPremisesExtensionAttributes on a group is the sandbox's assumption (the values synced from
    AD extensionAttribute1-15, shaped like the user property)."""
    ad = t.ad_groups.get(g.ad_guid) if g.ad_guid else None
    dynamic = "DynamicMembership" in g.group_types
    return {
        "id": g.id,
        "displayName": g.display_name,
        "description": g.description,
        "mail": g.mail,
        "mailEnabled": g.mail_enabled,
        "mailNickname": g.mail_nickname,
        "securityEnabled": g.security_enabled,
        "groupTypes": list(g.group_types),
        "membershipRule": g.membership_rule,
        "membershipRuleProcessingState": "On" if dynamic else None,
        "proxyAddresses": list(g.proxies),
        "onPremisesSyncEnabled": True if g.sync_enabled else None,
        "onPremisesLastSyncDateTime": iso(g.last_sync) if g.sync_enabled else None,
        "onPremisesSecurityIdentifier": g.sid if g.sync_enabled else None,
        "onPremisesSamAccountName": (g.sam or (ad.sam if ad else None)) if g.sync_enabled else None,
        "onPremisesDomainName": t.onprem_domain if g.sync_enabled else None,
        "onPremisesExtensionAttributes": ext_attributes(g.ca),
        "assignedLicenses": [{"skuId": s, "disabledPlans": []} for s in g.licenses],
    } | ({"writebackConfiguration": {
        "isEnabled": g.written_back if "Unified" in g.group_types else None,
        "onPremisesGroupType": "universalDistributionGroup" if g.written_back else None}} if beta else {})


def contact_record(t: Tenant, c: EntraContact) -> Record:
    """Graph `orgContact`."""
    return {
        "id": c.id,
        "displayName": c.display_name,
        "givenName": c.given_name or None,
        "surname": c.surname or None,
        "companyName": c.company or None,
        "mail": c.mail,
        "mailNickname": c.mail_nickname,
        "proxyAddresses": list(c.proxies),
        "onPremisesSyncEnabled": True if c.sync_enabled else None,
        "onPremisesLastSyncDateTime": iso(c.last_sync) if c.sync_enabled else None,
    }


def user_record(t: Tenant, u: EntraUser) -> Record:
    """Graph `user` for directory listings (the runbook fields plus the on-prem ones)."""
    from exocm.sandbox.graph_ops import user_record as base

    out = base(t, u)
    ad = t.ad_users.get(u.ad_guid) if u.ad_guid else None
    r = t.exo.get(u.id)
    out["proxyAddresses"] = list(r.proxies) if r is not None else []
    out["onPremisesSamAccountName"] = ad.sam if ad is not None else None
    out["onPremisesDomainName"] = t.onprem_domain if ad is not None else None
    out["onPremisesUserPrincipalName"] = ad.upn if ad is not None else None
    out["onPremisesLastSyncDateTime"] = iso(_user_last_sync(t, ad)) if u.sync_enabled else None
    out["onPremisesExtensionAttributes"] = ext_attributes(ad.ca if ad is not None else None)
    return out


def _user_last_sync(t: Tenant, ad: AdUser | None) -> datetime | None:
    """A synced user's onPremisesLastSyncDateTime: the export after its last AD change (two
    minutes later, the sandbox's choice), not later than the last sync cycle."""
    last: datetime | None = t.last_sync
    if ad is None:
        return last
    done = ad.when_changed + timedelta(minutes=2)
    return done if last is None or done <= last else last


def typed(kind: str, record: Record) -> Record:
    """A directoryObject record with its @odata.type first."""
    return {"@odata.type": f"#microsoft.graph.{kind}", **record}


# ----------------------------------------------------------------------------- lookups
def find_group(t: Tenant, ident: str) -> EntraGroup:
    """An Entra group by object id."""
    g = t.entra_groups.get(str(ident).strip().lower())
    if g is None:
        raise not_found(ident)
    return g


def find_contact(t: Tenant, ident: str) -> EntraContact:
    """An orgContact by object id."""
    c = t.entra_contacts.get(str(ident).strip().lower())
    if c is None:
        raise not_found(ident)
    return c


def find_user(t: Tenant, ident: str) -> EntraUser:
    """A user by object id or userPrincipalName."""
    from exocm.sandbox.graph_ops import find_user as base

    return base(t, ident)


# ----------------------------------------------------------------------------- collections
#: User properties the quick builder knows; a $select within them skips the license work.
QUICK_USER = frozenset({"id", "displayname", "userprincipalname", "onpremisessyncenabled", "accountenabled",
                        "givenname", "surname", "department"})


def quick_user_record(u: EntraUser) -> Record:
    """The user properties of QUICK_USER (same values as user_record), for a $select within them."""
    return {"id": u.id, "userPrincipalName": u.upn, "displayName": u.display_name, "givenName": u.given_name,
            "surname": u.surname, "accountEnabled": u.account_enabled, "department": u.department or None,
            "onPremisesSyncEnabled": True if u.sync_enabled else None}


def _user_builder(t: Tenant, wanted: set[str] | None) -> Callable[[EntraUser], Record]:
    if wanted and wanted <= QUICK_USER:
        return quick_user_record
    if wanted and wanted <= QUICK_USER | {"assignedlicenses"}:
        def with_licenses(u: EntraUser) -> Record:  # the readiness checks' read: no license-state work
            return {**quick_user_record(u), "assignedLicenses": [{"skuId": s, "disabledPlans": []}
                                                                 for s in sorted(t.licensed_skus(u))]}
        return with_licenses
    return lambda u: user_record(t, u)


def collection(t: Tenant, name: str, beta: bool = False,
               wanted: set[str] | None = None) -> tuple[list[Any], Callable[[Any], Record], str]:
    """(objects, record builder, OData resource name) of /groups, /contacts or /users."""
    if name == "groups":
        return list(t.entra_groups.values()), lambda g: group_record(t, g, beta), "Group"
    if name == "contacts":
        return list(t.entra_contacts.values()), lambda c: contact_record(t, c), "OrgContact"
    return list(t.entra_users.values()), _user_builder(t, wanted), "User"


def members(t: Tenant, group: str, relation: str, beta: bool = False,
            wanted: set[str] | None = None) -> tuple[list[Any], Callable[[Any], Record]]:
    """Objects of /groups/{id}/members, /owners, /memberOf or /transitiveMembers, and their record builder
    (users first, then groups, then contacts, each by id; every record carries @odata.type)."""
    g = find_group(t, group)
    objs: list[tuple[str, Any]] = []
    if relation == "owners":
        objs = [("user", t.entra_users[u]) for u in sorted(g.owners) if u in t.entra_users]
    elif relation == "memberOf":  # the groups this group is nested in (its parents)
        objs = [("group", p) for p in sorted(t.entra_groups.values(), key=lambda x: x.id) if g.id in p.member_groups]
    elif relation == "members":
        objs = [("user", t.entra_users[u]) for u in sorted(g.members) if u in t.entra_users]
        objs += [("group", t.entra_groups[x]) for x in sorted(g.member_groups) if x in t.entra_groups]
        objs += [("orgContact", t.entra_contacts[c]) for c in sorted(g.member_contacts) if c in t.entra_contacts]
    else:  # transitiveMembers: every member reached through nested groups, once (cycles end)
        seen_g = {g.id}
        todo = [g]
        users: set[str] = set()
        groups: set[str] = set()
        contacts: set[str] = set()
        while todo:
            x = todo.pop()
            users |= x.members
            contacts |= x.member_contacts
            for child in x.member_groups:
                if child in t.entra_groups:
                    groups.add(child)
                    if child not in seen_g:
                        seen_g.add(child)
                        todo.append(t.entra_groups[child])
        objs = [("user", t.entra_users[u]) for u in sorted(users) if u in t.entra_users]
        objs += [("group", t.entra_groups[x]) for x in sorted(groups)]
        objs += [("orgContact", t.entra_contacts[c]) for c in sorted(contacts) if c in t.entra_contacts]

    user_builder = _user_builder(t, wanted)

    def build(pair: tuple[str, Any]) -> Record:
        kind, o = pair
        if kind == "user":
            return typed(kind, user_builder(o))
        if kind == "group":
            return typed(kind, group_record(t, o, beta))
        return typed(kind, contact_record(t, o))

    return objs, build


# ----------------------------------------------------------------------------- SOA
def soa_object(t: Tenant, collection_name: str, ident: str) -> EntraGroup | EntraContact | EntraUser:
    """The object behind /{groups|contacts|users}/{id}/onPremisesSyncBehavior."""
    if collection_name == "groups":
        return find_group(t, ident)
    if collection_name == "contacts":
        return find_contact(t, ident)
    return find_user(t, ident)


def get_sync_behavior(t: Tenant, collection_name: str, ident: str) -> Record:
    """GET .../onPremisesSyncBehavior: {id, isCloudManaged} (false for a cloud-only object:
    sandbox-made, the docs do not say)."""
    o = soa_object(t, collection_name, ident)
    return {"id": o.id, "isCloudManaged": bool(o.cloud_managed and o.sync_enabled)}


def set_sync_behavior(t: Tenant, collection_name: str, ident: str, value: bool) -> None:
    """PATCH .../onPremisesSyncBehavior {"isCloudManaged": value}.

    false on a cloud-managed object queues its AD object for the next delta sync, which then
    overwrites the cloud values with AD's (the takeover)."""
    o = soa_object(t, collection_name, ident)
    if not o.sync_enabled:
        # The sandbox's own text: the documented operation is for objects synced from AD.
        raise CmdletError("Request_BadRequest", "InvalidOperation",
                          f"The object '{o.id}' is not synchronized from on-premises Active Directory; "
                          "its source of authority is already the cloud.", http_status=400)
    was = o.cloud_managed
    o.cloud_managed = value
    if collection_name == "groups":
        t.mark("entra_groups", o.id)
        if was and not value and o.ad_guid:
            t.pending_groups.add(o.ad_guid)
    elif collection_name == "contacts":
        t.mark("entra_contacts", o.id)
        if was and not value and o.ad_guid:
            t.pending_contacts.add(o.ad_guid)
    else:
        t.mark("entra_users", o.id)
        if was and not value and o.ad_guid:
            t.pending_ad.add(o.ad_guid)
    write_log.log_write("graph", "onPremisesSyncBehavior", o.id,
                        {"collection": collection_name, "isCloudManaged": value})


def edit_group(t: Tenant, ident: str, body: dict[str, Any]) -> None:
    """PATCH /groups/{id} (displayName, description): only for a group whose SOA is the cloud
    (cloud-only or cloud-managed); a group AD still manages is refused as Graph does."""
    g = find_group(t, ident)
    if g.sync_enabled and not g.cloud_managed:
        from exocm.sandbox.graph_ops import _synced_group_error

        raise _synced_group_error()
    for key in body:
        if key not in ("displayName", "description"):
            # Graph's text for an unknown or read-only property (wording approximate; sandbox-made).
            raise CmdletError("Request_BadRequest", "InvalidArgument",
                              f"Property '{key}' is read-only or unknown and cannot be set.", http_status=400)
    if "displayName" in body:
        g.display_name = str(body["displayName"])
    if "description" in body:
        g.description = None if body["description"] is None else str(body["description"])
    t.mark("entra_groups", g.id)
    write_log.log_write("graph", "updateGroup", g.id, dict(body))


def cloud_add_member(t: Tenant, group: str, member: str) -> None:
    """POST /groups/{id}/members/$ref for a cloud-managed or cloud-only group: a user, group or
    contact id (a synced, AD-managed group is refused as Graph does)."""
    from exocm.sandbox.graph_ops import _synced_group_error

    g = find_group(t, group)
    if g.sync_enabled and not g.cloud_managed:
        raise _synced_group_error()
    m = member.strip().lower()
    if m in t.entra_users:
        if m in g.members:
            raise _already_member()
        g.members.add(m)
        t.entra_users[m].groups.add(g.id)
        t.mark("entra_users", m)
        t.pending_exo.add(m)
    elif m in t.entra_groups:
        if m in g.member_groups:
            raise _already_member()
        g.member_groups.add(m)
    elif m in t.entra_contacts:
        if m in g.member_contacts:
            raise _already_member()
        g.member_contacts.add(m)
    else:
        raise not_found(member)
    t.mark("entra_groups", g.id)
    write_log.log_write("graph", "addGroupMember", m, {"group": g.id})


def _already_member() -> CmdletError:
    # Graph's text (from Microsoft Graph).
    return CmdletError("Request_BadRequest", "InvalidArgument",
                       "One or more added object references already exist for the following modified "
                       "properties: 'members'.", http_status=400)


def lazy(objs: list[Any], build: Callable[[Any], Record]) -> RecordSet:
    """A RecordSet over `objs` (records built when a page is read)."""
    from exocm.sandbox.tenant import RecordSet

    return RecordSet(objs, build)
