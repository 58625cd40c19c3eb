"""Undo: a new plan, built from a journal (never from the plan), that sets verified rows back.

Only rows the journal records as `verified` are undone, each back to its `before` value.
Every such mailbox is read fresh: a row whose current IsExchangeCloudManaged is no longer
the journal's `after` is skipped as drifted (someone changed it since). Undoing a flip to
cloud-managed (true -> false) hands the Exchange attributes back to on-prem, and at the
next sync the on-prem values overwrite the cloud values with no merge (docs/exchange-facts.md#flipping-back-overwrites-cloud-values):
the undo plan lists, per mailbox, the cloud values that will be overwritten, compared
with on-prem data when given, else with the backup taken before the flip. An undo plan is
a plan like any other, so undo of an undo works the same way.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd

from ..bridge.base import Bridge, Record
from ..csvio import write_csv
from ..model import MAILBOX, ONPREM_COLUMNS, USER, WRITEBACK_ATTRIBUTES, Writeback, check_kind
from ..plan.planfile import DRIFTED, OBJECT_WRITEBACK, Observed, Plan, PlanRow
from ..values import as_bool, normalise_value
from .apply import ForeignTenant, MailboxIO, RowIO, read_mailboxes
from .journal import (
    JournalContents,
    JournalError,
    journals_for_plan,
    read_journal,
    require_header,
)

READ_GROUP: Final = 10
READ_WORKERS: Final = 4
#: Attributes the on-prem side is compared on (RecipientTypeDetails differs by design:
#: RemoteUserMailbox on-prem, UserMailbox in EXO; it is compared with the backup only).
_ONPREM_COMPARABLE: Final = tuple(a for a in WRITEBACK_ATTRIBUTES if a in ONPREM_COLUMNS and a != "RecipientTypeDetails")
OVERWRITTEN_COLUMNS: Final = (
    "Identity", "DisplayName", "UserPrincipalName", "Attribute", "CloudValue", "OnPremValue", "Basis",
)

log = logging.getLogger(__name__)


class UndoError(Exception):
    """An undo plan cannot be built; `str(exc)` is one line that says what to do."""


def _journals(journal_path: Path, all_runs: bool) -> tuple[dict[str, Any], list[JournalContents]]:
    first = read_journal(journal_path)
    header = require_header(first)
    digest = header.get("plan_digest")
    if not digest:
        raise UndoError(f"{journal_path} is not the journal of a plan apply (no plan digest): nothing to undo")
    if not all_runs:
        return header, [first]
    paths = journals_for_plan(str(digest), journal_path.parent)
    contents = [first if p.resolve() == journal_path.resolve() else read_journal(p) for p in paths]
    if not any(p.resolve() == journal_path.resolve() for p in paths):
        contents.append(first)
    return header, contents


def verified_rows(journals: Sequence[JournalContents]) -> dict[str, dict[str, Any]]:
    """First verified row record per identity across the journals (the only rows an undo touches)."""
    out: dict[str, dict[str, Any]] = {}
    for contents in journals:
        for record in contents.rows():
            if record.get("status") == "verified":
                out.setdefault(str(record["identity"]), record)
    return out


def read_many(bridge: Bridge, identities: Sequence[str], io: RowIO | None = None) -> dict[str, Record]:
    """Read rows in groups of READ_GROUP over a few threads (the bridge bounds concurrency)."""
    groups = [list(identities[i:i + READ_GROUP]) for i in range(0, len(identities), READ_GROUP)]
    out: dict[str, Record] = {}
    if not groups:
        return out
    read = io.read if io is not None else (lambda g: read_mailboxes(bridge, g))
    with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(groups)), thread_name_prefix="exocm-undo") as pool:
        for part in pool.map(read, groups):
            out.update(part)
    return out


def _onprem_lookup(onprem: pd.DataFrame | None) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    by_edoi: dict[str, dict[str, Any]] = {}
    by_upn: dict[str, dict[str, Any]] = {}
    if onprem is None or onprem.empty:
        return by_edoi, by_upn
    for raw in onprem.to_dict(orient="records"):
        record = {str(k): v for k, v in raw.items()}
        edoi = normalise_value(record.get("ExternalDirectoryObjectId"))
        upn = normalise_value(record.get("UserPrincipalName"))
        if isinstance(edoi, str):
            by_edoi.setdefault(edoi.lower(), record)
        if isinstance(upn, str):
            by_upn.setdefault(upn.lower(), record)
    return by_edoi, by_upn


def overwritten_values(
    current: Mapping[str, Any], backup: Mapping[str, Any] | None, onprem: Mapping[str, Any] | None,
    writeback: Writeback | None = None,
) -> dict[str, dict[str, Any]]:
    """Writeback attributes whose cloud value differs from what the next sync will write.

    Compared with the on-prem record when there is one (basis 'onprem': it already holds what
    writeback carried to AD), else with the backup the apply took before the flip (basis
    'backup': cloud edits made since the flip). Without on-prem data, `writeback` decides what
    counts: with Cloud Sync writeback configured, an edit of an attribute on its list reached AD
    and comes back unchanged, so only attributes outside the list are overwritten; without
    writeback (or unknown), every cloud edit since the flip is.
    """
    out: dict[str, dict[str, Any]] = {}
    for attr in WRITEBACK_ATTRIBUTES:
        if onprem is None and writeback is not None and writeback.reaches_ad(attr):
            continue
        cloud = normalise_value(current.get(attr))
        if onprem is not None and attr in _ONPREM_COMPARABLE and attr in onprem:
            other, basis = normalise_value(onprem.get(attr)), "onprem"
        elif backup is not None:
            other, basis = normalise_value(backup.get(attr)), "backup"
        else:
            continue
        if cloud != other:
            out[attr] = {"cloud": cloud, "onprem": other, "basis": basis}
    return out


def object_overwritten_values(current: Mapping[str, Any], backup: Mapping[str, Any] | None,
                              onprem: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Object attributes (OBJECT_WRITEBACK) whose cloud value differs from what AD will write back.

    Compared with the on-prem values when given (basis 'onprem'), else with the backup the apply
    took before the conversion (basis 'backup': cloud edits made since, which AD overwrites).
    """
    out: dict[str, dict[str, Any]] = {}
    for attr in OBJECT_WRITEBACK:
        cloud = normalise_value(current.get(attr))
        if onprem is not None and attr in onprem:
            other, basis = normalise_value(onprem.get(attr)), "onprem"
        elif backup is not None and attr in backup:
            other, basis = normalise_value(backup.get(attr)), "backup"
        else:
            continue
        if cloud != other:
            out[attr] = {"cloud": cloud, "onprem": other, "basis": basis}
    return out


