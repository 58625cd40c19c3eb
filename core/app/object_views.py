"""What faces show of groups, contacts and users: table columns, search, quick filters, detail.

Decided here once; the TUI's Groups / Contacts / Users views only present it. Rows are object
ids (the index of the kind's inventory frame).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import pandas as pd

from ..model import GROUP, USER

#: (column, heading) a kind's table shows, in order; "Findings" is derived from detection.
OBJECT_TABLE_COLUMNS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    GROUP: (("DisplayName", "Name"), ("Mail", "Mail"), ("GroupType", "Type"), ("OnPremisesSyncEnabled", "Synced"),
            ("IsCloudManaged", "Cloud"), ("MemberCount", "Members"), ("ChildGroups", "Children"),
            ("ParentGroups", "Parents"), ("Findings", "Findings")),
    "contact": (("DisplayName", "Name"), ("Mail", "Mail"), ("OnPremisesSyncEnabled", "Synced"),
                ("IsCloudManaged", "Cloud"), ("Findings", "Findings")),
    USER: (("DisplayName", "Name"), ("UserPrincipalName", "UPN"), ("OnPremisesSyncEnabled", "Synced"),
           ("IsCloudManaged", "Cloud"), ("Findings", "Findings")),
}
#: Quick filters: name -> what it keeps.
OBJECT_QUICK_FILTERS: Final[dict[str, str]] = {
    "cloud_managed": "cloud-managed (isCloudManaged true)",
    "onprem_managed": "managed by AD (synced, isCloudManaged false)",
    "not_synced": "not synced (cloud-only)",
    "has_findings": "with findings",
}
_SEARCH: Final = ("DisplayName", "Mail", "MailNickname", "UserPrincipalName", "OnPremisesSamAccountName",
                  "ExternalDirectoryObjectId", "GroupType")


def findings_per_object(findings: pd.DataFrame | None) -> dict[str, list[str]]:
    """Object id -> its finding codes, worst first (the findings frame is sorted by severity)."""
    out: dict[str, list[str]] = {}
    if findings is None or findings.empty:
        return out
    for code, oid in zip(findings["code"].tolist(), findings["ExternalDirectoryObjectId"].tolist(), strict=True):
        out.setdefault(str(oid), []).append(str(code))
    return out


def filter_objects(frame: pd.DataFrame, findings: pd.DataFrame | None = None, text: str = "",
                   quick: Sequence[str] = ()) -> list[str]:
    """Ids of the rows that contain `text` (case-insensitive, any search column) and pass every quick filter."""
    mask = pd.Series(True, index=frame.index)
    needle = text.strip().lower()
    if needle:
        hit = pd.Series(False, index=frame.index)
        for column in _SEARCH:
            if column in frame.columns:
                hit |= frame[column].astype(str).str.lower().str.contains(needle, regex=False)
        mask &= hit
    synced = frame["OnPremisesSyncEnabled"].map(lambda v: v is True or v == True)  # noqa: E712 - numpy bools
    cloud = frame["IsCloudManaged"].map(lambda v: v is True)
    per = findings_per_object(findings)
    for name in quick:
        if name == "cloud_managed":
            mask &= cloud
        elif name == "onprem_managed":
            mask &= synced & ~cloud
        elif name == "not_synced":
            mask &= ~synced
        elif name == "has_findings":
            mask &= pd.Series([str(i) in per for i in frame.index], index=frame.index)
        else:
            raise ValueError(f"unknown quick filter {name!r}")
    return [str(i) for i in frame.index[mask.to_numpy(dtype=bool)]]


def cell_text(value: Any) -> str:
    """A cell as text: lists of ids as their count, booleans as yes/no, missing as ''."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return ""
    if isinstance(value, tuple | list):
        return str(len(value)) if value else ""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if bool(value) else "no"
    return str(value)


def object_cells(kind: str, frame: pd.DataFrame, oid: str, per: Mapping[str, list[str]]) -> tuple[str, ...]:
    """The table cells of one object."""
    out = []
    for column, _ in OBJECT_TABLE_COLUMNS[kind]:
        if column == "Findings":
            out.append(", ".join(per.get(oid, [])))
        else:
            out.append(cell_text(frame.at[oid, column]))
    return tuple(out)


_DETAIL_FIRST: Final = ("DisplayName", "Mail", "UserPrincipalName", "GroupType", "OnPremisesSyncEnabled",
                        "IsCloudManaged", "MemberCount", "OwnerCount")


def object_detail(kind: str, frame: pd.DataFrame, oid: str, findings: pd.DataFrame | None) -> list[tuple[str, str]]:
    """(label, text) lines of the detail pane: the main properties; for groups their parent and child
    groups; the findings; then every other property."""
    names = frame["DisplayName"].to_dict()

    def text_of(column: str) -> str:
        value = frame.at[oid, column]
        return "; ".join(str(v) for v in value) if isinstance(value, tuple) else cell_text(value)

    lines: list[tuple[str, str]] = [(c, text_of(c)) for c in _DETAIL_FIRST if c in frame.columns]
    if kind == GROUP:
        for label, column in (("Parent groups", "ParentGroups"), ("Child groups", "ChildGroups")):
            ids: Any = frame.at[oid, column]
            lines.append((label, ", ".join(f"{names.get(i, '')} ({i})" for i in ids) if ids else "(none)"))
    if findings is not None and not findings.empty:
        rows = findings[findings["ExternalDirectoryObjectId"] == oid]
        for row in rows.itertuples():
            lines.append((f"Finding {row.severity}", f"{row.code}: {row.explanation}"))
    lines += [(c, text_of(c)) for c in frame.columns if c not in _DETAIL_FIRST
              and c not in ("ChildGroups", "ParentGroups")]
    return lines
