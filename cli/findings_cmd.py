"""`exocm findings`: what makes IsExchangeCloudManaged unsafe, per mailbox, with evidence.

Reads the EXO inventory (snapshot or fresh), joins the on-prem data (the export given with
--onprem-csv; or read live over WinRM with --onprem-host/--onprem-live; with --sandbox and
neither, the sandbox tenant's own on-prem export, written as an Export-Csv file and read back
like any admin's file), runs the detection rules and prints a
summary by code and severity, then the rows. Exit code 0 when no finding is at or above
--fail-on (default high), 1 otherwise, 2 on errors.
"""
from __future__ import annotations

import json
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import pandas as pd
from exocm.core.detect.engine import RULES, SEVERITIES, detect
from exocm.core.detect.objects import OBJECT_RULES, codes_for, detect_objects
from exocm.core.detect.report import (
    ReportMeta,
    fails,
    filter_findings,
    render_csv,
    render_html,
    render_json,
    summarise,
    summary_table,
)
from exocm.core.inventory.fetch import Inventory, fetch_inventory
from exocm.core.inventory.onprem import OnPremData, OnPremFormatError, load_onprem_csv
from exocm.core.inventory.onprem_objects import when_changed
from exocm.core.inventory.org_config import read_org_config
from exocm.core.inventory.snapshot import load_or_fetch
from rich.console import Console
from rich.markup import escape

from . import exitcodes
from .connection import connection_options, open_connection
from .console import banner, csv_for, stderr_console, write_output
from .errors import fail, inert, user_errors
from .object_kinds import kind_option, object_onprem, read_objects
from .onprem_options import (
    check_onprem_sources,
    load_onprem_live_data,
    onprem_live_requested,
    onprem_options,
    pop_onprem_options,
    sandbox_onprem_data,
)
from .tenant_set import pop_tenant_set, present, run_set, tenant_set_options
from .tenant_set import wanted as tenant_set_wanted
from .writeback_read import read_writeback

_TABLE_COLUMNS = ("severity", "code", "UserPrincipalName", "action", "explanation")
_WIDTH = {"severity": 8, "code": 22, "UserPrincipalName": 36, "action": 27, "explanation": 400}


def render_text(findings: pd.DataFrame, summary: dict[str, Any], *, label: str) -> str:
    """Plain text: a summary by code and severity, then one line per finding."""
    lines = [f"# {label}: {summary['total']} findings"]
    sev = summary["by_severity"]
    lines.append("# by severity: " + ", ".join(f"{s} {sev.get(s, 0)}" for s in SEVERITIES))
    lines.append("")
    lines.append(f"{'CODE':<32} {'SEVERITY':<9} {'COUNT':>7}  MEANING")
    for code, severity, count, text in summary_table(summary):
        lines.append(f"{code:<32} {severity:<9} {count:>7}  {inert(text)}")
    if len(findings):
        lines.append("")
        header = "  ".join(c.upper()[: _WIDTH[c]].ljust(_WIDTH[c]) for c in _TABLE_COLUMNS)
        lines.append(header.rstrip())
        cols = [findings[c].astype("str").to_numpy() for c in _TABLE_COLUMNS]
        for row in zip(*cols, strict=True):
            cells = [inert(v)[: _WIDTH[c]].ljust(_WIDTH[c]) for c, v in zip(_TABLE_COLUMNS, row, strict=True)]
            lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _read_inventory(connection: Any, refresh: bool, err: Console) -> Inventory:
    with err.status("reading the EXO inventory ..."):
        if connection.sandbox_handle is not None:
            return fetch_inventory(connection.bridge)
        return load_or_fetch(connection.bridge, refresh=refresh)


def _history(inv: Inventory, org: dict[str, Any] | None, result: Any, profile: str, since: str | None,
             *, keep: bool) -> Any:
    """Keep this run in the findings history; with `since`, the drift from that earlier run (core decides)."""
    from exocm.core.app.tenants import mark_exocm_flips
    from exocm.core.detect.history import record_and_diff

    drift = record_and_diff(inv.tenant, profile, result.findings, inv.frame, org, since=since, keep=keep)[1]
    mark_exocm_flips(drift)
    return drift


