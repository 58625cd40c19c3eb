"""On-prem AD edits of groups, contacts and users for tests and the sandbox's own tools (the
sandbox stands in for an admin editing AD). Every edit bumps whenChanged (the last on-prem edit,
which OBJECT_RECENT_ONPREM_EDIT reads) and queues the object for the next delta sync.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from exocm.sandbox.objects import AdContact, AdGroup

if TYPE_CHECKING:
    from exocm.sandbox.tenant import Tenant


def _group(t: Tenant, ident: str) -> AdGroup:
    g = t.ad_groups.get(ident.lower())
    if g is None:
        hits = t.ad_group_index.find(ident)
        if len(hits) != 1:
            raise KeyError(f"no on-prem group {ident!r}")
        g = hits[0]
    return g


def edit_group(t: Tenant, ident: str, *, display_name: str | None = None, mail: str | None = None,
               add_members: Iterable[str] = (), remove_members: Iterable[str] = (),
               add_groups: Iterable[str] = (), remove_groups: Iterable[str] = (),
               ext: dict[int, str | None] | None = None) -> AdGroup:
    """Edit an AD group (guid, name or sAMAccountName): display name, mail (primary SMTP),
    user members (AdUser guids), nested groups (AdGroup guids), extensionAttributeN (None clears)."""
    g = _group(t, ident)
    if display_name is not None:
        g.display_name = display_name
    if mail is not None:
        g.mail = mail
        g.proxies = [f"SMTP:{mail}", *(p for p in g.proxies if not p.startswith("SMTP:"))]
    g.members |= set(add_members)
    g.members -= set(remove_members)
    g.member_groups |= set(add_groups)
    g.member_groups -= set(remove_groups)
    if ext:
        ca = dict(g.ca or {})
        for k, v in ext.items():
            if v is None:
                ca.pop(k, None)
            else:
                ca[k] = v
        g.ca = ca or None
    g.when_changed = t.now()
    t.pending_groups.add(g.guid)
    t.mark("ad_groups", g.guid)
    return g


def edit_contact(t: Tenant, guid: str, *, display_name: str | None = None, mail: str | None = None) -> AdContact:
    """Edit an AD mail contact (objectGUID): display name, mail."""
    c = t.ad_contacts[guid.lower()]
    if display_name is not None:
        c.display_name = display_name
    if mail is not None:
        c.mail = mail
        c.proxies = [f"SMTP:{mail}", *(p for p in c.proxies if not p.startswith("SMTP:"))]
    c.when_changed = t.now()
    t.pending_contacts.add(c.guid)
    t.mark("ad_contacts", c.guid)
    return c


def edit_user(t: Tenant, guid: str, *, display_name: str | None = None, department: str | None = None) -> None:
    """Edit an AD user (objectGUID): display name, department."""
    a = t.ad_users[guid.lower()]
    with t.editing_ad(a):
        if display_name is not None:
            a.display_name = display_name
        if department is not None:
            a.department = department
