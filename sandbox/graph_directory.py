"""Graph reads of the directory as a whole, for the readiness checks: the `organization` resource
(onPremisesSyncEnabled), `subscribedSkus`, the list of users (paged), synced groups and their
member counts, and the Cloud Sync configuration (cloudsync.py).

Shapes follow Microsoft Graph: collections are `{"value": [...], "@odata.nextLink": ...}` with
`$top` up to 999 for users; `$count` segments answer text/plain with `ConsistencyLevel: eventual`
(Graph "Advanced query capabilities"); `onPremisesPublishingProfiles` is beta only. Only the
`$filter` expressions readiness sends are understood; another one is refused with Graph's
"Unsupported query" code (the text is the sandbox's own).
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from exocm.sandbox import cloudsync
from exocm.sandbox.errors import CmdletError
from exocm.sandbox.graph_ops import group_record, user_record
from exocm.sandbox.licensing import SKUS

Record = dict[str, Any]
_SYNCED = re.compile(r"^\s*onPremisesSyncEnabled\s+eq\s+true\s*$", re.IGNORECASE)
#: `onPremisesSyncEnabled eq true and startswith(userPrincipalName,'x')` (an advanced query: Graph wants
#: ConsistencyLevel: eventual and $count=true with it; startswith is case-insensitive).
_SYNCED_PREFIX = re.compile(r"^\s*onPremisesSyncEnabled\s+eq\s+true\s+and\s+startswith\(\s*userPrincipalName\s*,"
                            r"\s*'((?:[^']|'')*)'\s*\)\s*$", re.IGNORECASE)
_TAG = re.compile(r"^\s*tags/any\(\s*(\w+)\s*:\s*\1\s+eq\s+'([^']*)'\s*\)\s*$", re.IGNORECASE)
_MAX_TOP = 999


def _bad_query(text: str) -> CmdletError:
    return CmdletError("Request_UnsupportedQuery", "InvalidArgument", text, http_status=400)


def _select(records: list[Record], select: str | None) -> list[Record]:
    if not select:
        return records
    names = {n.strip().lower() for n in select.split(",") if n.strip()}
    return [{k: v for k, v in r.items() if k.lower() in names or k == "id"} for r in records]


def _page(objs: list[Any], build: Any, query: dict[str, str], link: str) -> Record:
    """One page of `objs` (records built for that page only), with a nextLink when more follow.
    The skiptoken is the sandbox's own (an offset); Graph's is opaque."""
    try:
        top = min(_MAX_TOP, max(1, int(query.get("$top", "100"))))
        skip = int(query.get("$skiptoken", "0"))
    except ValueError:
        raise _bad_query("Invalid $top or $skiptoken value.") from None
    page = _select([build(o) for o in objs[skip: skip + top]], query.get("$select"))
    out: Record = {"value": page}
    if skip + top < len(objs):
        rest = {k: v for k, v in query.items() if k != "$skiptoken"}
        rest["$skiptoken"] = str(skip + top)
        out["@odata.nextLink"] = link + "?" + "&".join(f"{quote(k, safe='$')}={quote(v, safe='')}"
                                                          for k, v in rest.items())
    return out


def _synced_by_first_char(t: Any) -> dict[str, list[Any]]:
    """Synced users bucketed by the first character of their UPN (lower-case); rebuilt when the user
    set changes (count and guid counter), so a prefix query costs its result, not a scan."""
    key = ("graph_synced_by_char", len(t.entra_users), t.guid_counter)
    cached = getattr(t, "graph_user_buckets", None)
    if cached is not None and cached[0] == key:
        return cached[1]  # type: ignore[no-any-return]
    buckets: dict[str, list[Any]] = {}
    for u in t.entra_users.values():
        if u.sync_enabled:
            buckets.setdefault(u.upn[:1].lower(), []).append(u)
    t.graph_user_buckets = (key, buckets)
    return buckets


def _users(t: Any, filt: str | None) -> list[Any]:
    if not filt:
        return list(t.entra_users.values())
    if _SYNCED.match(filt):
        return [u for bucket in _synced_by_first_char(t).values() for u in bucket]
    match = _SYNCED_PREFIX.match(filt)
    if match:
        prefix = match.group(1).replace("''", "'").lower()
        if not prefix:
            return [u for bucket in _synced_by_first_char(t).values() for u in bucket]
        bucket = _synced_by_first_char(t).get(prefix[0], [])
        return [u for u in bucket if u.upn.lower().startswith(prefix)] if len(prefix) > 1 else list(bucket)
    raise _bad_query(f"Unsupported or invalid query filter clause specified: {filt!r}.")


#: Properties a listed user record can be built from cheaply (a $select within them skips the rest).
_LIGHT = frozenset({"id", "userprincipalname", "displayname", "onpremisessyncenabled", "assignedlicenses",
                    "accountenabled"})


def _user_builder(t: Any, select: str | None) -> Any:
    names = {n.strip().lower() for n in (select or "").split(",") if n.strip()}
    if not names or not names <= _LIGHT:
        return lambda u: user_record(t, u)

    def light(u: Any) -> Record:
        return {"id": u.id, "userPrincipalName": u.upn, "displayName": u.display_name,
                "accountEnabled": u.account_enabled,
                "onPremisesSyncEnabled": True if u.sync_enabled else None,
                "assignedLicenses": [{"skuId": s, "disabledPlans": []} for s in sorted(t.licensed_skus(u))]}
    return light


def route(t: Any, version: str, route: list[str], query: dict[str, str], link: str) -> Record | str | None:
    """Answer a directory read (a dict, or a str for `$count`), or None when the path is not one."""
    head = route[0]
    if head == "organization" and len(route) == 1:
        sync = bool(t.readiness.dirsync_enabled)
        return {"value": [{"id": t.tenant_id, "displayName": t.org_name, "onPremisesSyncEnabled": True if sync else None,
                           "onPremisesLastSyncDateTime": (t.last_sync.strftime("%Y-%m-%dT%H:%M:%SZ")
                                                          if sync and t.last_sync else None),
                           "verifiedDomains": [{"name": t.domain, "isInitial": True, "type": "Managed"},
                                               {"name": t.onprem_domain, "isInitial": False, "type": "Managed"}]}]}
    if head == "subscribedSkus" and len(route) == 1:
        return {"value": [{"id": f"{t.tenant_id}_{s.sku_id}", "skuId": s.sku_id, "skuPartNumber": s.part_number,
                           "capabilityStatus": "Enabled",
                           "servicePlans": [{"servicePlanId": pid, "servicePlanName": name,
                                             "provisioningStatus": "Success", "appliesTo": "User"}
                                            for pid, name in s.service_plans]} for s in SKUS.values()]}
    if head == "users" and len(route) in (1, 2) and route[-1] in ("users", "$count"):
        users = _users(t, query.get("$filter"))
        if route[-1] == "$count":
            return str(len(users))
        return _page(users, _user_builder(t, query.get("$select")), query, link)
    if head == "groups" and len(route) == 1:
        filt = query.get("$filter")
        if filt and not _SYNCED.match(filt):
            raise _bad_query(f"Unsupported or invalid query filter clause specified: {filt!r}.")
        groups = [g for g in t.entra_groups.values() if not filt or g.sync_enabled]
        return _page(groups, lambda g: group_record(t, g), query, link)
    if head == "groups" and len(route) == 4 and route[2] in ("members", "transitiveMembers") and route[3] == "$count":
        g = t.entra_groups.get(route[1].lower())
        if g is None:
            raise CmdletError("Request_ResourceNotFound", "ObjectNotFound",
                              f"Resource '{route[1]}' does not exist or one of its queried reference-property "
                              "objects are not present.", http_status=404)
        return str(len(g.members))
    cs = t.readiness.cloud_sync
    if head == "servicePrincipals" and len(route) == 1:
        filt = query.get("$filter") or ""
        match = _TAG.match(filt)
        sps = cloudsync.service_principals(cs, t.seed)
        if filt and not match:
            raise _bad_query(f"Unsupported or invalid query filter clause specified: {filt!r}.")
        if match:
            sps = [sp for sp in sps if match.group(2) in sp["tags"]]
        return {"value": sps}
    if head == "servicePrincipals" and len(route) >= 4 and route[2:4] == ["synchronization", "jobs"]:
        sps = {sp["id"] for sp in cloudsync.service_principals(cs, t.seed)}
        if route[1] not in sps:
            raise CmdletError("Request_ResourceNotFound", "ObjectNotFound",
                              f"Resource '{route[1]}' does not exist or one of its queried reference-property "
                              "objects are not present.", http_status=404)
        if len(route) == 4:
            return {"value": cloudsync.jobs(cs, t.seed)}
        if len(route) == 6 and route[5] == "schema":
            return cloudsync.job_schema(cs)
    if head == "onPremisesPublishingProfiles" and route[1:] == ["provisioning", "agents"]:
        if version != "beta":
            raise CmdletError("BadRequest", "InvalidArgument",
                              "Resource not found for the segment 'onPremisesPublishingProfiles'.", http_status=400)
        return {"value": cloudsync.agents(cs, t.seed)}
    return None
