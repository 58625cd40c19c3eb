"""What the readiness checks read from a hybrid organisation, beyond its recipients: accepted
domains, directory sync, the sync server's client version, Cloud Sync writeback, public folders
and the hybrid objects on the Exchange server; their seeded defaults; the readiness variants;
and the results exocm's readiness checks must give (`expected_readiness`, for `sandbox planted`).

Facts and their sources: docs/exchange-facts.md#readiness-before-you-flip and
docs/exchange-facts.md#readiness-the-last-exchange-server. Seeded defaults: most tenants are
healthy on each point, some are not (the draw is
`random.Random("readiness:<seed>")`, so a seed always gives the same organisation); variants force
a state (`apply_variants(tenant, ["dirsync-off", ...])`).
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from exocm.sandbox.cloudsync import MIN_AGENT_VERSION, CloudSyncState

if TYPE_CHECKING:
    from exocm.sandbox.tenant import Tenant

#: Entra Connect Sync builds: cloud-managed mailboxes need 2.5.190.0 (2.5.79.0 raised
#: ExchangeManagedAttributesUpdateNotAllowed); object-level SOA needs 2.5.76.0.
MIN_SYNC_CLIENT = "2.5.190.0"
MIN_SYNC_CLIENT_OBJECT_SOA = "2.5.76.0"
#: Cloud Sync limits (Microsoft Learn, "What is Microsoft Entra Cloud Sync?" / cloud sync limits).
CLOUD_SYNC_MAX_OBJECTS_PER_DOMAIN = 150_000
CLOUD_SYNC_MAX_GROUP_MEMBERS = 50_000
#: exocm counts the members of at most this many synced groups (one Graph request each).
GROUP_COUNT_CAP = 500
#: exocm reads onPremisesSyncBehavior of at most this many synced groups and contacts.
OBJECT_SOA_CAP = 500
#: Remote mailboxes created on-prem within this many days mean "still provisioning on-prem".
PROVISIONING_WINDOW_DAYS = 30

#: The hybrid objects the Hybrid Configuration Wizard leaves on the Exchange server, in the order
#: Microsoft's decommission guide removes them (docs/exchange-facts.md#readiness-the-last-exchange-server).
HYBRID_KINDS: tuple[str, ...] = (
    "HybridConfiguration", "IntraOrganizationConnector", "SendConnector", "ReceiveConnector",
    "OrganizationRelationship", "FederationTrust",
)


def version_tuple(text: str) -> tuple[int, ...]:
    """'2.5.190.0' -> (2, 5, 190, 0); a part that is not a number counts as 0."""
    return tuple(int(p) if p.isdigit() else 0 for p in str(text).strip().split("."))


@dataclass
class ReadinessState:
    """The organisation facts the readiness checks read (besides recipients and org config)."""

    routing_domain: bool = True  # <tenant>.mail.onmicrosoft.com is an accepted domain (HCW8001 if not)
    dirsync_enabled: bool = True  # Graph organization.onPremisesSyncEnabled
    sync_client_version: str = "2.5.190.0"  # Entra Connect Sync on the sync server
    sync_server: bool = True  # a sync server answers over WinRM
    public_folder_mailboxes: list[str] = field(default_factory=list)
    public_folders: list[str] = field(default_factory=list)  # folder paths under \ on-prem
    hybrid: dict[str, list[str]] = field(default_factory=dict)  # kind -> names still present on-prem
    cloud_sync: CloudSyncState = field(default_factory=CloudSyncState)
    applied: list[str] = field(default_factory=list)  # readiness variants applied so far (once each)

    def to_meta(self) -> dict[str, Any]:
        """JSON-friendly form (sandbox state file)."""
        d = asdict(self)
        d["cloud_sync"] = self.cloud_sync.to_meta()
        return d

    @classmethod
    def from_meta(cls, meta: dict[str, Any] | None) -> ReadinessState:
        """Back from to_meta() (None: the defaults)."""
        if not meta:
            return cls()
        d = dict(meta)
        d["cloud_sync"] = CloudSyncState.from_meta(d.get("cloud_sync"))
        return cls(**d)


def full_hybrid(t: Tenant) -> dict[str, list[str]]:
    """What the Hybrid Configuration Wizard leaves behind (names as HCW creates them)."""
    server = "EX01"
    return {
        "HybridConfiguration": ["Hybrid Configuration"],
        "IntraOrganizationConnector": [f"HCW_IOC_{t.tenant_id[:8]}"],
        "SendConnector": [f"Outbound to Office 365 - {t.tenant_id}"],
        "ReceiveConnector": [f"{server}\\Default Frontend {server}"],
        "OrganizationRelationship": [f"O365 to On-premises - {t.tenant_id}"],
        "FederationTrust": ["Microsoft Federation Gateway"],
    }


def seeded_state(t: Tenant) -> ReadinessState:
    """The organisation a seed gives: a hybrid deployment mid-migration, mostly healthy."""
    rng = random.Random(f"readiness:{t.seed}")
    state = ReadinessState(
        routing_domain=rng.random() > 0.1,
        dirsync_enabled=True,
        sync_client_version=rng.choice(["2.5.190.0", "2.5.190.0", "2.5.190.0", "2.5.79.0", "2.4.131.0"]),
        hybrid=full_hybrid(t),
    )
    if rng.random() < 0.3:
        state.public_folder_mailboxes = ["PFMailbox1"]
        state.public_folders = ["\\Projects", "\\Projects\\Archive", "\\Sales"]
    # No Cloud Sync job by default: the default sandbox lists none (cloudsync.py's "legacy" world);
    # the readiness-healthy / writeback-old-* states and the writeback-phase2 variant configure one.
    return state


# ----------------------------------------------------------------------------- variants
def _healthy(t: Tenant) -> None:
    """Every readiness fact healthy (directory, sync client, writeback, no PFs, hybrid removed, every
    synced group and contact converted to cloud SOA)."""
    for o in [*t.entra_groups.values(), *getattr(t, "entra_contacts", {}).values()]:
        if o.sync_enabled:
            o.cloud_managed = True
    applied = t.readiness.applied
    t.readiness = ReadinessState(cloud_sync=CloudSyncState(
        configured=True, job_created=t.now() - timedelta(days=10), mail_mapping=True,
        agent_versions=["1.1.1370.0"]), applied=applied)


def _no_routing_domain(t: Tenant) -> None:
    t.readiness.routing_domain = False


def _dirsync_off(t: Tenant) -> None:
    t.readiness.dirsync_enabled = False


def _old_sync_client(t: Tenant) -> None:
    t.readiness.sync_client_version = "2.5.79.0"  # the build that raised ExchangeManagedAttributesUpdateNotAllowed


def _hybrid_leftovers(t: Tenant) -> None:
    t.readiness.hybrid = full_hybrid(t)


def _public_folders(t: Tenant) -> None:
    t.readiness.public_folder_mailboxes = ["PFMailbox1"]
    t.readiness.public_folders = ["\\Projects", "\\Projects\\Archive", "\\Sales"]


def _writeback_off(t: Tenant) -> None:
    t.readiness.cloud_sync = CloudSyncState(configured=False)


def _writeback_old_job(t: Tenant) -> None:
    """A job created before 2026-08-03 that still lacks the Mail -> mail mapping."""
    from exocm.sandbox.cloudsync import MAIL_MAPPING_SINCE

    t.readiness.cloud_sync = CloudSyncState(configured=True, job_created=MAIL_MAPPING_SINCE - timedelta(days=40),
                                            mail_mapping=False, agent_versions=[MIN_AGENT_VERSION])


def _writeback_old_agent(t: Tenant) -> None:
    t.readiness.cloud_sync = CloudSyncState(configured=True, job_created=t.now() - timedelta(days=10),
                                            agent_versions=["1.1.1000.0"])


def _tenant_default_on_with_onprem_provisioning(t: Tenant) -> None:
    """The unsupported state: the default is on while remote mailboxes are still created on-prem.

    Some remote mailboxes were created on-prem in the last days; the newest of them (licensed,
    synced) got no EXO object, the failure Microsoft describes for the default.
    """
    t.org_config["ExchangeAttributesCloudManagedByDefault"] = True
    remote = [a for a in t.ad_users.values() if a.rtd == "RemoteUserMailbox" and a.entra_id]
    remote.sort(key=lambda a: a.guid)
    picked = remote[: max(2, len(remote) // 200)]
    now = t.now()
    for i, a in enumerate(picked):
        with t.editing_ad(a, touch=False):
            a.when_created = now - timedelta(days=1 + i % 20)
    gone = False
    for a in picked[: max(1, len(picked) // 2)]:
        if a.entra_id and a.entra_id in t.exo:
            del t.exo[a.entra_id]
            gone = True
    if gone:
        t.drop_exo_index()


def _big_group(t: Tenant) -> None:
    """A synced group over Cloud Sync's 50,000-member limit (synthetic member ids: only counted)."""
    for g in t.entra_groups.values():
        if g.sync_enabled:
            g.members.update(f"synthetic-{i:06d}" for i in range(CLOUD_SYNC_MAX_GROUP_MEMBERS + 1))
            return


