"""The checks that must hold before the first mailbox is flipped (`--scope flip`).

Each function takes the Facts and returns one Check; a fact that could not be read makes the
check `unknown` with the reason, never a pass. Facts and their sources:
docs/exchange-facts.md#readiness-before-you-flip.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import pandas as pd

from ...inventory.onprem import REMOTE_TYPES
from ...model import FLIP_TYPES
from .model import Check, Facts, make

#: Entra Connect Sync: cloud-managed mailboxes need 2.5.190.0 (2.5.79.0 raised
#: ExchangeManagedAttributesUpdateNotAllowed); object-level SOA needs 2.5.76.0.
MIN_SYNC_CLIENT: Final = "2.5.190.0"
MIN_SYNC_CLIENT_OBJECT_SOA: Final = "2.5.76.0"
#: Cloud Sync provisioning agent version that can write Exchange attributes back to AD.
MIN_AGENT_VERSION: Final = "1.1.1107.0"
#: Cloud Sync limits: objects per AD domain, members per group.
CLOUD_SYNC_MAX_OBJECTS_PER_DOMAIN: Final = 150_000
CLOUD_SYNC_MAX_GROUP_MEMBERS: Final = 50_000
#: The tenant default, by the names it is read back under (either may answer).
DEFAULT_PROPERTIES: Final = ("ExchangeAttributesCloudManagedByDefault", "BlockExchangeProvisioningFromOnPremEnabled")
#: Finding codes MAILBOX_FINDINGS counts, with the runbook (or step) that fixes each.
MAILBOX_FINDING_FIXES: Final = {
    "DUAL_MAILBOX": "exocm runbook run dual-mailbox-keep-onprem (or dual-mailbox-keep-cloud) --from-findings DUAL_MAILBOX",
    "PREVIOUS_MAILBOX_INFO": "exocm runbook run clear-previous-mailbox-info --from-findings PREVIOUS_MAILBOX_INFO",
    "EXCHANGEGUID_MISMATCH": "on-prem Set-RemoteMailbox -ExchangeGuid <EXO ExchangeGuid> (see 'exocm findings "
                             "--code EXCHANGEGUID_MISMATCH')",
}
_SAMPLE = 10


def version_tuple(text: str) -> tuple[int, ...]:
    """'2.5.190.0' -> (2, 5, 190, 0); ValueError when it is not a dotted version."""
    parts = str(text).strip().split(".")
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(p) for p in parts)


def tenant_default(config: dict[str, object]) -> tuple[bool | None, str]:
    """The tenant default from Get-OrganizationConfig (either property name) and the name that answered."""
    for name in DEFAULT_PROPERTIES:
        value = config.get(name)
        if isinstance(value, bool):
            return value, name
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true", name
    return None, ""


def feature_present(f: Facts) -> Check:
    """FEATURE_PRESENT: Get-Mailbox reports IsExchangeCloudManaged and the tenant default is readable."""
    code = "FEATURE_PRESENT"
    if not f.inventory.ok and not f.org_config.ok:
        return make(code, "unknown", f"{f.inventory.reason}; {f.org_config.reason}")
    parts: list[str] = []
    mailbox_ok: bool | None = None
    if f.inventory.ok and f.inventory.value is not None:
        inv = f.inventory.value
        mailboxes = inv[inv["RecipientTypeDetails"].isin(FLIP_TYPES)] if len(inv) else inv
        reported = int(mailboxes["IsExchangeCloudManaged"].notna().sum()) if len(mailboxes) else 0
        mailbox_ok = reported > 0 or len(mailboxes) == 0
        parts.append(f"Get-Mailbox reports IsExchangeCloudManaged on {reported:,} of {len(mailboxes):,} mailboxes")
    else:
        parts.append(f"mailboxes not read ({f.inventory.reason})")
    default_ok: bool | None = None
    if f.org_config.ok and f.org_config.value is not None:
        value, name = tenant_default(dict(f.org_config.value))
        default_ok = value is not None
        parts.append(f"Get-OrganizationConfig reports {name} = {value}" if default_ok
                     else "Get-OrganizationConfig reports neither " + " nor ".join(DEFAULT_PROPERTIES))
    else:
        parts.append(f"organization config not read ({f.org_config.reason})")
    evidence = "; ".join(parts)
    if mailbox_ok and default_ok:
        return make(code, "pass", evidence)
    if mailbox_ok is False and default_ok is False:
        return make(code, "fail", evidence, "The feature is not available in this tenant yet (GA Oct 2025); "
                                            "check the tenant's rollout before planning flips.")
    if mailbox_ok is None or default_ok is None:
        return make(code, "unknown", evidence)
    return make(code, "warn", evidence, "Only part of the feature answers: run Get-OrganizationConfig and "
                                        "Get-Mailbox <id> | fl IsExchangeCloudManaged by hand before flipping.")


def sync_client_version(f: Facts) -> Check:
    """SYNC_CLIENT_VERSION: Entra Connect Sync >= 2.5.190.0 (>= 2.5.76.0 for object-level SOA)."""
    code = "SYNC_CLIENT_VERSION"
    if not f.sync_client_version.ok or not f.sync_client_version.value:
        return make(code, "unknown", f.sync_client_version.reason,
                    "Pass --sync-server HOST (read over WinRM) or --sync-client-version V (from the sync server).")
    text = f.sync_client_version.value
    src = f" ({f.sync_client_version.source})" if f.sync_client_version.source else ""
    try:
        version = version_tuple(text)
    except ValueError:
        return make(code, "unknown", f"the sync server reported {text!r}{src}, which is not a version")
    if version >= version_tuple(MIN_SYNC_CLIENT):
        return make(code, "pass", f"Entra Connect Sync {text}{src} >= {MIN_SYNC_CLIENT}")
    soa = ("; object-level SOA (>= 2.5.76.0) is supported" if version >= version_tuple(MIN_SYNC_CLIENT_OBJECT_SOA)
           else "; also below 2.5.76.0, needed for object-level SOA")
    return make(code, "fail", f"Entra Connect Sync {text}{src} < {MIN_SYNC_CLIENT}{soa}",
                f"Upgrade Entra Connect Sync to {MIN_SYNC_CLIENT} or later before flipping: older builds fail "
                "exports with ExchangeManagedAttributesUpdateNotAllowed.")


def writeback_configured(f: Facts) -> Check:
    """WRITEBACK_CONFIGURED: an EXO-to-AD Cloud Sync job, agents >= 1.1.1107.0, the Mail -> mail mapping."""
    code = "WRITEBACK_CONFIGURED"
    rollback = ("without writeback a flip back to on-prem lets the next sync overwrite every cloud edit with "
                "the AD values (rollbacks lose them)")
    if not f.cloud_sync.ok or f.cloud_sync.value is None:
        return make(code, "unknown", f"Cloud Sync not read: {f.cloud_sync.reason}; {rollback}")
    cs = f.cloud_sync.value
    if not cs.jobs:
        return make(code, "warn", f"no 'EXO to AD attribute sync' Cloud Sync configuration; {rollback}",
                    "Install the Cloud Sync agent (>= 1.1.1107.0) and create an 'EXO to AD attribute sync' "
                    "configuration, or accept that cloud edits stay cloud-only.")
    versions = [v for v in cs.agent_versions if v]
    if not cs.agent_versions:
        return make(code, "fail", f"{len(cs.jobs)} writeback job(s) but no provisioning agent",
                    f"Install a Cloud Sync provisioning agent >= {MIN_AGENT_VERSION} on a server that reaches AD.")
    old = [v for v in versions if _older(v, MIN_AGENT_VERSION)]
    if old:
        return make(code, "fail", f"provisioning agent version(s) {', '.join(sorted(set(old)))} < {MIN_AGENT_VERSION}",
                    f"Upgrade every Cloud Sync provisioning agent to {MIN_AGENT_VERSION} or later.")
    if len(versions) < len(cs.agent_versions):
        return make(code, "unknown", f"{len(cs.agent_versions) - len(versions)} provisioning agent(s) report no "
                                     "version", "Check the agents' versions in the Entra admin center (Cloud Sync > Agents).")
    no_mail = [job for job, targets in cs.mappings.items() if "mail" not in {t.lower() for t in targets}]
    if no_mail:
        return make(code, "warn", f"writeback job {no_mail[0]} has no Mail -> mail mapping (jobs created before "
                                  "2026-08-03 lack it)",
                    "In the Entra admin center open the job's attribute mapping and choose 'Restore default mappings'.")
    return make(code, "pass", f"{len(cs.jobs)} 'EXO to AD attribute sync' job(s), agents "
                              f"{', '.join(sorted(set(versions)))}, Mail -> mail mapped")


def _older(version: str, minimum: str) -> bool:
    try:
        return version_tuple(version) < version_tuple(minimum)
    except ValueError:
        return True


def tenant_default_safe(f: Facts) -> Check:
    """TENANT_DEFAULT_SAFE: the default is not on while remote mailboxes are still created on-prem."""
    code = "TENANT_DEFAULT_SAFE"
    if not f.org_config.ok or f.org_config.value is None:
        return make(code, "unknown", f"organization config not read: {f.org_config.reason}")
    value, name = tenant_default(dict(f.org_config.value))
    if value is None:
        return make(code, "unknown", "Get-OrganizationConfig reports no tenant default (" +
                    " / ".join(DEFAULT_PROPERTIES) + ")")
    if not value:
        return make(code, "pass", f"{name} = False: new mailboxes keep on-prem managed attributes")
    recent = recent_onprem_provisioning(f)
    if recent is None:
        return make(code, "unknown", f"{name} = True and on-prem provisioning could not be checked: "
                                     f"{f.onprem.reason or 'the on-prem data has no WhenCreated'}",
                    "Give on-prem data (--onprem-csv with WhenCreated, or --onprem-host) to check it.")
    count, samples = recent
    days = f.provisioning_window_days
    if count:
        return make(code, "fail", f"{name} = True while {count:,} remote mailbox(es) were created on-prem in the "
                                  f"last {days} days: new users then get no Exchange Online object",
                    "Stop creating mailboxes on-prem (create them in Exchange Online), or turn the default off "
                    "with 'exocm tenant-default set server'.", samples)
    return make(code, "pass", f"{name} = True and no remote mailbox was created on-prem in the last {days} days")


def recent_onprem_provisioning(f: Facts) -> tuple[int, list[str]] | None:
    """(remote mailboxes created on-prem in the window, sample UPNs), or None when it cannot be told."""
    if not f.onprem.ok or f.onprem.value is None:
        return None
    return remote_mailboxes_created_since(f.onprem.value, f.now - timedelta(days=f.provisioning_window_days))


def remote_mailboxes_created_since(frame: pd.DataFrame, cutoff: datetime) -> tuple[int, list[str]] | None:
    """(remote mailboxes in the on-prem frame created at or after `cutoff`, sample UPNs); None when the
    frame has no WhenCreated values (it cannot be told). `tenant-default set cloud` refuses on a count."""
    if "WhenCreated" not in frame.columns or frame["WhenCreated"].notna().sum() == 0:
        return None
    created = pd.to_datetime(frame["WhenCreated"], utc=True, errors="coerce")
    mask = frame["RecipientTypeDetails"].isin(REMOTE_TYPES) & (created >= pd.Timestamp(cutoff))
    rows = frame[mask]
    return int(len(rows)), [str(u) for u in rows["UserPrincipalName"].head(_SAMPLE)]


def users_without_exo_object(f: Facts) -> Check:
    """USERS_WITHOUT_EXO_OBJECT: synced users with an Exchange licence but no EXO mailbox or mail user."""
    code = "USERS_WITHOUT_EXO_OBJECT"
    for fact in (f.licensed_synced_users, f.inventory):
        if not fact.ok:
            return make(code, "unknown", fact.reason)
    users = f.licensed_synced_users.value or []
    inv = f.inventory.value
    assert inv is not None
    have = inv[inv["RecipientTypeDetails"].isin((*FLIP_TYPES, "MailUser"))]
    keys = set(have.index.astype(str).str.lower())
    missing = [u for u in users if str(u.get("id", "")).lower() not in keys]
    if missing:
        upns = [str(u.get("userPrincipalName") or u.get("id")) for u in missing]
        return make(code, "fail", f"{len(missing):,} of {len(users):,} synced users with an Exchange licence have no "
                                  "Exchange Online mailbox or mail user", "Create their mailboxes (on-prem "
                                  "Enable-RemoteMailbox while on-prem provisioning continues) and keep the tenant "
                                  "default off until every new mailbox is created in Exchange Online.",
                    upns[:_SAMPLE])
    return make(code, "pass", f"all {len(users):,} synced users with an Exchange licence have an Exchange Online "
                              "recipient")


def routing_domain(f: Facts) -> Check:
    """ROUTING_DOMAIN: <tenant>.mail.onmicrosoft.com is an accepted domain (else HCW8001)."""
    code = "ROUTING_DOMAIN"
    if not f.accepted_domains.ok or f.accepted_domains.value is None:
        return make(code, "unknown", f"Get-AcceptedDomain not read: {f.accepted_domains.reason}")
    names = [d.lower() for d in f.accepted_domains.value]
    initial = f.initial_domain.lower() or next((d for d in names if d.endswith(".onmicrosoft.com")
                                                and ".mail." not in d), "")
    if not initial:
        return make(code, "unknown", "no <tenant>.onmicrosoft.com domain among the accepted domains")
    wanted = initial.replace(".onmicrosoft.com", ".mail.onmicrosoft.com")
    if wanted in names:
        return make(code, "pass", f"{wanted} is an accepted domain")
    return make(code, "fail", f"{wanted} is not an accepted domain (the Hybrid Configuration Wizard stops with "
                              "HCW8001: unable to determine the tenant routing domain)",
                "Enable directory synchronization, then re-run the Hybrid Configuration Wizard so it creates the "
                "routing domain.")


def dirsync_enabled(f: Facts) -> Check:
    """DIRSYNC_ENABLED: Graph organization.onPremisesSyncEnabled is true."""
    code = "DIRSYNC_ENABLED"
    if not f.organization.ok or f.organization.value is None:
        return make(code, "unknown", f"Graph organization not read: {f.organization.reason}")
    org = f.organization.value
    if org.get("onPremisesSyncEnabled") is True:
        last = org.get("onPremisesLastSyncDateTime")
        return make(code, "pass", "onPremisesSyncEnabled = true" + (f", last sync {last}" if last else ""))
    return make(code, "fail", f"onPremisesSyncEnabled = {org.get('onPremisesSyncEnabled')!r}: directory "
                              "synchronization is off", "Turn directory synchronization on (Entra Connect Sync or "
                              "Cloud Sync) before any flip: cloud-managed mailboxes are dir-synced mailboxes.")


def mailbox_findings(f: Facts) -> Check:
    """MAILBOX_FINDINGS: counts of dual mailboxes, stale previous-mailbox info and GUID mismatches."""
    code = "MAILBOX_FINDINGS"
    if not f.finding_counts.ok or f.finding_counts.value is None:
        return make(code, "unknown", f"findings not computed: {f.finding_counts.reason}")
    counts = f.finding_counts.value
    unchecked = [c for c in MAILBOX_FINDING_FIXES if c not in counts]
    evidence = ", ".join(f"{c} {counts[c]:,}" for c in MAILBOX_FINDING_FIXES if c in counts)
    if unchecked:
        evidence += ("; " if evidence else "") + f"not checked without on-prem data: {', '.join(unchecked)}"
    bad = [c for c in MAILBOX_FINDING_FIXES if counts.get(c, 0)]
    if bad:
        return make(code, "fail", evidence, "; ".join(MAILBOX_FINDING_FIXES[c] for c in bad[:2]),
                    [MAILBOX_FINDING_FIXES[c] for c in bad])
    if unchecked:
        return make(code, "unknown", evidence, "Give on-prem data (--onprem-csv or --onprem-host) to check them.")
    return make(code, "pass", evidence)


def cloud_sync_limits(f: Facts) -> Check:
    """CLOUD_SYNC_LIMITS: <= 150,000 objects per AD domain and groups <= 50,000 members."""
    code = "CLOUD_SYNC_LIMITS"
    over: list[str] = []
    parts: list[str] = []
    reasons: list[str] = []
    if f.onprem.ok and f.onprem.value is not None:
        per_domain = objects_per_domain(f.onprem.value)
        top = per_domain.head(3)
        parts.append("on-prem recipients per AD domain: " +
                     (", ".join(f"{d} {n:,}" for d, n in top.items()) or "none"))
        over += [f"{d}: {n:,} objects > {CLOUD_SYNC_MAX_OBJECTS_PER_DOMAIN:,}"
                 for d, n in per_domain.items() if n > CLOUD_SYNC_MAX_OBJECTS_PER_DOMAIN]
    else:
        reasons.append(f"objects per domain: {f.onprem.reason}")
    if f.synced_group_sizes.ok and f.synced_group_sizes.value is not None:
        gs = f.synced_group_sizes.value
        if gs.sizes:
            parts.append(f"{gs.synced_groups:,} synced groups, largest {max(gs.sizes.values()):,} members")
            over += [f"group {g}: {n:,} members > {CLOUD_SYNC_MAX_GROUP_MEMBERS:,}"
                     for g, n in gs.sizes.items() if n > CLOUD_SYNC_MAX_GROUP_MEMBERS]
        elif gs.not_counted:
            reasons.append(f"group sizes: {gs.not_counted}")
        elif gs.directory_objects is not None:
            parts.append(f"{gs.synced_groups:,} synced groups; {gs.directory_objects:,} users, groups and contacts "
                         f"in all, so no group can exceed {CLOUD_SYNC_MAX_GROUP_MEMBERS:,} members")
        else:
            parts.append("no synced group")
    else:
        reasons.append(f"group sizes: {f.synced_group_sizes.reason}")
    evidence = "; ".join(parts + [f"not checked: {r}" for r in reasons])
    if over:
        return make(code, "warn", evidence + "; over Cloud Sync's limits: " + "; ".join(over[:3]),
                    "Stay on Entra Connect Sync for these objects (Cloud Sync cannot take them over yet), or split "
                    "the group / domain before moving to Cloud Sync.", over[:_SAMPLE])
    if reasons:
        return make(code, "unknown", evidence)
    return make(code, "pass", evidence)


def objects_per_domain(onprem: pd.DataFrame) -> pd.Series:
    """On-prem recipients per AD domain (from DistinguishedName's DC= parts, else the UPN suffix), largest first."""
    upn = onprem["UserPrincipalName"].astype("object").fillna("").astype(str)
    by_upn = upn.str.rsplit("@", n=1).str[-1].str.lower()
    if "DistinguishedName" in onprem.columns:
        dn = onprem["DistinguishedName"].astype("object").fillna("").astype(str)
        by_dn = dn.str.findall(r"(?i)DC=([^,]+)").str.join(".").str.lower()
        domains = by_dn.where(by_dn != "", by_upn)
    else:
        domains = by_upn
    counts: pd.Series = domains.replace("", "(unknown)").value_counts()
    return counts


FLIP_CHECKS = (feature_present, sync_client_version, writeback_configured, tenant_default_safe,
               users_without_exo_object, routing_domain, dirsync_enabled, mailbox_findings, cloud_sync_limits)
