"""`exocm tenant-default show|set cloud|server`: the tenant-wide default for new mailboxes."""
from __future__ import annotations

import sys
from typing import Any

import click
from exocm.core.execute.tenant_default import (
    WARNINGS,
    TenantDefaultError,
    confirmation_phrase,
    set_tenant_default,
    show_tenant_default,
)
from rich.markup import escape

from . import exitcodes
from .apply_cmd import actor_of
from .connection import connection_options, open_connection
from .errors import fail, inert, user_errors
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


@tenant_default.command(name="set")
@connection_options
@click.argument("mode", type=click.Choice(["cloud", "server"]))
@click.option("--yes", is_flag=True, help="Do not ask for the typed confirmation.")
def set_cmd(mode: str, yes: bool, **conn: Any) -> None:
    """Set the default to cloud-managed (cloud) or back to on-prem managed (server)."""
    err = stderr_console()
    with user_errors(), open_connection(**conn) as connection:
        banner(err, connection)
        tenant = str(connection.bridge.tenant)
        for warning in WARNINGS[mode]:
            err.print(f"[yellow]warning:[/] {escape(warning)}")
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
                                        actor=actor_of(connection))
        except TenantDefaultError as exc:
            fail(str(exc))
    click.echo(f"{change.status}: ExchangeAttributesCloudManagedByDefault {change.before} -> {change.after}")
    if change.error:
        err.print(f"note: {escape(inert(change.error))}")
    err.print(f"journal: {escape(str(change.journal_path))}")
    sys.exit(exitcodes.OK if change.verified else exitcodes.CHANGES)
