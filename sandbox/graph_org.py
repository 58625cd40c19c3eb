"""Graph reads of the organisation for the readiness checks: the `organization` resource
(onPremisesSyncEnabled), `subscribedSkus`, a group's member `$count`, and Cloud Sync's provisioning
agents (cloudsync.py; the service principal, its jobs and their schema are served by graph.py).

Shapes follow Microsoft Graph v1.0 / beta: collections are `{"value": [...]}`; `$count` segments
answer text/plain and need `ConsistencyLevel: eventual` (Graph "Advanced query capabilities");
`onPremisesPublishingProfiles` is beta only.
"""
from __future__ import annotations

import re
from typing import Any

from exocm.sandbox import cloudsync
from exocm.sandbox.errors import CmdletError
from exocm.sandbox.licensing import SKUS

Record = dict[str, Any]
#: The route heads this module answers.
HEADS = ("organization", "subscribedSkus", "onPremisesPublishingProfiles")


def _not_found(ident: str) -> CmdletError:
    return CmdletError("Request_ResourceNotFound", "ObjectNotFound",
                       f"Resource '{ident}' does not exist or one of its queried reference-property objects "
                       "are not present.", http_status=404)


#: The readiness read of synced users by UPN prefix, answered from first-character buckets (an index
#: like the EXO filter indexes: a partition costs its result, not a scan of every user).
_SYNCED_PREFIX = re.compile(r"^\s*onPremisesSyncEnabled\s+eq\s+true\s+and\s+startswith\(\s*userPrincipalName\s*,"
                            r"\s*'([^']+)'\s*\)\s*$", re.IGNORECASE)


def synced_users_by_prefix(t: Any, filt: str) -> list[Any] | None:
    """Synced users whose UPN starts with the filter's prefix, or None when `filt` is not that query."""
    match = _SYNCED_PREFIX.match(filt)
    if match is None:
        return None
    prefix = match.group(1).lower()
    key = (len(t.entra_users), t.guid_counter)
    cached = getattr(t, "graph_user_buckets", None)
    if cached is None or cached[0] != key:
        buckets: dict[str, list[Any]] = {}
        for u in t.entra_users.values():
            if u.sync_enabled:
                buckets.setdefault(u.upn[:1].lower(), []).append(u)
        cached = (key, buckets)
        t.graph_user_buckets = cached
    return [u for u in cached[1].get(prefix[0], []) if u.upn.lower().startswith(prefix)]


def member_count(t: Any, group: str, consistency: str) -> str:
    """GET /groups/{id}/members/$count (or transitiveMembers): the number, as text."""
    if consistency.strip().lower() != "eventual":
        # Graph docs, advanced queries: "$count is not currently supported." without the header.
        raise CmdletError("Request_BadRequest", "InvalidArgument", "$count is not currently supported.",
                          http_status=400)
    g = t.entra_groups.get(group.lower())
    if g is None:
        raise _not_found(group)
    return str(len(g.members))


def route(t: Any, version: str, route: list[str], query: dict[str, str]) -> Record | None:
    """Answer an organisation read, or None when the path is not one of HEADS."""
    head = route[0]
    if head == "organization" and len(route) == 1:
        sync = bool(t.readiness.dirsync_enabled)
        return {"value": [{"id": t.tenant_id, "displayName": t.org_name,
                           "onPremisesSyncEnabled": True if sync else None,
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
    if head == "onPremisesPublishingProfiles" and route[1:] == ["provisioning", "agents"]:
        if version != "beta":
            raise CmdletError("BadRequest", "InvalidArgument",
                              "Resource not found for the segment 'onPremisesPublishingProfiles'.", http_status=400)
        return {"value": cloudsync.agents(t)}
    return None
