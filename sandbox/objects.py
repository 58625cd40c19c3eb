"""The sandbox's directory objects: on-prem AD (+ on-prem Exchange attributes), Entra, Exchange Online.

Plain `__slots__` dataclasses (300,000 users of each kind fit in memory); records with
Exchange's property names are built from them on demand by the cmdlet layer.
Sparse attributes (CustomAttribute1-15, ExtensionCustomAttribute1-5) are dicts holding only
the set values, keyed by the attribute number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"

#: EXO mailbox types IsExchangeCloudManaged applies to (docs/exchange-facts.md#which-mailboxes-it-applies-to).
FLIP_TYPES = frozenset({"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox"})
#: Types that count as "a mailbox" in PreviousRecipientTypeDetails (Microsoft Learn, RecipientTypeDetails).
MAILBOX_TYPES = frozenset(
    {"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox", "LinkedMailbox", "SchedulingMailbox"}
)
#: On-prem recipient types of a mailbox that lives on the on-prem Exchange server.
ONPREM_LOCAL_MAILBOX_TYPES = frozenset({"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox"})
#: On-prem RemoteMailbox types (mailbox in EXO) and the EXO type each stands for
#: (Microsoft Learn, New-RemoteMailbox -Shared/-Room/-Equipment).
REMOTE_TO_EXO = {
    "RemoteUserMailbox": "UserMailbox",
    "RemoteSharedMailbox": "SharedMailbox",
    "RemoteRoomMailbox": "RoomMailbox",
    "RemoteEquipmentMailbox": "EquipmentMailbox",
}
EXO_TO_REMOTE = {v: k for k, v in REMOTE_TO_EXO.items()}
#: On-prem msExchRemoteRecipientType names per remote type (Microsoft Learn, Get-RemoteMailbox).
REMOTE_RECIPIENT_TYPE = {
    "RemoteUserMailbox": "ProvisionMailbox",
    "RemoteSharedMailbox": "ProvisionMailbox, SharedMailbox",
    "RemoteRoomMailbox": "ProvisionMailbox, RoomMailbox",
    "RemoteEquipmentMailbox": "ProvisionMailbox, EquipmentMailbox",
}


def recipient_type(rtd: str) -> str:
    """RecipientType for a RecipientTypeDetails value (Exchange: mailboxes are all 'UserMailbox')."""
    if rtd in MAILBOX_TYPES:
        return "UserMailbox"
    if rtd == "MailUser" or rtd.startswith("Remote"):
        return "MailUser"
    return "User"


def primary_smtp(proxies: list[str]) -> str | None:
    """The address of the 'SMTP:' (upper-case prefix) entry, Exchange's primary address."""
    for p in proxies:
        if p.startswith("SMTP:"):
            return p[5:]
    return None


@dataclass(slots=True, eq=False)
class AdUser:
    """An on-prem AD user with its on-prem Exchange attributes (msExch*, proxyAddresses, ...)."""

    guid: str  # objectGUID
    sam: str  # sAMAccountName
    upn: str
    given_name: str
    surname: str
    display_name: str
    cn: str  # Name
    ou_dn: str  # "OU=Sales,OU=Accounts,DC=contoso,DC=com"
    rtd: str | None  # on-prem RecipientTypeDetails; None = no Exchange attributes (a plain User)
    alias: str | None  # mailNickname
    proxies: list[str]  # proxyAddresses
    exchange_guid: str | None  # msExchMailboxGuid
    archive_guid: str | None  # msExchArchiveGUID
    legacy_dn: str | None  # legacyExchangeDN
    remote_routing: str | None  # targetAddress (RemoteRoutingAddress) of a RemoteMailbox
    hidden: bool  # msExchHideFromAddressLists
    ca: dict[int, str] | None  # extensionAttribute1-15
    eca: dict[int, list[str]] | None  # msExchExtensionCustomAttribute1-5
    when_created: datetime
    when_changed: datetime
    entra_id: str | None = None  # msDS-ExternalDirectoryObjectId once synced (without "User_")
    enabled: bool = True
    department: str = ""
    in_sync_scope: bool = True

    @property
    def dn(self) -> str:
        """distinguishedName."""
        return f"CN={self.cn},{self.ou_dn}"


@dataclass(slots=True, eq=False)
class AdGroup:
    """An on-prem AD security group (synced to Entra when in scope)."""

    guid: str
    name: str
    sam: str
    ou_dn: str
    members: set[str] = field(default_factory=set)  # AdUser guids
    entra_id: str | None = None
    when_changed: datetime | None = None  # whenChanged: the last on-prem edit
    # Fields below were added for object-level SOA (issue 15); state files written before them
    # load with these defaults.
    kind: str = "security"  # one of AD_GROUP_KINDS
    display_name: str = ""  # "" -> name
    mail: str | None = None
    proxies: list[str] = field(default_factory=list)  # proxyAddresses
    ca: dict[int, str] | None = None  # extensionAttribute1-15
    member_groups: set[str] = field(default_factory=set)  # nested AdGroup guids
    member_contacts: set[str] = field(default_factory=set)  # AdContact guids
    sid: str | None = None  # objectSid
    in_sync_scope: bool = True

    @property
    def dn(self) -> str:
        """distinguishedName."""
        return f"CN={self.name},{self.ou_dn}"


