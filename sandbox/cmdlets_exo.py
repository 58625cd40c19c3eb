"""Exchange Online cmdlets of the sandbox (what `Tenant.invoke(..., side="exo")` runs).

Property sets per cmdlet follow Microsoft Learn's Get-Mailbox / Get-User / Get-MailUser /
Get-Recipient output. One difference worth knowing: PreviousRecipientTypeDetails is emitted by
Get-User, Get-MailUser and Get-Recipient but not by Get-Mailbox (the product reads it with
Get-User, docs/exchange-facts.md#stale-previousrecipienttypedetails); its "no value" form is the enum name "None", as Exchange prints it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from exocm.sandbox.cloudsync import writeback_mode
from exocm.sandbox.cmdlets import (
    CmdletTable,
    edit_custom_attributes,
    identity_text,
    multi_value_edit,
    no_change_warning,
    result_size,
    to_bool,
    to_boolean,
    to_list,
)
from exocm.sandbox.errors import CmdletError
from exocm.sandbox.identity import matches_proxy, proxy_query
from exocm.sandbox.objects import (
    EMPTY_GUID,
    FLIP_TYPES,
    MAILBOX_TYPES,
    ExoRecipient,
    primary_smtp,
    recipient_type,
)
from exocm.sandbox.opath import parse_filter
from exocm.sandbox.tenant import Record, RecordSet, Tenant
from exocm.sandbox.views import View

EXO_CMDLETS = CmdletTable()

CA = tuple(f"CustomAttribute{i}" for i in range(1, 16))
ECA = tuple(f"ExtensionCustomAttribute{i}" for i in range(1, 6))

#: RecipientTypeDetails values Exchange accepts (subset of the enum the sandbox can hold).
KNOWN_RTD = frozenset({
    "UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox", "LinkedMailbox", "SchedulingMailbox",
    "MailUser", "User", "GuestMailUser", "MailContact", "MailUniversalDistributionGroup",
    "MailUniversalSecurityGroup", "GroupMailbox", "DiscoveryMailbox", "TeamMailbox", "DisabledUser",
})

USER_SCOPE = frozenset({"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox", "MailUser", "User"})
MAILUSER_SCOPE = frozenset({"MailUser"})
RECIPIENT_SCOPE = frozenset({"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox", "MailUser"})



#: Each property as a Python expression over the ExoRecipient `o` (compiled by views.View).
EXPRS: dict[str, str] = {
    "Name": "o.name",
    "Identity": "o.name",
    "Alias": "o.alias or ''",
    "DisplayName": "o.display_name",
    "FirstName": "o.first_name",
    "LastName": "o.last_name",
    "DistinguishedName": "'CN=' + o.name + ',' + EXO_OU",
    "OrganizationalUnit": "EXO_OU_CANONICAL",
    "Guid": "o.guid",
    "ExchangeGuid": "o.exchange_guid or EMPTY_GUID",
    "ArchiveGuid": "o.archive_guid or EMPTY_GUID",
    "ArchiveStatus": "'Active' if o.archive_guid else 'None'",
    "ExternalDirectoryObjectId": "o.edoid",
    "UserPrincipalName": "o.upn",
    "PrimarySmtpAddress": "primary_smtp(o.proxies) or ''",
    "WindowsEmailAddress": "primary_smtp(o.proxies) or ''",
    "EmailAddresses": "list(o.proxies)",
    "LegacyExchangeDN": "o.legacy_dn or ''",
    "ExternalEmailAddress": "('SMTP:' + o.external_email) if o.external_email else None",
    "RecipientType": "recipient_type(o.rtd)",
    "RecipientTypeDetails": "o.rtd",
    "PreviousRecipientTypeDetails": "o.prev_rtd or 'None'",
    "IsDirSynced": "o.dir_synced",
    "IsExchangeCloudManaged": "o.cloud_managed",
    "HiddenFromAddressListsEnabled": "o.hidden",
    "IsMailboxEnabled": "o.rtd in MAILBOX_TYPES",
    "IsSoftDeletedByRemove": "False",
    "IsInactiveMailbox": "False",
    "AccountDisabled": "o.rtd in RESOURCE_TYPES",
    "WhenChanged": "o.when_changed",
    "WhenChangedUTC": "o.when_changed",
    "WhenCreated": "o.when_created",
    "WhenCreatedUTC": "o.when_created",
    **{f"CustomAttribute{i}": f"(o.ca or _E).get({i}) or ''" for i in range(1, 16)},
    **{f"ExtensionCustomAttribute{i}": f"list((o.eca or _E).get({i}) or ())" for i in range(1, 6)},
}


_COMMON = ("Identity", "Name", "Alias", "DisplayName", "DistinguishedName", "OrganizationalUnit", "Guid",
           "ExternalDirectoryObjectId", "UserPrincipalName", "PrimarySmtpAddress", "WindowsEmailAddress",
           "EmailAddresses", "LegacyExchangeDN", "RecipientType", "RecipientTypeDetails", "IsDirSynced",
           "HiddenFromAddressListsEnabled", *CA, *ECA, "WhenChanged", "WhenChangedUTC", "WhenCreated",
           "WhenCreatedUTC")
MAILBOX_PROPS = (*_COMMON, "ExchangeGuid", "ArchiveGuid", "ArchiveStatus", "IsExchangeCloudManaged",
                 "IsMailboxEnabled", "IsSoftDeletedByRemove", "IsInactiveMailbox", "AccountDisabled")
MAILUSER_PROPS = (*_COMMON, "ExchangeGuid", "ArchiveGuid", "ExternalEmailAddress", "PreviousRecipientTypeDetails",
                  "IsExchangeCloudManaged")
RECIPIENT_PROPS = (*_COMMON, "ExchangeGuid", "ArchiveGuid", "ExternalEmailAddress", "PreviousRecipientTypeDetails",
                   "IsExchangeCloudManaged")
USER_PROPS = ("Identity", "Name", "DisplayName", "FirstName", "LastName", "DistinguishedName", "OrganizationalUnit",
              "Guid", "ExternalDirectoryObjectId", "UserPrincipalName", "WindowsEmailAddress", "RecipientType",
              "RecipientTypeDetails", "PreviousRecipientTypeDetails", "IsDirSynced", "AccountDisabled",
              "WhenChanged", "WhenChangedUTC", "WhenCreated", "WhenCreatedUTC")


def _view(t: Tenant, kind: str) -> View:
    prtd_null = "prtd-null" in t.variants
    cache_key = "exo-prtd-null" if prtd_null else "exo"
    views: dict[str, View] | None = t.view_cache.get(cache_key)
    if views is None:
        exprs = EXPRS
        if prtd_null:
            # Variant prtd-null: office-docs-powershell filter-properties.md lists
            # PreviousRecipientTypeDetails as "String or $null": unset may be $null, not 'None'.
            exprs = {**EXPRS, "PreviousRecipientTypeDetails": "o.prev_rtd"}
        ns = {"EXO_OU": t.exo_ou, "EMPTY_GUID": EMPTY_GUID, "primary_smtp": primary_smtp,
              "recipient_type": recipient_type, "MAILBOX_TYPES": MAILBOX_TYPES,
              "RESOURCE_TYPES": frozenset({"SharedMailbox", "RoomMailbox", "EquipmentMailbox"}),
              "EXO_OU_CANONICAL": f"EURPR05A001.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/{t.domain}"}
        views = {
            "mailbox": View(exprs, MAILBOX_PROPS, ns),
            "mailuser": View(exprs, MAILUSER_PROPS, ns),
            "recipient": View(exprs, RECIPIENT_PROPS, ns),
            "user": View(exprs, USER_PROPS, ns),
        }
        t.view_cache[cache_key] = views
    return views[kind]


# ----------------------------------------------------------------------------- identity
def not_found(t: Tenant, identity: str) -> CmdletError:
    """EXO's error for an identity that matches nothing (text from Exchange Online)."""
    return CmdletError(
        "ManagementObjectNotFoundException",
        "ObjectNotFound",
        f"The operation couldn't be performed because object '{identity}' couldn't be found on '{t.exo_dc}'.",
        http_status=404,
    )