def _feature_missing(t: Tenant) -> None:
    """A tenant where Get-OrganizationConfig reports neither name of the default (feature not rolled out)."""
    t.org_config.pop("ExchangeAttributesCloudManagedByDefault", None)


def _no_sync_server(t: Tenant) -> None:
    t.readiness.sync_server = False


VARIANTS: dict[str, Any] = {
    "readiness-healthy": _healthy,
    "no-routing-domain": _no_routing_domain,
    "dirsync-off": _dirsync_off,
    "old-sync-client": _old_sync_client,
    "hybrid-leftovers": _hybrid_leftovers,
    "public-folders-onprem": _public_folders,
    "writeback-off": _writeback_off,
    "writeback-old-job": _writeback_old_job,
    "writeback-old-agent": _writeback_old_agent,
    "tenant-default-on-with-onprem-provisioning": _tenant_default_on_with_onprem_provisioning,
    "big-group": _big_group,
    "no-sync-server": _no_sync_server,
    "feature-missing": _feature_missing,
}


def parse_variants(spec: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """'a,b' (or a list of such) -> ['a', 'b']; ValueError names the known variants."""
    if not spec:
        return []
    parts = [spec] if isinstance(spec, str) else list(spec)
    names = [n.strip().lower() for p in parts for n in str(p).split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(sorted(VARIANTS))}")
    return names


def apply_variants(t: Tenant, names: list[str]) -> None:
    """Put the tenant in the states the variants name (in order)."""
    with t.lock:
        for name in names:
            VARIANTS[name](t)
            t.readiness.applied.append(name)


# ----------------------------------------------------------------------------- ground truth
def expected_readiness(t: Tenant, *, window_days: int = PROVISIONING_WINDOW_DAYS) -> dict[str, str]:
    """The result exocm's readiness must give for each check code (with the on-prem side read
    live, and the sandbox's sync server), computed from the model."""
    from exocm.sandbox.licensing import EXCHANGE_SKUS
    from exocm.sandbox.objects import FLIP_TYPES, ONPREM_LOCAL_MAILBOX_TYPES, REMOTE_TO_EXO

    s = t.readiness
    out: dict[str, str] = {}
    with t.lock:
        out["FEATURE_PRESENT"] = "pass" if "ExchangeAttributesCloudManagedByDefault" in t.org_config else "warn"
        if not s.sync_server:
            out["SYNC_CLIENT_VERSION"] = "unknown"
        else:
            out["SYNC_CLIENT_VERSION"] = ("pass" if version_tuple(s.sync_client_version) >= version_tuple(MIN_SYNC_CLIENT)
                                          else "fail")
        from exocm.sandbox.cloudsync import DEFAULT_AGENT_VERSION, writeback_mode

        cs = s.cloud_sync
        versions = cs.agent_versions or [DEFAULT_AGENT_VERSION]
        if writeback_mode(t) != "phase2":
            out["WRITEBACK_CONFIGURED"] = "warn"
        elif min(version_tuple(v) for v in versions) < version_tuple(MIN_AGENT_VERSION):
            out["WRITEBACK_CONFIGURED"] = "fail"
        elif not cs.mail_mapping:
            out["WRITEBACK_CONFIGURED"] = "warn"
        else:
            out["WRITEBACK_CONFIGURED"] = "pass"
        cutoff = t.now() - timedelta(days=window_days)
        provisioning = any(a.rtd in REMOTE_TO_EXO and a.when_created >= cutoff for a in t.ad_users.values())
        default_on = bool(t.org_config.get("ExchangeAttributesCloudManagedByDefault"))
        out["TENANT_DEFAULT_SAFE"] = ("unknown" if "ExchangeAttributesCloudManagedByDefault" not in t.org_config
                                      else "fail" if default_on and provisioning else "pass")
        missing = 0
        for u in t.entra_users.values():
            if not u.sync_enabled or not (t.licensed_skus(u) & EXCHANGE_SKUS):
                continue
            r = t.exo.get(u.id)
            if r is None or r.rtd not in (*FLIP_TYPES, "MailUser"):
                missing += 1
        out["USERS_WITHOUT_EXO_OBJECT"] = "fail" if missing else "pass"
        out["ROUTING_DOMAIN"] = "pass" if s.routing_domain else "fail"
        out["DIRSYNC_ENABLED"] = "pass" if s.dirsync_enabled else "fail"
        planted = t.planted()
        bad = any(planted[c] for c in ("DUAL_MAILBOX", "PREVIOUS_MAILBOX_INFO", "EXCHANGEGUID_MISMATCH"))
        out["MAILBOX_FINDINGS"] = "fail" if bad else "pass"
        onprem_rows = sum(1 for a in t.ad_users.values() if a.rtd in ONPREM_LOCAL_MAILBOX_TYPES or a.rtd in REMOTE_TO_EXO)
        synced_groups = [g for g in t.entra_groups.values() if g.sync_enabled]
        objects = len(t.entra_users) + len(t.entra_groups) + len(getattr(t, "entra_contacts", {}))
        if len(synced_groups) <= GROUP_COUNT_CAP:  # exocm counts each group's members
            groups = "warn" if any(len(g.members) > CLOUD_SYNC_MAX_GROUP_MEMBERS for g in synced_groups) else "pass"
        else:  # exocm uses the directory's size as the bound, unknown when it does not settle it
            groups = "pass" if objects <= CLOUD_SYNC_MAX_GROUP_MEMBERS else "unknown"
        if groups == "warn" or onprem_rows > CLOUD_SYNC_MAX_OBJECTS_PER_DOMAIN:
            out["CLOUD_SYNC_LIMITS"] = "warn"
        else:
            out["CLOUD_SYNC_LIMITS"] = groups
        local = any(a.rtd in ONPREM_LOCAL_MAILBOX_TYPES for a in t.ad_users.values())
        out["ONPREM_MAILBOXES_LEFT"] = "fail" if local else "pass"
        out["ONPREM_PUBLIC_FOLDERS"] = "fail" if (s.public_folders or s.public_folder_mailboxes) else "pass"
        not_cm = any(r.rtd in FLIP_TYPES and r.dir_synced and not r.cloud_managed for r in t.exo.values())
        out["ALL_CLOUD_MANAGED"] = "fail" if not_cm else "pass"
        soa = [o for o in [*t.entra_groups.values(), *getattr(t, "entra_contacts", {}).values()] if o.sync_enabled]
        if len(soa) > OBJECT_SOA_CAP:
            out["GROUPS_CONTACTS_CONVERTED"] = "unknown"
        else:
            out["GROUPS_CONTACTS_CONVERTED"] = "fail" if any(not o.cloud_managed for o in soa) else "pass"
        out["HYBRID_OBJECTS"] = "fail" if any(s.hybrid.values()) else "pass"
        out["MANUAL_CHECKS"] = "unknown"
    return out
