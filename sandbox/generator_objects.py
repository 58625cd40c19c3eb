"""Seeded groups and contacts for object-level SOA (issue 15), added after the users.

`add_objects(t, seed, now, groups=N, contacts=M, nesting_cycle=...)` builds on-prem AD groups and
contacts and their Entra twins in the state a finished sync cycle leaves them, plus cloud-only
groups and contacts, and plants what object_findings.py defines (every code at least once when
there are 12 groups or more; GROUP_NESTING_CYCLE only with `nesting_cycle`). It draws from its
own `random.Random(f"objects:{seed}")`, so the users, mailboxes and their planted findings are
the same as before groups existed. Default counts: size // 5 groups (at least 12), groups // 3
contacts (at least 6). 50,000 groups take a few seconds.

Group mix: dynamic 4 % (groupTypes DynamicMembership, a membershipRule), Microsoft 365 written
back 3 % and not written back 3 % (groupTypes Unified), cloud-only security 5 %, the rest synced
from AD (security 40 %, distribution list 40 %, mail-enabled security 20 %). Among synced
groups: 5 % already cloud-managed (half of them with a cloud-only member added since), 8 % with
extensionAttributes, 3 % licensing groups (assignedLicenses Power BI: no Exchange plan, so no
mailbox is provisioned by them), 4 % with a cloud-only owner, 3 % edited on-prem 1-20 h ago;
35 % nest one or two earlier synced groups (so nesting runs several levels deep, never in a
cycle unless asked). Users: 0.5 % of the remote-mailbox users (at least one) are
cloud-managed (user SOA).
"""
from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from exocm.sandbox.licensing import PBI
from exocm.sandbox.objects import AdContact, AdGroup, EntraContact, EntraGroup
from exocm.sandbox.tenant import Tenant

_DEPTS = ("Sales", "Marketing", "Finance", "HR", "IT", "Legal", "Operations", "Engineering", "Support", "Research")
_WORDS = ("Team", "Project", "Managers", "Staff", "Readers", "Editors", "Alerts", "Owners", "Committee", "Guild")
_COMPANIES = ("Fabrikam", "Northwind", "Tailspin", "Adatum", "Litware", "Proseware", "Woodgrove", "Wingtip")


def _guid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _counts(n: int) -> dict[str, int]:
    out = {"dynamic": round(n * 0.04), "unified_wb": round(n * 0.03), "unified": round(n * 0.03),
           "cloud_security": round(n * 0.05)}
    if n >= 12:
        out = {k: max(1, v) for k, v in out.items()}
    out["synced"] = n - sum(out.values())
    return out


