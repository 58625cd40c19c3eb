"""Plans for object-level SOA (groups, contacts, users): which objects get `isCloudManaged = value`.

Same plan file as mailbox plans (planfile.py), with `object_kind` naming the kind, rows keyed
by the Entra object id, the observed state in Graph's terms (Observed.from_object), and for
groups an apply `wave`: children before parents, computed from the membership graph among the
rows that will be set (detect/objects.nesting_waves); a group on a nesting cycle is blocked
by GROUP_NESTING_CYCLE, so waves always exist. Skip reasons are decided here, from the object
inventory and object readiness (detect/objects.object_readiness).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ..detect.objects import detect_objects, nesting_waves, object_readiness
from ..model import GROUP, USER, check_kind
from ..values import normalise_value
from .planfile import (
    ALREADY,
    BLOCKED,
    NOT_DIRSYNCED,
    OVER_CAP,
    STATE_UNKNOWN,
    Action,
    Observed,
    Plan,
    PlanRow,
)


def _ready_set(frame: pd.DataFrame, findings: pd.DataFrame, value: bool, candidates: list[str]) -> pd.DataFrame:
    """Readiness with GROUP_CHILD_NOT_CONVERTED lifted for children set in the same plan (to a fixed point)."""
    planned = set(candidates)
    sub = frame.loc[candidates] if candidates else frame.iloc[0:0]
    for _ in range(len(candidates) + 1):
        readiness = object_readiness(sub, findings, value, planned=planned)
        ready = set(readiness.index[readiness["status"] == "ready"].astype(str))
        if ready == planned:
            return readiness
        planned = ready
    return readiness


def build_object_plan(
    kind: str,
    frame: pd.DataFrame,
    identities: Sequence[str],
    value: bool,
    *,
    tenant: str,
    findings: pd.DataFrame | None = None,
    preset_skips: Mapping[str, tuple[str, str]] | None = None,
    max_changes: int | None = None,
    source: Mapping[str, Any] | None = None,
    input_report: Iterable[Mapping[str, Any]] = (),
    now: datetime | None = None,
) -> Plan:
    """A plan that sets isCloudManaged to `value` for `identities` (object ids) of one kind.

    Order of skip reasons: the selection's own (`preset_skips`), not synced, state unreadable,
    already in the target state, blocked by a finding, over the `max_changes` cap. Set rows of a
    group plan are ordered by wave (children first); skips keep the selection's order after them.
    """
    kind = check_kind(kind, allow_mailbox=False)
    presets = dict(preset_skips or {})
    ids = [i for i in dict.fromkeys(str(i) for i in identities) if i in frame.index]
    if findings is None:
        findings = detect_objects(kind, frame, now=now)
    sub = frame.loc[ids] if ids else frame.iloc[0:0]
    reasons: dict[str, tuple[str, str]] = {}
    candidates: list[str] = []
    for oid, synced, state in zip(ids, sub["OnPremisesSyncEnabled"].tolist(), sub["IsCloudManaged"].tolist(),
                                  strict=True):
        if oid in presets:
            reasons[oid] = presets[oid]
        elif synced is not True:
            reasons[oid] = (NOT_DIRSYNCED, "onPremisesSyncEnabled is not true (cloud-only object)")
        elif not isinstance(state, bool):
            reasons[oid] = (STATE_UNKNOWN, "onPremisesSyncBehavior.isCloudManaged could not be read")
        elif state == value:
            reasons[oid] = (ALREADY, f"isCloudManaged is already {str(value).lower()}")
        else:
            candidates.append(oid)
    readiness = _ready_set(frame, findings, value, candidates)
    for oid in candidates:
        if readiness.at[oid, "status"] == "blocked":
            codes: Any = readiness.at[oid, "reasons"]
            reasons[oid] = (BLOCKED, ", ".join(str(c) for c in codes))
    to_set = [oid for oid in candidates if oid not in reasons]
    if max_changes is not None:
        for oid in to_set[max_changes:]:
            reasons[oid] = (OVER_CAP, f"--max {max_changes}")
        to_set = to_set[:max_changes]
    waves: dict[str, int] = {}
    after: dict[str, tuple[str, ...]] = {}
    if kind == GROUP:
        kids: dict[str, Any] = {oid: frame.at[oid, "ChildGroups"] for oid in to_set}
        children = {oid: tuple(str(c) for c in value) for oid, value in kids.items()}
        waves = nesting_waves(to_set, children)
        for oid in to_set:  # a cycle left among the set rows (should be blocked already): never a hang
            if oid not in waves:
                reasons[oid] = (BLOCKED, "GROUP_NESTING_CYCLE")
        to_set = [oid for oid in to_set if oid in waves]
        in_plan = set(to_set)
        after = {oid: tuple(c for c in children[oid] if c in in_plan) for oid in to_set}
        # Children first; among equals, the ones deeper chains wait for (the highest wave above them).
        above = {oid: waves[oid] for oid in to_set}
        for oid in sorted(to_set, key=lambda o: -waves[o]):
            for child in after[oid]:
                above[child] = max(above[child], above[oid])
        to_set.sort(key=lambda oid: (waves[oid], -above[oid]))
    ordered = to_set + [oid for oid in ids if oid in reasons]
    label = "UserPrincipalName" if kind == USER else "Mail"
    rows: list[PlanRow] = []
    for oid in ordered:
        record = {str(k): v for k, v in frame.loc[oid].items()}
        reason, detail = reasons.get(oid, ("", ""))
        action: Action = "skip" if reason else "set"
        rows.append(PlanRow(
            identity=oid,
            display_name=str(normalise_value(record.get("DisplayName")) or ""),
            upn=str(normalise_value(record.get(label)) or ""),
            action=action, reason=reason, detail=str(detail or ""),
            observed=Observed.from_object(record),
            wave=waves.get(oid, 0) if (action == "set" and kind == GROUP) else None,
            after=after.get(oid, ()) if action == "set" else (),
        ))
    plan = Plan(tenant=tenant, bridge="graph", value=value, rows=rows,
                created_at=(now or datetime.now(UTC)).isoformat(), source=dict(source or {}),
                input_report=[dict(i) for i in input_report], object_kind=kind)
    return plan.finalise()
