"""Seeded generator of sandbox tenants (10 to 300,000 users) with a realistic hybrid mix.

`generate_tenant(size, seed, mix)` builds on-prem AD/Exchange, Entra and EXO objects already
in the state a finished sync cycle leaves them (so a delta sync right after generation changes
nothing), then plants the problems detection must find. Every random choice comes from
`random.Random(seed)`; the clock only shifts timestamps (pass `clock=` for byte-identical output).

`size` is the number of Entra users (= EXO recipients). Kinds (fractions of `size`; what is left
over is "remote_user"):
- remote_user: dir-synced user, on-prem RemoteUserMailbox, EXO UserMailbox, licensed (synced
  licensing group, cloud licensing group, or direct).
- remote_shared / remote_room / remote_equipment: dir-synced resource mailboxes (no license).
- onprem_mailbox: mailbox still on-prem (UserMailbox there), EXO MailUser with the on-prem
  ExchangeGuid; half of them already licensed (no cloud mailbox: the ExchangeGuid synced).
- onprem_resource: shared or room mailbox still hosted on-prem (EXO MailUser); 0 by default.
- synced_user: on-prem user without Exchange attributes, EXO User, unlicensed (new hires; the
  dual-mailbox birth starts from one of these).
- cloud_user / cloud_shared: cloud-only mailboxes (IsDirSynced False)  -> NOT_DIRSYNCED.
- cloud_user_nomailbox: cloud-only unlicensed user (EXO User).
- cloud_managed: remote mailbox (user/shared/room) with IsExchangeCloudManaged True
  -> ALREADY_CLOUD_MANAGED.
- dual_mailbox: on-prem UserMailbox + EXO UserMailbox, different ExchangeGuids -> DUAL_MAILBOX.
- previous_mailbox_info: on-prem UserMailbox, EXO MailUser with PreviousRecipientTypeDetails
  UserMailbox (license removed, not cleared) -> PREVIOUS_MAILBOX_INFO.
- exchangeguid_mismatch: on-prem RemoteUserMailbox with ExchangeGuid empty / all-zero /
  different -> EXCHANGEGUID_MISMATCH.
- recent_onprem_change: remote mailbox edited on-prem 1-20 h ago (already synced)
  -> RECENT_ONPREM_CHANGE.
- attribute_drift: remote mailbox whose EXO writeback values differ from on-prem (a stale
  export; delta syncs leave it until the object changes on-prem or a full sync) -> ATTRIBUTE_DRIFT.
Planted kinds are disjoint objects. For size >= 20 every kind with a positive fraction gets at
least one object. Background timestamps are at least 3 days old, so nothing else is "recent".
"""
from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from exocm.sandbox.licensing import E3, E5, EXO_P1
from exocm.sandbox.objects import (
    EMPTY_GUID,
    EXO_TO_REMOTE,
    AdGroup,
    AdUser,
    EntraGroup,
    EntraUser,
    ExoRecipient,
)
from exocm.sandbox.tenant import Tenant, gc_paused

DEFAULT_MIX: dict[str, float] = {
    "remote_shared": 0.04,
    "remote_room": 0.015,
    "remote_equipment": 0.005,
    "onprem_mailbox": 0.03,
    "onprem_resource": 0.0,  # opt-in: a non-zero default would change every seed's tenant (snapshots)
    "synced_user": 0.02,
    "cloud_user": 0.02,
    "cloud_shared": 0.005,
    "cloud_user_nomailbox": 0.005,
    "cloud_managed": 0.10,
    "dual_mailbox": 0.005,
    "previous_mailbox_info": 0.005,
    "exchangeguid_mismatch": 0.005,
    "recent_onprem_change": 0.01,
    "attribute_drift": 0.01,
}
#: Kinds that always get at least one object in tenants of 20 users or more.
MIN_ONE = ("synced_user", "cloud_user", "cloud_managed", "dual_mailbox", "previous_mailbox_info",
           "exchangeguid_mismatch", "recent_onprem_change", "attribute_drift")
