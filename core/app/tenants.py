"""Tenant sets: one job over many profiles (an MSP's customers), in parallel, each tenant on its own.

    names = profile_names("a,b,c", all_profiles=False)
    outcomes = run_tenants(names, lambda name: findings_job(name, fail_on="high"), parallel=8)

Each tenant gets its own bridge (own MSAL client and token cache, own HTTP pool, own throttling
budget and retry state: a tenant being throttled slows only itself) and its own write pacer on apply;
nothing is shared between tenants but the thread pool (or the worker processes, tenant_pool.py).
A tenant's failure (sign-in, consent, a missing role, a refused plan) is caught here and becomes
that tenant's outcome, with one line; the others go on. The faces present `outcomes`; the job functions are the same core calls the
single-tenant commands make (inventory fetch, detect, plan build, apply_plan), so a command joins a
tenant set by adding one job function here.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..access.config import ConfigError, Profile, get_profile, load_config
from ..access.connect import open_bridge
from ..bridge.base import Bridge
from ..bridge.errors import AuthFailed, BridgeError
from ..memory import fewer_collections
from ..plan.planfile import Plan

#: Outcome statuses, mildest first; a tenant set's status is its worst tenant's.
STATUSES = ("ok", "changes", "error", "auth")
#: Most tenants worked on at once by default.
DEFAULT_PARALLEL = 8


@dataclass
class TenantOutcome:
    """What one job did for one tenant: its usual JSON (`payload`) or one error line."""

    profile: str
    status: str = "ok"
    payload: dict[str, Any] = field(default_factory=dict)
    #: Summary-table counts: findings by code, planned, verified, failed, ...
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    tenant: str = ""
    #: Lines a face shows under the summary table for this tenant (e.g. what changed, with --since).
    details: str = ""

    def to_json(self) -> dict[str, Any]:
        """The tenant's usual JSON, or {"error": ...} (with the status) when it failed."""
        if self.error is not None:
            return {"error": self.error, "status": self.status}
        return self.payload


def worst(outcomes: Iterable[TenantOutcome]) -> str:
    """The worst status among `outcomes` ("ok" when there are none)."""
    ranks = [STATUSES.index(o.status) for o in outcomes]
    return STATUSES[max(ranks)] if ranks else "ok"


def profile_names(profiles: str | Sequence[str] | None, *, all_profiles: bool = False) -> list[str]:
    """The profiles a tenant set names: a comma list (or list), or every configured profile."""
    config = load_config()
    if all_profiles:
        if profiles:
            raise ConfigError("--profiles and --all-profiles exclude each other")
        names = sorted(config.profiles, key=_natural)
        if not names:
            raise ConfigError("--all-profiles: no profiles are configured")
        return names
    raw = profiles.split(",") if isinstance(profiles, str) else list(profiles or [])
    names = list(dict.fromkeys(n.strip() for n in raw if n.strip()))
    unknown = [n for n in names if n not in config.profiles]
    if unknown:
        raise ConfigError(f"no profile named {', '.join(map(repr, unknown))} (known: {', '.join(sorted(config.profiles))})")
    if not names:
        raise ConfigError("--profiles: name at least one profile")
    return names


def _natural(name: str) -> tuple[Any, ...]:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def run_one(name: str, job: Callable[[str], TenantOutcome], *,
            reraise: tuple[type[BaseException], ...] = ()) -> TenantOutcome:
    """Run `job` for one profile; its exception becomes the outcome, one line decided by
    app/failures.py (status "auth" for sign-in failures, else "error"; a bug's traceback goes to the
    log file), except the exceptions in `reraise`."""
    from .failures import failure_line

    started = time.monotonic()
    try:
        outcome = job(name)
    except reraise:
        raise
    except AuthFailed as exc:
        outcome = TenantOutcome(name, "auth", error=f"authentication failed: {exc.message}")
    except Exception as exc:  # one tenant's failure (or defect) must not stop the others
        outcome = TenantOutcome(name, "error", error=failure_line(exc, f"tenant {name}", also=(ValueError,)))
    outcome.seconds = time.monotonic() - started
    return outcome


