"""The help screen: every key binding of every screen, with the id that remaps it in config.toml [keys]."""
from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ..commands import bindings_of
from ..widgets.tenant_header import TenantHeader

INTRO = (
    "exocm lists every mailbox, shows what blocks a flip of IsExchangeCloudManaged, and flips a selection "
    "with a plan, a journal and an undo. Ctrl+P opens the command palette (every action). "
    "Remap a key in config.toml:  [keys]  mailboxes.preview = \"ctrl+o\"  (binding id = key)."
)


def _sections() -> list[tuple[str, object]]:
    from ..app import ExocmApp
    from ..widgets.mailbox_table import MailboxTable
    from .apply import ApplyScreen
    from .findings import FindingsScreen
    from .journals import JournalsScreen
    from .mailboxes import MailboxesScreen
    from .preview import PreviewScreen
    from .runbook import RunbookScreen

    return [("Everywhere", ExocmApp), ("Mailboxes", MailboxesScreen), ("Mailbox table", MailboxTable),
            ("Findings", FindingsScreen), ("Runbook (a fix started from Findings)", RunbookScreen),
            ("Preview", PreviewScreen), ("Apply", ApplyScreen), ("Journals", JournalsScreen),
            ("Help", HelpScreen)]


class HelpScreen(Screen[None]):
    """Keys per screen (after the user's keymap), their description and binding id."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="help.back"),
        Binding("q", "back", "Back", show=False, id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        yield TenantHeader("Help")
        with VerticalScroll(id="help-body"):
            yield Static(self._render_help(), id="help-text")
        yield Footer()

    def _render_help(self) -> Group:
        keymap: dict[str, str] = getattr(self.app, "_keymap", {}) or {}
        parts: list[object] = [Text(INTRO), Text("")]
        for title, owner in _sections():
            table = Table(title=title, title_justify="left", title_style="bold", expand=True, box=None)
            # the same column widths in every section: keys line up from one screen to the next
            table.add_column("Key", style="bold cyan", no_wrap=True, width=14)
            table.add_column("Action", ratio=1)
            table.add_column("Binding id", style="dim", no_wrap=True, width=30)
            for binding in bindings_of(owner):  # type: ignore[arg-type]
                key = keymap.get(binding.id or "", binding.key)
                table.add_row(self.app.get_key_display(Binding(key, binding.action)),
                              binding.description or binding.action, binding.id or "")
            parts += [table, Text("")]
        return Group(*parts)  # type: ignore[arg-type]

    def action_back(self) -> None:
        self.app.pop_screen()
