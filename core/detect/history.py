"""Findings history and drift: every findings run of a tenant is kept, and two runs are compared.

A run is one gzip JSON file, ``<data dir>/history/<tenant>/<run id>.json.gz``::

    {"run_id", "at", "tenant", "profile", "counts": {code: n}, "findings": [finding records],
     "state": {"cloud_managed": {EDOI: true|false|null}, "tenant_default": true|false|null}}

The state is what drift needs beyond the findings: each mailbox's IsExchangeCloudManaged (so a flip
made outside exocm, or one that an admin reverted, shows) and the tenant default
ExchangeAttributesCloudManagedByDefault (docs/exchange-facts.md). Retention: `[history]` in
config.toml, ``keep_runs`` (default 50) and ``keep_days`` (default 90); the oldest runs beyond
either are deleted after each save, never the newest run.

`diff_runs(old, new)` says what changed: findings new, resolved and changed (same code and mailbox,
other severity or evidence), mailboxes whose IsExchangeCloudManaged changed, and the tenant default.
"""
from __future__ import annotations

import gzip
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from ..access.config import ConfigError, config_path, data_dir
from ..files import write_atomic
from .engine import SEVERITY_RANK
from .html_shell import e, html_document
from .report import findings_records

#: Retention defaults (overridden by `[history] keep_runs / keep_days` in config.toml).
KEEP_RUNS = 50
KEEP_DAYS = 90
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Run:
    """One stored findings run."""

    run_id: str
    at: datetime
    tenant: str
    profile: str
    counts: dict[str, int]
    findings: list[dict[str, Any]]
    state: dict[str, Any]
    path: Path | None = None


@dataclass
class Drift:
    """What changed between two runs of one tenant."""

    since: Run
    now: Run
    new: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    flips: list[dict[str, Any]] = field(default_factory=list)
    tenant_default: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        """True when nothing changed."""
        return not (self.new or self.resolved or self.changed or self.flips or self.tenant_default)

    def new_at_or_above(self, severity: str) -> bool:
        """True when a new (or newly worse) finding is at `severity` or worse."""
        limit = SEVERITY_RANK[severity.lower()]
        rows = self.new + [c["now"] for c in self.changed
                           if SEVERITY_RANK.get(str(c["now"].get("severity")), 9)
                           < SEVERITY_RANK.get(str(c["before"].get("severity")), 9)]
        return any(SEVERITY_RANK.get(str(r.get("severity")), 9) <= limit for r in rows)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: the two runs' ids and times, then each list."""
        return {
            "since": {"run_id": self.since.run_id, "at": self.since.at.isoformat()},
            "now": {"run_id": self.now.run_id, "at": self.now.at.isoformat()},
            "counts": {"new": len(self.new), "resolved": len(self.resolved), "changed": len(self.changed),
                       "cloud_managed_changed": len(self.flips),
                       "tenant_default_changed": self.tenant_default is not None},
            "new": self.new, "resolved": self.resolved, "changed": self.changed,
            "cloud_managed_changed": self.flips, "tenant_default": self.tenant_default,
        }


def history_dir(tenant: str, root: Path | None = None) -> Path:
    """Where the runs of `tenant` are kept."""
    return (root or data_dir()) / "history" / (_SAFE.sub("_", tenant.lower()) or "tenant")


