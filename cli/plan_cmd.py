"""`exocm plan` (selection -> plan file) and `exocm show PLAN` (read-only diff).

`exocm show` exits like `kubectl diff`: 0 when nothing would change, 1 when something
would, 2 on error. Everything the plan decides is decided in core (selection, plan); this
module reads options and prints.
"""
from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pandas as pd
from exocm.core.access.config import data_dir
from exocm.core.csvio import to_csv_text
from exocm.core.events import Progress
from exocm.core.paths import shell_arg
from exocm.core.plan.planfile import REASON_TEXT, Plan, PlanError, load_plan, save_plan
from exocm.core.plan.selection import SelectionError, parse_types
from exocm.core.plan.tables import plan_rows_frame, plan_table_frame, short_text, state_column
from exocm.core.plan.workflow import (
    SelectionRequest,
    default_plan_path,
    plan_from_selection,
    select_targets,
    utc_now,
)
from exocm.core.values import as_bool
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from . import exitcodes
from .connection import connection_options, embedded_source, open_connection
from .console import banner, stderr_console, write_output
from .errors import fail, inert, user_errors
from .object_kinds import kind_option, object_onprem, read_objects
from .onprem_options import onprem_csv_frame, sandbox_onprem_data
from .tenant_set import pop_tenant_set, present, run_set, tenant_set_options
from .tenant_set import wanted as tenant_set_wanted
from .writeback_read import read_writeback

#: Rows printed by the table format before "... N more" (CSV and JSON carry all).
TABLE_LIMIT = 200


def parse_bool(value: str) -> bool:
    """'true'/'false' (also $true, yes/no, 1/0) as bool."""
    parsed = as_bool(value, switch_words=True)
    if parsed is not None:
        return parsed
    raise click.BadParameter(f"expected true or false, not {value!r}", param_hint="'--set-cloud-managed'")


