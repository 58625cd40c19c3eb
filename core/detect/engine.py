"""Detection: rules over the joined EXO + on-prem inventory, producing findings.

A finding is one row: ``code``, ``severity`` (critical/high/medium/low/info), the EXO identity
(``ExternalDirectoryObjectId``, ``UserPrincipalName``; both '' for tenant-level findings), a
one-line ``explanation`` in admin words, the ``evidence`` (dict of the property values that
triggered it) and the recommended ``action`` (a runbook name or a plan skip reason).

Rules live in a registry. Adding one is one function plus one test::

    @rule("MY_CODE", "medium", action="my-runbook", blocks=FLIP_TO_CLOUD,
          summary="what it means, one line")
    def my_code(ctx: DetectContext) -> Hits:
        mask = ctx.exo_text("CustomAttribute1") == "bad"
        return ctx.hits(mask, "CustomAttribute1 says bad", evidence=["CustomAttribute1"])

A rule gets a :class:`DetectContext` (the inventory, the on-prem row matched to each EXO
recipient, the match itself, ``now`` and the sync interval) and returns the rows it fires on,
built with vectorised masks; only the rows that fire are turned into evidence dicts.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Final

import numpy as np
import pandas as pd

from ..inventory.match import OnPremMatch, match_onprem, text_column
from ..memory import release_unused_memory
from ..model import FLIP_TYPES, ONPREM_COLUMNS, Writeback
from ..values import is_true, json_value

__all__ = [
    "AtRows",
    "BOTH",
    "DEFAULT_SYNC_INTERVAL",
    "FINDING_COLUMNS",
    "FLIP_TO_CLOUD",
    "FLIP_TO_ONPREM",
    "NONE",
    "RULES",
    "SEVERITIES",
    "DetectContext",
    "DetectResult",
    "Hits",
    "Rule",
    "detect",
    "empty_findings",
    "isin_fast",
    "rule",
    "severity_at_least",
]

SEVERITIES: Final[tuple[str, ...]] = ("critical", "high", "medium", "low", "info")
SEVERITY_RANK: Final[dict[str, int]] = {s: i for i, s in enumerate(SEVERITIES)}
FINDING_COLUMNS: Final[tuple[str, ...]] = (
    "code",
    "severity",
    "ExternalDirectoryObjectId",
    "UserPrincipalName",
    "explanation",
    "evidence",
    "action",
)
#: Entra Connect Sync's default cycle; wait one cycle + 24 h after an on-prem change (docs/exchange-facts.md#wait-a-sync-cycle-plus-24-hours).
DEFAULT_SYNC_INTERVAL: Final = timedelta(minutes=30)
SETTLE_TIME: Final = timedelta(hours=24)

#: Which flip directions a rule blocks (IsExchangeCloudManaged target value).
FLIP_TO_CLOUD: Final = frozenset({True})
FLIP_TO_ONPREM: Final = frozenset({False})
BOTH: Final = frozenset({True, False})
NONE: Final[frozenset[bool]] = frozenset()


@dataclass(frozen=True)
class Hits:
    """What a rule returns: EXO ids it fires on, with explanation/evidence (and optional action)."""

    ids: pd.Index
    explanation: pd.Series
    evidence: pd.Series
    action: pd.Series | None = None
    upn: pd.Series | None = None
    positions: np.ndarray | None = None  # inventory row positions of ids, when the rule knows them


RuleFunc = Callable[["DetectContext"], Hits]


@dataclass(frozen=True)
class AtRows:
    """Evidence read for the rows a rule fires on only: ``values(positions)`` gives the values at
    those inventory row positions (a Series aligned with the whole inventory would be built for a
    few hits)."""

    values: Callable[[np.ndarray], pd.Series]


@dataclass(frozen=True)
class Rule:
    """A registered rule: its code, severity, default action, what it blocks, and its function."""

    code: str
    severity: str
    action: str
    blocks: frozenset[bool]
    summary: str
    func: RuleFunc
    needs_onprem: bool = False
    tenant: bool = False
    needs_writeback: bool = False


#: The registry, in registration order (also the order of the summary).
RULES: dict[str, Rule] = {}


def rule(
    code: str,
    severity: str,
    *,
    action: str,
    blocks: frozenset[bool],
    summary: str,
    needs_onprem: bool = False,
    tenant: bool = False,
    needs_writeback: bool = False,
) -> Callable[[RuleFunc], RuleFunc]:
    """Register a rule function under ``code`` (see the module docstring)."""
    if severity not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {severity!r}")

    def register(func: RuleFunc) -> RuleFunc:
        if code in RULES and RULES[code].func.__qualname__ != func.__qualname__:
            raise ValueError(f"rule {code} registered twice")
        RULES[code] = Rule(code, severity, action, blocks, summary, func, needs_onprem, tenant, needs_writeback)
        return func

    return register


def severity_at_least(severity: pd.Series, minimum: str) -> pd.Series:
    """Mask of findings whose severity is ``minimum`` or worse."""
    return severity.map(SEVERITY_RANK).fillna(len(SEVERITIES)) <= SEVERITY_RANK[minimum]


def empty_findings() -> pd.DataFrame:
    """A findings frame with no rows and the right columns."""
    return pd.DataFrame({c: pd.Series(dtype="object" if c == "evidence" else "str") for c in FINDING_COLUMNS})


# ----------------------------------------------------------------------------- context


@dataclass
class DetectContext:
    """Everything a rule may look at. Per-recipient helpers are aligned to the inventory index.

    ``op`` is the on-prem row matched to each EXO recipient (all NA where none matched), with
    ``op_join`` naming the key that matched ('' where none). On-prem columns that the source
    did not provide are all NA: rules treat NA as unknown.
    """

    inventory: pd.DataFrame
    onprem: pd.DataFrame | None
    match: OnPremMatch
    now: datetime
    sync_interval: timedelta
    org_config: Mapping[str, Any] | None = None
    onprem_columns: frozenset[str] = frozenset()
    #: Cloud Sync writeback as read from Graph (None: not read).
    writeback: Writeback | None = None

    @cached_property
    def ids(self) -> pd.Index:
        """EXO ExternalDirectoryObjectId of every inventory row."""
        ids: pd.Index = pd.Index(self.inventory.index.astype("str"), name="ExternalDirectoryObjectId")
        return ids

    def exo_text(self, col: str) -> pd.Series:
        """An inventory column as str ('' for missing)."""

        def build() -> pd.Series:
            text = text_column(self.inventory, col)
            stripped = text.str.strip()
            return text if stripped.equals(text) else stripped  # the column itself when nothing changed: no copy kept

        return self._cache(("exo", col), build)

    def exo_bool(self, col: str) -> pd.Series:
        """An inventory column as bool (NA, missing, '' -> False; 'True'/'true' strings -> True)."""

        def build() -> pd.Series:
            if col not in self.inventory.columns:
                return pd.Series(False, index=self.inventory.index)
            s = self.inventory[col]
            if s.dtype == bool:
                return s
            if pd.api.types.is_bool_dtype(s.dtype):
                return s.fillna(False).astype(bool)
            try:  # object column of True/False/None (a Parquet snapshot with nulls): vectorised
                return s.astype("boolean").fillna(False).astype(bool)
            except (TypeError, ValueError):  # strings such as "True"/"false"
                return s.map(is_true, na_action="ignore").fillna(False).astype(bool)

        return self._cache(("exob", col), build)

    @cached_property
    def _op_pos(self) -> np.ndarray:
        """Position of the matched on-prem row per inventory row, -1 where none."""
        pairs = self.match.pairs
        pos = np.full(len(self.inventory), -1, dtype=np.intp)
        if self.onprem is not None and len(pairs):
            pos[pairs["exo_pos"].to_numpy(dtype=np.intp)] = pairs["op_pos"].to_numpy(dtype=np.intp)
        return pos

    def op_col(self, col: str) -> pd.Series:
        """A matched on-prem column aligned to the inventory, values as loaded; NA where no counterpart."""

        def build() -> pd.Series:
            index = self.inventory.index
            if self.onprem is None or col not in self.onprem.columns:
                if col == "WhenChanged":
                    return pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
                return pd.Series(pd.NA, index=index, dtype="object")
            taken = pd.api.extensions.take(self.onprem[col].array, self._op_pos, allow_fill=True)
            return pd.Series(taken, index=index, name=col)

        return self._cache(("opc", col), build)

    def exo_text_at(self, col: str) -> AtRows:
        """Evidence: an inventory column as exo_text gives it, read for the hit rows only."""
        return AtRows(lambda positions: text_column(self.inventory.iloc[positions], col).str.strip())

    def op_at(self, col: str) -> AtRows:
        """Evidence: the matched on-prem ``col`` (op_col's values), read for the hit rows only."""
        return AtRows(lambda positions: self.op_col_at(col, positions))

    def op_col_at(self, col: str, positions: np.ndarray) -> pd.Series:
        """The matched on-prem values of ``col`` for inventory rows at ``positions`` (RangeIndex, dtype kept)."""
        if self.onprem is None or col not in self.onprem.columns:
            return pd.Series(pd.NA, index=pd.RangeIndex(len(positions)), dtype="object")
        return pd.Series(pd.api.extensions.take(self.onprem[col].array, self._op_pos[positions], allow_fill=True))

    @property
    def op(self) -> pd.DataFrame:
        """The matched on-prem row per EXO recipient (NA where none), all ONPREM_COLUMNS (built on demand)."""
        return pd.DataFrame({c: self.op_col(c) for c in ONPREM_COLUMNS}, index=self.inventory.index)

    @cached_property
    def op_join(self) -> pd.Series:
        """Which key joined each EXO recipient to its on-prem row ('' where none)."""
        pairs = self.match.pairs
        values = np.full(len(self.inventory), "", dtype=object)
        if len(pairs):
            codes, keys = pd.factorize(pairs["join"])  # one str object per key, not one per row
            values[pairs["exo_pos"].to_numpy(dtype=np.intp)] = np.asarray([*keys, ""], dtype=object)[codes]
        return pd.Series(values, index=self.inventory.index, dtype="object")

    @cached_property
    def matched(self) -> pd.Series:
        """EXO recipients that have an on-prem counterpart."""
        return pd.Series(self._op_pos >= 0, index=self.inventory.index)

    def op_text(self, col: str) -> pd.Series:
        """A matched on-prem column as str; NA stays NA (unknown or no counterpart)."""

        def build() -> pd.Series:
            s = self.op_col(col)
            if not s.notna().any():
                return s
            return s.astype("str").str.strip().where(s.notna())

        return self._cache(("op", col), build)

    def exo_in(self, col: str, values: Iterable[str]) -> pd.Series:
        """Mask: the inventory column's value is one of ``values`` (hash-coded, fast on 300k rows)."""
        return pd.Series(isin_fast(self.exo_text(col), values), index=self.inventory.index)

    def op_in(self, col: str, values: Iterable[str]) -> pd.Series:
        """Mask: the matched on-prem column's value is one of ``values`` (False where none)."""
        return pd.Series(isin_fast(self.op_col(col), values), index=self.inventory.index)

    @cached_property
    def exo_is_mailbox(self) -> pd.Series:
        """EXO recipient is a mailbox of any kind (RecipientType UserMailbox or *Mailbox details)."""
        rtd = self.exo_text("RecipientTypeDetails")
        codes, uniques = pd.factorize(rtd)
        u = pd.Index(uniques).astype("str")
        kind = np.asarray(u.str.endswith("Mailbox") & ~u.str.startswith("Remote"), dtype=bool)
        by_rtd = kind[codes] & (codes >= 0) if len(u) else np.zeros(len(rtd), dtype=bool)
        return pd.Series(isin_fast(self.exo_text("RecipientType"), ("UserMailbox",)) | by_rtd, index=rtd.index)

    @cached_property
    def exo_flip_type(self) -> pd.Series:
        """EXO recipient is of a type IsExchangeCloudManaged applies to."""
        return self.exo_in("RecipientTypeDetails", FLIP_TYPES)

    def has_onprem_column(self, col: str) -> bool:
        """True when on-prem data exists and its source provided ``col``."""
        return self.onprem is not None and col in self.onprem_columns

    def hits(
        self,
        mask: pd.Series | np.ndarray,
        explanation: str | pd.Series | Sequence[str | pd.Series],
        *,
        evidence: Sequence[str] | Mapping[str, pd.Series | AtRows] = (),
        action: str | pd.Series | None = None,
    ) -> Hits:
        """Build a rule's Hits from a boolean mask over the inventory.

        ``explanation`` is one string, a Series (aligned with the inventory or indexed by the
        hit rows), or a sequence of strings and aligned Series concatenated only for the hit
        rows. ``evidence`` names inventory columns (taken as they are), or maps evidence keys
        to Series aligned with the inventory or to AtRows; only hit rows are turned into dicts.
        """
        m = np.asarray(pd.Series(mask).fillna(False).to_numpy(), dtype=bool)
        idx = self.inventory.index[m]
        if isinstance(explanation, str):
            expl = pd.Series(explanation, index=idx, dtype="str")
        elif isinstance(explanation, pd.Series):
            expl = (explanation[m] if len(explanation) == len(m) else explanation.reindex(idx)).astype("str")
        else:
            expl = pd.Series("", index=idx, dtype="str")
            for part in explanation:
                expl = expl + (part if isinstance(part, str) else part[m].fillna("").astype("str").set_axis(idx))
        if isinstance(evidence, Mapping):
            rows = np.flatnonzero(m)
            ev_frame = pd.DataFrame(
                {k: (v.values(rows) if isinstance(v, AtRows) else v[m]).set_axis(idx) for k, v in evidence.items()},
                index=idx,
            )
        elif evidence:
            ev_frame = self.inventory[list(evidence)].iloc[np.flatnonzero(m)]
        else:
            ev_frame = pd.DataFrame(index=idx)
        ev = pd.Series(_records(ev_frame), index=idx, dtype="object")
        act = None
        if action is not None:
            act = pd.Series(action, index=idx, dtype="str") if isinstance(action, str) else action[m].astype("str")
        return Hits(pd.Index(idx.astype("str")), expl, ev, act, positions=np.flatnonzero(m))

    def no_hits(self) -> Hits:
        """A Hits with no rows (a rule that found nothing or could not run)."""
        return self.hits(np.zeros(len(self.inventory), dtype=bool), "")

    def _cache(self, key: tuple[str, str], build: Callable[[], pd.Series]) -> pd.Series:
        store: dict[tuple[str, str], pd.Series] = self.__dict__.setdefault("_series_cache", {})
        if key not in store:
            store[key] = build()
        return store[key]


def isin_fast(s: pd.Series, values: Iterable[str]) -> np.ndarray:
    """``s.isin(values)`` through factorize: hashes each distinct value once (Arrow isin is per row)."""
    codes, uniques = pd.factorize(s)
    if len(uniques) == 0:
        return np.zeros(len(s), dtype=bool)
    hit = np.asarray(pd.Index(uniques).isin(list(values)), dtype=bool)
    return np.where(codes >= 0, hit[np.maximum(codes, 0)], False)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Evidence dicts with JSON-friendly values (tuples -> lists, timestamps -> ISO, NA -> None)."""
    if frame.shape[1] == 0:
        return [{} for _ in range(len(frame))]
    columns: dict[str, list[Any]] = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            text = s.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ") if s.dt.tz else s.dt.strftime("%Y-%m-%dT%H:%M:%S")
            columns[str(col)] = text.astype("object").where(s.notna(), None).tolist()
            continue
        values = s.astype("object").where(s.notna(), None).tolist()
        if s.dtype == object:
            values = [json_value(v) for v in values]
        columns[str(col)] = values
    names = list(columns)
    arrays = [columns[n] for n in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*arrays, strict=True)]


# ----------------------------------------------------------------------------- running


@dataclass
class DetectResult:
    """Findings plus what a reader needs to trust them.

    ``findings``: FINDING_COLUMNS, sorted by severity then code then UPN. ``match``: the
    on-prem join. ``not_checked``: rules skipped and why (e.g. no on-prem data). ``notes``:
    loader notes and other caveats for the report.
    """

    findings: pd.DataFrame
    match: OnPremMatch
    not_checked: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    recipients: int = 0
    onprem_rows: int = 0


def detect(
    inventory: pd.DataFrame,
    onprem: pd.DataFrame | None = None,
    *,
    now: datetime | None = None,
    sync_interval: timedelta = DEFAULT_SYNC_INTERVAL,
    org_config: Mapping[str, Any] | None = None,
    codes: Iterable[str] | None = None,
    onprem_columns: Iterable[str] | None = None,
    writeback: Writeback | None = None,
) -> DetectResult:
    """Run the registered rules (or only ``codes``) over the inventory and on-prem data.

    ``inventory``: INVENTORY_COLUMNS, index ExternalDirectoryObjectId. ``onprem``: the
    frame of :func:`exocm.core.inventory.onprem.load_onprem_csv` / ``onprem_frame_from_records`` (None
    when there is no on-prem data: rules that need it are listed in ``not_checked``).
    ``now`` defaults to the current UTC time (inject it in tests).
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if onprem is not None and onprem_columns is None:
        onprem_columns = onprem.attrs.get("columns_present") or [c for c in ONPREM_COLUMNS if c in onprem.columns]
    match = match_onprem(inventory, onprem) if onprem is not None else match_onprem(inventory, pd.DataFrame())
    release_unused_memory()
    ctx = DetectContext(
        inventory=inventory,
        onprem=onprem,
        match=match,
        now=now,
        sync_interval=sync_interval,
        org_config=org_config,
        onprem_columns=frozenset(onprem_columns or ()),
        writeback=writeback,
    )
    selected = [RULES[c] for c in codes] if codes is not None else list(RULES.values())
    frames: list[pd.DataFrame] = []
    not_checked: dict[str, str] = {}
    for r in selected:
        if r.needs_onprem and onprem is None:
            not_checked[r.code] = "no on-prem data (give --onprem-csv)"
            continue
        if r.tenant and org_config is None:
            not_checked[r.code] = "organization config not read"
            continue
        if r.needs_writeback and (writeback is None or writeback.configured is None):
            not_checked[r.code] = "Cloud Sync writeback configuration not read (Graph)"
            continue
        h = r.func(ctx)
        release_unused_memory()
        if len(h.ids) == 0:
            continue
        upn = h.upn if h.upn is not None else _upn_for(ctx, h)
        frames.append(
            pd.DataFrame(
                {
                    "code": r.code,
                    "severity": r.severity,
                    "ExternalDirectoryObjectId": h.ids.to_numpy(),
                    "UserPrincipalName": np.asarray(upn, dtype=object),
                    "explanation": h.explanation.to_numpy(),
                    "evidence": h.evidence.to_numpy(),
                    "action": h.action.to_numpy() if h.action is not None else r.action,
                }
            )
        )
    findings = pd.concat(frames, ignore_index=True) if frames else empty_findings()
    findings = _sort(findings)
    notes: list[str] = []
    if onprem is not None and len(onprem):
        if len(match.unmatched):
            notes.append(
                f"{len(match.unmatched)} on-prem recipient(s) match no EXO recipient "
                "(not synced, filtered out of sync, or deleted in the cloud)"
            )
        if len(match.ambiguous):
            notes.append(
                f"{match.ambiguous['line'].nunique()} on-prem recipient(s) could be more than one EXO recipient; "
                "see AMBIGUOUS_MATCH (never guessed)"
            )
        if "ExternalDirectoryObjectId" not in ctx.onprem_columns:
            notes.append("on-prem data has no ExternalDirectoryObjectId: joined on UserPrincipalName, then addresses")
    del ctx  # its per-column caches, before their memory is handed back
    release_unused_memory()
    return DetectResult(
        findings=findings,
        match=match,
        not_checked=not_checked,
        notes=notes,
        recipients=len(inventory),
        onprem_rows=0 if onprem is None else len(onprem),
    )


def _upn_for(ctx: DetectContext, h: Hits) -> np.ndarray:
    upn = ctx.exo_text("UserPrincipalName")
    if h.positions is not None:
        return upn.iloc[h.positions].to_numpy(dtype=object)
    return upn.set_axis(ctx.ids).reindex(h.ids).fillna("").to_numpy(dtype=object)


def _sort(findings: pd.DataFrame) -> pd.DataFrame:
    if findings.empty:
        return findings
    keyed = findings.assign(
        _rank=findings["severity"].map(SEVERITY_RANK), _upn=findings["UserPrincipalName"].astype("str").str.lower()
    )
    keyed = keyed.sort_values(["_rank", "code", "_upn", "ExternalDirectoryObjectId"], kind="stable")
    out = keyed.drop(columns=["_rank", "_upn"]).reset_index(drop=True)
    for col in FINDING_COLUMNS:
        if col != "evidence":
            out[col] = out[col].astype("str")
    return out


# The rules register themselves on import; keep this at the bottom (they import `rule` from here).
from . import rules as _rules  # noqa: E402,F401
