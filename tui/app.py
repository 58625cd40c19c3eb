"""The exocm terminal UI: a thin App over core.session.Session; screens own their behaviour."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from exocm.core import logs
from exocm.core.access.config import data_dir
from exocm.core.app.failures import failure_line
from exocm.core.app.session import Session
from exocm.core.paths import shell_arg
from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.filter import LineFilter
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.worker import Worker, WorkerState

from . import heap
from .commands import ExocmCommands
from .messages import Connected, ConnectFailed
from .screens.mailboxes import MailboxesScreen
from .widgets.inert_filter import InertText

Connector = Callable[[], Session]


class ExocmApp(App[None]):
    """Mailboxes, findings, preview, apply, journals. `connect` opens the Session (in a worker)."""

    CSS_PATH = "exocm.tcss"
    TITLE = "exocm"
    COMMANDS = App.COMMANDS | {ExocmCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("f", "findings", "Findings", id="app.findings"),
        Binding("j", "journals", "Journals", id="app.journals"),
        Binding("y", "readiness", "Readiness", show=False, id="app.readiness"),  # footer is full: ? and the palette list it
        Binding("f2", "kind('mailbox')", "Mailboxes", show=False, id="app.kind_mailbox"),
        Binding("f3", "kind('group')", "Groups", show=False, id="app.kind_group"),
        Binding("f4", "kind('contact')", "Contacts", show=False, id="app.kind_contact"),
        Binding("f5", "kind('user')", "Users", show=False, id="app.kind_user"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    tenant_label: reactive[str] = reactive("")

    def __init__(
        self,
        connect: Connector,
        *,
        label: str = "",
        is_sandbox: bool = False,
        keymap: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        sandbox_detail: str = "",
    ) -> None:
        super().__init__()
        self._connect = connect
        self.session: Session | None = None
        self.is_sandbox = is_sandbox
        #: which embedded sandbox (size, seed, state path), shown in the header next to SANDBOX
        self.sandbox_detail = sandbox_detail
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._initial_label = label
        self._inert = InertText()
        self._quitting = False
        self._stopped_for_quit: list[Any] = []
        if keymap:
            self.set_keymap(dict(keymap))

    def get_line_filters(self) -> Sequence[LineFilter]:
        """Textual's filters, then InertText: no control sequence from the tenant's data reaches the terminal."""
        return [*super().get_line_filters(), self._inert]

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """A toast; its text is never read as markup (messages carry names and errors from the tenant)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def on_mount(self) -> None:
        heap.freeze()  # the libraries imported by now: the garbage collector need not walk them again
        # The log file (internal errors leave their traceback there); never echoed on the terminal the UI owns.
        if logs.log_file() is None:
            logs.configure(data_dir(), echo=False)
        logs.stop_echo()
        self.tenant_label = self._initial_label
        self.push_screen(MailboxesScreen())
        self._open_session()

    @work(thread=True, exclusive=True, group="connect")
    def _open_session(self) -> None:
        try:
            session = self._connect()
        except Exception as exc:  # noqa: BLE001 - one line for the user, the app stays up
            self.post_message(ConnectFailed(failure_line(exc, "connect")))
            return
        self.post_message(Connected(session))

    def on_unmount(self) -> None:
        heap.unfreeze()

    def on_connected(self, message: Connected) -> None:
        self.session = message.session
        self.is_sandbox = bool(message.session.is_sandbox)
        self.tenant_label = message.session.label
        for screen in self.screen_stack:
            if isinstance(screen, MailboxesScreen):
                screen.session_ready(message.session)

    def on_connect_failed(self, message: ConnectFailed) -> None:
        self.notify(f"Could not connect: {message.error}", severity="error", timeout=30)
        for screen in self.screen_stack:
            if isinstance(screen, MailboxesScreen):
                screen.connect_failed(message.error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a crashed worker becomes a notification."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.notify(failure_line(event.worker.error, f"worker {event.worker.name}"),
                        title=f"{event.worker.name} failed",
                        severity="error", timeout=20)

    # -- quitting ------------------------------------------------------------------------------
    def running_changes(self) -> list[Any]:
        """Screens whose worker is changing the tenant right now (an apply, a runbook)."""
        return [screen for screen in self.screen_stack
                if getattr(screen, "running", False) and hasattr(screen, "cancel_event")]

    async def action_quit(self) -> None:
        """Quit. A running apply or runbook stops cleanly first (rows in flight settle, the journal
        or run state is flushed), then the app exits; a running fetch is cancelled."""
        for screen in self.screen_stack:
            if isinstance(screen, MailboxesScreen):
                screen.cancel_fetch()
        running = self.running_changes()
        if not running:
            self.exit()
            return
        if self._quitting:
            self.notify("Still stopping cleanly; exocm quits as soon as the rows in flight have settled.")
            return
        self._quitting = True
        for screen in running:
            stop = getattr(screen, "stop_for_quit", None)
            if callable(stop):
                stop()
            else:  # a runbook: its waits (gate, manual step, sync) end on cancel; the run state is saved
                screen.cancel_event.set()
        self.notify("Quitting: the running change stops cleanly first (rows in flight settle, the journal "
                    "is flushed)…", timeout=30)
        self._stopped_for_quit = running
        self.set_interval(0.2, self._quit_when_stopped)

    def _quit_when_stopped(self) -> None:
        if self.running_changes():
            return
        lines = []  # said on the terminal after the app has gone: where the stopped run's journal is
        for screen in self._stopped_for_quit:
            result = getattr(screen, "result", None)
            if result is not None and getattr(result, "journal_path", None):
                lines.append(f"Apply stopped on quit. Journal: {result.journal_path}")
                if getattr(result, "remaining", 0):
                    lines.append(self._finish_later(screen.plan, result.remaining))
        self.exit(message="\n".join(lines) or None)

    def _finish_later(self, plan: Any, remaining: int) -> str:
        """How to finish a run stopped on quit: the plan, saved, for `exocm apply`."""
        try:
            assert self.session is not None
            path = self.session.save_plan(plan)
        except Exception:  # noqa: BLE001 - the journal is what matters; say it the general way
            return f"{remaining:,} rows remain: apply the same plan again to finish them."
        return (f"{remaining:,} rows remain: 'exocm apply {shell_arg(path)}' finishes them "
                "(verified rows are not written again).")

    # -- navigation ----------------------------------------------------------------------------
    def mailboxes_screen(self) -> MailboxesScreen:
        """The Mailboxes screen (the bottom of the stack)."""
        for screen in self.screen_stack:
            if isinstance(screen, MailboxesScreen):
                return screen
        raise LookupError("no mailboxes screen")

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_findings(self) -> None:
        from .screens.findings import FindingsScreen

        if isinstance(self.screen, FindingsScreen):
            return
        self.push_screen(FindingsScreen())

    def action_readiness(self) -> None:
        from .screens.readiness import ReadinessScreen

        if isinstance(self.screen, ReadinessScreen):
            return
        self.push_screen(ReadinessScreen())

    def action_journals(self) -> None:
        from .screens.journals import JournalsScreen

        if isinstance(self.screen, JournalsScreen):
            return
        self.push_screen(JournalsScreen())

    def action_kind(self, kind: str) -> None:
        """Switch what the table lists: mailboxes, or a Graph kind (groups, contacts, users)."""
        from .screens.objects import ObjectsScreen

        if isinstance(self.screen, ObjectsScreen) and self.screen.kind == kind:
            return
        self.back_to_mailboxes()
        if kind != "mailbox":
            self.push_screen(ObjectsScreen(kind))

    def back_to_mailboxes(self) -> MailboxesScreen:
        """Pop screens until the Mailboxes screen is on top."""
        target = self.mailboxes_screen()
        while self.screen is not target and len(self.screen_stack) > 1:
            self.pop_screen()
        return target

