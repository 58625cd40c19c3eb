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
    if "writeback-phase2" in variants:
        return "phase2"
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
    return [{"id": job_id, "templateId": EXO_TO_AD_TEMPLATE,
             "schedule": {"interval": "PT2M", "state": "Active"},
             "status": {"code": "Active", "lastSuccessfulExecution": None}}]
