"""What a face shows of the inventory: filtered, sorted, selected rows, computed on the DataFrame.

Both faces ask this module which rows to show; nothing here knows about terminals. The hot paths
(text search, quick filters, sort, select-all/invert) are vectorised over Arrow and numpy arrays so
that a keystroke over 100,000 mailboxes costs milliseconds: the lower-cased search text is built
once per inventory (Arrow compute, no Python string per row), sort ranks once per column, and a
search that contains an earlier one only scans that one's hits.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..execute.undo import overwritten_by_sync
from ..inventory.snapshot import list_array
from ..model import FLIP_TYPES, WRITEBACK_ATTRIBUTES
from ..plan.planfile import Plan
from ..values import is_missing, normalise_value

Positions = npt.NDArray[np.intp]

#: Severity names of detection findings, most severe first; anything unknown ranks last.
SEVERITIES: Final[tuple[str, ...]] = ("critical", "high", "medium", "low", "info")
_NO_FINDING: Final = len(SEVERITIES) + 1

#: Columns a mailbox list shows, in order: (key, heading). "Findings" is derived from detection.
MAILBOX_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("DisplayName", "Display name"),
    ("UserPrincipalName", "UserPrincipalName"),
    ("RecipientTypeDetails", "Type"),
    ("IsDirSynced", "Synced"),
    ("IsExchangeCloudManaged", "Cloud"),
    ("Findings", "Findings"),
    ("WhenChanged", "Changed"),
)
MAILBOX_COLUMN_KEYS: Final[tuple[str, ...]] = tuple(key for key, _ in MAILBOX_COLUMNS)

#: Columns whose text a search looks through (of EmailAddresses: the SMTP addresses).
SEARCH_COLUMNS: Final[tuple[str, ...]] = (
    "DisplayName",
    "UserPrincipalName",
    "PrimarySmtpAddress",
    "Alias",
    "EmailAddresses",
)

#: Inventory columns a MailboxView reads (the list's columns and the search columns); the row key is extra.
VIEW_COLUMNS: Final[tuple[str, ...]] = (
    *SEARCH_COLUMNS, "RecipientTypeDetails", "IsDirSynced", "IsExchangeCloudManaged", "WhenChanged",
)
_BOOL_COLUMNS: Final = frozenset({"IsDirSynced", "IsExchangeCloudManaged"})
_SEPARATOR: Final = "\x1f"  # between the searched values of a row: a search never spans two of them
_HIT_CACHE: Final = 24  # text searches whose hits a view keeps


@dataclass(frozen=True)
class QuickFilter:
    """Quick filters; every one that is set must hold (they combine with AND)."""

    cloud_managed: bool = False
    onprem_managed: bool = False
    not_dirsynced: bool = False
    has_findings: bool = False
    types: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> str:
        """A short human description, e.g. 'cloud-managed, type=SharedMailbox'; '' when none is set."""
        parts = [
            name
            for name, on in (
                ("cloud-managed", self.cloud_managed),
                ("on-prem-managed", self.onprem_managed),
                ("not dir-synced", self.not_dirsynced),
                ("has findings", self.has_findings),
            )
            if on
        ]
        if self.types:
            parts.append("type=" + "|".join(sorted(self.types)))
        return ", ".join(parts)


def _bool_array(frame: pd.DataFrame, column: str) -> npt.NDArray[np.bool_]:
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[column].fillna(False).astype(bool).to_numpy(dtype=bool)


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous Arrow array (chunked arrays combined)."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _large_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Any Arrow column as large_string with '' for nulls (the form every text column of a view takes)."""
    array = _as_array(values)
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    return array.fill_null("") if array.null_count else array


def _frame_text(frame: pd.DataFrame, column: str) -> pa.Array:
    """A text column of a frame as Arrow large_string (zero-copy for pandas' Arrow-backed strings)."""
    if column not in frame.columns:
        return pa.array([""] * len(frame), type=pa.large_string())
    series = frame[column]
    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        array = pa.array(series.astype("string").fillna("").tolist(), type=pa.large_string())
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pa.array(series.astype("string").fillna("").tolist(), type=pa.large_string())
    return _large_text(array)


