"""Small hand-built tenants for the detection tests: EXO records + on-prem records -> frames.

EXO frames go through the inventory's own record -> frame function, on-prem frames through
the on-prem loader's, so the rules see exactly the dtypes of a real run.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from exocm.core.detect.engine import DetectResult, detect
from exocm.core.inventory.fetch import records_to_frame
from exocm.core.inventory.onprem import onprem_frame_from_records

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=90)

def _hex(kind: str, name: str) -> str:
    return hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()


def eid(name: str) -> str:
    """A stable GUID-looking ExternalDirectoryObjectId for a short name."""
    h = _hex("eid", name)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def guid(name: str) -> str:
    """A stable ExchangeGuid for a short name."""
    h = _hex("guid", name)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def exo_mailbox(name: str, rtd: str = "UserMailbox", **kw: Any) -> dict[str, Any]:
    """An EXO Get-Mailbox record for user `name`@contoso.com (dir-synced, not cloud-managed)."""
    upn = kw.pop("upn", f"{name}@contoso.com")
    rec: dict[str, Any] = {
        "ExternalDirectoryObjectId": eid(name),
        "Guid": eid(name)[::-1],
        "ExchangeGuid": guid(name),
        "UserPrincipalName": upn,
        "PrimarySmtpAddress": upn,
        "Alias": name,
        "DisplayName": name.title(),
        "EmailAddresses": [f"SMTP:{upn}", f"smtp:{name}@contoso.mail.onmicrosoft.com"],
        "RecipientType": "UserMailbox",
        "RecipientTypeDetails": rtd,
        "PreviousRecipientTypeDetails": "None",
        "IsDirSynced": True,
        "IsExchangeCloudManaged": False,
        "WhenChanged": LONG_AGO,
    }
    rec.update(kw)
    return rec


def exo_mailuser(name: str, **kw: Any) -> dict[str, Any]:
    """An EXO Get-User record of a MailUser."""
    rec = exo_mailbox(name, "MailUser", RecipientType="MailUser", ExchangeGuid=None, IsExchangeCloudManaged=None)
    rec.update(kw)
    return rec


def onprem(name: str, rtd: str = "RemoteUserMailbox", **kw: Any) -> dict[str, Any]:
    """An on-prem Get-RemoteMailbox / Get-Mailbox export row consistent with exo_mailbox(name)."""
    upn = kw.pop("upn", f"{name}@contoso.com")
    rec: dict[str, Any] = {
        "UserPrincipalName": upn,
        "PrimarySmtpAddress": upn,
        "Alias": name,
        "RecipientTypeDetails": rtd,
        "ExchangeGuid": guid(name),
        "ArchiveGuid": "",
        "LegacyExchangeDN": "",
        "EmailAddresses": [f"SMTP:{upn}", f"smtp:{name}@contoso.mail.onmicrosoft.com"],
        "WhenChanged": LONG_AGO,
        **{f"CustomAttribute{i}": "" for i in range(1, 16)},
        **{f"ExtensionCustomAttribute{i}": [] for i in range(1, 6)},
        "DistinguishedName": f"CN={name},OU=Users,DC=contoso,DC=com",
        "OrganizationalUnit": "contoso.com/Users",
        "ExternalDirectoryObjectId": "",
    }
    rec.update(kw)
    return rec


@dataclass
class Tenant:
    """A hand-built tenant: EXO mailboxes, EXO users (mail users), on-prem rows (None = no on-prem data)."""

    mailboxes: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    onprem: list[dict[str, Any]] | None = field(default_factory=list)
    org: dict[str, Any] | None = None

    def inventory(self) -> pd.DataFrame:
        return records_to_frame(self.mailboxes, self.users)

    def onprem_frame(self) -> pd.DataFrame | None:
        return None if self.onprem is None else onprem_frame_from_records(self.onprem).frame

    def run(self, **kw: Any) -> DetectResult:
        kw.setdefault("now", NOW)
        return detect(self.inventory(), self.onprem_frame(), org_config=self.org, **kw)


def codes_for(result: DetectResult, code: str) -> set[str]:
    """EXO ids with a finding of `code`."""
    f = result.findings
    return set(f.loc[f["code"] == code, "ExternalDirectoryObjectId"])


def finding(result: DetectResult, code: str, name: str) -> dict[str, Any]:
    """The one finding of `code` for user `name` (asserts there is exactly one)."""
    f = result.findings
    rows = f[(f["code"] == code) & (f["ExternalDirectoryObjectId"] == eid(name))]
    assert len(rows) == 1, rows
    out: dict[str, Any] = rows.iloc[0].to_dict()
    return out