#: Generator kind -> planted() code it produces.
KIND_TO_CODE = {
    "dual_mailbox": "DUAL_MAILBOX",
    "previous_mailbox_info": "PREVIOUS_MAILBOX_INFO",
    "exchangeguid_mismatch": "EXCHANGEGUID_MISMATCH",
    "recent_onprem_change": "RECENT_ONPREM_CHANGE",
    "attribute_drift": "ATTRIBUTE_DRIFT",
    "cloud_managed": "ALREADY_CLOUD_MANAGED",
    "cloud_user": "NOT_DIRSYNCED",
    "cloud_shared": "NOT_DIRSYNCED",
}

FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph "
    "Jessica Thomas Sarah Christopher Karen Charles Lisa Daniel Nancy Matthew Betty Anthony Sandra Mark Margaret "
    "Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa "
    "George Deborah Timothy Stephanie Ronald Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Dorothy Jacob "
    "Amy Gary Kathleen Nicholas Angela Eric Shirley Jonathan Emma Stephen Brenda Larry Pamela Justin Nicole Scott "
    "Anna Brandon Samantha Benjamin Katherine Samuel Christine Gregory Debra Alexander Rachel Patrick Carolyn Frank "
    "Janet Raymond Maria Jack Olivia Dennis Heather Jerry Helen Tyler Catherine Aaron Diane Jose Julie Adam Victoria "
    "Nathan Joyce Henry Lauren Zachary Kelly Douglas Christina Peter Ruth Kyle Joan Noah Virginia Ethan Judith "
    "Jeremy Evelyn Christian Hannah Walter Andrea Keith Megan Austin Cheryl Roger Jacqueline Terry Madison Sean "
    "Teresa Gerald Abigail Carl Sophia Dylan Martha Harold Sara Jordan Gloria Jesse Janice Bryan Kathryn Lawrence "
    "Ann Arthur Isabella Gabriel Judy Bruce Charlotte Logan Julia Billy Grace Joe Amber Alan Alice Juan Jean "
    "Elijah Denise Willie Frances Albert Danielle Wayne Marilyn Randy Natalie Mason Beverly Vincent Diana Liam "
    "Brittany Roy Theresa Bobby Kayla Caleb Alexis Bradley Doris Russell Lori Lucas Tiffany Ingrid Lars Sofia "
    "Mateo Yuki Hiroshi Aisha Omar Fatima Chen Wei Priya Arjun Ana Luis Nina Sven Astrid Pierre Claire Marco Giulia"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera "
    "Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart "
    "Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim "
    "Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo "
    "Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler "
    "Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds "
    "Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford "
    "Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman "
    "Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon "
    "Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice "
    "Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer "
    "Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong "
    "Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena Richards "
    "Larsen Nilsson Johansson Muller Schneider Fischer Weber Rossi Russo Dubois Moreau Tanaka Suzuki Sato Singh"
).split()
DEPARTMENTS = ("Sales", "Marketing", "Finance", "HR", "IT", "Legal", "Operations", "Engineering", "Support",
               "Procurement", "Research", "Facilities")
CITIES = ("Seattle", "London", "Oslo", "Munich", "Tokyo", "Dublin", "Austin", "Paris")
SHARED_WORDS = ("Team", "Desk", "Helpdesk", "Info", "Orders", "Invoices", "Recruiting", "Press", "Projects")
EQUIPMENT = ("Projector", "Car", "Camera", "Laptop Pool", "Van", "Conference Phone")

_DAY = 86400