def ambiguous(identity: str) -> CmdletError:
    """EXO's error for an identity that matches several objects (text from Exchange Online)."""
    return CmdletError(
        "ManagementObjectAmbiguousException",
        "InvalidArgument",
        f"The operation couldn't be performed because '{identity}' matches multiple entries.",
    )


def resolve(t: Tenant, identity: Any, scope: frozenset[str]) -> ExoRecipient:
    """Resolve -Identity among objects whose RecipientTypeDetails is in `scope`."""
    text = identity_text(identity)
    candidates = t.exo_index.find(text)
    if not candidates and text.lower().startswith("cn="):
        # A DistinguishedName: resolve its CN (names are unique in the EXO organization).
        cn = re.split(r"(?<!\\),(?:OU|DC)=", text[3:], maxsplit=1, flags=re.IGNORECASE)[0]
        candidates = [r for r in t.exo_index.find(cn) if r.name.lower() == cn.lower()]
    pq = proxy_query(text)
    if pq is not None:
        candidates = [r for r in candidates if matches_proxy(pq, r.proxies, r.legacy_dn)]
    hits = [r for r in candidates if r.rtd in scope]
    if not hits:
        raise not_found(t, text)
    if len(hits) > 1:
        raise ambiguous(text)
    return hits[0]


# ----------------------------------------------------------------------------- Get-*
def _rtd_param(value: Any) -> set[str] | None:
    if value is None:
        return None
    items: list[str] = []
    for v in to_list(value):
        items.extend(x.strip() for x in v.split(",") if x.strip())
    out: set[str] = set()
    for v in items:
        match = next((k for k in KNOWN_RTD if k.lower() == v.lower()), None)
        if match is None:
            # PowerShell's enum conversion failure (shortened; sandbox wording).
            raise CmdletError(
                "ParameterBindingException",
                "InvalidArgument",
                f"Cannot bind parameter 'RecipientTypeDetails'. Cannot convert value \"{v}\" to type "
                "\"Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails\". Error: \"Unable to "
                "match the identifier name to a valid enumerator name.\"",
            )
        out.add(match)
    return out