def run_tenants(names: Sequence[str], job: Callable[[str], TenantOutcome], *,
                parallel: int | None = None, processes: int | None = None,
                on_done: Callable[[TenantOutcome], None] | None = None,
                cancel: threading.Event | None = None) -> dict[str, TenantOutcome]:
    """Run `job` once per profile, at most `parallel` (default min(8, n)) at a time, spread over
    `processes` worker processes (tenant_pool.processes_for; by default one per core for larger
    sets on Linux; 1 = threads of this process); one tenant's exception becomes its outcome
    (`run_one`). Ctrl-C sets `cancel` (the jobs' own stop signal: applies settle their writes in
    flight) before it is re-raised."""
    from .tenant_pool import processes_for, run_in_processes

    workers = max(1, min(parallel or DEFAULT_PARALLEL, len(names) or 1))
    procs = processes_for(len(names), processes)
    if procs > 1:
        with fewer_collections():
            return run_in_processes(names, job, processes=procs, threads=max(1, -(-workers // procs)),
                                    on_done=on_done, cancel=cancel)

    def one(name: str) -> TenantOutcome:
        outcome = run_one(name, job)
        if on_done is not None:
            on_done(outcome)
        return outcome

    with fewer_collections(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="exocm-tenant") as pool:
        try:
            results = list(pool.map(one, names))
        except KeyboardInterrupt:
            if cancel is not None:
                cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return {o.profile: o for o in results}


def tenant_profile(name: str) -> Profile:
    """The profile `name`, validated (a ConfigError when it cannot work)."""
    profile = get_profile(name)
    profile.validate()
    return profile


def open_tenant_bridge(profile: Profile, **options: Any) -> Bridge:
    """A bridge of the tenant's own: tokens kept in memory (threads of one process never share a
    token cache file), its own HTTP pool and throttling budget."""
    options.setdefault("persist_tokens", False)
    bridge: Bridge = open_bridge(profile, **options)
    return bridge


def _onprem_frame(profile: Profile) -> Any:
    """The on-prem side from the profile's own WinRM endpoint (`extra`), or None when it names none.
    The password comes from EXOCM_ONPREM_PASSWORD (or, for a sandbox profile, its stored one)."""
    import os

    from ..inventory.onprem_live import load_onprem_live, open_onprem_bridge, settings_from

    settings = settings_from(profile)
    if settings is None:
        return None
    bridge = open_onprem_bridge(settings, env=dict(os.environ))
    try:
        return load_onprem_live(bridge)
    finally:
        bridge.close()


def read_writeback(profile: Profile, *, env: Mapping[str, str] | None = None, persist_tokens: bool = True) -> Any:
    """Whether Cloud Sync writes Exchange attributes back to AD (core's GraphClient.writeback, through
    the profile's Graph); "no Graph" is an unknown answer (Writeback(None, ...)), not a failure."""
    from ..access.graph_host import open_graph
    from ..model import Writeback

    try:
        graph = open_graph(profile, env=env, persist_tokens=persist_tokens)
    except (ConfigError, BridgeError, OSError) as exc:
        return Writeback(None, (), f"Graph not available ({exc})")
    from ..runbooks.reads import cloud_sync_writeback

    try:
        return cloud_sync_writeback(graph)
    finally:
        graph.close()


def mark_exocm_flips(drift: Any, *, data_dir: Path | None = None) -> None:
    """Mark each IsExchangeCloudManaged change of `drift` with `by_exocm`: True when an exocm apply
    journaled that mailbox as verified (to its new value) between the two runs; False means the
    change was made outside exocm (another tool, an admin, or an undo by hand)."""
    from ..execute.journal import list_journals, read_journal

    if drift is None or not drift.flips:
        return
    since, until = drift.since.at, drift.now.at
    verified: dict[str, Any] = {}
    for info in list_journals(data_dir, tenant=drift.now.tenant):
        for record in read_journal(info.path).rows():
            if record.get("status") != "verified":
                continue
            try:
                at = datetime.fromisoformat(str(record.get("at")))
            except ValueError:
                continue
            if since <= at <= until:
                verified[str(record.get("identity"))] = record.get("after")
    for flip in drift.flips:
        edoi = flip["ExternalDirectoryObjectId"]
        flip["by_exocm"] = edoi in verified and verified[edoi] == flip["now"]


# --- jobs -------------------------------------------------------------------------------------


def inventory_job(name: str, *, refresh: bool = True, bridge_options: Mapping[str, Any] | None = None) -> TenantOutcome:
    """Read (or reuse) the tenant's EXO inventory and save its snapshot."""
    from ..inventory.snapshot import load_or_fetch

    profile = tenant_profile(name)
    bridge = open_tenant_bridge(profile, **dict(bridge_options or {}))
    try:
        inv = load_or_fetch(bridge, refresh=refresh)
    finally:
        bridge.close()
    by_type: dict[str, int] = {}
    if len(inv.frame):
        by_type = {str(k): int(v) for k, v in inv.frame["RecipientTypeDetails"].astype("str").value_counts().items()}
    counts = {"recipients": int(len(inv.frame))} | by_type
    payload = {"tenant": inv.tenant, "fetched_at": inv.fetched_at.isoformat(), "recipients": int(len(inv.frame)),
               "by_type": by_type}
    return TenantOutcome(name, "ok", payload, counts, tenant=inv.tenant)


@dataclass
class FindingsRun:
    """Everything one findings run of a tenant produced (for the faces and for history)."""

    profile: str
    tenant: str
    inventory: Any
    result: Any
    findings: Any
    summary: dict[str, Any]
    meta: Any
    org_config: dict[str, Any] | None
    onprem_source: str = ""
    history_run: Any = None
    drift: Any = None


def run_findings(profile: Profile, bridge: Bridge, *, refresh: bool = True, onprem: Any = None,
                 sync_interval: timedelta | None = None, keep_history: bool = True,
                 since: str | None = None, label: str | None = None, sandbox: bool | None = None,
                 accept_incomplete: bool = False) -> FindingsRun:
    """Findings for one tenant: inventory (an incompletely answered one is a ConfigError unless
    `accept_incomplete`), on-prem (given, or the profile's WinRM endpoint), the org config, Cloud
    Sync writeback (Graph), detection; then the run is kept in history and, with `since`, compared."""
    from ..detect.engine import DEFAULT_SYNC_INTERVAL, detect
    from ..detect.history import record_and_diff
    from ..detect.report import ReportMeta, summarise
    from ..inventory.org_config import read_org_config
    from ..inventory.snapshot import load_or_fetch

    notes: list[str] = []
    inv = load_or_fetch(bridge, refresh=refresh)
    incomplete = inv.incomplete_reason()
    if incomplete and not accept_incomplete:
        raise ConfigError(incomplete)
    notes.extend(inv.notes)
    if onprem is None:
        onprem = _onprem_frame(profile)
    org, org_note = read_org_config(bridge)
    if org_note:
        notes.append(org_note)
    writeback = read_writeback(profile, persist_tokens=False)
    result = detect(inv.frame, onprem.frame if onprem is not None else None, org_config=org,
                    sync_interval=sync_interval or DEFAULT_SYNC_INTERVAL, writeback=writeback)
    notes.extend(result.notes)
    if onprem is not None:
        notes.extend(f"on-prem line {bad.line} skipped: {bad.reason}" for bad in onprem.bad_rows)
        notes.extend(onprem.notes)
    summary = summarise(result.findings, result)
    meta = ReportMeta(tenant=inv.tenant, label=label or profile.name,
                      sandbox=profile.sandbox if sandbox is None else sandbox, inventory_at=inv.fetched_at,
                      onprem_source=onprem.source if onprem is not None else "", notes=notes)
    run = FindingsRun(profile.name, inv.tenant, inv, result, result.findings, summary, meta, org,
                      onprem.source if onprem is not None else "")
    run.history_run, run.drift = record_and_diff(inv.tenant, profile.name, result.findings, inv.frame, org,
                                                 since=since, keep=keep_history)
    mark_exocm_flips(run.drift)
    return run


def findings_job(name: str, *, fail_on: str = "high", refresh: bool = True, since: str | None = None,
                 sync_interval: timedelta | None = None, keep_history: bool = True,
                 severity: str | None = None, codes: Sequence[str] | None = None,
                 accept_incomplete: bool = False,
                 bridge_options: Mapping[str, Any] | None = None) -> TenantOutcome:
    """Findings for one profile's tenant (the `exocm findings --format json` document as payload;
    `severity`/`codes` filter what is shown, as the command's options do; history keeps them all).

    Status "changes" when a finding at or above `fail_on` is shown (with `since`: when a NEW one is)."""
    from ..detect.report import fails, filter_findings, findings_document, summarise

    profile = tenant_profile(name)
    bridge = open_tenant_bridge(profile, **dict(bridge_options or {}))
    try:
        run = run_findings(profile, bridge, refresh=refresh, since=since, sync_interval=sync_interval,
                           keep_history=keep_history, accept_incomplete=accept_incomplete)
    finally:
        bridge.close()
    shown = run.findings
    summary = run.summary
    if severity or codes:
        shown = filter_findings(run.findings, severity=severity, codes=list(codes) if codes else None)
        summary = summarise(shown, run.result)
    payload = findings_document(shown, summary, run.meta)
    if run.history_run is not None:
        payload["run_id"] = run.history_run.run_id
    counts = {code: int(v["count"]) for code, v in summary["by_code"].items() if v["count"]}
    details = ""
    if run.drift is not None:
        from ..detect.history import render_drift_text

        payload["drift"] = run.drift.to_json()
        details = render_drift_text(run.drift, label=name)
        counts = {f"{k}": int(v) for k, v in run.drift.to_json()["counts"].items()}
        bad = run.drift.new_at_or_above(fail_on)
    else:
        bad = fails(shown, fail_on)
    return TenantOutcome(name, "changes" if bad else "ok", payload, counts, tenant=run.tenant, details=details)


def plan_job(name: str, *, value: bool, out_dir: Path, where: str | None = None, refresh: bool = True,
             max_changes: int | None = None, types: Sequence[str] = (), exclude: Path | None = None,
             accept_incomplete: bool = False, bridge_options: Mapping[str, Any] | None = None) -> TenantOutcome:
    """A plan for one tenant (every dir-synced mailbox, or `where`; then `exclude`/`types`), written to
    OUT_DIR/<profile>.json; skip reasons come from detection (with the profile's on-prem endpoint when
    it names one), through the same plan workflow as `exocm plan` (core/plan/workflow.py)."""
    from ..detect.readiness import flip_readiness
    from ..plan.workflow import SelectionRequest, plan_from_selection, select_targets, utc_now

    profile = tenant_profile(name)
    bridge = open_tenant_bridge(profile, **dict(bridge_options or {}))
    try:
        run = run_findings(profile, bridge, refresh=refresh, keep_history=False, accept_incomplete=accept_incomplete)
        frame = run.inventory.frame
        request = SelectionRequest(where=where, all_dirsynced=where is None, exclude=exclude, types=tuple(types))
        selection = select_targets(frame, request)
        now = utc_now()
        plan = plan_from_selection(
            frame, selection, value, tenant=str(bridge.tenant), bridge=str(getattr(bridge, "kind", "rest")),
            inventory_fetched_at=run.inventory.fetched_at, sandbox=profile.sandbox,
            readiness=flip_readiness(frame, run.findings, value), max_changes=max_changes,
            extra_source={"profile": name}, now=now)
    finally:
        bridge.close()
    return _saved_plan_outcome(name, plan, out_dir, tenant=str(bridge.tenant))


def _saved_plan_outcome(name: str, plan: Plan, out_dir: Path, *, tenant: str) -> TenantOutcome:
    """Save a tenant's plan as OUT_DIR/<profile>.json; its outcome ("changes" when a row is to be set)."""
    from ..plan.planfile import save_plan

    path = save_plan(plan, Path(out_dir) / f"{name}.json")
    set_rows = plan.set_rows()
    counts = {"planned": len(set_rows), "skipped": len(plan.rows) - len(set_rows)}
    return TenantOutcome(name, "changes" if set_rows else "ok",
                         {"plan": str(path), "digest": plan.digest, "counts": plan.counts()}, counts, tenant=tenant)


def plan_for_profile(plans: Path | str, name: str) -> Path:
    """The plan of profile `name` in a tenant set's plan directory (DIR/<profile>.json) or pattern
    (a path with `{profile}` in it)."""
    text = str(plans)
    if "{profile}" in text:
        return Path(text.replace("{profile}", name))
    return Path(plans) / f"{name}.json"


def apply_job(name: str, plan_path: Path, *, concurrency: int = 8, cancel: Any = None,
              bridge_options: Mapping[str, Any] | None = None, data_dir: Path | None = None) -> TenantOutcome:
    """Apply one tenant's saved plan (resuming from its journals: verified rows are never written again)."""
    from ..execute.apply import apply_plan
    from ..plan.planfile import load_plan

    profile = tenant_profile(name)
    plan = load_plan(plan_path)
    bridge = open_tenant_bridge(profile, **dict(bridge_options or {}))
    try:
        result = apply_plan(bridge, plan, plan_path=plan_path, concurrency=concurrency, cancel=cancel,
                            data_dir=data_dir)
    finally:
        bridge.close()
    counts = {"planned": len(plan.set_rows()), "verified": int(result.counts.get("verified", 0)),
              "failed": int(result.counts.get("failed", 0)), "remaining": result.remaining}
    status = "ok" if result.complete else "error"
    outcome = TenantOutcome(name, status, result.to_json(), counts, tenant=plan.tenant)
    if not result.complete:
        outcome.error = result.error or f"{result.remaining} rows not verified; rerun to resume"
        outcome.payload = result.to_json()
    return outcome


def summary_rows(outcomes: Mapping[str, TenantOutcome]) -> list[dict[str, Any]]:
    """One row per tenant for the summary table: profile, status, seconds, counts or the error."""
    return [{"profile": o.profile, "status": o.status, "seconds": round(o.seconds, 1),
             "counts": dict(o.counts), "error": o.error} for o in outcomes.values()]


def show_job(name: str, plan_path: Path) -> TenantOutcome:
    """One tenant's saved plan, read only: counts per action and reason (status "changes" when a row
    would be set)."""
    from ..plan.planfile import load_plan

    plan = load_plan(plan_path)
    doc = plan.to_json()
    doc["counts"] = plan.counts()
    counts = {"planned": len(plan.set_rows()), "skipped": len(plan.rows) - len(plan.set_rows())}
    return TenantOutcome(name, "changes" if plan.set_rows() else "ok", doc, counts, tenant=plan.tenant)


def report_job(name: str, plan_path: Path, *, journal_dir: Path | None = None) -> TenantOutcome:
    """What the applies of one tenant's plan did: rows per result over every journal of the plan
    (status "changes" while rows are left to do)."""
    from ..access.config import data_dir
    from ..execute.apply import pending_rows
    from ..execute.journal import journals_for_plan, plan_history
    from ..execute.report import report_frame, summary
    from ..plan.planfile import load_plan

    plan = load_plan(plan_path)
    jdir = journal_dir or data_dir() / "journals"
    journals = journals_for_plan(plan.digest, jdir)
    frame, warnings = report_frame(journals)
    history = plan_history(plan.digest, jdir)
    left = len(pending_rows(plan, history))
    per_result = summary(frame)
    counts = {"planned": len(plan.set_rows()), "verified": sum(1 for r in plan.set_rows() if r.identity in history.verified),
              "failed": int(per_result.get("failed", 0)), "remaining": left}
    doc = {"plan": str(plan_path), "digest": plan.digest, "journals": [str(j) for j in journals],
           "counts": per_result, "remaining": left, "warnings": warnings}
    return TenantOutcome(name, "changes" if left else "ok", doc, counts, tenant=plan.tenant)


def undo_job(name: str, plan_path: Path, *, out_dir: Path,
             bridge_options: Mapping[str, Any] | None = None) -> TenantOutcome:
    """An undo plan for one tenant's applied plan (every run of it, from its journals), written to
    OUT_DIR/<profile>.json; apply it like any plan of a tenant set."""
    from ..access.config import data_dir
    from ..execute.journal import journals_for_plan
    from ..execute.undo import build_undo_plan
    from ..plan.planfile import load_plan

    profile = tenant_profile(name)
    plan = load_plan(plan_path)
    journals = journals_for_plan(plan.digest, data_dir() / "journals")
    if not journals:
        raise ConfigError(f"plan {plan_path} of profile {name!r} was never applied: nothing to undo")
    bridge = open_tenant_bridge(profile, **dict(bridge_options or {}))
    try:
        undo = build_undo_plan(bridge, journals[-1], all_runs=True,
                               writeback=read_writeback(profile, persist_tokens=False))
    finally:
        bridge.close()
    return _saved_plan_outcome(name, undo, out_dir, tenant=undo.tenant)


def readiness_job(name: str, *, scope: str = "flip", fail_on: str = "high", refresh: bool = True,
                  sync_client_version: str | None = None,
                  bridge_options: Mapping[str, Any] | None = None) -> TenantOutcome:
    """`exocm readiness` for one profile's tenant (its `--format json` document as payload): EXO, the
    inventory, the profile's on-prem WinRM endpoint (mailboxes and the server) when it names one, the
    profile's Graph. The sync server is not read in a tenant set (give `sync_client_version`, else the
    check is unknown with that reason). Status "changes" when a check that did not pass is at or
    above `fail_on`."""
    import os

    from ..access.graph_host import open_graph
    from ..detect.prerequisites import evaluate
    from ..detect.prerequisites.gather import Sources, gather
    from ..detect.prerequisites.report import ReadinessMeta, fails, render_json, summarise
    from ..inventory.onprem_live import load_onprem_live, open_onprem_bridge, settings_from
    from ..inventory.snapshot import load_or_fetch

    profile = tenant_profile(name)
    bridge = open_tenant_bridge(profile, **dict(bridge_options or {}))
    try:
        # Sign in first: readiness turns every source failure into an unknown check, but a tenant
        # set reports a tenant it cannot sign in to (consent, role) as that tenant's failure.
        bridge.invoke("Get-OrganizationConfig", {})
    except BaseException:
        bridge.close()
        raise
    absent: dict[str, str] = {}
    onprem: Callable[[], Any] | None = None
    server: Callable[[], Any] | None = None
    settings = settings_from(profile)
    label = ""
    if settings is not None:
        env = dict(os.environ)

        def read_onprem() -> Any:
            onprem_bridge = open_onprem_bridge(settings, env=env)
            try:
                return load_onprem_live(onprem_bridge).frame
            finally:
                onprem_bridge.close()

        onprem, label = read_onprem, "live over WinRM (the profile's endpoint)"
        server = lambda: open_onprem_bridge(settings, env=env)  # noqa: E731
    else:
        absent["onprem"] = absent["onprem_server"] = f"profile {name!r} names no on-prem endpoint (extra.onprem_url)"
    try:
        graph: Any = open_graph(profile, persist_tokens=False)
    except ConfigError:
        graph = None
        for fact in ("organization", "licensed_synced_users", "synced_group_sizes", "cloud_sync"):
            absent[fact] = "no Microsoft Graph endpoint for this profile (extra.graph_base_url, or a Microsoft cloud)"
    if not sync_client_version:
        absent["sync_client_version"] = ("the sync server is not read for a tenant set "
                                         "(give the Entra Connect version, or run readiness per tenant)")
    try:
        sources = Sources(exo=bridge, inventory=lambda: load_or_fetch(bridge, refresh=refresh).frame, onprem=onprem,
                          onprem_server=server, graph=graph, sync_server=None,
                          sync_client_version=sync_client_version, absent=absent)
        gathered = gather(sources, scope=scope)
    finally:
        if graph is not None:
            graph.close()
        bridge.close()
    checks = evaluate(gathered.facts, scope)
    summary = summarise(checks, scope)
    meta = ReadinessMeta(tenant=str(bridge.tenant), label=name, scope=scope, sandbox=profile.sandbox,
                         onprem_source=label, elapsed_s=gathered.elapsed_s, notes=list(gathered.facts.notes))
    payload = json.loads(render_json(checks, summary, meta))
    counts = {str(k): int(v) for k, v in summary["by_result"].items() if v} | {"blocking": len(summary["blocking"])}
    return TenantOutcome(name, "changes" if fails(checks, fail_on) else "ok", payload, counts,
                         tenant=str(bridge.tenant))