def retention() -> tuple[int, int]:
    """(keep_runs, keep_days) from `[history]` in config.toml, else the defaults."""
    path = config_path()
    if not path.exists():
        return KEEP_RUNS, KEEP_DAYS
    import tomllib

    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("history", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    runs, days = table.get("keep_runs", KEEP_RUNS), table.get("keep_days", KEEP_DAYS)
    if not isinstance(runs, int) or not isinstance(days, int) or runs < 1 or days < 1:
        raise ConfigError(f"{path}: [history] keep_runs and keep_days must be whole numbers >= 1")
    return runs, days


def run_state(inventory: pd.DataFrame, org_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The state drift compares: IsExchangeCloudManaged per EXO id, and the tenant default."""
    cloud: dict[str, Any] = {}
    if "ExternalDirectoryObjectId" in inventory.columns and "IsExchangeCloudManaged" in inventory.columns:
        ids = inventory["ExternalDirectoryObjectId"].astype("object").tolist()
        values = inventory["IsExchangeCloudManaged"].astype("object").tolist()
        for edoi, value in zip(ids, values, strict=True):
            if isinstance(edoi, str) and edoi:
                cloud[edoi] = None if value is None or bool(pd.isna(value)) else bool(value)
    default = None
    if org_config:
        raw = org_config.get("ExchangeAttributesCloudManagedByDefault")
        default = raw if isinstance(raw, bool) or raw is None else str(raw).lower() == "true"
    return {"cloud_managed": cloud, "tenant_default": default}


def save_run(tenant: str, profile: str, findings: pd.DataFrame, state: Mapping[str, Any], *,
             root: Path | None = None, now: datetime | None = None) -> Run:
    """Keep this findings run (gzip JSON) and prune old runs; returns the stored run."""
    at = now or datetime.now(UTC)
    run_id = f"{at:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"
    records = findings_records(findings) if len(findings) else []
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r["code"])] = counts.get(str(r["code"]), 0) + 1
    doc = {"run_id": run_id, "at": at.isoformat(), "tenant": tenant, "profile": profile, "counts": counts,
           "findings": records, "state": dict(state)}
    directory = history_dir(tenant, root)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run_id}.json.gz"
    write_atomic(path, gzip.compress(json.dumps(doc, default=str).encode("utf-8"), compresslevel=6))
    prune(tenant, root=root, now=at)
    return Run(run_id, at, tenant, profile, counts, records, dict(state), path)


def _load(path: Path) -> Run:
    doc = json.loads(gzip.decompress(path.read_bytes()))
    return Run(str(doc["run_id"]), datetime.fromisoformat(doc["at"]), str(doc["tenant"]), str(doc.get("profile", "")),
               dict(doc.get("counts", {})), list(doc.get("findings", [])), dict(doc.get("state", {})), path)


def list_runs(tenant: str, *, root: Path | None = None) -> list[Path]:
    """The stored runs of `tenant`, oldest first (run ids sort by time)."""
    directory = history_dir(tenant, root)
    return sorted(directory.glob("*.json.gz")) if directory.is_dir() else []


def prune(tenant: str, *, root: Path | None = None, now: datetime | None = None) -> int:
    """Delete runs beyond the retention (keep_runs newest, none older than keep_days; never the newest)."""
    keep_runs, keep_days = retention()
    paths = list_runs(tenant, root=root)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    doomed = paths[:-keep_runs] if len(paths) > keep_runs else []
    for path in paths[len(doomed):-1]:
        if _stamp(path) is not None and _stamp(path) < cutoff:  # type: ignore[operator]
            doomed.append(path)
    for path in doomed:
        path.unlink(missing_ok=True)
    return len(doomed)


def _stamp(path: Path) -> datetime | None:
    try:
        return datetime.strptime(path.name.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def find_run(tenant: str, since: str, *, before: Run | None = None, root: Path | None = None) -> Run | None:
    """The run `since` names: "last" (the newest before `before`), a run id, or a time (the newest
    run at or before it, ISO 8601). None when there is no such run."""
    paths = [p for p in list_runs(tenant, root=root) if before is None or p != before.path]
    if not paths:
        return None
    if since == "last":
        return _load(paths[-1])
    for path in paths:
        if path.name.startswith(since):
            return _load(path)
    try:
        when = datetime.fromisoformat(since)
    except ValueError:
        raise ConfigError(f"--since {since!r}: not 'last', a run id of this tenant, or an ISO time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    older = [p for p in paths if (_stamp(p) or when) <= when]
    return _load(older[-1]) if older else None


#: Evidence keys that describe the run, not the mailbox: when it was made (RECENT_ONPREM_CHANGE's
#: "now") and where the on-prem row sat in that run's on-prem data ("onprem.line", which moves when
#: rows are added or the server answers in another order). A difference there is not a change.
VOLATILE_EVIDENCE = frozenset({"now", "onprem.line"})


def _evidence(record: Mapping[str, Any]) -> dict[str, Any]:
    evidence = record.get("evidence") or {}
    return {k: v for k, v in evidence.items() if k not in VOLATILE_EVIDENCE} if isinstance(evidence, dict) else {}


def _key(record: Mapping[str, Any]) -> tuple[str, str]:
    return str(record.get("code")), str(record.get("ExternalDirectoryObjectId") or "")


def diff_runs(old: Run, new: Run) -> Drift:
    """What changed from `old` to `new` (findings by code and mailbox, flips, the tenant default)."""
    before = {_key(r): r for r in old.findings}
    after = {_key(r): r for r in new.findings}
    drift = Drift(since=old, now=new)
    drift.new = [after[k] for k in after if k not in before]
    drift.resolved = [before[k] for k in before if k not in after]
    for k in after.keys() & before.keys():
        a, b = after[k], before[k]
        if a.get("severity") != b.get("severity") or _evidence(a) != _evidence(b):
            drift.changed.append({"code": k[0], "ExternalDirectoryObjectId": k[1],
                                  "UserPrincipalName": a.get("UserPrincipalName"), "before": b, "now": a})
    old_cloud: Mapping[str, Any] = old.state.get("cloud_managed") or {}
    new_cloud: Mapping[str, Any] = new.state.get("cloud_managed") or {}
    for edoi, value in new_cloud.items():
        if edoi in old_cloud and old_cloud[edoi] != value:
            drift.flips.append({"ExternalDirectoryObjectId": edoi, "before": old_cloud[edoi], "now": value})
    if old.state.get("tenant_default") != new.state.get("tenant_default"):
        drift.tenant_default = {"before": old.state.get("tenant_default"), "now": new.state.get("tenant_default")}
    drift.new.sort(key=lambda r: (SEVERITY_RANK.get(str(r.get("severity")), 9), _key(r)))
    drift.flips.sort(key=lambda r: str(r["ExternalDirectoryObjectId"]))
    return drift


def render_drift_text(drift: Drift, *, label: str = "") -> str:
    """The drift for a terminal: counts, then one line per change."""
    j = drift.to_json()
    c = j["counts"]
    lines = [f"# {label + ': ' if label else ''}since run {drift.since.run_id} ({drift.since.at:%Y-%m-%d %H:%M} UTC): "
             f"{c['new']} new, {c['resolved']} resolved, {c['changed']} changed findings; "
             f"{c['cloud_managed_changed']} IsExchangeCloudManaged changes"
             + ("; tenant default changed" if drift.tenant_default else "")]
    for r in drift.new:
        lines.append(f"NEW       {r.get('severity', ''):<8} {r.get('code', ''):<28} {r.get('UserPrincipalName') or ''}")
    for r in drift.resolved:
        lines.append(f"RESOLVED  {r.get('severity', ''):<8} {r.get('code', ''):<28} {r.get('UserPrincipalName') or ''}")
    for r in drift.changed:
        lines.append(f"CHANGED   {r['now'].get('severity', ''):<8} {r['code']:<28} {r.get('UserPrincipalName') or ''}")
    for f in drift.flips:
        marked = f.get("by_exocm")
        by = "" if marked is None else "  (by exocm)" if marked else "  (outside exocm)"
        lines.append(f"FLIPPED   IsExchangeCloudManaged {f['before']} -> {f['now']}  {f['ExternalDirectoryObjectId']}{by}")
    if drift.tenant_default:
        lines.append(f"TENANT    ExchangeAttributesCloudManagedByDefault {drift.tenant_default['before']} -> "
                     f"{drift.tenant_default['now']}")
    return "\n".join(lines) + "\n"


def render_drift_html(drift: Drift, *, label: str = "") -> str:
    """The drift as one self-contained HTML page (the reports' shared shell: no outside resources)."""
    text = render_drift_text(drift, label=label)
    head, _, body = text.partition("\n")
    rows = "".join(f"<tr><td>{e(line[:9].strip())}</td><td>{e(line[10:])}</td></tr>"
                   for line in body.splitlines() if line)
    table = f'<table class="sortable"><thead><tr><th>Change</th><th>What</th></tr></thead><tbody>{rows}</tbody></table>'
    return html_document("What changed", [e(head.lstrip("# "))], table)


def drifts_json(drifts: Sequence[Drift]) -> list[dict[str, Any]]:
    """Several drifts as JSON (one per tenant)."""
    return [d.to_json() for d in drifts]


def record_and_diff(tenant: str, profile: str, findings: pd.DataFrame, inventory: pd.DataFrame,
                    org_config: Mapping[str, Any] | None, *, since: str | None = None,
                    keep: bool = True) -> tuple[Run | None, Drift | None]:
    """Keep this findings run (unless `keep` is False) and, with `since`, compare it with that
    earlier run: (the stored run or None, the drift or None). No such earlier run is a ConfigError."""
    previous = find_run(tenant, since) if since is not None else None
    if since is not None and previous is None:
        raise ConfigError(f"--since {since}: no earlier findings run of tenant {tenant} is kept")
    state = run_state(inventory, org_config)
    stored = save_run(tenant, profile, findings, state) if keep else None
    if previous is None:
        return stored, None
    current = stored or Run("current", datetime.now(UTC), tenant, profile, {},
                            findings_records(findings) if len(findings) else [], state)
    return stored, diff_runs(previous, current)
