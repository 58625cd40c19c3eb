"""One sandbox tenant: on-prem AD + on-prem Exchange, Entra ID, Exchange Online, and the sync between.

Servers (token/REST/PSRP/Graph) call `Tenant.invoke` under `tenant.lock`; `invoke` also takes
the lock itself (it is re-entrant), so direct callers are safe too.

Facts modelled here come from docs/exchange-facts.md (its "Mailbox source of authority" and "Recipients to fix first" sections) unless a comment names another source.
"""
from __future__ import annotations

import functools
import gc
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, overload

from exocm.sandbox.filter_index import FilterIndex
from exocm.sandbox.identity import IdentityIndex, proxy_keys
from exocm.sandbox.licensing import EXCHANGE_SKUS
from exocm.sandbox.objects import (
    EMPTY_GUID,
    FLIP_TYPES,
    MAILBOX_TYPES,
    ONPREM_LOCAL_MAILBOX_TYPES,
    REMOTE_TO_EXO,
    AdContact,
    AdGroup,
    AdUser,
    EntraContact,
    EntraGroup,
    EntraUser,
    ExoRecipient,
    primary_smtp,
)
from exocm.sandbox.views import View

Record = dict[str, Any]
Clock = Callable[[], datetime]

#: Entra Connect Sync's default schedule (Microsoft Learn, "Entra Connect Sync: Scheduler").
SYNC_INTERVAL = timedelta(minutes=30)
#: docs/exchange-facts.md#wait-a-sync-cycle-plus-24-hours: wait one sync cycle plus 24 h after an on-prem change before flipping.
RECENT_WINDOW = SYNC_INTERVAL + timedelta(hours=24)

#: Object collections persisted by state.py, by table name.
STATE_KINDS = ("ad_users", "ad_groups", "entra_users", "entra_groups", "exo", "ad_contacts", "entra_contacts")

#: The finding codes of planted(), in report order.
PLANTED_CODES = (
    "DUAL_MAILBOX",
    "PREVIOUS_MAILBOX_INFO",
    "EXCHANGEGUID_MISMATCH",
    "RECENT_ONPREM_CHANGE",
    "ATTRIBUTE_DRIFT",
    "ALREADY_CLOUD_MANAGED",
    "NOT_DIRSYNCED",
)

#: Columns of the on-prem export (same order as exocm.core.model.ONPREM_COLUMNS; the sandbox
#: may not import core, so the tuple is repeated here and a test compares the two).
ONPREM_COLUMNS: tuple[str, ...] = (
    "UserPrincipalName",
    "PrimarySmtpAddress",
    "Alias",
    "RecipientTypeDetails",
    "ExchangeGuid",
    "ArchiveGuid",
    "LegacyExchangeDN",
    "EmailAddresses",
    "WhenChanged",
    *(f"CustomAttribute{i}" for i in range(1, 16)),
    *(f"ExtensionCustomAttribute{i}" for i in range(1, 6)),
    "DistinguishedName",
    "OrganizationalUnit",
    "ExternalDirectoryObjectId",
    "WhenCreated",
)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building many acyclic objects (it rescans the whole heap otherwise)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@functools.lru_cache(maxsize=4096)
def canonical_ou(ou_dn: str) -> str:
    """'OU=Sales,OU=Accounts,DC=contoso,DC=com' -> 'contoso.com/Accounts/Sales' (OrganizationalUnit)."""
    ous: list[str] = []
    dcs: list[str] = []
    for part in ou_dn.split(","):
        k, _, v = part.partition("=")
        if k.upper() == "OU":
            ous.append(v)
        elif k.upper() == "DC":
            dcs.append(v)
    return "/".join([".".join(dcs), *reversed(ous)])


def _norm_guid(g: str | None) -> str | None:
    if not g or g == EMPTY_GUID:
        return None
    return g.lower()


