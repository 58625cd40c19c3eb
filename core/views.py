"""What a face shows of the inventory: filtered, sorted, selected rows, computed on the DataFrame.

Both faces ask this module which rows to show; nothing here knows about terminals. The hot paths
(text search, quick filters, sort, select-all/invert) are vectorised so that a keystroke over
100,000 mailboxes costs milliseconds: the lower-cased search text and the sort ranks are computed
once per inventory, and a search that extends the previous one only scans the previous result.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from .model import FLIP_TYPES, WRITEBACK_ATTRIBUTES

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

#: Columns whose text a search looks through.
SEARCH_COLUMNS: Final[tuple[str, ...]] = (
    "DisplayName",
    "UserPrincipalName",
    "PrimarySmtpAddress",
    "Alias",
    "EmailAddresses",
)


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


def _text_array(frame: pd.DataFrame, column: str) -> npt.NDArray[np.object_]:
    if column not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    values = frame[column]
    if values.dtype == object and len(values) and any(isinstance(v, list | tuple) for v in values.head(50)):
        return np.array(
            [" ".join(v) if isinstance(v, list | tuple | np.ndarray) else ("" if v is None else str(v))
             for v in values],
            dtype=object,
        )
    return values.astype("string").fillna("").to_numpy(dtype=object)


def _multi_text(frame: pd.DataFrame, column: str) -> pd.Series:
    """A multi-valued column (tuples/lists/arrays of str) as one space-joined string per row."""
    if column not in frame.columns:
        return pd.Series("", index=frame.index, dtype="string")
    values = frame[column]

    def join(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, str):
            return value
        return " ".join(str(v) for v in value)

    return pd.Series([join(v) for v in values], index=frame.index, dtype="string")


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
    """The inventory prepared for a face: search text, masks and sort ranks computed once.

    Rows are addressed by *position* (0..size-1 in the inventory frame); `ids[pos]` is the
    ExternalDirectoryObjectId. A face keeps an array of positions (what is shown, in order).
    """

    def __init__(self, frame: pd.DataFrame, findings: pd.DataFrame | None = None) -> None:
        self.frame = frame
        self.size = len(frame)
        # the row key is the frame's index: ExternalDirectoryObjectId (Guid for objects without one)
        self.ids: npt.NDArray[np.object_] = pd.Series(frame.index).astype("string").fillna("").to_numpy(dtype=object)
        self._id_positions = pd.Index(self.ids)
        search = pd.Series("", index=frame.index, dtype="string")
        for column in SEARCH_COLUMNS:
            if column == "EmailAddresses":
                part = _multi_text(frame, column)
            elif column in frame.columns:
                part = frame[column].astype("string").fillna("")
            else:
                continue
            search = search.str.cat(part, sep="\x1f")
        self._search: pd.Series = search.str.lower().reset_index(drop=True)
        self.dirsynced = _bool_array(frame, "IsDirSynced")
        self.cloud_managed = _bool_array(frame, "IsExchangeCloudManaged")
        self.types: npt.NDArray[np.object_] = _text_array(frame, "RecipientTypeDetails")
        self._text = {key: _text_array(frame, key) for key in ("DisplayName", "UserPrincipalName")}
        self._when = frame["WhenChanged"].to_numpy() if "WhenChanged" in frame.columns else None
        self._ranks: dict[str, npt.NDArray[np.int64]] = {}
        self._last: tuple[str, QuickFilter, Positions] | None = None
        self.set_findings(findings)

    # findings -----------------------------------------------------------------------------
    def set_findings(self, findings: pd.DataFrame | None) -> None:
        """Attach detection results (or None): feeds the findings badge, filter and sort."""
        per = findings_by_mailbox(findings)
        aligned = per.reindex(self._id_positions)
        self.findings_count = aligned["count"].fillna(0).to_numpy(dtype="int64")
        self.findings_rank = aligned["severity_rank"].fillna(_NO_FINDING).to_numpy(dtype="int64")
        self.findings = findings
        self._ranks.pop("Findings", None)
        self._last = None

    # lookup -------------------------------------------------------------------------------
    def position_of(self, identity: str) -> int | None:
        """Position of the mailbox with this ExternalDirectoryObjectId, or None."""
        try:
            found = self._id_positions.get_loc(identity)
        except KeyError:
            return None
        return found if isinstance(found, int) else None

    def record(self, position: int) -> dict[str, Any]:
        """Every property of the mailbox at `position`, as a plain dict."""
        row = self.frame.iloc[position]
        return {str(key): value for key, value in row.items()}

    def type_names(self) -> list[str]:
        """RecipientTypeDetails values present: flip types first, the most common first."""
        counts = pd.Series(self.types[self.types != ""]).value_counts()
        return sorted((str(n) for n in counts.index),
                      key=lambda name: (name not in FLIP_TYPES, -int(counts[name]), name))

    def cells(self, position: int) -> tuple[str, ...]:
        """The text of each MAILBOX_COLUMNS cell of one row (formatted on demand: only visible rows pay)."""
        count = int(self.findings_count[position])
        rank = int(self.findings_rank[position])
        badge = f"{count} {SEVERITIES[rank]}" if count and rank < len(SEVERITIES) else (str(count) if count else "")
        return (
            str(self._text["DisplayName"][position]),
            str(self._text["UserPrincipalName"][position]),
            str(self.types[position]),
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
            mask = both(mask, np.isin(self.types, list(quick.types)))
        return mask

    def filter(self, text: str = "", quick: QuickFilter | None = None) -> Positions:
        """Positions (ascending) of the rows whose name/UPN/SMTP/alias/addresses contain `text`
        (case-insensitive, plain substring) and that pass the quick filters."""
        quick = quick or QuickFilter()
        needle = text.strip().lower()
        last = self._last
        if last is not None and last[1] == quick and needle.startswith(last[0]):
            # the new search narrows the previous one: scan only its result
            base = last[2]
            if needle != last[0]:
                base = base[self._search.iloc[base].str.contains(needle, regex=False).to_numpy(dtype=bool)]
        else:
            mask = self.quick_mask(quick)
            if needle:
                hits = self._search.str.contains(needle, regex=False).to_numpy(dtype=bool)
                mask = hits if mask is None else mask & hits
            base = np.flatnonzero(mask) if mask is not None else np.arange(self.size, dtype=np.intp)
        result = np.asarray(base, dtype=np.intp)
        self._last = (needle, quick, result)
        return result

    def _rank(self, column: str) -> npt.NDArray[np.int64]:
        cached = self._ranks.get(column)
        if cached is not None:
            return cached
        keys: Any
        if column == "Findings":
            # worst severity first, then more findings first
            keys = self.findings_rank * (1 << 32) - self.findings_count
        elif column == "IsDirSynced":
            keys = self.dirsynced.astype("int64")
        elif column == "IsExchangeCloudManaged":
            keys = self.cloud_managed.astype("int64")
        elif column == "WhenChanged" and self._when is not None:
            keys = pd.to_datetime(pd.Series(self._when), utc=True, errors="coerce").to_numpy()
        elif column == "RecipientTypeDetails":
            keys = pd.Series(self.types).str.lower().to_numpy(dtype=object)
        elif column in self._text:
            keys = pd.Series(self._text[column]).str.lower().to_numpy(dtype=object)
        elif column in self.frame.columns:
            keys = self.frame[column].astype("string").fillna("").str.lower().to_numpy(dtype=object)
        else:
            raise KeyError(f"unknown column {column!r}")
        order = np.argsort(keys, kind="stable")
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


def filter_mailboxes(
    view: MailboxView, text: str = "", quick: QuickFilter | None = None,
    sort: str | None = None, descending: bool = False,
) -> Positions:
    """Positions of the rows to show, filtered by text and quick filters, then sorted."""
    return view.sort(view.filter(text, quick), sort, descending)


class Selection:
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
        return [str(v) for v in view.ids[self.mask]]

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
                   and _normal(left) != _normal(right))
        rows.append((name, display_value(left), display_value(right) if onprem else "", differs))
    return rows


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value)) if np.ndim(value) == 0 else False
    except (TypeError, ValueError):
        return False


def _normal(value: Any) -> Any:
    if _is_missing(value):
        return None
    if isinstance(value, str):
        return value.strip().lower() or None
    if isinstance(value, list | tuple | np.ndarray):
        return frozenset(str(v).lower() for v in value) or None
    if isinstance(value, datetime | pd.Timestamp):
        return pd.Timestamp(value).floor("s")
    return value


def display_value(value: Any) -> str:
    """One property value as text: lists joined by '; ', datetimes to the second, missing as ''."""
    if _is_missing(value):
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

def plan_counts_frame(plan: Any) -> pd.DataFrame:
    """Counts per action and reason of a core.plan.Plan: columns `action`, `reason`, `count`, `meaning`."""
    from .plan import REASON_TEXT

    rows = []
    for key, count in plan.counts().items():
        action, _, reason = key.partition(":")
        meaning = "will be changed" if action == "set" else REASON_TEXT.get(reason, reason.replace("_", " "))
        rows.append({"action": action, "reason": reason, "count": int(count), "meaning": meaning})
    return pd.DataFrame(rows, columns=["action", "reason", "count", "meaning"])


def plan_rows_frame(plan: Any) -> pd.DataFrame:
    """The rows of a plan as a table (identity, names, action, reason, detail, observed value)."""
    records = [
        {
            "action": row.action,
            "reason": row.reason,
            "DisplayName": row.display_name,
            "UserPrincipalName": row.upn,
            "IsExchangeCloudManaged": row.observed.is_cloud_managed,
            "WhenChanged": row.observed.when_changed,
            "detail": row.detail,
            "ExternalDirectoryObjectId": row.identity,
        }
        for row in plan.rows
    ]
    columns = ["action", "reason", "DisplayName", "UserPrincipalName", "IsExchangeCloudManaged",
               "WhenChanged", "detail", "ExternalDirectoryObjectId"]
    return pd.DataFrame(records, columns=columns)


def plan_overwritten_frame(
    plan: Any, frame: pd.DataFrame | None = None, onprem: pd.DataFrame | None = None
) -> pd.DataFrame:
    """For a plan that sets IsExchangeCloudManaged to False: the cloud values the next sync overwrites.

    Undo plans carry them per row (`overwritten`, made by core.undo). For a plain disable plan they
    come from the same rule (core.undo.overwritten_values) applied to the inventory's cloud values
    and the on-prem record; without on-prem data every non-empty cloud writeback value is listed,
    since any of them may be overwritten. Columns: UserPrincipalName, attribute, cloud, onprem,
    basis, ExternalDirectoryObjectId.
    """
    from .undo import _ONPREM_COMPARABLE, _onprem_lookup, overwritten_values

    columns = ["UserPrincipalName", "attribute", "cloud", "onprem", "basis", "ExternalDirectoryObjectId"]
    if plan.value is not False:
        return pd.DataFrame(columns=columns)
    out: list[dict[str, Any]] = []

    def add(row: Any, values: Mapping[str, Mapping[str, Any]]) -> None:
        for attribute, pair in values.items():
            out.append({
                "UserPrincipalName": row.upn, "attribute": attribute,
                "cloud": display_value(pair.get("cloud")), "onprem": display_value(pair.get("onprem")),
                "basis": str(pair.get("basis", "")), "ExternalDirectoryObjectId": row.identity,
            })

    set_rows = plan.set_rows()
    if getattr(plan, "kind", "flip") == "undo" or any(row.overwritten is not None for row in set_rows):
        for row in set_rows:
            add(row, row.overwritten or {})
        return pd.DataFrame(out, columns=columns)
    if frame is None:
        return pd.DataFrame(columns=columns)
    by_edoi, by_upn = _onprem_lookup(onprem)
    for row in set_rows:
        if row.identity not in frame.index:
            continue
        cloud = {str(k): v for k, v in frame.loc[row.identity].items()}
        other = by_edoi.get(row.identity.lower()) or (by_upn.get(row.upn.lower()) if row.upn else None)
        if other is not None:
            add(row, overwritten_values(cloud, None, other))
        else:
            add(row, {a: {"cloud": cloud.get(a), "onprem": None, "basis": "cloud value (no on-prem data)"}
                      for a in _ONPREM_COMPARABLE if _normal(cloud.get(a)) is not None})
    return pd.DataFrame(out, columns=columns)
