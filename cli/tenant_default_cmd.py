"""`exocm tenant-default show|set cloud|server`: the tenant-wide default for new mailboxes."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from exocm.core.execute.tenant_default import (
    WARNINGS,
    ProvisioningCheck,
    TenantDefaultError,
    check_onprem_provisioning,
    confirmation_phrase,
    provisioning_override_phrase,
    set_tenant_default,
    show_tenant_default,
)
from exocm.core.inventory.onprem import OnPremFormatError, load_onprem_csv
from rich.markup import escape

from . import exitcodes
from .apply_cmd import actor_of
from .connection import connection_options, open_connection
from .errors import fail, inert, user_errors
from .onprem_options import (
    check_onprem_sources,
    load_onprem_live_data,
    onprem_live_requested,
    onprem_options,
    pop_onprem_options,
    sandbox_onprem_data,
)
from .plan_cmd import banner, stderr_console


@click.group(name="tenant-default")
def tenant_default() -> None:
    """Whether NEW mailboxes get cloud-managed Exchange attributes (Set-OrganizationConfig)."""


@tenant_default.command(name="show")
@connection_options
def show_cmd(**conn: Any) -> None:
    """Show ExchangeAttributesCloudManagedByDefault."""
    err = stderr_console()
    with user_errors(), open_connection(**conn) as connection:
        banner(err, connection)
        try:
            state = show_tenant_default(connection.bridge)
        except TenantDefaultError as exc:
            fail(str(exc))
    click.echo(f"ExchangeAttributesCloudManagedByDefault: {state.cloud_managed_by_default} ({state.mode})")
    if state.source_property and state.source_property != "ExchangeAttributesCloudManagedByDefault":
        click.echo(f"read from: {state.source_property}")
    for warning in state.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")


def _provisioning(connection: Any, onprem_csv: Path | None, live: dict[str, Any], window: int) -> ProvisioningCheck:
    """On-prem provisioning as the on-prem data shows it (the same sources as findings)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if onprem_csv is not None:
                data = load_onprem_csv(onprem_csv)
            elif onprem_live_requested(live):
                data = load_onprem_live_data(live, connection)
            elif connection.sandbox_handle is not None:
                data = sandbox_onprem_data(connection, Path(tmp))
            else:
                return check_onprem_provisioning(None, window_days=window, reason="no on-prem data given "
                                                 "(--onprem-csv FILE, --onprem-host HOST or --onprem-live)")
        except OnPremFormatError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot read the on-prem file: {exc.strerror or exc}")
    if data is None:
        return check_onprem_provisioning(None, window_days=window, reason="the sandbox has no on-prem side")
    return check_onprem_provisioning(data.frame, window_days=window)


@tenant_default.command(name="set")
@connection_options
@onprem_options
@click.argument("mode", type=click.Choice(["cloud", "server"]))
@click.option("--yes", is_flag=True, help="Do not ask for the typed confirmation (never passes the override).")
@click.option("--onprem-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="On-prem export: refuse 'cloud' while remote mailboxes are still created on-prem.")
@click.option("--provisioning-window", type=click.IntRange(1, 3650), default=30, show_default=True, metavar="DAYS",
              help="Remote mailboxes created on-prem within DAYS count as on-prem provisioning.")
@click.option("--override-onprem-provisioning", "override", metavar="PHRASE", default=None,
              help="Turn the default on although on-prem still provisions mailboxes: the exact phrase the refusal "
                   "printed (journaled).")
def set_cmd(mode: str, yes: bool, onprem_csv: Path | None, provisioning_window: int, override: str | None,
            **conn: Any) -> None:
    """Set the default to cloud-managed (cloud) or back to on-prem managed (server).

    'cloud' is refused (exit 3) while the on-prem data shows remote mailboxes created on-prem in the
    last --provisioning-window days, unless the override phrase is typed or given.
    """
    err = stderr_console()
    live = pop_onprem_options(conn)
    check_onprem_sources(onprem_csv, live)
    with user_errors(), open_connection(**conn) as connection:
        banner(err, connection)
        tenant = str(connection.bridge.tenant)
        for warning in WARNINGS[mode]:
            err.print(f"[yellow]warning:[/] {escape(warning)}")
        provisioning: ProvisioningCheck | None = None
        if mode == "cloud":
            provisioning = _provisioning(connection, onprem_csv, live, provisioning_window)
            if provisioning.recent is None:
                err.print(f"[yellow]warning:[/] on-prem provisioning not checked: {escape(provisioning.reason)}")
            elif provisioning.blocks:
                phrase = provisioning_override_phrase(tenant, provisioning)
                err.print(f"[red]refused:[/] {provisioning.recent} remote mailbox(es) were created on-prem in the last "
                          f"{provisioning.window_days} days (e.g. {escape(', '.join(provisioning.samples[:3]))}): "
                          "turning the default on while mailboxes are still created on-prem is unsupported "
                          "(new users then get no Exchange Online object)")
                if override is None and sys.stdin.isatty():
                    override = click.prompt(f"Type '{phrase}' to turn it on anyway", default="",
                                            show_default=False, err=True).strip()
                if override != phrase:
                    fail(f"not changed: on-prem provisioning detected; to override pass "
                         f"--override-onprem-provisioning '{phrase}'", exitcodes.NEEDS_CONFIRMATION)
        if not yes:
            if not sys.stdin.isatty():
                fail("refusing to change the tenant default without --yes: stdin is not interactive",
                     exitcodes.NEEDS_CONFIRMATION)
            phrase = confirmation_phrase(tenant, "cloud" if mode == "cloud" else "server")
            answer = click.prompt(f"Type '{phrase}' to change the default of tenant {inert(str(connection.label))}",
                                  default="", show_default=False, err=True)
            if answer.strip() != phrase:
                fail("not confirmed; nothing was changed", exitcodes.NEEDS_CONFIRMATION)
        try:
            change = set_tenant_default(connection.bridge, "cloud" if mode == "cloud" else "server",
                                        actor=actor_of(connection), provisioning=provisioning, override=override)
        except TenantDefaultError as exc:
            fail(str(exc))
    click.echo(f"{change.status}: ExchangeAttributesCloudManagedByDefault {change.before} -> {change.after}")
    if change.error:
        err.print(f"note: {escape(inert(change.error))}")
    err.print(f"journal: {escape(str(change.journal_path))}")
    sys.exit(exitcodes.OK if change.verified else exitcodes.CHANGES)