def _plan(size: int, mix: dict[str, float] | None) -> dict[str, int]:
    fractions = dict(DEFAULT_MIX)
    for k, v in (mix or {}).items():
        if k not in DEFAULT_MIX and k != "remote_user":
            raise ValueError(f"unknown mix kind {k!r}; known: {sorted(DEFAULT_MIX)}")
        if v < 0:
            raise ValueError(f"mix fraction for {k!r} must be >= 0")
        fractions[k] = float(v)
    fractions.pop("remote_user", None)
    counts = {k: int(round(f * size)) for k, f in fractions.items()}
    if size >= 20:
        for k in MIN_ONE:
            if fractions.get(k, 0) > 0 and counts[k] == 0:
                counts[k] = 1
    rest = size - sum(counts.values())
    if rest < 0:
        raise ValueError(f"mix fractions add up to more than the {size} users")
    counts["remote_user"] = rest
    return counts


class _Gen:
    def __init__(self, t: Tenant, rng: random.Random, now: datetime) -> None:
        self.t = t
        self.rng = rng
        self.now = now
        self.alias_n: dict[str, int] = {}
        self.clean: dict[str, str] = {}
        self.settled = now - timedelta(days=3)  # background edits are at least this old
        self.cn_n: dict[str, int] = {}
        self.ou_dns = {d: f"OU={d},OU=Accounts,{t.onprem_dc_dn}" for d in DEPARTMENTS}
        self.res_ou = f"OU=Resources,{t.onprem_dc_dn}"
        self.employee = 10000
        self.planted: dict[str, list[str]] = {}
        self.groups: dict[str, tuple[AdGroup | None, EntraGroup]] = {}

    # -- primitives
    def guid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def ago(self, lo_s: float, hi_s: float) -> datetime:
        return self.now - timedelta(seconds=self.rng.uniform(lo_s, hi_s))

    def between(self, start: datetime, end: datetime) -> datetime:
        span = max(0.0, (end - start).total_seconds())
        return start + timedelta(seconds=self.rng.uniform(0, span))

    def unique_alias(self, raw: str) -> str:
        base = self.clean.get(raw)
        if base is None:
            base = self.clean[raw] = "".join(ch for ch in raw.lower() if ch.isalnum() or ch in ".-")[:40] or "user"
        n = self.alias_n.get(base, 0) + 1
        self.alias_n[base] = n
        return base if n == 1 else f"{base}{n}"

    def unique_cn(self, base: str) -> str:
        n = self.cn_n.get(base, 0) + 1
        self.cn_n[base] = n
        return base if n == 1 else f"{base} {n}"

    def person(self) -> tuple[str, str, str, str, str]:
        """(given, surname, display name, unique cn, unique alias)."""
        given = self.rng.choice(FIRST_NAMES)
        sn = self.rng.choice(LAST_NAMES)
        display = f"{given} {sn}"
        return given, sn, display, self.unique_cn(display), self.unique_alias(f"{given[0]}{sn}")

    def resource(self, rtd: str) -> tuple[str, str, str, str, str]:
        r = self.rng
        city = r.choice(CITIES)
        if rtd == "RoomMailbox":
            display = f"Room {city} {r.randint(1, 9)}.{r.randint(1, 40):02d}"
        elif rtd == "EquipmentMailbox":
            display = f"{r.choice(EQUIPMENT)} {city} {r.randint(1, 30)}"
        else:
            display = f"{r.choice(DEPARTMENTS)} {r.choice(SHARED_WORDS)} {city}"
        cn = self.unique_cn(display)
        return "", display, display, cn, self.unique_alias(cn.replace(" ", "-").replace(".", ""))

    def attributes(self, dept: str) -> tuple[dict[int, str] | None, dict[int, list[str]] | None]:
        r = self.rng
        ca: dict[int, str] = {}
        if r.random() < 0.7:
            ca[1] = dept.upper()[:4]
        if r.random() < 0.4:
            self.employee += 1
            ca[5] = f"E{self.employee}"
        if r.random() < 0.05:
            ca[10] = "VIP"
        eca: dict[int, list[str]] = {}
        if r.random() < 0.08:
            eca[1] = sorted(r.sample(["ProjectAtlas", "ProjectNova", "Board", "Works-Council", "Mobile"], 2))
        return (ca or None), (eca or None)

    # -- licenses
    def license(self, u: EntraUser, ad: AdUser | None) -> None:
        x = self.rng.random()
        if x < 0.55 and ad is not None:
            adg, eg = self.groups["synced_e3"]
            assert adg is not None
            adg.members.add(ad.guid)
            eg.members.add(u.id)
            u.groups.add(eg.id)
        elif x < 0.80:
            _, eg = self.groups["cloud_e5"]
            eg.members.add(u.id)
            u.groups.add(eg.id)
        else:
            u.licenses.add(self.rng.choice((E3.sku_id, E3.sku_id, EXO_P1.sku_id)))

    # -- object builders
    def synced(self, exo_rtd: str | None, onprem_rtd: str | None, *, resource: bool = False) -> tuple[
            AdUser, EntraUser, ExoRecipient]:
        """A dir-synced object as a finished sync leaves it (exo_rtd None -> EXO User)."""
        t, r = self.t, self.rng
        if resource:
            given, sn, display, cn, alias = self.resource(exo_rtd or onprem_rtd or "SharedMailbox")
            dept = "Facilities"
            ou = self.res_ou
        else:
            given, sn, display, cn, alias = self.person()
            dept = r.choice(DEPARTMENTS)
            ou = self.ou_dns[dept]
        ad_guid, entra_id, exo_obj_guid = self.guid(), self.guid(), self.guid()
        created = self.ago(200 * _DAY, 3000 * _DAY)
        changed = self.between(created, self.settled)
        upn = f"{alias}@{t.onprem_domain}"
        ca, eca = self.attributes(dept)
        mail_enabled = onprem_rtd is not None
        hidden = False
        exchange_guid = self.guid() if mail_enabled and onprem_rtd != "MailUser" else None
        proxies: list[str] = []
        exo_legacy = None
        if mail_enabled:
            proxies = [f"SMTP:{alias}@{t.onprem_domain}", f"smtp:{alias}@{t.routing_domain}"]
            if not resource and r.random() < 0.4:
                proxies.append(f"smtp:{given.lower()}.{sn.lower()}@{t.onprem_domain}".replace(" ", ""))
            exo_legacy = _exo_legacy(alias, exo_obj_guid)
            if exo_rtd is not None:
                proxies.append(f"X500:{exo_legacy}")  # written back by hybrid writeback
        ad = AdUser(
            guid=ad_guid, sam=alias[:20], upn=upn, given_name=given, surname=sn, display_name=display, cn=cn,
            ou_dn=ou, rtd=onprem_rtd, alias=alias if mail_enabled else None, proxies=proxies,
            exchange_guid=exchange_guid, archive_guid=None,
            legacy_dn=_onprem_legacy(t, alias, ad_guid) if mail_enabled else None,
            remote_routing=f"{alias}@{t.routing_domain}" if onprem_rtd and onprem_rtd.startswith("Remote") else None,
            hidden=hidden, ca=ca, eca=eca, when_created=created, when_changed=changed, entra_id=entra_id,
            enabled=not resource, department=dept,
        )
        if exo_rtd == "UserMailbox" and r.random() < 0.3:
            ad.archive_guid = self.guid()
        u = EntraUser(id=entra_id, upn=upn, display_name=display, given_name=given, surname=sn, sync_enabled=True,
                      ad_guid=ad_guid, account_enabled=not resource, department=dept)
        exo_changed = min(self.now, changed + timedelta(minutes=r.uniform(1, 30)))
        rec_rtd = exo_rtd or ("MailUser" if mail_enabled else "User")
        x = ExoRecipient(
            edoid=entra_id, guid=exo_obj_guid,
            exchange_guid=exchange_guid, archive_guid=ad.archive_guid,
            upn=upn, alias=alias if mail_enabled else None, display_name=display, name=cn, first_name=given,
            last_name=sn, proxies=list(proxies), legacy_dn=exo_legacy, rtd=rec_rtd, prev_rtd=None,
            dir_synced=True, cloud_managed=False, hidden=hidden, ca=ca, eca=eca,
            when_created=created + timedelta(minutes=r.uniform(5, 60)), when_changed=exo_changed,
            external_email=(proxies[0][5:] if rec_rtd == "MailUser" and proxies else None),
        )
        return ad, u, x

    def cloud(self, exo_rtd: str | None) -> tuple[EntraUser, ExoRecipient]:
        t, r = self.t, self.rng
        if exo_rtd == "SharedMailbox":
            given, sn, display, cn, alias = self.resource("SharedMailbox")
        else:
            given, sn, display, cn, alias = self.person()
        entra_id, obj_guid = self.guid(), self.guid()
        upn = f"{alias}@{t.onprem_domain if r.random() < 0.7 else t.domain}"
        created = self.ago(30 * _DAY, 1500 * _DAY)
        changed = self.between(created, self.settled)
        u = EntraUser(id=entra_id, upn=upn, display_name=display, given_name=given, surname=sn, sync_enabled=False,
                      ad_guid=None, account_enabled=exo_rtd != "SharedMailbox")
        mailbox = exo_rtd is not None
        x = ExoRecipient(
            edoid=entra_id, guid=obj_guid, exchange_guid=self.guid() if mailbox else None, archive_guid=None,
            upn=upn, alias=alias if mailbox else None, display_name=display, name=cn, first_name=given,
            last_name=sn, proxies=[f"SMTP:{upn}", f"smtp:{alias}@{t.domain}"] if mailbox else [],
            legacy_dn=_exo_legacy(alias, obj_guid) if mailbox else None, rtd=exo_rtd or "User", prev_rtd=None,
            dir_synced=False, cloud_managed=False, hidden=False, ca=None, eca=None, when_created=created,
            when_changed=changed,
        )
        return u, x

    def add(self, kind: str, ad: AdUser | None, u: EntraUser, x: ExoRecipient) -> None:
        t = self.t
        if ad is not None:
            t.add_ad_user(ad)
        t.add_entra_user(u)
        t.add_exo(x)
        self.planted.setdefault(kind, []).append(x.edoid)


