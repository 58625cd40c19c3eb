"""`exocm apply PLAN`: run a plan with a durable journal; Ctrl-C stops cleanly and can be resumed.

Without --yes it asks for a typed confirmation naming the tenant and the number of
changes, and refuses on a non-interactive stdin. Progress goes to stderr (a rich bar on a
terminal, a plain line every 10 s otherwise). Exit codes: 0 every row verified, skipped or
stale; 1 some rows failed or could not be verified; 2 refused or error; 3 confirmation
needed; 130 interrupted (the journal path and the resume command are printed).
"""
from __future__ import annotations

import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click
from exocm.core.events import Progress
from exocm.core.execute.apply import (
    ApplyRefused,
    ApplyResult,
    apply_plan,
    check_plan,
    confirmation_phrase,
    pending_rows,
)
from exocm.core.execute.journal import local_actor, plan_history
from exocm.core.paths import shell_arg
from exocm.core.plan.planfile import Plan, PlanError, load_plan
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from . import exitcodes
from .connection import connection_options, follow_recorded_sandbox, open_connection
from .console import banner, stderr_console
from .errors import fail, inert, user_errors
from .stop_signals import on_stop_signals
from .tenant_set import pop_tenant_set, present, run_set, tenant_set_options
from .tenant_set import wanted as tenant_set_wanted


def confirm(err: Console, p: Plan, pending: int, label: str) -> None:
    """Typed confirmation; refuses (exit 3) when stdin is not a terminal."""
    if not sys.stdin.isatty():
        fail("refusing to apply without --yes: stdin is not interactive (add --yes in runbooks)",
             exitcodes.NEEDS_CONFIRMATION)
    phrase = confirmation_phrase(p.tenant, pending)
    noun = f"{p.object_kind}s" if p.is_graph else "mailboxes"
    state = "isCloudManaged" if p.is_graph else "IsExchangeCloudManaged"
    if p.kind == "undo" and p.value is False:
        losing = sum(1 for r in p.set_rows() if r.overwritten)
        what = "the Exchange attributes" if not p.is_graph else f"these {p.object_kind}s"
        err.print(f"[yellow]warning:[/] this hands {what} back to on-premises AD: the next sync "
                  f"overwrites the cloud values of {losing:,} {noun} ('exocm show PLAN' lists them; "
                  "'exocm undo ... --export-overwritten FILE' saves them).")
    err.print(f"This sets {state}=[bold]{p.value}[/] on [bold]{pending:,}[/] {noun} "
              f"in tenant [bold]{escape(inert(label))}[/] ({escape(p.tenant)}).")
    answer = click.prompt(f"Type '{phrase}' to continue", default="", show_default=False, err=True)
    if answer.strip() != phrase:
        fail("not confirmed; nothing was changed", exitcodes.NEEDS_CONFIRMATION)


def actor_of(connection: Any) -> str:
    """Who runs this: the signed-in account or app id, and the local account."""
    profile = getattr(connection, "profile", None)
    who = None
    tokens = getattr(connection.bridge, "_tokens", None)
    username = getattr(tokens, "username", None) if tokens is not None else None
    if username:
        who = f"user:{username}"
    elif profile is not None and getattr(profile, "client_id", None):
        who = f"app:{profile.client_id}"
    local = local_actor()
    return f"{who} (local {local})" if who else local


def bridge_for_plan(connection: Any, p: Plan, concurrency: int = 8) -> tuple[Any, Any]:
    """(bridge, row IO) a plan is applied through: the EXO bridge for mailboxes (IO None: the engine's
    default), the tenant's Graph bridge with an ObjectIO for groups, contacts and users."""
    if not p.is_graph:
        return connection.bridge, None
    from exocm.core.execute.objects_io import ObjectIO

    graph = connection.graph(max_concurrency=max(concurrency, 8))
    return graph, ObjectIO(graph, p.object_kind)


