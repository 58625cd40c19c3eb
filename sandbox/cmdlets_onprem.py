"""On-prem Exchange Management Shell and AD cmdlets of the sandbox (`invoke(..., side="onprem")`).

Exchange: Get-Mailbox (local mailboxes), Get-RemoteMailbox, Get-User, Set-Mailbox,
Set-RemoteMailbox, Enable-Mailbox, Disable-Mailbox, Enable-RemoteMailbox, Disable-RemoteMailbox.
AD (ActiveDirectory module, what runbooks need): Get-ADGroup (cmdlets_onprem_groups.py), Get-ADGroupMember,
Add-ADGroupMember, Remove-ADGroupMember. Every on-prem write bumps the AD object's
whenChanged and queues it for the next delta sync.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from exocm.sandbox.cmdlets import (
    CmdletTable,
    edit_custom_attributes,
    identity_text,
    multi_value_edit,
    no_change_warning,
    result_size,
    to_bool,
    to_list,
)
from exocm.sandbox.errors import CmdletError
from exocm.sandbox.identity import matches_proxy, normalize_guid, proxy_query
from exocm.sandbox.objects import (
    EMPTY_GUID,
    ONPREM_LOCAL_MAILBOX_TYPES,
    REMOTE_RECIPIENT_TYPE,
    REMOTE_TO_EXO,
    AdGroup,
    AdUser,
    primary_smtp,
    recipient_type,
)
from exocm.sandbox.opath import compile_filter
from exocm.sandbox.tenant import ONPREM_COLUMNS, Record, RecordSet, Tenant, canonical_ou
from exocm.sandbox.views import View

ONPREM_CMDLETS = CmdletTable()

CA = tuple(f"CustomAttribute{i}" for i in range(1, 16))
ECA = tuple(f"ExtensionCustomAttribute{i}" for i in range(1, 6))
ALL_ONPREM_USER_TYPES = frozenset({*ONPREM_LOCAL_MAILBOX_TYPES, *REMOTE_TO_EXO, "MailUser", "User"})

Getter = Callable[[AdUser], Any]


def onprem_legacy_dn(t: Tenant, alias: str, guid: str) -> str:
    """An on-prem legacyExchangeDN (Exchange 2013+ form)."""
    h = hashlib.md5(guid.encode(), usedforsecurity=False).hexdigest()
    return (f"/o={t.org_name}/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/"
            f"cn={h}-{alias[:8]}")


#: Each property as a Python expression over the AdUser `o` (compiled by views.View).
EXPRS: dict[str, str] = {
    "Name": "o.cn",
    "Identity": "canonical_ou(o.ou_dn) + '/' + o.cn",
    "Alias": "o.alias or ''",
    "DisplayName": "o.display_name",
    "FirstName": "o.given_name",
    "LastName": "o.surname",
    "SamAccountName": "o.sam",
    "DistinguishedName": "'CN=' + o.cn + ',' + o.ou_dn",
    "OrganizationalUnit": "canonical_ou(o.ou_dn)",
    "Guid": "o.guid",
    "ExchangeGuid": "o.exchange_guid or EMPTY_GUID",
    "ArchiveGuid": "o.archive_guid or EMPTY_GUID",
    "UserPrincipalName": "o.upn",
    "PrimarySmtpAddress": "primary_smtp(o.proxies) or ''",
    "WindowsEmailAddress": "primary_smtp(o.proxies) or ''",
    "EmailAddresses": "list(o.proxies)",
    "LegacyExchangeDN": "o.legacy_dn or ''",
    "RecipientType": "recipient_type(o.rtd or 'User')",
    "RecipientTypeDetails": "o.rtd or 'User'",
    "RemoteRoutingAddress": "('SMTP:' + o.remote_routing) if o.remote_routing else None",
    "RemoteRecipientType": "REMOTE_RECIPIENT_TYPE.get(o.rtd or '', 'None')",
    "HiddenFromAddressListsEnabled": "o.hidden",
    "EmailAddressPolicyEnabled": "True",
    "Database": "'DB01' if o.rtd in LOCAL else None",
    "ExternalDirectoryObjectId": "o.entra_id or ''",
    "Department": "o.department",
    "WhenChanged": "o.when_changed",
    "WhenChangedUTC": "o.when_changed",
    "WhenCreated": "o.when_created",
    "WhenCreatedUTC": "o.when_created",
    **{f"CustomAttribute{i}": f"(o.ca or _E).get({i}) or ''" for i in range(1, 16)},
    **{f"ExtensionCustomAttribute{i}": f"list((o.eca or _E).get({i}) or ())" for i in range(1, 6)},
}
_NS = {"canonical_ou": canonical_ou, "EMPTY_GUID": EMPTY_GUID, "primary_smtp": primary_smtp,
       "recipient_type": recipient_type, "REMOTE_RECIPIENT_TYPE": REMOTE_RECIPIENT_TYPE,
       "LOCAL": ONPREM_LOCAL_MAILBOX_TYPES}


_BASE = ("Identity", "Name", "Alias", "DisplayName", "DistinguishedName", "OrganizationalUnit", "Guid",
         "ExchangeGuid", "ArchiveGuid", "UserPrincipalName", "PrimarySmtpAddress", "WindowsEmailAddress",
         "EmailAddresses", "LegacyExchangeDN", "RecipientType", "RecipientTypeDetails",
         "HiddenFromAddressListsEnabled", "EmailAddressPolicyEnabled", *CA, *ECA, "ExternalDirectoryObjectId",
         "WhenChanged", "WhenChangedUTC", "WhenCreated", "WhenCreatedUTC")
MAILBOX_PROPS = (*_BASE, "Database", "SamAccountName")
REMOTE_PROPS = (*_BASE, "RemoteRoutingAddress", "RemoteRecipientType", "SamAccountName")
USER_PROPS = ("Identity", "Name", "DisplayName", "FirstName", "LastName", "SamAccountName", "DistinguishedName",
              "OrganizationalUnit", "Guid", "UserPrincipalName", "WindowsEmailAddress", "RecipientType",
              "RecipientTypeDetails", "Department", "WhenChanged", "WhenChangedUTC", "WhenCreated", "WhenCreatedUTC")


VIEWS = {
    "mailbox": View(EXPRS, MAILBOX_PROPS, _NS),
    "remote": View(EXPRS, REMOTE_PROPS, _NS),
    "user": View(EXPRS, USER_PROPS, _NS),
    "export": View(EXPRS, ONPREM_COLUMNS, _NS),
}


def _view(t: Tenant, kind: str) -> View:
    return VIEWS[kind]  # on-prem views need nothing tenant-specific


def export_row(t: Tenant, a: AdUser) -> Record:
    """One row of the on-prem export (ONPREM_COLUMNS) for a local or remote mailbox."""
    return VIEWS["export"].build(a)


# ----------------------------------------------------------------------------- identity
def not_found(t: Tenant, identity: str) -> CmdletError:
    """On-prem Exchange's error for an unknown identity (text from Exchange Server)."""
    return CmdletError(
        "ManagementObjectNotFoundException",
        "ObjectNotFound",
        f"The operation couldn't be performed because object '{identity}' couldn't be found on '{t.onprem_dc}'.",
        http_status=404,
    )