EXAMPLES = """\b
Examples:
  exocm findings                                  the embedded SANDBOX (with its own on-prem side)
  exocm findings --onprem-csv onprem.csv          on-prem data from scripts/Export-ExocmOnPrem.ps1
  exocm findings --onprem-host ex01.contoso.local --onprem-user CONTOSO\\admin
  exocm findings --severity high --code DUAL_MAILBOX,PREVIOUS_MAILBOX_INFO
  exocm findings --format html -o findings.html   one self-contained file for a change ticket
  exocm findings --fail-on critical               exit 1 only for critical findings (CI)
  exocm findings --since last                     what changed since the previous run
  exocm findings --all-profiles --format json     every tenant, {"tenants": {PROFILE: ...}}
  exocm findings --all-profiles --format html -o msp.html   every tenant in one page (csv: a profile column)
  exocm findings --kind group --onprem-csv adgroups.csv   groups (AD export for recent on-prem edits)
"""


@click.command(epilog=EXAMPLES)
@connection_options
@tenant_set_options
@onprem_options
@click.option("--onprem-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="On-prem export (Export-ExocmOnPrem.ps1, or any Export-Csv of Get-Mailbox/Get-RemoteMailbox).")
@click.option("--severity", type=click.Choice(SEVERITIES, case_sensitive=False), default=None,
              help="Show only findings of this severity or worse.")
@click.option("--code", "codes", multiple=True, metavar="CODE",
              help=f"Show only these codes (repeatable or comma-separated): {', '.join(RULES)}.")
@click.option("--fail-on", type=click.Choice(SEVERITIES, case_sensitive=False), default="high", show_default=True,
              help="Exit 1 when a shown finding is at this severity or worse.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "html"]), default="table",
              show_default=True, help="Output format (html: one self-contained file for a change ticket).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE (atomically) instead of stdout.")
@click.option("--sync-interval", type=click.IntRange(1, 24 * 60), default=30, show_default=True,
              help="Minutes between sync cycles (RECENT_ONPREM_CHANGE waits one cycle + 24 h).")
@click.option("--refresh", is_flag=True, help="Fetch the inventory from the service even when a snapshot exists.")
@click.option("--since", "since", metavar="last|TIME|RUN", default=None,
              help="Show what changed since an earlier run (new, resolved, changed findings; IsExchangeCloudManaged "
                   "and tenant default changes); exit 1 when something NEW is at or above --fail-on.")
@click.option("--no-history", is_flag=True, help="Do not keep this run in the findings history.")
@click.option("--accept-incomplete", is_flag=True,
              help="Go on with an inventory the service answered incompletely (@adminapi.errors).")
@kind_option
def findings(
    onprem_csv: Path | None,
    severity: str | None,
    codes: tuple[str, ...],
    fail_on: str,
    fmt: str,
    out: Path | None,
    sync_interval: int,
    refresh: bool,
    since: str | None,
    no_history: bool,
    accept_incomplete: bool,
    kind: str,
    **conn: Any,
) -> None:
    """Find dual mailboxes, stale PreviousRecipientTypeDetails and whatever blocks a flip
    (with --kind group|contact|user: whatever blocks an object's source-of-authority change).

    Prints a summary by code and severity, then the findings. Exit 0 when none is at or
    above --fail-on, 1 otherwise.
    """
    err = stderr_console()
    kind = kind.lower()
    known = list(RULES) if kind == "mailbox" else codes_for(kind)
    wanted = [c.strip().upper() for raw in codes for c in raw.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise click.BadParameter(f"unknown code(s) {', '.join(unknown)}; known: {', '.join(known)}",
                                 param_hint="--code")
    notes: list[str] = []
    tenant_set = pop_tenant_set(conn)
    live = pop_onprem_options(conn)
    if tenant_set_wanted(tenant_set):
        if kind != "mailbox":
            raise click.UsageError("with a tenant set, findings are of mailboxes (--kind mailbox)")
        if onprem_csv is not None or onprem_live_requested(live):
            raise click.UsageError("with a tenant set, each tenant's on-prem side comes from its profile's endpoint")
        if fmt in ("csv", "html") and since is not None:
            raise click.UsageError("with a tenant set and --since, --format is table or json")
        from exocm.core.app.tenants import findings_job

        outcomes = run_set(tenant_set, conn, lambda name: findings_job(
            name, fail_on=fail_on, refresh=True, since=since, sync_interval=timedelta(minutes=sync_interval),
            keep_history=not no_history, severity=severity, codes=wanted or None,
            accept_incomplete=accept_incomplete))
        from exocm.core.detect.tenant_report import tenant_set_findings_csv, tenant_set_findings_html

        present(outcomes, fmt, out, csv=tenant_set_findings_csv, html=tenant_set_findings_html)
    if kind != "mailbox":
        _object_findings(kind, onprem_csv, severity, wanted, fail_on, fmt, out, sync_interval, refresh, conn, err)
        return
    check_onprem_sources(onprem_csv, live)
    with user_errors(), open_connection(**conn) as connection, tempfile.TemporaryDirectory() as tmp:
        label = str(connection.label)
        sandbox = bool(connection.is_sandbox)
        banner(err, connection)
        inv = _read_inventory(connection, refresh, err)
        incomplete = inv.incomplete_reason()
        if incomplete and not accept_incomplete:
            fail(incomplete)
        notes.extend(inv.notes)
        onprem: OnPremData | None = None
        try:
            if onprem_csv is not None:
                onprem = load_onprem_csv(onprem_csv)
            elif onprem_live_requested(live):
                with err.status("reading on-prem mailboxes over WinRM ..."):
                    onprem = load_onprem_live_data(live, connection)
            elif connection.sandbox_handle is not None:
                onprem = sandbox_onprem_data(connection, Path(tmp))
        except OnPremFormatError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot read the on-prem file: {exc.strerror or exc}")
        if onprem is not None:
            for bad in onprem.bad_rows:
                notes.append(f"on-prem line {bad.line} skipped: {bad.reason}")
            notes.extend(onprem.notes)
        org, org_note = read_org_config(connection.bridge)
        if org_note:
            notes.append(org_note)
        writeback = read_writeback(connection) if onprem is not None else None
        if writeback is not None:
            notes.append(f"writeback to AD: {writeback.label} ({writeback.source})")
        result = detect(
            inv.frame,
            onprem.frame if onprem is not None else None,
            org_config=org,
            sync_interval=timedelta(minutes=sync_interval),
            writeback=writeback,
        )
        notes.extend(result.notes)
        drift = _history(inv, org, result, str(connection.profile.name), since, keep=not no_history)
    shown = filter_findings(result.findings, severity=severity, codes=wanted or None)
    summary = summarise(shown, result)
    meta = ReportMeta(
        tenant=inv.tenant,
        label=label,
        sandbox=sandbox,
        inventory_at=inv.fetched_at,
        onprem_source=onprem.source if onprem is not None else "",
        notes=notes,
    )
    for note in notes[:20]:
        err.print(f"[yellow]note:[/] {escape(inert(note))}")
    if len(notes) > 20:
        err.print(f"[yellow]note:[/] ... and {len(notes) - 20} more (all listed in the json/html report)")
    for code, why in result.not_checked.items():
        err.print(f"[yellow]not checked:[/] {code}: {escape(why)}")

    if drift is not None:
        from exocm.core.detect.history import render_drift_html, render_drift_text

        if fmt == "json":
            text = json.dumps(drift.to_json(), ensure_ascii=False, default=str, indent=1) + "\n"
        elif fmt == "html":
            text = render_drift_html(drift, label=label)
        else:
            text = render_drift_text(drift, label=label)
        write_output(text, out)
        sys.exit(exitcodes.CHANGES if drift.new_at_or_above(fail_on) else exitcodes.OK)
    if fmt == "json":
        text = render_json(shown, summary, meta)
    elif fmt == "csv":
        text = csv_for(render_csv(shown), out)
    elif fmt == "html":
        text = render_html(shown, summary, meta)
    else:
        text = render_text(shown, summary, label=label)
    write_output(text, out)
    sys.exit(exitcodes.CHANGES if fails(shown, fail_on) else exitcodes.OK)


def _object_findings(kind: str, onprem_csv: Path | None, severity: str | None, wanted: list[str], fail_on: str,
                     fmt: str, out: Path | None, sync_interval: int, refresh: bool, conn: dict[str, Any],
                     err: Console) -> None:
    """`exocm findings --kind group|contact|user`: object findings, same outputs and exit codes."""
    notes: list[str] = []
    with user_errors(), open_connection(**conn) as connection, tempfile.TemporaryDirectory() as tmp:
        label = str(connection.label)
        sandbox = bool(connection.is_sandbox)
        banner(err, connection)
        inv = read_objects(connection, kind, refresh=refresh, err=err)
        matched, source = object_onprem(connection, kind, inv.frame, onprem_csv, Path(tmp))
    if matched is None:
        notes.append("no on-prem data (--onprem-csv): OBJECT_RECENT_ONPREM_EDIT not checked")
    else:
        notes.append(f"on-prem: {len(matched):,} of {len(inv.frame):,} {kind}s matched in {source}")
    found = detect_objects(kind, inv.frame, sync_interval=timedelta(minutes=sync_interval),
                           onprem_when_changed=when_changed(matched) if matched is not None else None)
    shown = filter_findings(found, severity=severity, codes=wanted or None)
    by_code = shown["code"].value_counts().to_dict()
    summary: dict[str, Any] = {
        "total": len(shown), "kind": kind,
        "by_severity": shown["severity"].value_counts().to_dict(),
        "by_code": {code: {"count": int(by_code.get(code, 0)), "severity": OBJECT_RULES[code].severity,
                           "summary": OBJECT_RULES[code].summary} for code in codes_for(kind)},
    }
    for note in notes:
        err.print(f"[yellow]note:[/] {escape(inert(note))}")
    if fmt == "json":
        body = {"tenant": inv.tenant, "label": label, "sandbox": sandbox, "kind": kind,
                "inventory_at": inv.fetched_at.isoformat(), "onprem_source": source, "notes": notes,
                "summary": summary,
                "findings": json.loads(shown.to_json(orient="records", date_format="iso", force_ascii=False))}
        text = json.dumps(body, ensure_ascii=False, indent=1, default=str) + "\n"
    elif fmt == "csv":
        text = csv_for(render_csv(shown), out)
    elif fmt == "html":
        meta = ReportMeta(tenant=inv.tenant, label=label, sandbox=sandbox, inventory_at=inv.fetched_at,
                          onprem_source=source, notes=notes)
        text = render_html(shown, {"total": len(shown), "by_severity": summary["by_severity"], "by_code": {}}, meta)
    else:
        lines = [f"# {label}: {len(shown)} {kind} findings"]
        lines.append("# by severity: " + ", ".join(f"{s} {summary['by_severity'].get(s, 0)}" for s in SEVERITIES))
        lines.append("")
        lines.append(f"{'CODE':<32} {'SEVERITY':<9} {'COUNT':>7}  MEANING")
        for code, item in summary["by_code"].items():
            lines.append(f"{code:<32} {item['severity']:<9} {item['count']:>7}  {inert(item['summary'])}")
        if len(shown):
            lines.append("")
            lines.append("  ".join(c.upper()[: _WIDTH[c]].ljust(_WIDTH[c]) for c in _TABLE_COLUMNS).rstrip())
            cols = [shown[c].astype("str").to_numpy() for c in _TABLE_COLUMNS]
            for row in zip(*cols, strict=True):
                lines.append("  ".join(inert(v)[: _WIDTH[c]].ljust(_WIDTH[c])
                                       for c, v in zip(_TABLE_COLUMNS, row, strict=True)).rstrip())
        text = "\n".join(lines) + "\n"
    write_output(text, out)
    sys.exit(exitcodes.CHANGES if fails(shown, fail_on) else exitcodes.OK)