class ProgressView:
    """Feeds core Progress events to a rich bar (terminal) or plain lines (logs)."""

    def __init__(self, err: Console) -> None:
        self.err = err
        self.last: Progress | None = None
        self._plain_at = 0.0
        self.bar = RichProgress(
            TextColumn("[bold]apply[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
            console=err, transient=False, disable=not err.is_terminal,
        )
        self.task = self.bar.add_task("apply", total=None, note="")

    def note(self, event: Progress) -> str:
        c = event.counters
        parts = [f"ok {c.get('ok', 0)}", f"skipped {c.get('skipped', 0)}", f"stale {c.get('stale', 0)}",
                 f"failed {c.get('failed', 0)}"]
        if event.rate:
            parts.append(f"{event.rate:,.1f}/s")
        if event.eta_s is not None:
            parts.append(f"ETA {event.eta_s:,.0f}s")
        if c.get("concurrency") is not None:
            parts.append(f"conc {c.get('concurrency')}")
        parts.append(f"429s {c.get('http_429', 0)}")
        if event.message:
            parts.append(event.message)
        return "  ".join(parts)

    def __call__(self, event: Progress) -> None:
        if self.last is None and event.counters.get("journal"):
            self.err.print(f"journal: {escape(str(event.counters['journal']))}")
        self.last = event
        note = self.note(event)
        self.bar.update(self.task, completed=event.done, total=event.total, note=note)
        if not self.err.is_terminal and time.monotonic() - self._plain_at >= 10:
            self._plain_at = time.monotonic()
            self.err.print(f"apply {event.done}/{event.total}  {note}")


def summary_lines(result: ApplyResult) -> list[str]:
    """The end-of-run summary."""
    c = result.counts
    lines = [
        f"verified {c.get('verified', 0):,}, previously verified {c.get('previously_verified', 0):,}, "
        f"skipped {c.get('skipped', 0):,}, stale {c.get('stale', 0):,}, failed {c.get('failed', 0):,}, "
        f"unverified {c.get('applied_unverified', 0):,}, interrupted {c.get('interrupted', 0):,}, "
        f"not started {c.get('not_started', 0):,}",
        f"{result.elapsed_s:,.1f}s, {result.rows_per_s:,.1f} rows/s; "
        f"requests {result.bridge_stats.get('requests', '?')}, 429s {result.bridge_stats.get('http_429', '?')}",
        f"journal: {result.journal_path}",
    ]
    return lines


EXAMPLES = """\b
Examples:
  exocm apply plan.json                  asks you to type the tenant and the number of changes
  exocm apply plan.json --yes            unattended (runbooks, CI): no question asked
  exocm apply plan.json --resume         finish a run that was stopped (verified rows are never rewritten)
  exocm apply plan.json --concurrency 4 --max-write-rate 5
then: exocm report JOURNAL, and if needed exocm undo JOURNAL -o undo.json
"""


def _apply_tenant_set(tenant_set: dict[str, Any], conn: dict[str, Any], plans: Path, yes: bool,
                      concurrency: int) -> None:
    """`apply DIR --profiles/--all-profiles --yes`: each tenant's plan DIR/<profile>.json (or a
    pattern with {profile}), applied in parallel; each resumes from its own journals."""
    from exocm.core.app.tenants import apply_job, plan_for_profile

    if not yes:
        raise click.UsageError("applying a tenant set needs --yes (review first: exocm show DIR --all-profiles)")
    cancel = threading.Event()
    with on_stop_signals(lambda signum, frame: cancel.set()):
        outcomes = run_set(tenant_set, conn, lambda name: apply_job(
            name, plan_for_profile(plans, name), concurrency=concurrency, cancel=cancel), cancel=cancel)
    present(outcomes, "table", None)


@click.command(epilog=EXAMPLES)
@connection_options
@click.argument("plan_path", metavar="PLAN", type=click.Path(path_type=Path))
@tenant_set_options
@click.option("--yes", is_flag=True, help="Do not ask for the typed confirmation (runbooks).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Worker threads at most (the tenant's throttling adapts the real concurrency).")
@click.option("--resume", is_flag=True,
              help="Finish a plan an earlier run left (re-running a plan always skips its verified rows).")
@click.option("--max-age", "max_age_h", type=click.FloatRange(min=0.0), default=24.0, show_default=True,
              metavar="HOURS", help="Refuse a plan older than this.")
@click.option("--max-write-rate", type=click.FloatRange(min=0.1), default=None, metavar="PER_S",
              help="Never send more than this many writes per second.")
def apply(plan_path: Path, yes: bool, concurrency: int, resume: bool, max_age_h: float,
          max_write_rate: float | None, **conn: Any) -> None:
    """Apply a plan: re-read, write, read back and journal every row.

    Rows whose state changed since the plan are skipped as stale. Ctrl-C stops taking new
    rows, settles the ones in flight and prints how to resume.
    """
    from exocm.core.execute.apply import WritePacer

    err = stderr_console()
    tenant_set = pop_tenant_set(conn)
    if tenant_set_wanted(tenant_set):
        _apply_tenant_set(tenant_set, conn, plan_path, yes, concurrency)
    try:
        p = load_plan(plan_path)
    except PlanError as exc:
        fail(str(exc))
    max_age = timedelta(hours=max_age_h)
    follow_recorded_sandbox(click.get_current_context(), conn, p.source.get("embedded_sandbox"), f"plan {plan_path}")
    with user_errors(), open_connection(**conn) as connection:
        banner(err, connection)
        bridge, io = bridge_for_plan(connection, p, concurrency)
        try:
            check_plan(p, str(connection.bridge.tenant), max_age=max_age)
        except (ApplyRefused, PlanError) as exc:
            fail(str(exc))
        history = plan_history(p.digest)
        for warning in history.warnings:
            err.print(f"[yellow]journal:[/] {escape(inert(warning))}")
        done = sum(1 for r in p.rows if r.identity in history.verified)
        pending = len(pending_rows(p, history))
        if history.journals:
            err.print(f"{len(history.journals)} earlier run(s) of this plan: {done:,} rows already verified "
                      f"(never written again); {pending:,} to go")
        elif resume:
            err.print("no earlier run of this plan: starting from the beginning")
        if pending == 0:
            err.print("nothing to change: every row of the plan is verified or skipped")
        if pending and io is not None:  # a missing Graph permission is one line (exit 4) before any question
            io.read([next(r.identity for r in p.rows if r.action == "set" and r.identity not in history.verified)])
        if pending and not yes:
            confirm(err, p, pending, str(connection.label))
        cancel = threading.Event()
        view = ProgressView(err)
        outcome: dict[str, Any] = {}

        finished = threading.Event()

        def run() -> None:
            try:
                outcome["result"] = apply_plan(
                    bridge, p, progress=view, cancel=cancel, max_age=max_age,
                    concurrency=concurrency, actor=actor_of(connection), plan_path=plan_path.resolve(),
                    pacer=WritePacer(max_rate=max_write_rate), io=io,
                )
            except BaseException as exc:  # handed to the main thread
                outcome["error"] = exc
            finally:
                finished.set()

        def on_term(signum: int, frame: FrameType | None) -> None:
            cancel.set()

        worker = threading.Thread(target=run, name="exocm-apply", daemon=True)
        # SIGTERM on POSIX; Ctrl+Break and a closed console (SIGBREAK) on Windows
        with on_stop_signals(on_term):
            with view.bar:
                worker.start()
                # sleep, not Thread.join: a KeyboardInterrupt inside join() can leave the thread
                # looking finished while it still runs (CPython before 3.13)
                while not finished.is_set():
                    try:
                        time.sleep(0.1)
                    except KeyboardInterrupt:
                        if not cancel.is_set():
                            cancel.set()
                            err.print("[yellow]stopping:[/] no new rows; settling the writes in flight "
                                      "and flushing the journal...")
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, ApplyRefused | PlanError):
                fail(str(error))
            raise error
        result: ApplyResult = outcome["result"]
        embedded = connection.sandbox_handle is not None
    for line in summary_lines(result):
        err.print(escape(line))
    for warning in result.warnings:
        if warning.startswith("took over the lock"):
            err.print(f"[yellow]note:[/] {escape(inert(warning))}")
    if embedded and result.counts.get("stale") and not result.counts.get("verified"):
        err.print("note: the embedded sandbox changed since this plan was made (another apply, or "
                  "'exocm sandbox reset'); make a new plan with 'exocm plan ...'")
    resume_cmd = f"exocm apply {shell_arg(plan_path)} --resume"
    if result.cancelled:
        err.print(f"stopped. Resume with: [bold]{escape(resume_cmd)}[/]")
        sys.exit(exitcodes.INTERRUPTED)
    if result.error:
        err.print(f"[red]stopped:[/] {escape(inert(result.error))}")
        err.print(f"resume with: {escape(resume_cmd)}")
        sys.exit(exitcodes.ERROR)
    if result.remaining:
        err.print(f"{result.remaining:,} rows not done; see 'exocm report {escape(shell_arg(result.journal_path))}', "
                  f"retry with: {escape(resume_cmd)}")
        sys.exit(exitcodes.CHANGES)
    sys.exit(exitcodes.OK)
