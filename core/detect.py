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

from .match import OnPremMatch, match_onprem, text_column
from .model import FLIP_TYPES, ONPREM_COLUMNS

__all__ = [
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
#: Entra Connect Sync's default cycle; DESIGN: wait one cycle + 24 h after an on-prem change.
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


RuleFunc = Callable[["DetectContext"], Hits]


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
) -> Callable[[RuleFunc], RuleFunc]:
    """Register a rule function under ``code`` (see the module docstring)."""
    if severity not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {severity!r}")

    def register(func: RuleFunc) -> RuleFunc:
        if code in RULES and RULES[code].func.__qualname__ != func.__qualname__:
            raise ValueError(f"rule {code} registered twice")
        RULES[code] = Rule(code, severity, action, blocks, summary, func, needs_onprem, tenant)
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

    @cached_property
    def ids(self) -> pd.Index:
        """EXO ExternalDirectoryObjectId of every inventory row."""
        ids: pd.Index = pd.Index(self.inventory.index.astype("str"), name="ExternalDirectoryObjectId")
        return ids

    def exo_text(self, col: str) -> pd.Series:
        """An inventory column as str ('' for missing)."""
        return self._cache(("exo", col), lambda: text_column(self.inventory, col).str.strip())

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
            return s.map(_truthy, na_action="ignore").fillna(False).astype(bool)

        return self._cache(("exob", col), build)

    @cached_property
    def op(self) -> pd.DataFrame:
        """The matched on-prem row per EXO recipient (NA where none)."""
        pairs = self.match.pairs
        if self.onprem is None or pairs.empty:
            cols = {c: pd.Series(pd.NA, index=self.inventory.index, dtype="object") for c in ONPREM_COLUMNS}
            frame = pd.DataFrame(cols, index=self.inventory.index)
            frame["WhenChanged"] = pd.Series(pd.NaT, index=self.inventory.index, dtype="datetime64[ns, UTC]")
            return frame
        lines = pairs["line"].reindex(self.ids)
        present = lines.notna().to_numpy()
        pos = self.onprem.index.get_indexer(pd.Index(lines[present]))
        frame = self.onprem.iloc[pos]
        frame.index = self.inventory.index[present]
        return frame.reindex(self.inventory.index)

    @cached_property
    def op_join(self) -> pd.Series:
        """Which key joined each EXO recipient to its on-prem row ('' where none)."""
        return self.match.pairs["join"].reindex(self.ids).fillna("").astype("str").set_axis(self.inventory.index)

    @cached_property
    def matched(self) -> pd.Series:
        """EXO recipients that have an on-prem counterpart."""
        return self.op_join != ""

    def op_text(self, col: str) -> pd.Series:
        """A matched on-prem column as str; NA stays NA (unknown or no counterpart)."""

        def build() -> pd.Series:
            s = self.op[col]
            return s.where(s.isna(), s.astype("str").str.strip()) if s.notna().any() else s

        return self._cache(("op", col), build)

    @cached_property
    def exo_is_mailbox(self) -> pd.Series:
        """EXO recipient is a mailbox of any kind (RecipientType UserMailbox or *Mailbox details)."""
        rt = self.exo_text("RecipientType")
        rtd = self.exo_text("RecipientTypeDetails")
        return (rt == "UserMailbox") | (rtd.str.endswith("Mailbox") & ~rtd.str.startswith("Remote"))

    @cached_property
    def exo_flip_type(self) -> pd.Series:
        """EXO recipient is of a type IsExchangeCloudManaged applies to."""
        return self.exo_text("RecipientTypeDetails").isin(FLIP_TYPES)

    def has_onprem_column(self, col: str) -> bool:
        """True when on-prem data exists and its source provided ``col``."""
        return self.onprem is not None and col in self.onprem_columns

    def hits(
        self,
        mask: pd.Series,
        explanation: str | pd.Series,
        *,
        evidence: Sequence[str] | Mapping[str, pd.Series] = (),
        action: str | pd.Series | None = None,
    ) -> Hits:
        """Build a rule's Hits from a boolean mask over the inventory.

        ``evidence`` names inventory columns (taken as they are), or maps evidence keys to
        Series aligned with the inventory; only rows in ``mask`` are turned into dicts.
        """
        m = mask.fillna(False).astype(bool).to_numpy()
        idx = self.inventory.index[m]
        if isinstance(explanation, str):
            expl = pd.Series(explanation, index=idx, dtype="str")
        else:
            expl = explanation[m].astype("str")
        if isinstance(evidence, Mapping):
            ev_frame = pd.DataFrame({k: v[m] for k, v in evidence.items()}, index=idx)
        else:
            ev_frame = self.inventory.loc[idx, list(evidence)] if evidence else pd.DataFrame(index=idx)
        ev = pd.Series(_records(ev_frame), index=idx, dtype="object")
        act = None
        if action is not None:
            act = pd.Series(action, index=idx, dtype="str") if isinstance(action, str) else action[m].astype("str")
        return Hits(pd.Index(idx.astype("str")), expl, ev, act)

    def _cache(self, key: tuple[str, str], build: Callable[[], pd.Series]) -> pd.Series:
        store: dict[tuple[str, str], pd.Series] = self.__dict__.setdefault("_series_cache", {})
        if key not in store:
            store[key] = build()
        return store[key]


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Evidence dicts with JSON-friendly values (tuples -> lists, timestamps -> ISO, NA -> None)."""
    if frame.shape[1] == 0:
        return [{} for _ in range(len(frame))]
    out = frame.astype("object").where(frame.notna(), None)
    recs: list[dict[str, Any]] = out.to_dict("records")  # type: ignore[assignment]
    for col in frame.columns:
        kind = frame[col].dtype
        if pd.api.types.is_datetime64_any_dtype(kind) or frame[col].map(_needs_plain, na_action="ignore").any():
            for r in recs:
                r[col] = _plain(r[col])
    return recs


def _needs_plain(v: Any) -> bool:
    return isinstance(v, tuple | datetime | np.generic | dict)


def _plain(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, pd.Timestamp | datetime):
        if v.tzinfo is not None:
            v = v.astimezone(UTC)
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, np.generic):
        return v.item()
    return v


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
) -> DetectResult:
    """Run the registered rules (or only ``codes``) over the inventory and on-prem data.

    ``inventory``: INVENTORY_COLUMNS, index ExternalDirectoryObjectId. ``onprem``: the
    frame of :func:`exocm.core.onprem.load_onprem_csv` / ``onprem_frame_from_records`` (None
    when there is no on-prem data: rules that need it are listed in ``not_checked``).
    ``now`` defaults to the current UTC time (inject it in tests).
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if onprem is not None and onprem_columns is None:
        onprem_columns = onprem.attrs.get("columns_present") or [c for c in ONPREM_COLUMNS if c in onprem.columns]
    match = match_onprem(inventory, onprem) if onprem is not None else match_onprem(inventory, pd.DataFrame())
    ctx = DetectContext(
        inventory=inventory,
        onprem=onprem,
        match=match,
        now=now,
        sync_interval=sync_interval,
        org_config=org_config,
        onprem_columns=frozenset(onprem_columns or ()),
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
        h = r.func(ctx)
        if len(h.ids) == 0:
            continue
        upn = h.upn if h.upn is not None else _upn_for(ctx, h.ids)
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
    return DetectResult(
        findings=findings,
        match=match,
        not_checked=not_checked,
        recipients=len(inventory),
        onprem_rows=0 if onprem is None else len(onprem),
    )


def _upn_for(ctx: DetectContext, ids: pd.Index) -> np.ndarray:
    upn = ctx.exo_text("UserPrincipalName")
    upn.index = ctx.ids
    return upn.reindex(ids).fillna("").to_numpy(dtype=object)


def _sort(findings: pd.DataFrame) -> pd.DataFrame:
    if findings.empty:
        return findings
    key = findings["severity"].map(SEVERITY_RANK)
    order = np.lexsort(
        (
            findings["ExternalDirectoryObjectId"].to_numpy(dtype=str),
            findings["UserPrincipalName"].str.lower().to_numpy(dtype=str),
            findings["code"].to_numpy(dtype=str),
            key.to_numpy(),
        )
    )
    out = findings.iloc[order].reset_index(drop=True)
    for col in FINDING_COLUMNS:
        if col != "evidence":
            out[col] = out[col].astype("str")
    return out


# The rules register themselves on import; keep this at the bottom (they import `rule` from here).
from . import rules as _rules  # noqa: E402,F401
