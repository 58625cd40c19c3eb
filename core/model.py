"""Records, property names and recipient types shared by every part of the engine.

Property names are exactly Exchange's: a record is a dict keyed by them.
"""
from __future__ import annotations

from typing import Final

#: Exchange attributes that become cloud-editable with IsExchangeCloudManaged and are
#: written back to on-prem AD (DESIGN section 1). A flip's backup and its fingerprint
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
