"""The Findings screen: findings grouped by code (counts, severity colours), rows, evidence, jump to mailbox."""
from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd
from exocm.core.app.views import display_value, findings_summary
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual_fastdatatable import DataTable as FastDataTable

from ..widgets.frame_table import FrameTable
from ..widgets.tenant_header import TenantHeader

SEVERITY_STYLE = {"critical": "bold red", "high": "bold yellow", "medium": "yellow", "low": "dim", "info": "dim"}
ROW_COLUMNS = ("UserPrincipalName", "severity", "explanation", "action")


def recommended(action: str) -> Text:
    """The recommended action of a finding: a runbook's title (r starts it), or the action's name."""
    from exocm.core.runbooks import RUNBOOKS

    text = Text("Recommended: ", style="bold")
    text.append(action, style="bold")
    runbook = RUNBOOKS.get(action)
    if runbook is not None:
        text.append(f" ({runbook.title}; r starts this runbook)", style="")
    return text


class FindingsScreen(Screen[None]):
    """Codes on the left; the rows of the highlighted code on the right; evidence of the highlighted row below."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="findings.back"),
        Binding("g", "jump", "Go to mailbox", id="findings.jump"),
        Binding("s", "select_code", "Select these", id="findings.select_code"),
        Binding("r", "runbook", "Fix (runbook)", id="findings.runbook"),
        Binding("R", "runbook_all", "Fix all of code", show=False, id="findings.runbook_all"),
        # priority: a fastdatatable would keep Tab / Shift+Tab to move its cell cursor
        Binding("tab", "app.focus_next", "Next pane", show=False, priority=True, id="findings.focus_next"),
        Binding("shift+tab", "app.focus_previous", "Previous pane", show=False, priority=True,
                id="findings.focus_previous"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.findings: pd.DataFrame | None = None
        self.summary = pd.DataFrame(columns=["code", "severity", "count"])
        self.code: str | None = None
        self.rows = pd.DataFrame()

    def compose(self) -> ComposeResult:
        yield TenantHeader("Findings")
        with Horizontal(id="findings-body"):
            with Vertical(id="findings-codes-pane"):
                yield Static("Findings by code", classes="pane-title")
                yield DataTable(id="findings-codes", cursor_type="row", zebra_stripes=True)
            with Vertical(id="findings-rows-pane"):
                yield Static("", id="findings-rows-title", classes="pane-title", markup=False)
                yield FrameTable("Choose a code on the left.", id="findings-rows")
                yield Static("", id="findings-evidence")
        yield Footer()

    def on_mount(self) -> None:
        codes = self.query_one("#findings-codes", DataTable)
        codes.add_columns("Severity", "Code", "Count")
        screen = getattr(self.app, "mailboxes_screen", None)
        view = screen().view if screen else None
        failed = str(getattr(screen(), "detection_error", "")) if screen else ""
        if view is not None and view.findings is not None:
            self.load(view.findings)
        elif failed:
            self.detection_failed(failed)
        else:
            self.query_one("#findings-rows-title", Static).update("Detection is running…")
        codes.focus()

    def load(self, findings: pd.DataFrame) -> None:
        """Show these findings (a core.detect findings frame)."""
        self.findings = findings
        self.summary = findings_summary(findings)
        codes = self.query_one("#findings-codes", DataTable)
        codes.clear()
        # by column name: a namedtuple's `.count` is its method, not the column
        for severity, code, count in self.summary[["severity", "code", "count"]].itertuples(index=False):
            style = SEVERITY_STYLE.get(str(severity), "")
            codes.add_row(Text(str(severity), style=style), Text(str(code), style=style),
                          Text(f"{int(count):,}", justify="right"), key=str(code))
        total = len(findings)
        self.query_one("#findings-rows-title", Static).update(
            f"{total:,} findings in {len(self.summary)} codes" if total else "No findings: nothing blocks a flip.")
        if len(self.summary):
            self.show_code(str(self.summary.iloc[0]["code"]))

    def detection_failed(self, error: str) -> None:
        """Say why there are no findings (the Mailboxes screen's r retries)."""
        self.query_one("#findings-rows-title", Static).update(f"Detection failed: {error} (r on Mailboxes retries)")

    def show_code(self, code: str) -> None:
        """Show the rows of one finding code."""
        if self.findings is None:
            return
        self.code = code
        rows = self.findings.loc[self.findings["code"] == code].reset_index(drop=True)
        self.rows = rows
        columns = [c for c in ROW_COLUMNS if c in rows.columns]
        self.query_one("#findings-rows-title", Static).update(f"{code}: {len(rows):,} rows (g goes to the mailbox)")
        self.query_one("#findings-rows", FrameTable).show_frame(rows[columns])
        self.show_evidence(0)

    def show_evidence(self, index: int | None) -> None:
        """Evidence and recommended action of one row of the current code."""
        target = self.query_one("#findings-evidence", Static)
        if index is None or index >= len(self.rows):
            target.update("")
            return
        row = self.rows.iloc[index]
        grid = Table(box=None, show_header=False, pad_edge=False, expand=True)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        evidence: Any = row.get("evidence")
        if isinstance(evidence, dict):
            for key, value in evidence.items():  # Text, not str: values from the tenant are never markup
                grid.add_row(Text(str(key)), Text(display_value(value)))
        elif evidence is not None:
            grid.add_row("evidence", Text(display_value(evidence)))
        severity = str(row.get("severity", ""))
        target.update(Group(
            Text(f"{row.get('code', '')} · {row.get('UserPrincipalName', '')}",
                 style=SEVERITY_STYLE.get(severity, "bold")),
            Text(str(row.get("explanation", ""))),
            recommended(str(row.get("action", ""))),
            grid,
        ))

    @on(DataTable.RowHighlighted, "#findings-codes")
    def _code_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value != self.code:
            self.show_code(str(event.row_key.value))

    @on(DataTable.RowSelected, "#findings-codes")
    def _code_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a code drills into its rows."""
        table = self.query_one("#findings-rows", FrameTable).table
        if table is not None:
            table.focus()

    @on(FastDataTable.RowHighlighted)
    def _row_highlighted(self, event: FastDataTable.RowHighlighted) -> None:
        self.show_evidence(event.cursor_row)

    @on(FastDataTable.RowSelected)
    def _row_selected(self, event: FastDataTable.RowSelected) -> None:
        self.jump(event.cursor_row)

    def current_identity(self) -> str | None:
        """ExternalDirectoryObjectId of the highlighted finding row."""
        index = self.query_one("#findings-rows", FrameTable).cursor_row
        if index is None or index >= len(self.rows):
            return None
        value = self.rows.iloc[index].get("ExternalDirectoryObjectId")
        return str(value) if isinstance(value, str) and value else None

    def jump(self, index: int | None = None) -> None:
        """Go to the Mailboxes screen with the cursor on this finding's mailbox."""
        if index is not None:
            value = self.rows.iloc[index].get("ExternalDirectoryObjectId") if index < len(self.rows) else None
            identity = str(value) if isinstance(value, str) and value else None
        else:
            identity = self.current_identity()
        if identity is None:
            self.notify("This finding is not about one mailbox.", severity="warning")
            return
        screen = self.app.back_to_mailboxes()  # type: ignore[attr-defined]
        screen.jump_to(identity)

    def action_jump(self) -> None:
        self.jump()

    def action_select_code(self) -> None:
        """Select (on the Mailboxes screen) every mailbox with a finding of the current code."""
        if self.rows.empty or "ExternalDirectoryObjectId" not in self.rows:
            return
        screen = self.app.mailboxes_screen()  # type: ignore[attr-defined]
        if screen.view is None:
            return
        ids = [str(v) for v in self.rows["ExternalDirectoryObjectId"].dropna().unique()]
        missing = screen.selection.select_ids(screen.view, ids)
        screen._selection_changed()
        self.notify(f"Selected {len(ids) - len(missing):,} mailboxes with {self.code}.")

    def action_runbook(self) -> None:
        """Start the recommended runbook for the highlighted finding (a run view opens)."""
        identity = self.current_identity()
        index = self.query_one("#findings-rows", FrameTable).cursor_row
        action = str(self.rows.iloc[index].get("action", "")) if index is not None and index < len(self.rows) else ""
        self._start_runbook(action, [identity] if identity else [])

    def action_runbook_all(self) -> None:
        """Start the recommended runbook for every finding of the current code (one batch run)."""
        if self.rows.empty or "ExternalDirectoryObjectId" not in self.rows:
            return
        actions = self.rows["action"].astype("str").unique().tolist() if "action" in self.rows else []
        ids = [str(v) for v in self.rows["ExternalDirectoryObjectId"].dropna().unique() if str(v)]
        self._start_runbook(actions[0] if len(actions) == 1 else "", ids)

    def _start_runbook(self, action: str, identities: list[str]) -> None:
        from exocm.core.runbooks import RUNBOOKS

        from .runbook import RunbookScreen

        if action not in RUNBOOKS or not identities:
            self.notify("No runbook fixes this finding.", severity="warning")
            return
        self.app.push_screen(RunbookScreen(runbook=action, identities=identities))

    def action_back(self) -> None:
        self.app.pop_screen()
