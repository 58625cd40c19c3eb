"""`exocm readiness`: the prerequisites before any flip (`--scope flip`), and a go/no-go for the
last Exchange server (`--scope decommission`).

The checks and their verdicts live in core (`exocm.core.detect.prerequisites`); this module only
says where each fact comes from (`readiness_sources`, which the TUI's Readiness screen uses too)
and prints. Exit code 0 when no check that did not pass is at or above --fail-on (default high),
1 otherwise, 2 on errors.
"""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from exocm.core.access.config import ConfigError
from exocm.core.detect.engine import SEVERITIES
from exocm.core.detect.prerequisites import SCOPES, evaluate
from exocm.core.detect.prerequisites.gather import Sources, gather
from exocm.core.detect.prerequisites.report import (
    ReadinessMeta,
    fails,
    render_csv,
    render_html,
    render_json,
    render_text,
    summarise,
)
from rich.markup import escape

from . import exitcodes
from .connection import Connection, connection_options, open_connection
from .console import banner, csv_for, stderr_console, write_output
from .errors import inert, user_errors
from .onprem_options import (
    check_onprem_sources,
    onprem_live_loader,
    onprem_live_requested,
    onprem_options,
    pop_onprem_options,
)
from .tenant_set import pop_tenant_set, present, run_set, tenant_set_options
from .tenant_set import wanted as tenant_set_wanted

#: Where the sync server's WinRM listens when only a host name is given (HTTPS, the default port).
SYNC_PORT = 5986


def sync_server_url(host_or_url: str) -> str:
    """`sync01.contoso.com` -> `https://sync01.contoso.com:5986/wsman`; URLs are kept as given."""
    text = host_or_url.strip()
    return text if "://" in text else f"https://{text}:{SYNC_PORT}/wsman"


def _sync_opener(connection: Connection, host: str | None, live: Mapping[str, Any],
                 sync_user: str | None) -> tuple[Callable[[], Any] | None, str]:
    """An opener of the sync server's PSRP bridge (same auth options as --onprem-host), or the reason there is none."""
    from exocm.core.inventory.onprem_live import PASSWORD_ENV, OnPremSettings, endpoint_for

    env = dict(os.environ)
    handle = connection.sandbox_handle
    if host is None and handle is not None:
        info = handle.info
        if not info.get("winrm_sync_url"):
            return None, "the sandbox has no sync server (variant no-sync-server)"
        settings = OnPremSettings(url=str(info["winrm_sync_url"]), username=str(info["winrm_username"]),
                                  ca_file=str(info["ca_file"]), configuration="Microsoft.PowerShell")
        env.setdefault(PASSWORD_ENV, str(info["winrm_password"]))  # in memory only
    elif host is None and (connection.profile.extra or {}).get("winrm_sync_url"):
        extra = connection.profile.extra or {}  # a sandbox profile: its sync server, its stored password
        settings = OnPremSettings(url=str(extra["winrm_sync_url"]), username=str(extra.get("winrm_username") or ""),
                                  ca_file=connection.profile.ca_file, configuration="Microsoft.PowerShell",
                                  sandbox_profile=connection.profile.name if connection.profile.sandbox else None)
    elif host is None:
        return None, "no sync server given (--sync-server HOST or --sync-client-version V)"
    else:
        settings = OnPremSettings(url=sync_server_url(host), auth=str(live.get("onprem_auth") or "basic"),
                                  username=sync_user or live.get("onprem_user"),
                                  ca_file=live.get("onprem_ca") or connection.profile.ca_file,
                                  configuration="Microsoft.PowerShell",
                                  certificate_pem=live.get("onprem_cert"), certificate_key_pem=live.get("onprem_key"))
    endpoint_for(settings, env)  # a missing user or password is a one-line error now

    def open_bridge() -> Any:
        from exocm.core.bridge.psrp import PsrpBridge

        return PsrpBridge(endpoint_for(settings, env), "sync")
    return open_bridge, ""


def _graph(connection: Connection) -> Any:
    from .runbook_cmd import graph_client

    return graph_client(connection)


