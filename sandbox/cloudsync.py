"""The Cloud Sync side of writeback: does a cloud-managed mailbox's Exchange data reach AD?

Facts (Microsoft Learn "Exchange hybrid writeback with cloud sync", entra-docs
cloud-sync/exchange-hybrid.md; mardahl/Exchange-SOA-Manager wiki "Writeback to AD"):
- Without a Cloud Sync "EXO to AD attribute sync" configuration nothing is written back
  (Phase 1 of the Exchange SOA change): cloud edits of a cloud-managed mailbox stay in the cloud.
- With it (Phase 2), exactly mail, proxyAddresses, extensionAttribute1-15,
  msExchExtensionCustomAttribute1-5, msExchRecipientDisplayType and msExchRecipientTypeDetails
  are written back; anything else edited in the cloud stays there.
- A Cloud Sync configuration is a synchronization job of the Cloud Sync service principal
  (application id 1a4721b3-e57f-4451-ae87-ef078703ec94, Microsoft Learn "Configure cloud sync
  with MS Graph API"), listed by Graph `GET /servicePrincipals/{id}/synchronization/jobs`
  (Graph "List synchronizationJobs"). The job's templateId for EXO to AD attribute sync is not
  documented: EXO_TO_AD_TEMPLATE is the sandbox's own name.

The variants (variants.py) choose the world: `writeback-off` (no job, no writeback),
`writeback-phase2` (a job; the Phase 2 list written back by Cloud Sync's own cycle, which the
sandbox runs at once after each cloud edit: the real one runs every few minutes, "about 20
minutes" in mardahl's wiki), neither (the sandbox's older reading: no job in Graph, but the
Phase 2 list plus HiddenFromAddressListsEnabled written back at each Entra Connect cycle).
This module is the one place the sandbox models that job.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from exocm.sandbox.tenant import Tenant

#: The Cloud Sync (AD2AAD) application's id (Microsoft Learn, "Configure cloud sync with MS Graph API").
CLOUD_SYNC_APP_ID: Final = "1a4721b3-e57f-4451-ae87-ef078703ec94"
#: Sandbox-made templateId of the "EXO to AD attribute sync" job (the real one is not documented).
EXO_TO_AD_TEMPLATE: Final = "Exo2ADAttributeSync"
#: EXO names of what Phase 2 writes back: mail, proxyAddresses, extensionAttribute1-15,
#: msExchExtensionCustomAttribute1-5, msExchRecipientDisplayType/-TypeDetails.
PHASE2_EXO_ATTRIBUTES: Final = ("PrimarySmtpAddress", "EmailAddresses",
                                *(f"CustomAttribute{i}" for i in range(1, 16)),
                                *(f"ExtensionCustomAttribute{i}" for i in range(1, 6)), "RecipientTypeDetails")


def writeback_mode(t: Tenant) -> str:
    """'off', 'phase2' or 'legacy' (the default sandbox: Phase 2 list plus HiddenFromAddressListsEnabled)."""
    variants = getattr(t, "variants", frozenset())
    if "writeback-off" in variants:
        return "off"
    readiness = getattr(t, "readiness", None)
    if "writeback-phase2" in variants or (readiness is not None and readiness.cloud_sync.configured):
        return "phase2"  # a readiness state with a configured job is the Phase 2 world
    return "legacy"


def _stable_id(t: Tenant, what: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(f"{t.tenant_id}:{what}".encode()).digest()[:16], version=4))


def service_principals(t: Tenant) -> list[dict[str, Any]]:
    """Graph `servicePrincipal` resources: the Cloud Sync one, when a writeback job exists (phase2 only)."""
    if writeback_mode(t) != "phase2":
        return []
    return [{"id": _stable_id(t, "cloudsync-sp"), "appId": CLOUD_SYNC_APP_ID,
             "displayName": t.onprem_domain, "servicePrincipalType": "Application"}]


def synchronization_jobs(t: Tenant, sp_id: str) -> list[dict[str, Any]] | None:
    """Graph `synchronizationJob` resources of service principal `sp_id`; None when there is no such principal."""
    if not any(sp["id"] == sp_id.lower() for sp in service_principals(t)):
        return None
    job_id = f"{EXO_TO_AD_TEMPLATE}.{_stable_id(t, 'job').replace('-', '')}.{_stable_id(t, 'job2').replace('-', '')}"
    created = t.readiness.cloud_sync.job_created if getattr(t, "readiness", None) is not None else None
    return [{"id": job_id, "templateId": EXO_TO_AD_TEMPLATE,
             "createdDateTime": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else None,
             "schedule": {"interval": "PT2M", "state": "Active"},
             "status": {"code": "Active", "lastSuccessfulExecution": None}}]


# ----------------------------------------------------------------------------- readiness facts
# What the readiness checks read of the same job (docs/exchange-facts.md#readiness-before-you-flip): the
# agents' versions (>= 1.1.1107.0 for Exchange writeback) and the job's Mail -> mail mapping (jobs
# created before 2026-08-03 lack it until "Restore default mappings"). Sandbox-made: the agent's
# `agentVersion` property (Graph's onPremisesAgent documents no version; the admin center shows it)
# and the job's `createdDateTime`.

#: Attributes the EXO-to-AD writeback writes (AD names), from Microsoft's writeback list.
WRITEBACK_AD_ATTRIBUTES: Final = (
    "mail", "proxyAddresses", *(f"extensionAttribute{i}" for i in range(1, 16)),
    *(f"msExchExtensionCustomAttribute{i}" for i in range(1, 6)),
    "msExchRecipientDisplayType", "msExchRecipientTypeDetails",
)
#: Jobs created before this day lack the Mail -> mail mapping until "Restore default mappings".
MAIL_MAPPING_SINCE: Final = datetime(2026, 8, 3, tzinfo=UTC)
#: Minimum provisioning agent version for Exchange writeback.
MIN_AGENT_VERSION: Final = "1.1.1107.0"
#: The agent a configured tenant has unless a readiness state says otherwise (sandbox-made).
DEFAULT_AGENT_VERSION: Final = "1.1.1370.0"


@dataclass
class CloudSyncState:
    """The job as readiness sees it: configured (a Phase 2 world), when created, its mail mapping, agents."""

    configured: bool = False
    job_created: datetime | None = None
    mail_mapping: bool = True
    agent_versions: list[str] = field(default_factory=list)

    def to_meta(self) -> dict[str, Any]:
        """JSON-friendly form (sandbox state file)."""
        d = asdict(self)
        d["job_created"] = self.job_created.isoformat() if self.job_created else None
        return d

    @classmethod
    def from_meta(cls, meta: dict[str, Any] | None) -> CloudSyncState:
        """Back from to_meta()."""
        if not meta:
            return cls()
        d = {k: v for k, v in meta.items() if k in ("configured", "job_created", "mail_mapping", "agent_versions")}
        d["job_created"] = datetime.fromisoformat(d["job_created"]) if d.get("job_created") else None
        return cls(**d)


def job_schema(t: Tenant) -> dict[str, Any]:
    """Graph `synchronizationSchema` of the job: one rule, the user mapping of the writeback list
    (without mail while the job lacks the Mail -> mail mapping)."""
    state = t.readiness.cloud_sync
    names = [a for a in WRITEBACK_AD_ATTRIBUTES if state.mail_mapping or a != "mail"]
    source = {"mail": "Mail", "proxyAddresses": "ProxyAddresses"}
    mappings = [{"source": {"expression": f"[{source.get(a, a)}]", "name": source.get(a, a), "type": "Attribute"},
                 "targetAttributeName": a, "flowType": "Always"} for a in names]
    return {"synchronizationRules": [{"name": "EXO to AD", "objectMappings": [
        {"sourceObjectName": "User", "targetObjectName": "user", "enabled": True, "attributeMappings": mappings}]}]}


def agents(t: Tenant) -> list[dict[str, Any]]:
    """Graph `onPremisesAgent` records of the provisioning agents (with the sandbox's agentVersion);
    none without a configured job."""
    if writeback_mode(t) != "phase2":
        return []
    versions = t.readiness.cloud_sync.agent_versions or [DEFAULT_AGENT_VERSION]
    return [{"id": _stable_id(t, f"agent{i}"), "machineName": f"SYNC0{i + 1}", "externalIp": f"203.0.113.{10 + i}",
             "status": "active", "supportedPublishingTypes": ["provisioning"], "agentVersion": version}
            for i, version in enumerate(versions)]
