"""The Groups / Contacts / Users screen: one Graph kind's objects with search, quick filters, selection,
a detail pane (members, parents and children for groups), preview and apply.

What is shown and how rows filter is core's (core.app.object_views, core.app.session); the plan
comes from core.plan.objects (children before parents) and runs through the same Preview and
Apply screens as mailbox plans.
"""
from __future__ import annotations

from typing import Any, ClassVar

from exocm.core.app.object_views import (
    OBJECT_QUICK_FILTERS,
    OBJECT_TABLE_COLUMNS,
    filter_objects,
    findings_per_object,
    object_cells,
    object_detail,
)
from exocm.core.model import KIND_LABELS
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from ..messages import PlanBuilt, PlanFailed
from ..widgets.choice_modal import ChoiceModal
from ..widgets.tenant_header import TenantHeader


class ObjectsLoaded(Message):
    """A kind's inventory and findings are in the session."""


class ObjectsFailed(Message):
    """Reading a kind failed; `error` is one line."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class MembersRead(Message):
    """The live members of one group, for the detail pane."""

    def __init__(self, identity: str, members: list[dict[str, Any]]) -> None:
        super().__init__()
        self.identity = identity
        self.members = members


def kind_bar(current: str) -> Text:
    """The kind switcher line: every kind with its key, the current one highlighted."""
    text = Text(no_wrap=True)
    for number, (kind, label) in enumerate(KIND_LABELS.items(), start=1):
        style = "bold reverse" if kind == current else "dim"
        text.append(f" {label} ", style=style)
        text.append(f"(F{number + 1})  ", style="dim")
    return text


class ObjectsScreen(Screen[None]):
    """One Graph kind (group, contact, user): the same table, search, quick filters, detail, preview, apply."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search", id="objects.search"),
        Binding("escape", "back", "Back", show=False, id="objects.back"),
        Binding("space", "toggle_row", "Select", id="objects.toggle"),
        Binding("a", "select_all", "Select shown", id="objects.select_all"),
        Binding("n", "select_none", "Select none", show=False, id="objects.select_none"),
        Binding("p", "preview", "Preview", id="objects.preview"),
        Binding("r", "refresh", "Refresh", id="objects.refresh"),
        Binding("1", "quick('cloud_managed')", "Cloud-managed", show=False, id="objects.quick_cloud"),
        Binding("2", "quick('onprem_managed')", "AD-managed", show=False, id="objects.quick_onprem"),
        Binding("3", "quick('not_synced')", "Not synced", show=False, id="objects.quick_not_synced"),
        Binding("4", "quick('has_findings')", "Has findings", show=False, id="objects.quick_findings"),
        Binding("x", "clear_filters", "Clear filters", show=False, id="objects.clear_filters"),
    ]

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.search = ""
        self.quick: list[str] = []
        self.shown: list[str] = []
        self.selected: set[str] = set()
        self.per: dict[str, list[str]] = {}
        self.members: dict[str, list[dict[str, Any]]] = {}

    @property
    def session(self) -> Any:
        """The app's session (None before it connected)."""
        return getattr(self.app, "session", None)

    @property
    def frame(self) -> Any:
        """The kind's inventory frame, or None before it is loaded."""
        inventory = self.session.objects.get(self.kind) if self.session is not None else None
        return inventory.frame if inventory is not None else None

    def compose(self) -> ComposeResult:
        yield TenantHeader(KIND_LABELS[self.kind])
        yield Static(kind_bar(self.kind), id="objects-kinds")
        yield Input(placeholder=f"search {KIND_LABELS[self.kind].lower()} (/)", id="objects-search")
        yield Static("", id="objects-status", markup=False)
        with Horizontal(id="objects-body"):
            yield DataTable(id="objects-table", cursor_type="row", zebra_stripes=True)
            with Vertical(id="objects-detail-pane"):
                yield Static("", id="objects-detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#objects-table", DataTable)
        table.add_columns("✓", *(heading for _, heading in OBJECT_TABLE_COLUMNS[self.kind]))
        if self.frame is not None:
            self._show()
        else:
            self._set_status(f"reading {KIND_LABELS[self.kind].lower()} through Microsoft Graph…")
            self.load(refresh=False)
        table.focus()

    # -- loading -------------------------------------------------------------------------------------
    def load(self, refresh: bool) -> None:
        """Read the kind (and its findings) in a worker."""
        if self.session is None:
            self._set_status("not connected yet")
            return
        self._load_worker(refresh)

    @work(thread=True, exclusive=True, group="objects-load")
    def _load_worker(self, refresh: bool) -> None:
        try:
            self.session.load_objects(self.kind, refresh=refresh)
            self.session.findings_of(self.kind)
        except Exception as exc:  # noqa: BLE001 - one line for the user, the app stays up
            self.post_message(ObjectsFailed(str(exc).strip().splitlines()[0] if str(exc).strip()
                                            else type(exc).__name__))
            return
        self.post_message(ObjectsLoaded())

    def on_objects_loaded(self, message: ObjectsLoaded) -> None:
        self._show()

    def on_objects_failed(self, message: ObjectsFailed) -> None:
        self._set_status(f"could not read {KIND_LABELS[self.kind].lower()}: {message.error}")
        self.notify(message.error, title=f"{KIND_LABELS[self.kind]} failed", severity="error", timeout=30)

    # -- the table -----------------------------------------------------------------------------------
    def _show(self) -> None:
        frame = self.frame
        if frame is None:
            return
        findings = self.session.object_findings.get(self.kind)
        self.per = findings_per_object(findings)
        self.shown = filter_objects(frame, findings, self.search, self.quick)
        table = self.query_one("#objects-table", DataTable)
        table.clear()
        for oid in self.shown:
            mark = "✓" if oid in self.selected else ""
            table.add_row(mark, *object_cells(self.kind, frame, oid, self.per), key=oid)
        self._update_status()

    def _update_status(self) -> None:
        frame = self.frame
        total = len(frame) if frame is not None else 0
        filters = ", ".join(OBJECT_QUICK_FILTERS[q] for q in self.quick)
        self._set_status(f"{len(self.shown):,} of {total:,} shown · {len(self.selected):,} selected"
                         + (f" · filter: {filters}" if filters else "")
                         + (f" · search: {self.search}" if self.search else ""))

    def _set_status(self, text: str) -> None:
        self.query_one("#objects-status", Static).update(text)

    @on(Input.Changed, "#objects-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.search = event.value
        self._show()

    @on(Input.Submitted, "#objects-search")
    def _search_done(self, event: Input.Submitted) -> None:
        self.query_one("#objects-table", DataTable).focus()

    def action_search(self) -> None:
        self.query_one("#objects-search", Input).focus()

    def action_quick(self, name: str) -> None:
        """Toggle one quick filter."""
        if name in self.quick:
            self.quick.remove(name)
        else:
            self.quick.append(name)
        self._show()

    def action_clear_filters(self) -> None:
        self.quick.clear()
        self.search = ""
        self.query_one("#objects-search", Input).value = ""
        self._show()

    def action_refresh(self) -> None:
        self.load(refresh=True)

    def action_back(self) -> None:
        back = getattr(self.app, "back_to_mailboxes", None)
        if callable(back):
            back()

    # -- selection -----------------------------------------------------------------------------------
    def _current(self) -> str | None:
        table = self.query_one("#objects-table", DataTable)
        if not self.shown or table.cursor_row is None or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def action_toggle_row(self) -> None:
        oid = self._current()
        if oid is None:
            return
        if oid in self.selected:
            self.selected.discard(oid)
        else:
            self.selected.add(oid)
        table = self.query_one("#objects-table", DataTable)
        table.update_cell(oid, table.ordered_columns[0].key, "✓" if oid in self.selected else "")
        self._update_status()

    def select_ids(self, identities: list[str]) -> None:
        """Select these ids (those in the inventory) and repaint."""
        frame = self.frame
        if frame is not None:
            self.selected.update(i for i in identities if i in frame.index)
        self._show()

    def action_select_all(self) -> None:
        self.selected.update(self.shown)
        self._show()

    def action_select_none(self) -> None:
        self.selected.clear()
        self._show()

    # -- detail --------------------------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#objects-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        oid = str(event.row_key.value) if event.row_key is not None else None
        if oid is None or self.frame is None:
            return
        self._render_detail(oid)
        if self.kind == "group" and oid not in self.members:
            self._members_worker(oid)

    def _render_detail(self, oid: str) -> None:
        frame = self.frame
        if frame is None or oid not in frame.index:
            return
        lines = object_detail(self.kind, frame, oid, self.session.object_findings.get(self.kind))
        if self.kind == "group":  # the live members right after the parent and child groups
            members = self.members.get(oid)
            if members is None:
                block = [("Members", "reading…")]
            else:
                block = [(f"Members ({len(members)})", "")]
                for m in members[:50]:
                    kind = str(m.get("@odata.type", "")).rsplit(".", 1)[-1]
                    cloud = ", cloud-only" if m.get("onPremisesSyncEnabled") is not True else ""
                    block.append(("  ", f"{m.get('displayName') or m.get('id')} ({kind}{cloud})"))
                if len(members) > 50:
                    block.append(("  ", f"… and {len(members) - 50} more"))
            at = next((n + 1 for n, (label, _) in enumerate(lines) if label == "Child groups"), len(lines))
            lines[at:at] = block
        text = "\n".join(f"{label}: {value}" if label.strip() and value else f"{label}{value}"
                         for label, value in lines)
        self.query_one("#objects-detail", Static).update(text)

    @work(thread=True, exclusive=True, group="objects-members")
    def _members_worker(self, oid: str) -> None:
        try:
            members = self.session.group_members(oid)
        except Exception:  # noqa: BLE001 - the detail pane says nothing more; the table stays
            return
        self.post_message(MembersRead(oid, members))

    def on_members_read(self, message: MembersRead) -> None:
        self.members[message.identity] = message.members
        if self._current() == message.identity:
            self._render_detail(message.identity)

    # -- preview and apply ---------------------------------------------------------------------------
    def action_preview(self) -> None:
        if self.frame is None:
            self.notify(f"The {KIND_LABELS[self.kind].lower()} are not loaded yet.", severity="warning")
            return
        count = len(self.selected)
        if not count:
            self.notify("Select rows first (space toggles, a selects all shown).", severity="warning")
            return

        def chosen(value: str | None) -> None:
            if value in ("enable", "disable"):
                self.preview(value == "enable")

        self.app.push_screen(ChoiceModal(
            f"Preview a plan for {count:,} selected {KIND_LABELS[self.kind].lower()}",
            "Convert moves their source of authority to the cloud (isCloudManaged true; nested groups "
            "children first); hand back returns it to AD (the next sync overwrites cloud values).",
            [("enable", "e", "Convert to cloud-managed"), ("disable", "d", "Hand back to AD")]), chosen)

    def preview(self, target: bool) -> None:
        """Build a plan for the selection (in a worker) and open the Preview screen."""
        rows = [oid for oid in (self.frame.index if self.frame is not None else []) if oid in self.selected]
        self._plan_worker(list(rows), target)

    @work(thread=True, exclusive=True, group="objects-plan")
    def _plan_worker(self, identities: list[str], target: bool) -> None:
        try:
            plan = self.session.build_object_plan(self.kind, identities, target)
        except Exception as exc:  # noqa: BLE001
            self.post_message(PlanFailed(str(exc) or type(exc).__name__))
            return
        verb = "Convert to cloud-managed" if target else "Hand back to AD"
        self.post_message(PlanBuilt(plan, f"{verb}: {len(identities):,} selected {KIND_LABELS[self.kind].lower()}"))

    def on_plan_built(self, message: PlanBuilt) -> None:
        from .preview import PreviewScreen

        self.app.push_screen(PreviewScreen(message.plan, message.title))

    def on_plan_failed(self, message: PlanFailed) -> None:
        self.notify(message.error, severity="error", timeout=20)