def readiness_sources(connection: Connection, *, onprem_csv: Path | None, live: Mapping[str, Any],
                      workdir: Path, sync_server: str | None = None, sync_user: str | None = None,
                      sync_client_version: str | None = None, refresh: bool = False,
                      window_days: int = 30, inventory: Callable[[], Any] | None = None) -> tuple[Sources, str]:
    """The Sources of every fact for this connection and these options, and the on-prem source's label.

    On the sandbox without on-prem options, the sandbox's own on-prem side is read as `findings`
    reads it (its Export-Csv file) and its Exchange server and sync server over WinRM.
    """
    from exocm.core.inventory.onprem import load_onprem_csv

    absent: dict[str, str] = {}
    handle = connection.sandbox_handle
    bridge = connection.bridge

    def read_inventory() -> Any:
        from exocm.core.inventory.fetch import fetch_inventory
        from exocm.core.inventory.snapshot import load_or_fetch

        inv = fetch_inventory(bridge) if handle is not None else load_or_fetch(bridge, refresh=refresh)
        return inv.frame

    onprem: Callable[[], Any] | None = None
    server: Callable[[], Any] | None = None
    label = ""
    if onprem_csv is not None:
        path = onprem_csv
        onprem, label = (lambda: load_onprem_csv(path).frame), f"file {path}"
        absent["onprem_server"] = ("the Exchange server was not read (public folders and hybrid objects need "
                                   "--onprem-host or --onprem-live)")
    elif onprem_live_requested(live) or handle is not None:
        options = dict(live) if onprem_live_requested(live) else {"onprem_live": True}
        try:
            load = onprem_live_loader(options, connection)
        except ConfigError as exc:
            if onprem_live_requested(live):
                raise
            absent["onprem"] = absent["onprem_server"] = str(exc)
        else:
            if onprem_live_requested(live):
                onprem, label = (lambda: load().frame), "live over WinRM"
            else:
                from .onprem_options import sandbox_onprem_data

                def sandbox_csv() -> Any:
                    data = sandbox_onprem_data(connection, workdir)
                    if data is None:
                        raise ConfigError("the sandbox has no on-prem side")
                    return data.frame
                onprem, label = sandbox_csv, "sandbox on-prem export (Export-Csv style)"
            server = _onprem_server_opener(options, connection)
    else:
        absent["onprem"] = "no on-prem data (give --onprem-csv FILE, --onprem-host HOST or --onprem-live)"
        absent["onprem_server"] = ("the Exchange server was not read (public folders and hybrid objects need "
                                   "--onprem-host or --onprem-live)")
    graph = _graph(connection)
    if graph is None:
        for name in ("organization", "licensed_synced_users", "synced_group_sizes", "cloud_sync"):
            absent[name] = "no Microsoft Graph endpoint for this profile (extra.graph_base_url, or a Microsoft cloud)"
    sync_open = None
    if not sync_client_version:
        sync_open, why = _sync_opener(connection, sync_server, live, sync_user)
        if sync_open is None:
            absent["sync_client_version"] = why
    sources = Sources(exo=bridge, inventory=inventory or read_inventory, onprem=onprem, onprem_server=server,
                      graph=graph, sync_server=sync_open, sync_client_version=sync_client_version, absent=absent,
                      provisioning_window_days=window_days)
    return sources, label


def _onprem_server_opener(options: Mapping[str, Any], connection: Connection) -> Callable[[], Any]:
    from exocm.core.inventory.onprem_live import open_onprem_bridge

    from .onprem_options import onprem_settings

    settings, env = onprem_settings(options, connection, os.environ)

    def open_bridge() -> Any:
        return open_onprem_bridge(settings, env=env)
    return open_bridge


EXAMPLES = """\b
Examples:
  exocm readiness                                   the embedded SANDBOX (its on-prem side and sync server read)
  exocm readiness --onprem-csv onprem.csv --sync-client-version 2.5.190.0
  exocm readiness --onprem-host ex01.contoso.local --onprem-user CONTOSO\\admin --sync-server sync01.contoso.local
  exocm readiness --scope decommission --onprem-live --format html -o last-server.html
  exocm readiness --format json --fail-on critical  exit 1 only for critical checks that did not pass (CI)
  exocm readiness --all-profiles --format html -o go-no-go.html   every tenant's verdict on one page
"""