def resolve(t: Tenant, identity: Any, scope: frozenset[str]) -> AdUser:
    """Resolve an Exchange -Identity among on-prem users whose type is in `scope`."""
    text = identity_text(identity)
    candidates = t.ad_index.find(text)
    low = text.lower()
    if not candidates and (low.startswith("cn=") or "/" in text):
        # DistinguishedName or canonical name ("contoso.com/Accounts/Sales/John Doe").
        candidates = [a for a in t.ad_users.values()
                      if a.dn.lower() == low or f"{canonical_ou(a.ou_dn)}/{a.cn}".lower() == low]
    pq = proxy_query(text)
    if pq is not None:
        candidates = [a for a in candidates if matches_proxy(pq, a.proxies, a.legacy_dn)]
    hits = [a for a in candidates if (a.rtd or "User") in scope]
    if not hits:
        raise not_found(t, text)
    if len(hits) > 1:
        raise CmdletError("ManagementObjectAmbiguousException", "InvalidArgument",
                          f"The operation couldn't be performed because '{text}' matches multiple entries.")
    return hits[0]


def _ad_not_found(t: Tenant, identity: str) -> CmdletError:
    # ActiveDirectory module's error (text from the AD module).
    return CmdletError("ADIdentityNotFoundException", "ObjectNotFound",
                       f"Cannot find an object with identity: '{identity}' under: '{t.onprem_dc_dn}'.",
                       http_status=404)