@contextmanager
def progress_bar(err: Console, stage: str) -> Iterator[Any]:
    """A rich progress bar on stderr for a core Progress stream; yields the callback."""
    bar = RichProgress(
        TextColumn(f"[bold]{stage}[/]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )
    with bar:
        task = bar.add_task(stage, total=None, note="")

        def feed(event: Progress) -> None:
            rate = f"{event.rate:,.0f}/s" if event.rate else ""
            bar.update(task, completed=event.done, total=event.total, note=rate)

        yield feed


def _load_inventory(connection: Any, *, refresh: bool, max_age_min: float, err: Console) -> Any:
    from exocm.core.inventory.fetch import fetch_inventory
    from exocm.core.inventory.snapshot import load_or_fetch

    with progress_bar(err, "inventory") as feed:
        if connection.sandbox_handle is not None:
            inv = fetch_inventory(connection.bridge, progress=feed)
        else:
            inv = load_or_fetch(connection.bridge, refresh=refresh, max_age=timedelta(minutes=max_age_min),
                                progress=feed)
    if inv.from_snapshot:
        minutes = inv.age.total_seconds() / 60
        err.print(f"inventory snapshot from {inv.fetched_at:%Y-%m-%d %H:%M} UTC ({minutes:.0f} min old); "
                  "--refresh reads the tenant again")
    else:
        err.print(f"inventory: {len(inv.frame):,} recipients read")
    return inv


def _readiness(frame: pd.DataFrame, value: bool, onprem_csv: Path | None, connection: Any,
               err: Console, now: datetime) -> pd.DataFrame | None:
    from exocm.core.detect.engine import detect
    from exocm.core.detect.readiness import flip_readiness
    from exocm.core.inventory.org_config import read_org_config

    onprem = None
    if onprem_csv is not None:
        onprem = onprem_csv_frame(onprem_csv)
    elif connection.sandbox_handle is not None:  # the embedded sandbox's own on-prem side, as findings reads it
        with tempfile.TemporaryDirectory() as tmp:
            data = sandbox_onprem_data(connection, Path(tmp))
        onprem = data.frame if data is not None else None
    org_config, _ = read_org_config(connection.bridge)  # the tenant rule never blocks a flip: no note here
    writeback = read_writeback(connection) if onprem is not None else None
    result = detect(frame, onprem, org_config=org_config, now=now, writeback=writeback)
    by_reason: dict[str, list[str]] = {}
    for code, why in sorted(result.not_checked.items()):
        by_reason.setdefault(why, []).append(code)
    for why, codes in by_reason.items():
        err.print(f"[dim]not checked ({escape(inert(why))}): {escape(', '.join(codes))}[/]")
    return flip_readiness(frame, result.findings, value)


def print_issues(err: Console, issues: list[dict[str, Any]], limit: int = 20) -> None:
    """Input lines that selected nothing, by line (first `limit`)."""
    for issue in issues[:limit]:
        err.print(f"[yellow]input:[/] {escape(inert(str(issue.get('message', issue))))}")
    if len(issues) > limit:
        err.print(f"[yellow]input:[/] ... and {len(issues) - limit} more (see 'exocm show PLAN --format json')")


def state_name(plan: Plan) -> str:
    """The property a plan sets (core.plan.tables decides its name per kind)."""
    return state_column(plan)


def operation_text(plan: Plan) -> str:
    """The write a plan sends, as the service spells it."""
    if plan.is_graph:
        collection = {"group": "groups", "contact": "contacts", "user": "users"}[plan.object_kind]
        return (f"PATCH /{collection}/{{id}}/onPremisesSyncBehavior {{\"isCloudManaged\": {str(plan.value).lower()}}}"
                " (Microsoft Graph)")
    return f"Set-Mailbox -IsExchangeCloudManaged ${str(plan.value).lower()}"


def counts_lines(plan: Plan) -> list[str]:
    """Counts per action and skip reason, in admin words."""
    lines = []
    for key, count in plan.counts().items():
        if key == "set":
            lines.append(f"  set    {count:>7,}  {state_name(plan)} -> {plan.value}")
        elif key.startswith("skip:"):
            reason = key[5:]
            lines.append(f"  skip   {count:>7,}  {REASON_TEXT.get(reason, reason)}")
        else:
            lines.append(f"  input  {count:>7,}  {key[6:]} input lines (selected nothing)")
    return lines


PLAN_EXAMPLES = """\b
Examples:
  exocm plan --set-cloud-managed true --where 'RecipientTypeDetails == "SharedMailbox" and IsDirSynced' -o shared.json
  exocm plan --set-cloud-managed true --csv pilot.csv --identity-column UserPrincipalName -o pilot.json
  exocm plan --set-cloud-managed true --all-dirsynced --exclude vip.txt --max 500 -o wave1.json
  exocm plan --set-cloud-managed false --where 'CustomAttribute1 == "SALE"' --onprem-csv onprem.csv
  exocm plan --kind group --set-cloud-managed true --where 'GroupType == "Distribution"' -o dls.json
then: exocm show PLAN, exocm apply PLAN
"""

SHOW_EXAMPLES = """\b
Examples:
  exocm show plan.json                     counts per action and reason, then the rows
  exocm show plan.json --format csv -o plan.csv
  exocm show undo.json                     an undo plan also lists the cloud values it overwrites
  exocm show plan.json >/dev/null; echo $?    0 nothing to change, 1 changes, 2 error
"""


@click.command(epilog=PLAN_EXAMPLES)
@connection_options
@tenant_set_options
@click.option("--set-cloud-managed", "value", required=True, metavar="true|false",
              help="The value to set IsExchangeCloudManaged to.")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Targets from a CSV (any Export-Csv format) or a one-per-line list.")
@click.option("--identity-column", metavar="COLUMN",
              help="CSV column holding the identity (default: first of Identity, ExternalDirectoryObjectId, "
                   "UserPrincipalName, PrimarySmtpAddress, EmailAddress, Mail, Alias).")
@click.option("--where", "where", metavar="EXPR",
              help='Targets by a filter over inventory columns, e.g. \'RecipientTypeDetails == "SharedMailbox" '
                   "and IsDirSynced' (OPATH spellings -eq -like -and ... work too).")
@click.option("--all-dirsynced", is_flag=True, help="Every dir-synced mailbox.")
@click.option("--exclude", "exclude", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Identities to leave out (CSV or one per line); they stay in the plan as skipped.")
@click.option("--types", "types", metavar="T,..", help="Only these RecipientTypeDetails (e.g. UserMailbox,SharedMailbox).")
@click.option("--max", "max_changes", type=click.IntRange(min=0), help="Pilot cap: at most N rows to change.")
@click.option("--onprem-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="On-prem export (scripts/Export-ExocmOnPrem.ps1) for detection's skip reasons.")
@click.option("--no-detect", is_flag=True, help="Do not run detection (skip reasons from the inventory only).")
@click.option("--refresh", is_flag=True, help="Read the tenant again even when a recent snapshot exists.")
@click.option("--snapshot-max-age", "snapshot_max_age", type=float, default=60.0, show_default=True,
              metavar="MIN", help="Reuse an inventory snapshot younger than this many minutes.")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Plan file to write (default: <data dir>/plans/plan-<time>-<digest>.json).")
@click.option("--accept-incomplete", is_flag=True,
              help="Go on with an inventory the service answered incompletely (@adminapi.errors).")
@kind_option
def plan(value: str, csv_path: Path | None, identity_column: str | None, where: str | None, all_dirsynced: bool,
         exclude: Path | None, types: str | None, max_changes: int | None, onprem_csv: Path | None,
         no_detect: bool, refresh: bool, snapshot_max_age: float, out: Path | None, accept_incomplete: bool,
         kind: str, **conn: Any) -> None:
    """Make a plan file: which mailboxes (or with --kind: groups, contacts, users) would change,
    and why the others are skipped.

    Nothing is changed in the tenant. Review it with 'exocm show PLAN', run it with
    'exocm apply PLAN'. A group plan converts children before parents.
    """
    target = parse_bool(value)
    tenant_set = pop_tenant_set(conn)
    if tenant_set_wanted(tenant_set):
        _plan_tenant_set(tenant_set, conn, target, where, all_dirsynced, csv_path, max_changes, out,
                         exclude=exclude, types=tuple(parse_types(types)) if types else (),
                         accept_incomplete=accept_incomplete)
    sources = [csv_path is not None, where is not None, all_dirsynced]
    if sum(sources) != 1:
        raise click.UsageError("choose exactly one of --csv FILE, --where EXPR, --all-dirsynced")
    if identity_column and csv_path is None:
        raise click.UsageError("--identity-column goes with --csv")
    kind = kind.lower()
    if kind != "mailbox" and types:
        raise click.UsageError("--types selects mailbox types; for groups use --where 'GroupType == \"Distribution\"'")
    err = stderr_console()
    if kind != "mailbox":
        _object_plan(kind, target, csv_path, identity_column, where, exclude, max_changes, onprem_csv, no_detect,
                     refresh, out, conn, err, all_dirsynced=all_dirsynced)
        return
    with user_errors(), open_connection(**conn) as connection:
        banner(err, connection)
        try:
            request = SelectionRequest(csv=csv_path, identity_column=identity_column, where=where,
                                       all_dirsynced=all_dirsynced, exclude=exclude,
                                       types=tuple(parse_types(types)) if types else ())
            inv = _load_inventory(connection, refresh=refresh, max_age_min=snapshot_max_age, err=err)
            incomplete = inv.incomplete_reason()
            if incomplete and not accept_incomplete:
                fail(incomplete)
            selection = select_targets(inv.frame, request)
        except SelectionError as exc:
            fail(str(exc))
        now = utc_now()
        readiness = None if no_detect else _readiness(inv.frame, target, onprem_csv, connection, err, now)
        result = plan_from_selection(
            inv.frame, selection, target, tenant=str(connection.bridge.tenant), bridge=str(connection.bridge.kind),
            inventory_fetched_at=inv.fetched_at, sandbox=bool(connection.is_sandbox), readiness=readiness,
            max_changes=max_changes, extra_source=embedded_source(connection), now=now,
        )
        path = out or default_plan_path(result, data_dir(), now=now)
        save_plan(result, path)
    print_issues(err, result.input_report)
    err.print("\n".join(counts_lines(result)) or "  (no rows)")
    err.print(f"plan {result.digest[:12]} written to {escape(str(path))}")
    if result.set_rows():
        err.print(f"next: exocm show {escape(shell_arg(path))}   then   exocm apply {escape(shell_arg(path))}")
    else:
        err.print("nothing to change: no row of this plan would be set ('exocm show PLAN' says why)")
    click.echo(str(path))


def _plan_tenant_set(tenant_set: dict[str, Any], conn: dict[str, Any], target: bool, where: str | None,
                     all_dirsynced: bool, csv_path: Path | None, max_changes: int | None, out: Path | None, *,
                     exclude: Path | None, types: tuple[str, ...], accept_incomplete: bool) -> None:
    """`plan --profiles/--all-profiles -o DIR`: one plan per tenant, DIR/<profile>.json."""
    from exocm.core.app.tenants import plan_job

    if csv_path is not None or (where is None) == (not all_dirsynced):
        raise click.UsageError("with a tenant set choose one of --where EXPR, --all-dirsynced (a CSV names one tenant)")
    if out is None:
        raise click.UsageError("with a tenant set, -o DIR names the directory for one plan per profile")
    out.mkdir(parents=True, exist_ok=True)
    present(run_set(tenant_set, conn, lambda name: plan_job(
        name, value=target, out_dir=out, where=where, max_changes=max_changes, exclude=exclude, types=types,
        accept_incomplete=accept_incomplete)), "table", None)


# --- show ------------------------------------------------------------------------------


def _object_plan(kind: str, target: bool, csv_path: Path | None, identity_column: str | None, where: str | None,
                 exclude: Path | None, max_changes: int | None, onprem_csv: Path | None, no_detect: bool,
                 refresh: bool, out: Path | None, conn: dict[str, Any], err: Console,
                 all_dirsynced: bool = False) -> None:
    """`exocm plan --kind group|contact|user`: the same selection grammar over the kind's inventory."""
    from exocm.core.detect.objects import detect_objects
    from exocm.core.inventory.onprem_objects import when_changed
    from exocm.core.plan.objects import build_object_plan

    with user_errors(), open_connection(**conn) as connection, tempfile.TemporaryDirectory() as tmp:
        banner(err, connection)
        inv = read_objects(connection, kind, refresh=refresh, err=err)
        frame = inv.frame
        err.print(f"inventory: {len(frame):,} {kind}s" + (" (snapshot)" if inv.from_snapshot else ""))
        try:
            selection = select_targets(frame, SelectionRequest(
                csv=csv_path, identity_column=identity_column, where=where, all_dirsynced=all_dirsynced,
                exclude=exclude))
        except SelectionError as exc:
            fail(str(exc))
        matched = None
        if not no_detect:
            matched, _ = object_onprem(connection, kind, frame, onprem_csv, Path(tmp))
        findings = detect_objects(kind, frame, onprem_when_changed=when_changed(matched) if matched else None) \
            if not no_detect else detect_objects(kind, frame.iloc[0:0])
        result = build_object_plan(
            kind, frame, selection.identities, target, tenant=str(connection.bridge.tenant), findings=findings,
            preset_skips=selection.preset_skips, max_changes=max_changes,
            source={**selection.source, "inventory_fetched_at": inv.fetched_at.isoformat(),
                    "sandbox": bool(connection.is_sandbox), **embedded_source(connection)},
            input_report=[i.to_json() for i in selection.issues],
        )
        path = out or default_plan_path(result, data_dir())
        save_plan(result, path)
    print_issues(err, result.input_report)
    err.print("\n".join(counts_lines(result)) or "  (no rows)")
    waves = {row.wave for row in result.set_rows() if row.wave is not None}
    if len(waves) > 1:
        err.print(f"  nesting: {len(waves)} waves, children before parents")
    err.print(f"plan {result.digest[:12]} ({kind}s) written to {escape(str(path))}")
    if result.set_rows():
        err.print(f"next: exocm show {escape(str(path))}   then   exocm apply {escape(str(path))}")
    else:
        err.print("nothing to change: no row of this plan would be set ('exocm show PLAN' says why)")
    click.echo(str(path))


def sandbox_note(source: dict[str, Any]) -> str:
    """' (SANDBOX ...)' when the plan was made on a sandbox, else ''."""
    embedded = source.get("embedded_sandbox")
    if isinstance(embedded, dict):
        return f" (SANDBOX: embedded, {embedded.get('size', 0):,} users, seed {embedded.get('seed')})"
    return " (SANDBOX)" if source.get("sandbox") else ""


def render_show_table(p: Plan, *, limit: int = TABLE_LIMIT) -> str:
    """The plan for a terminal: header, counts, input issues, rows, overwritten values."""
    age_h = p.age().total_seconds() / 3600
    lines = [
        f"# plan {p.digest[:12]} ({p.kind}, {p.object_kind}s) for tenant {inert(p.tenant)}{sandbox_note(p.source)}",
        f"# created {p.created_at} ({age_h:.1f} h ago) by exocm {inert(p.tool_version)}; bridge {inert(p.bridge)}",
        f"# operation: {operation_text(p)}",
        *[f"#{line}" for line in counts_lines(p)],
    ]
    for issue in p.input_report[:20]:
        lines.append(f"# input: {inert(str(issue.get('message', '')))}")
    if len(p.input_report) > 20:
        lines.append(f"# input: ... and {len(p.input_report) - 20} more")
    frame = plan_table_frame(p)
    cols = list(frame.columns)
    cells = [[inert(short_text(v, 48)) if v is not None else "" for v in row]
             for row in frame.head(limit).itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    if len(frame) > limit:
        lines.append(f"... {len(frame) - limit:,} more rows (--format csv or json shows all)")
    overwritten = [r for r in p.rows if r.action == "set" and r.overwritten]
    if p.kind == "undo" and p.value is False:
        basis = p.source.get("overwritten_basis", "backup")
        lines.append("")
        lines.append(f"# cloud values the next sync will OVERWRITE with on-prem values ({len(overwritten)} "
                     f"{p.object_kind}{'es' if p.object_kind == 'mailbox' else 's'}; "
                     f"compared with {'on-prem data' if basis == 'onprem' else 'the backup taken before the flip'}):")
        for row in overwritten[:limit]:
            lines.append(f"  {inert(row.display_name or row.identity)} <{inert(row.upn)}>")
            for attr, v in sorted((row.overwritten or {}).items()):
                lines.append(f"      {attr}: {inert(short_text(v.get('cloud')))}  ->  {inert(short_text(v.get('onprem')))}")
        if not overwritten:
            lines.append("  (none found)")
    return "\n".join(lines) + "\n"


def render_show_json(p: Plan) -> str:
    """The plan file plus counts, as one JSON object."""
    data = p.to_json()
    data["counts"] = p.counts()
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


@click.command(epilog=SHOW_EXAMPLES)
@click.argument("plan_path", metavar="PLAN", type=click.Path(path_type=Path))
@tenant_set_options
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE instead of stdout.")
@click.option("--limit", type=click.IntRange(min=1), default=TABLE_LIMIT, show_default=True,
              help="Rows in the table format.")
def show(plan_path: Path, fmt: str, out: Path | None, limit: int, **tenant_set: Any) -> None:
    """Show a plan: counts per action and reason, then the rows (read-only).

    With --profiles/--all-profiles, PLAN is the directory `plan -o DIR` wrote (DIR/<profile>.json)
    or a pattern with {profile}; a summary per tenant. Exit code 0 when nothing would change,
    1 when something would, 2 on error.
    """
    if tenant_set_wanted(tenant_set):
        from exocm.core.app.tenants import plan_for_profile, show_job

        present(run_set(tenant_set, {}, lambda name: show_job(name, plan_for_profile(plan_path, name))),
                "json" if fmt == "json" else "table", out)
    try:
        p = load_plan(plan_path)
    except PlanError as exc:
        fail(str(exc))
    if fmt == "json":
        text = render_show_json(p)
    elif fmt == "csv":
        text = "\ufeff" + to_csv_text(plan_rows_frame(p))
    else:
        text = render_show_table(p, limit=limit)
    write_output(text, out)
    sys.exit(exitcodes.CHANGES if p.set_rows() else exitcodes.OK)