def journal_object_kind(header: Mapping[str, Any]) -> str:
    """The object kind a journal's rows are (journals written before object kinds are mailbox journals)."""
    try:
        return check_kind(str(header.get("object_kind") or MAILBOX))
    except ValueError as exc:
        raise UndoError(str(exc)) from None


def overwritten_by_sync(
    plan: Plan, frame: pd.DataFrame | None = None, onprem: pd.DataFrame | None = None
) -> list[tuple[PlanRow, dict[str, dict[str, Any]]]]:
    """For a plan that sets IsExchangeCloudManaged to False: per set row, the cloud values the next
    sync overwrites (attribute -> {"cloud", "onprem", "basis"}); empty for a plan that enables.

    Undo plans carry them per row (`overwritten`). For a plain disable plan they come from
    `overwritten_values` over the inventory's cloud values (`frame`, indexed by
    ExternalDirectoryObjectId) and the on-prem record; without on-prem data every non-empty cloud
    writeback value is listed, since any of them may be overwritten.
    """
    if plan.value is not False:
        return []
    set_rows = plan.set_rows()
    if plan.kind == "undo" or any(row.overwritten is not None for row in set_rows):
        return [(row, dict(row.overwritten or {})) for row in set_rows]
    if frame is None:
        return []
    by_edoi, by_upn = _onprem_lookup(onprem)
    out: list[tuple[PlanRow, dict[str, dict[str, Any]]]] = []
    for row in set_rows:
        if row.identity not in frame.index:
            continue
        cloud = {str(k): v for k, v in frame.loc[row.identity].items()}
        other = by_edoi.get(row.identity.lower()) or (by_upn.get(row.upn.lower()) if row.upn else None)
        if other is not None:
            out.append((row, overwritten_values(cloud, None, other)))
        else:
            out.append((row, {a: {"cloud": cloud.get(a), "onprem": None, "basis": "cloud value (no on-prem data)"}
                              for a in _ONPREM_COMPARABLE
                              if normalise_value(cloud.get(a), fold_case=True) is not None}))
    return out


