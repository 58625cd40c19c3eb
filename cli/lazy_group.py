"""A click group whose subcommands are imported on first use, so `exocm --help` stays fast
and `exocm sandbox serve` never loads Textual."""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """The commands registered on the group plus `lazy` ones (name -> "module:attribute"), imported when used.

    A lazy command whose module is not in this build is listed as "(not available in this
    build)". A file that cannot be read or written ends as one line and exit 2, not a traceback; any
    other unexpected exception is an internal error: its traceback goes to the log file
    (core/logs.py) and the one line names that file.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: Mapping[str, str] = lazy if lazy is not None else {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = self.lazy.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            module = None
        command = getattr(module, attr, None) if module is not None else None
        return command if command is not None else _not_available(f"{ctx.command_path} {cmd_name}")

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
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug, or an expected error that escaped its command's handler
            from exocm.core.app.failures import failure_line

            from .errors import exit_code_for, fail

            fail(failure_line(exc, f"exocm {ctx.invoked_subcommand or ''}".strip()), exit_code_for(exc))


def _not_available(command_path: str) -> click.Command:
    name = command_path.rsplit(" ", 1)[-1]

    @click.command(name=name, help="(not available in this build)")
    def missing() -> None:
        raise click.ClickException(f"'{command_path}' is not available in this build")

    return missing
