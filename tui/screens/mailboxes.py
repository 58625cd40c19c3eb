"""The Mailboxes screen: the inventory as a filterable, sortable, selectable table with a detail pane."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from exocm.core.access.config import ConfigError
from exocm.core.app.failures import failure_line
from exocm.core.app.views import (
    MAILBOX_COLUMN_KEYS,
    MAILBOX_COLUMNS,
    CheckedRows,
    MailboxView,
    QuickFilter,
    filter_mailboxes,
    format_age,
)
from exocm.core.bridge.errors import BridgeError
from exocm.core.events import Progress
from exocm.core.plan.workflow import SelectionRequest
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from .. import heap
from ..messages import (
    DetectionFailed,
    FilterChanged,
    FindingsLoaded,
    InventoryFailed,
    InventoryLoaded,
    InventoryPreviewed,
    InventoryProgress,
    MailboxHighlighted,
    PlanBuilt,
    PlanFailed,
    SelectionChanged,
    SelectionImported,
    SortRequested,
)
from ..widgets.choice_modal import ChoiceModal
from ..widgets.detail_pane import DetailPane
from ..widgets.filter_bar import FilterBar
from ..widgets.mailbox_table import MailboxTable
from ..widgets.path_prompt import PathPrompt
from ..widgets.progress_panel import ProgressPanel
from ..widgets.tenant_header import TenantHeader

if TYPE_CHECKING:
    from exocm.core.app.session import Session

    from ..app import ExocmApp


#: How long the load worker waits for the snapshot preview to be painted before loading the rest.
_PAINT_WAIT_S = 3.0
#: A fetch's progress reaches the UI at most this often (each event wakes the event loop, which
#: then waits for the GIL held by the fetch's threads).
_PROGRESS_EVERY_S = 0.2


class MailboxesScreen(Screen[None]):
    """Browse every mailbox; filter, sort, select; preview a plan from the selection."""

    AUTO_FOCUS = "#mailbox-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search", id="mailboxes.search"),
        Binding("escape", "escape", "Cancel fetch / back to table", show=False, id="mailboxes.escape"),
        Binding("r", "refresh", "Refresh", id="mailboxes.refresh"),
        Binding("a", "select_all", "Select shown", id="mailboxes.select_all"),
        Binding("n", "select_none", "Select none", show=False, id="mailboxes.select_none"),
        Binding("i", "invert", "Invert selection", show=False, id="mailboxes.invert"),
        Binding("m", "import_csv", "CSV select", id="mailboxes.import_csv"),
        Binding("p", "preview", "Preview", id="mailboxes.preview"),
        Binding("s", "sort_next", "Sort by next column", show=False, id="mailboxes.sort_next"),
        Binding("S", "sort_reverse", "Reverse sort", show=False, id="mailboxes.sort_reverse"),
        Binding("1", "quick('cloud_managed')", "Cloud-managed", show=False, id="mailboxes.quick_cloud"),
        Binding("2", "quick('onprem_managed')", "On-prem-managed", show=False, id="mailboxes.quick_onprem"),
        Binding("3", "quick('not_dirsynced')", "Not dir-synced", show=False, id="mailboxes.quick_not_dirsynced"),
        Binding("4", "quick('has_findings')", "Has findings", show=False, id="mailboxes.quick_findings"),
        Binding("t", "cycle_type", "Type filter", show=False, id="mailboxes.cycle_type"),
        Binding("x", "clear_filters", "Clear filters", show=False, id="mailboxes.clear_filters"),
        Binding("d", "toggle_detail", "Detail pane", show=False, id="mailboxes.toggle_detail"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.session: Session | None = None
        self.view: MailboxView | None = None
        self.selection = CheckedRows(0)
        #: The CSV the checked rows came from, with those rows: while the rows stay exactly these, a
        #: preview plans from the file itself, as `exocm plan --csv FILE` does (the same plan file).
        self.imported: tuple[Path, frozenset[str]] | None = None
        self.inventory: Any = None  # the loaded core Inventory (None until the whole frame is loaded)
        self.source: Any = None  # what is shown: the Inventory, or the snapshot preview painted before it
        self.shown = np.zeros(0, dtype=np.intp)
        self.text = ""
        self.quick = QuickFilter()
        self.sort_column: str | None = None
        self.sort_descending = False
        self._cancel: threading.Event | None = None
        self.fetching = False
        self.note = ""
        #: Why the last detection failed ("" when it did not): findings are absent, not empty.
        self.detection_error = ""
        self._detail_key: tuple[object, ...] | None = None
        self._detail_pending: int | None = None
        self._detail_scheduled = False
        #: perf_counter() just after the refresh that drew the table's rows for a new view or filter,
        #: and that filter as (text, quick, sort column, descending) (for benchmarks)
        self.painted_at: float | None = None
        self.painted_filter: tuple[str, QuickFilter, str | None, bool] | None = None

    @property
    def exo_app(self) -> ExocmApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield TenantHeader("Mailboxes")
        yield FilterBar(id="filter-bar")
        yield ProgressPanel("Connecting…", id="fetch-progress")
        with Vertical(id="mailboxes-body"):
            yield MailboxTable(id="mailbox-table")
            yield DetailPane(id="detail-pane")
        yield Static("", id="counts", markup=False)  # holds the search text as typed
        yield Footer(compact=True)  # every key fits at 120 columns

    def on_mount(self) -> None:
        self._update_counts()
        table = self.query_one(MailboxTable)
        self.call_after_refresh(table.focus)

    # -- loading --------------------------------------------------------------------------------
    def session_ready(self, session: Session) -> None:
        """The connection is open: load the inventory (snapshot when there is one)."""
        self.session = session
        self.load_inventory(refresh=False)

    def connect_failed(self, error: str) -> None:
        """Show why there is nothing to show."""
        panel = self.query_one("#fetch-progress", ProgressPanel)
        panel.set_title(f"Could not connect: {error}")

    def load_inventory(self, refresh: bool) -> None:
        """Start a (re)load in a worker; Esc cancels it."""
        if self.session is None:
            self.notify("Not connected yet.", severity="warning")
            return
        self._cancel = threading.Event()
        self.fetching = True
        panel = self.query_one("#fetch-progress", ProgressPanel)
        panel.display = True
        panel.set_title("Fetching the inventory… (Esc cancels)" if refresh else "Loading the inventory… (Esc cancels)")
        self._load_worker(self.session, refresh, self._cancel)

    @work(thread=True, exclusive=True, group="inventory")
    def _load_worker(self, session: Session, refresh: bool, cancel: threading.Event) -> None:
        from exocm.core.inventory.fetch import InventoryCancelled

        posted_at, posted_message = -_PROGRESS_EVERY_S, ""

        def progress(event: Progress) -> None:
            nonlocal posted_at, posted_message
            now = time.monotonic()
            if now - posted_at >= _PROGRESS_EVERY_S or event.message != posted_message:
                posted_at, posted_message = now, event.message
                self.post_message(InventoryProgress(event))

        preview = None
        if not refresh:
            # paint the saved snapshot's list columns first; the whole frame and detection follow
            preview = session.preview_snapshot()
            if preview is None and self.view is None:
                # a cold start (no snapshot): paint the first page while the whole fetch runs
                preview = session.preview_first_page()
            if preview is not None:
                painted = threading.Event()
                self.post_message(InventoryPreviewed(preview, painted))
                painted.wait(timeout=_PAINT_WAIT_S)  # the load below holds the GIL: let the table paint first
        try:
            with heap.full_collections_paused():  # none stalling the UI while the inventory is built
                inventory = session.load_inventory(refresh=refresh, progress=progress, cancel=cancel)
                if preview is not None and preview.view.attach(inventory.frame):
                    view = preview.view  # the same rows: selection, filter, sort and cursor stay as they are
                else:
                    view = MailboxView(inventory.frame)
        except InventoryCancelled:
            self.post_message(InventoryFailed("cancelled", cancelled=True))
            return
        except Exception as exc:  # noqa: BLE001 - shown as one line; the app stays usable
            self.post_message(InventoryFailed(failure_line(exc, "inventory")))
            return
        self.post_message(InventoryLoaded(inventory, view))

    def on_inventory_progress(self, message: InventoryProgress) -> None:
        panel = self.query_one("#fetch-progress", ProgressPanel)
        if panel.display:
            panel.update_progress(message.progress)
        elif self.inventory is None and getattr(self.source, "partial", False):
            # the first page is shown and the panel hidden: the counts line says how far the fetch
            # is (updating the hidden panel would re-lay out the whole screen for nothing)
            event = message.progress
            total = f" of {event.total:,}" if event.total is not None else ""
            self.note = f"first {self.source.view.size:,} rows; fetching the rest… {event.done:,}{total} read"
            self._update_counts()

    def on_inventory_failed(self, message: InventoryFailed) -> None:
        self.fetching = False
        panel = self.query_one("#fetch-progress", ProgressPanel)
        if message.cancelled:
            self.notify("Inventory fetch cancelled.")
            panel.display = self.view is None
            panel.set_title("Fetch cancelled; press r to fetch again.")
            self.note = "fetch cancelled, showing the previous inventory" if self.view is not None else ""
            self._update_counts()
        else:
            self.notify(f"Inventory failed: {message.error}", severity="error", timeout=20)
            panel.set_title(f"Inventory failed: {message.error} (r retries)")
            if self.view is not None and self.inventory is None:  # the snapshot preview stays on screen
                self.note = "inventory failed to load (r retries)"
                self._update_counts()

    def on_inventory_previewed(self, message: InventoryPreviewed) -> None:
        if self.view is not None:  # a refresh never previews; keep what is shown
            message.painted.set()
            return
        self.source = message.preview
        if getattr(message.preview, "partial", False):
            self.note = f"first {message.preview.view.size:,} rows; fetching the rest…"
        self._show_view(message.preview.view)
        if self.is_current:
            self.query_one(MailboxTable).after_paint(message.painted.set)
        else:  # under another screen the table is not drawn: nothing to wait for
            message.painted.set()

    def on_inventory_loaded(self, message: InventoryLoaded) -> None:
        self.fetching = False
        self.note = ""
        self.inventory = message.inventory
        self.source = message.inventory
        if message.view is not self.view:
            # rows selected on the preview (a snapshot, or a cold start's first page) stay selected
            self._show_view(message.view, keep_selection=True)
        else:  # the preview's rows, now with every property
            self._update_counts()
            self._show_detail(self.query_one(MailboxTable).cursor_position, force=True)
        for note in getattr(message.inventory, "notes", ()):
            self.notify(str(note), timeout=10)
        self.detection_error = ""
        self._detect_worker()

    def _show_view(self, view: MailboxView, keep_selection: bool = False) -> None:
        """Show a new view: same filter and sort; a fresh selection, or (`keep_selection`: the whole
        inventory replacing a preview of other rows) the rows already selected, matched by identity."""
        carried = self.selection.ids(self.view) if keep_selection and self.view is not None else []
        self.view = view
        self.selection = CheckedRows(view.size)
        if carried:
            self.selection.select_ids(view, carried)
        self.imported = None
        self.query_one("#fetch-progress", ProgressPanel).display = False
        table = self.query_one(MailboxTable)
        table.set_view(view, self.selection)
        self.query_one(FilterBar).set_types(view.type_names())
        self._refilter(keep=False)

    @work(thread=True, exclusive=True, group="findings", name="detection")
    def _detect_worker(self) -> None:
        session = self.session
        if session is None:
            return
        try:
            findings = session.findings()
        except (ImportError, AttributeError) as exc:  # detection not available in this build
            self.post_message(InventoryFailed(f"detection unavailable: {exc}"))
            return
        except (BridgeError, ConfigError, OSError, ValueError) as exc:  # on-prem data (WinRM, CSV) unreadable
            lines = str(exc).strip().splitlines()
            self.post_message(DetectionFailed(lines[0] if lines else type(exc).__name__))
            return
        self.post_message(FindingsLoaded(findings))

    def on_detection_failed(self, message: DetectionFailed) -> None:
        """No findings rather than findings that silently miss the on-prem side; r tries again."""
        from .findings import FindingsScreen

        self.detection_error = message.error
        self.notify(f"Findings failed: {message.error} (r retries)", severity="error", timeout=30)
        for screen in self.app.screen_stack:  # a Findings screen opened while detection ran
            if isinstance(screen, FindingsScreen) and screen.findings is None:
                screen.detection_failed(message.error)
        self._update_counts()

    def on_findings_loaded(self, message: FindingsLoaded) -> None:
        if self.view is None:
            return
        from .findings import FindingsScreen

        for screen in self.app.screen_stack:  # a Findings screen opened while detection ran
            if isinstance(screen, FindingsScreen) and screen.findings is None:
                screen.load(message.findings)
        self.view.set_findings(message.findings)
        if self.quick.has_findings or self.sort_column == "Findings":
            self._refilter()
        self.query_one(MailboxTable).refresh_rows()
        self._update_counts()
        self._show_detail(self.query_one(MailboxTable).cursor_position)

    # -- filter, sort ----------------------------------------------------------------------------
    def _refilter(self, keep: bool = True) -> None:
        if self.view is None:
            return
        self.shown = filter_mailboxes(self.view, self.text, self.quick, self.sort_column, self.sort_descending)
        table = self.query_one(MailboxTable)
        table.sort_column, table.sort_descending = self.sort_column, self.sort_descending
        table.show(self.shown, keep=keep)
        self._update_counts()
        shown_filter = (self.text, self.quick, self.sort_column, self.sort_descending)
        table.after_paint(lambda: self._note_painted(shown_filter))

    def _note_painted(self, shown_filter: tuple[str, QuickFilter, str | None, bool]) -> None:
        self.painted_at = self.query_one(MailboxTable).painted_at
        self.painted_filter = shown_filter

    @on(FilterChanged)
    def _filter_changed(self, message: FilterChanged) -> None:
        self._sync_filter()

    def _sync_filter(self) -> None:
        """Apply the filter bar's current state now (if it changed): bulk actions act on what is shown."""
        bar = self.query_one(FilterBar)
        if (bar.text, bar.quick) != (self.text, self.quick):
            self.text, self.quick = bar.text, bar.quick
            self._refilter()

    @on(SortRequested)
    def _sort_requested(self, message: SortRequested) -> None:
        self.sort_by(message.column)

    def sort_by(self, column: str | None, descending: bool | None = None) -> None:
        """Sort by a column; asking again for the same column reverses the order."""
        if descending is None:
            descending = (not self.sort_descending) if column == self.sort_column else False
        self.sort_column, self.sort_descending = column, descending
        self._refilter()

    def action_sort_next(self) -> None:
        keys = list(MAILBOX_COLUMN_KEYS)
        index = keys.index(self.sort_column) + 1 if self.sort_column in keys else 0
        self.sort_by(keys[index] if index < len(keys) else None, False)

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort_column, not self.sort_descending)

    def action_quick(self, name: str) -> None:
        self.query_one(FilterBar).toggle(name)
        self._sync_filter()

    def action_cycle_type(self) -> None:
        self.query_one(FilterBar).cycle_type()
        self._sync_filter()

    def filter_type(self, type_name: str | None) -> None:
        """Show only one RecipientTypeDetails (None: any)."""
        self.query_one(FilterBar).set_type(type_name)
        self._sync_filter()

    def action_clear_filters(self) -> None:
        self.query_one(FilterBar).clear()
        self._sync_filter()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def cancel_fetch(self) -> None:
        """Cancel a running inventory fetch (it stops at the next page; the table keeps what it shows)."""
        if self.fetching and self._cancel is not None:
            self._cancel.set()

    def action_escape(self) -> None:
        if self.fetching and self._cancel is not None:
            self._cancel.set()
            self.query_one("#fetch-progress", ProgressPanel).set_title("Cancelling…")
            return
        self.query_one(MailboxTable).focus()

    def action_refresh(self) -> None:
        if self.fetching:
            self.notify("A fetch is already running (Esc cancels it).")
            return
        self.load_inventory(refresh=True)

    # -- selection --------------------------------------------------------------------------------
    def _selection_changed(self) -> None:
        self.query_one(MailboxTable).refresh_rows()
        self._update_counts()

    @on(SelectionChanged)
    def _on_selection_changed(self, message: SelectionChanged) -> None:
        self._update_counts()

    def action_select_all(self) -> None:
        self._sync_filter()
        self.selection.select(self.shown)
        self._selection_changed()

    def action_select_none(self) -> None:
        self.selection.clear()
        self._selection_changed()

    def action_invert(self) -> None:
        self._sync_filter()
        self.selection.invert(self.shown)
        self._selection_changed()

    def action_import_csv(self) -> None:
        if self.view is None or self.session is None or self.inventory is None:
            self.notify("The inventory is not loaded yet.", severity="warning")
            return

        def chosen(path: Path | None) -> None:
            if path is not None:
                self._import_worker(path)

        self.app.push_screen(
            PathPrompt("Select mailboxes from a CSV",
                       "Any Export-Csv file; the identity column is found by name "
                       "(ExternalDirectoryObjectId, UserPrincipalName, PrimarySmtpAddress, …).",
                       must_exist=True),
            chosen,
        )

    @work(thread=True, exclusive=True, group="import")
    def _import_worker(self, path: Path) -> None:
        assert self.session is not None
        try:
            result = self.session.select_from_csv(path)
        except Exception as exc:  # noqa: BLE001 - a bad file is one line for the user
            self.post_message(PlanFailed(f"{path}: {failure_line(exc, 'selection import', also=(ValueError,))}"))
            return
        self.post_message(SelectionImported(result.identities, result.unmatched, path))

    def on_selection_imported(self, message: SelectionImported) -> None:
        if self.view is None:
            return
        missing = self.selection.select_ids(self.view, message.identities)
        checked = frozenset(self.selection.ids(self.view))
        self.imported = (message.path, checked) if checked == frozenset(message.identities) else None
        self._selection_changed()
        unmatched = list(message.unmatched) + [f"{identity}: not in the inventory" for identity in missing]
        text = f"{len(message.identities) - len(missing):,} selected from {message.path.name}"
        if unmatched:
            shown = "\n".join(unmatched[:8]) + ("\n…" if len(unmatched) > 8 else "")
            self.notify(f"{text}; {len(unmatched)} line(s) matched nothing:\n{shown}",
                        severity="warning", timeout=30)
        else:
            self.notify(text)

    # -- preview ---------------------------------------------------------------------------------
    def action_preview(self) -> None:
        if self.view is None or self.session is None or self.inventory is None:
            self.notify("The inventory is not loaded yet.", severity="warning")
            return
        count = self.selection.count
        if not count:
            self.notify("Select mailboxes first (space toggles, a selects all shown).", severity="warning")
            return

        def chosen(value: str | None) -> None:
            if value in ("enable", "disable"):
                self.preview(value == "enable")

        self.app.push_screen(
            ChoiceModal(
                f"Preview a plan for {count:,} selected mailboxes",
                "Enable moves the source of authority of their Exchange attributes to Exchange Online; "
                "disable returns it to on-prem AD (the next sync overwrites cloud values).",
                [("enable", "e", "Enable cloud management"), ("disable", "d", "Disable (back to on-prem)")],
            ),
            chosen,
        )

    def preview(self, target: bool) -> None:
        """Build a plan for the selection (in a worker) and open the Preview screen."""
        if self.view is None or self.session is None or self.inventory is None:
            return
        identities = self.selection.ids(self.view)
        if self.imported is not None and frozenset(identities) == self.imported[1]:
            request = SelectionRequest(csv=self.imported[0])
        else:
            request = SelectionRequest(identities=tuple(identities))
        self._plan_worker(self.session, request, target, len(identities))

    @work(thread=True, exclusive=True, group="plan")
    def _plan_worker(self, session: Session, request: SelectionRequest, target: bool, count: int) -> None:
        try:
            plan = session.build_plan(request, target)
        except Exception as exc:  # noqa: BLE001
            self.post_message(PlanFailed(failure_line(exc, "plan", also=(ValueError,))))
            return
        verb = "Enable" if target else "Disable"
        self.post_message(PlanBuilt(plan, f"{verb} cloud management: {count:,} selected"))

    def on_plan_built(self, message: PlanBuilt) -> None:
        from .preview import PreviewScreen

        self.app.push_screen(PreviewScreen(message.plan, message.title))

    def on_plan_failed(self, message: PlanFailed) -> None:
        self.notify(message.error, severity="error", timeout=20)

    # -- detail ------------------------------------------------------------------------------------
    def on_mailbox_highlighted(self, message: MailboxHighlighted) -> None:
        # after the table has repainted, and only for the last of several quick moves
        self._detail_pending = message.position
        if not self._detail_scheduled:
            self._detail_scheduled = True
            self.call_after_refresh(self._flush_detail)

    def _flush_detail(self) -> None:
        self._detail_scheduled = False
        self._show_detail(self._detail_pending)

    def _show_detail(self, position: int | None, force: bool = False) -> None:
        pane = self.query_one(DetailPane)
        key = (position, id(self.view), self.view.findings is not None if self.view is not None else None)
        if key == self._detail_key and not force:
            return  # same mailbox, same data: nothing to redraw
        self._detail_key = key
        if position is None or self.view is None or not pane.display:
            pane.show(None)
            return
        record = self.view.record(position)
        identity = self.view.id_at(position)
        onprem = self.session.onprem_record(identity, record) if self.session else None
        findings = self.session.findings_for(identity) if self.session else []
        pane.show(record, onprem, findings)

    def action_toggle_detail(self) -> None:
        pane = self.query_one(DetailPane)
        pane.display = not pane.display
        self._show_detail(self.query_one(MailboxTable).cursor_position, force=True)

    def jump_to(self, identity: str) -> bool:
        """Put the cursor on this mailbox, clearing filters if it is filtered out."""
        if self.view is None:
            return False
        position = self.view.position_of(identity)
        if position is None:
            self.notify(f"{identity} is not in the inventory", severity="warning")
            return False
        table = self.query_one(MailboxTable)
        if not table.move_to_position(position):
            self.query_one(FilterBar).clear()
            self._sync_filter()
            table.move_to_position(position)
        table.focus()
        return True

    # -- counts --------------------------------------------------------------------------------------
    def _update_counts(self) -> None:
        counts = self.query_one("#counts", Static)
        if self.view is None:
            counts.update("no inventory loaded", layout=False)
            return
        parts = [f"shown {len(self.shown):,} / total {self.view.size:,}", f"selected {self.selection.count:,}"]
        described = self.quick.describe()
        if self.text or described:
            parts.append("filter: " + ", ".join(p for p in (f"“{self.text}”" if self.text else "", described) if p))
        if self.sort_column:
            heading = dict(MAILBOX_COLUMNS)[self.sort_column]
            parts.append(f"sort: {heading} {'▼' if self.sort_descending else '▲'}")
        source = self.source
        if source is not None:
            fetched = getattr(source, "fetched_at", None)
            age = format_age(fetched, self.exo_app.clock())
            origin = "snapshot" if getattr(source, "from_snapshot", False) else "fetched"
            parts.append(f"{origin} {age}")
        if self.inventory is None:
            parts.append("loading…")
        elif self.view.findings is None:
            parts.append("findings failed (r retries)" if self.detection_error else "detecting…")
        if self.note:
            parts.append(self.note)
        counts.update(" · ".join(parts), layout=False)  # one fixed line: no re-layout per keystroke
