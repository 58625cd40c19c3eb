"""The tenant-wide default: are new mailboxes' Exchange attributes cloud-managed?

`Get-OrganizationConfig` shows `ExchangeAttributesCloudManagedByDefault`;
`Set-OrganizationConfig -ExchangeAttributesCloudManagedByDefault` turns it on and
`-ExchangeAttributesServerManagedByDefault` turns it back (DESIGN section 1). The change
is journaled like a row (an intent with the before state, then the read-back outcome).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from ..access.config import data_dir as default_data_dir
from ..bridge.base import Bridge
from ..bridge.errors import AppliedUnknown, BridgeError, Transient
from ..plan.planfile import tool_version
from ..values import as_bool, normalise_value
from .journal import JournalWriter, journals_under, local_actor

PROPERTY: Final = "ExchangeAttributesCloudManagedByDefault"
SWITCHES: Final = {"cloud": "ExchangeAttributesCloudManagedByDefault",
                   "server": "ExchangeAttributesServerManagedByDefault"}
Mode = Literal["cloud", "server"]

#: What an admin must know before changing the default (DESIGN section 1).
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


class TenantDefaultError(Exception):
    """The default could not be read or changed; `str(exc)` is one line."""


@dataclass(frozen=True)
class TenantDefault:
    """The tenant's current default and the warnings that go with it."""

    tenant: str
    cloud_managed_by_default: bool | None
    warnings: tuple[str, ...] = ()

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


def show_tenant_default(bridge: Bridge) -> TenantDefault:
    """Read the tenant default (with the warnings of the mode it is in)."""
    try:
        config = _read(bridge)
    except BridgeError as exc:
        raise TenantDefaultError(f"cannot read the organization config: {exc.message}") from None
    value = as_bool(config.get(PROPERTY))
    notes: tuple[str, ...] = ()
    if value is None:
        notes = (f"{PROPERTY} is not reported by this tenant: the feature may not be available yet.",)
    elif value:
        notes = WARNINGS["cloud"][:2]
    return TenantDefault(tenant=str(bridge.tenant), cloud_managed_by_default=value, warnings=notes)


def confirmation_phrase(tenant: str, mode: Mode) -> str:
    """What the user types to confirm a change of the default."""
    return f"{mode.upper()} {tenant}"


def set_tenant_default(
    bridge: Bridge,
    mode: Mode,
    *,
    data_dir: Path | None = None,
    actor: str | None = None,
) -> TenantDefaultChange:
    """Set the default to cloud or server, read it back, and journal the change like a row."""
    if mode not in SWITCHES:
        raise TenantDefaultError(f"mode must be 'cloud' or 'server', not {mode!r}")
    target = mode == "cloud"
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    try:
        before_config = _read(bridge)
    except BridgeError as exc:
        raise TenantDefaultError(f"cannot read the organization config: {exc.message}") from None
    before = as_bool(before_config.get(PROPERTY))
    journal = JournalWriter.create(
        plan_digest=None, tenant=str(bridge.tenant), actor=actor or local_actor(), tool_version=tool_version(),
        directory=journals_under(base), extra={"operation": "tenant-default", "value": mode},
    )
    backup = {PROPERTY: before}
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
                try:
                    bridge.invoke("Set-OrganizationConfig", {SWITCHES[mode]: True})
                    error = None
                except (AppliedUnknown, Transient) as exc:
                    error = f"{type(exc).__name__}: {exc.message}"
                except BridgeError as exc:
                    error = f"{type(exc).__name__}: {exc.message}"
                    row.update(status="failed", after=before, error=error, reason="the service refused the change")
                    break
                after = as_bool(_read(bridge).get(PROPERTY))
                row["after"] = after
                if after == target:
                    row.update(status="verified", error=error,
                               note="the write answered an error; read-back shows it applied" if error else "")
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
