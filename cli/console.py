"""Where commands talk to the admin: one stderr console, and the tenant banner.

Data goes to stdout; progress, notes and banners go to stderr. Lines are not hard-wrapped
(soft_wrap), so logs and CI output keep one message per line.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from .errors import inert


def stderr_console() -> Console:
    """The console for progress and notes (stdout stays for data)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def banner(err: Console, connection: Any) -> None:
    """Say which tenant this is, SANDBOX in bold when it is one (once: skipped when the
    connection already announced itself)."""
    if getattr(connection, "announced", False):
        return
    if connection.is_sandbox:
        err.print(f"[bold black on yellow] SANDBOX [/] tenant {escape(str(connection.bridge.tenant))} "
                  "(a local test tenant, not Microsoft)")
    else:
        err.print(f"tenant [bold]{escape(inert(str(connection.label)))}[/]")


def csv_for(text: str, out: Path | None) -> str:
    """CSV text as written: with a UTF-8 BOM when it goes to a file (Excel then reads it as UTF-8), bare on stdout."""
    return ("\ufeff" if out is not None else "") + text


def write_output(text: str, out: Path | None) -> None:
    """A command's data: to `out` atomically (0600, then 'wrote OUT' on stderr), else to stdout as UTF-8."""
    if out is not None:
        from exocm.core.csvio import write_text_atomic

        write_text_atomic(out, text)
        click.echo(f"wrote {out}", err=True)
    else:
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.flush()
