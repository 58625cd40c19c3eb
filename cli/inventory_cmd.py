"""`exocm inventory`: every EXO mailbox (and mail user) of a tenant, as a table, CSV or JSON.

Data goes to stdout (or --out FILE); the progress bar, the SANDBOX header and notes go to
stderr, so `exocm inventory --format csv > mailboxes.csv` is clean. On a configured tenant
the last snapshot is reused (its age is shown) unless --refresh; the in-process sandbox is
always read fresh (it is local and cheap to read, and another command may have changed it).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import pandas as pd
from exocm.core.csvio import to_csv_text
from exocm.core.events import Progress
from exocm.core.inventory.fetch import Inventory, InventoryCancelled, fetch_inventory
from exocm.core.inventory.onprem_live import ONPREM_JOIN_COLUMNS, with_onprem_columns
from exocm.core.inventory.snapshot import load_or_fetch
from exocm.core.model import INVENTORY_COLUMNS
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from . import exitcodes
from .connection import connection_options, open_connection
from .console import stderr_console, write_output
from .errors import inert, user_errors
from .object_kinds import (
    kind_option,
    read_objects,
    render_objects_csv,
    render_objects_json,
    render_objects_table,
)
from .onprem_options import load_onprem_live_data, onprem_live_requested, onprem_options, pop_onprem_options
from .tenant_set import pop_tenant_set, present, run_set, tenant_set_options
from .tenant_set import wanted as tenant_set_wanted

#: Columns of the table format (the full set goes to CSV and JSON).
TABLE_COLUMNS: tuple[str, ...] = (
    "DisplayName",
    "UserPrincipalName",
    "RecipientTypeDetails",
    "IsDirSynced",
    "IsExchangeCloudManaged",
    "PreviousRecipientTypeDetails",
    "WhenChanged",
    "ExternalDirectoryObjectId",
    "OnPremRecipientTypeDetails",  # with --onprem-live / --onprem-host
)
_CELL_MAX = 40


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def render_table(frame: pd.DataFrame, *, label: str, header: str) -> str:
    """Plain aligned text: a '#' comment line naming the tenant (SANDBOX when it is one), then the rows."""
    columns = [c for c in TABLE_COLUMNS if c in frame.columns]
    rows = [[inert(_cell(v))[:_CELL_MAX] for v in row] for row in frame[columns].itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    lines = [f"# {label}: {header}"]
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def _export_frame(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """The frame's export columns, led by a Tenant column (csvio writes missing values as empty cells)."""
    columns = [*INVENTORY_COLUMNS, *(c for c in ONPREM_JOIN_COLUMNS if c in frame.columns)]
    out = frame[columns]
    out.insert(0, "Tenant", label)
    return out


def render_csv(frame: pd.DataFrame, *, label: str) -> str:
    """CSV for Excel: UTF-8 BOM, every field quoted, formula cells escaped; first column Tenant."""
    return "\ufeff" + to_csv_text(_export_frame(frame, label))


def render_json(inv: Inventory, *, label: str, sandbox: bool) -> str:
    """One JSON object: tenant, SANDBOX flag, fetch time, and the records."""
    head = {
        "tenant": inv.tenant,
        "label": label,
        "sandbox": sandbox,
        "fetched_at": inv.fetched_at.isoformat(),
        "from_snapshot": inv.from_snapshot,
        "dirsynced_only": inv.dirsynced_only,
        "count": len(inv.frame),
        "notes": list(inv.notes),
    }
    frame = inv.frame.reset_index(drop=True)
    records = frame.to_json(orient="records", date_format="iso", date_unit="s", force_ascii=False)
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "records": ' + records + "}\n"


