"""From a selection to a plan, the one way both faces do it.

selection (a CSV, a filter, every dir-synced mailbox, or identities picked by hand)
-> exclusions (an exclude file: kept as skipped rows) -> recipient types -> skip reasons
(the inventory, and flip readiness when detection has run) -> the plan, with a source that says
where its targets and its inventory came from. `exocm plan` and the TUI's preview both call
`select_targets` and `plan_from_selection`, so the same selection on the same inventory gives
the same plan file, byte for byte.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .planfile import Plan, build_plan
from .selection import (
    Selection,
    apply_exclude,
    apply_types,
    select_all_dirsynced,
    select_from_csv,
    select_identities,
    select_where,
)


def utc_now() -> datetime:
    """The wall clock a face reads when it has no clock of its own (tests replace it)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class SelectionRequest:
    """Which mailboxes a plan targets: exactly one source, then optional exclusions and types.

    Sources: `csv` (with `identity_column`, else found by name), `where` (a filter expression),
    `all_dirsynced`, or `identities` (ExternalDirectoryObjectIds picked by hand, in order).
    """

    csv: Path | None = None
    identity_column: str | None = None
    where: str | None = None
    all_dirsynced: bool = False
    identities: tuple[str, ...] | None = None
    exclude: Path | None = None
    types: tuple[str, ...] = ()

    def sources(self) -> int:
        """How many sources the request names (a valid request names exactly one)."""
        return sum([self.csv is not None, self.where is not None, self.all_dirsynced,
                    self.identities is not None])


def select_targets(frame: pd.DataFrame, request: SelectionRequest) -> Selection:
    """The selection a request names over the inventory frame; raises SelectionError (one line)."""
    if request.sources() != 1:
        raise ValueError("a selection request names exactly one source")
    if request.csv is not None:
        selection = select_from_csv(frame, request.csv, request.identity_column)
    elif request.where is not None:
        selection = select_where(frame, request.where)
    elif request.all_dirsynced:
        selection = select_all_dirsynced(frame)
    else:
        selection = select_identities(frame, request.identities or ())
    if request.exclude is not None:
        apply_exclude(selection, frame, request.exclude)
    if request.types:
        apply_types(selection, frame, list(request.types))
    return selection


def plan_from_selection(
    frame: pd.DataFrame,
    selection: Selection,
    target: bool,
    *,
    tenant: str,
    bridge: str,
    inventory_fetched_at: datetime,
    sandbox: bool,
    readiness: pd.DataFrame | None = None,
    max_changes: int | None = None,
    extra_source: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Plan:
    """The plan that sets IsExchangeCloudManaged to `target` for a selection (core.plan decides skips).

    The plan's source records the selection, when the inventory was read, whether it is a
    sandbox, and `extra_source` (e.g. the embedded sandbox's size and seed); `now` is its
    creation time (default `utc_now()`).
    """
    source = {**selection.source, "inventory_fetched_at": inventory_fetched_at.isoformat(),
              "sandbox": bool(sandbox), **dict(extra_source or {})}
    return build_plan(
        frame, selection.identities, target, tenant=tenant, bridge=bridge,
        preset_skips=selection.preset_skips, readiness=readiness, max_changes=max_changes,
        source=source, input_report=[issue.to_json() for issue in selection.issues],
        now=now or utc_now(),
    )


def default_plan_path(plan: Plan, data_dir: Path, *, now: datetime | None = None) -> Path:
    """Where a plan is saved unless told otherwise: <data dir>/plans/<kind>-<time>-<digest>.json,
    where kind is `undo` for an undo plan and `plan` otherwise."""
    stamp = (now or utc_now()).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = "undo" if plan.kind == "undo" else "plan"
    return data_dir / "plans" / f"{prefix}-{stamp}-{plan.short_digest}.json"
