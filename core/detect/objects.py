"""Findings before an object-level SOA change (groups, contacts, users through Graph).

Each finding is a code with a severity, a one-line explanation, evidence and the flip
directions it blocks (`isCloudManaged` target); `object_readiness` turns them into the
`ready` / `blocked` / `already` outcome plans use as skip reasons. Facts behind each code:
docs/exchange-facts.md "Object-level SOA through Graph" (Microsoft: "Convert Group Source of
Authority to the cloud"): nested groups are converted children first; extensionAttribute1-15
are not supported on a converted group; dynamic groups and cloud groups have no on-prem SOA to
change; after conversion AD edits stop flowing, and handing a group back lets AD overwrite it
(members AD does not know are dropped); group-based licensing keeps working but its membership
is then edited in the cloud.

The findings frame has detection's columns (engine.FINDING_COLUMNS); `UserPrincipalName` holds
the object's UPN (users), mail address or display name, so every face can show it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pandas as pd

from ..model import GROUP, USER, check_kind
from .engine import DEFAULT_SYNC_INTERVAL, FINDING_COLUMNS, SETTLE_TIME, SEVERITY_RANK, empty_findings


@dataclass(frozen=True)
class ObjectRule:
    """One object finding: code, severity, kinds it applies to, directions it blocks, summary."""

    code: str
    severity: str
    kinds: frozenset[str]
    blocks: frozenset[bool]
    summary: str
    action: str


_ALL: Final = frozenset({"group", "contact", "user"})
_GROUPS: Final = frozenset({GROUP})
TO_CLOUD: Final = frozenset({True})
TO_ONPREM: Final = frozenset({False})
BOTH: Final = frozenset({True, False})

#: Object rules, in the order findings are listed.
OBJECT_RULES: Final[dict[str, ObjectRule]] = {r.code: r for r in (
    ObjectRule("GROUP_NESTING_CYCLE", "high", _GROUPS, BOTH,
               "The group is nested in itself (directly or through other groups): no children-first order "
               "exists", "fix-nesting-in-ad"),
    ObjectRule("GROUP_UNSUPPORTED", "high", _GROUPS, BOTH,
               "Dynamic group, or a Microsoft 365 group not written back to AD: it has no on-prem source of "
               "authority to change", "skip"),
    ObjectRule("GROUP_CHILD_NOT_CONVERTED", "high", _GROUPS, TO_CLOUD,
               "A synced member group is still managed by AD: convert the children first", "convert-children-first"),
    ObjectRule("GROUP_EXTENSION_ATTRIBUTES", "high", _GROUPS, TO_CLOUD,
               "Uses extensionAttribute1-15, which a converted group does not support", "clear-extension-attributes"),
    ObjectRule("OBJECT_RECENT_ONPREM_EDIT", "medium", _ALL, TO_CLOUD,
               "Edited on-prem within one sync cycle + 24 h: converting now may lose that edit", "wait-for-sync"),
    ObjectRule("GROUP_CLOUD_ONLY_MEMBERS", "medium", _GROUPS, TO_ONPREM,
               "Has members or owners AD does not know: handing the group back to AD drops them", "review-members"),
    ObjectRule("GROUP_LICENSING", "low", _GROUPS, frozenset(),
               "Assigns licenses (group-based licensing): after conversion its membership is edited in the cloud",
               "review-licensing"),
    ObjectRule("OBJECT_ALREADY_CLOUD_MANAGED", "info", _ALL, frozenset(),
               "Already cloud-managed (isCloudManaged is true)", "already_in_target_state"),
    ObjectRule("OBJECT_NOT_SYNCED", "info", _ALL, BOTH,
               "Not synced from AD (cloud-only): its source of authority is already the cloud", "not_dirsynced"),
)}


def codes_for(kind: str) -> list[str]:
    """The object finding codes that apply to a kind, in listing order."""
    kind = check_kind(kind, allow_mailbox=False)
    return [code for code, r in OBJECT_RULES.items() if kind in r.kinds]


def _bool(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame[column].map(lambda v: v is True or (isinstance(v, str) and v.lower() == "true")).astype(bool)


def nesting_cycles(children: Mapping[str, Iterable[str]]) -> set[str]:
    """Ids on a cycle of the member-group graph (strongly connected components of more than one
    group, or a group that contains itself); iterative Tarjan, so deep nesting needs no recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: set[str] = set()
    counter = 0
    for root in children:
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work: list[tuple[str, list[str]]] = [(root, sorted(children.get(root, ())))]
        while work:
            node, todo = work[-1]
            if todo:
                child = todo.pop()
                if child not in children:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(children.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    component.append(x)
                    if x == node:
                        break
                if len(component) > 1 or node in set(children.get(node, ())):
                    out.update(component)
    return out


def nesting_waves(ids: Iterable[str], children: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Apply wave of each id: 0 for a group with no child among `ids`, else 1 + its deepest child's.

    Children come before parents (convert the leaves first). Ids on a cycle get no wave (they are
    left out): a cycle is a finding (GROUP_NESTING_CYCLE), never a hang.
    """
    wanted = set(ids)
    cyclic = nesting_cycles({i: [c for c in children.get(i, ()) if c in wanted] for i in wanted})
    waves: dict[str, int] = {}
    for start in sorted(wanted - cyclic):
        if start in waves:
            continue
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            node, expanded = stack.pop()
            if node in waves:
                continue
            kids = [c for c in children.get(node, ()) if c in wanted and c not in cyclic]
            if expanded:
                waves[node] = 1 + max((waves[k] for k in kids), default=-1)
                continue
            stack.append((node, True))
            stack.extend((k, False) for k in kids if k not in waves)
    return waves


def detect_objects(kind: str, frame: pd.DataFrame, *, now: datetime | None = None,
                   sync_interval: timedelta = DEFAULT_SYNC_INTERVAL,
                   onprem_when_changed: Mapping[str, datetime] | None = None) -> pd.DataFrame:
    """Findings for every object of `kind` in its inventory frame (see the module docstring).

    A recent on-prem edit is judged from the on-prem whenChanged (object id -> time) when given;
    without on-prem data OBJECT_RECENT_ONPREM_EDIT cannot fire.
    """
    kind = check_kind(kind, allow_mailbox=False)
    if not len(frame):
        return empty_findings()
    now = now or datetime.now(UTC)
    ids = frame.index.astype(str)
    synced = _bool(frame, "OnPremisesSyncEnabled")
    cloud = _bool(frame, "IsCloudManaged")
    label = _labels(kind, frame)
    out: list[dict[str, Any]] = []

    def hit(code: str, oid: str, explanation: str, evidence: dict[str, Any]) -> None:
        rule = OBJECT_RULES[code]
        out.append({"code": code, "severity": rule.severity, "ExternalDirectoryObjectId": oid,
                    "UserPrincipalName": label.get(oid, ""), "explanation": explanation, "evidence": evidence,
                    "action": rule.action})

    cutoff = now - (sync_interval + SETTLE_TIME)
    for oid, is_synced, is_cloud in zip(ids, synced.tolist(), cloud.tolist(), strict=True):
        if not is_synced:
            hit("OBJECT_NOT_SYNCED", oid, "Not synced from AD (onPremisesSyncEnabled is not true)",
                {"onPremisesSyncEnabled": frame.at[oid, "OnPremisesSyncEnabled"]})
            continue
        if is_cloud:
            hit("OBJECT_ALREADY_CLOUD_MANAGED", oid, "isCloudManaged is already true", {"isCloudManaged": True})
        # Graph's onPremisesLastSyncDateTime moves at every sync cycle, not only after an AD edit,
        # so only the on-prem whenChanged can tell a recent edit (as for mailboxes: needs on-prem data).
        when = (onprem_when_changed or {}).get(oid)
        basis = "whenChanged"
        if when is not None and when >= cutoff:
            safe = when + sync_interval + SETTLE_TIME
            hit("OBJECT_RECENT_ONPREM_EDIT", oid,
                f"Changed on-prem at {when:%Y-%m-%d %H:%M} UTC ({basis}); convert after {safe:%Y-%m-%d %H:%M} UTC "
                "(one sync cycle + 24 h)", {basis: when.isoformat()})
    if kind == GROUP:
        _group_findings(frame, ids, synced, cloud, hit)
    findings = pd.DataFrame(out, columns=list(FINDING_COLUMNS))
    findings["rank"] = findings["severity"].map(SEVERITY_RANK)
    order = {c: i for i, c in enumerate(OBJECT_RULES)}
    findings["order"] = findings["code"].map(order)
    findings = findings.sort_values(["rank", "order", "ExternalDirectoryObjectId"], kind="stable")
    return findings.drop(columns=["rank", "order"]).reset_index(drop=True)


def _labels(kind: str, frame: pd.DataFrame) -> dict[str, str]:
    column = "UserPrincipalName" if kind == USER and "UserPrincipalName" in frame.columns else "Mail"
    out: dict[str, str] = {}
    for oid, primary, name in zip(frame.index.astype(str), frame[column].tolist(), frame["DisplayName"].tolist(),
                                  strict=True):
        out[oid] = str(primary or name or "")
    return out


def _group_findings(frame: pd.DataFrame, ids: pd.Index, synced: pd.Series, cloud: pd.Series,
                    hit: Callable[[str, str, str, dict[str, Any]], None]) -> None:
    children = {oid: tuple(kids) for oid, kids in zip(ids, frame["ChildGroups"].tolist(), strict=True)}
    synced_of = dict(zip(ids, synced.tolist(), strict=True))
    cloud_of = dict(zip(ids, cloud.tolist(), strict=True))
    for oid in sorted(nesting_cycles(children)):
        hit("GROUP_NESTING_CYCLE", oid, "Nested in itself through its member groups; convert it by hand",
            {"ChildGroups": list(children.get(oid, ()))})
    for oid, gtype, written_back in zip(ids, frame["GroupType"].tolist(), frame["WrittenBack"].tolist(), strict=True):
        if gtype == "Dynamic" or (gtype == "Microsoft365" and not written_back):
            why = "a dynamic group" if gtype == "Dynamic" else "a Microsoft 365 group not written back to AD"
            hit("GROUP_UNSUPPORTED", oid, f"Cannot change its source of authority: {why}", {"GroupType": gtype})
    rows = zip(ids, frame["CloudOnlyMembers"].tolist(), frame["ExtensionAttributes"].tolist(),
               frame["LicenseCount"].tolist(), strict=True)
    for oid, cloud_only, extension, licenses in rows:
        if not synced_of[oid]:
            continue
        if not cloud_of[oid]:
            pending = [c for c in children.get(oid, ()) if synced_of.get(c) and not cloud_of.get(c)]
            if pending:
                hit("GROUP_CHILD_NOT_CONVERTED", oid,
                    f"{len(pending)} synced member group(s) still managed by AD: convert them first",
                    {"children_not_converted": pending})
        if cloud_only:
            hit("GROUP_CLOUD_ONLY_MEMBERS", oid,
                f"{int(cloud_only)} member(s)/owner(s) not synced from AD: handing the group back to AD drops them",
                {"cloud_only_members": int(cloud_only)})
        if extension:
            hit("GROUP_EXTENSION_ATTRIBUTES", oid,
                "Uses " + ", ".join(e.split("=", 1)[0] for e in extension) + " (not supported after conversion)",
                {"extensionAttributes": list(extension)})
        if licenses:
            hit("GROUP_LICENSING", oid,
                f"Assigns {int(licenses)} license(s): after conversion, edit its membership in the cloud",
                {"assignedLicenses": int(licenses)})


def object_readiness(frame: pd.DataFrame, findings: pd.DataFrame, target: bool, *,
                     planned: Iterable[str] = ()) -> pd.DataFrame:
    """Readiness of every object for `isCloudManaged = target`: status ready/blocked/already and reasons.

    A parent whose unconverted children are all `planned` (set in the same plan) is not blocked by
    GROUP_CHILD_NOT_CONVERTED: the apply converts them first.
    """
    planned_ids = set(planned)
    synced = _bool(frame, "OnPremisesSyncEnabled")
    cloud = _bool(frame, "IsCloudManaged")
    reasons: dict[str, list[str]] = {}
    for code, oid, evidence in zip(findings["code"].tolist(), findings["ExternalDirectoryObjectId"].tolist(),
                                   findings["evidence"].tolist(), strict=True):
        rule = OBJECT_RULES.get(code)
        if rule is None or target not in rule.blocks:
            continue
        if code == "GROUP_CHILD_NOT_CONVERTED" and isinstance(evidence, Mapping):
            pending = evidence.get("children_not_converted") or []
            if all(str(c) in planned_ids for c in pending):
                continue
        reasons.setdefault(str(oid), []).append(code)
    status: list[str] = []
    reason_values: list[tuple[str, ...]] = []
    for oid, is_synced, is_cloud in zip(frame.index.astype(str), synced.tolist(), cloud.tolist(), strict=True):
        codes = tuple(sorted(set(reasons.get(oid, [])), key=lambda c: list(OBJECT_RULES).index(c)))
        if is_synced and is_cloud == target:
            status.append("already")
            reason_values.append(("OBJECT_ALREADY_CLOUD_MANAGED",) if target else ("OBJECT_NOT_CLOUD_MANAGED",))
        elif codes:
            status.append("blocked")
            reason_values.append(codes)
        else:
            status.append("ready")
            reason_values.append(())
    out = pd.DataFrame({"status": status, "reasons": reason_values}, index=frame.index)
    out.index.name = "ExternalDirectoryObjectId"
    return out


def planted_shape(kind: str, findings: pd.DataFrame) -> dict[str, list[str]]:
    """Findings as {code: sorted ids} over every code of the kind (the shape `sandbox planted` prints)."""
    out: dict[str, list[str]] = {code: [] for code in codes_for(kind)}
    for code, oid in zip(findings["code"].tolist(), findings["ExternalDirectoryObjectId"].tolist(), strict=True):
        out.setdefault(code, []).append(str(oid))
    return {code: sorted(set(ids)) for code, ids in out.items()}
