"""Records, property names and recipient types shared by every part of the engine.

Property names are exactly Exchange's: a record is a dict keyed by them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Exchange attributes that become cloud-editable with IsExchangeCloudManaged and are
#: written back to on-prem AD (docs/exchange-facts.md#writeback-to-ad). A flip's backup and its fingerprint
#: cover exactly these.
CUSTOM_ATTRIBUTES: Final = tuple(f"CustomAttribute{i}" for i in range(1, 16))
EXTENSION_CUSTOM_ATTRIBUTES: Final = tuple(f"ExtensionCustomAttribute{i}" for i in range(1, 6))
WRITEBACK_ATTRIBUTES: Final[tuple[str, ...]] = (
    *CUSTOM_ATTRIBUTES,
    *EXTENSION_CUSTOM_ATTRIBUTES,
    "EmailAddresses",
    "PrimarySmtpAddress",
    "RecipientTypeDetails",
    "HiddenFromAddressListsEnabled",
)

#: Mailbox types that IsExchangeCloudManaged applies to (dir-synced only).
FLIP_TYPES: Final = frozenset({"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox"})

#: Types that count as "a mailbox" in PreviousRecipientTypeDetails.
MAILBOX_TYPES: Final = frozenset(
    {"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox", "LinkedMailbox", "SchedulingMailbox"}
)

#: Columns of the inventory DataFrame (one row per EXO recipient, index = ExternalDirectoryObjectId).
#: EXO-side columns keep Exchange's names. Multi-valued columns hold tuples of str.
INVENTORY_COLUMNS: Final[tuple[str, ...]] = (
    "ExternalDirectoryObjectId",
    "Guid",
    "ExchangeGuid",
    "ArchiveGuid",
    "UserPrincipalName",
    "PrimarySmtpAddress",
    "Alias",
    "DisplayName",
    "EmailAddresses",
    "LegacyExchangeDN",
    "RecipientType",
    "RecipientTypeDetails",
    "PreviousRecipientTypeDetails",
    "IsDirSynced",
    "IsExchangeCloudManaged",
    "WhenChanged",
    "WhenChangedUTC",
    "HiddenFromAddressListsEnabled",
    *CUSTOM_ATTRIBUTES,
    *EXTENSION_CUSTOM_ATTRIBUTES,
)

#: Columns of the on-prem DataFrame (from Export-ExocmOnPrem.ps1 CSV or PSRP), before the join.
ONPREM_COLUMNS: Final[tuple[str, ...]] = (
    "UserPrincipalName",
    "PrimarySmtpAddress",
    "Alias",
    "RecipientTypeDetails",
    "ExchangeGuid",
    "ArchiveGuid",
    "LegacyExchangeDN",
    "EmailAddresses",
    "WhenChanged",
    *CUSTOM_ATTRIBUTES,
    *EXTENSION_CUSTOM_ATTRIBUTES,
    "DistinguishedName",
    "OrganizationalUnit",
    "ExternalDirectoryObjectId",
    "WhenCreated",
)

EMPTY_GUID: Final = "00000000-0000-0000-0000-000000000000"

# --- object kinds ----------------------------------------------------------------------------
# A kind is what a row is (docs/architecture.md "Object kinds"): a mailbox changes its Exchange
# attribute SOA through EXO (IsExchangeCloudManaged); a group, contact or user changes its
# object SOA through Microsoft Graph (onPremisesSyncBehavior.isCloudManaged; docs/exchange-facts.md
# "Object-level SOA through Graph").
MAILBOX: Final = "mailbox"
GROUP: Final = "group"
CONTACT: Final = "contact"
USER: Final = "user"
#: Every kind, in the order faces show them.
OBJECT_KINDS: Final[tuple[str, ...]] = (MAILBOX, GROUP, CONTACT, USER)
#: Kinds whose source of authority changes through Graph.
GRAPH_KINDS: Final[tuple[str, ...]] = (GROUP, CONTACT, USER)
#: What faces call each kind (plural, for switchers and headings).
KIND_LABELS: Final[dict[str, str]] = {MAILBOX: "Mailboxes", GROUP: "Groups", CONTACT: "Contacts", USER: "Users"}
#: Graph collection of each Graph kind.
GRAPH_COLLECTIONS: Final[dict[str, str]] = {GROUP: "groups", CONTACT: "contacts", USER: "users"}
#: Graph version that serves onPremisesSyncBehavior per kind: v1.0 for groups, beta (preview)
#: for contacts and users (Graph docs `onpremisessyncbehavior-get`).
SYNC_BEHAVIOR_VERSIONS: Final[dict[str, str]] = {GROUP: "v1.0", CONTACT: "beta", USER: "beta"}
#: The application permission that reads and writes onPremisesSyncBehavior per kind (least
#: privileged; Graph docs `onpremisessyncbehavior-update`).
SYNC_BEHAVIOR_PERMISSIONS: Final[dict[str, str]] = {
    GROUP: "Group-OnPremisesSyncBehavior.ReadWrite.All",
    CONTACT: "Contacts-OnPremisesSyncBehavior.ReadWrite.All",
    USER: "User-OnPremisesSyncBehavior.ReadWrite.All",
}
#: The permission that lists each kind (with its members and owners for groups).
READ_PERMISSIONS: Final[dict[str, str]] = {
    GROUP: "GroupMember.Read.All (or Group.Read.All)",
    CONTACT: "OrgContact.Read.All",
    USER: "User.Read.All",
}

#: Group types exocm tells apart (column GroupType of the group inventory).
GROUP_TYPES: Final[tuple[str, ...]] = ("Distribution", "MailEnabledSecurity", "Security", "Microsoft365", "Dynamic")

#: Columns every object inventory has (index = the Entra object id, named ExternalDirectoryObjectId
#: as in EXO: the same id). Multi-valued columns hold tuples of str.
OBJECT_COLUMNS: Final[tuple[str, ...]] = (
    "ExternalDirectoryObjectId",
    "DisplayName",
    "Mail",
    "MailNickname",
    "ProxyAddresses",
    "OnPremisesSyncEnabled",
    "IsCloudManaged",
    "OnPremisesLastSyncDateTime",
    "OnPremisesSamAccountName",
    "ExtensionAttributes",
)
#: Extra columns of the group inventory.
GROUP_COLUMNS: Final[tuple[str, ...]] = (
    "GroupType",
    "GroupTypes",
    "MailEnabled",
    "SecurityEnabled",
    "MembershipRule",
    "MemberCount",
    "OwnerCount",
    "ChildGroups",
    "ParentGroups",
    "CloudOnlyMembers",
    "LicenseCount",
    "WrittenBack",
)
#: Extra columns of the user inventory.
USER_COLUMNS: Final[tuple[str, ...]] = ("UserPrincipalName",)


def object_columns(kind: str) -> tuple[str, ...]:
    """The inventory columns of a Graph kind."""
    if kind == GROUP:
        return OBJECT_COLUMNS + GROUP_COLUMNS
    if kind == USER:
        return OBJECT_COLUMNS + USER_COLUMNS
    return OBJECT_COLUMNS


def check_kind(kind: str | None, *, allow_mailbox: bool = True) -> str:
    """`kind` lower-cased when it is a known kind (None reads as mailbox); ValueError names the known ones."""
    value = (kind or MAILBOX).strip().lower()
    known = OBJECT_KINDS if allow_mailbox else GRAPH_KINDS
    if value not in known:
        raise ValueError(f"unknown object kind {kind!r}; known: {', '.join(known)}")
    return value

#: Get-OrganizationConfig properties that may show the tenant default (true = new mailboxes are
#: cloud-managed), in the order they are read: Microsoft names the switch of Set-OrganizationConfig
#: but not the output property; public tools read BlockExchangeProvisioningFromOnPremEnabled
#: (docs/exchange-facts.md#tenant-wide-default).
TENANT_DEFAULT_PROPERTIES: Final = ("ExchangeAttributesCloudManagedByDefault",
                                    "BlockExchangeProvisioningFromOnPremEnabled")


def tenant_default_of(config: object) -> tuple[bool | None, str | None]:
    """(value, property that answered) from a Get-OrganizationConfig record (a mapping): the first of
    TENANT_DEFAULT_PROPERTIES that reads as true/false (case-insensitive names); (None, None) otherwise."""
    items = getattr(config, "items", None)
    if not callable(items):
        return None, None
    by_lower = {str(k).lower(): v for k, v in items()}
    for name in TENANT_DEFAULT_PROPERTIES:
        value = by_lower.get(name.lower())
        if isinstance(value, str):
            value = {"true": True, "false": False, "$true": True, "$false": False}.get(value.strip().lower())
        if isinstance(value, bool):
            return value, name
    return None, None


#: The EXO names of what Cloud Sync's "EXO to AD attribute sync" writes back (Phase 2): mail,
#: proxyAddresses, extensionAttribute1-15, msExchExtensionCustomAttribute1-5,
#: msExchRecipientDisplayType/-TypeDetails (docs/exchange-facts.md#writeback-to-ad).
PHASE2_WRITEBACK_ATTRIBUTES: Final[tuple[str, ...]] = (
    "PrimarySmtpAddress", "EmailAddresses", *CUSTOM_ATTRIBUTES, *EXTENSION_CUSTOM_ATTRIBUTES, "RecipientTypeDetails",
)


@dataclass(frozen=True)
class Writeback:
    """Whether cloud edits of a cloud-managed mailbox reach AD, as read from Graph.

    `configured`: True (a Cloud Sync EXO-to-AD job exists), False (none), None (not known: Graph
    not reachable or not allowed). `attributes`: the EXO attributes written back when configured.
    `source`: one line saying how it was learned."""

    configured: bool | None
    attributes: tuple[str, ...] = ()
    source: str = ""

    @property
    def label(self) -> str:
        """'on', 'off' or 'unknown'."""
        return "unknown" if self.configured is None else ("on" if self.configured else "off")

    def reaches_ad(self, attribute: str) -> bool | None:
        """Does a cloud edit of `attribute` reach AD? None when not known."""
        if self.configured is None:
            return None
        return self.configured and attribute in self.attributes
