"""The filter bar: a search box and the quick filters; it posts FilterChanged, core does the filtering."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from exocm.core.app.views import QuickFilter
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Static

from ..messages import FilterChanged

#: quick filter field -> (key hint, label)
QUICK_LABELS: dict[str, tuple[str, str]] = {
    "cloud_managed": ("1", "cloud-managed"),
    "onprem_managed": ("2", "on-prem-managed"),
    "not_dirsynced": ("3", "not dir-synced"),
    "has_findings": ("4", "has findings"),
}


class QuickFilters(Static):
    """The quick filter toggles as one line; active ones are highlighted."""

    DEFAULT_CSS = """
    QuickFilters { width: 1fr; height: 1; padding: 0 1; }
    """

    def show(self, quick: QuickFilter) -> None:
        """Render the toggles for this state."""
        text = Text(no_wrap=True, overflow="ellipsis")
        for name, (key, label) in QUICK_LABELS.items():
            on_ = bool(getattr(quick, name))
            text.append(f"{key} ", style="dim")
            text.append(f"{label}", style="bold reverse" if on_ else "")
            text.append("  ")
        text.append("t ", style="dim")
        types = "|".join(sorted(quick.types)) if quick.types else "any type"
        text.append(types, style="bold reverse" if quick.types else "")
        self.update(text, layout=False)


class FilterBar(Horizontal):
    """Search text (name, UPN, SMTP, alias, proxy addresses) and quick filters."""

    DEFAULT_CSS = """
    FilterBar { height: 3; }
    FilterBar > Input { width: 30; }  /* at 120 columns the quick filters, type included, still fit */
    FilterBar > QuickFilters { margin-top: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.quick = QuickFilter()
        self.types: list[str] = []

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ search name, UPN, SMTP", id="search")
        yield QuickFilters(id="quick-filters")

    def on_mount(self) -> None:
        self.query_one(QuickFilters).show(self.quick)

    @property
    def text(self) -> str:
        """The search text."""
        return self.query_one("#search", Input).value

    def set_types(self, types: Sequence[str]) -> None:
        """The RecipientTypeDetails values the type filter cycles through."""
        self.types = list(types)

    def toggle(self, name: str) -> None:
        """Toggle one boolean quick filter (a QuickFilter field name)."""
        self.quick = replace(self.quick, **{name: not getattr(self.quick, name)})
        self._changed()

    def cycle_type(self) -> None:
        """Next type filter: any -> each type present -> any."""
        current = next(iter(self.quick.types)) if len(self.quick.types) == 1 else None
        if current is None:
            nxt = self.types[0] if self.types else None
        else:
            index = self.types.index(current) + 1 if current in self.types else len(self.types)
            nxt = self.types[index] if index < len(self.types) else None
        self.set_type(nxt)

    def set_type(self, type_name: str | None) -> None:
        """Filter on one type (None: any)."""
        self.quick = replace(self.quick, types=frozenset({type_name}) if type_name else frozenset())
        self._changed()

    def clear(self) -> None:
        """No search text and no quick filter."""
        self.quick = QuickFilter()
        search = self.query_one("#search", Input)
        with search.prevent(Input.Changed):
            search.value = ""
        self._changed()

    def _changed(self) -> None:
        self.query_one(QuickFilters).show(self.quick)
        self.post_message(FilterChanged(self.text, self.quick))

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(FilterChanged(event.value, self.quick))

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.focus_next()
