"""The vocabulary of the prerequisite checks: codes, results, severities, the facts they read.

A check's *result* is pass, warn, fail or unknown. Unknown always carries the reason the check
could not be made (its source unreachable, not given, not readable): a check never passes on a
guess. A check's *severity* says how much a result other than pass matters (an admin's
`--fail-on` compares it, as for findings); a pass is reported with severity "info".
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Generic, Literal, Protocol, TypeVar

import pandas as pd

Result = Literal["pass", "warn", "fail", "unknown"]
RESULTS: Final[tuple[str, ...]] = ("fail", "warn", "unknown", "pass")
Scope = Literal["flip", "decommission"]
SCOPES: Final[tuple[str, ...]] = ("flip", "decommission")
Record = dict[str, Any]


#: The Cloud Sync (AD2AAD) application id (Microsoft Learn, "Configure cloud sync with MS Graph API").
CLOUD_SYNC_APP_ID: Final = "1a4721b3-e57f-4451-ae87-ef078703ec94"


def is_exo_to_ad_template(template: str) -> bool:
    """A Cloud Sync job template for EXO-to-AD attribute sync. The real templateId is not documented:
    any id naming both Exchange Online (Exo) and AD in that order counts (the sandbox's is Exo2ADAttributeSync)."""
    low = template.lower()
    return "exo" in low and "ad" in low[low.index("exo") + 3:]


@dataclass(frozen=True)
class CheckSpec:
    """What a check is: its stable code, title, scope and the severity of a result other than pass."""

    code: str
    title: str
    scope: Scope
    severity: str  # of a fail (and of an unknown)
    warn_severity: str = "medium"


#: Every check, in report order. The codes are stable: scripts key on them.
CHECK_SPECS: Final[tuple[CheckSpec, ...]] = (
    CheckSpec("FEATURE_PRESENT", "Cloud-managed Exchange attributes available in this tenant", "flip", "critical",
              "medium"),
    CheckSpec("SYNC_CLIENT_VERSION", "Entra Connect Sync build supports cloud-managed mailboxes", "flip", "high"),
    CheckSpec("WRITEBACK_CONFIGURED", "Writeback of cloud edits to AD (Cloud Sync EXO to AD)", "flip", "high",
              "medium"),
    CheckSpec("TENANT_DEFAULT_SAFE", "Tenant default not on while mailboxes are provisioned on-prem", "flip",
              "critical"),
    CheckSpec("USERS_WITHOUT_EXO_OBJECT", "Licensed synced users all have an Exchange Online recipient", "flip",
              "high"),
    CheckSpec("ROUTING_DOMAIN", "Hybrid routing domain <tenant>.mail.onmicrosoft.com accepted (HCW8001)", "flip",
              "high"),
    CheckSpec("DIRSYNC_ENABLED", "Directory synchronization enabled for the tenant", "flip", "high"),
    CheckSpec("MAILBOX_FINDINGS", "No dual mailboxes, stale previous-mailbox info or ExchangeGuid mismatches",
              "flip", "high"),
    CheckSpec("CLOUD_SYNC_LIMITS", "Within Cloud Sync's limits (objects per AD domain, group size)", "flip", "medium",
              "medium"),
    CheckSpec("ONPREM_MAILBOXES_LEFT", "No mailbox left on the Exchange server", "decommission", "critical"),
    CheckSpec("ONPREM_PUBLIC_FOLDERS", "No public folders left on-premises", "decommission", "critical"),
    CheckSpec("ALL_CLOUD_MANAGED", "Every dir-synced mailbox is cloud-managed", "decommission", "high"),
    CheckSpec("GROUPS_CONTACTS_CONVERTED", "Groups and contacts converted to cloud source of authority",
              "decommission", "medium"),
    CheckSpec("HYBRID_OBJECTS", "Hybrid configuration removed from the Exchange server", "decommission", "high"),
    CheckSpec("MANUAL_CHECKS", "MX, Autodiscover and SMTP relay moved off the server (checked by hand)",
              "decommission", "low"),
)
SPECS: Final[dict[str, CheckSpec]] = {s.code: s for s in CHECK_SPECS}


def codes_for(scope: str) -> tuple[str, ...]:
    """The check codes a scope runs: flip = the flip checks; decommission = flip + decommission."""
    return tuple(s.code for s in CHECK_SPECS if scope == "decommission" or s.scope == "flip")


@dataclass(frozen=True)
class Check:
    """One check's outcome, as every output shows it."""

    code: str
    title: str
    result: str
    severity: str
    evidence: str
    fix: str
    details: tuple[str, ...] = ()  # the listed objects / steps (samples), for reports

    def as_dict(self) -> dict[str, Any]:
        """{"code", "title", "result", "severity", "evidence", "fix"} (+ "details" when any)."""
        out: dict[str, Any] = {"code": self.code, "title": self.title, "result": self.result,
                               "severity": self.severity, "evidence": self.evidence, "fix": self.fix}
        if self.details:
            out["details"] = list(self.details)
        return out


def make(code: str, result: str, evidence: str, fix: str = "", details: tuple[str, ...] | list[str] = ()) -> Check:
    """A Check for `code` with the severity its result carries."""
    spec = SPECS[code]
    severity = {"pass": "info", "warn": spec.warn_severity}.get(result, spec.severity)
    return Check(code, spec.title, result, severity, evidence, fix, tuple(details))


@dataclass(frozen=True)
class Unavailable:
    """A fact that could not be read, and why (one line)."""

    reason: str


T = TypeVar("T")


@dataclass
class Fact(Generic[T]):
    """A value read from a source, or the reason it could not be."""

    value: T | None = None
    missing: Unavailable | None = None
    source: str = ""

    @classmethod
    def of(cls, value: T, source: str = "") -> Fact[T]:
        """A fact that was read."""
        return cls(value=value, source=source)

    @classmethod
    def unavailable(cls, reason: str) -> Fact[T]:
        """A fact that could not be read."""
        return cls(missing=Unavailable(reason))

    @property
    def ok(self) -> bool:
        """True when the value was read."""
        return self.missing is None

    @property
    def reason(self) -> str:
        """Why it is missing ('' when it is not)."""
        return self.missing.reason if self.missing is not None else ""


@dataclass
class CloudSyncFacts:
    """The EXO-to-AD Cloud Sync configuration as Graph shows it."""

    jobs: list[Record] = field(default_factory=list)
    mappings: dict[str, list[str]] = field(default_factory=dict)  # job id -> target attribute names
    agent_versions: list[str | None] = field(default_factory=list)  # None: the agent reports no version


@dataclass
class GroupSizes:
    """Synced groups' member counts, or the bound that makes counting them unnecessary."""

    synced_groups: int = 0
    sizes: dict[str, int] = field(default_factory=dict)  # counted: group name -> members
    directory_objects: int | None = None  # users + groups + contacts: no group can have more members
    not_counted: str = ""  # why the groups were not counted (and the bound did not settle it)


@dataclass
class HybridFacts:
    """Public folders and hybrid objects found on the Exchange server."""

    public_folder_mailboxes: list[str] = field(default_factory=list)
    public_folders: list[str] = field(default_factory=list)
    hybrid: dict[str, list[str]] = field(default_factory=dict)  # kind -> names, in cleanup order


@dataclass
class Facts:
    """Everything the checks read, each as a Fact (read, or why not)."""

    now: datetime
    tenant: str = ""
    initial_domain: str = ""
    org_config: Fact[Record] = field(default_factory=lambda: Fact.unavailable("not read"))
    accepted_domains: Fact[list[str]] = field(default_factory=lambda: Fact.unavailable("not read"))
    inventory: Fact[pd.DataFrame] = field(default_factory=lambda: Fact.unavailable("not read"))
    onprem: Fact[pd.DataFrame] = field(default_factory=lambda: Fact.unavailable("no on-prem data"))
    finding_counts: Fact[dict[str, int]] = field(default_factory=lambda: Fact.unavailable("not read"))
    organization: Fact[Record] = field(default_factory=lambda: Fact.unavailable("not read"))
    licensed_synced_users: Fact[list[Record]] = field(default_factory=lambda: Fact.unavailable("not read"))
    synced_group_sizes: Fact[GroupSizes] = field(default_factory=lambda: Fact.unavailable("not read"))
    cloud_sync: Fact[CloudSyncFacts] = field(default_factory=lambda: Fact.unavailable("not read"))
    sync_client_version: Fact[str] = field(default_factory=lambda: Fact.unavailable(
        "no sync server given (--sync-server HOST or --sync-client-version V)"))
    onprem_server: Fact[HybridFacts] = field(default_factory=lambda: Fact.unavailable(
        "the Exchange server was not read live (--onprem-host/--onprem-live)"))
    object_soa: Fact[Record] = field(default_factory=lambda: Fact.unavailable(
        "groups and contacts not read (needs Microsoft Graph)"))
    provisioning_window_days: int = 30
    notes: list[str] = field(default_factory=list)


class GraphReads(Protocol):
    """The Microsoft Graph reads the checks need (the Graph bridge, core.bridge.graph.GraphBridge, has them)."""

    requests: int

    def read(self, path: str, *, params: Mapping[str, str] | None = None, version: str = "v1.0",
             headers: Mapping[str, str] | None = None) -> Any:
        """GET one resource (parsed JSON, or text for a $count)."""
        ...

    def read_all(self, path: str, *, params: Mapping[str, str] | None = None, version: str = "v1.0",
                 headers: Mapping[str, str] | None = None) -> list[Record]:
        """GET a collection, every page."""
        ...
