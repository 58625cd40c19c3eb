"""The Readiness screen: the prerequisite checks (flip, or the last Exchange server) with their
result colours; the highlighted check's evidence, fix and details below. The checks are core's
(`Session.prerequisites`); this screen only shows them."""
from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ..widgets.tenant_header import TenantHeader

RESULT_STYLE = {"pass": "bold green", "warn": "bold yellow", "fail": "bold red", "unknown": "bold magenta"}
SEVERITY_STYLE = {"critical": "bold red", "high": "bold yellow", "medium": "yellow", "low": "dim", "info": "dim"}


class ReadinessScreen(Screen[None]):
    """Checks on top (result, severity, code, title); the highlighted check's evidence and fix below."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="readiness.back"),
        Binding("s", "scope", "Flip / last server", id="readiness.scope"),
        Binding("r", "rerun", "Check again", id="readiness.rerun"),
    ]

    def __init__(self, scope: str = "flip") -> None:
        super().__init__()
        self.scope = scope
        self.checks: list[Any] = []
        self.summary: dict[str, Any] = {}
        self.error = ""
        self.running = False

    def compose(self) -> ComposeResult:
        yield TenantHeader("Readiness")
        with Vertical(id="readiness-body"):
            yield Static("", id="readiness-title", classes="pane-title", markup=False)
            yield DataTable(id="readiness-checks", cursor_type="row", zebra_stripes=True)
            yield Static("", id="readiness-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#readiness-checks", DataTable)
        table.add_columns("Result", "Severity", "Code", "Check")
        self.run_checks()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_scope(self) -> None:
        if self.running:
            return
        self.scope = "decommission" if self.scope == "flip" else "flip"
        self.run_checks()

    def action_rerun(self) -> None:
        if not self.running:
            self.run_checks()

    def run_checks(self) -> None:
        """Start the checks in a worker; the title says they run."""
        session = getattr(self.app, "session", None)
        title = self.query_one("#readiness-title", Static)
        if session is None:
            title.update("Not connected yet: the checks run once the tenant is open (r).")
            return
        self.running = True
        title.update(f"Checking readiness ({self.scope}) ...")
        self._work(session, self.scope)

    @work(thread=True, exclusive=True, group="readiness")
    def _work(self, session: Any, scope: str) -> None:
        try:
            checks, summary = session.prerequisites(scope)
        except Exception as exc:  # noqa: BLE001 - one line on the screen, the app stays up
            text = str(exc).strip().splitlines()
            self.app.call_from_thread(self._failed, text[0] if text else type(exc).__name__)
            return
        self.app.call_from_thread(self.show, checks, summary)

    def _failed(self, error: str) -> None:
        self.running = False
        self.error = error
        self.query_one("#readiness-title", Static).update(f"Readiness failed: {error}")

    def show(self, checks: list[Any], summary: dict[str, Any]) -> None:
        """Fill the table with `checks` (core's Check records)."""
        self.running = False
        self.checks, self.summary = list(checks), summary
        counts = summary.get("by_result", {})
        self.query_one("#readiness-title", Static).update(
            f"Readiness ({self.scope}): {str(summary.get('verdict', '')).upper()} -- "
            + ", ".join(f"{k} {counts.get(k, 0)}" for k in ("fail", "warn", "unknown", "pass"))
            + "   (s: flip / last server, r: check again)")
        table = self.query_one("#readiness-checks", DataTable)
        table.clear()
        for check in self.checks:
            table.add_row(Text(check.result.upper(), style=RESULT_STYLE.get(check.result, "")),
                          Text(check.severity, style=SEVERITY_STYLE.get(check.severity, "")),
                          Text(check.code), Text(check.title), key=check.code)
        if self.checks:
            table.move_cursor(row=0)
            self._detail(self.checks[0])
        table.focus()

    @on(DataTable.RowHighlighted, "#readiness-checks")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        code = event.row_key.value if event.row_key is not None else None
        check = next((c for c in self.checks if c.code == code), None)
        if check is not None:
            self._detail(check)

    def _detail(self, check: Any) -> None:
        parts: list[Text] = [Text(f"{check.code}: {check.title}", style="bold"),
                             Text.assemble(("Result: ", "bold"), (check.result, RESULT_STYLE.get(check.result, ""))),
                             Text.assemble(("Evidence: ", "bold"), check.evidence)]
        if check.fix and check.result != "pass":
            parts.append(Text.assemble(("Fix: ", "bold"), check.fix))
        parts.extend(Text(f"  - {d}") for d in check.details[:12])
        self.query_one("#readiness-detail", Static).update(Group(*parts))
