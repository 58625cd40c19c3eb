"""Graph-like operations on the tenant's Entra side: users, licenses, groups (what runbooks need).

Shapes follow Microsoft Graph v1.0 (`user`, `licenseDetails`, `group`, `assignLicense`).
Errors are CmdletError with error_type = Graph's error code and http_status = Graph's status,
so a Graph HTTP front can render `{"error": {"code": error_type, "message": message}}`.
License and membership changes take effect in EXO at the next sync cycle's provisioning pass.
"""
from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING

from exocm.sandbox import write_log
from exocm.sandbox.errors import CmdletError
from exocm.sandbox.licensing import SKUS
from exocm.sandbox.objects import EntraGroup, EntraUser, primary_smtp

if TYPE_CHECKING:
    from exocm.sandbox.tenant import Record, Tenant


def _not_found(ident: str) -> CmdletError:
    # Graph's 404 text (from Microsoft Graph).
    return CmdletError("Request_ResourceNotFound", "ObjectNotFound",
                       f"Resource '{ident}' does not exist or one of its queried reference-property objects "
                       "are not present.", http_status=404)


def find_user(t: Tenant, ident: str) -> EntraUser:
    """An Entra user by object id or userPrincipalName (case-insensitive)."""
    s = str(ident).strip()
    u = t.entra_users.get(s.lower())
    if u is None:
        uid = t.entra_upn.get(s.lower())
        u = t.entra_users.get(uid) if uid else None
    if u is None:
        raise _not_found(s)
    return u


def find_group(t: Tenant, ident: str) -> EntraGroup:
    """An Entra group by object id."""
    s = str(ident).strip().lower()
    g = t.entra_groups.get(s)
    if g is None:
        raise _not_found(ident)
    return g


def _immutable_id(ad_guid: str | None) -> str | None:
    if not ad_guid:
        return None
    return base64.b64encode(uuid.UUID(ad_guid).bytes_le).decode()


def user_record(t: Tenant, u: EntraUser) -> Record:
    """Graph `user` resource with the properties runbooks read."""
    r = t.exo.get(u.id)
    states: list[Record] = [{"skuId": s, "assignedByGroup": None, "state": "Active", "error": "None"}
                            for s in sorted(u.licenses)]
    for gid in sorted(u.groups):
        g = t.entra_groups.get(gid)
        if g is not None:
            states.extend({"skuId": s, "assignedByGroup": g.id, "state": "Active", "error": "None"}
                          for s in g.licenses)
    skus = sorted(t.licensed_skus(u))
    return {
        "id": u.id,
        "userPrincipalName": u.upn,
        "displayName": u.display_name,
        "givenName": u.given_name,
        "surname": u.surname,
        "mail": (primary_smtp(r.proxies) if r is not None else None) or None,
        "accountEnabled": u.account_enabled,
        "usageLocation": u.usage_location,
        "department": u.department or None,
        "onPremisesSyncEnabled": True if u.sync_enabled else None,  # Graph returns null for cloud-only users
        "onPremisesImmutableId": _immutable_id(u.ad_guid),
        "assignedLicenses": [{"skuId": s, "disabledPlans": []} for s in skus],
        "licenseAssignmentStates": states,
    }


def get_user(t: Tenant, ident: str) -> Record:
    """GET /users/{id}."""
    return user_record(t, find_user(t, ident))


def license_details(t: Tenant, ident: str) -> list[Record]:
    """GET /users/{id}/licenseDetails."""
    u = find_user(t, ident)
    out: list[Record] = []
    for s in sorted(t.licensed_skus(u)):
        sku = SKUS.get(s)
        if sku is None:
            continue
        out.append({
            "id": f"{u.id}_{s}",
            "skuId": s,
            "skuPartNumber": sku.part_number,
            "servicePlans": [{"servicePlanId": pid, "servicePlanName": name, "provisioningStatus": "Success",
                              "appliesTo": "User"} for pid, name in sku.service_plans],
        })
    return out


