"""Ground truth of the object-level SOA findings (groups, contacts, users; issue 15).

`planted_objects(t)` computes, from the tenant's current state, the Entra object ids (Graph
`id`) each finding code should flag. `exocm sandbox planted` prints it under "objects":

    {"group":   {"GROUP_CHILD_NOT_CONVERTED": [ids], "GROUP_CLOUD_ONLY_MEMBERS": [ids],
                 "GROUP_EXTENSION_ATTRIBUTES": [ids], "GROUP_UNSUPPORTED": [ids],
                 "GROUP_LICENSING": [ids], "GROUP_NESTING_CYCLE": [ids],
                 "OBJECT_RECENT_ONPREM_EDIT": [ids], "OBJECT_ALREADY_CLOUD_MANAGED": [ids],
                 "OBJECT_NOT_SYNCED": [ids]},
     "contact": {"OBJECT_RECENT_ONPREM_EDIT": [ids], "OBJECT_ALREADY_CLOUD_MANAGED": [ids],
                 "OBJECT_NOT_SYNCED": [ids]},
     "user":    {"OBJECT_RECENT_ONPREM_EDIT": [ids], "OBJECT_ALREADY_CLOUD_MANAGED": [ids],
                 "OBJECT_NOT_SYNCED": [ids]}}

Every code key is present (an empty list when nothing is flagged); ids are sorted. Codes are
independent predicates, so one object may carry several (a dynamic group is GROUP_UNSUPPORTED
and OBJECT_NOT_SYNCED). "Synced" means onPremisesSyncEnabled true; "cloud-managed" means
onPremisesSyncBehavior.isCloudManaged true. Definitions:
- GROUP_CHILD_NOT_CONVERTED: a synced group, not cloud-managed, with at least one member group
  that is synced and not cloud-managed (children are converted first; docs/exchange-facts.md).
- GROUP_CLOUD_ONLY_MEMBERS: a synced group with a member (user, group or contact) or an owner
  that is not synced (AD does not know it: taking the group back to AD drops it).
- GROUP_EXTENSION_ATTRIBUTES: a synced group with any of extensionAttribute1-15 set
  (onPremisesExtensionAttributes; not supported on a converted group).
- GROUP_UNSUPPORTED: a dynamic group (groupTypes has "DynamicMembership"), or a Microsoft 365
  group (groupTypes has "Unified") that is not written back to AD.
- GROUP_LICENSING: a synced group with assignedLicenses (group-based licensing).
- GROUP_NESTING_CYCLE: a group on a cycle of the member-group graph (a group nested in itself,
  directly or through others).
- OBJECT_RECENT_ONPREM_EDIT: a synced object whose on-prem AD object changed (whenChanged)
  within RECENT_WINDOW (one sync interval of 30 min plus 24 h) of the tenant clock, the same
  window as the mailbox code RECENT_ONPREM_CHANGE.
- OBJECT_ALREADY_CLOUD_MANAGED: a synced object that is cloud-managed.
- OBJECT_NOT_SYNCED: an object that is not synced (cloud-only).
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from exocm.sandbox.objects import EntraGroup

if TYPE_CHECKING:
    from exocm.sandbox.tenant import Tenant

GROUP_CODES = (
    "GROUP_CHILD_NOT_CONVERTED",
    "GROUP_CLOUD_ONLY_MEMBERS",
    "GROUP_EXTENSION_ATTRIBUTES",
    "GROUP_UNSUPPORTED",
    "GROUP_LICENSING",
    "GROUP_NESTING_CYCLE",
    "OBJECT_RECENT_ONPREM_EDIT",
    "OBJECT_ALREADY_CLOUD_MANAGED",
    "OBJECT_NOT_SYNCED",
)
OBJECT_CODES = ("OBJECT_RECENT_ONPREM_EDIT", "OBJECT_ALREADY_CLOUD_MANAGED", "OBJECT_NOT_SYNCED")


def is_unsupported(g: EntraGroup) -> bool:
    """Dynamic groups and Microsoft 365 groups not written back cannot change their SOA."""
    return "DynamicMembership" in g.group_types or ("Unified" in g.group_types and not g.written_back)


def cycle_members(t: Tenant) -> set[str]:
    """Ids of the groups on a nesting cycle (strongly connected components of size > 1, or a
    group that contains itself); iterative Tarjan, so 50,000 nested groups need no recursion."""
    groups = t.entra_groups
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: set[str] = set()
    counter = 0
    for root in groups:
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(groups[root].member_groups))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            if children:
                child = children.pop()
                if child not in groups:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(groups[child].member_groups)))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    component.append(x)
                    if x == node:
                        break
                if len(component) > 1 or node in groups[node].member_groups:
                    out.update(component)
    return out


def _group_codes(t: Tenant, cutoff: datetime) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {c: [] for c in GROUP_CODES}
    groups = t.entra_groups
    users = t.entra_users
    contacts = t.entra_contacts
    for g in groups.values():
        if is_unsupported(g):
            out["GROUP_UNSUPPORTED"].append(g.id)
        if not g.sync_enabled:
            out["OBJECT_NOT_SYNCED"].append(g.id)
            continue
        if g.cloud_managed:
            out["OBJECT_ALREADY_CLOUD_MANAGED"].append(g.id)
        elif any(c in groups and groups[c].sync_enabled and not groups[c].cloud_managed for c in g.member_groups):
            out["GROUP_CHILD_NOT_CONVERTED"].append(g.id)
        if (any(u in users and not users[u].sync_enabled for u in g.members)
                or any(u in users and not users[u].sync_enabled for u in g.owners)
                or any(c in groups and not groups[c].sync_enabled for c in g.member_groups)
                or any(c in contacts and not contacts[c].sync_enabled for c in g.member_contacts)):
            out["GROUP_CLOUD_ONLY_MEMBERS"].append(g.id)
        if g.ca:
            out["GROUP_EXTENSION_ATTRIBUTES"].append(g.id)
        if g.licenses:
            out["GROUP_LICENSING"].append(g.id)
        ad = t.ad_groups.get(g.ad_guid) if g.ad_guid else None
        if ad is not None and ad.when_changed is not None and ad.when_changed >= cutoff:
            out["OBJECT_RECENT_ONPREM_EDIT"].append(g.id)
    out["GROUP_NESTING_CYCLE"] = list(cycle_members(t))
    return out


def planted_objects(t: Tenant) -> dict[str, dict[str, list[str]]]:
    """The ids each object-level finding code should flag (see the module docstring)."""
    from exocm.sandbox.tenant import RECENT_WINDOW

    cutoff = t.now() - RECENT_WINDOW
    groups = _group_codes(t, cutoff)
    contact: dict[str, list[str]] = {c: [] for c in OBJECT_CODES}
    for c in t.entra_contacts.values():
        if not c.sync_enabled:
            contact["OBJECT_NOT_SYNCED"].append(c.id)
            continue
        if c.cloud_managed:
            contact["OBJECT_ALREADY_CLOUD_MANAGED"].append(c.id)
        ac = t.ad_contacts.get(c.ad_guid) if c.ad_guid else None
        if ac is not None and ac.when_changed is not None and ac.when_changed >= cutoff:
            contact["OBJECT_RECENT_ONPREM_EDIT"].append(c.id)
    user: dict[str, list[str]] = {c: [] for c in OBJECT_CODES}
    for u in t.entra_users.values():
        if not u.sync_enabled:
            user["OBJECT_NOT_SYNCED"].append(u.id)
            continue
        if u.cloud_managed:
            user["OBJECT_ALREADY_CLOUD_MANAGED"].append(u.id)
        au = t.ad_users.get(u.ad_guid) if u.ad_guid else None
        if au is not None and au.when_changed >= cutoff:
            user["OBJECT_RECENT_ONPREM_EDIT"].append(u.id)
    return {kind: {code: sorted(ids) for code, ids in codes.items()}
            for kind, codes in (("group", groups), ("contact", contact), ("user", user))}
