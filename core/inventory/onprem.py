"""The on-prem side of the inventory: Exchange Server recipients, from a CSV or from records.

Admins without WinRM access export on-prem data with ``scripts/Export-ExocmOnPrem.ps1`` (or any
``Get-Mailbox``/``Get-RemoteMailbox | Export-Csv``); the live PSRP path hands records to
:func:`onprem_frame_from_records`. Both end in the same normalised frame (columns
``ONPREM_COLUMNS``), so detection never cares where on-prem data came from.

Normalised values: text stripped; GUIDs lower-case without braces; ``EmailAddresses`` and
``ExtensionCustomAttribute1-5`` as tuples of str; ``WhenChanged`` tz-aware UTC; a column the
source did not have is all NA, which detection reads as *unknown* (never as empty), so a
missing column cannot fake attribute drift.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ..csvio import BadRow, is_dotnet_type_name, read_csv, split_multi
from ..memory import release_unused_memory, share_equal_columns
from ..model import EXTENSION_CUSTOM_ATTRIBUTES, ONPREM_COLUMNS
from .shared import address_pool

__all__ = [
    "OnPremData",
    "OnPremFormatError",
    "REMOTE_TYPES",
    "LOCAL_MAILBOX_TYPES",
    "load_onprem_csv",
    "normalise_onprem",
    "onprem_frame_from_records",
    "parse_when_changed",
]

#: On-prem recipient types of a mailbox that lives in EXO (Get-RemoteMailbox).
REMOTE_TYPES = frozenset({"RemoteUserMailbox", "RemoteSharedMailbox", "RemoteRoomMailbox", "RemoteEquipmentMailbox"})
#: On-prem recipient types of a mailbox that lives on the Exchange server itself.
LOCAL_MAILBOX_TYPES = frozenset(
    {"UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox", "LinkedMailbox", "LinkedRoomMailbox"}
)
_KNOWN_TYPES = {t.lower(): t for t in (*REMOTE_TYPES, *LOCAL_MAILBOX_TYPES, "MailUser", "MailContact", "User")}

#: When the on-prem object changed / was created (WhenCreated: the readiness checks' "remote mailboxes
#: created on-prem in the last N days").
_DATE_COLUMNS = ("WhenChanged", "WhenCreated")
_GUID_COLUMNS = ("ExchangeGuid", "ArchiveGuid", "ExternalDirectoryObjectId")
_MULTI = {"EmailAddresses": "proxy", **{c: "list" for c in EXTENSION_CUSTOM_ATTRIBUTES}}
_IDENTITY_COLUMNS = ("ExternalDirectoryObjectId", "UserPrincipalName", "PrimarySmtpAddress", "EmailAddresses")

#: Other names the same data goes by (AD attribute names, common hand-made exports), lower-case.
_ALIASES: dict[str, str] = {
    "msds-externaldirectoryobjectid": "ExternalDirectoryObjectId",
    "proxyaddresses": "EmailAddresses",
    "windowsemailaddress": "PrimarySmtpAddress",
    "mailnickname": "Alias",
    "whenchangedutc": "WhenChanged",
    "whencreatedutc": "WhenCreated",
    "distinguishedname": "DistinguishedName",
    "msexchmailboxguid": "ExchangeGuid",
    "msexcharchiveguid": "ArchiveGuid",
    "legacyexchangedn": "LegacyExchangeDN",
    **{f"extensionattribute{i}": f"CustomAttribute{i}" for i in range(1, 16)},
    **{f"msexchextensioncustomattribute{i}": f"ExtensionCustomAttribute{i}" for i in range(1, 6)},
}

# Culture formats Export-Csv uses for a DateTime when the script did not format it itself.
_DATE_FORMATS: tuple[tuple[str, str], ...] = (
    ("%m/%d/%Y %I:%M:%S %p", "M/d/yyyy h:mm:ss tt (en-US)"),
    ("%m/%d/%Y %H:%M:%S", "M/d/yyyy HH:mm:ss"),
    ("%d/%m/%Y %H:%M:%S", "dd/MM/yyyy HH:mm:ss (en-GB, fr-FR)"),
    ("%d.%m.%Y %H:%M:%S", "dd.MM.yyyy HH:mm:ss (de-DE)"),
    ("%d-%m-%Y %H:%M:%S", "dd-MM-yyyy HH:mm:ss (nl-NL)"),
    ("%Y/%m/%d %H:%M:%S", "yyyy/MM/dd HH:mm:ss (ja-JP)"),
)


class OnPremFormatError(ValueError):
    """The on-prem file cannot be used at all (no identity column, no RecipientTypeDetails)."""


@dataclass
class OnPremData:
    """Normalised on-prem recipients plus everything the loader had to report.

    ``frame`` has exactly ``ONPREM_COLUMNS``; its index is the source line (CSV) or the
    record position. ``bad_rows`` were skipped; ``notes`` are non-fatal findings about the
    file (encoding fallback, undated rows, collections exported without ``-join``).
    """

    frame: pd.DataFrame
    bad_rows: list[BadRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def columns_present(self) -> frozenset[str]:
        """ONPREM_COLUMNS the source actually provided (the rest are unknown, all NA)."""
        return frozenset(self.frame.attrs.get("columns_present", ()))


def load_onprem_csv(path: str | os.PathLike[str]) -> OnPremData:
    """Load an on-prem export (Export-ExocmOnPrem.ps1 or any Export-Csv of Get-Mailbox/Get-RemoteMailbox)."""
    frame, bad = read_csv(path, known_columns=(*ONPREM_COLUMNS, *_ALIASES))
    notes = list(frame.attrs.get("csv_notes", []))
    fmt = frame.attrs.get("csv_format", {})
    if fmt.get("has_header") is False and len(frame):
        raise OnPremFormatError(
            f"{os.fspath(path)}: the first row names none of the expected columns "
            f"({', '.join(_IDENTITY_COLUMNS)}, RecipientTypeDetails); export with Export-ExocmOnPrem.ps1"
        )
    normal, more = _normalise(frame, source=os.fspath(path), consume=True)
    release_unused_memory()
    return OnPremData(normal, bad, notes + more, os.fspath(path))


def onprem_frame_from_records(records: Iterable[Mapping[str, Any]], *, source: str = "records") -> OnPremData:
    """Build the on-prem frame from bridge records (PSRP Get-Mailbox / Get-RemoteMailbox)."""
    rows = list(records)
    raw = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=list(ONPREM_COLUMNS))
    raw = raw.astype("object")
    raw.index.name = "line"
    normal, notes = normalise_onprem(raw, source=source)
    return OnPremData(normal, [], notes, source)


def normalise_onprem(raw: pd.DataFrame, *, source: str = "") -> tuple[pd.DataFrame, list[str]]:
    """Map column names, normalise values; return the ONPREM_COLUMNS frame and notes."""
    return _normalise(raw, source=source)


def _normalise(raw: pd.DataFrame, *, source: str, consume: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """normalise_onprem; ``consume`` empties ``raw`` as it goes, so that each source column is freed
    once its normalised copy exists (the file's text and the result are never both whole in memory)."""
    notes: list[str] = []
    renames = _canonical_names(raw.columns, notes)
    first: dict[Any, int] = {}  # a name used twice (after renaming): its first column is read
    for i, name in enumerate(raw.columns):
        first.setdefault(renames.get(name, name), i)
    present = [c for c in ONPREM_COLUMNS if c in first]
    if "RecipientTypeDetails" not in present or not any(c in present for c in _IDENTITY_COLUMNS):
        raise OnPremFormatError(
            f"{source or 'on-prem data'}: needs RecipientTypeDetails and one of {', '.join(_IDENTITY_COLUMNS)}; "
            f"found columns: {', '.join(map(str, list(first)[:12]))}"
        )
    index = raw.index
    sources = {c: raw.iloc[:, first[c]] for c in present}
    if consume:
        for name in dict.fromkeys(raw.columns):
            del raw[name]
    out = pd.DataFrame(index=index)
    for col in ONPREM_COLUMNS:
        if col not in sources:
            out[col] = pd.Series(pd.NA if col not in _DATE_COLUMNS else pd.NaT, index=index, dtype="object")
            continue
        s = sources.pop(col)
        if col in _MULTI:
            out[col] = _multi(s, col, notes)
        elif col == "WhenChanged":
            out[col] = parse_when_changed(s, notes)
        elif col == "WhenCreated":  # same formats; its notes name it
            created_notes: list[str] = []
            out[col] = parse_when_changed(s, created_notes)
            notes.extend(n.replace("WhenChanged", "WhenCreated") for n in created_notes)
        else:
            text = _text(s)
            if col in _GUID_COLUMNS:
                text = text.str.lower().str.strip("{}")
                if col == "ExternalDirectoryObjectId":
                    text = text.str.replace(r"^user_", "", regex=True)
            elif col == "RecipientTypeDetails":
                low = text.str.lower()
                text = low.map(_KNOWN_TYPES).fillna(text).astype("str")
            out[col] = text
        del s
        if consume:
            release_unused_memory()  # else the next column's copies take fresh pages, not the freed ones
    for col in _DATE_COLUMNS:
        if col not in present:
            out[col] = pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
    if consume:
        share_equal_columns(out)
    out.attrs["columns_present"] = tuple(present)
    # WhenCreated came later (only the readiness checks read it, and they say when it is missing)
    missing = [c for c in ONPREM_COLUMNS if c not in present and c != "WhenCreated"]
    if missing:
        notes.append(
            "on-prem data lacks " + ", ".join(missing) + "; checks that need them treat the values as unknown"
        )
    return out, notes


def _canonical_names(columns: Iterable[Any], notes: list[str]) -> dict[Any, str]:
    by_lower = {c.lower(): c for c in ONPREM_COLUMNS}
    renames: dict[Any, str] = {}
    taken: set[str] = set()
    for col in columns:
        name = str(col).strip()
        target = by_lower.get(name.lower()) or _ALIASES.get(name.lower())
        if target is None:
            continue
        if target in taken:
            notes.append(f"column {name!r} ignored: {target} already read from another column")
            continue
        taken.add(target)
        renames[col] = target
    # a WhenChangedUTC column is better than a culture-formatted WhenChanged: prefer it
    lower = {str(c).strip().lower(): c for c in columns}
    if "whenchangedutc" in lower and "whenchanged" in lower:
        renames.pop(lower["whenchanged"], None)
        renames[lower["whenchangedutc"]] = "WhenChanged"
    return renames


def _text(s: pd.Series) -> pd.Series:
    """Any column as str: None/NaN -> '', lists joined by ';', stripped."""
    if s.dtype == object:
        s = s.map(_scalar_text, na_action="ignore")
    return s.fillna("").astype("str").str.strip()


def _scalar_text(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ";".join(str(x) for x in v)
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def _multi(s: pd.Series, col: str, notes: list[str]) -> pd.Series:
    rule = _MULTI[col]
    shared = address_pool() if rule == "proxy" else None
    if isinstance(s.dtype, pd.StringDtype):  # from a CSV: text only
        out = split_multi(s, rule, shared=shared)  # type: ignore[arg-type]
        typed = is_dotnet_type_name(s)
        if typed.any():
            _note_type_names(notes, col, s.index[typed])
            out[typed] = None
        return out
    is_list = s.map(lambda v: isinstance(v, list | tuple), na_action="ignore").fillna(False).astype(bool)
    text = s.where(~is_list, "")
    text = text.map(lambda v: "" if v is None else str(v), na_action="ignore").fillna("").astype("str")
    out = split_multi(text, rule, shared=shared)  # type: ignore[arg-type]
    if is_list.any():
        out[is_list] = [tuple(str(x).strip() for x in v if str(x).strip()) for v in s[is_list]]
    typed = is_dotnet_type_name(text)
    if typed.any():
        _note_type_names(notes, col, s.index[typed])
        out[typed] = None
    return out


def _note_type_names(notes: list[str], col: str, where: pd.Index) -> None:
    lines = ", ".join(str(i) for i in list(where)[:10])
    notes.append(
        f"{col} holds a .NET type name instead of values on {len(where)} row(s) (e.g. line {lines}): "
        f"the export did not join the collection (use -join ';'); those values are treated as unknown"
    )


def parse_when_changed(s: pd.Series, notes: list[str] | None = None) -> pd.Series:
    """Parse WhenChanged values to tz-aware UTC.

    ISO 8601 (what the export script writes; a value without offset is read as UTC) first,
    else the culture format that parses most values. Culture formats carry no zone: they are
    read as UTC and a note says so. Unparseable values become NaT and are listed in a note.
    """
    notes = notes if notes is not None else []
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        d = pd.to_datetime(s, utc=True)
        return d
    if isinstance(s.dtype, pd.StringDtype):  # from a CSV: text only, no cell-by-cell look
        objs = pd.Series(None, index=s.index, dtype="object")
        text = s.fillna("").astype("str")
    else:
        objs = s.map(lambda v: v if isinstance(v, datetime) else None, na_action="ignore")
        text = s.map(lambda v: "" if isinstance(v, datetime) else str(v), na_action="ignore").fillna("").astype("str")
    text = text.str.strip()
    filled = text != ""
    best = pd.to_datetime(text.where(filled, None), format="ISO8601", utc=True, errors="coerce")
    best_count = int(best.notna().sum())
    chosen = "ISO 8601"
    if best_count < int(filled.sum()):
        for fmt, label in _DATE_FORMATS:
            cand = pd.to_datetime(text.where(filled, None), format=fmt, utc=True, errors="coerce")
            n = int(cand.notna().sum())
            if n > best_count:
                best, best_count, chosen = cand, n, label
        if chosen != "ISO 8601":
            notes.append(
                f"WhenChanged is in the culture format {chosen} without a time zone; read as UTC "
                "(re-export with Export-ExocmOnPrem.ps1 for exact UTC times)"
            )
    if best_count < int(filled.sum()):  # mixed formats: fill the gaps with whatever else parses
        for fmt in ("ISO8601", *(f for f, _ in _DATE_FORMATS)):
            gap = filled & best.isna()
            if not gap.any():
                break
            best = best.where(~gap, pd.to_datetime(text.where(gap, None), format=fmt, utc=True, errors="coerce"))
    has_obj = objs.notna()
    if has_obj.any():
        best = best.astype("datetime64[ns, UTC]")
        converted = pd.to_datetime(
            pd.Series([(v if v.tzinfo else v.replace(tzinfo=UTC)) for v in objs[has_obj]], index=s.index[has_obj]),
            utc=True,
        )
        best = best.where(~has_obj, converted.reindex(s.index))
        filled = filled | has_obj
    bad = filled & best.isna()
    if bad.any():
        where = ", ".join(str(i) for i in list(s.index[bad])[:10])
        notes.append(f"WhenChanged could not be read on {int(bad.sum())} row(s) (line {where}); treated as unknown")
    return best.astype("datetime64[ns, UTC]")