def _frame_multi(frame: pd.DataFrame, column: str) -> pa.Array | None:
    """A multi-valued column (tuples/lists of str) as an Arrow list<string> array; None when absent."""
    if column not in frame.columns:
        return None
    values = frame[column].tolist()
    if any(isinstance(v, str) for v in values):  # a lone string is one value, not a list of characters
        values = [(v,) if isinstance(v, str) else v for v in values]
    values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]
    return list_array(values)


def _smtp_addresses(lists: pa.Array | pa.ChunkedArray, size: int, known: Sequence[pa.Array]) -> pa.Array:
    """The SMTP proxy addresses of each row, lower-cased and without their prefix, joined by the search
    separator; addresses equal to the row's value in one of the `known` (lower-cased) columns are left
    out (the primary address is usually the UPN and the PrimarySmtpAddress already: less text to scan)."""
    array = _as_array(lists)
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        return _as_array(pc.utf8_lower(_large_text(array)))  # already one string per row
    values = _as_array(array.flatten())
    if len(values) == 0 or pa.types.is_null(values.type):
        return pa.array([""] * size, type=pa.large_string())
    values = values.cast(pa.large_string())
    parents = _as_array(pc.list_parent_indices(array)).to_numpy()
    keep = pc.fill_null(pc.starts_with(values, "smtp:", ignore_case=True), False).to_numpy(zero_copy_only=False)
    owners = parents[keep]
    kept = pc.utf8_lower(pc.utf8_slice_codeunits(values.filter(pa.array(keep)), 5))
    for column in known:
        same = pc.fill_null(pc.equal(kept, column.take(pa.array(owners))), False).to_numpy(zero_copy_only=False)
        kept, owners = kept.filter(pa.array(~same)), owners[~same]
    offsets = np.searchsorted(owners, np.arange(size + 1), side="left").astype(np.int32)
    rebuilt = pa.LargeListArray.from_arrays(pa.array(offsets.astype(np.int64), type=pa.int64()), kept)
    return _large_text(pc.binary_join(rebuilt, pa.scalar(_SEPARATOR, pa.large_string())))


def _search_text(columns: Mapping[str, pa.Array], size: int) -> pa.Array:
    """One lower-cased string per row: name, UPN, primary SMTP, alias and SMTP proxies, separated
    (a value repeated in a later column is kept once: the search matches the same rows)."""
    lowered = {name: _as_array(pc.utf8_lower(columns[name]))
               for name in SEARCH_COLUMNS if name in columns and name != "EmailAddresses"}
    known = [lowered[name] for name in ("UserPrincipalName", "PrimarySmtpAddress") if name in lowered]
    parts = dict(lowered)
    if "PrimarySmtpAddress" in parts and "UserPrincipalName" in parts:
        same = pc.fill_null(pc.equal(parts["PrimarySmtpAddress"], parts["UserPrincipalName"]), False)
        parts["PrimarySmtpAddress"] = pc.if_else(same, "", parts["PrimarySmtpAddress"])
    if "EmailAddresses" in columns:
        parts["EmailAddresses"] = _smtp_addresses(columns["EmailAddresses"], size, known)
    if not parts:
        return pa.array([""] * size, type=pa.large_string())
    joined = pc.binary_join_element_wise(*parts.values(), pa.scalar(_SEPARATOR, pa.large_string()),
                                         null_handling="replace", null_replacement="")
    return _as_array(joined)


