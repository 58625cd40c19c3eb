"""Every property of the highlighted mailbox; cloud and on-prem side by side, differences highlighted.

A Line API widget: `show` lays the property table out as lines once (a few dozen strings, wrapped
to the pane's width), and only the visible lines are drawn. Moving the cursor through the mailbox
table therefore costs neither a rich Table measurement nor a re-layout of the screen.
"""
from __future__ import annotations

from collections.abc import Mapping
from math import ceil
from typing import Any

from exocm.core.app.views import compare_sides
from rich.cells import cell_len, chop_cells, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

_SEVERITY_STYLE = {"critical": "bold red", "high": "bold yellow", "medium": "yellow", "low": "dim", "info": "dim"}
_RATIOS_WITH_ONPREM = (2, 3, 3)
_RATIOS_CLOUD_ONLY = (2, 3)
_GAP = 2  # between columns (one space of padding on each side, none at the edges)

Piece = tuple[str, str]  # (text, style)


def ratio_widths(total: int, ratios: tuple[int, ...]) -> list[int]:
    """Split `total` cells by `ratios`, rounding up as it goes (the way rich sizes ratio columns)."""
    widths: list[int] = []
    remaining_ratio, remaining = sum(ratios), total
    for ratio in ratios:
        width = max(1, ceil(ratio * remaining / remaining_ratio)) if remaining_ratio else remaining
        widths.append(width)
        remaining_ratio -= ratio
        remaining -= width
    return widths


def wrap(text: str, width: int) -> list[str]:
    """Word-wrap `text` to `width` cells; words longer than a line are folded."""
    if width <= 0:
        return [text]
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if cell_len(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            chunks = chop_cells(word, width) if cell_len(word) > width else [word]
            lines.extend(chunks[:-1])
            line = chunks[-1] if chunks else ""
        lines.append(line)
    return lines or [""]


class DetailPane(ScrollView):
    """Shows one mailbox (`show`) as a property table; with on-prem data, a third column and marks."""

    DEFAULT_CSS = """
    DetailPane { height: 14; border-top: tall $panel; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._content: tuple[Mapping[str, Any] | None, Mapping[str, Any] | None,
                             list[tuple[str, str, str]]] = (None, None, [])
        self._lines: list[list[Piece]] = [[("No mailbox highlighted.", "")]]
        self._laid_out_width = -1
        self._styles: dict[str, Style] = {}

    # content ---------------------------------------------------------------------------------
    def show(self, cloud: Mapping[str, Any] | None, onprem: Mapping[str, Any] | None = None,
             findings: list[tuple[str, str, str]] | None = None) -> None:
        """Show a mailbox: `cloud` properties, optional `onprem` ones, and (code, severity, text) findings."""
        self._content = (cloud, onprem, list(findings or []))
        self._layout(self._width())
        self.refresh()

    @property
    def text(self) -> str:
        """What the pane holds, as plain text (all lines, not only the visible ones)."""
        return "\n".join("".join(text for text, _ in line).rstrip() for line in self._lines)

    def _width(self) -> int:
        return max(20, self.scrollable_content_region.width or self.size.width or 80)

    def _layout(self, width: int) -> None:
        self._laid_out_width = width
        cloud, onprem, findings = self._content
        if cloud is None:
            self._lines = [[("No mailbox highlighted.", "")]]
        else:
            self._lines = self._table_lines(cloud, onprem, findings, width)
        self.virtual_size = Size(width, len(self._lines))
        if self.scroll_y > self.max_scroll_y:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    def _table_lines(self, cloud: Mapping[str, Any], onprem: Mapping[str, Any] | None,
                     findings: list[tuple[str, str, str]], width: int) -> list[list[Piece]]:
        rows = [row for row in compare_sides(cloud, onprem) if row[1] or row[2]]
        differing = sum(1 for row in rows if row[3])
        lines: list[list[Piece]] = []
        title = str(cloud.get("DisplayName") or cloud.get("UserPrincipalName") or "")
        lines.extend([[(part, "bold")] for part in wrap(title, width)])
        if onprem is None:
            status, style = "no on-prem data for this mailbox", "dim"
        elif differing:
            noun = "property differs" if differing == 1 else "properties differ"
            status, style = f"{differing} {noun} between on-prem and cloud", "yellow"
        else:
            status, style = "on-prem and cloud agree", "green"
        lines.extend([[(part, style)] for part in wrap(status, width)])
        for code, severity, explanation in findings:
            text = f"{severity.upper():8} {code}: {explanation}"
            lines.extend([[(part, _SEVERITY_STYLE.get(severity, ""))] for part in wrap(text, width)])
        ratios = _RATIOS_WITH_ONPREM if onprem is not None else _RATIOS_CLOUD_ONLY
        columns = ratio_widths(width, ratios)
        # each column's width includes its padding: one cell on each inner side
        inner = [w - (0 if i == 0 else 1) - (0 if i == len(columns) - 1 else 1) for i, w in enumerate(columns)]
        headings = ["Property", "Cloud (EXO)"] + (["On-prem"] if onprem is not None else [])
        lines.append(self._row_line([[h] for h in headings], inner, ["bold"] * len(headings)))
        for name, left, right, differs in rows:
            label = ("≠ " if differs else "") + name
            name_cell = [label if cell_len(label) <= inner[0] else set_cell_size(label, inner[0] - 1) + "…"]
            cells = [name_cell, wrap(left, inner[1])]
            if onprem is not None:
                cells.append(wrap(right, inner[2]))
            value_style = "bold yellow" if differs else ""
            styles = ["bold yellow" if differs else "bold"] + [value_style] * (len(cells) - 1)
            height = max(len(cell) for cell in cells)
            for index in range(height):
                lines.append(self._row_line([[cell[index]] if index < len(cell) else [""] for cell in cells],
                                            inner, styles))
        return lines

    @staticmethod
    def _row_line(cells: list[list[str]], inner: list[int], styles: list[str]) -> list[Piece]:
        pieces: list[Piece] = []
        for index, (cell, width, style) in enumerate(zip(cells, inner, styles, strict=True)):
            if index:
                pieces.append((" " * _GAP, ""))
            pieces.append((set_cell_size(cell[0], width), style))
        return pieces

    # rendering -------------------------------------------------------------------------------
    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = Style.parse(name) if name else Style()
        return style

    def on_resize(self, event: events.Resize) -> None:
        width = self._width()
        if width != self._laid_out_width:
            self._layout(width)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        base = self.rich_style
        if index >= len(self._lines):
            return Strip.blank(width, base)
        segments = [Segment(text, base + self._style(style)) for text, style in self._lines[index]]
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, base)
