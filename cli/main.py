"""The `exocm` command: one entry point for the TUI, batch runs, runbooks and the sandbox.

Subcommands live one module each and are imported only when used, so `exocm --help`
stays fast and `exocm sandbox serve` never loads Textual.
"""
from __future__ import annotations

import importlib
from typing import Any

import click

# command name -> "module:attribute" (a click.Command or click.Group)
SUBCOMMANDS: dict[str, str] = {
    "sandbox": "exocm.cli.sandbox_cmd:sandbox",
    "login": "exocm.cli.profiles_cmd:login",
    "profiles": "exocm.cli.profiles_cmd:profiles",
    "inventory": "exocm.cli.inventory_cmd:inventory",
    "findings": "exocm.cli.findings_cmd:findings",
    "plan": "exocm.cli.plan_cmd:plan",
    "show": "exocm.cli.plan_cmd:show",
    "apply": "exocm.cli.apply_cmd:apply",
    "undo": "exocm.cli.undo_cmd:undo",
    "report": "exocm.cli.undo_cmd:report",
    "tenant-default": "exocm.cli.tenant_default_cmd:tenant_default",
    "runbook": "exocm.cli.runbook_cmd:runbook",
    "tui": "exocm.cli.tui_cmd:tui",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return _not_yet(cmd_name)
            raise
        command: Any = getattr(module, attr)
        return command  # type: ignore[no-any-return]

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a file that cannot be read or written is one line and exit 2, not a traceback."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise  # click's own handling (stdout closed by `| head`)
        except OSError as exc:
            from .errors import fail

            where = f" {exc.filename}" if exc.filename else ""
            fail(f"cannot read or write{where}: {exc.strerror or exc}")


def _not_yet(name: str) -> click.Command:
    @click.command(name=name, help="(not available in this build)")
    def missing() -> None:
        raise click.ClickException(f"'exocm {name}' is not available in this build")

    return missing


@click.group(cls=LazyGroup, invoke_without_command=True)
@click.version_option(package_name="exocm")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """exocm: find what makes IsExchangeCloudManaged unsafe, fix it, then flip it in
    batches with a plan, a durable journal and an undo.

    With no command, opens the terminal UI (on the embedded SANDBOX tenant when no
    profile is configured).
    """
    if ctx.invoked_subcommand is None:
        tui_cmd = cli.get_command(ctx, "tui")
        assert tui_cmd is not None
        ctx.invoke(tui_cmd)


def main() -> None:
    """Console-script entry point."""
    cli()
