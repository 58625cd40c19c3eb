"""The Journals screen: past apply runs with their outcome; open one to see its rows; build an undo plan."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from exocm.core.app.failures import failure_line
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ..messages import JournalRows, JournalsLoaded, PlanBuilt, PlanFailed
from ..widgets.frame_table import FrameTable
from ..widgets.tenant_header import TenantHeader

ROW_COLUMNS_FIRST = ("seq", "display_name", "upn", "status", "reason", "before", "after", "error", "at")
ROW_COLUMNS_LAST = ("identity", "backup")
OUTCOME_STYLE = {"complete": "green", "incomplete": "yellow", "cancelled": "yellow", "interrupted": "yellow",
                 "error": "red"}


class JournalsScreen(Screen[None]):
    """Runs newest first; Enter opens the rows, u builds an undo plan and opens it in Preview."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="journals.back"),
        Binding("enter", "open", "Open", show=False, id="journals.open"),
        Binding("u", "undo", "Undo plan", id="journals.undo"),
        Binding("r", "reload", "Reload", id="journals.reload"),
        # priority: a fastdatatable would keep Tab / Shift+Tab to move its cell cursor
        Binding("tab", "app.focus_next", "Next pane", show=False, priority=True, id="journals.focus_next"),
        Binding("shift+tab", "app.focus_previous", "Previous pane", show=False, priority=True,
                id="journals.focus_previous"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.journals: list[Any] = []
        self.opened: Path | None = None

    def compose(self) -> ComposeResult:
        yield TenantHeader("Journals")
        with Vertical(id="journals-list-pane"):
            yield Static("Past runs (newest first)", classes="pane-title")
            yield DataTable(id="journals-list", cursor_type="row")
        with Vertical(id="journal-rows-pane"):
            yield Static("", id="journal-rows-title", classes="pane-title", markup=False)
            yield FrameTable("Highlight a run to see its rows.", id="journal-rows")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#journals-list", DataTable)
        table.add_columns("Started", "Outcome", "Rows", "Statuses", "Plan", "Journal")
        table.focus()
        self.action_reload()

    def action_reload(self) -> None:
        self._list_worker()

    @work(thread=True, exclusive=True, group="journals")
    def _list_worker(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        if session is None:
            self.post_message(JournalsLoaded([]))
            return
        self.post_message(JournalsLoaded(session.journals()))

    def on_journals_loaded(self, message: JournalsLoaded) -> None:
        self.journals = message.journals
        table = self.query_one("#journals-list", DataTable)
        table.clear()
        for summary in message.journals:
            statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.counts.items()))
            # Text cells, never markup: a str cell of the stock DataTable is parsed as markup
            table.add_row(Text(summary.started_at[:19].replace("T", " ")),
                          Text(summary.outcome, style=OUTCOME_STYLE.get(summary.outcome, "")),
                          Text(f"{summary.rows:,}", justify="right"), Text(statuses),
                          Text(summary.plan_digest[:12]), Text(summary.path.name), key=str(summary.path))
        if not message.journals:
            self.query_one("#journal-rows-title", Static).update("No runs yet for this tenant.")
        else:
            self.open(message.journals[0].path)

    @on(DataTable.RowHighlighted, "#journals-list")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            path = Path(str(event.row_key.value))
            if path != self.opened:
                self.open(path)

    def open(self, path: Path) -> None:
        """Show the rows of one journal (read in a worker)."""
        self.opened = path
        self._rows_worker(path)

    @work(thread=True, exclusive=True, group="journal-rows")
    def _rows_worker(self, path: Path) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        self.post_message(JournalRows(path, session.journal_rows(path)))

    def on_journal_rows(self, message: JournalRows) -> None:
        if message.path != self.opened:
            return
        self.query_one("#journal-rows-title", Static).update(f"{message.path}: {len(message.rows):,} rows")
        rows = message.rows
        # who first (name, UPN), then what happened and why; the immutable id and the backup last
        first = [c for c in ROW_COLUMNS_FIRST if c in rows.columns]
        last = [c for c in ROW_COLUMNS_LAST if c in rows.columns and c not in first]
        rows = rows[first + [c for c in rows.columns if c not in first and c not in last] + last]
        self.query_one("#journal-rows", FrameTable).show_frame(rows)

    def action_open(self) -> None:
        table = self.query_one("#journals-list", DataTable)
        if 0 <= table.cursor_row < len(self.journals):
            self.open(self.journals[table.cursor_row].path)
            rows = self.query_one("#journal-rows", FrameTable).table
            if rows is not None:
                rows.focus()

    def action_undo(self) -> None:
        if self.opened is None:
            self.notify("Choose a run first.", severity="warning")
            return
        self._undo_worker(self.opened)

    @work(thread=True, exclusive=True, group="undo")
    def _undo_worker(self, path: Path) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        try:
            plan = session.undo_plan(path)
        except Exception as exc:  # noqa: BLE001
            self.post_message(PlanFailed(f"Could not build an undo plan: {failure_line(exc, 'undo plan')}"))
            return
        self.post_message(PlanBuilt(plan, f"Undo of run {path.name}"))

    def on_plan_built(self, message: PlanBuilt) -> None:
        from .preview import PreviewScreen

        self.app.push_screen(PreviewScreen(message.plan, message.title))

    def on_plan_failed(self, message: PlanFailed) -> None:
        self.notify(message.error, severity="error", timeout=20)

    def action_back(self) -> None:
        self.app.pop_screen()
