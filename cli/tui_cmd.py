"""`exocm tui` (and `exocm` with no command): the terminal UI on a profile or the embedded sandbox.

The connection is opened by the app in a worker (the UI shows at once); this module only says
how: it hands the app a function that opens the connection with cli/connection.py and wraps it
in a core Session. The TUI itself never imports cli or the sandbox.
"""
from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
from exocm.core.access.auth import DeviceCode
from exocm.core.access.config import ConfigError, embedded_sandbox_state
from exocm.core.app.session import Session

from .connection import SANDBOX_LABEL, connection_options, open_connection, resolve_profile_name
from .embedded_sandbox import banner_text, sandbox_label
from .errors import user_errors
from .onprem_options import (
    check_onprem_sources,
    onprem_live_loader,
    onprem_live_requested,
    onprem_options,
    pop_onprem_options,
)


def _expected_label(profile: str | None, sandbox: bool) -> tuple[str, bool]:
    """What the header says before the connection is open (SANDBOX when no profile applies)."""
    if sandbox:
        return SANDBOX_LABEL, True
    try:
        name = resolve_profile_name(profile)
    except ConfigError:
        return "", False
    return (SANDBOX_LABEL, True) if name is None else (name, False)


EXAMPLES = """\b
Examples:
  exocm tui                                       the embedded SANDBOX (or the default profile)
  exocm tui --profile contoso --onprem-csv onprem.csv
  exocm tui --profile contoso --onprem-live       on-prem side over WinRM from the profile's endpoint
  exocm tui --profile contoso --onprem-host ex01.contoso.local --onprem-user CONTOSO\\admin
"""


@click.command(name="tui", epilog=EXAMPLES)
@connection_options
@onprem_options
@click.option("--onprem-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="On-prem recipients exported with scripts/Export-ExocmOnPrem.ps1 (enables on-prem checks).")
def tui(profile: str | None, sandbox: bool, size: int, seed: int, onprem_csv: Path | None, **onprem: Any) -> None:
    """Open the terminal UI: browse mailboxes, see findings, select, preview, apply, undo.

    On-prem data (for dual mailboxes and the other on-prem checks) comes from --onprem-csv, or live
    over WinRM with --onprem-host/--onprem-live as for 'exocm findings'; the embedded SANDBOX
    brings its own on-prem side.
    """
    live = pop_onprem_options(onprem)
    check_onprem_sources(onprem_csv, live)
    from exocm.tui.keymap import load_keymap  # the TUI's own import stays out of other commands' startup

    with user_errors():
        keymap = load_keymap()
    app, stack = build_app(profile, sandbox, size, seed, onprem_csv=onprem_csv, onprem_live=live, keymap=keymap)
    try:
        app.run()
    finally:
        stack.close()


def build_app(profile: str | None, sandbox: bool, size: int, seed: int, *, onprem_csv: Path | None = None,
              onprem_live: dict[str, Any] | None = None, keymap: dict[str, str] | None = None,
              **knobs: Any) -> tuple[Any, ExitStack]:
    """The app `exocm tui` runs, and the stack that closes its connection (after the app ends).

    `onprem_live`: the --onprem-* options (pop_onprem_options); `knobs` go to the embedded sandbox
    (tests hand in a tenant and a clock).
    """
    from exocm.tui.app import ExocmApp

    live = onprem_live or {}
    with user_errors():
        label, is_sandbox = _expected_label(profile, sandbox)
    stack = ExitStack()
    app_ref: dict[str, Any] = {}

    def show_device_code(code: DeviceCode) -> None:
        app = app_ref["app"]
        text = code.message or f"To sign in, open {code.verification_uri} and enter the code {code.user_code}"
        app.call_from_thread(app.notify, text, title="Sign in", timeout=900)

    def connect() -> Session:
        connection = stack.enter_context(open_connection(
            profile, sandbox, size, seed, quiet=True,
            bridge_options={"device_code_callback": show_device_code},
            **{"sync_interval": 5.0, **knobs}))  # the embedded sandbox syncs, so runbook waits can finish
        handle = connection.sandbox_handle
        onprem_records = None
        onprem_data = None
        if onprem_live_requested(live):  # the same endpoint resolution and fetch as inventory/findings
            onprem_data = onprem_live_loader(live, connection)
        elif onprem_csv is None and handle is not None and hasattr(handle.tenant, "onprem_records"):
            onprem_records = handle.tenant.onprem_records  # the embedded sandbox's own on-prem side

        def services(onprem_group_changes: bool) -> Any:
            from .runbook_cmd import runbook_services

            return runbook_services(connection, onprem_group_changes)

        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exocm-readiness-")))

        def prerequisite_sources() -> Any:
            from .readiness_cmd import readiness_sources

            return readiness_sources(connection, onprem_csv=onprem_csv, live=live, workdir=workdir)[0]

        def object_onprem(kind: str, frame: Any) -> Any:
            """The embedded sandbox's AD side of a Graph kind (as an Export-Csv file), else none."""
            if handle is None:
                return None
            import tempfile
            from pathlib import Path

            from .object_kinds import object_onprem as read_ad

            with tempfile.TemporaryDirectory() as tmp:
                return read_ad(connection, kind, frame, None, Path(tmp))[0]

        return Session(connection.bridge, label=connection.label, is_sandbox=connection.is_sandbox,
                       profile_name=connection.profile.name, onprem_csv=onprem_csv,
                       onprem_records=onprem_records, onprem_data=onprem_data, snapshot_first=handle is None,
                       runbook_services=services, embedded_sandbox=connection.embedded,
                       prerequisite_sources=prerequisite_sources, graph=connection.graph,
                       object_onprem=object_onprem)

    embedded = is_sandbox and not profile
    state = embedded_sandbox_state(size, seed) if embedded else None
    detail = sandbox_label(size, seed, state) if embedded else ""
    app = ExocmApp(connect, label=label, is_sandbox=is_sandbox, keymap=keymap, sandbox_detail=detail)
    app_ref["app"] = app
    if embedded:  # stays on the terminal above the app (and after it): where this sandbox's state lives
        click.secho(banner_text(size, seed, state), err=True, fg="yellow", bold=True)
    return app, stack
