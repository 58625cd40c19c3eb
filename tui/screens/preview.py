"""The Preview screen: a plan as its file will be (counts per action and reason, rows, overwritten values)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pandas as pd
from exocm.core.app.failures import failure_line
from exocm.core.app.views import plan_overwritten_frame
from exocm.core.plan.planfile import Plan
from exocm.core.plan.tables import plan_counts_frame, plan_table_frame
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ..messages import OverwrittenExported, PlanFailed, PlanSaved
from ..widgets.confirm_modal import ConfirmModal
from ..widgets.frame_table import FrameTable
from ..widgets.path_prompt import PathPrompt
from ..widgets.tenant_header import TenantHeader


class PreviewScreen(Screen[None]):
    """Shows one core Plan; save it (for a change ticket) or go on to apply (typed confirmation)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="preview.back"),
        Binding("s", "save", "Save plan", id="preview.save"),
        Binding("a", "apply", "Apply…", id="preview.apply"),
        Binding("e", "export_overwritten", "Export overwritten (CSV)", id="preview.export_overwritten"),
        # priority: a fastdatatable would keep Tab / Shift+Tab to move its cell cursor
        Binding("tab", "app.focus_next", "Next pane", show=False, priority=True, id="preview.focus_next"),
        Binding("shift+tab", "app.focus_previous", "Previous pane", show=False, priority=True,
                id="preview.focus_previous"),
    ]

    def __init__(self, plan: Plan, title: str = "") -> None:
        super().__init__()
        self.plan = plan
        self.title_text = title
        self.saved_path: Path | None = None
        #: the cloud values the next sync overwrites (a disable or an undo plan), as shown
        self.overwritten = pd.DataFrame()

    def compose(self) -> ComposeResult:
        yield TenantHeader("Preview")
        yield Static(self._summary(), id="preview-summary")
        with Horizontal(id="preview-top"):
            with Vertical(id="preview-counts-pane"):
                yield Static("Counts per action and reason", classes="pane-title")
                yield DataTable(id="preview-counts", cursor_type="row", show_cursor=False)
            with Vertical(id="preview-rows-pane"):
                yield Static(f"Rows ({len(self.plan.rows):,})", classes="pane-title")
                yield FrameTable("The plan has no rows.", id="preview-rows")
        with Vertical(id="preview-overwritten-pane"):
            yield Static("", id="preview-overwritten-title", classes="pane-title", markup=False)
            yield FrameTable("Nothing will be overwritten.", id="preview-overwritten")
        yield Footer()

    def _summary(self) -> Text:
        plan = self.plan
        changes = len(plan.set_rows())
        text = Text()
        if self.title_text:
            text.append(self.title_text + "\n", style="bold")
        kind = "Undo plan" if getattr(plan, "kind", "flip") == "undo" else "Plan"
        state = "isCloudManaged" if getattr(plan, "is_graph", False) else "IsExchangeCloudManaged"
        what = f" on {plan.object_kind}s" if getattr(plan, "is_graph", False) else ""
        text.append(f"{kind}: set {state} = {plan.value}{what} · tenant {plan.tenant} · ")
        text.append(f"{changes:,} to change", style="bold")
        text.append(f" of {len(plan.rows):,} rows · digest {plan.short_digest} · created {plan.created_at[:19]}")
        if self.saved_path is not None:
            text.append(f"\nSaved: {self.saved_path}", style="green")
        return text

    def on_mount(self) -> None:
        counts = self.query_one("#preview-counts", DataTable)
        counts.add_columns("Action", "Reason", "Count", "Meaning")
        for row in plan_counts_frame(self.plan).itertuples():
            style = "bold green" if row.action == "set" else ""
            counts.add_row(Text(str(row.action), style=style), Text(str(row.reason)),
                           Text(f"{int(row.count):,}", justify="right"), Text(str(row.meaning)))
        self.query_one("#preview-rows", FrameTable).show_frame(plan_table_frame(self.plan))
        pane = self.query_one("#preview-overwritten-pane")
        if self.plan.value is False and getattr(self.plan, "is_graph", False):
            over = plan_overwritten_frame(self.plan)  # an object undo lists what AD overwrites
            self.overwritten = over
            self.query_one("#preview-overwritten-title", Static).update(
                f"Cloud values the next sync overwrites with AD's values ({len(over):,})")
            self.query_one("#preview-overwritten", FrameTable).show_frame(over)
        elif self.plan.value is False:
            over = plan_overwritten_frame(self.plan, *self._cloud_and_onprem())
            self.overwritten = over
            self.query_one("#preview-overwritten-title", Static).update(
                f"Cloud values the next sync overwrites with on-prem values ({len(over):,}); "
                + ("e exports them (CSV) if they must be kept" if len(over) else "nothing to export"))
            self.query_one("#preview-overwritten", FrameTable).show_frame(over)
        else:
            pane.display = False

    def _cloud_and_onprem(self) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """The loaded inventory frame and on-prem data (what a disable plan's overwritten values come from)."""
        screen = self.app.mailboxes_screen()  # type: ignore[attr-defined]
        frame = screen.inventory.frame if screen.inventory is not None else None
        return frame, (screen.session.onprem if screen.session is not None else None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Export is offered only where values will be overwritten (a disable or an undo)."""
        if action == "export_overwritten":
            return self.plan.value is False
        return True

    # -- export the values a disable overwrites ----------------------------------------------------
    def action_export_overwritten(self) -> None:
        if self.plan.value is not False:
            return
        if self.overwritten.empty:
            self.notify("Nothing will be overwritten: there is nothing to export.")
            return
        session = self.app.session  # type: ignore[attr-defined]
        default = session.default_plan_path(self.plan).with_name(f"overwritten-{self.plan.short_digest}.csv")

        frame, onprem = self._cloud_and_onprem()

        def chosen(path: Path | None) -> None:
            if path is not None:
                self._export_worker(path, frame, onprem)

        self.app.push_screen(PathPrompt("Export the cloud values the next sync overwrites",
                                        "A CSV for Excel (one row per mailbox and attribute), to keep or "
                                        "re-apply them after the flip back.", str(default)), chosen)

    @work(thread=True, exclusive=True, group="export-overwritten")
    def _export_worker(self, path: Path, frame: pd.DataFrame | None, onprem: pd.DataFrame | None) -> None:
        from exocm.core.execute.undo import export_overwritten

        try:  # the same file as 'exocm undo --export-overwritten'
            saved = export_overwritten(self.plan, path, frame, onprem)
        except Exception as exc:  # noqa: BLE001 - one line for the user
            self.post_message(PlanFailed(f"Could not export the overwritten values: {failure_line(exc, 'export')}"))
            return
        self.post_message(OverwrittenExported(saved, len(self.overwritten)))

    def on_overwritten_exported(self, message: OverwrittenExported) -> None:
        self.notify(f"{message.count:,} overwritten values saved to {message.path}")

    # -- save --------------------------------------------------------------------------------------
    def action_save(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        default = str(session.default_plan_path(self.plan))

        def chosen(path: Path | None) -> None:
            if path is not None:
                self._save_worker(path)

        self.app.push_screen(PathPrompt("Save the plan file", "A JSON plan, for a change ticket or "
                                        "for 'exocm apply PLAN'.", default), chosen)

    @work(thread=True, exclusive=True, group="save-plan")
    def _save_worker(self, path: Path) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        try:
            saved = session.save_plan(self.plan, path)
        except Exception as exc:  # noqa: BLE001
            self.post_message(PlanFailed(f"Could not save the plan: {failure_line(exc, 'save plan')}"))
            return
        self.post_message(PlanSaved(saved))

    def on_plan_saved(self, message: PlanSaved) -> None:
        self.saved_path = message.path
        self.query_one("#preview-summary", Static).update(self._summary())
        self.notify(f"Plan saved to {message.path}")

    def on_plan_failed(self, message: PlanFailed) -> None:
        self.notify(message.error, severity="error", timeout=20)

    # -- apply -----------------------------------------------------------------------------------
    def action_apply(self) -> None:
        changes = len(self.plan.set_rows())
        if not changes:
            self.notify("Nothing in this plan would change anything.", severity="warning")
            return
        session = self.app.session  # type: ignore[attr-defined]
        pending = len(session.pending_rows(self.plan))
        if not pending:
            self.notify("Every row of this plan that changes something is already verified by an earlier run.",
                        severity="warning")
            return
        phrase = session.confirmation_phrase(self.plan)
        graph = getattr(self.plan, "is_graph", False)
        state = "isCloudManaged" if graph else "IsExchangeCloudManaged"
        noun = f"{self.plan.object_kind}s" if graph else "mailboxes"
        body = (f"This sets {state} = {self.plan.value} on {pending:,} {noun} "
                f"in tenant {self.plan.tenant}.")
        if pending < changes:
            body += f"\n{changes - pending:,} of the plan's {changes:,} changes are verified by an earlier run."
        if self.plan.value is False:
            body += "\nAt the next sync, on-prem values overwrite their cloud values."

        def confirmed(ok: bool | None) -> None:
            if ok:
                from .apply import ApplyScreen

                self.app.push_screen(ApplyScreen(self.plan))

        self.app.push_screen(ConfirmModal("Apply the plan", body, phrase, label=session.label), confirmed)

    def action_back(self) -> None:
        self.app.pop_screen()
