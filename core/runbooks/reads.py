"""What the built-in runbooks read from the tenant: EXO user/recipient, on-prem recipient, licenses.

Every read goes through the bridges (EXO REST, on-prem PSRP) or the Graph client; values are
normalised here (GUIDs lower-case, the all-zero GUID and "None" read as absent) so the step
functions compare plain values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from ..bridge.base import Bridge, Record
from ..bridge.errors import BridgeError, NotFound
from ..bridge.graph import GraphBridge
from ..detect.prerequisites.model import CLOUD_SYNC_APP_ID, is_exo_to_ad_template
from ..model import EMPTY_GUID, MAILBOX_TYPES, PHASE2_WRITEBACK_ATTRIBUTES, Writeback

#: On-prem recipient types of a mailbox hosted on the Exchange server.
LOCAL_MAILBOX_TYPES: Final = frozenset({"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox",
                                        "LinkedMailbox"})
#: On-prem recipient types of a mailbox that lives in Exchange Online.
REMOTE_MAILBOX_TYPES: Final = frozenset({"RemoteUserMailbox", "RemoteSharedMailbox", "RemoteRoomMailbox",
                                         "RemoteEquipmentMailbox"})
#: Service plans whose presence in a SKU provisions an Exchange Online mailbox (EXCHANGE_S_*).
EXCHANGE_PLAN_PREFIX: Final = "EXCHANGE_S_"


def guid(value: Any) -> str | None:
    """A GUID as lower-case text; None for empty, the all-zero GUID or missing."""
    text = str(value or "").strip().strip("{}").lower()
    return None if not text or text == EMPTY_GUID else text


def previous_type(record: Record) -> str | None:
    """PreviousRecipientTypeDetails, None when empty or 'None'."""
    text = str(record.get("PreviousRecipientTypeDetails") or "").strip()
    return None if text in ("", "None") else text


def has_previous_mailbox(record: Record) -> bool:
    """True when PreviousRecipientTypeDetails names a mailbox type (the stale pointer)."""
    return previous_type(record) in MAILBOX_TYPES


def proxies(record: Record | None) -> list[str]:
    """EmailAddresses as a list of strings."""
    value = (record or {}).get("EmailAddresses") or []
    return [str(v) for v in (value if isinstance(value, list | tuple) else [value])]


def has_proxy(record: Record | None, address: str) -> bool:
    """True when `address` (with its prefix) is among the record's EmailAddresses (case-insensitive)."""
    want = address.lower()
    return any(p.lower() == want for p in proxies(record))


def _one(bridge: Bridge, cmdlet: str, identity: str) -> Record | None:
    try:
        records = bridge.invoke(cmdlet, {"Identity": identity})
    except NotFound:
        return None
    return records[0] if records else None


def exo_user(exo: Bridge, key: str) -> Record | None:
    """EXO Get-User (RecipientTypeDetails, PreviousRecipientTypeDetails, IsDirSynced); None if gone."""
    return _one(exo, "Get-User", key)


def exo_recipient(exo: Bridge, key: str) -> Record | None:
    """EXO Get-Recipient (ExchangeGuid, EmailAddresses, LegacyExchangeDN); None when not mail-enabled."""
    return _one(exo, "Get-Recipient", key)


def onprem_user(onprem: Bridge, identity: str) -> Record | None:
    """On-prem Get-User (RecipientTypeDetails, Guid, SamAccountName); None if not found."""
    return _one(onprem, "Get-User", identity)


def onprem_mailbox(onprem: Bridge, identity: str) -> Record | None:
    """On-prem Get-Mailbox (a mailbox on the Exchange server); None when the user has none."""
    return _one(onprem, "Get-Mailbox", identity)


def onprem_remote_mailbox(onprem: Bridge, identity: str) -> Record | None:
    """On-prem Get-RemoteMailbox; None when the user is not a remote mailbox."""
    return _one(onprem, "Get-RemoteMailbox", identity)