def assign_license(t: Tenant, ident: str, *, add: list[str], remove: list[str]) -> Record:
    """POST /users/{id}/assignLicense (direct assignments only)."""
    u = find_user(t, ident)
    for s in [*add, *remove]:
        if s.lower() not in SKUS:
            # Graph's text for an unknown SKU (wording approximate; sandbox-made).
            raise CmdletError("Request_BadRequest", "InvalidArgument",
                              f"License {s} does not correspond to a valid company License.", http_status=400)
    if add and not u.usage_location:
        raise CmdletError("Request_BadRequest", "InvalidArgument",
                          "License assignment cannot be done for user with invalid usage location.", http_status=400)
    for s in remove:
        s = s.lower()
        if s not in u.licenses:
            inherited = any(s in t.entra_groups[g].licenses for g in u.groups if g in t.entra_groups)
            if inherited:
                # Graph's text (from Microsoft Graph).
                raise CmdletError("Request_BadRequest", "InvalidOperation",
                                  "User license is inherited from a group membership and it cannot be removed "
                                  "directly from the user.", http_status=400)
            raise CmdletError("Request_BadRequest", "InvalidArgument",
                              "User does not have a corresponding license.", http_status=400)
    for s in add:
        u.licenses.add(s.lower())
    for s in remove:
        u.licenses.discard(s.lower())
    t.mark("entra_users", u.id)
    t.pending_exo.add(u.id)
    write_log.log_write("graph", "assignLicense", u.id, {"addLicenses": add, "removeLicenses": remove})
    return user_record(t, u)


def group_record(t: Tenant, g: EntraGroup) -> Record:
    """Graph `group` resource (incl. onPremisesSyncEnabled and assignedLicenses)."""
    return {
        "id": g.id,
        "displayName": g.display_name,
        "mailNickname": g.mail_nickname,
        "mailEnabled": False,
        "securityEnabled": g.security_enabled,
        "groupTypes": [],
        "onPremisesSyncEnabled": True if g.sync_enabled else None,
        "assignedLicenses": [{"skuId": s, "disabledPlans": []} for s in g.licenses],
    }


def get_group(t: Tenant, ident: str) -> Record:
    """GET /groups/{id}."""
    return group_record(t, find_group(t, ident))


def list_groups(t: Tenant) -> list[Record]:
    """GET /groups."""
    return [group_record(t, g) for g in t.entra_groups.values()]


def user_groups(t: Tenant, ident: str) -> list[Record]:
    """GET /users/{id}/memberOf (groups)."""
    u = find_user(t, ident)
    return [{"@odata.type": "#microsoft.graph.group", **group_record(t, t.entra_groups[g])}
            for g in sorted(u.groups) if g in t.entra_groups]


def group_members(t: Tenant, ident: str) -> list[Record]:
    """GET /groups/{id}/members (users)."""
    g = find_group(t, ident)
    out: list[Record] = []
    for uid in sorted(g.members):
        u = t.entra_users.get(uid)
        if u is not None:
            out.append({"@odata.type": "#microsoft.graph.user", "id": u.id, "userPrincipalName": u.upn,
                        "displayName": u.display_name})
    return out


def _synced_group_error() -> CmdletError:
    # Graph's text for writing an on-prem mastered object (from Microsoft Graph).
    return CmdletError("Request_BadRequest", "InvalidOperation",
                       "Unable to update the specified properties for on-premises mastered Directory Sync objects "
                       "or objects currently undergoing migration.", http_status=400)


def add_group_member(t: Tenant, group: str, user: str) -> None:
    """POST /groups/{id}/members/$ref."""
    g = find_group(t, group)
    u = find_user(t, user)
    if g.sync_enabled and not g.cloud_managed:  # a cloud-managed group is edited in the cloud
        raise _synced_group_error()
    if u.id in g.members:
        # Graph's text (from Microsoft Graph).
        raise CmdletError("Request_BadRequest", "InvalidArgument",
                          "One or more added object references already exist for the following modified "
                          "properties: 'members'.", http_status=400)
    g.members.add(u.id)
    u.groups.add(g.id)
    t.mark("entra_users", u.id)
    t.mark("entra_groups", g.id)
    t.pending_exo.add(u.id)
    write_log.log_write("graph", "addGroupMember", u.id, {"group": g.id})


def remove_group_member(t: Tenant, group: str, user: str) -> None:
    """DELETE /groups/{id}/members/{user}/$ref."""
    g = find_group(t, group)
    u = find_user(t, user)
    if g.sync_enabled and not g.cloud_managed:  # a cloud-managed group is edited in the cloud
        raise _synced_group_error()
    if u.id not in g.members:
        raise _not_found(user)
    g.members.discard(u.id)
    u.groups.discard(g.id)
    t.mark("entra_users", u.id)
    t.mark("entra_groups", g.id)
    t.pending_exo.add(u.id)
    write_log.log_write("graph", "removeGroupMember", u.id, {"group": g.id})