def _age_text(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


@contextmanager
def _progress_bar(err: Console) -> Iterator[Any]:
    """A rich progress bar on stderr; yields the ProgressCallback that feeds it."""
    bar = RichProgress(
        TextColumn("[bold]inventory[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[eta]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )
    with bar:
        task: TaskID = bar.add_task("inventory", total=None, rate="", eta="", note="")

        def feed(event: Progress) -> None:
            rate = f"{event.rate:,.0f}/s" if event.rate else ""
            eta = f"ETA {event.eta_s:.0f}s" if event.eta_s is not None and event.total else ""
            note = f"pages {event.counters.get('pages', 0)}"
            if "http_429" in event.counters and event.counters["http_429"]:
                note += f", 429s {event.counters['http_429']}"
            bar.update(task, completed=event.done, total=event.total, rate=rate, eta=eta, note=note)
            if event.message and event.message not in ("started", "done") and "falling back" in event.message:
                err.print(f"[yellow]note:[/] {escape(inert(event.message))}")

        yield feed


EXAMPLES = """\b
Examples:
  exocm inventory                                 the embedded SANDBOX when no profile is configured
  exocm inventory --profile contoso --dirsynced-only
  exocm inventory --format csv -o mailboxes.csv   for Excel (UTF-8 BOM, formulas escaped)
  exocm inventory --format json --refresh         read the tenant again, not the snapshot
  exocm inventory --onprem-live                   add the on-prem side read over WinRM
  exocm inventory --kind group                    groups through Microsoft Graph (also contact, user)
"""


@click.command(epilog=EXAMPLES)
@connection_options
@click.option("--dirsynced-only", is_flag=True, help="Only dir-synced objects (Get-Mailbox -Filter 'IsDirSynced -eq $true').")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="Output format (CSV is written for Excel: UTF-8 BOM, formula cells escaped).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE (atomically) instead of stdout.")
@click.option("--refresh", is_flag=True, help="Fetch from the service even when a snapshot exists.")
@onprem_options
@tenant_set_options
@kind_option
def inventory(dirsynced_only: bool, fmt: str, out: Path | None, refresh: bool, kind: str, **conn: Any) -> None:
    """List every Exchange Online mailbox and mail user (Get-Mailbox joined with Get-User),
    or with --kind every group, contact or user through Microsoft Graph.

    Fetches with a partitioned parallel read, shows progress on stderr, and saves a snapshot
    that later runs reuse (--refresh fetches again).
    """
    err = stderr_console()
    live = pop_onprem_options(conn)
    kind = kind.lower()
    tenant_set = pop_tenant_set(conn)
    if tenant_set_wanted(tenant_set):
        if kind != "mailbox":
            raise click.UsageError("with a tenant set, the inventory is of mailboxes (--kind mailbox)")
        from exocm.core.app.tenants import inventory_job

        present(run_set(tenant_set, conn, lambda name: inventory_job(name, refresh=refresh)),
                "json" if fmt == "json" else "table", out)
    if kind != "mailbox":
        _object_inventory(kind, fmt, out, refresh, conn, err, dirsynced_only=dirsynced_only)
        return
    try:
        with user_errors(), open_connection(**conn) as connection:
            label = str(connection.label)
            sandbox = bool(connection.is_sandbox)
            if not sandbox:  # open_connection itself announces a SANDBOX on stderr
                err.print(f"tenant [bold]{escape(inert(label))}[/]")
            with _progress_bar(err) as feed:
                if connection.sandbox_handle is not None:
                    inv = fetch_inventory(connection.bridge, dirsynced_only=dirsynced_only, progress=feed)
                else:
                    inv = load_or_fetch(connection.bridge, refresh=refresh, dirsynced_only=dirsynced_only,
                                        progress=feed)
            if onprem_live_requested(live):  # the on-prem side over WinRM, joined as detection joins it
                with err.status("reading on-prem mailboxes over WinRM ..."):
                    onprem = load_onprem_live_data(live, connection)
                inv.frame = with_onprem_columns(inv.frame, onprem.frame)
                err.print(f"on-prem: {len(onprem.frame):,} recipients from {escape(inert(onprem.source))}")
    except InventoryCancelled:
        err.print("inventory cancelled")
        sys.exit(exitcodes.INTERRUPTED)

    stats = inv.stats
    if inv.from_snapshot:
        err.print(f"snapshot from {inv.fetched_at:%Y-%m-%d %H:%M} UTC ({_age_text(inv.age)} old); "
                  "--refresh fetches again")
    else:
        err.print(f"{len(inv.frame):,} records ({stats.get('mailboxes', 0):,} mailboxes, "
                  f"{stats.get('mail_users', 0):,} mail users) in {stats.get('elapsed_s', 0):.1f}s")
    for note in inv.notes:
        err.print(f"[yellow]note:[/] {escape(inert(note))}")

    header = (f"tenant {inv.tenant}, {len(inv.frame)} records, fetched {inv.fetched_at:%Y-%m-%d %H:%M} UTC"
              + (" (snapshot)" if inv.from_snapshot else ""))
    if fmt == "csv":
        text = render_csv(inv.frame, label=label)
    elif fmt == "json":
        text = render_json(inv, label=label, sandbox=sandbox)
    else:
        text = render_table(inv.frame, label=label, header=header)
    write_output(text, out)


def _object_inventory(kind: str, fmt: str, out: Path | None, refresh: bool, conn: dict[str, Any],
                      err: Console, *, dirsynced_only: bool = False) -> None:
    """`exocm inventory --kind group|contact|user` (--dirsynced-only: objects synced from AD only)."""
    with user_errors(), open_connection(**conn) as connection:
        label = str(connection.label)
        sandbox = bool(connection.is_sandbox)
        if not sandbox:
            err.print(f"tenant [bold]{escape(inert(label))}[/]")
        inv = read_objects(connection, kind, refresh=refresh, err=err)
    if dirsynced_only:
        inv.frame = inv.frame[inv.frame["OnPremisesSyncEnabled"].map(lambda v: bool(v))]
    if inv.from_snapshot:
        err.print(f"snapshot from {inv.fetched_at:%Y-%m-%d %H:%M} UTC ({_age_text(inv.age)} old); "
                  "--refresh fetches again")
    else:
        err.print(f"{len(inv.frame):,} {kind}s, {inv.stats.get('requests', 0):,} Graph requests")
    header = (f"tenant {inv.tenant}, {len(inv.frame)} {kind}s, fetched {inv.fetched_at:%Y-%m-%d %H:%M} UTC"
              + (" (snapshot)" if inv.from_snapshot else ""))
    if fmt == "csv":
        text = render_objects_csv(inv.frame, kind, label=label)
    elif fmt == "json":
        text = render_objects_json(inv, label=label, sandbox=sandbox)
    else:
        text = render_objects_table(inv.frame, kind, label=label, header=header)
    write_output(text, out)