def resolve_ad_user(t: Tenant, identity: Any) -> AdUser:
    """AD cmdlet identity: distinguishedName, objectGUID or sAMAccountName (ActiveDirectory module rules)."""
    text = identity_text(identity)
    low = text.lower()
    g = normalize_guid(text)
    if g is not None and g in t.ad_users:
        return t.ad_users[g]
    for a in t.ad_index.find(text):
        if a.sam.lower() == low or a.dn.lower() == low:
            return a
    if low.startswith("cn="):
        for a in t.ad_users.values():
            if a.dn.lower() == low:
                return a
    raise _ad_not_found(t, text)


def resolve_ad_group(t: Tenant, identity: Any) -> AdGroup:
    """AD group identity: distinguishedName, objectGUID, sAMAccountName or name."""
    text = identity_text(identity)
    low = text.lower()
    g = normalize_guid(text)
    if g is not None and g in t.ad_groups:
        return t.ad_groups[g]
    hits = t.ad_group_index.find(text)
    if not hits and low.startswith("cn="):
        hits = [x for x in t.ad_groups.values() if x.dn.lower() == low]
    if len(hits) != 1:
        raise _ad_not_found(t, text)
    return hits[0]


# ----------------------------------------------------------------------------- Get-*
def _get(t: Tenant, p: dict[str, Any], scope: frozenset[str], kind: str) -> RecordSet:
    view = _view(t, kind)
    if p.get("Identity") not in (None, ""):
        return RecordSet([resolve(t, p["Identity"], scope)], view.build)
    limit = result_size(p.get("ResultSize"))
    allowed = scope
    if p.get("RecipientTypeDetails") is not None:
        wanted = {x.strip().lower() for v in to_list(p["RecipientTypeDetails"]) for x in v.split(",")}
        allowed = frozenset(s for s in scope if s.lower() in wanted)
    pred = compile_filter(str(p["Filter"]), view.filterable) if p.get("Filter") not in (None, "") else None
    objs: list[AdUser] = []
    truncated = False
    for a in t.ad_users.values():
        if (a.rtd or "User") not in allowed:
            continue
        if pred is not None and not pred(a):
            continue
        if limit is not None and len(objs) >= limit:
            truncated = True
            break
        objs.append(a)
    if truncated:
        # Exchange's truncation warning (text from Exchange).
        t.warn("There are more results available than are currently displayed. To view them, increase the "
               "value for the ResultSize parameter.")
    return RecordSet(objs, view.build)


_GET = ("Identity", "ResultSize", "Filter", "DomainController")


@ONPREM_CMDLETS.register("Get-Mailbox", (*_GET, "RecipientTypeDetails", "PublicFolder"))
def get_mailbox(t: Tenant, p: dict[str, Any]) -> RecordSet | list[Record]:
    """On-prem Get-Mailbox: mailboxes hosted on the on-prem Exchange server; with -PublicFolder,
    the public folder mailboxes (Exchange 2013+ keeps public folders in such mailboxes)."""
    if p.get("PublicFolder") is not None and to_bool(p["PublicFolder"], "PublicFolder"):
        return [{"Name": name, "Alias": name, "RecipientTypeDetails": "PublicFolderMailbox",
                 "Database": "DB01", "IsRootPublicFolderMailbox": i == 0}
                for i, name in enumerate(t.readiness.public_folder_mailboxes)]
    return _get(t, p, ONPREM_LOCAL_MAILBOX_TYPES, "mailbox")


# ----------------------------------------------------------------------------- organisation objects
# What the readiness checks read on the Exchange server: public folders and the hybrid objects the
# Hybrid Configuration Wizard created (docs/exchange-facts.md#readiness-the-last-exchange-server). The
# objects' names are HCW's; the property sets are abridged to what identifies them.