def _exo_legacy(alias: str, guid: str) -> str:
    return (f"/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/"
            f"cn={guid.replace('-', '')}-{alias[:8]}")


def _onprem_legacy(t: Tenant, alias: str, guid: str) -> str:
    return (f"/o={t.org_name}/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/"
            f"cn={guid.replace('-', '')[:32]}-{alias[:8]}")


def _build_groups(g: _Gen) -> None:
    t = g.t
    # whenChanged and objectSid take no random draws (the users' sequence stays as it was).
    adg = AdGroup(guid=g.guid(), name="GG-Lic-M365-E3", sam="GG-Lic-M365-E3", ou_dn=f"OU=Groups,{t.onprem_dc_dn}",
                  when_changed=g.settled - timedelta(days=30), sid="S-1-5-21-1004336348-1177238915-682003330-1601")
    eg = EntraGroup(id=g.guid(), display_name=adg.name, mail_nickname=adg.sam, sync_enabled=True, ad_guid=adg.guid,
                    licenses=[E3.sku_id], sid=adg.sid, sam=adg.sam,
                    last_sync=g.settled - timedelta(days=30, minutes=-5))
    adg.entra_id = eg.id
    t.add_ad_group(adg)
    t.add_entra_group(eg)
    g.groups["synced_e3"] = (adg, eg)
    ceg = EntraGroup(id=g.guid(), display_name="LIC-M365-E5", mail_nickname="LIC-M365-E5", sync_enabled=False,
                     ad_guid=None, licenses=[E5.sku_id])
    t.add_entra_group(ceg)
    g.groups["cloud_e5"] = (None, ceg)
    staff = AdGroup(guid=g.guid(), name="GG-All-Staff", sam="GG-All-Staff", ou_dn=f"OU=Groups,{t.onprem_dc_dn}",
                    when_changed=g.settled - timedelta(days=60), sid="S-1-5-21-1004336348-1177238915-682003330-1602")
    seg = EntraGroup(id=g.guid(), display_name=staff.name, mail_nickname=staff.sam, sync_enabled=True,
                     ad_guid=staff.guid, sid=staff.sid, sam=staff.sam,
                     last_sync=g.settled - timedelta(days=60, minutes=-5))
    staff.entra_id = seg.id
    t.add_ad_group(staff)
    t.add_entra_group(seg)