#: On-prem group kinds: a security group (GroupCategory Security, no mail), a distribution
#: list (GroupCategory Distribution, mail-enabled) and a mail-enabled security group.
AD_GROUP_KINDS = ("security", "distribution", "mailsecurity")


@dataclass(slots=True, eq=False)
class AdContact:
    """An on-prem AD mail contact (objectClass contact with Exchange attributes)."""

    guid: str
    name: str  # cn
    display_name: str
    ou_dn: str
    mail: str  # mail / targetAddress
    proxies: list[str] = field(default_factory=list)
    given_name: str = ""
    surname: str = ""
    company: str = ""
    ca: dict[int, str] | None = None  # extensionAttribute1-15
    entra_id: str | None = None
    when_changed: datetime | None = None
    in_sync_scope: bool = True

    @property
    def dn(self) -> str:
        """distinguishedName."""
        return f"CN={self.name},{self.ou_dn}"


@dataclass(slots=True, eq=False)
class EntraUser:
    """An Entra ID user (Graph `user`)."""

    id: str  # Entra object id == EXO ExternalDirectoryObjectId
    upn: str
    display_name: str
    given_name: str
    surname: str
    sync_enabled: bool  # onPremisesSyncEnabled
    ad_guid: str | None  # source anchor (objectGUID) when synced
    account_enabled: bool = True
    usage_location: str | None = "US"
    licenses: set[str] = field(default_factory=set)  # direct assignments (skuId)
    groups: set[str] = field(default_factory=set)  # Entra group ids the user is a member of
    department: str = ""
    cloud_managed: bool = False  # onPremisesSyncBehavior.isCloudManaged (user SOA, beta)


@dataclass(slots=True, eq=False)
class EntraGroup:
    """An Entra ID group; a licensing group carries assignedLicenses (group-based licensing)."""

    id: str
    display_name: str
    mail_nickname: str
    sync_enabled: bool  # onPremisesSyncEnabled
    ad_guid: str | None
    members: set[str] = field(default_factory=set)  # EntraUser ids
    licenses: list[str] = field(default_factory=list)  # skuIds assigned to the group
    security_enabled: bool = True
    # Fields below were added for object-level SOA (issue 15); older state files load with defaults.
    mail: str | None = None
    mail_enabled: bool = False
    group_types: list[str] = field(default_factory=list)  # [], ["Unified"], ["DynamicMembership"]
    membership_rule: str | None = None
    cloud_managed: bool = False  # onPremisesSyncBehavior.isCloudManaged
    owners: set[str] = field(default_factory=set)  # EntraUser ids
    member_groups: set[str] = field(default_factory=set)  # nested EntraGroup ids
    member_contacts: set[str] = field(default_factory=set)  # EntraContact ids
    proxies: list[str] = field(default_factory=list)
    ca: dict[int, str] | None = None  # onPremisesExtensionAttributes (extensionAttribute1-15)
    sid: str | None = None  # onPremisesSecurityIdentifier
    sam: str | None = None  # onPremisesSamAccountName
    last_sync: datetime | None = None  # onPremisesLastSyncDateTime
    description: str | None = None
    written_back: bool = False  # a Microsoft 365 group written back to AD (group writeback)


@dataclass(slots=True, eq=False)
class EntraContact:
    """An Entra ID organizational contact (Graph `orgContact`)."""

    id: str
    display_name: str
    mail: str | None
    mail_nickname: str
    sync_enabled: bool  # onPremisesSyncEnabled
    ad_guid: str | None
    proxies: list[str] = field(default_factory=list)
    given_name: str = ""
    surname: str = ""
    company: str = ""
    cloud_managed: bool = False  # onPremisesSyncBehavior.isCloudManaged (beta)
    last_sync: datetime | None = None  # onPremisesLastSyncDateTime


@dataclass(slots=True, eq=False)
class ExoRecipient:
    """An Exchange Online recipient (every Entra user has one: User, MailUser or a mailbox)."""

    edoid: str  # ExternalDirectoryObjectId
    guid: str  # Guid (the EXO directory object's own)
    exchange_guid: str | None
    archive_guid: str | None
    upn: str
    alias: str | None
    display_name: str
    name: str
    first_name: str
    last_name: str
    proxies: list[str]  # EmailAddresses
    legacy_dn: str | None
    rtd: str  # RecipientTypeDetails
    prev_rtd: str | None  # PreviousRecipientTypeDetails (None -> "None")
    dir_synced: bool  # IsDirSynced
    cloud_managed: bool  # IsExchangeCloudManaged
    hidden: bool  # HiddenFromAddressListsEnabled
    ca: dict[int, str] | None
    eca: dict[int, list[str]] | None
    when_created: datetime
    when_changed: datetime
    external_email: str | None = None  # ExternalEmailAddress of a MailUser
    # A deprovisioned cloud mailbox (license removed) kept for reconnection until
    # PermanentlyClearPreviousMailboxInfo: its ExchangeGuid and type.
    disconnected_guid: str | None = None
    disconnected_type: str | None = None
