"""Tenant-wide settings: the cloud-managed default for new mailboxes (docs/exchange-facts.md#tenant-wide-default)."""
from __future__ import annotations

import pandas as pd

from ...model import tenant_default_of
from ..engine import NONE, DetectContext, Hits, rule

WARNING = (
    "affects new mailboxes only, and is unsupported while mailboxes or remote mailboxes are still "
    "created on-prem (New-RemoteMailbox / Enable-RemoteMailbox)"
)


@rule(
    "TENANT_CLOUD_MANAGED_BY_DEFAULT",
    "medium",
    action="review-tenant-default",
    blocks=NONE,
    tenant=True,
    summary="Organization default ExchangeAttributesCloudManagedByDefault is on",
)
def tenant_cloud_managed_by_default(ctx: DetectContext) -> Hits:
    """Get-OrganizationConfig shows the default on (ExchangeAttributesCloudManagedByDefault, or
    BlockExchangeProvisioningFromOnPremEnabled where only that answers), with the warning of
    docs/exchange-facts.md#tenant-wide-default."""
    value, source = tenant_default_of(ctx.org_config or {})
    on = value is True
    idx = pd.Index([""] if on else [], dtype="str")
    explanation = pd.Series(
        ["New mailboxes are created cloud-managed by default: " + WARNING] if on else [], index=idx, dtype="str"
    )
    extra = " On-prem data shows RemoteMailboxes, so on-prem provisioning is still in use." if (
        on and ctx.onprem is not None and ctx.onprem["RecipientTypeDetails"].astype("str").str.startswith("Remote").any()
    ) else ""
    if extra:
        explanation = explanation + extra
    evidence = pd.Series(
        [{"ExchangeAttributesCloudManagedByDefault": True, "read_from": source, "warning": WARNING}] if on else [],
        index=idx, dtype="object"
    )
    return Hits(idx, explanation, evidence, upn=pd.Series([""] * len(idx), index=idx, dtype="str"))