def _get(t: Tenant, p: dict[str, Any], scope: frozenset[str], view_kind: str) -> RecordSet:
    view = _view(t, view_kind)
    if p.get("Identity") not in (None, ""):
        if p.get("Filter") not in (None, ""):
            # Identity and Filter live in different parameter sets (text from PowerShell).
            raise CmdletError("ParameterBindingException", "InvalidArgument",
                              "Parameter set cannot be resolved using the specified named parameters.")
        r = resolve(t, p["Identity"], scope)
        rtd = _rtd_param(p.get("RecipientTypeDetails"))
        return RecordSet([] if rtd is not None and r.rtd not in rtd else [r], view.build, view)
    limit = result_size(p.get("ResultSize"))
    rtd = _rtd_param(p.get("RecipientTypeDetails"))
    allowed = scope if rtd is None else scope & rtd
    source: Iterable[ExoRecipient] = t.exo.values()
    pred = None
    if p.get("Filter") not in (None, ""):
        node = parse_filter(str(p["Filter"]), view.filterable, no_wildcards=_no_wildcards(t))
        pred = node.pred
        index = t.exo_filter_index()
        hits, residual = node.candidates(index.bind(view.filterable, view.sources))
        if hits is not None:  # the index narrowed it: visit only those objects, in tenant order
            everything = index.objs
            source = [everything[i] for i in sorted(hits)]
            pred = residual
    objs: list[ExoRecipient] = []
    truncated = False
    for r in source:
        if r.rtd not in allowed:
            continue
        if pred is not None and not pred(r):
            continue
        if limit is not None and len(objs) >= limit:
            truncated = True
            break
        objs.append(r)
    if truncated:
        # Exchange's warning when ResultSize (default 1000) cut the output (text from Exchange).
        t.warn("There are more results available than are currently displayed. To view them, increase the "
               "value for the ResultSize parameter.")
    return RecordSet(objs, view.build, view)


def _no_wildcards(t: Tenant) -> dict[str, str] | None:
    """Variants edoid-no-wildcard-error / -literal: office-docs-powershell filter-properties.md lists
    ExternalDirectoryObjectId as "String or $null" without the "wildcards accepted" note."""
    if "edoid-no-wildcard-error" in t.variants:
        return {"externaldirectoryobjectid": "error"}
    if "edoid-no-wildcard-literal" in t.variants:
        return {"externaldirectoryobjectid": "literal"}
    return None


_GET_PARAMS = ("Identity", "ResultSize", "RecipientTypeDetails", "Filter")


@EXO_CMDLETS.register("Get-Mailbox", _GET_PARAMS)
def get_mailbox(t: Tenant, p: dict[str, Any]) -> RecordSet:
    """Get-Mailbox: user, shared, room and equipment mailboxes."""
    return _get(t, p, FLIP_TYPES, "mailbox")


