"""A read-only table of a small-to-large pandas frame, Arrow-backed (textual-fastdatatable).

fastdatatable cannot swap its data in place, so `show_frame` mounts a fresh table each time.
Cells are shown as text; the frame given is what is shown (core decides its rows and columns).
"""
from __future__ import annotations

from typing import Any

import pandas as pd
from exocm.core.app.views import display_value
from textual.containers import Vertical
from textual.widgets import Static
from textual_fastdatatable import ArrowBackend, DataTable


class FrameTable(Vertical):
    """Holds one fastdatatable DataTable (row cursor) built from a DataFrame, or a placeholder line.

    fastdatatable binds Tab / Shift+Tab to moving its cell cursor; screens that hold FrameTables
    bind them with priority to app.focus_next / app.focus_previous so the keyboard moves between panes instead.
    """

    DEFAULT_CSS = """
    FrameTable { height: 1fr; }
    FrameTable > DataTable { height: 1fr; }
    FrameTable > .frame-table--empty { color: $text-muted; padding: 0 1; }
    """

    def __init__(self, empty: str = "Nothing to show.", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.empty = empty
        self.frame: pd.DataFrame | None = None
        self._generation = 0

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(self.empty, classes="frame-table--empty", markup=False)

    @property
    def table(self) -> DataTable | None:
        """The current DataTable (None while empty)."""
        found = self.query(DataTable)
        return found.first() if found else None

    def show_frame(self, frame: pd.DataFrame | None, *, focus: bool = False) -> None:
        """Replace the table with one showing `frame` (every cell as text)."""
        self.frame = frame
        self.remove_children()
        self._generation += 1
        if frame is None or frame.empty:
            self.mount(Static(self.empty, classes="frame-table--empty", markup=False))
            return
        text = pd.DataFrame({str(c): [_cell(v) for v in frame[c].tolist()] for c in frame.columns})
        table = DataTable(backend=ArrowBackend.from_pandas(text), cursor_type="row",
                          max_column_content_width=60, show_row_labels=False, render_markup=False,
                          id=f"{self.id or 'frame'}-table-{self._generation}")
        self.mount(table)
        if focus:
            table.focus()

    @property
    def cursor_row(self) -> int | None:
        """Index (into the frame given) of the highlighted row."""
        table = self.table
        if table is None or self.frame is None or self.frame.empty:
            return None
        return int(table.cursor_row)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}={display_value(v)}" for k, v in value.items())
    return display_value(value)
