"""The Apply screen: a running apply with live progress, pause/resume, cancel, a failure log, the journal path."""
from __future__ import annotations

import threading
from typing import ClassVar

from exocm.core.app.failures import failure_line
from exocm.core.events import Progress
from exocm.core.execute.apply import ApplyResult
from exocm.core.plan.planfile import Plan
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static

from ..messages import ApplyFinished, ApplyProgress, ApplyRowFailed
from ..widgets.progress_panel import ProgressPanel
from ..widgets.tenant_header import TenantHeader


class ApplyScreen(Screen[None]):
    """Runs core's apply in a worker; the UI stays live. Esc cancels (clean stop, journal flushed)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "pause", "Pause/resume", id="apply.pause"),
        Binding("escape", "cancel_or_back", "Cancel / back", id="apply.cancel"),
        Binding("j", "journals", "Journals", id="apply.journals"),
        Binding("r", "apply_rest", "Apply the rest", id="apply.rest"),
    ]

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.cancel_event = threading.Event()
        self.pause_event = threading.Event()
        self.running = False
        self.result: ApplyResult | None = None
        self.error: str | None = None
        self.failures = 0
        self.outcome = ""

    def compose(self) -> ComposeResult:
        yield TenantHeader("Apply")
        changes = len(self.plan.set_rows())
        graph = getattr(self.plan, "is_graph", False)
        state = "isCloudManaged" if graph else "IsExchangeCloudManaged"
        noun = f"{self.plan.object_kind}s" if graph else "mailboxes"
        yield Static(f"Applying {state} = {self.plan.value} to {changes:,} {noun} in tenant "
                     f"{self.plan.tenant} (plan {self.plan.short_digest}). Space pauses, Esc cancels.",
                     id="apply-summary", markup=False)
        yield ProgressPanel("Starting…", id="apply-progress")
        yield Static("Failures", classes="pane-title")
        yield RichLog(id="apply-failures", max_lines=5000, wrap=True, markup=False)
        yield Static("", id="apply-result")
        yield Footer()

    def on_mount(self) -> None:
        self.running = True
        self.refresh_bindings()
        self._apply_worker()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer follows the run: pause only while it runs, journals (dimmed) only after it ends."""
        if action == "pause":
            return self.running
        if action == "journals":
            return None if self.running else True
        if action == "apply_rest":
            return not self.running and self.result is not None and bool(self.result.remaining)
        return True

    @work(thread=True, exclusive=True, group="apply")
    def _apply_worker(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]

        def progress(event: Progress) -> None:
            self.post_message(ApplyProgress(event))

        def failed(identity: str, error: str) -> None:
            self.post_message(ApplyRowFailed(identity, error))

        try:
            result = session.apply(self.plan, progress=progress, cancel=self.cancel_event,
                                   pause=self.pause_event, on_failure=failed)
        except Exception as exc:  # noqa: BLE001 - shown; the journal (if any) stays as written
            self.post_message(ApplyFinished(None, failure_line(exc, "apply")))
            return
        self.post_message(ApplyFinished(result))

    def on_apply_progress(self, message: ApplyProgress) -> None:
        panel = self.query_one("#apply-progress", ProgressPanel)
        panel.update_progress(message.progress)
        if self.running:
            title = "Paused (space resumes)" if self.pause_event.is_set() else (
                "Cancelling… finishing the rows in flight" if self.cancel_event.is_set() else "Applying…")
            panel.set_title(title)

    def on_apply_row_failed(self, message: ApplyRowFailed) -> None:
        self.failures += 1
        self.query_one("#apply-failures", RichLog).write(f"{message.identity}: {message.error}")

    def on_apply_finished(self, message: ApplyFinished) -> None:
        self.running = False
        self.refresh_bindings()
        self.result = message.result
        self.error = message.error
        panel = self.query_one("#apply-progress", ProgressPanel)
        result_line = self.query_one("#apply-result", Static)
        result = message.result
        if message.error or result is None:
            error = message.error or "the run returned no result"
            panel.set_title("Apply failed")
            result_line.update(Text(f"Apply failed: {error}", style="bold red"))
            self.notify(error, severity="error", timeout=30)
            return
        if result.error:
            outcome = "stopped on an error"
        elif result.cancelled:
            outcome = "cancelled"
        elif result.complete:
            outcome = "complete"
        else:
            outcome = "incomplete"
        self.outcome = outcome
        panel.set_title(f"Apply {outcome}")
        counted = " · ".join(f"{k} {v:,}" for k, v in sorted(dict(result.counts).items()))
        text = Text(f"Apply {outcome}.", style="bold")  # Text, never markup: errors come from the service
        text.append(f" {counted}\nJournal: {result.journal_path}")
        if result.error:
            text.append(f"\n{result.error}", style="red")
        if result.remaining:
            text.append(f"\n{result.remaining:,} rows remain: r applies the rest (the same plan; verified rows "
                        "are not written again).")
        text.append("\nEsc goes back; j opens the journals (undo from there).")
        result_line.update(text)
        self.notify(f"Apply {outcome}. Journal: {result.journal_path}", timeout=15)

    def action_apply_rest(self) -> None:
        """After a cancelled or incomplete run: apply the same plan again (core resumes it)."""
        if self.running or self.result is None or not self.result.remaining:
            return
        self.cancel_event = threading.Event()
        self.pause_event = threading.Event()
        self.running = True
        self.refresh_bindings()
        self.query_one("#apply-progress", ProgressPanel).set_title("Applying the rest…")
        self.query_one("#apply-result", Static).update("")
        self._apply_worker()

    def action_pause(self) -> None:
        if not self.running:
            return
        panel = self.query_one("#apply-progress", ProgressPanel)
        if self.pause_event.is_set():
            self.pause_event.clear()
            panel.set_title("Applying…")
        else:
            self.pause_event.set()
            panel.set_title("Paused (space resumes)")

    def stop_for_quit(self) -> None:
        """The app is quitting: stop cleanly (as Esc does) and say so."""
        self.cancel_event.set()
        self.pause_event.clear()
        self.query_one("#apply-progress", ProgressPanel).set_title("Quitting… finishing the rows in flight")

    def action_cancel_or_back(self) -> None:
        if self.running:
            self.cancel_event.set()
            self.pause_event.clear()
            self.query_one("#apply-progress", ProgressPanel).set_title("Cancelling… finishing the rows in flight")
            return
        self.app.back_to_mailboxes()  # type: ignore[attr-defined]

    def action_journals(self) -> None:
        if self.running:
            self.notify("The apply is still running.", severity="warning")
            return
        self.app.back_to_mailboxes()  # type: ignore[attr-defined]
        self.app.action_journals()  # type: ignore[attr-defined]
