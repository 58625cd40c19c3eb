"""Every property of the highlighted mailbox; cloud and on-prem side by side, differences highlighted."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exocm.core.views import compare_sides
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


class DetailPane(VerticalScroll):
    """Shows one mailbox (`show`) as a property table; with on-prem data, a third column and marks."""

    DEFAULT_CSS = """
    DetailPane { height: 14; border-top: tall $panel; padding: 0 1; }
    DetailPane > Static { width: 100%; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._body = Static("No mailbox highlighted.", id="detail-body")

    def compose(self):  # type: ignore[no-untyped-def]
        yield self._body

    def show(self, cloud: Mapping[str, Any] | None, onprem: Mapping[str, Any] | None = None,
             findings: list[tuple[str, str, str]] | None = None) -> None:
        """Show a mailbox: `cloud` properties, optional `onprem` ones, and (code, severity, text) findings."""
        if cloud is None:
            self._body.update("No mailbox highlighted.")
            return
        rows = compare_sides(cloud, onprem)
        table = Table(box=None, expand=True, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("Property", style="bold", no_wrap=True, ratio=2)
        table.add_column("Cloud (EXO)", ratio=3, overflow="fold")
        if onprem is not None:
            table.add_column("On-prem", ratio=3, overflow="fold")
        differing = 0
        for name, left, right, differs in rows:
            if not left and not right:
                continue
            style = "bold yellow" if differs else ""
            differing += differs
            cells = [Text(("≠ " if differs else "") + name, style=style), Text(left, style=style)]
            if onprem is not None:
                cells.append(Text(right, style=style))
            table.add_row(*cells)
        title = Text(str(cloud.get("DisplayName") or cloud.get("UserPrincipalName") or ""), style="bold")
        parts: list[Any] = [title]
        if onprem is None:
            parts.append(Text("no on-prem data for this mailbox", style="dim"))
        elif differing:
            parts.append(Text(f"{differing} properties differ between on-prem and cloud", style="yellow"))
        else:
            parts.append(Text("on-prem and cloud agree", style="green"))
        for code, severity, explanation in findings or []:
            parts.append(Text(f"{severity.upper():8} {code}: {explanation}", style=_SEVERITY_STYLE.get(severity, "")))
        parts.append(table)
        from rich.console import Group

        self._body.update(Group(*parts))


_SEVERITY_STYLE = {"critical": "bold red", "high": "bold yellow", "medium": "yellow", "low": "dim", "info": "dim"}
