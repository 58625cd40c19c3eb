"""On-prem cmdlets that show AD groups and mail contacts (issue 15): what an admin's on-prem
data says about the objects whose SOA moves to the cloud, over the sandbox's WinRM endpoint.

- Get-ADGroup -Identity | -Filter (ActiveDirectory module): the default properties plus
  DisplayName, mail, proxyAddresses, member (distinguished names), whenChanged, whenCreated
  and extensionAttribute1-15, whatever -Properties asks for (the sandbox returns one set).
  GroupCategory is Security or Distribution; GroupScope Universal for mail-enabled groups
  (Exchange mail-enables universal groups only) and Global otherwise.
- Get-DistributionGroup (Exchange): distribution lists and mail-enabled security groups with
  RecipientTypeDetails MailUniversalDistributionGroup / MailUniversalSecurityGroup,
  PrimarySmtpAddress, EmailAddresses, WhenChanged (local time in Exchange; the sandbox gives
  UTC), WhenChangedUTC, CustomAttribute1-15 (Exchange's names for extensionAttribute1-15).
- Get-MailContact (Exchange): mail contacts with ExternalEmailAddress "SMTP:...".
whenChanged is the last on-prem edit (OBJECT_RECENT_ONPREM_EDIT reads it).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exocm.sandbox.cmdlets import result_size
from exocm.sandbox.cmdlets_onprem import ONPREM_CMDLETS, resolve_ad_group
from exocm.sandbox.errors import CmdletError
from exocm.sandbox.identity import normalize_guid
from exocm.sandbox.objects import AdContact, AdGroup, primary_smtp
from exocm.sandbox.opath import compile_filter
from exocm.sandbox.tenant import Record, RecordSet, Tenant

_RTD = {"distribution": "MailUniversalDistributionGroup", "mailsecurity": "MailUniversalSecurityGroup"}


def _member_dns(t: Tenant, g: AdGroup) -> list[str]:
    out = [t.ad_users[m].dn for m in sorted(g.members) if m in t.ad_users]
    out += [t.ad_groups[m].dn for m in sorted(g.member_groups) if m in t.ad_groups]
    out += [t.ad_contacts[m].dn for m in sorted(g.member_contacts) if m in t.ad_contacts]
    return out


def _group_getters(t: Tenant) -> dict[str, Callable[[AdGroup], Any]]:
    g: dict[str, Callable[[AdGroup], Any]] = {
        "distinguishedName": lambda x: x.dn,
        "name": lambda x: x.name,
        "objectClass": lambda x: "group",
        "objectGUID": lambda x: x.guid,
        "SamAccountName": lambda x: x.sam,
        "SID": lambda x: x.sid,
        "GroupCategory": lambda x: "Distribution" if x.kind == "distribution" else "Security",
        "GroupScope": lambda x: "Global" if x.kind == "security" else "Universal",
        "DisplayName": lambda x: x.display_name or x.name,
        "mail": lambda x: x.mail,
        "proxyAddresses": lambda x: list(x.proxies),
        "member": lambda x: _member_dns(t, x),
        "whenChanged": lambda x: x.when_changed,
    }
    for i in range(1, 16):
        g[f"extensionAttribute{i}"] = (lambda n: lambda x: (x.ca or {}).get(n))(i)
    return g


@ONPREM_CMDLETS.register("Get-ADGroup", ("Identity", "Filter", "Properties", "Server", "SearchBase",
                                         "ResultSetSize"))
def get_ad_group(t: Tenant, p: dict[str, Any]) -> RecordSet:
    """Get-ADGroup -Identity (DN, objectGUID, sAMAccountName, name) or -Filter (PowerShell-expression subset)."""
    getters = _group_getters(t)
    items = tuple(getters.items())

    def build(x: AdGroup) -> Record:
        return {k: fn(x) for k, fn in items}

    if p.get("Identity") not in (None, ""):
        return RecordSet([resolve_ad_group(t, p["Identity"])], build)
    if p.get("Filter") in (None, ""):
        # The AD module prompts for -Filter when neither is given (text from the AD module, shortened).
        raise CmdletError("ParameterBindingException", "InvalidArgument",
                          "Cannot process command because of one or more missing mandatory parameters: Filter.")
    text = str(p["Filter"]).strip()
    objs = list(t.ad_groups.values())
    if text != "*":
        pred = compile_filter(text, {k.lower(): fn for k, fn in getters.items()})
        objs = [x for x in objs if pred(x)]
    return RecordSet(objs, build)


def _limited(t: Tenant, objs: list[Any], p: dict[str, Any]) -> list[Any]:
    limit = result_size(p.get("ResultSize"))
    if limit is not None and len(objs) > limit:
        # Exchange's truncation warning (text from Exchange).
        t.warn("There are more results available than are currently displayed. To view them, increase the "
               "value for the ResultSize parameter.")
        return objs[:limit]
    return objs


def _custom(ca: dict[int, str] | None) -> dict[str, str]:
    return {f"CustomAttribute{i}": (ca or {}).get(i) or "" for i in range(1, 16)}


def _dg_record(t: Tenant, g: AdGroup) -> Record:
    primary = primary_smtp(g.proxies) or g.mail or ""
    return {
        "Name": g.name, "DisplayName": g.display_name or g.name, "Alias": g.sam, "SamAccountName": g.sam,
        "PrimarySmtpAddress": primary, "EmailAddresses": list(g.proxies),
        "RecipientTypeDetails": _RTD[g.kind], "RecipientType": _RTD[g.kind],
        "GroupType": "Universal" if g.kind == "distribution" else "Universal, SecurityEnabled",
        "Guid": g.guid, "DistinguishedName": g.dn, "Identity": g.dn,
        "WhenChanged": g.when_changed, "WhenChangedUTC": g.when_changed, **_custom(g.ca),
    }


def _find(t: Tenant, identity: Any, objs: list[Any], keys: Callable[[Any], list[str]], what: str) -> Any:
    text = str(identity).strip()
    guid = normalize_guid(text)
    low = text.lower()
    for o in objs:
        if (guid is not None and o.guid == guid) or low in keys(o):
            return o
    # Exchange's not-found text (from Exchange).
    raise CmdletError("ManagementObjectNotFoundException", "NotSpecified",
                      f"The operation couldn't be performed because object '{text}' couldn't be found on "
                      f"'{t.onprem_dc}'.")


@ONPREM_CMDLETS.register("Get-DistributionGroup", ("Identity", "ResultSize", "DomainController"))
def get_distribution_group(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-DistributionGroup: distribution lists and mail-enabled security groups."""
    objs = [g for g in t.ad_groups.values() if g.kind in _RTD]
    if p.get("Identity") not in (None, ""):
        objs = [_find(t, p["Identity"], objs, lambda g: [g.name.lower(), g.sam.lower(), g.dn.lower(),
                                                        (g.mail or "").lower()], "group")]
    return [_dg_record(t, g) for g in _limited(t, objs, p)]


def _contact_record(t: Tenant, c: AdContact) -> Record:
    return {
        "Name": c.name, "DisplayName": c.display_name, "Alias": c.name.replace(" ", ""),
        "ExternalEmailAddress": f"SMTP:{c.mail}", "PrimarySmtpAddress": primary_smtp(c.proxies) or c.mail,
        "EmailAddresses": list(c.proxies), "RecipientTypeDetails": "MailContact", "RecipientType": "MailContact",
        "Guid": c.guid, "DistinguishedName": c.dn, "Identity": c.dn,
        "WhenChanged": c.when_changed, "WhenChangedUTC": c.when_changed, **_custom(c.ca),
    }


@ONPREM_CMDLETS.register("Get-MailContact", ("Identity", "ResultSize", "DomainController"))
def get_mail_contact(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-MailContact: on-prem mail contacts."""
    objs = list(t.ad_contacts.values())
    if p.get("Identity") not in (None, ""):
        objs = [_find(t, p["Identity"], objs, lambda c: [c.name.lower(), c.dn.lower(), c.mail.lower()], "contact")]
    return [_contact_record(t, c) for c in _limited(t, objs, p)]