def ad_group_members(onprem: Bridge, group: str) -> set[str]:
    """sAMAccountNames (lower-case) of an on-prem AD group's members (Get-ADGroupMember)."""
    return {str(m.get("SamAccountName") or "").lower() for m in onprem.invoke("Get-ADGroupMember", {"Identity": group})}


@dataclass
class LicenseSources:
    """Where a user's Exchange Online licenses come from: direct SKUs, cloud groups, synced groups."""

    direct: list[str] = field(default_factory=list)
    cloud_groups: list[dict[str, str]] = field(default_factory=list)
    synced_groups: list[dict[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when no Exchange license reaches the user."""
        return not (self.direct or self.cloud_groups or self.synced_groups)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (for facts and the audit log)."""
        return {"direct": list(self.direct), "cloud_groups": list(self.cloud_groups),
                "synced_groups": list(self.synced_groups)}


def exchange_license_sources(graph: GraphBridge, user: str) -> LicenseSources:
    """Every source of an Exchange Online license for `user` (Graph licenseAssignmentStates + licenseDetails).

    A SKU counts when one of its service plans is EXCHANGE_S_* (Microsoft Learn, "Product names
    and service plan identifiers for licensing"). Groups say whether they are synced from
    on-prem (onPremisesSyncEnabled): Graph cannot change their membership.
    """
    record = graph.get_user(user)
    exchange_skus = {str(d.get("skuId") or "").lower() for d in graph.license_details(user)
                     if any(str(p.get("servicePlanName") or "").startswith(EXCHANGE_PLAN_PREFIX)
                            for p in d.get("servicePlans") or [])}
    sources = LicenseSources()
    groups: dict[str, None] = {}
    for state in record.get("licenseAssignmentStates") or []:
        sku = str(state.get("skuId") or "").lower()
        if sku not in exchange_skus:
            continue
        by_group = state.get("assignedByGroup")
        if by_group:
            groups[str(by_group)] = None
        elif sku not in sources.direct:
            sources.direct.append(sku)
    for group_id in groups:
        info = graph.get_group(group_id)
        entry = {"id": group_id, "name": str(info.get("displayName") or group_id)}
        (sources.synced_groups if info.get("onPremisesSyncEnabled") else sources.cloud_groups).append(entry)
    return sources


def graph_group_ids(graph: GraphBridge, user: str) -> set[str]:
    """Ids of the groups `user` is a member of (Graph memberOf)."""
    return {str(g.get("id") or "").lower() for g in graph.member_of(user)}


def direct_skus(graph: GraphBridge, user: str) -> set[str]:
    """SKUs assigned to `user` directly (not through a group)."""
    record = graph.get_user(user)
    return {str(s.get("skuId") or "").lower() for s in record.get("licenseAssignmentStates") or []
            if not s.get("assignedByGroup")}


def cloud_sync_writeback(graph: GraphBridge) -> Writeback:
    """Is Cloud Sync's "EXO to AD attribute sync" configured? (Graph: the Cloud Sync service
    principal's synchronization jobs; docs/exchange-facts.md#writeback-to-ad).

    A job whose templateId names EXO-to-AD attribute sync means Phase 2 writeback of
    PHASE2_WRITEBACK_ATTRIBUTES; none means nothing reaches AD. Any Graph failure: unknown."""
    try:
        principals = graph.read_all("/servicePrincipals", params={"$filter": f"appId eq '{CLOUD_SYNC_APP_ID}'"})
        for sp in principals:
            if str(sp.get("appId", "")).lower() != CLOUD_SYNC_APP_ID:
                continue
            jobs = graph.read_all(f"/servicePrincipals/{quote(str(sp.get('id', '')), safe='')}/synchronization/jobs")
            for job in jobs:
                template = str(job.get("templateId") or job.get("id") or "")
                if is_exo_to_ad_template(template):
                    return Writeback(True, PHASE2_WRITEBACK_ATTRIBUTES, f"Cloud Sync job {template} (Graph)")
    except BridgeError as exc:
        return Writeback(None, (), f"could not read Cloud Sync jobs from Graph ({exc.message})")
    return Writeback(False, (), "no Cloud Sync EXO-to-AD job (Graph)")