@EXO_CMDLETS.register("Get-User", _GET_PARAMS)
def get_user(t: Tenant, p: dict[str, Any]) -> RecordSet:
    """Get-User: every user object (mailbox users, mail users, plain users)."""
    return _get(t, p, USER_SCOPE, "user")


@EXO_CMDLETS.register("Get-MailUser", ("Identity", "ResultSize", "Filter"))
def get_mailuser(t: Tenant, p: dict[str, Any]) -> RecordSet:
    """Get-MailUser: mail-enabled users."""
    return _get(t, p, MAILUSER_SCOPE, "mailuser")


@EXO_CMDLETS.register("Get-Recipient", _GET_PARAMS)
def get_recipient(t: Tenant, p: dict[str, Any]) -> RecordSet:
    """Get-Recipient: mail-enabled recipients (mailboxes and mail users; the sandbox has no groups/contacts)."""
    return _get(t, p, RECIPIENT_SCOPE, "recipient")


# ----------------------------------------------------------------------------- Set-Mailbox
_WRITEBACK_PARAMS = (*CA, *ECA, "EmailAddresses", "HiddenFromAddressListsEnabled")


def _write_scope_error(r: ExoRecipient, param: str) -> CmdletError:
    # Exchange Online's error for editing a dir-synced object's synced attribute (text from EXO).
    return CmdletError(
        "TaskInvalidOperationException",
        "InvalidOperation",
        f"The operation on mailbox \"{r.name}\" failed because it's out of the current user's write scope. "
        f"The action 'Set-Mailbox', '{param}', can't be performed on the object '{r.name}' because the object "
        "is being synchronized from your on-premises organization. This action should be performed on the "
        "object in your on-premises organization.",
    )


@EXO_CMDLETS.register("Set-Mailbox", ("Identity", "IsExchangeCloudManaged", *_WRITEBACK_PARAMS, "Force"),
                      required=("Identity",))