def _remote_types(g: _Gen) -> tuple[str, str]:
    x = g.rng.random()
    if x < 0.80:
        return "UserMailbox", "RemoteUserMailbox"
    if x < 0.95:
        return "SharedMailbox", "RemoteSharedMailbox"
    return "RoomMailbox", "RemoteRoomMailbox"


def _make(g: _Gen, kind: str) -> None:
    rng = g.rng
    if kind in ("remote_user", "recent_onprem_change", "attribute_drift", "exchangeguid_mismatch"):
        ad, u, x = g.synced("UserMailbox", "RemoteUserMailbox")
        g.license(u, ad)
        if kind == "recent_onprem_change":
            ad.when_changed = g.ago(3600, 20 * 3600)
            x.when_changed = min(g.now, ad.when_changed + timedelta(minutes=rng.uniform(1, 25)))
        elif kind == "attribute_drift":
            _plant_drift(g, ad, x)
        elif kind == "exchangeguid_mismatch":
            choice = rng.randrange(3)
            ad.exchange_guid = None if choice == 0 else EMPTY_GUID if choice == 1 else g.guid()
        g.add(kind, ad, u, x)
    elif kind in ("remote_shared", "remote_room", "remote_equipment"):
        exo_rtd = {"remote_shared": "SharedMailbox", "remote_room": "RoomMailbox",
                   "remote_equipment": "EquipmentMailbox"}[kind]
        ad, u, x = g.synced(exo_rtd, EXO_TO_REMOTE[exo_rtd], resource=True)
        g.add(kind, ad, u, x)
    elif kind == "cloud_managed":
        exo_rtd, onprem_rtd = _remote_types(g)
        ad, u, x = g.synced(exo_rtd, onprem_rtd, resource=exo_rtd != "UserMailbox")
        if exo_rtd == "UserMailbox":
            g.license(u, ad)
        x.cloud_managed = True
        g.add(kind, ad, u, x)
    elif kind == "onprem_resource":
        rtd = "SharedMailbox" if rng.random() < 0.7 else "RoomMailbox"
        ad, u, x = g.synced(None, rtd, resource=True)
        g.add(kind, ad, u, x)
    elif kind == "onprem_mailbox":
        ad, u, x = g.synced(None, "UserMailbox")
        if rng.random() < 0.5:
            g.license(u, ad)
        g.add(kind, ad, u, x)
    elif kind == "synced_user":
        ad, u, x = g.synced(None, None)
        g.add(kind, ad, u, x)
    elif kind == "dual_mailbox":
        ad, u, x = g.synced("UserMailbox", "UserMailbox")
        x.exchange_guid = g.guid()  # EXO provisioned its own mailbox before the on-prem one existed
        x.external_email = None
        ad.remote_routing = None
        ad.proxies = [p for p in ad.proxies if not p.startswith("X500:")]
        x.proxies = list(ad.proxies)
        g.license(u, ad)
        g.add(kind, ad, u, x)
    elif kind == "previous_mailbox_info":
        ad, u, x = g.synced(None, "UserMailbox")
        stale = g.guid()
        x.prev_rtd = "UserMailbox"
        x.exchange_guid = stale  # the disconnected cloud mailbox's pointer
        x.disconnected_guid = stale
        x.disconnected_type = "UserMailbox"
        g.add(kind, ad, u, x)
    elif kind in ("cloud_user", "cloud_shared", "cloud_user_nomailbox"):
        cloud_rtd = {"cloud_user": "UserMailbox", "cloud_shared": "SharedMailbox", "cloud_user_nomailbox": None}[kind]
        u, x = g.cloud(cloud_rtd)
        if kind == "cloud_user":
            u.licenses.add(rng.choice((E3.sku_id, E5.sku_id)))
        g.add(kind, None, u, x)
    else:  # pragma: no cover - _plan rejects unknown kinds
        raise ValueError(kind)