def build_undo_plan(
    bridge: Bridge,
    journal_path: Path | str,
    *,
    all_runs: bool = True,
    onprem: pd.DataFrame | None = None,
    now: datetime | None = None,
    io: RowIO | None = None,
    writeback: Writeback | None = None,
) -> Plan:
    """An undo plan from a journal: verified rows back to `before`; drifted rows skipped.

    `all_runs` (default) undoes every verified row of the journal's plan across all its
    runs found next to the journal (a resumed apply is one change); False undoes only the
    given run. `onprem` (the on-prem frame, see core.onprem) sharpens the overwritten values;
    `writeback` (read from Graph by the caller) says which cloud edits already reached AD.
    """
    path = Path(journal_path)
    header, journals = _journals(path, all_runs)
    tenant = str(header.get("tenant") or "")
    if tenant.lower() != str(bridge.tenant).lower():
        raise ForeignTenant(f"the journal is of tenant {tenant}, but this connection is to {bridge.tenant}")
    applied_value = header.get("value")
    if not isinstance(applied_value, bool):
        raise UndoError(f"{path} does not say which value was applied: it is not a flip journal")
    undo_value = not applied_value
    object_kind = journal_object_kind(header)
    graph = object_kind != MAILBOX
    io = io or MailboxIO(bridge)
    noun, state = (object_kind, "isCloudManaged") if graph else ("mailbox", "IsExchangeCloudManaged")
    verified = verified_rows(journals)
    identities = list(verified)
    current = read_many(bridge, identities, io)
    by_edoi, by_upn = _onprem_lookup(onprem)
    rows: list[PlanRow] = []
    for identity in identities:
        record = verified[identity]
        after = record.get("after")
        before = record.get("before")
        fresh = current.get(identity)
        name = str(record.get("display_name") or "")
        upn = str(record.get("upn") or "")
        if fresh is None:
            rows.append(PlanRow(identity, name, upn, "skip", DRIFTED, Observed(None, None, "", graph),
                                detail=f"{noun} not found any more"))
            continue
        seen = io.observe(fresh)
        name = str(normalise_value(fresh.get("DisplayName")) or name)
        label = "UserPrincipalName" if (not graph or object_kind == USER) else "Mail"
        upn = str(normalise_value(fresh.get(label)) or upn)
        if seen.is_cloud_managed != as_bool(after):
            rows.append(PlanRow(identity, name, upn, "skip", DRIFTED, seen,
                                detail=f"{state} is now {seen.is_cloud_managed}; "
                                       f"the journal left it {after}"))
            continue
        if as_bool(before) != undo_value:
            rows.append(PlanRow(identity, name, upn, "skip", "no_before_value", seen,
                                detail=f"the journal's before value is {before!r}"))
            continue
        overwritten = None
        if applied_value and not undo_value:
            other = by_edoi.get(identity.lower()) or (by_upn.get(upn.lower()) if upn else None)
            if graph:
                overwritten = object_overwritten_values(fresh, record.get("backup"), other)
            else:
                overwritten = overwritten_values(fresh, record.get("backup"), other, writeback)
        rows.append(PlanRow(identity, name, upn, "set", "", seen, overwritten=overwritten))
    plan = Plan(
        tenant=tenant,
        bridge=str(getattr(bridge, "kind", "rest")),
        value=undo_value,
        rows=rows,
        created_at=(now or datetime.now(UTC)).isoformat(),
        kind="undo",
        object_kind=object_kind,
        source={
            "kind": "undo",
            "plan_digest": header.get("plan_digest"),
            "journals": [c.path.name for c in journals],
            "run_ids": [c.header.get("run_id") for c in journals if c.header],
            "overwritten_basis": "onprem" if onprem is not None else "backup",
            "writeback": writeback.label if writeback is not None else "unknown",
            "writeback_source": writeback.source if writeback is not None else "not read",
        },
    )
    plan = plan.finalise()
    log.info("undo plan %s built from %d journal(s) of plan %s: %d to set back, %d skipped", plan.digest[:12],
             len(journals), str(header.get("plan_digest") or "?")[:12], len(plan.set_rows()),
             len(plan.rows) - len(plan.set_rows()))
    return plan


def overwritten_frame(
    plan: Plan, frame: pd.DataFrame | None = None, onprem: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per (mailbox, attribute) the next sync overwrites (`overwritten_by_sync`), OVERWRITTEN_COLUMNS."""
    rows = [
        {
            "Identity": row.identity, "DisplayName": row.display_name, "UserPrincipalName": row.upn,
            "Attribute": attr, "CloudValue": values.get("cloud"), "OnPremValue": values.get("onprem"),
            "Basis": values.get("basis"),
        }
        for row, found in overwritten_by_sync(plan, frame, onprem)
        for attr, values in sorted(found.items())
    ]
    return pd.DataFrame(rows, columns=list(OVERWRITTEN_COLUMNS))


def export_overwritten(
    plan: Plan, path: Path | str, frame: pd.DataFrame | None = None, onprem: pd.DataFrame | None = None
) -> Path:
    """Save the cloud values the next sync overwrites as CSV for Excel (atomic, formula-escaped).

    An undo plan carries them; a plain disable plan needs the inventory `frame` (and `onprem`)."""
    if plan.value is not False:
        raise UndoError("only a plan that disables cloud management overwrites cloud values")
    return write_csv(overwritten_frame(plan, frame, onprem), path, columns=list(OVERWRITTEN_COLUMNS))


__all__ = [
    "JournalError",
    "UndoError",
    "build_undo_plan",
    "journal_object_kind",
    "object_overwritten_values",
    "export_overwritten",
    "overwritten_by_sync",
    "overwritten_frame",
    "overwritten_values",
    "verified_rows",
]
