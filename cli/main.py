"""The `exocm` command: one entry point for the TUI, batch runs, runbooks and the sandbox.

Subcommands live one module each and are imported only when used, so `exocm --help`
stays fast and `exocm sandbox serve` never loads Textual.
"""
from __future__ import annotations

import logging

import click
from exocm.core import logs
from exocm.core.access.config import data_dir

from . import exitcodes
from .lazy_group import LazyGroup
from .stop_signals import ignore_further_interrupts

log = logging.getLogger(__name__)

# command name -> "module:attribute" (a click.Command or click.Group)
SUBCOMMANDS: dict[str, str] = {
    "sandbox": "exocm.cli.sandbox_cmd:sandbox",
    "login": "exocm.cli.profiles_cmd:login",
    "profiles": "exocm.cli.profiles_cmd:profiles",
    "inventory": "exocm.cli.inventory_cmd:inventory",
    "findings": "exocm.cli.findings_cmd:findings",
    "readiness": "exocm.cli.readiness_cmd:readiness",
    "plan": "exocm.cli.plan_cmd:plan",
    "show": "exocm.cli.plan_cmd:show",
    "apply": "exocm.cli.apply_cmd:apply",
    "undo": "exocm.cli.undo_cmd:undo",
    "report": "exocm.cli.undo_cmd:report",
    "tenant-default": "exocm.cli.tenant_default_cmd:tenant_default",
    "runbook": "exocm.cli.runbook_cmd:runbook",
    "tui": "exocm.cli.tui_cmd:tui",
    "enqueue": "exocm.cli.queue_cmd:enqueue_cmd",
    "worker": "exocm.cli.queue_cmd:worker_cmd",
}


@click.group(cls=LazyGroup, lazy=SUBCOMMANDS, invoke_without_command=True)
@click.version_option(package_name="exocm")
@click.option("--debug", is_flag=True, default=False,
              help=f"Log at DEBUG to the log file and print log records on stderr (also: {logs.LEVEL_ENV}=DEBUG).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """exocm: find what makes IsExchangeCloudManaged unsafe, fix it, then flip it in
    batches with a plan, a durable journal and an undo.

    With no command, opens the terminal UI (on the embedded SANDBOX tenant when no
    profile is configured). Internal errors leave their traceback in <data dir>/logs/exocm.log.
    """
    logs.configure(data_dir(), debug=debug)
    ctx.call_on_close(logs.stop_echo)  # stderr may be gone after the command (tests run many in one process)
    log.info("exocm %s started", ctx.invoked_subcommand or "tui")
    if ctx.invoked_subcommand is None:
        tui_cmd = cli.get_command(ctx, "tui")
        assert tui_cmd is not None
        ctx.invoke(tui_cmd)


def main() -> None:
    """Console-script entry point."""
    try:
        cli()
    except SystemExit as exc:
        if exc.code == exitcodes.INTERRUPTED:  # whichever command stopped on Ctrl-C: the process ends now
            ignore_further_interrupts()
        raise
