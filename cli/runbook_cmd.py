"""`exocm runbook`: fix dual mailboxes and stale previous-mailbox info, step by step, resumable.

    exocm runbook list
    exocm runbook run NAME (--identity X ... | --from-findings CODE | --csv FILE)
                      [--confirm-irreversible "<tenant>:<count>"] [--yes]
    exocm runbook status [RUN]
    exocm runbook resume RUN [--confirm-irreversible "<tenant>:<count>"]
    exocm runbook abort RUN

Runs are saved under the data dir (one state file and one audit log per run) and can be
resumed hours later, from the CLI or the TUI. A gate (an irreversible step) passes only with
the typed confirmation "<tenant>:<count>": typed at the prompt on a terminal, or given with
--confirm-irreversible for unattended runs; without it the run stops and prints the exact
command to continue. Before it starts, a run shows its steps, its objects and which steps write
(and which are irreversible), and asks; `--yes` (or `--confirm-irreversible`, which implies it)
starts unattended; without either and without a terminal it stops before its first write (exit 3).
`--yes` never passes a gate.

Exit codes: 0 completed (every object fixed or nothing to do), 1 paused while waiting for a
sync (resume later), 2 error or some objects failed, 3 stopped at a gate or a manual step
(needs a person), 4 authentication failed, 130 interrupted (resume continues).
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from exocm.core.access.config import ConfigError, Profile
from exocm.core.runbooks import (
    RUNBOOKS,
    GateRequest,
    ManualRequest,
    RunEvent,
    RunExecutor,
    RunHooks,
    RunOutcome,
    RunPreview,
    RunState,
    RunStateError,
    RunStore,
    Services,
    get_runbook,
    identities_from_csv,
    identities_from_findings,
    new_run,
    preview_run,
    resolve_identities,
)

from . import exitcodes
from .connection import Connection, connection_options, embedded_source, open_connection
from .embedded_sandbox import DEFAULT_SANDBOX_SEED, DEFAULT_SANDBOX_SIZE
from .errors import fail, inert, user_errors

EXIT_FOR_STATUS: dict[str, int] = {
    "completed": exitcodes.OK,
    "waiting": exitcodes.CHANGES,
    "needs_confirmation": exitcodes.NEEDS_CONFIRMATION,
    "needs_manual": exitcodes.NEEDS_CONFIRMATION,
    "error": exitcodes.ERROR,
    "interrupted": exitcodes.INTERRUPTED,
    "aborted": exitcodes.ERROR,
}


def _err(text: str = "", **style: Any) -> None:
    click.secho(text, err=True, **style)


# ----------------------------------------------------------------------------- connections
def _onprem_bridge(connection: Connection, host: str | None, user: str | None, ca: str | None) -> Any:
    """The on-prem PSRP bridge: --onprem-host, else the embedded sandbox's, else the profile's (or None)."""
    from exocm.core.inventory.onprem_live import (
        PASSWORD_ENV,
        OnPremSettings,
        open_onprem_bridge,
        settings_from,
    )

    env: dict[str, str] = dict(os.environ)
    handle = connection.sandbox_handle
    settings: OnPremSettings | None
    if host is None and handle is not None:
        info = handle.info
        if not info.get("winrm_onprem_url"):
            return None
        settings = OnPremSettings(url=str(info["winrm_onprem_url"]), username=str(info["winrm_username"]),
                                  ca_file=str(info["ca_file"]))
        env[PASSWORD_ENV] = str(info["winrm_password"])  # in memory only
    else:
        settings = settings_from(connection.profile, host=host, username=user, ca_file=ca)
    if settings is None:
        return None
    return open_onprem_bridge(settings, env=env, tenant=connection.bridge.tenant)


def graph_client(connection: Connection) -> Any:
    """A Graph client for the connection's tenant (the sandbox's own secret in memory), or None when
    the profile names no Graph endpoint."""
    return _graph(connection)


def _graph(connection: Connection) -> Any:
    from exocm.core.access.graph_host import open_graph

    profile: Profile = connection.profile
    if connection.sandbox_handle is not None:
        assert profile.secret_env is not None
        env = {profile.secret_env: str(connection.sandbox_handle.info["client_secret"])}
        return open_graph(profile, env=env, persist_tokens=False)
    try:
        return open_graph(profile)
    except ConfigError:
        return None


def _services(connection: Connection, options: Mapping[str, Any], onprem: Mapping[str, Any]) -> Services:
    return Services(exo=connection.bridge, graph=_graph(connection),
                    onprem=_onprem_bridge(connection, onprem.get("onprem_host"), onprem.get("onprem_user"),
                                          onprem.get("onprem_ca")),
                    onprem_group_changes=bool(options.get("onprem_group_changes")),
                    embedded=connection.sandbox_handle is not None)


def runbook_services(connection: Connection, onprem_group_changes: bool = False) -> Services:
    """The services a runbook needs on an open connection (the TUI calls this per run)."""
    return _services(connection, {"onprem_group_changes": onprem_group_changes}, {})


def _actor(connection: Connection) -> str:
    from exocm.core.execute.journal import local_actor

    username = getattr(getattr(connection.bridge, "_tokens", None), "username", None)
    who = f"user:{username}" if username else f"app:{connection.profile.client_id}"
    return f"{who} (local {local_actor()})"


# ----------------------------------------------------------------------------- the faces' hooks
class CliFace:
    """Prompts, countdowns and progress lines on stderr; knows whether a person is there."""

    def __init__(self, *, interactive: bool, confirmation: str | None) -> None:
        self.interactive = interactive
        self.confirmation = confirmation
        self.tty = sys.stderr.isatty()
        self._last_plain = 0.0
        self._line_open = False

    # -- hooks -----------------------------------------------------------------------------
    def confirm(self, request: GateRequest, attempt: int, error: str) -> str | None:
        """The typed confirmation: --confirm-irreversible first, then (on a terminal) a prompt."""
        self._close_line()
        if attempt == 1 and self.confirmation is not None:
            return self.confirmation
        if error:
            _err(f"not confirmed: {error}", fg="red")
        if not self.interactive:
            return None
        _err("")
        _err(f"IRREVERSIBLE: {inert(request.text)}", fg="red", bold=True)
        for label in request.objects[:10]:
            _err(f"  - {inert(label)}")
        if len(request.objects) > 10:
            _err(f"  ... and {len(request.objects) - 10} more")
        typed = click.prompt(f'Type "{request.expected}" to go ahead (Enter stops here)', default="",
                             show_default=False, err=True)
        return typed.strip() or None

    def manual(self, request: ManualRequest) -> bool:
        """Show what to do; on a terminal wait for Enter and check again, else stop."""
        self._close_line()
        _err("")
        _err(f"MANUAL STEP: {inert(request.title)}", fg="yellow", bold=True)
        for item in request.items:
            _err(f"  {inert(item.label)}: {inert(item.instructions)}")
            if item.detail:
                _err(f"    now: {inert(item.detail)}")
        if not self.interactive:
            return False
        answer = click.prompt("Press Enter to check again once done, or type q to stop", default="",
                              show_default=False, err=True)
        return answer.strip().lower() not in ("q", "quit", "stop")

    def on_event(self, event: RunEvent) -> None:
        """Progress lines; waits show a countdown (one rewritten line on a terminal)."""
        if event.kind == "step":
            self._close_line()
            _err(f"> {inert(event.message)} ({event.total} object(s))", bold=True)
        elif event.kind == "object":
            self._close_line()
            colour = {"failed": "red", "done": "green", "skipped": "blue"}.get(event.status)
            _err(f"    {inert(event.object)}: {event.status}" + (f" - {inert(event.message)}" if event.message else ""),
                 fg=colour)
        elif event.kind == "wait":
            self._wait_line(event)

    def sleep(self, seconds: float) -> None:
        """Sleep with a per-second countdown on a terminal."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.tty and seconds >= 2:
                click.echo(f"\r    next check in {left:4.0f} s ", err=True, nl=False)
                self._line_open = True
            time.sleep(min(1.0, left))

    # -- helpers ---------------------------------------------------------------------------
    def _wait_line(self, event: RunEvent) -> None:
        remaining = _clock(event.remaining_s or 0.0)
        nap = event.next_poll_s or 0.0
        when = f"{nap:.0f} s" if nap >= 10 else f"{nap:.1f} s"
        text = (f"    waiting: {event.pending} of {event.total} not there yet; next check in {when}; "
                f"gives up in {remaining}")
        if self.tty:
            click.echo("\r" + text.ljust(100), err=True, nl=False)
            self._line_open = True
        elif time.monotonic() - self._last_plain >= 15:
            self._last_plain = time.monotonic()
            _err(text)

    def _close_line(self) -> None:
        if self._line_open:
            click.echo("", err=True)
            self._line_open = False