def add_objects(t: Tenant, seed: int, now: datetime, *, groups: int, contacts: int,
                nesting_cycle: bool) -> dict[str, list[str]]:
    """Add the groups and contacts; returns generator kind -> Entra ids (for t.generated)."""
    rng = random.Random(f"objects:{seed}")
    settled = now - timedelta(days=3)
    ou_groups = f"OU=Groups,{t.onprem_dc_dn}"
    ou_contacts = f"OU=Contacts,{t.onprem_dc_dn}"
    synced_users = [(a.guid, a.entra_id) for a in t.ad_users.values() if a.entra_id and a.in_sync_scope]
    cloud_users = [u.id for u in t.entra_users.values() if not u.sync_enabled]
    made: dict[str, list[str]] = {}
    by_dept: dict[str, list[str]] = {}
    for u in t.entra_users.values():
        if u.department and len(by_dept.setdefault(u.department, [])) < 25:
            by_dept[u.department].append(u.id)

    def note(kind: str, ident: str) -> None:
        made.setdefault(kind, []).append(ident)

    def old(lo_days: float = 3, hi_days: float = 900) -> datetime:
        return settled - timedelta(days=rng.uniform(0, hi_days - lo_days))

    # -- contacts
    synced_contacts: list[tuple[str, str]] = []
    n_synced_contacts = contacts - max(1, contacts // 10) if contacts >= 2 else contacts
    for i in range(contacts):
        given, sn = rng.choice(("Alex", "Sam", "Kim", "Robin", "Jo", "Chris")), rng.choice(("Berg", "Lund", "Roy"))
        company = rng.choice(_COMPANIES)
        display = f"{given} {sn} ({company}) {i}"
        mail = f"{given.lower()}.{sn.lower()}{i}@{company.lower()}.example"
        cid = _guid(rng)
        if i < n_synced_contacts:
            changed = old()
            ad = AdContact(guid=_guid(rng), name=display, display_name=display, ou_dn=ou_contacts, mail=mail,
                           proxies=[f"SMTP:{mail}"], given_name=given, surname=sn, company=company,
                           entra_id=cid, when_changed=changed)
            ec = EntraContact(id=cid, display_name=display, mail=mail, mail_nickname=display, sync_enabled=True,
                              ad_guid=ad.guid, proxies=[f"SMTP:{mail}"], given_name=given, surname=sn,
                              company=company, last_sync=changed + timedelta(minutes=rng.uniform(1, 30)))
            x = rng.random()
            if x < 0.05 or i == 0:
                ec.cloud_managed = True
                note("contact_cloud_managed", cid)
            elif x < 0.08 or i == 1:
                ad.when_changed = now - timedelta(hours=rng.uniform(1, 20))
                ec.last_sync = min(now, ad.when_changed + timedelta(minutes=rng.uniform(1, 25)))
                note("contact_recent_edit", cid)
            t.add_ad_contact(ad)
            synced_contacts.append((ad.guid, cid))
        else:
            ec = EntraContact(id=cid, display_name=display, mail=mail, mail_nickname=display, sync_enabled=False,
                              ad_guid=None, proxies=[f"SMTP:{mail}"], given_name=given, surname=sn, company=company)
            note("contact_cloud", cid)
        t.add_entra_contact(ec)

    # -- groups
    counts = _counts(groups)
    kinds = [k for k, n in counts.items() for _ in range(n)]
    rng.shuffle(kinds)
    synced: list[tuple[AdGroup, EntraGroup]] = []
    forced = {"cloud_managed": True, "ext": True, "licensing": True, "owner": True, "recent": True}
    for i, kind in enumerate(kinds):
        dept = rng.choice(_DEPTS)
        word = rng.choice(_WORDS)
        gid = _guid(rng)
        if kind != "synced":
            eg = _cloud_group(t, rng, kind, gid, dept, word, i, cloud_users, synced_users, by_dept)
            t.add_entra_group(eg)
            note(f"group_{kind}", gid)
            continue
        adg, eg = _synced_group(t, rng, gid, dept, word, i, ou_groups, old())
        members = {rng.randrange(len(synced_users)) for _ in range(rng.randint(0, 6))} if synced_users else set()
        for m in members:
            ad_guid, entra_id = synced_users[m]
            adg.members.add(ad_guid)
            eg.members.add(entra_id)
            t.entra_users[entra_id].groups.add(gid)
        if adg.kind != "security" and synced_contacts and rng.random() < 0.3:
            ad_c, entra_c = synced_contacts[rng.randrange(len(synced_contacts))]
            adg.member_contacts.add(ad_c)
            eg.member_contacts.add(entra_c)
        if synced and rng.random() < 0.35:
            for _ in range(rng.randint(1, 2)):
                child_ad, child = synced[rng.randrange(len(synced))]
                adg.member_groups.add(child_ad.guid)
                eg.member_groups.add(child.id)
        _plant(t, rng, adg, eg, forced, cloud_users, now, note)
        t.add_ad_group(adg)
        t.add_entra_group(eg)
        synced.append((adg, eg))
        note(f"group_{adg.kind}", gid)
    if nesting_cycle and len(synced) >= 3:
        ring = [synced[j] for j in rng.sample(range(len(synced)), 3)]
        for (pa, pe), (ca, ce) in zip(ring, ring[1:] + ring[:1], strict=True):
            pa.member_groups.add(ca.guid)
            pe.member_groups.add(ce.id)
        made["group_cycle"] = sorted(e.id for _, e in ring)

    # -- user SOA: a few remote-mailbox users already cloud-managed (picked from the end, so the
    # users tests pick first stay AD-managed)
    remote = t.generated.get("remote_user", [])
    if remote:
        n = max(1, len(remote) // 200)
        for uid in remote[-n:]:
            t.entra_users[uid].cloud_managed = True
            note("user_cloud_managed", uid)
    return {k: sorted(v) for k, v in made.items()}


def _synced_group(t: Tenant, rng: random.Random, gid: str, dept: str, word: str, i: int, ou: str,
                  changed: datetime) -> tuple[AdGroup, EntraGroup]:
    x = rng.random()
    kind = "security" if x < 0.4 else "distribution" if x < 0.8 else "mailsecurity"
    prefix = {"security": "GG", "distribution": "DL", "mailsecurity": "MSG"}[kind]
    name = f"{prefix}-{dept}-{word}-{i}"
    mail = proxies = None
    if kind != "security":
        mail = f"{name.lower()}@{t.onprem_domain}"
        proxies = [f"SMTP:{mail}", f"smtp:{name.lower()}@{t.routing_domain}"]
    sid = f"S-1-5-21-1004336348-1177238915-682003330-{30000 + i}"
    adg = AdGroup(guid=_guid(rng), name=name, sam=name[:64], ou_dn=ou, entra_id=gid, when_changed=changed,
                  kind=kind, mail=mail, proxies=list(proxies or []), sid=sid)
    # onPremisesLastSyncDateTime: the export that followed the last AD change (a few minutes later)
    eg = EntraGroup(id=gid, display_name=name, mail_nickname=adg.sam, sync_enabled=True, ad_guid=adg.guid,
                    security_enabled=kind != "distribution", mail=mail, mail_enabled=kind != "security",
                    proxies=list(proxies or []), sid=sid, sam=adg.sam,
                    last_sync=changed + timedelta(minutes=rng.uniform(1, 30)))
    return adg, eg


def _plant(t: Tenant, rng: random.Random, adg: AdGroup, eg: EntraGroup, forced: dict[str, bool],
           cloud_users: list[str], now: datetime, record: Callable[[str, str], None]) -> None:
    """Plant the per-group findings (the first synced group gets every one, so small tenants
    have each code)."""
    def pick(flag: str, p: float) -> bool:
        if forced.get(flag):
            forced[flag] = False
            return True
        return rng.random() < p

    if pick("ext", 0.08):
        ca = {rng.choice((1, 2, 7, 10, 15)): rng.choice(("CostCenter-42", "Region-EU", "Legacy"))}
        adg.ca = ca
        eg.ca = dict(ca)
        record("group_ext", eg.id)
    if pick("licensing", 0.03):
        eg.licenses = [PBI.sku_id]
        record("group_licensing", eg.id)
    if cloud_users and pick("owner", 0.04):
        eg.owners.add(cloud_users[rng.randrange(len(cloud_users))])
        record("group_cloud_owner", eg.id)
    if pick("recent", 0.03):
        adg.when_changed = now - timedelta(hours=rng.uniform(1, 20))
        eg.last_sync = min(now, adg.when_changed + timedelta(minutes=rng.uniform(1, 25)))
        record("group_recent_edit", eg.id)
    if pick("cloud_managed", 0.05):
        eg.cloud_managed = True
        record("group_cloud_managed", eg.id)
        if cloud_users and rng.random() < 0.5:  # edited in the cloud since: a cloud-only member
            uid = cloud_users[rng.randrange(len(cloud_users))]
            eg.members.add(uid)
            t.entra_users[uid].groups.add(eg.id)


def _cloud_group(t: Tenant, rng: random.Random, kind: str, gid: str, dept: str, word: str, i: int,
                 cloud_users: list[str], synced_users: list[tuple[str, str]],
                 by_dept: dict[str, list[str]]) -> EntraGroup:
    if kind == "dynamic":
        name = f"DYN-{dept}-{i}"
        eg = EntraGroup(id=gid, display_name=name, mail_nickname=name, sync_enabled=False, ad_guid=None,
                        group_types=["DynamicMembership"],
                        membership_rule=f'(user.department -eq "{dept}")')
        for uid in by_dept.get(dept, ()):  # members the rule selects (the first 25: keeps memory flat)
            eg.members.add(uid)
            t.entra_users[uid].groups.add(gid)
        return eg
    if kind in ("unified", "unified_wb"):
        name = f"{dept} {word} {i}"
        nick = f"{dept}{word}{i}".lower()
        mail = f"{nick}@{t.domain}"
        eg = EntraGroup(id=gid, display_name=name, mail_nickname=nick, sync_enabled=False, ad_guid=None,
                        security_enabled=False, mail=mail, mail_enabled=True, group_types=["Unified"],
                        proxies=[f"SMTP:{mail}"], written_back=kind == "unified_wb")
    else:
        name = f"CG-{dept}-{word}-{i}"
        eg = EntraGroup(id=gid, display_name=name, mail_nickname=name, sync_enabled=False, ad_guid=None)
    pool = cloud_users + [e for _, e in synced_users[:50]]
    for _ in range(rng.randint(0, 4) if pool else 0):
        uid = pool[rng.randrange(len(pool))]
        eg.members.add(uid)
        t.entra_users[uid].groups.add(gid)
    if pool:
        eg.owners.add(pool[rng.randrange(len(pool))])
    return eg