def attribute_drift(ad: AdUser, r: ExoRecipient) -> list[str]:
    """Names of the writeback attributes whose on-prem and EXO values differ.

    Comparison rules (detection must use the same): CustomAttribute1-15 as strings with
    None == ""; ExtensionCustomAttribute1-5 as sorted lists; EmailAddresses as
    case-insensitive sets; PrimarySmtpAddress case-insensitive.
    HiddenFromAddressListsEnabled is not compared (the on-prem export has no such column).
    """
    out: list[str] = []
    aca = ad.ca or {}
    rca = r.ca or {}
    for i in range(1, 16):
        if (aca.get(i) or "") != (rca.get(i) or ""):
            out.append(f"CustomAttribute{i}")
    aeca = ad.eca or {}
    reca = r.eca or {}
    for i in range(1, 6):
        if sorted(aeca.get(i) or []) != sorted(reca.get(i) or []):
            out.append(f"ExtensionCustomAttribute{i}")
    if {p.lower() for p in ad.proxies} != {p.lower() for p in r.proxies}:
        out.append("EmailAddresses")
    if (primary_smtp(ad.proxies) or "").lower() != (primary_smtp(r.proxies) or "").lower():
        out.append("PrimarySmtpAddress")
    return out


class RecordSet(Sequence[Record]):
    """A cmdlet's result: matched objects, turned into records only when read (pages stay cheap).

    Records reflect the objects' state at read time, like a real EXO page read later.
    """

    __slots__ = ("_objs", "_build", "_view")

    def __init__(self, objs: list[Any], build: Callable[[Any], Record], view: View | None = None) -> None:
        self._objs = objs
        self._build = build
        self._view = view

    def select(self, names: Sequence[str]) -> RecordSet:
        """The same objects, their records holding only the properties in `names` (OData $select;
        case-insensitive, unknown names ignored). Built by a projected view when there is one."""
        if self._view is not None:
            view = self._view.projected(names)
            return RecordSet(self._objs, view.build, view)
        wanted = {n.strip().lower() for n in names}
        build = self._build
        return RecordSet(self._objs, lambda o: {k: v for k, v in build(o).items() if k.lower() in wanted})

    def __len__(self) -> int:
        return len(self._objs)

    @overload
    def __getitem__(self, i: int) -> Record: ...

    @overload
    def __getitem__(self, i: slice) -> list[Record]: ...

    def __getitem__(self, i: int | slice) -> Record | list[Record]:
        if isinstance(i, slice):
            return [self._build(o) for o in self._objs[i]]
        return self._build(self._objs[i])

    def __iter__(self) -> Iterator[Record]:
        for o in self._objs:
            yield self._build(o)

    def to_list(self) -> list[Record]:
        """Every record, materialised now."""
        b = self._build
        with gc_paused():
            return [b(o) for o in self._objs]