def _clock(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# ----------------------------------------------------------------------------- shared running
def _run_options(poll_interval: float | None, wait_timeout: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if poll_interval is not None:
        out["poll_interval_s"] = poll_interval
        out["verify_delay_s"] = min(poll_interval, 2.0)
    if wait_timeout is not None:
        out["wait_timeout_s"] = wait_timeout
    return out


def _continue_command(state: RunState, outcome: RunOutcome) -> str:
    cmd = f"exocm runbook resume {state.run_id}"
    if outcome.gate is not None:
        cmd += f' --confirm-irreversible "{outcome.gate.expected}"'
    return cmd


#: Manual steps that --onprem-group-changes lets exocm do itself.
_GROUP_STEPS = ("leave-synced-groups", "rejoin-synced-groups")


def _drive(state: RunState, store: RunStore, services: Services, face: CliFace, actor: str) -> None:
    """Run (or resume) and exit with the outcome's code, saying how to continue."""
    runbook = get_runbook(state.runbook)
    hooks = RunHooks(confirm=face.confirm, manual=face.manual, on_event=face.on_event)
    executor = RunExecutor(runbook, state, store, services, hooks=hooks, sleep=face.sleep, actor=actor)
    try:
        outcome = executor.run()
    except KeyboardInterrupt:
        face._close_line()
        _err(f"interrupted; the run is saved. Continue with: exocm runbook resume {state.run_id}", fg="yellow")
        raise SystemExit(exitcodes.INTERRUPTED) from None
    face._close_line()
    code = EXIT_FOR_STATUS.get(outcome.status, exitcodes.ERROR)
    counts = outcome.counts
    if outcome.status == "completed" and counts.get("failed"):
        code = exitcodes.ERROR
    _err(f"run {state.run_id}: {inert(outcome.message)}", bold=True)
    for obj in state.objects.values():
        if obj.status == "failed":
            _err(f"  failed: {inert(obj.label)}: {inert(obj.reason)}", fg="red")
    if outcome.status != "completed":
        if state.embedded and not isinstance(state.options.get("embedded_sandbox"), dict):
            _err("note: this run used an embedded sandbox that was not saved, so it cannot be resumed; "
                 "serve one ('exocm sandbox serve --state FILE') and add a profile to try resumable runs.",
                 fg="yellow")
        elif outcome.status in ("needs_confirmation", "needs_manual", "waiting", "error"):
            _err("To continue, run:", bold=True)
            _err(f"  {_continue_command(state, outcome)}")
            if (outcome.manual is not None and outcome.manual.step in _GROUP_STEPS
                    and not state.options.get("onprem_group_changes")):
                _err(f"(exocm can change the on-prem groups itself over WinRM: 'exocm runbook abort {state.run_id}', "
                     "then run it again with --onprem-group-changes)")
    raise SystemExit(code)


def _show_preview(preview: RunPreview, shown_objects: int = 10) -> None:
    """The runbook's steps, its objects, and which steps write (and which are irreversible), on stderr."""
    _err(f"{preview.title} ({preview.runbook}) in tenant {inert(preview.label or preview.tenant)}", bold=True)
    _err(f"objects ({preview.count}):")
    for label in preview.objects[:shown_objects]:
        _err(f"  - {inert(label)}")
    if preview.count > shown_objects:
        _err(f"  ... and {preview.count - shown_objects} more")
    _err("steps:")
    for step in preview.steps:
        colour = "red" if step.irreversible and step.writes else "yellow" if step.writes else None
        _err(f"  {step.number:>2}. [{step.kind}] {step.title}  ({step.note})", fg=colour)
    _err(inert(preview.summary()))


def _confirm_start(preview: RunPreview, *, yes: bool, interactive: bool) -> None:
    """Ask before the first write: --yes (or --confirm-irreversible) starts, a person is asked, and with
    neither on a non-interactive stdin the run is not started (exit 3, saying what to pass)."""
    if not preview.writes or yes:
        return
    first = preview.first_write
    assert first is not None
    if interactive:
        if not click.confirm(f"Start? exocm writes to the tenant from step {first.number} ({first.title})",
                             default=False, err=True):
            fail("not started; nothing was written", exitcodes.NEEDS_CONFIRMATION)
        return
    fail(f"not started: this runbook writes to the tenant from step {first.number} and stdin is not a terminal "
         "to ask; pass --yes to start it unattended (irreversible steps still need --confirm-irreversible "
         f"\"{preview.gate_confirmation or '<tenant>:<count>'}\", which also implies --yes)",
         exitcodes.NEEDS_CONFIRMATION)


#: The embedded sandbox runs a sync cycle this often (seconds), so a run's waits can finish.
EMBEDDED_SYNC_INTERVAL_S = 2.0


@contextmanager
def _connected(conn: dict[str, Any]) -> Iterator[Connection]:
    with user_errors(), open_connection(**conn, sync_interval=EMBEDDED_SYNC_INTERVAL_S) as connection:
        yield connection


# ----------------------------------------------------------------------------- commands
@click.group()
def runbook() -> None:
    """Remediation runbooks: fix dual mailboxes and stale previous-mailbox info, resumably."""


@runbook.command("list")
@click.option("--steps", "show_steps", is_flag=True, help="Also list every step and its kind.")
def list_runbooks(show_steps: bool) -> None:
    """The built-in runbooks and the findings they fix."""
    for rb in RUNBOOKS.values():
        fixes = ", ".join(rb.fixes) or "-"
        needs = ", ".join(sorted(rb.requires)) or "Exchange Online only"
        click.echo(f"{rb.name:<30} {rb.title}")
        click.echo(f"{'':<30} fixes {fixes}; needs {needs}")
        if show_steps:
            for i, step in enumerate(rb.steps, start=1):
                mark = " (IRREVERSIBLE)" if step.irreversible and step.kind != "gate" else ""
                click.echo(f"{'':<32}{i:>2}. [{step.kind}] {step.title}{mark}")
        click.echo("")


RUN_EXAMPLES = """\b
Examples:
  exocm runbook run clear-previous-mailbox-info --from-findings PREVIOUS_MAILBOX_INFO
  exocm runbook run dual-mailbox-keep-onprem --identity jdoe@contoso.com --onprem-group-changes
  exocm runbook run dual-mailbox-keep-cloud --csv duals.csv --yes
  exocm runbook run clear-previous-mailbox-info --csv users.csv --confirm-irreversible "<tenant id>:12"
A gate stops the run (exit 3) and prints the exact 'exocm runbook resume RUN ...' to go on;
'exocm runbook status' lists runs.
"""


@runbook.command("run", epilog=RUN_EXAMPLES)
@click.argument("name", type=click.Choice(sorted(RUNBOOKS)))
@click.option("--identity", "identities", multiple=True, metavar="X",
              help="A user (UPN, SMTP address, ExternalDirectoryObjectId ...); repeatable.")
@click.option("--from-findings", "from_findings", metavar="CODE", default=None,
              help="Every object with this finding (e.g. DUAL_MAILBOX), from a fresh inventory.")
@click.option("--csv", "csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Identities from a CSV (Identity/UserPrincipalName/... column) or a one-per-line list.")
@click.option("--identity-column", default=None, metavar="NAME", help="The CSV column holding identities.")
@click.option("--confirm-irreversible", "confirmation", metavar='"<tenant>:<count>"', default=None,
              help="Pass the gate(s) for exactly this tenant and number of objects (unattended runs).")
@click.option("--yes", is_flag=True, help="Start without asking (gates still need their typed confirmation); "
              "without it, a run that writes asks first, or stops with exit 3 when stdin is not a terminal.")
@click.option("--interactive/--no-interactive", default=None,
              help="Prompt at gates and manual steps (default: when stdin is a terminal).")
@click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Seconds between checks while waiting for a sync (default 60).")
@click.option("--wait-timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Pause the run when a wait lasts longer (default 2 h); resume keeps waiting.")
@click.option("--onprem-group-changes", is_flag=True,
              help="Change on-prem AD licensing group membership over WinRM instead of asking you to.")
@click.option("--onprem-host", default=None, metavar="HOST", help="On-prem Exchange server (WinRM).")
@click.option("--onprem-user", default=None, metavar="U", help="WinRM user; password from EXOCM_ONPREM_PASSWORD.")
@click.option("--onprem-ca", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CA bundle of the Exchange server's TLS certificate.")
@connection_options
def run(name: str, identities: tuple[str, ...], from_findings: str | None, csv_file: Path | None,
        identity_column: str | None, confirmation: str | None, yes: bool, interactive: bool | None,
        poll_interval: float | None, wait_timeout: float | None, onprem_group_changes: bool,
        onprem_host: str | None, onprem_user: str | None, onprem_ca: str | None, **conn: Any) -> None:
    """Start runbook NAME for some objects and drive it as far as it can go."""
    sources = sum(bool(x) for x in (identities, from_findings, csv_file))
    if sources != 1:
        raise click.UsageError("give exactly one of --identity, --from-findings or --csv")
    rb = get_runbook(name)
    if from_findings and from_findings.strip().upper() not in rb.fixes:
        raise click.UsageError(f"runbook {name} fixes {', '.join(rb.fixes)}, not {from_findings}")
    interactive = sys.stdin.isatty() if interactive is None else interactive
    options = {**_run_options(poll_interval, wait_timeout), "onprem_group_changes": onprem_group_changes}
    onprem = {"onprem_host": onprem_host, "onprem_user": onprem_user, "onprem_ca": onprem_ca}
    with _connected(conn) as connection:
        if connection.sandbox_handle is not None and poll_interval is None:
            options["poll_interval_s"] = EMBEDDED_SYNC_INTERVAL_S / 2
        options.update(embedded_source(connection))  # 'runbook resume' reopens the same embedded sandbox
        services = _services(connection, options, onprem)
        try:
            store = RunStore()
            issues: list[str] = []
            if identities:
                values = [("--identity", v) for v in identities]
                source: dict[str, Any] = {"kind": "identity", "values": list(identities)}
            elif csv_file is not None:
                from exocm.core.plan.selection import SelectionError

                try:
                    values, issues = identities_from_csv(csv_file, identity_column)
                except SelectionError as exc:
                    fail(str(exc))
                source = {"kind": "csv", "file": csv_file.name}
            else:
                assert from_findings is not None
                _err(f"reading the inventory to find {from_findings.upper()} ...")
                try:
                    values = identities_from_findings(services.exo, services.onprem, from_findings)
                except KeyError as exc:
                    fail(str(exc.args[0]))
                source = {"kind": "findings", "code": from_findings.upper()}
            targets = resolve_identities(services.exo, values, source=source)
            targets.issues[:0] = issues
            for issue in targets.issues:
                _err(f"skipped: {inert(issue)}", fg="yellow")
            if not targets.objects:
                fail("nothing to do: no object to run the runbook on")
            preview = preview_run(rb, targets.objects, tenant=connection.bridge.tenant, label=connection.label)
            _show_preview(preview)
            _confirm_start(preview, yes=yes or confirmation is not None, interactive=interactive)
            state = new_run(rb, targets, store=store, tenant=connection.bridge.tenant, label=connection.label,
                            profile=None if connection.sandbox_handle is not None else connection.profile.name,
                            sandbox=connection.is_sandbox, embedded=connection.sandbox_handle is not None,
                            options=options, actor=_actor(connection))
            _err(f"run {state.run_id} (state: {store.state_path(state.run_id)})")
            face = CliFace(interactive=interactive, confirmation=confirmation)
            _drive(state, store, services, face, _actor(connection))
        finally:
            services.close()


@runbook.command("resume")
@click.argument("run_id", metavar="RUN")
@click.option("--confirm-irreversible", "confirmation", metavar='"<tenant>:<count>"', default=None,
              help="Pass the gate for exactly this tenant and number of objects.")
@click.option("--interactive/--no-interactive", default=None,
              help="Prompt at gates and manual steps (default: when stdin is a terminal).")
@click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Seconds between checks while waiting for a sync.")
@click.option("--wait-timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Pause again when a wait lasts longer.")
@click.option("--profile", "profile", metavar="NAME", default=None,
              help="Connection profile (default: the one the run was started with).")
@click.option("--onprem-host", default=None, metavar="HOST", help="On-prem Exchange server (WinRM).")
@click.option("--onprem-user", default=None, metavar="U", help="WinRM user; password from EXOCM_ONPREM_PASSWORD.")
@click.option("--onprem-ca", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CA bundle of the Exchange server's TLS certificate.")
def resume(run_id: str, confirmation: str | None, interactive: bool | None, poll_interval: float | None,
           wait_timeout: float | None, profile: str | None, onprem_host: str | None, onprem_user: str | None,
           onprem_ca: str | None) -> None:
    """Continue a run where it stopped (a gate, a manual step, a wait, an error or a crash)."""
    store = RunStore()
    with user_errors():
        try:
            state = store.load(run_id)
        except RunStateError as exc:
            fail(str(exc))
    if state.is_final:
        fail(f"run {state.run_id} is {state.status}; nothing to resume")
    conn: dict[str, Any] = {"profile": profile or state.profile}
    if state.embedded and not profile:
        recorded = state.options.get("embedded_sandbox")
        if not isinstance(recorded, dict):  # a run started where the size was not recorded (the TUI)
            recorded = {"size": DEFAULT_SANDBOX_SIZE, "seed": DEFAULT_SANDBOX_SEED}
            _err(f"note: run {state.run_id} did not record its embedded sandbox; resuming on the default one "
                 f"({DEFAULT_SANDBOX_SIZE:,} users, seed {DEFAULT_SANDBOX_SEED})", fg="yellow")
        conn = {"sandbox": True, "size": int(recorded["size"]), "seed": int(recorded["seed"])}
    state.options.update(_run_options(poll_interval, wait_timeout))
    interactive = sys.stdin.isatty() if interactive is None else interactive
    onprem = {"onprem_host": onprem_host, "onprem_user": onprem_user, "onprem_ca": onprem_ca}
    with _connected(conn) as connection:
        if connection.bridge.tenant.lower() != state.tenant.lower():
            fail(f"run {state.run_id} belongs to tenant {state.tenant}, but the connection is to "
                 f"{connection.bridge.tenant}; pass --profile for the run's tenant")
        services = _services(connection, state.options, onprem)
        try:
            face = CliFace(interactive=interactive, confirmation=confirmation)
            _err(f"resuming run {state.run_id} ({state.runbook}, {len(state.objects)} object(s)) at "
                 f"{state.current_step() or 'the end'}")
            _drive(state, store, services, face, _actor(connection))
        finally:
            services.close()


@runbook.command("abort")
@click.argument("run_id", metavar="RUN")
def abort(run_id: str) -> None:
    """Stop a run for good (nothing is undone; what was done stays in the audit log)."""
    store = RunStore()
    with user_errors():
        try:
            state = store.load(run_id)
            if state.is_final:
                fail(f"run {state.run_id} is already {state.status}")
            with store.locked(state.run_id):
                state = store.load(state.run_id)
                state.status = "aborted"
                state.message = "aborted by request"
                store.save(state, now=time.time())
                with store.open_audit(state) as audit:
                    audit.append([{"type": "audit", "event": "aborted", "category": "run", "tenant": state.tenant,
                                   "runbook": state.runbook, "actor": _local_actor(), "object": None, "step": None,
                                   "before": None, "after": None, "outcome": "aborted", "detail": "aborted by request"}])
        except RunStateError as exc:
            fail(str(exc))
    click.echo(f"run {state.run_id} aborted")


def _local_actor() -> str:
    from exocm.core.execute.journal import local_actor

    return str(local_actor())


@runbook.command("status")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Deprecated: same as --format json.")
def status(run_id: str | None, fmt: str, as_json: bool) -> None:
    """List runs, or show one run's objects and steps."""
    as_json = as_json or fmt == "json"
    store = RunStore()
    if run_id is None:
        runs = store.list()
        if as_json:
            click.echo(json.dumps([r.__dict__ for r in runs], indent=1, default=str))
            return
        if not runs:
            click.echo("no runbook runs yet ('exocm runbook run NAME ...' starts one)")
            return
        click.echo(f"{'RUN':<26} {'RUNBOOK':<28} {'STATUS':<19} {'DONE':>5} {'FAIL':>5} {'LEFT':>5}  AT")
        for r in runs:
            click.echo(f"{r.run_id:<26} {r.runbook:<28} {r.status:<19} {r.counts.get('done', 0):>5} "
                       f"{r.counts.get('failed', 0):>5} {r.counts.get('active', 0):>5}  {r.current_step or '-'}")
        return
    with user_errors():
        try:
            state = store.load(run_id)
        except RunStateError as exc:
            fail(str(exc))
    if as_json:
        click.echo(json.dumps(state.to_json(), indent=1, default=str))
        return
    rb = RUNBOOKS.get(state.runbook)
    click.echo(f"run      {state.run_id}")
    click.echo(f"runbook  {state.runbook}")
    click.echo(f"tenant   {inert(state.label)} ({state.tenant})" + ("  SANDBOX" if state.sandbox else ""))
    click.echo(f"status   {state.status}" + (f": {inert(state.message)}" if state.message else ""))
    click.echo(f"started  {state.created_at} by {inert(state.actor)}; updated {state.updated_at}")
    counts = state.counts()
    click.echo("objects  " + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("done", "active", "failed", "skipped")))
    click.echo("")
    click.echo(f"{'OBJECT':<40} {'STATUS':<8} {'STEP':<24} DETAIL")
    for obj in state.objects.values():
        step = obj.step or "-"
        detail = obj.reason or (obj.steps.get(obj.step).detail if obj.step in obj.steps else "")
        click.echo(f"{inert(obj.label)[:40]:<40} {obj.status:<8} {step:<24} {inert(detail or '')[:80]}")
    if rb is not None and state.current_step():
        step_obj = rb.step(state.current_step() or "")
        click.echo("")
        click.echo(f"next     {step_obj.title} [{step_obj.kind}]")
    if state.status in ("needs_confirmation", "needs_manual", "waiting", "error", "interrupted", "running"):
        click.echo(f"continue exocm runbook resume {state.run_id}")
