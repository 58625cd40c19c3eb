"""A virtualised mailbox table: renders only the visible lines (Line API), whatever the row count.

The widget draws; it decides nothing. Which rows are shown, in which order, and which are
selected comes from core.views (MailboxView positions and CheckedRows). Rendered lines are cached
(LRU) by row and state, as Toolong does, so scrolling 300,000 rows costs only what is on screen.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

import numpy as np
from exocm.core.app.views import MAILBOX_COLUMNS, CheckedRows, MailboxView, Positions
from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..messages import MailboxHighlighted, SelectionChanged, SortRequested

#: Fixed widths; DisplayName and UserPrincipalName share what is left (min widths below).
_FIXED = {"RecipientTypeDetails": 16, "IsDirSynced": 6, "IsExchangeCloudManaged": 5, "Findings": 10,
          "WhenChanged": 16}
_FLEX_MIN = {"DisplayName": 18, "UserPrincipalName": 26}
_MARK = 2  # selection mark "● "


def _fit(text: str, width: int) -> str:
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, max(0, width - 1)) + "…"


class MailboxTable(ScrollView, can_focus=True):
    """Rows of a MailboxView at the given positions, with a selection mark and a cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle", "Toggle", id="table.toggle"),
        Binding("up", "cursor_up", "Up", show=False, id="table.up"),
        Binding("down", "cursor_down", "Down", show=False, id="table.down"),
        Binding("pageup", "page_up", "Page up", show=False, id="table.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="table.page_down"),
        Binding("home", "first", "First", show=False, id="table.first"),
        Binding("end", "last", "Last", show=False, id="table.last"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "mailbox-table--header",
        "mailbox-table--cursor",
        "mailbox-table--selected",
        "mailbox-table--mark",
        "mailbox-table--critical",
        "mailbox-table--high",
        "mailbox-table--medium",
        "mailbox-table--low",
        "mailbox-table--info",
        "mailbox-table--yes",
        "mailbox-table--no",
    }

    DEFAULT_CSS = """
    MailboxTable { background: $surface; }
    MailboxTable > .mailbox-table--header { text-style: bold; background: $panel; color: $text; }
    MailboxTable > .mailbox-table--cursor { background: $block-cursor-background 60%; }
    MailboxTable:focus > .mailbox-table--cursor { background: $block-cursor-background; text-style: bold; }
    MailboxTable > .mailbox-table--selected { background: $secondary 35%; }
    MailboxTable > .mailbox-table--mark { color: $accent; text-style: bold; }
    MailboxTable > .mailbox-table--critical { color: $error; text-style: bold; }
    MailboxTable > .mailbox-table--high { color: $warning; text-style: bold; }
    MailboxTable > .mailbox-table--medium { color: $warning; }
    MailboxTable > .mailbox-table--low { color: $text-muted; }
    MailboxTable > .mailbox-table--info { color: $text-muted; }
    MailboxTable > .mailbox-table--yes { color: $success; }
    MailboxTable > .mailbox-table--no { color: $text-muted; }
    """

    cursor = reactive(0, always_update=True, init=False)

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.view: MailboxView | None = None
        self.positions: Positions = np.zeros(0, dtype=np.intp)
        self.selection: CheckedRows | None = None
        self.sort_column: str | None = None
        self.sort_descending = False
        self._widths: list[int] = []
        self._line_cache: LRUCache[tuple[object, ...], Strip] = LRUCache(1024)
        #: perf_counter() just after the last refresh that drew rows set by `show`/`set_view`
        self.painted_at: float | None = None
        self._paint_pending = False
        self._after_paint: list[Callable[[], object]] = []

    # data ------------------------------------------------------------------------------------
    def set_view(self, view: MailboxView, selection: CheckedRows) -> None:
        """Show a new inventory view (positions are set with `show`)."""
        self.view = view
        self.selection = selection
        self._line_cache.clear()
        self._paint_pending = True

    def show(self, positions: Positions, *, keep: bool = True) -> None:
        """Show these inventory positions, in this order; keep the cursor on the same mailbox if shown."""
        current = self.cursor_position if keep else None
        self.positions = positions  # cached lines stay valid: they are keyed by inventory position and state
        index = 0
        if current is not None and len(positions):
            found = np.flatnonzero(positions == current)
            index = int(found[0]) if len(found) else 0
        self._update_virtual_size()
        self.cursor = min(index, max(0, len(positions) - 1))
        self._paint_pending = True
        self.refresh()

    def after_paint(self, callback: Callable[[], object]) -> None:
        """Call `callback` once a refresh has drawn the rows last given to `show` (on the screen, not
        only computed: a screen's call_after_refresh may run before the table's own refresh)."""
        self._after_paint.append(callback)
        self._paint_pending = True
        self.refresh()

    def refresh_rows(self) -> None:
        """Repaint after a selection or findings change (rows are the same)."""
        self._line_cache.clear()
        self.refresh()

    @property
    def row_count(self) -> int:
        """How many rows are shown."""
        return len(self.positions)

    @property
    def cursor_position(self) -> int | None:
        """Inventory position under the cursor, or None when the table is empty."""
        if not len(self.positions) or self.cursor >= len(self.positions):
            return None
        return int(self.positions[self.cursor])

    def move_to_position(self, position: int) -> bool:
        """Put the cursor on inventory `position` if it is shown; False otherwise."""
        found = np.flatnonzero(self.positions == position)
        if not len(found):
            return False
        self.cursor = int(found[0])
        return True

    # layout ----------------------------------------------------------------------------------
    def _compute_widths(self, total: int) -> list[int]:
        gaps = len(MAILBOX_COLUMNS)  # one space after the mark and between columns
        fixed = sum(_FIXED.values())
        flexible = max(sum(_FLEX_MIN.values()), total - _MARK - fixed - gaps)
        name = max(_FLEX_MIN["DisplayName"], flexible * 2 // 5)
        upn = max(_FLEX_MIN["UserPrincipalName"], flexible - name)
        widths = []
        for key, _ in MAILBOX_COLUMNS:
            widths.append(name if key == "DisplayName" else upn if key == "UserPrincipalName" else _FIXED[key])
        return widths

    def _update_virtual_size(self) -> None:
        width = self.scrollable_content_region.width or self.size.width or 120
        self._widths = self._compute_widths(width)
        total = _MARK + sum(self._widths) + len(self._widths)
        self.virtual_size = Size(total, len(self.positions) + 1)

    def on_resize(self, event: events.Resize) -> None:
        self._line_cache.clear()
        self._update_virtual_size()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_cache.clear()

    # rendering -------------------------------------------------------------------------------
    def render_lines(self, crop: Region) -> list[Strip]:
        strips = super().render_lines(crop)
        if self._paint_pending:
            self._paint_pending = False
            self.call_later(self._painted)  # runs once this refresh has been written out
        return strips

    def _painted(self) -> None:
        self.painted_at = time.perf_counter()
        callbacks, self._after_paint = self._after_paint, []
        for callback in callbacks:
            callback()

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"mailbox-table--{name}")

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        if not self._widths:
            self._update_virtual_size()
        if y == 0:
            strip = self._header_strip()
        else:
            index = scroll_y + y - 1
            if index >= len(self.positions) or self.view is None:
                return Strip.blank(width, self.rich_style)
            strip = self._row_strip(index)
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _header_strip(self) -> Strip:
        key = ("header", self.sort_column, self.sort_descending, tuple(self._widths))
        cached = self._line_cache.get(key)
        if cached is not None:
            return cached
        style = self.rich_style + self._style("header")
        segments = [Segment(" " * _MARK, style)]
        for (column, heading), width in zip(MAILBOX_COLUMNS, self._widths, strict=True):
            arrow = ""
            if column == self.sort_column:
                arrow = " ▼" if self.sort_descending else " ▲"
            segments.append(Segment(_fit(heading + arrow, width) + " ", style))
        strip = Strip(segments)
        self._line_cache[key] = strip
        return strip

    def _row_strip(self, index: int) -> Strip:
        assert self.view is not None
        position = int(self.positions[index])
        selected = self.selection.is_selected(position) if self.selection is not None else False
        is_cursor = index == self.cursor
        key = (position, selected, is_cursor, self.has_focus, tuple(self._widths))
        cached = self._line_cache.get(key)
        if cached is not None:
            return cached
        base = self.rich_style
        if selected:
            base += self._style("selected")
        if is_cursor:
            base += self._style("cursor")
        cells = self.view.cells(position)
        mark = Segment("● " if selected else "  ", base + self._style("mark"))
        segments = [mark]
        severity = self.view.severity_of(position)
        for (column, _), width, text in zip(MAILBOX_COLUMNS, self._widths, cells, strict=True):
            style = base
            if column == "Findings" and severity:
                style = base + self._style(severity)
            elif column in ("IsDirSynced", "IsExchangeCloudManaged"):
                style = base + self._style(text)
            segments.append(Segment(_fit(text, width), style))
            segments.append(Segment(" ", base))
        strip = Strip(segments)
        self._line_cache[key] = strip
        return strip

    # cursor ----------------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        self._scroll_cursor_into_view()
        self.refresh()  # lines are cached with their cursor state: only the two changed rows are drawn anew
        self.post_message(MailboxHighlighted(self.cursor_position))

    def _scroll_cursor_into_view(self) -> None:
        visible = max(1, self.scrollable_content_region.height - 1)
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False, immediate=True)

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 2)

    def action_cursor_up(self) -> None:
        if self.cursor > 0:
            self.cursor -= 1

    def action_cursor_down(self) -> None:
        if self.cursor < len(self.positions) - 1:
            self.cursor += 1

    def action_page_up(self) -> None:
        self.cursor = max(0, self.cursor - self._page())

    def action_page_down(self) -> None:
        self.cursor = max(0, min(len(self.positions) - 1, self.cursor + self._page()))

    def action_first(self) -> None:
        self.cursor = 0

    def action_last(self) -> None:
        self.cursor = max(0, len(self.positions) - 1)

    def action_toggle(self) -> None:  # type: ignore[override]  # the "toggle" key binding, not DOMNode's
        """Toggle the selection of the row under the cursor and move down."""
        position = self.cursor_position
        if position is None or self.selection is None:
            return
        self.selection.toggle(position)
        self.post_message(SelectionChanged(self.selection.count))
        if self.cursor < len(self.positions) - 1:
            self.cursor += 1
        else:
            self.refresh_rows()

    def on_focus(self) -> None:
        self.refresh_rows()

    def on_blur(self) -> None:
        self.refresh_rows()

    async def _on_click(self, event: events.Click) -> None:
        if event.y == 0:
            x = event.x + int(self.scroll_x) - _MARK
            for (column, _), width in zip(MAILBOX_COLUMNS, self._widths, strict=True):
                if 0 <= x < width + 1:
                    self.post_message(SortRequested(column))
                    break
                x -= width + 1
            return
        index = int(self.scroll_y) + event.y - 1
        if 0 <= index < len(self.positions):
            self.cursor = index