class Tenant:
    """The sandbox tenant. Build one with generator.generate_tenant(size, seed)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        tenant_id: str | None = None,
        org_name: str = "Contoso",
        onprem_domain: str = "contoso.com",
        clock: Clock | None = None,
    ) -> None:
        self.seed = seed
        self.tenant_id = tenant_id or str(uuid.UUID(bytes=hashlib.sha256(f"tenant:{seed}".encode()).digest()[:16],
                                                     version=4))
        self.org_name = org_name
        prefix = f"{org_name.lower()}{seed}"
        self.domain = f"{prefix}.onmicrosoft.com"  # initial domain
        self.routing_domain = f"{prefix}.mail.onmicrosoft.com"  # hybrid routing domain
        self.onprem_domain = onprem_domain
        self.onprem_dc_dn = ",".join(f"DC={p}" for p in onprem_domain.split("."))
        # Names that appear in Exchange's own messages (made up, real-looking).
        self.exo_dc = "AM0PR05A001DC01.EURPR05A001.PROD.OUTLOOK.COM"
        self.exo_ou = f"OU={self.domain},OU=Microsoft Exchange Hosted Organizations,DC=EURPR05A001,DC=PROD,DC=OUTLOOK,DC=COM"
        self.onprem_dc = f"DC01.{onprem_domain}"
        self.lock = threading.RLock()
        self._clock: Clock = clock or _utcnow
        self._tls = threading.local()
        self.guid_counter = 0

        self.ad_users: dict[str, AdUser] = {}
        self.ad_groups: dict[str, AdGroup] = {}
        self.entra_users: dict[str, EntraUser] = {}
        self.entra_groups: dict[str, EntraGroup] = {}
        self.exo: dict[str, ExoRecipient] = {}  # by ExternalDirectoryObjectId
        self.ad_contacts: dict[str, AdContact] = {}  # by objectGUID
        self.entra_contacts: dict[str, EntraContact] = {}  # orgContact, by object id
        # Identity indexes are built on first use (generation stays fast), then kept current.
        self._exo_index: IdentityIndex[ExoRecipient] | None = None
        self._ad_index: IdentityIndex[AdUser] | None = None
        self.ad_group_index: IdentityIndex[AdGroup] = IdentityIndex()
        self.entra_upn: dict[str, str] = {}  # lower UPN -> Entra id

        # Exchange Online organization config (Get-OrganizationConfig).
        self.org_config: dict[str, Any] = {"ExchangeAttributesCloudManagedByDefault": False}
        # Delta sync bookkeeping (Entra Connect exports only what changed since its watermark).
        self.pending_ad: set[str] = set()  # AdUser guids changed on-prem
        self.pending_exo: set[str] = set()  # EXO edoids to re-evaluate (license, flip-back, clear)
        self.pending_writeback: set[str] = set()  # cloud-managed edoids edited in EXO
        self.pending_groups: set[str] = set()  # AdGroup guids whose membership changed
        self.pending_contacts: set[str] = set()  # AdContact guids changed on-prem
        self.last_sync: datetime | None = None
        self.sync_cycles = 0
        self.generated: dict[str, list[str]] = {}  # generator kind -> EDOIDs (see generator.py)
        self.generated_objects: dict[str, list[str]] = {}  # group/contact kind -> ids (generator_objects.py)
        # Incremental persistence: keys changed / added since the last save (state.py).
        self.dirty: dict[str, set[str]] = {k: set() for k in STATE_KINDS}
        self.added: dict[str, list[str]] = {k: [] for k in STATE_KINDS}
        self.saved_to: str | None = None
        self.view_cache: dict[str, Any] = {}  # compiled record views (code only; they read live state)
        # Version of the EXO objects' state: bumped by every write cmdlet, sync cycle, edit and new
        # object; filter indexes (filter_index.py) are valid for one version only.
        self.exo_version = 0
        self._filter_index: FilterIndex | None = None
        # What the readiness checks read besides recipients (accepted domains, dir sync, sync server,
        # Cloud Sync, public folders, hybrid objects): readiness_state.py (persisted).
        from exocm.sandbox.readiness_state import ReadinessState

        self.readiness = ReadinessState()
        # Conformance variants in force (sandbox/variants.py); set by the server, not persisted.
        self.variants: frozenset[str] = frozenset()

    # ---------------------------------------------------------------- clock, warnings, ids
    def now(self) -> datetime:
        """The tenant clock (UTC, tz-aware); injectable through Tenant(clock=...)."""
        return self._clock()

    def set_clock(self, clock: Clock) -> None:
        """Replace the clock (tests move time forward)."""
        self._clock = clock

    @property
    def last_warnings(self) -> list[str]:
        """Warnings of this thread's last invoke() (e.g. the ResultSize truncation warning)."""
        w: list[str] | None = getattr(self._tls, "warnings", None)
        return list(w) if w else []

    def warn(self, text: str) -> None:
        """Add a warning to the current invoke's output."""
        w: list[str] | None = getattr(self._tls, "warnings", None)
        if w is None:
            w = []
            self._tls.warnings = w
        w.append(text)

    def new_guid(self) -> str:
        """A fresh GUID, deterministic per seed and call count (survives save/load)."""
        self.guid_counter += 1
        digest = hashlib.sha256(f"{self.seed}:rt:{self.guid_counter}".encode()).digest()[:16]
        return str(uuid.UUID(bytes=digest, version=4))

    # ---------------------------------------------------------------- indexes
    def exo_dn(self, r: ExoRecipient) -> str:
        """DistinguishedName of an EXO object."""
        return f"CN={r.name},{self.exo_ou}"

    @staticmethod
    def _exo_keys(r: ExoRecipient) -> list[str | None]:
        keys: list[str | None] = [r.edoid, r.guid, r.upn.lower(), r.name.lower(), _norm_guid(r.exchange_guid)]
        if r.alias:
            keys.append(r.alias.lower())
        if r.legacy_dn:
            keys.append(r.legacy_dn.lower())
        for p in r.proxies:
            keys.append(proxy_keys(p)[-1])
        return keys

    @staticmethod
    def _ad_keys(a: AdUser) -> list[str | None]:
        keys: list[str | None] = [a.guid, a.sam.lower(), a.upn.lower(), a.cn.lower(), _norm_guid(a.exchange_guid)]
        if a.alias:
            keys.append(a.alias.lower())
        if a.legacy_dn:
            keys.append(a.legacy_dn.lower())
        for p in a.proxies:
            keys.append(proxy_keys(p)[-1])
        return keys

    @property
    def exo_index(self) -> IdentityIndex[ExoRecipient]:
        """Identity index of EXO objects (built on first use)."""
        if self._exo_index is None:
            idx: IdentityIndex[ExoRecipient] = IdentityIndex()
            with gc_paused():
                for r in self.exo.values():
                    idx.add(r, self._exo_keys(r))
            self._exo_index = idx
        return self._exo_index

    @property
    def ad_index(self) -> IdentityIndex[AdUser]:
        """Identity index of on-prem AD users (built on first use)."""
        if self._ad_index is None:
            idx: IdentityIndex[AdUser] = IdentityIndex()
            with gc_paused():
                for a in self.ad_users.values():
                    idx.add(a, self._ad_keys(a))
            self._ad_index = idx
        return self._ad_index

    def exo_changed(self) -> None:
        """Say that EXO objects changed (drops the filter indexes); callers that edit objects
        outside editing_exo(), a write cmdlet or a sync cycle must call it."""
        self.exo_version += 1
        self._filter_index = None

    def drop_exo_index(self) -> None:
        """Forget the EXO identity index (after EXO objects were removed); rebuilt on next use."""
        self._exo_index = None
        self.exo_changed()

    def exo_filter_index(self) -> FilterIndex:
        """Filter indexes over the EXO objects as they are now (call under the lock)."""
        index = self._filter_index
        if index is None or index.version != self.exo_version:
            index = FilterIndex(list(self.exo.values()), self.exo_version,
                                index.unindexable if index is not None else None)
            self._filter_index = index
        return index

    def warm(self) -> None:
        """Build now what the first reads would build: the identity indexes, the record views and
        the ExternalDirectoryObjectId filter index (a partitioned read's first queries use it).
        Servers of big tenants call it before saying they are ready: Exchange Online answers from
        indexes it keeps, so a client's first requests should not pay for building them."""
        from exocm.sandbox.cmdlets_exo import _view

        with self.lock:
            _ = self.exo_index, self.ad_index
            for kind in ("mailbox", "user"):
                view = _view(self, kind)
                key = "externaldirectoryobjectid"
                self.exo_filter_index().property(view.sources[key], view.filterable[key])

    def mark(self, kind: str, key: str) -> None:
        """Record that an object changed (incremental saves write only those)."""
        if self.saved_to is not None:
            self.dirty[kind].add(key)

    def _added(self, kind: str, key: str) -> None:
        if self.saved_to is not None:
            self.added[kind].append(key)

    def add_exo(self, r: ExoRecipient) -> None:
        """Register an EXO recipient and index it."""
        self.exo[r.edoid] = r
        self.exo_changed()
        self._added("exo", r.edoid)
        if self._exo_index is not None:
            self._exo_index.add(r, self._exo_keys(r))

    def add_ad_user(self, a: AdUser) -> None:
        """Register an on-prem AD user and index it."""
        self.ad_users[a.guid] = a
        self._added("ad_users", a.guid)
        if self._ad_index is not None:
            self._ad_index.add(a, self._ad_keys(a))

    def add_ad_group(self, g: AdGroup) -> None:
        """Register an on-prem AD group and index it (guid, name, sAMAccountName)."""
        self.ad_groups[g.guid] = g
        self._added("ad_groups", g.guid)
        self.ad_group_index.add(g, [g.guid, g.name.lower(), g.sam.lower()])

    def add_entra_user(self, u: EntraUser) -> None:
        """Register an Entra user."""
        self.entra_users[u.id] = u
        self.entra_upn[u.upn.lower()] = u.id
        self._added("entra_users", u.id)

    def add_entra_group(self, g: EntraGroup) -> None:
        """Register an Entra group."""
        self.entra_groups[g.id] = g
        self._added("entra_groups", g.id)

    def add_ad_contact(self, c: AdContact) -> None:
        """Register an on-prem AD mail contact."""
        self.ad_contacts[c.guid] = c
        self._added("ad_contacts", c.guid)

    def add_entra_contact(self, c: EntraContact) -> None:
        """Register an Entra organizational contact."""
        self.entra_contacts[c.id] = c
        self._added("entra_contacts", c.id)

    @contextmanager
    def editing_exo(self, r: ExoRecipient) -> Iterator[ExoRecipient]:
        """Edit an EXO object: re-index it and bump WhenChanged afterwards."""
        idx = self._exo_index
        if idx is not None:
            idx.remove(r, self._exo_keys(r))
        self.exo_changed()
        try:
            yield r
        finally:
            if idx is not None:
                idx.add(r, self._exo_keys(r))
            r.when_changed = self.now()
            self.exo_changed()
            self.mark("exo", r.edoid)

    @contextmanager
    def editing_ad(self, a: AdUser, *, touch: bool = True) -> Iterator[AdUser]:
        """Edit an on-prem AD user: re-index it, bump whenChanged, queue it for the next delta sync."""
        idx = self._ad_index
        if idx is not None:
            idx.remove(a, self._ad_keys(a))
        try:
            yield a
        finally:
            if idx is not None:
                idx.add(a, self._ad_keys(a))
            self.mark("ad_users", a.guid)
            if touch:
                a.when_changed = self.now()
                self.pending_ad.add(a.guid)

    # ---------------------------------------------------------------- links
    def ad_for(self, r: ExoRecipient) -> AdUser | None:
        """The on-prem AD user an EXO object is synced from, if any."""
        u = self.entra_users.get(r.edoid)
        if u is None or u.ad_guid is None:
            return None
        return self.ad_users.get(u.ad_guid)

    def exo_for_ad(self, a: AdUser) -> ExoRecipient | None:
        """The EXO object synced from an on-prem AD user, if any."""
        return self.exo.get(a.entra_id) if a.entra_id else None

    def licensed_skus(self, u: EntraUser) -> set[str]:
        """Every skuId a user holds, direct or through its groups."""
        skus = set(u.licenses)
        for gid in u.groups:
            g = self.entra_groups.get(gid)
            if g is not None:
                skus.update(g.licenses)
        return skus

    def has_exchange_license(self, u: EntraUser) -> bool:
        """True when a direct or group license of `u` includes an Exchange Online plan."""
        if u.licenses & EXCHANGE_SKUS:
            return True
        for gid in u.groups:
            g = self.entra_groups.get(gid)
            if g is not None and any(s in EXCHANGE_SKUS for s in g.licenses):
                return True
        return False

    # ---------------------------------------------------------------- cmdlets
    def invoke(self, cmdlet: str, params: dict[str, Any] | None = None, *, side: str = "exo") -> list[Record]:
        """Run a cmdlet and return its records (all of them, materialised).

        side="exo": Exchange Online cmdlets; side="onprem": on-prem Exchange Management Shell
        and the AD cmdlets runbooks use. Raises CmdletError the way Exchange fails.
        Warnings of the call are in `last_warnings` (per thread).
        """
        out = self.query(cmdlet, params, side=side)
        with self.lock:
            return out.to_list() if isinstance(out, RecordSet) else out

    def query(self, cmdlet: str, params: dict[str, Any] | None = None, *, side: str = "exo") -> RecordSet | list[Record]:
        """Like invoke(), but Get-* results come back as a lazy RecordSet (cheap paging for servers)."""
        from exocm.sandbox.cmdlets import dispatch
        from exocm.sandbox.write_log import is_write

        with self.lock:
            self._tls.warnings = []
            try:
                return dispatch(self, cmdlet, dict(params or {}), side)
            finally:
                if is_write(str(cmdlet)):  # whatever it touched (even on failure), filter indexes are stale
                    self.exo_changed()

    # ---------------------------------------------------------------- sync
    def run_sync_cycle(self, *, full: bool = False) -> dict[str, int]:
        """One Entra Connect (delta, or full) sync cycle plus an EXO provisioning pass."""
        from exocm.sandbox.sync import run_sync_cycle

        with self.lock:
            try:
                return run_sync_cycle(self, full=full)
            finally:
                self.exo_changed()

    # ---------------------------------------------------------------- ground truth
    def planted(self) -> dict[str, list[str]]:
        """Ground truth of the findings, computed from the current state (sorted EDOIDs per code).

        Definitions ("mailbox" = EXO RecipientTypeDetails in FLIP_TYPES: User/Shared/Room/
        EquipmentMailbox; "on-prem row" = the synced AD user's on-prem recipient when it is a
        local mailbox or a RemoteMailbox, i.e. a row of onprem_records()):
        - DUAL_MAILBOX: dir-synced EXO mailbox whose on-prem recipient is a local mailbox
          (UserMailbox/SharedMailbox/RoomMailbox/EquipmentMailbox on the on-prem server).
        - PREVIOUS_MAILBOX_INFO: EXO MailUser whose PreviousRecipientTypeDetails is a mailbox type.
        - EXCHANGEGUID_MISMATCH: dir-synced EXO mailbox whose on-prem recipient is a RemoteMailbox
          with ExchangeGuid empty, all-zero, or different from the EXO ExchangeGuid.
        - RECENT_ONPREM_CHANGE: dir-synced EXO mailbox with an on-prem row whose WhenChanged is
          within RECENT_WINDOW (sync interval 30 min + 24 h) of tenant.now() (>= now - window).
        - ATTRIBUTE_DRIFT: dir-synced, not cloud-managed EXO mailbox with a RemoteMailbox on-prem
          row whose writeback attributes differ (see attribute_drift() for the comparison).
        - ALREADY_CLOUD_MANAGED: dir-synced EXO mailbox with IsExchangeCloudManaged True.
        - NOT_DIRSYNCED: EXO mailbox with IsDirSynced False (cloud-only).
        By definition RECENT_ONPREM_CHANGE may overlap any mailbox code and
        ALREADY_CLOUD_MANAGED may overlap DUAL_MAILBOX / EXCHANGEGUID_MISMATCH; the generator
        plants every code on disjoint objects, so on a fresh tenant the sets are disjoint.
        """
        with self.lock:
            out: dict[str, list[str]] = {k: [] for k in PLANTED_CODES}
            cutoff = self.now() - RECENT_WINDOW
            for r in self.exo.values():
                if r.rtd not in FLIP_TYPES:
                    if r.rtd == "MailUser" and r.prev_rtd in MAILBOX_TYPES:
                        out["PREVIOUS_MAILBOX_INFO"].append(r.edoid)
                    continue
                if not r.dir_synced:
                    out["NOT_DIRSYNCED"].append(r.edoid)
                    continue
                if r.cloud_managed:
                    out["ALREADY_CLOUD_MANAGED"].append(r.edoid)
                ad = self.ad_for(r)
                if ad is None or ad.rtd is None:
                    continue
                if ad.rtd in ONPREM_LOCAL_MAILBOX_TYPES:
                    out["DUAL_MAILBOX"].append(r.edoid)
                elif ad.rtd in REMOTE_TO_EXO:
                    g = _norm_guid(ad.exchange_guid)
                    if g is None or g != _norm_guid(r.exchange_guid):
                        out["EXCHANGEGUID_MISMATCH"].append(r.edoid)
                    if not r.cloud_managed and attribute_drift(ad, r):
                        out["ATTRIBUTE_DRIFT"].append(r.edoid)
                else:
                    continue
                if ad.when_changed >= cutoff:
                    out["RECENT_ONPREM_CHANGE"].append(r.edoid)
            return {k: sorted(v) for k, v in out.items()}

    def planted_objects(self) -> dict[str, dict[str, list[str]]]:
        """Ground truth of the object-level SOA findings (groups, contacts, users), from the
        current state: {"group": {CODE: [ids]}, "contact": {...}, "user": {...}}; see
        object_findings.py for each code's definition."""
        from exocm.sandbox.object_findings import planted_objects

        with self.lock:
            return planted_objects(self)

    # ---------------------------------------------------------------- on-prem object edits
    def onprem_edit_group(self, ident: str, **changes: Any) -> AdGroup:
        """Edit an on-prem AD group (onprem_objects.edit_group); it syncs at the next cycle."""
        from exocm.sandbox.onprem_objects import edit_group

        with self.lock:
            return edit_group(self, ident, **changes)

    def onprem_edit_contact(self, guid: str, **changes: Any) -> AdContact:
        """Edit an on-prem AD mail contact (onprem_objects.edit_contact)."""
        from exocm.sandbox.onprem_objects import edit_contact

        with self.lock:
            return edit_contact(self, guid, **changes)

    def onprem_edit_user(self, guid: str, **changes: Any) -> None:
        """Edit an on-prem AD user's display name or department (onprem_objects.edit_user)."""
        from exocm.sandbox.onprem_objects import edit_user

        with self.lock:
            edit_user(self, guid, **changes)

    # ---------------------------------------------------------------- on-prem export
    def onprem_records(self) -> list[Record]:
        """On-prem Get-Mailbox + Get-RemoteMailbox rows with the export script's properties (ONPREM_COLUMNS)."""
        from exocm.sandbox.cmdlets_onprem import export_row

        with self.lock, gc_paused():
            local = [export_row(self, a) for a in self.ad_users.values() if a.rtd in ONPREM_LOCAL_MAILBOX_TYPES]
            remote = [export_row(self, a) for a in self.ad_users.values() if a.rtd in REMOTE_TO_EXO]
            return local + remote

    # ---------------------------------------------------------------- Graph-like operations
    def graph_get_user(self, user_id: str) -> Record:
        """Graph GET /users/{id | userPrincipalName}."""
        from exocm.sandbox import graph_ops

        with self.lock:
            return graph_ops.get_user(self, user_id)

    def graph_license_details(self, user_id: str) -> list[Record]:
        """Graph GET /users/{id}/licenseDetails."""
        from exocm.sandbox import graph_ops

        with self.lock:
            return graph_ops.license_details(self, user_id)

    def graph_assign_license(self, user_id: str, sku_id: str) -> Record:
        """Graph POST /users/{id}/assignLicense with one addLicenses entry (direct assignment)."""
        from exocm.sandbox import graph_ops

        with self.lock:
            return graph_ops.assign_license(self, user_id, add=[sku_id], remove=[])

    def graph_remove_license(self, user_id: str, sku_id: str) -> Record:
        """Graph POST /users/{id}/assignLicense with one removeLicenses entry (direct only)."""
        from exocm.sandbox import graph_ops

        with self.lock:
            return graph_ops.assign_license(self, user_id, add=[], remove=[sku_id])

    def graph_group(self, group_id: str) -> Record:
        """Graph GET /groups/{id} (incl. onPremisesSyncEnabled and assignedLicenses)."""
        from exocm.sandbox import graph_ops

        with self.lock:
            return graph_ops.get_group(self, group_id)

    def graph_groups(self) -> list[Record]:
        """Graph GET /groups."""
        from exocm.sandbox import graph_ops

        with self.lock:
            return graph_ops.list_groups(self)

    def graph_user_groups(self, user_id: str) -> list[Record]:
        """Graph GET /users/{id}/memberOf (groups only)."""
        from exocm.sandbox import graph_ops

        with self.lock:
            return graph_ops.user_groups(self, user_id)

    def graph_group_members(self, group_id: str) -> list[Record]:
        """Graph GET /groups/{id}/members."""
        from exocm.sandbox import graph_ops

        with self.lock:
            return graph_ops.group_members(self, group_id)

    def graph_add_group_member(self, group_id: str, user_id: str) -> None:
        """Graph POST /groups/{id}/members/$ref (cloud groups only)."""
        from exocm.sandbox import graph_ops

        with self.lock:
            graph_ops.add_group_member(self, group_id, user_id)

    def graph_remove_group_member(self, group_id: str, user_id: str) -> None:
        """Graph DELETE /groups/{id}/members/{user}/$ref (cloud groups only)."""
        from exocm.sandbox import graph_ops

        with self.lock:
            graph_ops.remove_group_member(self, group_id, user_id)

    # ---------------------------------------------------------------- persistence
    def to_state(self) -> dict[str, Any]:
        """The whole tenant as a JSON-able dict."""
        from exocm.sandbox.state import tenant_to_state

        with self.lock:
            return tenant_to_state(self)

    @classmethod
    def from_state(cls, state: dict[str, Any], *, clock: Clock | None = None) -> Tenant:
        """Rebuild a tenant from to_state() output."""
        from exocm.sandbox.state import tenant_from_state

        return tenant_from_state(state, clock=clock)

    def save(self, path: str | Path) -> None:
        """Persist the tenant to a SQLite file (atomically replaced)."""
        from exocm.sandbox.state import save

        with self.lock:
            save(self, path)

    @classmethod
    def load(cls, path: str | Path, *, clock: Clock | None = None) -> Tenant:
        """Load a tenant saved with save()."""
        from exocm.sandbox.state import load

        tenant: Tenant = load(path, clock=clock)
        return tenant
