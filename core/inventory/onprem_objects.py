"""On-prem AD data for groups, contacts and users: an Export-Csv of the AD objects, matched to Graph.

The export is what `Get-ADGroup -Filter * -Properties whenChanged,mail,displayName,proxyAddresses,
extensionAttribute1..15` (or `Get-ADObject -LDAPFilter '(objectClass=contact)' ...`, `Get-ADUser`)
piped to `Export-Csv -NoTypeInformation` writes: one row per AD object with the columns in
ONPREM_OBJECT_COLUMNS (extra columns are ignored; a missing one is empty). It tells the two things
Graph cannot: when the AD object last changed (`whenChanged`: Graph's onPremisesLastSyncDateTime
moves at every sync cycle) and the values AD will write back when it takes an object over again
(the undo preview).

Matching (docs/exchange-facts.md "Object-level SOA through Graph"): groups and users by
`sAMAccountName` = Graph `onPremisesSamAccountName`; contacts (no account name) by `mail`.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd

from ..model import CONTACT, check_kind

ONPREM_OBJECT_COLUMNS: Final[tuple[str, ...]] = (
    "ObjectGUID", "sAMAccountName", "mail", "DisplayName", "proxyAddresses", "whenChanged",
    *(f"extensionAttribute{i}" for i in range(1, 16)),
)


class OnPremObjectsError(ValueError):
    """The on-prem object export cannot be used; the message says why in one line."""


def load_onprem_objects_csv(path: Path | str) -> pd.DataFrame:
    """The rows of an AD object export (UTF-8 with or without BOM, or UTF-16 as Windows PowerShell 5 writes)."""
    target = Path(path)
    raw = target.read_bytes()
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        frame = pd.read_csv(target, dtype=str, keep_default_na=False, encoding=encoding)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OnPremObjectsError(f"{target} is not a CSV export of AD objects ({exc})") from None
    lowered = {c.lower(): c for c in frame.columns}
    if "samaccountname" not in lowered and "mail" not in lowered:
        raise OnPremObjectsError(f"{target} has neither a sAMAccountName nor a mail column: it is not an AD "
                                 "object export")
    out = pd.DataFrame({c: frame[lowered[c.lower()]] if c.lower() in lowered else "" for c in ONPREM_OBJECT_COLUMNS})
    return out


def _when(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        value = None
    for pattern in ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S"):  # Export-Csv's en-US DateTime text
        if value is not None:
            break
        try:
            value = datetime.strptime(text, pattern)
        except ValueError:
            continue
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def match_onprem_objects(kind: str, frame: pd.DataFrame, onprem: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per Graph object id, its AD row as {whenChanged, DisplayName, Mail, ProxyAddresses, ExtensionAttributes}."""
    kind = check_kind(kind, allow_mailbox=False)
    by_key: dict[str, Mapping[str, Any]] = {}
    key_column = "mail" if kind == CONTACT else "sAMAccountName"
    for raw in onprem.to_dict(orient="records"):
        record = {str(k): v for k, v in raw.items()}
        key = str(record.get(key_column) or "").strip().lower()
        if key:
            by_key.setdefault(key, record)
    graph_column = "Mail" if kind == CONTACT else "OnPremisesSamAccountName"
    out: dict[str, dict[str, Any]] = {}
    for oid, key in zip(frame.index.astype(str), frame[graph_column].tolist(), strict=True):
        found = by_key.get(str(key or "").strip().lower())
        if found is None:
            continue
        record = dict(found)
        proxies = tuple(p for p in str(record.get("proxyAddresses") or "").split(" ") if p)
        extension = tuple(f"extensionAttribute{i}={record[f'extensionAttribute{i}']}" for i in range(1, 16)
                          if str(record.get(f"extensionAttribute{i}") or ""))
        out[oid] = {"whenChanged": _when(str(record.get("whenChanged") or "")),
                    "DisplayName": str(record.get("DisplayName") or ""), "Mail": str(record.get("mail") or ""),
                    "ProxyAddresses": proxies, "ExtensionAttributes": extension}
    return out


def when_changed(matched: Mapping[str, Mapping[str, Any]]) -> dict[str, datetime]:
    """Object id -> AD whenChanged, for detect_objects (rows without a readable time are left out)."""
    return {oid: row["whenChanged"] for oid, row in matched.items() if isinstance(row.get("whenChanged"), datetime)}