def _plant_drift(g: _Gen, ad: AdUser, x: ExoRecipient) -> None:
    """Make EXO's writeback values differ from on-prem's in one of three ways."""
    rng = g.rng
    how = rng.randrange(3)
    if how == 0:
        i = rng.choice((2, 3, 7, 12))
        x.ca = dict(ad.ca or {})
        x.ca[i] = rng.choice(("Old-Cost-Center", "Legacy", "Temp"))
    elif how == 1:
        x.eca = {k: list(v) for k, v in (ad.eca or {}).items()}
        x.eca[2] = ["Stale-Value"]
    else:
        extra = f"smtp:{ad.alias}.old@{g.t.onprem_domain}"
        ad.proxies = [*ad.proxies, extra]  # added on-prem, never exported to EXO
        x.proxies = [p for p in x.proxies if p.lower() != extra.lower()]


def generate_tenant(size: int, seed: int, mix: dict[str, float] | None = None, *,
                    clock: Callable[[], datetime] | None = None, groups: int | None = None,
                    contacts: int | None = None, nesting_cycle: bool | None = None) -> Tenant:
    """Build a deterministic tenant of `size` users (10..300,000) for `seed`; see the module docstring.

    Groups and contacts for object-level SOA come from generator_objects.py: `groups` (default
    size // 5, at least 12), `contacts` (default groups // 3, at least 6), `nesting_cycle`
    (default: odd seeds get one cycle of three nested groups)."""
    if not 10 <= size <= 300_000:
        raise ValueError("size must be between 10 and 300,000")
    n_groups = max(12, size // 5) if groups is None else groups
    if not 0 <= n_groups <= 500_000:
        raise ValueError("groups must be between 0 and 500,000")
    n_contacts = max(6, n_groups // 3) if contacts is None else contacts
    if n_contacts < 0:
        raise ValueError("contacts must be >= 0")
    counts = _plan(size, mix)
    rng = random.Random(seed)
    t = Tenant(seed=seed, clock=clock)
    now = t.now().astimezone(UTC)
    g = _Gen(t, rng, now)
    _build_groups(g)
    kinds: list[str] = []
    for k in sorted(counts):
        kinds.extend([k] * counts[k])
    rng.shuffle(kinds)
    with gc_paused():
        for kind in kinds:
            _make(g, kind)
    t.generated = {k: sorted(v) for k, v in g.planted.items()}
    t.last_sync = now
    from exocm.sandbox.generator_objects import add_objects

    with gc_paused():
        t.generated_objects = (add_objects(t, seed, now, groups=n_groups, contacts=n_contacts,
                                       nesting_cycle=bool(seed % 2) if nesting_cycle is None else nesting_cycle))

    from exocm.sandbox.readiness_state import seeded_state

    t.readiness = seeded_state(t)
    return t


def expected_planted(t: Tenant) -> dict[str, list[str]]:
    """What the generator planted, as planted() codes (equals t.planted() on a fresh tenant)."""
    gen = t.generated
    out: dict[str, list[str]] = {}
    for kind, code in KIND_TO_CODE.items():
        out.setdefault(code, []).extend(gen.get(kind, []))
    from exocm.sandbox.tenant import PLANTED_CODES

    return {c: sorted(out.get(c, [])) for c in PLANTED_CODES}


def describe(t: Tenant) -> dict[str, Any]:
    """Counts per generated kind (for benchmarks and the CLI)."""
    gen = t.generated
    return {k: len(v) for k, v in sorted(gen.items())}