def set_mailbox(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Set-Mailbox -IsExchangeCloudManaged (alone), or writeback attributes of an editable mailbox.

    Returns [] (classic Exchange behaviour; newer ExchangeOnlineManagement versions emit the object,
    so clients must read back instead of trusting output presence - PEERS.md traps).
    """
    r = resolve(t, p["Identity"], FLIP_TYPES)
    whatif = to_bool(p["WhatIf"], "WhatIf") if "WhatIf" in p else False
    edits = [k for k in p if k in _WRITEBACK_PARAMS]
    if "IsExchangeCloudManaged" in p:
        if edits:
            # docs/exchange-facts.md#send-the-switch-alone: send the switch alone. The error text is the sandbox's own.
            raise CmdletError(
                "ArgumentException", "InvalidArgument",
                "IsExchangeCloudManaged can't be combined with other parameters in the same Set-Mailbox "
                "command. Run it on its own. (sandbox message)",
            )
        value = to_boolean(p["IsExchangeCloudManaged"], "IsExchangeCloudManaged")
        if not r.dir_synced:
            # The feature applies only to dir-synced mailboxes (docs/exchange-facts.md#which-mailboxes-it-applies-to). Sandbox-made text.
            raise CmdletError(
                "TaskInvalidOperationException", "InvalidOperation",
                f"IsExchangeCloudManaged can be set only on mailboxes synchronized from on-premises Active "
                f"Directory. '{r.name}' is a cloud-only mailbox (IsDirSynced is False). (sandbox message)",
            )
        if r.cloud_managed == value:
            t.warn(no_change_warning(r.name))
            return []
        if whatif:
            return []
        with t.editing_exo(r):
            r.cloud_managed = value
        if not value:
            # Flip back: SOA returns on-prem; the next sync overwrites the cloud values.
            t.pending_exo.add(r.edoid)
            t.pending_writeback.discard(r.edoid)
        return []
    if not edits:
        t.warn(no_change_warning(r.name))
        return []
    if r.dir_synced and not r.cloud_managed:
        raise _write_scope_error(r, edits[0])
    if whatif:
        return []
    changed = _apply_attribute_edits(r, p, t)
    if not changed:
        t.warn(no_change_warning(r.name))
        return []
    if r.dir_synced and r.cloud_managed:
        t.pending_writeback.add(r.edoid)
        if writeback_mode(t) == "phase2":
            # Cloud Sync's own cycle writes the Phase 2 list back (cloudsync.py); the sandbox runs it now.
            from exocm.sandbox.sync import write_back_now

            write_back_now(t, r)
    return []


def _apply_attribute_edits(r: ExoRecipient, p: dict[str, Any], t: Tenant) -> bool:
    """Apply writeback-attribute parameters; True when a value changed (WhenChanged moves only then)."""
    proxies = list(r.proxies)
    hidden = r.hidden
    if "EmailAddresses" in p:
        proxies = _validated_proxies(multi_value_edit(r.proxies, p["EmailAddresses"]), r)
        _check_unique(t, proxies, r)
    ca, eca = edit_custom_attributes(r.ca, r.eca, p)
    if "HiddenFromAddressListsEnabled" in p:
        hidden = to_boolean(p["HiddenFromAddressListsEnabled"], "HiddenFromAddressListsEnabled")
    new = (ca, eca, proxies, hidden)
    if new == (r.ca or None, r.eca or None, r.proxies, r.hidden):
        return False
    with t.editing_exo(r):
        r.ca, r.eca, r.proxies, r.hidden = new
    return True


def _check_unique(t: Tenant, proxies: list[str], r: ExoRecipient) -> None:
    """New addresses must not be anyone else's (Exchange refuses duplicates; text from Exchange)."""
    old = {p.lower() for p in r.proxies}
    for p in proxies:
        low = p.lower()
        if low in old:
            continue
        pq = low if ":" in low else f"smtp:{low}"
        for other in t.exo_index.find(pq):
            if other is not r and (matches_proxy(pq, other.proxies, other.legacy_dn)):
                raise CmdletError(
                    "ProxyAddressExistsException", "InvalidArgument",
                    f"The proxy address \"{p}\" is already being used by the proxy addresses or "
                    f"LegacyExchangeDN of \"{other.name}\". Please choose another proxy address.",
                )


def _validated_proxies(proxies: list[str], r: ExoRecipient) -> list[str]:
    """Exactly one primary SMTP; a new 'SMTP:' entry demotes the old primary (Exchange behaviour)."""
    primaries = [x for x in proxies if x.startswith("SMTP:")]
    if len(primaries) > 1:
        keep = primaries[-1]
        proxies = ["smtp:" + x[5:] if x.startswith("SMTP:") and x is not keep else x for x in proxies]
    if not any(x.startswith("SMTP:") for x in proxies):
        # Exchange refuses to remove the primary address (wording approximate; sandbox-made).
        raise CmdletError("InvalidOperationException", "InvalidOperation",
                          f"The primary SMTP address of '{r.name}' can't be removed; set another primary "
                          "address first. (sandbox message)")
    return proxies


# ----------------------------------------------------------------------------- Set-User
@EXO_CMDLETS.register("Set-User", ("Identity", "PermanentlyClearPreviousMailboxInfo", "Force"),
                      required=("Identity",))
def set_user(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Set-User -PermanentlyClearPreviousMailboxInfo: irreversible; only on a MailUser/User whose
    PreviousRecipientTypeDetails is a mailbox type (docs/exchange-facts.md#stale-previousrecipienttypedetails). Error texts are the sandbox's."""
    r = resolve(t, p["Identity"], USER_SCOPE)
    if "PermanentlyClearPreviousMailboxInfo" not in p or not to_bool(
            p["PermanentlyClearPreviousMailboxInfo"], "PermanentlyClearPreviousMailboxInfo"):
        t.warn(no_change_warning(r.name))
        return []
    if r.rtd in MAILBOX_TYPES:
        raise CmdletError(
            "TaskInvalidOperationException", "InvalidOperation",
            f"PermanentlyClearPreviousMailboxInfo can't be used on '{r.name}' because it has a mailbox "
            f"(RecipientTypeDetails is {r.rtd}). (sandbox message)",
        )
    if r.prev_rtd not in MAILBOX_TYPES:
        raise CmdletError(
            "TaskInvalidOperationException", "InvalidOperation",
            f"The user '{r.name}' has no previous mailbox information to clear (PreviousRecipientTypeDetails "
            f"is {r.prev_rtd or 'None'}). (sandbox message)",
        )
    if "WhatIf" in p and to_bool(p["WhatIf"], "WhatIf"):
        return []
    with t.editing_exo(r):
        r.prev_rtd = None
        r.disconnected_guid = None  # the cloud mailbox content is gone for good
        r.disconnected_type = None
        r.exchange_guid = None  # the next sync brings the on-prem ExchangeGuid
        r.archive_guid = None
    t.pending_exo.add(r.edoid)
    return []


# ----------------------------------------------------------------------------- organization config
#: Variant org-config-block: the output property public tools read after
#: `Set-OrganizationConfig -ExchangeAttributesCloudManagedByDefault` (mardahl/Exchange-SOA-Manager
#: `Get-OrgState`, published runbooks); no Microsoft page names the output property.
BLOCK_PROPERTY = "BlockExchangeProvisioningFromOnPremEnabled"


def _org_record(t: Tenant) -> Record:
    present = "ExchangeAttributesCloudManagedByDefault" in t.org_config  # absent: readiness variant feature-missing
    value = bool(t.org_config.get("ExchangeAttributesCloudManagedByDefault"))
    record: Record = {
        "Name": t.domain,
        "Identity": t.domain,
        "DisplayName": t.org_name,
        "Guid": t.tenant_id,
        "IsDehydrated": False,
    }
    if not present:
        pass
    elif "org-config-block" in t.variants:
        record[BLOCK_PROPERTY] = value
    else:
        record["ExchangeAttributesCloudManagedByDefault"] = value
    record["WhenChanged"] = t.org_config.get("WhenChanged")
    return record


@EXO_CMDLETS.register("Get-AcceptedDomain", ("Identity",))
def get_accepted_domain(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-AcceptedDomain: the initial domain, the on-prem domain and, when directory sync and the
    HCW created it, the hybrid routing domain <tenant>.mail.onmicrosoft.com (HCW8001 when missing)."""
    names = [(t.domain, "Authoritative", True), (t.onprem_domain, "Authoritative", False)]
    if t.readiness.routing_domain:
        names.append((t.routing_domain, "Authoritative", False))
    return [{"Name": name, "Identity": name, "DomainName": name, "DomainType": kind, "Default": default,
             "InitialDomain": name == t.domain} for name, kind, default in names]


@EXO_CMDLETS.register("Get-OrganizationConfig", ("Identity",))
def get_organization_config(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Get-OrganizationConfig (the properties the product reads)."""
    return [_org_record(t)]


@EXO_CMDLETS.register("Set-OrganizationConfig", ("ExchangeAttributesCloudManagedByDefault",
                                                 "ExchangeAttributesServerManagedByDefault", "Force"))
def set_organization_config(t: Tenant, p: dict[str, Any]) -> list[Record]:
    """Set-OrganizationConfig -ExchangeAttributesCloudManagedByDefault / -ExchangeAttributesServerManagedByDefault.

    Affects mailboxes provisioned from now on only (docs/exchange-facts.md#tenant-wide-default)."""
    cloud = "ExchangeAttributesCloudManagedByDefault" in p
    server = "ExchangeAttributesServerManagedByDefault" in p
    if cloud and server:
        # Sandbox-made text: the two are opposite switches.
        raise CmdletError("ArgumentException", "InvalidArgument",
                          "ExchangeAttributesCloudManagedByDefault and ExchangeAttributesServerManagedByDefault "
                          "can't be used together. (sandbox message)")
    if not cloud and not server:
        t.warn(no_change_warning(t.domain))
        return []
    if cloud:
        value = to_bool(p["ExchangeAttributesCloudManagedByDefault"], "ExchangeAttributesCloudManagedByDefault")
    else:
        value = not to_bool(p["ExchangeAttributesServerManagedByDefault"], "ExchangeAttributesServerManagedByDefault")
    if "WhatIf" in p and to_bool(p["WhatIf"], "WhatIf"):
        return []
    if t.org_config.get("ExchangeAttributesCloudManagedByDefault", False) == value:
        t.warn(no_change_warning(t.domain))
        return []
    t.org_config["ExchangeAttributesCloudManagedByDefault"] = value
    t.org_config["WhenChanged"] = t.now()
    return []


def is_flip_candidate(r: ExoRecipient) -> bool:
    """A dir-synced mailbox of a FLIP type (what -IsExchangeCloudManaged applies to)."""
    return r.rtd in FLIP_TYPES and r.dir_synced
