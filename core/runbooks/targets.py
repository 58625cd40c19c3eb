"""Who a run works on: identities given, a CSV, or the objects of a finding code; and a new run's state.

Every identity is resolved through EXO `Get-User -Identity` to the immutable
ExternalDirectoryObjectId (the run's key); names that match nothing or several objects are
reported, never guessed.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bridge.base import Bridge
from ..bridge.errors import Ambiguous, NotFound
from ..execute.journal import local_actor
from .engine import Runbook
from .state import ObjectState, RunState, RunStore, utc_iso

if TYPE_CHECKING:
    from ..events import ProgressCallback


@dataclass
class Targets:
    """Resolved objects (in input order, no duplicates) and the inputs that named nothing usable."""

    objects: list[ObjectState] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


def resolve_identities(exo: Bridge, values: Iterable[tuple[str, str]], *, source: Mapping[str, Any]) -> Targets:
    """Resolve (where, identity) pairs through EXO Get-User; duplicates and misses become issues."""
    out = Targets(source=dict(source))
    seen: set[str] = set()
    for where, raw in values:
        value = (raw or "").strip()
        if not value:
            out.issues.append(f"{where}: empty identity")
            continue
        try:
            records = exo.invoke("Get-User", {"Identity": value})
        except NotFound:
            out.issues.append(f"{where}: {value!r} matches no user in Exchange Online")
            continue
        except Ambiguous:
            out.issues.append(f"{where}: {value!r} matches several objects; use the ExternalDirectoryObjectId")
            continue
        if len(records) != 1:
            out.issues.append(f"{where}: {value!r} matches {len(records)} objects; use the ExternalDirectoryObjectId")
            continue
        record = records[0]
        key = str(record.get("ExternalDirectoryObjectId") or "").lower()
        if not key:
            out.issues.append(f"{where}: {value!r} has no ExternalDirectoryObjectId (not synced to Entra?)")
            continue
        if key in seen:
            out.issues.append(f"{where}: {value!r} names an object already listed")
            continue
        seen.add(key)
        out.objects.append(ObjectState(key=key, identity=value, upn=str(record.get("UserPrincipalName") or ""),
                                       display_name=str(record.get("DisplayName") or "")))
    return out


def identities_from_csv(path: Path | str, identity_column: str | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """(where, identity) pairs from a CSV or a one-per-line list (any Export-Csv format), and unreadable rows."""
    from ..plan.selection import read_identity_file

    values, issues, _column = read_identity_file(path, identity_column)
    name = Path(path).name
    return [(f"{name} line {line}", value) for line, value in values], [i.message() for i in issues]


def identities_from_findings(exo: Bridge, onprem: Bridge | None, code: str, *,
                             progress: ProgressCallback | None = None) -> list[tuple[str, str]]:
    """The ExternalDirectoryObjectIds with a finding of `code` (fresh EXO inventory, live on-prem when given)."""
    from ..detect.engine import RULES, detect
    from ..inventory.fetch import fetch_inventory

    code = code.strip().upper()
    if code not in RULES:
        raise KeyError(f"unknown finding code {code!r}; known: {', '.join(RULES)}")
    inventory = fetch_inventory(exo, progress=progress)
    onprem_frame = None
    if RULES[code].needs_onprem:
        if onprem is None:
            from ..access.config import ConfigError

            raise ConfigError(f"finding {code} needs the on-prem side: configure the on-prem endpoint "
                              "(extra.onprem_url or --onprem-host)")
        from ..inventory.onprem_live import load_onprem_live

        onprem_frame = load_onprem_live(onprem).frame  # type: ignore[arg-type]
    result = detect(inventory.frame, onprem_frame, codes=[code])
    ids = result.findings.loc[result.findings["code"] == code, "ExternalDirectoryObjectId"]
    return [(f"finding {code}", str(v)) for v in ids.tolist() if str(v)]


def new_run(runbook: Runbook, targets: Targets, *, store: RunStore, tenant: str, label: str,
            profile: str | None, sandbox: bool, embedded: bool, options: Mapping[str, Any] | None = None,
            actor: str | None = None, now: float | None = None) -> RunState:
    """Create and save the state of a new run (every object at the first step)."""
    when = time.time() if now is None else now
    first = runbook.steps[0].id
    objects: dict[str, ObjectState] = {}
    for obj in targets.objects:
        obj.step = first
        objects[obj.key] = obj
    state = RunState(
        run_id=store.new_run_id(), runbook=runbook.name, runbook_version=runbook.version,
        steps=[s.id for s in runbook.steps], tenant=tenant, label=label, profile=profile, sandbox=sandbox,
        embedded=embedded, actor=actor or local_actor(), created_at=utc_iso(when), updated_at=utc_iso(when),
        source=dict(targets.source), options=dict(options or {}), objects=objects, issues=list(targets.issues),
    )
    store.save(state, now=when)
    return state


def describe_targets(targets: Sequence[ObjectState]) -> str:
    """'3 objects: a@x, b@x, c@x' (at most five named)."""
    names = [o.label for o in targets]
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"{len(names)} object(s): {', '.join(names[:5])}{more}"
