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
    "WhenCreated",
)

EMPTY_GUID: Final = "00000000-0000-0000-0000-000000000000"