@ONPREM_CMDLETS.register("Get-PublicFolder", ("Identity", "Recurse", "ResultSize", "Mailbox"))
def get_public_folder(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-PublicFolder [-Identity \\] [-Recurse]: the folder tree (the root IPM_SUBTREE is "\\")."""
    if not t.readiness.public_folder_mailboxes:
        # Exchange's error when the organisation has no public folder mailbox (text from Exchange).
        raise CmdletError("NoActivePublicFolderMailboxFoundException", "InvalidOperation",
                          "No active public folder mailboxes were found. This happens when no public folder "
                          "mailboxes are provisioned or they are provisioned in 'HoldForMigration' mode.",
                          http_status=400)
    folders = ["\\", *t.readiness.public_folders] if p.get("Recurse") is not None else ["\\"]
    return [{"Identity": f, "Name": f.rsplit("\\", 1)[-1] or "IPM_SUBTREE", "ParentPath": f.rsplit("\\", 1)[0] or None,
             "MailEnabled": False, "ContentMailboxName": t.readiness.public_folder_mailboxes[0]} for f in folders]


def _hybrid_records(t: Tenant, kind: str) -> list[Record]:
    return [{"Name": name, "Identity": name} for name in t.readiness.hybrid.get(kind, [])]


@ONPREM_CMDLETS.register("Get-HybridConfiguration", ("DomainController",))
def get_hybrid_configuration(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-HybridConfiguration: the HCW's configuration object (none once removed)."""
    return [{**r, "Domains": [t.onprem_domain], "Features": ["FreeBusy", "MoveMailbox", "Mailtips",
                                                                  "MessageTracking", "OwaRedirection",
                                                                  "OnlineArchive", "SecureMail", "Photos"]}
            for r in _hybrid_records(t, "HybridConfiguration")]


@ONPREM_CMDLETS.register("Get-IntraOrganizationConnector", ("Identity", "DomainController"))
def get_intra_organization_connector(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-IntraOrganizationConnector (HCW's OAuth connector to Exchange Online)."""
    return [{**r, "Enabled": True, "TargetAddressDomains": [t.routing_domain],
             "DiscoveryEndpoint": "https://autodiscover-s.outlook.com/autodiscover/autodiscover.svc"}
            for r in _hybrid_records(t, "IntraOrganizationConnector")]


@ONPREM_CMDLETS.register("Get-SendConnector", ("Identity", "DomainController"))
def get_send_connector(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-SendConnector: an internet connector, plus HCW's "Outbound to Office 365" (CloudServicesMailEnabled)."""
    own = [{"Name": "Internet", "Identity": "Internet", "AddressSpaces": ["SMTP:*;1"],
            "CloudServicesMailEnabled": False, "Enabled": True}]
    return own + [{**r, "AddressSpaces": [f"smtp:{t.routing_domain};1"], "CloudServicesMailEnabled": True,
                   "Enabled": True} for r in _hybrid_records(t, "SendConnector")]


@ONPREM_CMDLETS.register("Get-ReceiveConnector", ("Identity", "Server", "DomainController"))
def get_receive_connector(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-ReceiveConnector: HCW adds TlsDomainCapabilities AcceptCloudServicesMail to the frontend one."""
    hybrid = set(t.readiness.hybrid.get("ReceiveConnector", []))
    names = ["EX01\\Default Frontend EX01", "EX01\\Client Frontend EX01", *sorted(hybrid)]
    out: list[Record] = []
    for name in dict.fromkeys(names):
        caps = ["mail.protection.outlook.com:AcceptCloudServicesMail"] if name in hybrid else []
        out.append({"Name": name.split("\\", 1)[-1], "Identity": name, "TlsDomainCapabilities": caps,
                    "Enabled": True})
    return out


@ONPREM_CMDLETS.register("Get-OrganizationRelationship", ("Identity", "DomainController"))
def get_organization_relationship(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-OrganizationRelationship (HCW's free/busy relationship with Exchange Online)."""
    return [{**r, "DomainNames": [t.domain, t.routing_domain], "Enabled": True, "FreeBusyAccessEnabled": True}
            for r in _hybrid_records(t, "OrganizationRelationship")]


@ONPREM_CMDLETS.register("Get-FederationTrust", ("Identity", "DomainController"))
def get_federation_trust(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-FederationTrust (the trust with the Microsoft Federation Gateway)."""
    return [{**r, "ApplicationUri": f"FYDIBOHF25SPDLT.{t.onprem_domain}"}
            for r in _hybrid_records(t, "FederationTrust")]


@ONPREM_CMDLETS.register("Get-RemoteMailbox", _GET)
def get_remote_mailbox(t: Tenant, p: dict[str, Any]) -> RecordSet:
    """On-prem Get-RemoteMailbox: users whose mailbox is in Exchange Online."""
    return _get(t, p, frozenset(REMOTE_TO_EXO), "remote")


@ONPREM_CMDLETS.register("Get-User", (*_GET, "RecipientTypeDetails"))
def get_user(t: Tenant, p: dict[str, Any]) -> RecordSet:
    """On-prem Get-User: every AD user."""
    return _get(t, p, ALL_ONPREM_USER_TYPES, "user")


# ----------------------------------------------------------------------------- Set-*
_ATTR = (*CA, *ECA, "EmailAddresses", "HiddenFromAddressListsEnabled", "PrimarySmtpAddress", "DisplayName",
         "EmailAddressPolicyEnabled")


def _apply_recipient_edits(t: Tenant, a: AdUser, p: dict[str, Any]) -> bool:
    """Apply attribute parameters shared by Set-Mailbox / Set-RemoteMailbox; True when something changed."""
    before = (dict(a.ca or {}), {k: list(v) for k, v in (a.eca or {}).items()}, list(a.proxies), a.hidden,
              a.display_name, a.exchange_guid, a.archive_guid, a.remote_routing)
    proxies = list(a.proxies)
    if "EmailAddresses" in p:
        proxies = multi_value_edit(proxies, p["EmailAddresses"])
    if p.get("PrimarySmtpAddress"):
        new = str(p["PrimarySmtpAddress"]).removeprefix("SMTP:").removeprefix("smtp:")
        proxies = ["smtp:" + x[5:] if x.startswith("SMTP:") else x for x in proxies]
        proxies = [x for x in proxies if x.lower() != f"smtp:{new.lower()}"]
        proxies.insert(0, f"SMTP:{new}")
    primaries = [x for x in proxies if x.startswith("SMTP:")]
    if len(primaries) > 1:
        keep = primaries[-1]
        proxies = ["smtp:" + x[5:] if x.startswith("SMTP:") and x is not keep else x for x in proxies]
    if a.rtd is not None and proxies and not any(x.startswith("SMTP:") for x in proxies):
        raise CmdletError("InvalidOperationException", "InvalidOperation",
                          f"The primary SMTP address of '{a.cn}' can't be removed. (sandbox message)")
    exchange_guid = a.exchange_guid
    if "ExchangeGuid" in p:
        raw = str(p["ExchangeGuid"] or "")
        g = normalize_guid(raw) if raw else None
        if raw and g is None:
            raise CmdletError("ParameterBindingException", "InvalidArgument",
                              f"Cannot bind parameter 'ExchangeGuid'. Cannot convert value \"{raw}\" to type "
                              "\"System.Guid\".")
        exchange_guid = None if g in (None, EMPTY_GUID) else g
    archive_guid = a.archive_guid
    if "ArchiveGuid" in p:
        raw = str(p["ArchiveGuid"] or "")
        archive_guid = normalize_guid(raw) if raw else None
    ca, eca = edit_custom_attributes(a.ca, a.eca, p)
    with t.editing_ad(a, touch=False):
        a.ca, a.eca = ca, eca
        if "HiddenFromAddressListsEnabled" in p:
            a.hidden = to_bool(p["HiddenFromAddressListsEnabled"], "HiddenFromAddressListsEnabled")
        if p.get("DisplayName"):
            a.display_name = str(p["DisplayName"])
        if p.get("RemoteRoutingAddress"):
            a.remote_routing = str(p["RemoteRoutingAddress"]).removeprefix("SMTP:").removeprefix("smtp:")
        a.proxies = proxies
        a.exchange_guid = exchange_guid
        a.archive_guid = archive_guid
    after = (dict(a.ca or {}), {k: list(v) for k, v in (a.eca or {}).items()}, list(a.proxies), a.hidden,
             a.display_name, a.exchange_guid, a.archive_guid, a.remote_routing)
    if before != after:
        a.when_changed = t.now()
        t.pending_ad.add(a.guid)
        return True
    return False


def _whatif(p: dict[str, Any]) -> bool:
    return "WhatIf" in p and to_bool(p["WhatIf"], "WhatIf")


@ONPREM_CMDLETS.register("Set-RemoteMailbox", ("Identity", *_ATTR, "ExchangeGuid", "ArchiveGuid",
                                               "RemoteRoutingAddress", "DomainController"), required=("Identity",))
def set_remote_mailbox(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Set-RemoteMailbox: ExchangeGuid, EmailAddresses (full list or @{Add=..;Remove=..}), attributes."""
    a = resolve(t, p["Identity"], frozenset(REMOTE_TO_EXO))
    if _whatif(p):
        return []
    if not _apply_recipient_edits(t, a, p):
        t.warn(no_change_warning(a.cn))
    return []


@ONPREM_CMDLETS.register("Set-Mailbox", ("Identity", *_ATTR, "DomainController"), required=("Identity",))
def set_mailbox(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """On-prem Set-Mailbox for local mailboxes (attributes only)."""
    a = resolve(t, p["Identity"], ONPREM_LOCAL_MAILBOX_TYPES)
    if _whatif(p):
        return []
    if not _apply_recipient_edits(t, a, p):
        t.warn(no_change_warning(a.cn))
    return []


def _policy_addresses(t: Tenant, alias: str, primary: str | None = None) -> list[str]:
    """Addresses the default email address policy stamps: primary @onprem domain + the hybrid routing address."""
    return [f"SMTP:{primary or f'{alias}@{t.onprem_domain}'}", f"smtp:{alias}@{t.routing_domain}"]


def _clear_exchange_attributes(a: AdUser) -> None:
    a.rtd = None
    a.proxies = []
    a.exchange_guid = None
    a.archive_guid = None
    a.legacy_dn = None
    a.remote_routing = None
    a.hidden = False
    a.alias = None


@ONPREM_CMDLETS.register("Disable-Mailbox", ("Identity", "IgnoreLegalHold", "DomainController"),
                         required=("Identity",))
def disable_mailbox(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Disable-Mailbox: remove the Exchange attributes; the on-prem mailbox becomes disconnected."""
    a = resolve(t, p["Identity"], ONPREM_LOCAL_MAILBOX_TYPES)
    if _whatif(p):
        return []
    with t.editing_ad(a):
        _clear_exchange_attributes(a)
    return []


@ONPREM_CMDLETS.register("Disable-RemoteMailbox", ("Identity", "DomainController"), required=("Identity",))
def disable_remote_mailbox(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Disable-RemoteMailbox: remove the Exchange attributes of a remote mailbox user."""
    a = resolve(t, p["Identity"], frozenset(REMOTE_TO_EXO))
    if _whatif(p):
        return []
    with t.editing_ad(a):
        _clear_exchange_attributes(a)
    return []


def _enable_target(t: Tenant, identity: Any) -> AdUser:
    a = resolve(t, identity, ALL_ONPREM_USER_TYPES)
    if a.rtd is not None:
        # Exchange's refusal to mail-enable a mail-enabled user (wording approximate; sandbox-made).
        raise CmdletError("RecipientTaskException", "InvalidArgument",
                          f"The user '{a.cn}' is already mail-enabled (RecipientTypeDetails is {a.rtd}).")
    return a


@ONPREM_CMDLETS.register("Enable-Mailbox", ("Identity", "Alias", "PrimarySmtpAddress", "Database",
                                            "DomainController"), required=("Identity",))
def enable_mailbox(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Enable-Mailbox: create an on-prem mailbox (new ExchangeGuid) for a user without one."""
    a = _enable_target(t, p["Identity"])
    if _whatif(p):
        return []
    alias = str(p.get("Alias") or a.sam).lower()
    with t.editing_ad(a):
        a.rtd = "UserMailbox"
        a.alias = alias
        a.exchange_guid = t.new_guid()
        a.legacy_dn = onprem_legacy_dn(t, alias, a.exchange_guid)
        a.proxies = _policy_addresses(t, alias, p.get("PrimarySmtpAddress"))
    return [_view(t, "mailbox").build(a)]


@ONPREM_CMDLETS.register("Enable-RemoteMailbox", ("Identity", "RemoteRoutingAddress", "Alias", "PrimarySmtpAddress",
                                                  "Shared", "Room", "Equipment", "DomainController"),
                         required=("Identity", "RemoteRoutingAddress"))
def enable_remote_mailbox(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Enable-RemoteMailbox: make a user a RemoteMailbox (no ExchangeGuid until Set-RemoteMailbox sets it)."""
    a = _enable_target(t, p["Identity"])
    if _whatif(p):
        return []
    kind = "RemoteUserMailbox"
    for switch, k in (("Shared", "RemoteSharedMailbox"), ("Room", "RemoteRoomMailbox"),
                      ("Equipment", "RemoteEquipmentMailbox")):
        if switch in p and to_bool(p[switch], switch):
            kind = k
    alias = str(p.get("Alias") or a.sam).lower()
    routing = str(p["RemoteRoutingAddress"]).removeprefix("SMTP:").removeprefix("smtp:")
    with t.editing_ad(a):
        a.rtd = kind
        a.alias = alias
        a.remote_routing = routing
        a.exchange_guid = None
        a.legacy_dn = onprem_legacy_dn(t, alias, a.guid)
        proxies = _policy_addresses(t, alias, p.get("PrimarySmtpAddress"))
        if not any(x.lower() == f"smtp:{routing.lower()}" for x in proxies):
            proxies.append(f"smtp:{routing}")
        a.proxies = proxies
    return [_view(t, "remote").build(a)]


# ----------------------------------------------------------------------------- AD groups
def _ad_member_record(t: Tenant, a: AdUser) -> Record:
    sid_tail = int(a.guid.replace("-", "")[:7], 16) % 900000 + 1100
    return {"distinguishedName": a.dn, "name": a.cn, "objectClass": "user", "objectGUID": a.guid,
            "SamAccountName": a.sam, "SID": f"S-1-5-21-1004336348-1177238915-682003330-{sid_tail}"}


@ONPREM_CMDLETS.register("Get-ADGroupMember", ("Identity", "Recursive", "Server"), required=("Identity",))
def get_ad_group_member(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-ADGroupMember -Identity: the group's user members."""
    g = resolve_ad_group(t, p["Identity"])
    return [_ad_member_record(t, t.ad_users[m]) for m in sorted(g.members) if m in t.ad_users]


def _member_edit(t: Tenant, p: dict[str, Any], add: bool) -> list[Record]:
    g = resolve_ad_group(t, p["Identity"])
    members = [resolve_ad_user(t, m) for m in (p["Members"] if isinstance(p["Members"], list | tuple)
                                               else [p["Members"]])]
    if _whatif(p):
        return []
    changed = False
    for a in members:
        if add and a.guid not in g.members:
            g.members.add(a.guid)
            changed = True
        elif not add and a.guid in g.members:
            g.members.discard(a.guid)
            changed = True
    if changed:
        g.when_changed = t.now()
        t.pending_groups.add(g.guid)
        t.mark("ad_groups", g.guid)
    return []


@ONPREM_CMDLETS.register("Add-ADGroupMember", ("Identity", "Members", "Server"), required=("Identity", "Members"))
def add_ad_group_member(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Add-ADGroupMember -Identity G -Members u1,u2 (synced to Entra at the next cycle)."""
    return _member_edit(t, p, add=True)


@ONPREM_CMDLETS.register("Remove-ADGroupMember", ("Identity", "Members", "Server"), required=("Identity", "Members"))
def remove_ad_group_member(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Remove-ADGroupMember -Identity G -Members u1,u2 (synced to Entra at the next cycle)."""
    return _member_edit(t, p, add=False)


# ----------------------------------------------------------------------------- AD users
#: msExchRecipientTypeDetails values in AD (Microsoft Learn / Exchange schema documentation).
MSEXCH_RTD = {
    "UserMailbox": 1, "SharedMailbox": 4, "RoomMailbox": 16, "EquipmentMailbox": 32, "MailUser": 128,
    "RemoteUserMailbox": 2147483648, "RemoteRoomMailbox": 8589934592, "RemoteEquipmentMailbox": 17179869184,
    "RemoteSharedMailbox": 34359738368,
}

def _ad_user_getters(t: Tenant) -> dict[str, Callable[[AdUser], Any]]:
    g: dict[str, Callable[[AdUser], Any]] = {
        "DistinguishedName": lambda a: a.dn,
        "Enabled": lambda a: a.enabled,
        "GivenName": lambda a: a.given_name,
        "Surname": lambda a: a.surname,
        "Name": lambda a: a.cn,
        "DisplayName": lambda a: a.display_name,
        "ObjectClass": lambda a: "user",
        "ObjectGUID": lambda a: a.guid,
        "SamAccountName": lambda a: a.sam,
        "SID": lambda a: _ad_member_record(t, a)["SID"],
        "UserPrincipalName": lambda a: a.upn,
        "Department": lambda a: a.department,
        "mail": lambda a: primary_smtp(a.proxies),
        "mailNickname": lambda a: a.alias,
        "proxyAddresses": lambda a: list(a.proxies),
        "msExchMailboxGuid": lambda a: a.exchange_guid,
        "msExchRecipientTypeDetails": lambda a: MSEXCH_RTD.get(a.rtd or ""),
        "targetAddress": lambda a: a.remote_routing and f"SMTP:{a.remote_routing}",
        "msDS-ExternalDirectoryObjectId": lambda a: a.entra_id and f"User_{a.entra_id}",
        "whenChanged": lambda a: a.when_changed,
        "whenCreated": lambda a: a.when_created,
    }
    for i in range(1, 16):
        g[f"extensionAttribute{i}"] = (lambda n: lambda a: (a.ca or {}).get(n))(i)
    return g


@ONPREM_CMDLETS.register("Get-ADUser", ("Identity", "Filter", "Properties", "Server", "SearchBase", "ResultSetSize"))
def get_ad_user(t: Tenant, p: dict[str, Any]) -> RecordSet:
    """Get-ADUser -Identity (DN, objectGUID, sAMAccountName) or -Filter (PowerShell-expression subset).

    Returns one fixed property set (the default ones plus the Exchange attributes runbooks read),
    whatever -Properties asks for. msDS-ExternalDirectoryObjectId carries the "User_" prefix as in AD.
    """
    getters = _ad_user_getters(t)
    items = tuple(getters.items())

    def build(a: AdUser) -> Record:
        return {k: g(a) for k, g in items}

    if p.get("Identity") not in (None, ""):
        return RecordSet([resolve_ad_user(t, p["Identity"])], build)
    if p.get("Filter") in (None, ""):
        # The AD module prompts for -Filter when neither is given (text from the AD module, shortened).
        raise CmdletError("ParameterBindingException", "InvalidArgument",
                          "Cannot process command because of one or more missing mandatory parameters: Filter.")
    text = str(p["Filter"]).strip()
    if text == "*":
        objs = list(t.ad_users.values())
    else:
        pred = compile_filter(text, {k.lower(): g for k, g in getters.items()})
        objs = [a for a in t.ad_users.values() if pred(a)]
    return RecordSet(objs, build)


@ONPREM_CMDLETS.register("New-ADUser", ("Name", "GivenName", "Surname", "DisplayName", "SamAccountName",
                                        "UserPrincipalName", "Path", "Department", "Enabled", "AccountPassword",
                                        "PassThru", "Server"), required=("Name",))
def new_ad_user(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """New-ADUser: a user without Exchange attributes (synced at the next cycle as an EXO User)."""
    name = str(p["Name"])
    sam = str(p.get("SamAccountName") or name.replace(" ", "").lower())[:20]
    upn = str(p.get("UserPrincipalName") or f"{sam}@{t.onprem_domain}")
    taken = [a for a in t.ad_index.find(sam) if a.sam.lower() == sam.lower()] + \
        [a for a in t.ad_index.find(upn) if a.upn.lower() == upn.lower()]
    if taken:
        # The AD module's error for a duplicate (text from the AD module).
        raise CmdletError("ADIdentityAlreadyExistsException", "ResourceExists",
                          "The specified account already exists")
    if _whatif(p):
        return []
    now = t.now()
    a = AdUser(guid=t.new_guid(), sam=sam, upn=upn, given_name=str(p.get("GivenName") or ""),
               surname=str(p.get("Surname") or ""), display_name=str(p.get("DisplayName") or name), cn=name,
               ou_dn=str(p.get("Path") or f"OU=Accounts,{t.onprem_dc_dn}"), rtd=None, alias=None, proxies=[],
               exchange_guid=None, archive_guid=None, legacy_dn=None, remote_routing=None, hidden=False, ca=None,
               eca=None, when_created=now, when_changed=now, enabled=to_bool(p.get("Enabled", True), "Enabled"),
               department=str(p.get("Department") or ""))
    t.add_ad_user(a)
    t.pending_ad.add(a.guid)
    if "PassThru" in p and to_bool(p["PassThru"], "PassThru"):
        return get_ad_user(t, {"Identity": a.guid}).to_list()
    return []


# Group and contact cmdlets (Get-ADGroup -Filter, Get-DistributionGroup, Get-MailContact) live in
# their own module; importing it registers them in ONPREM_CMDLETS.
from exocm.sandbox import cmdlets_onprem_groups  # noqa: E402, F401