@click.command(epilog=EXAMPLES)
@connection_options
@tenant_set_options
@onprem_options
@click.option("--onprem-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="On-prem export (Export-ExocmOnPrem.ps1, or any Export-Csv of Get-Mailbox/Get-RemoteMailbox).")
@click.option("--scope", type=click.Choice(SCOPES), default="flip", show_default=True,
              help="flip: before flipping mailboxes; decommission: also before removing the last Exchange server.")
@click.option("--sync-server", metavar="HOST", default=None,
              help="Entra Connect Sync server to read its build from over WinRM (HOST or https://HOST:5986/wsman; "
                   "the same auth options as --onprem-host).")
@click.option("--sync-user", metavar="U", default=None, help="WinRM user on the sync server (default: --onprem-user).")
@click.option("--sync-client-version", metavar="V", default=None,
              help="The Entra Connect Sync build, when you read it yourself (instead of --sync-server).")
@click.option("--provisioning-window", type=click.IntRange(1, 3650), default=30, show_default=True,
              metavar="DAYS", help="Remote mailboxes created on-prem within DAYS count as on-prem provisioning.")
@click.option("--fail-on", type=click.Choice(SEVERITIES, case_sensitive=False), default="high", show_default=True,
              help="Exit 1 when a check that did not pass is at this severity or worse.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "html"]), default="table",
              show_default=True, help="Output format (html: one self-contained file for a change ticket).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE (atomically) instead of stdout.")
@click.option("--refresh", is_flag=True, help="Fetch the inventory from the service even when a snapshot exists.")
def readiness(onprem_csv: Path | None, scope: str, sync_server: str | None, sync_user: str | None,
              sync_client_version: str | None, provisioning_window: int, fail_on: str, fmt: str, out: Path | None,
              refresh: bool, **conn: Any) -> None:
    """Check the prerequisites before any flip, or before removing the last Exchange server.

    Each check has a stable code, a result (pass, warn, fail, or unknown with the reason it could
    not be checked), the evidence and the fix. exocm only reads: it changes nothing.
    """
    if sync_server and sync_client_version:
        raise click.UsageError("--sync-server and --sync-client-version exclude each other")
    err = stderr_console()
    live = pop_onprem_options(conn)
    check_onprem_sources(onprem_csv, live)
    tenant_set = pop_tenant_set(conn)
    if tenant_set_wanted(tenant_set):
        from exocm.core.app.tenants import readiness_job

        if onprem_csv is not None or onprem_live_requested(live) or sync_server:
            raise click.UsageError("with a tenant set, each tenant's on-prem side comes from its profile's endpoint "
                                   "(--sync-client-version may be given; --sync-server not)")
        outcomes = run_set(tenant_set, conn, lambda name: readiness_job(
            name, scope=scope, fail_on=fail_on, refresh=True, sync_client_version=sync_client_version))
        from exocm.core.detect.prerequisites.report import render_tenant_set_csv, render_tenant_set_html

        present(outcomes, fmt, out, csv=render_tenant_set_csv, html=render_tenant_set_html)
    with user_errors(), open_connection(**conn) as connection, tempfile.TemporaryDirectory() as tmp:
        banner(err, connection)
        sources, label = readiness_sources(connection, onprem_csv=onprem_csv, live=live, workdir=Path(tmp),
                                           sync_server=sync_server, sync_user=sync_user,
                                           sync_client_version=sync_client_version, refresh=refresh,
                                           window_days=provisioning_window)
        with err.status(f"checking readiness ({scope}) ..."):
            gathered = gather(sources, scope=scope)
        checks = evaluate(gathered.facts, scope)
        meta = ReadinessMeta(tenant=str(connection.bridge.tenant), label=str(connection.label), scope=scope,
                             sandbox=bool(connection.is_sandbox), onprem_source=label,
                             elapsed_s=gathered.elapsed_s, notes=list(gathered.facts.notes))
    summary = summarise(checks, scope)
    for check in checks:
        if check.result == "unknown":
            err.print(f"[yellow]unknown:[/] {check.code}: {escape(inert(check.evidence))}")
    if fmt == "json":
        text = render_json(checks, summary, meta)
    elif fmt == "csv":
        text = csv_for(render_csv(checks), out)
    elif fmt == "html":
        text = render_html(checks, summary, meta)
    else:
        text = render_text(checks, summary, label=str(meta.label))
    write_output(text, out)
    sys.exit(exitcodes.CHANGES if fails(checks, fail_on) else exitcodes.OK)
