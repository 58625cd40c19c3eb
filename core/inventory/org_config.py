"""The tenant's organization config (Get-OrganizationConfig), read for detection's tenant-wide rules."""
from __future__ import annotations

from typing import Any

from ..bridge.base import Bridge
from ..bridge.errors import BridgeError


def read_org_config(bridge: Bridge) -> tuple[dict[str, Any] | None, str]:
    """The organization config as one record, and '' - or None and a one-line note saying why it is
    missing (the tenant-wide rules are then listed as not checked, nothing else depends on it)."""
    try:
        records = bridge.invoke("Get-OrganizationConfig", {})
    except BridgeError as exc:
        return None, f"Get-OrganizationConfig failed ({exc.message}); tenant default not checked"
    return (dict(records[0]), "") if records else (None, "")