def _when_array(values: Any) -> npt.NDArray[Any]:
    """WhenChanged as numpy datetime64[us] in UTC (NaT when missing), or the raw objects when not datetimes."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        array = _as_array(values)
        if pa.types.is_timestamp(array.type):
            if array.type.tz is not None:
                array = array.cast(pa.timestamp(array.type.unit))  # Arrow keeps UTC instants: drop the zone only
            return np.asarray(array.to_numpy(zero_copy_only=False)).astype("datetime64[us]")
        return np.asarray(array.to_numpy(zero_copy_only=False), dtype=object)
    series: pd.Series = values
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return np.asarray(series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]"))
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return np.asarray(series.to_numpy(dtype="datetime64[us]"))
    return np.asarray(series.to_numpy(dtype=object), dtype=object)


def findings_by_mailbox(findings: pd.DataFrame | None) -> pd.DataFrame:
    """Per ExternalDirectoryObjectId: `count` of findings and `severity_rank` (0 = critical) of the worst."""
    if findings is None or findings.empty:
        return pd.DataFrame({"count": pd.Series(dtype="int64"), "severity_rank": pd.Series(dtype="int64")})
    frame = findings.loc[findings["ExternalDirectoryObjectId"].notna()]
    ranks = severity_rank(frame["severity"])
    grouped = pd.DataFrame({"id": frame["ExternalDirectoryObjectId"].to_numpy(), "rank": ranks}).groupby("id")
    return pd.DataFrame({"count": grouped.size(), "severity_rank": grouped["rank"].min()})


def severity_rank(severity: pd.Series) -> npt.NDArray[np.int64]:
    """Rank of each severity name: 0 for critical ... len(SEVERITIES) for anything unknown."""
    lookup = {name: rank for rank, name in enumerate(SEVERITIES)}
    lowered = severity.astype("string").str.lower()
    return np.asarray(lowered.map(lookup).fillna(len(SEVERITIES)).to_numpy(dtype="int64"))


def findings_summary(findings: pd.DataFrame | None) -> pd.DataFrame:
    """One row per finding code: `code`, `severity` (the worst), `count`, most severe first then by count."""
    columns = ["code", "severity", "count"]
    if findings is None or findings.empty:
        return pd.DataFrame(columns=columns)
    ranks = severity_rank(findings["severity"])
    frame = pd.DataFrame({"code": findings["code"].to_numpy(), "rank": ranks})
    grouped = frame.groupby("code", sort=False).agg(rank=("rank", "min"), count=("rank", "size")).reset_index()
    grouped = grouped.sort_values(["rank", "count", "code"], ascending=[True, False, True], kind="stable")
    names = [SEVERITIES[r] if r < len(SEVERITIES) else "unknown" for r in grouped["rank"]]
    return pd.DataFrame(
        {"code": grouped["code"].to_numpy(), "severity": names, "count": grouped["count"].to_numpy()}
    ).reset_index(drop=True)


def _format_when(value: Any) -> str:
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, np.datetime64):  # UTC (MailboxView keeps WhenChanged as naive UTC)
        return "" if np.isnat(value) else str(np.datetime_as_string(value, unit="m")).replace("T", " ")
    if isinstance(value, str):
        return value[:16].replace("T", " ")
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if pd.isna(stamp):
        return ""
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return str(stamp.strftime("%Y-%m-%d %H:%M"))


class MailboxView:
    """The inventory prepared for a face: search text, masks and sort ranks computed once, as Arrow/numpy
    arrays (no Python object per row), so that a keystroke over 100,000 mailboxes costs milliseconds.

    Rows are addressed by *position* (0..size-1 in the inventory frame); `id_at(pos)` is the
    ExternalDirectoryObjectId. A face keeps an array of positions (what is shown, in order).
    A view is built from the inventory DataFrame, or from an Arrow table holding at least the
    VIEW_COLUMNS and the row key (a snapshot read lean, to paint before the whole frame is loaded);
    `attach` then hands it the full frame for `record`.
    """

    def __init__(self, frame: pd.DataFrame | pa.Table, findings: pd.DataFrame | None = None, *,
                 key_column: str = "__index_level_0__") -> None:
        columns: dict[str, pa.Array] = {}
        if isinstance(frame, pa.Table):
            table = frame
            self.frame: pd.DataFrame | None = None
            self._table: pa.Table | None = table
            self.size = table.num_rows
            self._ids = _large_text(table.column(key_column))
            for name in VIEW_COLUMNS:
                if name in table.column_names and name not in _BOOL_COLUMNS and name != "WhenChanged":
                    column = table.column(name)
                    columns[name] = _as_array(column) if name == "EmailAddresses" else _large_text(column)
            self.dirsynced = _table_bools(table, "IsDirSynced")
            self.cloud_managed = _table_bools(table, "IsExchangeCloudManaged")
            when: Any = table.column("WhenChanged") if "WhenChanged" in table.column_names else None
        else:
            self.frame = frame
            self._table = None
            self.size = len(frame)
            # the row key is the frame's index: ExternalDirectoryObjectId (Guid for objects without one)
            self._ids = _index_ids(frame)
            for name in VIEW_COLUMNS:
                if name == "EmailAddresses":
                    multi = _frame_multi(frame, name)
                    if multi is not None:
                        columns[name] = multi
                elif name in frame.columns and name not in _BOOL_COLUMNS and name != "WhenChanged":
                    columns[name] = _frame_text(frame, name)
            self.dirsynced = _bool_array(frame, "IsDirSynced")
            self.cloud_managed = _bool_array(frame, "IsExchangeCloudManaged")
            when = frame["WhenChanged"] if "WhenChanged" in frame.columns else None
        empty = pa.array([""] * self.size, type=pa.large_string())
        self._display: pa.Array = columns.get("DisplayName", empty)
        self._upn: pa.Array = columns.get("UserPrincipalName", empty)
        encoded = pc.dictionary_encode(columns.get("RecipientTypeDetails", empty))
        self._type_codes: npt.NDArray[np.int32] = np.asarray(
            encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int32)
        self._type_names: list[str] = [str(v) for v in encoded.dictionary.to_pylist()]
        self._search: pa.Array = _search_text(columns, self.size)
        self._when: npt.NDArray[Any] | None = _when_array(when) if when is not None else None
        self._ranks: dict[str, npt.NDArray[np.int64]] = {}
        self._hits: OrderedDict[str, Positions] = OrderedDict()
        self._id_lookup: dict[str, int] | None = None
        self._ids_np: npt.NDArray[np.object_] | None = None
        self.set_findings(findings)

    # data ---------------------------------------------------------------------------------
    def attach(self, frame: pd.DataFrame) -> bool:
        """Hand a view built from a lean table the full inventory frame of the same rows (for `record`).

        Returns False (and changes nothing) when the frame's rows are not this view's rows, in order.
        """
        if len(frame) != self.size:
            return False
        if not _index_ids(frame).equals(self._ids):
            return False
        self.frame = frame
        self._table = None
        return True

    @property
    def ids(self) -> npt.NDArray[np.object_]:
        """ExternalDirectoryObjectId of every row, by position (built on first use)."""
        if self._ids_np is None:
            self._ids_np = np.asarray(self._ids.to_numpy(zero_copy_only=False), dtype=object)
        return self._ids_np

    def id_at(self, position: int) -> str:
        """ExternalDirectoryObjectId of the row at `position`."""
        return str(self._ids[position].as_py())

    def ids_where(self, mask: npt.NDArray[np.bool_]) -> list[str]:
        """ExternalDirectoryObjectIds of the rows where `mask` is true, in inventory order."""
        return [str(v) for v in self._ids.filter(pa.array(mask, type=pa.bool_())).to_pylist()]

    # findings -----------------------------------------------------------------------------
    def set_findings(self, findings: pd.DataFrame | None) -> None:
        """Attach detection results (or None): feeds the findings badge, filter and sort."""
        per = findings_by_mailbox(findings)
        count = np.zeros(self.size, dtype="int64")
        rank = np.full(self.size, _NO_FINDING, dtype="int64")
        if len(per):
            keys = pa.array([str(k) for k in per.index], type=pa.large_string())
            where = pc.index_in(self._ids, value_set=keys).fill_null(-1).to_numpy(zero_copy_only=False)
            hit = where >= 0
            count[hit] = per["count"].to_numpy(dtype="int64")[where[hit]]
            rank[hit] = per["severity_rank"].to_numpy(dtype="int64")[where[hit]]
        self.findings_count = count
        self.findings_rank = rank
        self.findings = findings
        self._ranks.pop("Findings", None)

    # lookup -------------------------------------------------------------------------------
    def position_of(self, identity: str) -> int | None:
        """Position of the mailbox with this ExternalDirectoryObjectId, or None."""
        if self._id_lookup is None:
            lookup: dict[str, int] = {}
            for position, value in enumerate(self._ids.to_pylist()):
                lookup.setdefault(str(value), position)
            self._id_lookup = lookup
        return self._id_lookup.get(identity)

    def record(self, position: int) -> dict[str, Any]:
        """Every property of the mailbox at `position`, as a plain dict (only the list's columns while
        the view has no frame yet)."""
        if self.frame is not None:
            row = self.frame.iloc[position]
            return {str(key): value for key, value in row.items()}
        table = self._table
        if table is None:
            return {}
        out: dict[str, Any] = {}
        for name in table.column_names:
            if name.startswith("__"):
                continue
            value = table.column(name)[position].as_py()
            out[name] = tuple(value) if isinstance(value, list) else value
        return out

    def type_names(self) -> list[str]:
        """RecipientTypeDetails values present: flip types first, the most common first."""
        counts = np.bincount(self._type_codes, minlength=len(self._type_names))
        present = [(name, int(counts[code])) for code, name in enumerate(self._type_names) if name and counts[code]]
        return [name for name, _ in sorted(present, key=lambda item: (item[0] not in FLIP_TYPES, -item[1], item[0]))]

    def type_of(self, position: int) -> str:
        """RecipientTypeDetails of the row at `position`."""
        return self._type_names[int(self._type_codes[position])]

    def cells(self, position: int) -> tuple[str, ...]:
        """The text of each MAILBOX_COLUMNS cell of one row (formatted on demand: only visible rows pay)."""
        count = int(self.findings_count[position])
        rank = int(self.findings_rank[position])
        badge = f"{count} {SEVERITIES[rank]}" if count and rank < len(SEVERITIES) else (str(count) if count else "")
        return (
            str(self._display[position].as_py()),
            str(self._upn[position].as_py()),
            self.type_of(position),
            "yes" if self.dirsynced[position] else "no",
            "yes" if self.cloud_managed[position] else "no",
            badge,
            _format_when(self._when[position]) if self._when is not None else "",
        )

    def severity_of(self, position: int) -> str | None:
        """Worst finding severity of the row at `position`, or None without findings."""
        rank = int(self.findings_rank[position])
        return SEVERITIES[rank] if rank < len(SEVERITIES) else None

    # filter and sort ----------------------------------------------------------------------
    def quick_mask(self, quick: QuickFilter) -> npt.NDArray[np.bool_] | None:
        """Boolean mask for the quick filters, or None when none is set."""
        mask: npt.NDArray[np.bool_] | None = None

        def both(a: npt.NDArray[np.bool_] | None, b: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
            return b if a is None else a & b

        if quick.cloud_managed:
            mask = both(mask, self.cloud_managed)
        if quick.onprem_managed:
            mask = both(mask, self.dirsynced & ~self.cloud_managed)
        if quick.not_dirsynced:
            mask = both(mask, ~self.dirsynced)
        if quick.has_findings:
            mask = both(mask, self.findings_count > 0)
        if quick.types:
            wanted = [code for code, name in enumerate(self._type_names) if name in quick.types]
            mask = both(mask, np.isin(self._type_codes, np.asarray(wanted, dtype=np.int32)))
        return mask

    def text_hits(self, text: str) -> Positions:
        """Positions (ascending) of the rows whose name/UPN/SMTP/alias/SMTP addresses contain `text`
        (case-insensitive, plain substring). Results are kept (LRU): a search that contains an
        earlier one scans only that one's hits, and going back (backspace) is a lookup."""
        needle = str(pc.utf8_lower(pa.scalar(text.strip(), pa.large_string())).as_py())
        if not needle:
            return np.arange(self.size, dtype=np.intp)
        cached = self._hits.get(needle)
        if cached is not None:
            self._hits.move_to_end(needle)
            return cached
        base: Positions | None = None
        for earlier, positions in self._hits.items():  # the narrowest earlier search this one contains
            if earlier in needle and (base is None or len(positions) < len(base)):
                base = positions
        if base is None:
            found = pc.match_substring(self._search, needle).to_numpy(zero_copy_only=False)
            hits = np.flatnonzero(found).astype(np.intp)
        elif len(base):
            found = pc.match_substring(self._search.take(pa.array(base)), needle).to_numpy(zero_copy_only=False)
            hits = base[found]
        else:
            hits = base
        self._hits[needle] = hits
        if len(self._hits) > _HIT_CACHE:
            self._hits.popitem(last=False)
        return hits

    def filter(self, text: str = "", quick: QuickFilter | None = None) -> Positions:
        """Positions (ascending) of the rows whose name/UPN/SMTP/alias/addresses contain `text`
        (case-insensitive, plain substring) and that pass the quick filters."""
        mask = self.quick_mask(quick or QuickFilter())
        if not text.strip():
            base = np.flatnonzero(mask) if mask is not None else np.arange(self.size, dtype=np.intp)
        else:
            base = self.text_hits(text)
            if mask is not None:
                base = base[mask[base]]
        return np.asarray(base, dtype=np.intp)

    def _rank(self, column: str) -> npt.NDArray[np.int64]:
        cached = self._ranks.get(column)
        if cached is not None:
            return cached
        order: Any
        if column == "Findings":
            # worst severity first, then more findings first
            order = np.argsort(self.findings_rank * (1 << 32) - self.findings_count, kind="stable")
        elif column == "IsDirSynced":
            order = np.argsort(self.dirsynced.astype("int64"), kind="stable")
        elif column == "IsExchangeCloudManaged":
            order = np.argsort(self.cloud_managed.astype("int64"), kind="stable")
        elif column == "WhenChanged" and self._when is not None:
            keys: Any = self._when
            if keys.dtype == object:
                keys = pd.to_datetime(pd.Series(keys), utc=True, errors="coerce").to_numpy()
            order = np.argsort(keys, kind="stable")  # NaT last
        elif column == "RecipientTypeDetails":
            lowered = [name.lower() for name in self._type_names]
            code_rank = np.empty(len(lowered), dtype=np.int64)
            code_rank[np.argsort(np.asarray(lowered, dtype=object), kind="stable")] = np.arange(len(lowered))
            order = np.argsort(code_rank[self._type_codes] if len(lowered) else self._type_codes, kind="stable")
        elif column in ("DisplayName", "UserPrincipalName"):
            text = self._display if column == "DisplayName" else self._upn
            order = pc.sort_indices(pc.utf8_lower(text)).to_numpy()  # stable
        elif self.frame is not None and column in self.frame.columns:
            order = pc.sort_indices(pc.utf8_lower(_frame_text(self.frame, column))).to_numpy()
        else:
            raise KeyError(f"unknown column {column!r}")
        rank = np.empty(self.size, dtype=np.int64)
        rank[order] = np.arange(self.size, dtype=np.int64)
        self._ranks[column] = rank
        return rank

    def sort(self, positions: Positions, column: str | None, descending: bool = False) -> Positions:
        """`positions` ordered by `column` (stable; None keeps inventory order)."""
        if column is None:
            return positions[::-1].copy() if descending else positions
        rank = self._rank(column)[positions]
        order = np.argsort(-rank if descending else rank, kind="stable")
        return np.asarray(positions[order], dtype=np.intp)


