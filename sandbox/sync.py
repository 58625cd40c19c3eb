"""One Entra Connect sync cycle plus the EXO provisioning pass that follows it.

Facts (docs/exchange-facts.md#mailbox-source-of-authority unless noted):
- Delta sync: only on-prem objects changed since the last cycle are exported (Entra Connect's
  delta import/export, Microsoft Learn "Entra Connect Sync: Scheduler"); `full=True` re-exports
  everything (a full sync cycle).
- On-prem changes flow to Entra and EXO for dir-synced objects, except the Exchange (writeback)
  attributes of cloud-managed mailboxes; those flow back to AD instead (writeback).
- Flipping IsExchangeCloudManaged back to False makes the next sync overwrite the cloud values
  with the on-prem values (no merge).
- A license with an Exchange plan on a user whose on-prem ExchangeGuid has not synced
  (no on-prem mailbox/RemoteMailbox ExchangeGuid) makes EXO provision its own mailbox: this is
  how a dual mailbox is born when on-prem later creates a mailbox.
- Removing the license disconnects the cloud mailbox: the object becomes a MailUser (User when
  on-prem has no mail attributes) with PreviousRecipientTypeDetails = UserMailbox; re-adding the
  license within the grace period reconnects that mailbox (Microsoft Learn, "Permanently clear
  previous mailbox info"). After Set-User -PermanentlyClearPreviousMailboxInfo the next sync makes
  the object a MailUser with the on-prem ExchangeGuid, and a license no longer provisions anything.
- Object-level SOA (Graph onPremisesSyncBehavior, docs/exchange-facts.md "Object-level SOA through
  Graph"): while a group, contact or user has isCloudManaged true, on-prem AD changes to it do
  not flow (counted as `soa_blocked`); once it is false again, the next cycle that exports the
  AD object (PATCH false queues it) overwrites the cloud values with AD's: name, mail, proxy
  addresses, extension attributes and the whole membership (cloud-only members are dropped).
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from exocm.sandbox.cloudsync import writeback_mode
from exocm.sandbox.objects import (
    EMPTY_GUID,
    MAILBOX_TYPES,
    ONPREM_LOCAL_MAILBOX_TYPES,
    REMOTE_TO_EXO,
    AdContact,
    AdGroup,
    AdUser,
    EntraContact,
    EntraGroup,
    EntraUser,
    ExoRecipient,
    primary_smtp,
)

if TYPE_CHECKING:
    from exocm.sandbox.tenant import Tenant

NON_USER_MAILBOXES = frozenset({"SharedMailbox", "RoomMailbox", "EquipmentMailbox"})


def exo_legacy_dn(alias: str, guid: str) -> str:
    """An Exchange Online LegacyExchangeDN (the /o=ExchangeLabs form EXO stamps)."""
    return (f"/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/"
            f"cn={guid.replace('-', '')}-{alias[:8]}")


def _guid(g: str | None) -> str | None:
    return None if not g or g == EMPTY_GUID else g


def run_sync_cycle(t: Tenant, *, full: bool = False) -> dict[str, int]:
    """Run one cycle; returns counts of what happened (keys are stable for callers)."""
    stats: Counter[str] = Counter()
    touched: set[str] = set()

    # 1. On-prem users -> Entra + EXO.
    ad_ids = list(t.ad_users) if full else sorted(t.pending_ad)
    t.pending_ad.clear()
    for gid in ad_ids:
        a = t.ad_users.get(gid)
        if a is None or not a.in_sync_scope:
            continue
        cm = t.entra_users.get(a.entra_id) if a.entra_id else None
        if cm is not None and cm.cloud_managed:
            stats["soa_blocked"] += 1  # the user's SOA is the cloud: AD changes stop here
            continue
        r = _sync_user(t, a, stats)
        touched.add(r.edoid)

    # 2. On-prem groups -> Entra groups (membership drives group-based licensing).
    group_ids = list(t.ad_groups) if full else sorted(t.pending_groups)
    t.pending_groups.clear()
    contact_ids = list(t.ad_contacts) if full else sorted(t.pending_contacts)
    t.pending_contacts.clear()
    for cid in contact_ids:  # contacts first: groups may list them as members
        c = t.ad_contacts.get(cid)
        if c is not None and c.in_sync_scope:
            _sync_contact(t, c, stats, full)
    for gid in group_ids:  # every new group gets its Entra object first (nesting points at them)
        g = t.ad_groups.get(gid)
        if g is not None and g.in_sync_scope and not (g.entra_id and g.entra_id in t.entra_groups):
            _create_group(t, g)
    for gid in group_ids:
        g = t.ad_groups.get(gid)
        if g is not None and g.in_sync_scope:
            touched |= _sync_group(t, g, stats, full)

    # 3. Cloud-side changes that need a sync: license/group changes, flip-back, cleared previous info.
    pending = sorted(t.pending_exo) if not full else list(t.exo)
    t.pending_exo.clear()
    for edoid in pending:
        r = t.exo.get(edoid)
        if r is None:
            continue
        a = t.ad_for(r)
        if a is not None and r.dir_synced and not r.cloud_managed:
            if _flow_exchange_attributes(t, a, r):
                stats["exo_updated"] += 1
        touched.add(edoid)

    # 4. EXO provisioning pass.
    for edoid in sorted(touched):
        r = t.exo.get(edoid)
        u = t.entra_users.get(edoid)
        if r is not None and u is not None:
            _provision(t, r, u, t.ad_for(r), stats)

    # 5. Writeback of cloud-managed mailboxes' Exchange attributes to AD (cloudsync.py: none without
    #    a Cloud Sync EXO-to-AD job; the Phase 2 list with one).
    wb = [e for e, r in t.exo.items() if r.cloud_managed] if full else sorted(t.pending_writeback)
    t.pending_writeback.clear()
    if writeback_mode(t) == "off":
        wb = []
    for edoid in wb:
        r = t.exo.get(edoid)
        if r is None or not r.cloud_managed or not r.dir_synced:
            continue
        a = t.ad_for(r)
        if a is not None and _write_back(t, r, a):
            stats["written_back"] += 1

    t.last_sync = t.now()
    t.sync_cycles += 1
    stats["cycle"] = t.sync_cycles
    for k in ("created", "exo_updated", "provisioned", "deprovisioned", "reconnected", "written_back",
              "groups_updated", "contacts_updated", "soa_blocked"):
        stats.setdefault(k, 0)
    return dict(stats)


def _sync_user(t: Tenant, a: AdUser, stats: Counter[str]) -> ExoRecipient:
    u = t.entra_users.get(a.entra_id) if a.entra_id else None
    if u is None:
        u = EntraUser(id=t.new_guid(), upn=a.upn, display_name=a.display_name, given_name=a.given_name,
                      surname=a.surname, sync_enabled=True, ad_guid=a.guid, account_enabled=a.enabled,
                      department=a.department)
        t.add_entra_user(u)
        with t.editing_ad(a, touch=False):
            a.entra_id = u.id  # msDS-ExternalDirectoryObjectId written back (no whenChanged bump)
        now = t.now()
        r = ExoRecipient(
            edoid=u.id, guid=t.new_guid(), exchange_guid=None, archive_guid=None, upn=a.upn, alias=a.alias,
            display_name=a.display_name, name=_unique_exo_name(t, a.cn), first_name=a.given_name,
            last_name=a.surname, proxies=[], legacy_dn=None, rtd="User", prev_rtd=None, dir_synced=True,
            cloud_managed=False, hidden=False, ca=None, eca=None, when_created=now, when_changed=now,
        )
        t.add_exo(r)
        stats["created"] += 1
    else:
        if u.upn.lower() != a.upn.lower():
            t.entra_upn.pop(u.upn.lower(), None)
            t.entra_upn[a.upn.lower()] = u.id
        new = (a.upn, a.display_name, a.given_name, a.surname, a.enabled, a.department)
        if new != (u.upn, u.display_name, u.given_name, u.surname, u.account_enabled, u.department):
            u.upn, u.display_name, u.given_name, u.surname, u.account_enabled, u.department = new
            t.mark("entra_users", u.id)
        r = t.exo[u.id]
        if (r.upn, r.display_name, r.first_name, r.last_name) != (a.upn, a.display_name, a.given_name, a.surname):
            with t.editing_exo(r):
                r.upn, r.display_name, r.first_name, r.last_name = a.upn, a.display_name, a.given_name, a.surname
            stats["exo_updated"] += 1
    if not r.cloud_managed and _flow_exchange_attributes(t, a, r):
        stats["exo_updated"] += 1
    return r


def _unique_exo_name(t: Tenant, cn: str) -> str:
    name = cn
    n = 1
    while any(x.name.lower() == name.lower() for x in t.exo_index.find(name)):
        n += 1
        name = f"{cn}{n}"
    return name


def _flow_exchange_attributes(t: Tenant, a: AdUser, r: ExoRecipient) -> bool:
    """Copy on-prem Exchange attributes to EXO (the caller checked the mailbox is not cloud-managed)."""
    ca = dict(a.ca) if a.ca else None
    eca = {k: list(v) for k, v in a.eca.items()} if a.eca else None
    proxies = r.proxies
    alias = r.alias
    exchange_guid = r.exchange_guid
    external = r.external_email
    legacy = r.legacy_dn
    if a.rtd is not None:
        proxies = list(a.proxies)
        alias = a.alias or alias
        if r.rtd not in MAILBOX_TYPES:
            if r.prev_rtd not in MAILBOX_TYPES:
                # msExchMailboxGuid syncs to the MailUser (a disconnected mailbox keeps its stale pointer).
                exchange_guid = _guid(a.exchange_guid)
            external = a.remote_routing or primary_smtp(a.proxies)
        if legacy is None and alias:
            legacy = exo_legacy_dn(alias, r.guid)
    elif r.rtd not in MAILBOX_TYPES:
        proxies = []
        external = None
    new = (ca, eca, proxies, alias, a.hidden if a.rtd is not None else r.hidden, exchange_guid, external, legacy)
    old = (r.ca, r.eca, r.proxies, r.alias, r.hidden, r.exchange_guid, r.external_email, r.legacy_dn)
    if new == old:
        return False
    with t.editing_exo(r):
        (r.ca, r.eca, r.proxies, r.alias, r.hidden, r.exchange_guid, r.external_email, r.legacy_dn) = new
    return True


def _create_group(t: Tenant, g: AdGroup) -> EntraGroup:
    eg = EntraGroup(id=t.new_guid(), display_name=g.display_name or g.name, mail_nickname=g.sam, sync_enabled=True,
                    ad_guid=g.guid, sid=g.sid, sam=g.sam)
    t.add_entra_group(eg)
    g.entra_id = eg.id
    t.mark("ad_groups", g.guid)
    return eg


def _sync_contact(t: Tenant, c: AdContact, stats: Counter[str], full: bool) -> None:
    ec = t.entra_contacts.get(c.entra_id) if c.entra_id else None
    if ec is None:
        ec = EntraContact(id=t.new_guid(), display_name=c.display_name, mail=c.mail, mail_nickname=c.name,
                          sync_enabled=True, ad_guid=c.guid)
        t.add_entra_contact(ec)
        c.entra_id = ec.id
        t.mark("ad_contacts", c.guid)
    elif ec.cloud_managed:
        stats["soa_blocked"] += 1
        return
    new = (c.display_name, c.mail, list(c.proxies), c.given_name, c.surname, c.company)
    if new != (ec.display_name, ec.mail, ec.proxies, ec.given_name, ec.surname, ec.company) or not full:
        # a delta cycle exports only what changed on-prem; a full cycle re-exports only differences
        ec.display_name, ec.mail, ec.proxies, ec.given_name, ec.surname, ec.company = new
        ec.last_sync = t.now()  # onPremisesLastSyncDateTime: the last export of the object
        stats["contacts_updated"] += 1
        t.mark("entra_contacts", ec.id)


def _sync_group(t: Tenant, g: AdGroup, stats: Counter[str], full: bool = False) -> set[str]:
    eg = t.entra_groups.get(g.entra_id) if g.entra_id else None
    if eg is None:
        eg = _create_group(t, g)
    if eg.cloud_managed:
        stats["soa_blocked"] += 1  # the group's SOA is the cloud: AD changes stop here
        return set()
    attrs = (g.display_name or g.name, g.mail, list(g.proxies), dict(g.ca) if g.ca else None,
             g.kind != "security", g.kind != "distribution", g.sam)
    nested = {t.ad_groups[x].entra_id for x in g.member_groups if x in t.ad_groups and t.ad_groups[x].entra_id}
    contacts = {t.ad_contacts[x].entra_id for x in g.member_contacts
                if x in t.ad_contacts and t.ad_contacts[x].entra_id}
    if attrs != (eg.display_name, eg.mail, eg.proxies, eg.ca, eg.mail_enabled, eg.security_enabled,
                 eg.mail_nickname) or nested != eg.member_groups or contacts != eg.member_contacts:
        (eg.display_name, eg.mail, eg.proxies, eg.ca, eg.mail_enabled, eg.security_enabled,
         eg.mail_nickname) = attrs
        eg.member_groups = {x for x in nested if x is not None}
        eg.member_contacts = {x for x in contacts if x is not None}
        stats["groups_updated"] += 1
        eg.last_sync = t.now()  # onPremisesLastSyncDateTime: the last export of the object
    elif not full:  # a delta cycle exports what changed on-prem (membership alone, say)
        eg.last_sync = t.now()
    t.mark("entra_groups", eg.id)
    want = {t.ad_users[m].entra_id for m in g.members if m in t.ad_users and t.ad_users[m].entra_id}
    want.discard(None)
    wanted: set[str] = {w for w in want if w is not None}
    added = wanted - eg.members
    removed = eg.members - wanted
    for uid in added:
        u = t.entra_users.get(uid)
        if u is not None:
            u.groups.add(eg.id)
            t.mark("entra_users", uid)
    for uid in removed:
        u = t.entra_users.get(uid)
        if u is not None:
            u.groups.discard(eg.id)
            t.mark("entra_users", uid)
    if added or removed:
        eg.members = set(wanted)
        t.mark("entra_groups", eg.id)
    if added or removed:
        stats["groups_updated"] += 1
    return added | removed


def _provision(t: Tenant, r: ExoRecipient, u: EntraUser, a: AdUser | None, stats: Counter[str]) -> None:
    """Decide the EXO recipient type from licenses and the on-prem state (see module docstring)."""
    onprem = a.rtd if a is not None else None
    mail_enabled_onprem = onprem is not None
    if r.rtd in NON_USER_MAILBOXES:
        return  # shared/room/equipment mailboxes need no license
    if onprem in REMOTE_TO_EXO and REMOTE_TO_EXO[onprem] in NON_USER_MAILBOXES and r.rtd not in MAILBOX_TYPES \
            and r.prev_rtd is None:
        _make_mailbox(t, r, a, REMOTE_TO_EXO[onprem], _guid(a.exchange_guid) if a else None)
        stats["provisioned"] += 1
        return
    licensed = t.has_exchange_license(u)
    if r.rtd == "UserMailbox":
        if not licensed:
            with t.editing_exo(r):
                r.disconnected_guid = r.exchange_guid
                r.disconnected_type = "UserMailbox"
                r.prev_rtd = "UserMailbox"
                r.archive_guid = None
                if mail_enabled_onprem and a is not None:
                    r.rtd = "MailUser"
                    r.external_email = a.remote_routing or primary_smtp(a.proxies)
                else:
                    r.rtd = "User"
                    r.proxies = []
                    r.external_email = None
            stats["deprovisioned"] += 1
        return
    # r is a MailUser or a User.
    if licensed and r.prev_rtd in MAILBOX_TYPES and r.disconnected_guid:
        with t.editing_exo(r):  # re-licensed within the grace period: the old mailbox comes back
            r.rtd = r.disconnected_type or "UserMailbox"
            r.exchange_guid = r.disconnected_guid
            r.prev_rtd = None
            r.disconnected_guid = r.disconnected_type = None
            r.external_email = None
        stats["reconnected"] += 1
        return
    synced_guid = _guid(a.exchange_guid) if a is not None else None
    if licensed and r.prev_rtd is None and onprem not in ONPREM_LOCAL_MAILBOX_TYPES:
        if onprem in REMOTE_TO_EXO or synced_guid is None:
            # Remote mailbox: EXO provisions it with the synced ExchangeGuid; no ExchangeGuid synced:
            # EXO makes its own mailbox (the dual-mailbox precursor when on-prem creates one later).
            _make_mailbox(t, r, a, "UserMailbox", synced_guid)
            stats["provisioned"] += 1
            return
    desired = "MailUser" if mail_enabled_onprem else ("User" if a is not None else r.rtd)
    if r.rtd != desired:
        with t.editing_exo(r):
            r.rtd = desired
            if desired == "User":
                r.proxies = []
                r.external_email = None


def _make_mailbox(t: Tenant, r: ExoRecipient, a: AdUser | None, rtd: str, guid: str | None) -> None:
    with t.editing_exo(r):
        r.rtd = rtd
        r.exchange_guid = guid or t.new_guid()
        r.prev_rtd = None
        r.external_email = None
        r.alias = r.alias or (a.alias if a is not None and a.alias else r.upn.split("@")[0])
        if not r.proxies:
            r.proxies = [f"SMTP:{r.upn}", f"smtp:{r.alias}@{t.domain}"]
        if r.legacy_dn is None:
            r.legacy_dn = exo_legacy_dn(r.alias, r.guid)
        if r.dir_synced:
            # The tenant default applies to mailboxes created from now on (docs/exchange-facts.md#tenant-wide-default).
            r.cloud_managed = bool(t.org_config.get("ExchangeAttributesCloudManagedByDefault"))


def write_back_now(t: Tenant, r: ExoRecipient) -> bool:
    """Write one cloud-managed mailbox's attributes back to AD now (a Cloud Sync cycle; cloudsync.py)."""
    a = t.ad_for(r)
    if a is None or not r.cloud_managed or not r.dir_synced:
        return False
    t.pending_writeback.discard(r.edoid)
    return _write_back(t, r, a)


def _write_back(t: Tenant, r: ExoRecipient, a: AdUser) -> bool:
    """Write a cloud-managed mailbox's Exchange attributes back to AD; True when AD changed."""
    ca = dict(r.ca) if r.ca else None
    eca = {k: list(v) for k, v in r.eca.items()} if r.eca else None
    proxies = list(r.proxies) if a.rtd is not None else a.proxies
    # Phase 2 writes back no msExchHideFromAddressLists (cloudsync.py); the default sandbox does.
    hidden = a.hidden if writeback_mode(t) == "phase2" else r.hidden
    if (ca, eca, proxies, hidden) == (a.ca, a.eca, a.proxies, a.hidden):
        return False
    with t.editing_ad(a, touch=False):
        a.ca, a.eca, a.proxies, a.hidden = ca, eca, proxies, hidden
    a.when_changed = t.now()  # AD records the write; it is not queued back to the cloud
    return True
