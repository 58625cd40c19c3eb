"""The tenant-wide default: are new mailboxes' Exchange attributes cloud-managed?

`Set-OrganizationConfig -ExchangeAttributesCloudManagedByDefault` turns it on and
`-ExchangeAttributesServerManagedByDefault` turns it back. Which property of
`Get-OrganizationConfig` shows the state is not named by Microsoft: exocm reads
`ExchangeAttributesCloudManagedByDefault` and, when that is absent,
`BlockExchangeProvisioningFromOnPremEnabled` (what public tools read), and says which one
answered (docs/exchange-facts.md#tenant-wide-default). The change is journaled like a row (an
intent with the before state, then the read-back outcome); every write, whatever it answered, is
settled by reading back (docs/exchange-facts.md#applied-but-errored).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

from ..access.config import data_dir as default_data_dir
from ..bridge.base import Bridge
from ..bridge.errors import AppliedUnknown, BridgeError, Transient
from ..model import TENANT_DEFAULT_PROPERTIES, tenant_default_of
from ..plan.planfile import tool_version
from ..values import normalise_value
from .journal import JournalWriter, journals_under, local_actor

PROPERTY: Final = TENANT_DEFAULT_PROPERTIES[0]
#: The property public tools read the same state from (same meaning: true = cloud-managed by default).
BLOCK_PROPERTY: Final = TENANT_DEFAULT_PROPERTIES[1]
SWITCHES: Final = {"cloud": "ExchangeAttributesCloudManagedByDefault",
                   "server": "ExchangeAttributesServerManagedByDefault"}
Mode = Literal["cloud", "server"]

#: What an admin must know before changing the default (docs/exchange-facts.md#tenant-wide-default).
WARNINGS: Final[dict[str, tuple[str, ...]]] = {
    "cloud": (
        "Affects NEW mailboxes only: existing mailboxes keep their IsExchangeCloudManaged value; flip them with a plan.",
        "Unsupported while mailboxes or remote mailboxes are still created on-premises: only turn this on "
        "once every new mailbox is created in Exchange Online.",
        "New mailboxes' Exchange attributes will then be edited in Exchange Online, not on-premises.",
    ),
    "server": (
        "Affects NEW mailboxes only: mailboxes that are already cloud-managed stay so; use a plan "
        "(exocm plan --set-cloud-managed false) to hand them back.",
        "Handing a mailbox back to on-premises lets the next sync overwrite its cloud values.",
    ),
}


@dataclass(frozen=True)
class ProvisioningCheck:
    """Is on-prem still provisioning mailboxes? (remote mailboxes created on-prem within the window)

    `recent` is None when it could not be told (`reason` says why): no on-prem data, or data
    without WhenCreated. Turning the default on while on-prem provisions is unsupported
    (docs/exchange-facts.md#tenant-wide-default): new users then get no Exchange Online object.
    """

    recent: int | None
    window_days: int = 30
    samples: tuple[str, ...] = ()
    reason: str = ""

    @property
    def blocks(self) -> bool:
        """True when `set cloud` must refuse without the override confirmation."""
        return bool(self.recent)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (journal)."""
        return {"recent_remote_mailboxes": self.recent, "window_days": self.window_days,
                "samples": list(self.samples), "reason": self.reason}


def check_onprem_provisioning(onprem: Any, *, now: datetime | None = None, window_days: int = 30,
                              reason: str = "") -> ProvisioningCheck:
    """Count remote mailboxes created on-prem in the last `window_days` in the on-prem frame (None: not given)."""
    if onprem is None:
        return ProvisioningCheck(None, window_days, reason=reason or "no on-prem data")
    from ..detect.prerequisites.checks_flip import remote_mailboxes_created_since

    cutoff = (now or datetime.now(UTC)) - timedelta(days=window_days)
    found = remote_mailboxes_created_since(onprem, cutoff)
    if found is None:
        return ProvisioningCheck(None, window_days, reason="the on-prem data has no WhenCreated column")
    return ProvisioningCheck(found[0], window_days, tuple(found[1]))


def provisioning_override_phrase(tenant: str, check: ProvisioningCheck) -> str:
    """What the admin types to turn the default on although on-prem still provisions mailboxes."""
    return f"ONPREM-PROVISIONING {tenant} {check.recent or 0}"


class TenantDefaultError(Exception):
    """The default could not be read or changed; `str(exc)` is one line."""


@dataclass(frozen=True)
class TenantDefault:
    """The tenant's current default and the warnings that go with it."""

    tenant: str
    cloud_managed_by_default: bool | None
    warnings: tuple[str, ...] = ()
    #: The Get-OrganizationConfig property that answered (None when neither did).
    source_property: str | None = None

    @property
    def mode(self) -> str:
        """'cloud', 'server' or 'unknown' (property absent: feature not available in this tenant)."""
        if self.cloud_managed_by_default is None:
            return "unknown"
        return "cloud" if self.cloud_managed_by_default else "server"


@dataclass
class TenantDefaultChange:
    """The outcome of a change, as journaled."""

    tenant: str
    mode: Mode
    before: bool | None
    after: bool | None
    status: str
    journal_path: Path
    error: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verified(self) -> bool:
        """The read-back shows the requested default."""
        return self.status in ("verified", "already")


def _read(bridge: Bridge) -> dict[str, Any]:
    records = bridge.invoke("Get-OrganizationConfig", {})
    if not records:
        raise TenantDefaultError("Get-OrganizationConfig returned nothing")
    return records[0]


def default_of(config: Mapping[str, Any]) -> tuple[bool | None, str | None]:
    """(value, property that answered) from a Get-OrganizationConfig record (model.tenant_default_of)."""
    return tenant_default_of(config)


def show_tenant_default(bridge: Bridge) -> TenantDefault:
    """Read the tenant default (with the warnings of the mode it is in, and the property that answered)."""
    try:
        config = _read(bridge)
    except BridgeError as exc:
        raise TenantDefaultError(f"cannot read the organization config: {exc.message}") from None
    value, source = default_of(config)
    notes: tuple[str, ...] = ()
    if value is None:
        notes = (f"neither {PROPERTY} nor {BLOCK_PROPERTY} is reported by this tenant: the feature may not be "
                 "available yet.",)
    elif value:
        notes = WARNINGS["cloud"][:2]
    return TenantDefault(tenant=str(bridge.tenant), cloud_managed_by_default=value, warnings=notes,
                         source_property=source)


def confirmation_phrase(tenant: str, mode: Mode) -> str:
    """What the user types to confirm a change of the default."""
    return f"{mode.upper()} {tenant}"


def set_tenant_default(
    bridge: Bridge,
    mode: Mode,
    *,
    data_dir: Path | None = None,
    actor: str | None = None,
    provisioning: ProvisioningCheck | None = None,
    override: str | None = None,
) -> TenantDefaultChange:
    """Set the default to cloud or server, read it back, and journal the change like a row.

    `provisioning`: what the on-prem data says about on-prem provisioning; when it blocks a change to
    cloud, `override` must be `provisioning_override_phrase(...)` (else TenantDefaultError, nothing
    written), and the override is journaled (header and an "override" record before the intent).
    """
    if mode not in SWITCHES:
        raise TenantDefaultError(f"mode must be 'cloud' or 'server', not {mode!r}")
    target = mode == "cloud"
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    try:
        before_config = _read(bridge)
    except BridgeError as exc:
        raise TenantDefaultError(f"cannot read the organization config: {exc.message}") from None
    before, source = default_of(before_config)
    overridden = False
    if mode == "cloud" and provisioning is not None and provisioning.blocks:
        phrase = provisioning_override_phrase(str(bridge.tenant), provisioning)
        if override != phrase:
            raise TenantDefaultError(
                f"refusing: {provisioning.recent} remote mailbox(es) were created on-prem in the last "
                f"{provisioning.window_days} days; turning the default on while on-prem provisions is unsupported")
        overridden = True
    extra: dict[str, Any] = {"operation": "tenant-default", "value": mode}
    if provisioning is not None:
        extra["onprem_provisioning"] = {**provisioning.as_dict(), "override": overridden}
    journal = JournalWriter.create(
        plan_digest=None, tenant=str(bridge.tenant), actor=actor or local_actor(), tool_version=tool_version(),
        directory=journals_under(base), extra=extra,
    )
    if overridden:
        assert provisioning is not None
        journal.append([{"type": "override", "check": "TENANT_DEFAULT_SAFE", "confirmed": override,
                         "actor": actor or local_actor(), **provisioning.as_dict()}])
    backup: dict[str, Any] = {PROPERTY: before, "source_property": source}
    for key in ("Identity", "Name", "WhenChanged"):
        if key in before_config:
            backup[key] = normalise_value(before_config.get(key))
    row: dict[str, Any] = {"type": "row", "identity": "OrganizationConfig", "display_name": "Tenant default",
                           "upn": "", "target": target, "before": before, "backup": backup, "attempts": 0}
    error: str | None = None
    try:
        if before == target:
            row.update(status="skipped", after=before, reason="already_in_target_state")
        else:
            journal.append([{"type": "intent", "identity": "OrganizationConfig", "before": before,
                             "target": target, "backup": backup}])
            for attempt in range(1, 4):
                row["attempts"] = attempt
                refused = False
                try:
                    bridge.invoke("Set-OrganizationConfig", {SWITCHES[mode]: True})
                    error = None
                except (AppliedUnknown, Transient) as exc:
                    error = f"{type(exc).__name__}: {exc.message}"
                except BridgeError as exc:
                    error = f"{type(exc).__name__}: {exc.message}"
                    refused = True
                # Every write is settled by reading back, an error answer included: an error may
                # carry text and still have applied (docs/exchange-facts.md#applied-but-errored).
                try:
                    after, answered = default_of(_read(bridge))
                except BridgeError as exc:
                    row.update(status="failed", after=None, error=error,
                               reason=f"could not read the default back ({exc.message})")
                    break
                row["after"] = after
                row["source_property"] = answered
                if after == target:
                    row.update(status="verified", error=error,
                               note="the write answered an error; read-back shows it applied" if error else "")
                    break
                if refused:
                    row.update(status="failed", error=error,
                               reason="the service refused the change (read back: not applied)")
                    break
                if error is None:
                    row.update(status="failed", reason="the write reported success but read-back shows the old value")
                    break
            else:
                row.update(status="failed", error=error, reason="not applied after 3 attempts (read back each time)")
        journal.append([row])
        journal.append([{"type": "end", "outcome": "complete" if row["status"] != "failed" else "incomplete",
                         "cancelled": False, "error": None, "counts": {row["status"]: 1}}])
    finally:
        journal.close()
    return TenantDefaultChange(
        tenant=str(bridge.tenant), mode=mode, before=before, after=row.get("after"),
        status="already" if row["status"] == "skipped" else str(row["status"]),
        journal_path=journal.path, error=row.get("error"), warnings=WARNINGS[mode],
    )