def _index_ids(frame: pd.DataFrame) -> pa.Array:
    """The frame's index (the row keys) as Arrow large_string ('' for missing)."""
    try:
        return _large_text(pa.array(frame.index, from_pandas=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        keys = pd.Series(frame.index).astype("string").fillna("").tolist()
        return pa.array(keys, type=pa.large_string())


def _table_bools(table: pa.Table, column: str) -> npt.NDArray[np.bool_]:
    if column not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    values = _as_array(table.column(column))
    if not pa.types.is_boolean(values.type):
        values = values.cast(pa.bool_())
    return np.asarray(values.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def filter_mailboxes(
    view: MailboxView, text: str = "", quick: QuickFilter | None = None,
    sort: str | None = None, descending: bool = False,
) -> Positions:
    """Positions of the rows to show, filtered by text and quick filters, then sorted."""
    return view.sort(view.filter(text, quick), sort, descending)


class CheckedRows:
    """Which mailboxes are selected: a boolean mask over inventory positions (vectorised bulk ops)."""

    def __init__(self, size: int) -> None:
        self.mask: npt.NDArray[np.bool_] = np.zeros(size, dtype=bool)

    @property
    def count(self) -> int:
        """How many rows are selected."""
        return int(self.mask.sum())

    def is_selected(self, position: int) -> bool:
        """True when the row at `position` is selected."""
        return bool(self.mask[position])

    def toggle(self, position: int) -> bool:
        """Flip one row; returns its new state."""
        self.mask[position] = not self.mask[position]
        return bool(self.mask[position])

    def select(self, positions: Positions | Sequence[int]) -> None:
        """Select these rows (others keep their state)."""
        self.mask[np.asarray(positions, dtype=np.intp)] = True

    def clear(self) -> None:
        """Select nothing."""
        self.mask[:] = False

    def invert(self, positions: Positions | Sequence[int]) -> None:
        """Flip the state of these rows (typically: the rows shown)."""
        index = np.asarray(positions, dtype=np.intp)
        self.mask[index] = ~self.mask[index]

    def ids(self, view: MailboxView) -> list[str]:
        """ExternalDirectoryObjectIds of the selected rows, in inventory order."""
        return view.ids_where(self.mask)

    def select_ids(self, view: MailboxView, identities: Iterable[str]) -> list[str]:
        """Select rows by ExternalDirectoryObjectId; returns the identities that matched no row."""
        missing: list[str] = []
        for identity in identities:
            position = view.position_of(identity)
            if position is None:
                missing.append(identity)
            else:
                self.mask[position] = True
        return missing


def format_age(fetched_at: datetime | None, now: datetime | None = None) -> str:
    """'fetched 3 min ago'-style age of a snapshot ('never fetched' when None)."""
    if fetched_at is None:
        return "never fetched"
    now = now or datetime.now(UTC)
    if fetched_at.tzinfo is None:
        fetched_at = fetched_at.replace(tzinfo=UTC)
    seconds = max(0, int((now - fetched_at).total_seconds()))
    if seconds < 60:
        text = f"{seconds} s"
    elif seconds < 3600:
        text = f"{seconds // 60} min"
    elif seconds < 86400:
        text = f"{seconds // 3600} h {seconds % 3600 // 60} min"
    else:
        text = f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    return f"{text} ago"


#: Properties whose on-prem and cloud values should agree (the writeback attributes and the identity
#: ones). Not compared: RecipientTypeDetails (Remote* on-prem by design), WhenChanged (each side's own
#: clock), LegacyExchangeDN (each organisation's own), and properties only one side has.
COMPARED_PROPERTIES: Final[frozenset[str]] = frozenset(
    set(WRITEBACK_ATTRIBUTES) - {"RecipientTypeDetails"}
    | {"UserPrincipalName", "PrimarySmtpAddress", "Alias", "ExchangeGuid", "ArchiveGuid", "ExternalDirectoryObjectId"}
)


def compare_sides(cloud: Mapping[str, Any], onprem: Mapping[str, Any] | None) -> list[tuple[str, str, str, bool]]:
    """Every property of a mailbox as (name, cloud text, on-prem text, differs), cloud order first.

    Only COMPARED_PROPERTIES present on both sides can differ. Multi-valued properties compare as
    sets, case-insensitively.
    """
    rows: list[tuple[str, str, str, bool]] = []
    names = list(cloud)
    if onprem:
        names += [name for name in onprem if name not in cloud]
    for name in names:
        left = cloud.get(name)
        right = onprem.get(name) if onprem else None
        differs = (onprem is not None and name in COMPARED_PROPERTIES and name in cloud and name in onprem
                   and normalise_value(left, fold_case=True) != normalise_value(right, fold_case=True))
        rows.append((name, display_value(left), display_value(right) if onprem else "", differs))
    return rows


def display_value(value: Any) -> str:
    """One property value as text: lists joined by '; ', datetimes to the second, missing as ''."""
    if is_missing(value):
        return ""
    if isinstance(value, list | tuple | np.ndarray):
        return "; ".join(str(v) for v in value)
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, datetime | pd.Timestamp):
        stamp = pd.Timestamp(value)
        return str(stamp.strftime("%Y-%m-%d %H:%M:%S")) + (" UTC" if stamp.tzinfo else "")
    return str(value)


# -- plans as tables ------------------------------------------------------------------------------

def plan_overwritten_frame(
    plan: Plan, frame: pd.DataFrame | None = None, onprem: pd.DataFrame | None = None
) -> pd.DataFrame:
    """For a plan that sets IsExchangeCloudManaged to False: the cloud values the next sync overwrites,
    as text (core.execute.undo.overwritten_by_sync decides which). Columns: UserPrincipalName,
    attribute, cloud, onprem, basis, ExternalDirectoryObjectId.
    """
    columns = ["UserPrincipalName", "attribute", "cloud", "onprem", "basis", "ExternalDirectoryObjectId"]
    out = [
        {
            "UserPrincipalName": row.upn, "attribute": attribute,
            "cloud": display_value(pair.get("cloud")), "onprem": display_value(pair.get("onprem")),
            "basis": str(pair.get("basis", "")), "ExternalDirectoryObjectId": row.identity,
        }
        for row, values in overwritten_by_sync(plan, frame, onprem)
        for attribute, pair in values.items()
    ]
    return pd.DataFrame(out, columns=columns)
