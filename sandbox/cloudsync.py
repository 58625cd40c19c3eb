"""Entra Cloud Sync as the sandbox models it: the "EXO to AD attribute sync" configuration (the
writeback of cloud-managed Exchange attributes to AD) and its provisioning agents, served through
the sandbox's Graph.

Facts (docs/exchange-facts.md, "Writeback"): writeback of cloud-managed Exchange attributes needs a
Cloud Sync configuration "EXO to AD attribute sync" and a provisioning agent >= 1.1.1107.0
(Microsoft Learn, "Exchange hybrid writeback with cloud sync"); it writes back only mail,
proxyAddresses, extensionAttribute1-15, msExchExtensionCustomAttribute1-5,
msExchRecipientDisplayType and msExchRecipientTypeDetails; jobs created before 2026-08-03 lack the
Mail -> mail mapping until "Restore default mappings".

Graph shapes: a Cloud Sync configuration is a service principal with a synchronization job
(`/servicePrincipals/{id}/synchronization/jobs`, Graph `synchronizationJob`: id, templateId,
schedule, status) whose schema lists `synchronizationRules[].objectMappings[].attributeMappings[]`
(`source.name`, `targetAttributeName`); agents are `/onPremisesPublishingProfiles/provisioning/agents`
(beta, `onPremisesAgent`: id, machineName, externalIp, status, supportedPublishingTypes).
Sandbox-made (no Microsoft page names them): the service principal's tag `ExoToAdAttributeSync`
that finds the configuration, the job's `templateId` value, the job's `createdDateTime`, and the
agent's `agentVersion` (the admin center shows an agent's version; Graph documents no property).

This is the ONE Cloud Sync model of the sandbox: the writeback variants and the readiness checks
read the same `CloudSyncState`.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Attributes the EXO-to-AD writeback writes (AD names), from Microsoft's writeback list.
WRITEBACK_AD_ATTRIBUTES: tuple[str, ...] = (
    "mail", "proxyAddresses", *(f"extensionAttribute{i}" for i in range(1, 16)),
    *(f"msExchExtensionCustomAttribute{i}" for i in range(1, 6)),
    "msExchRecipientDisplayType", "msExchRecipientTypeDetails",
)
#: Jobs created before this day lack the Mail -> mail mapping until "Restore default mappings".
MAIL_MAPPING_SINCE = datetime(2026, 8, 3, tzinfo=UTC)
#: Minimum provisioning agent version for Exchange writeback.
MIN_AGENT_VERSION = "1.1.1107.0"
#: Tag of the service principal of an EXO-to-AD configuration (sandbox-made, see module docstring).
CONFIG_TAG = "ExoToAdAttributeSync"
#: templateId of the job (sandbox-made).
TEMPLATE_ID = "ExoToAdAttributeSync"


@dataclass
class CloudSyncState:
    """Whether writeback is configured, how its job is mapped, and the agents' versions."""

    configured: bool = False
    job_created: datetime | None = None
    #: Has the job the Mail -> mail mapping (jobs created before MAIL_MAPPING_SINCE lack it until
    #: "Restore default mappings" is run).
    mail_mapping: bool = True
    job_state: str = "Active"
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
        d = dict(meta)
        d["job_created"] = datetime.fromisoformat(d["job_created"]) if d.get("job_created") else None
        return cls(**d)

    def writes_back(self) -> bool:
        """True when cloud edits of the writeback attributes reach AD."""
        return self.configured and self.job_state == "Active"

    def attribute_mappings(self) -> list[dict[str, Any]]:
        """The job's attribute mappings (Graph `attributeMapping`)."""
        names = [a for a in WRITEBACK_AD_ATTRIBUTES if self.mail_mapping or a != "mail"]
        source = {"mail": "Mail", "proxyAddresses": "ProxyAddresses"}
        return [{"source": {"expression": f"[{source.get(a, a)}]", "name": source.get(a, a), "type": "Attribute"},
                 "targetAttributeName": a, "flowType": "Always"} for a in names]


def _id(seed: int, what: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(f"{seed}:cloudsync:{what}".encode()).digest()[:16], version=4))


def service_principals(state: CloudSyncState, seed: int) -> list[dict[str, Any]]:
    """Graph `servicePrincipal` records of the EXO-to-AD configuration (none when not configured)."""
    if not state.configured:
        return []
    return [{"id": _id(seed, "sp"), "appId": _id(seed, "app"), "displayName": "EXO to AD attribute sync",
             "tags": [CONFIG_TAG], "servicePrincipalType": "Application"}]


def jobs(state: CloudSyncState, seed: int) -> list[dict[str, Any]]:
    """Graph `synchronizationJob` records of the configuration."""
    if not state.configured:
        return []
    created = state.job_created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if state.job_created else None
    return [{"id": f"{TEMPLATE_ID}.{_id(seed, 'job').replace('-', '')}", "templateId": TEMPLATE_ID,
             "createdDateTime": created,
             "schedule": {"interval": "PT2M", "state": state.job_state},
             "status": {"code": state.job_state}}]


def job_schema(state: CloudSyncState) -> dict[str, Any]:
    """Graph `synchronizationSchema` of the job (one rule, one user mapping)."""
    return {"synchronizationRules": [{"name": "EXO to AD", "objectMappings": [
        {"sourceObjectName": "User", "targetObjectName": "user", "enabled": True,
         "attributeMappings": state.attribute_mappings()}]}]}


def agents(state: CloudSyncState, seed: int) -> list[dict[str, Any]]:
    """Graph `onPremisesAgent` records of the provisioning agents (with the sandbox's agentVersion)."""
    return [{"id": _id(seed, f"agent{i}"), "machineName": f"SYNC0{i + 1}", "externalIp": f"203.0.113.{10 + i}",
             "status": "active", "supportedPublishingTypes": ["provisioning"], "agentVersion": version}
            for i, version in enumerate(state.agent_versions)]
