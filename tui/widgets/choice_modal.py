"""Pick one of a few options by key or button (e.g. enable or disable cloud management)."""
from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ChoiceModal(ModalScreen[str | None]):
    """Dismisses with the chosen option's value (or None on Esc). Options: (value, key, label)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="choice.cancel")]

    DEFAULT_CSS = """
    ChoiceModal { align: center middle; }
    ChoiceModal > Vertical { width: 80; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    ChoiceModal #choice-title { text-style: bold; }
    ChoiceModal Horizontal { height: auto; margin-top: 1; }
    ChoiceModal Button { margin-right: 2; }
    """

    def __init__(self, title: str, body: str, options: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.options = options

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(self.title_text), id="choice-title")
            if self.body:
                yield Static(Content(self.body), id="choice-body")
            with Horizontal():
                for value, key, label in self.options:  # plain text: "[e]" is the key to press, not markup
                    yield Button(Content(f"{label} [{key}]"), id=f"choice-{value}")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id and event.button.id.startswith("choice-"):
            self.dismiss(event.button.id.removeprefix("choice-"))

    def on_key(self, event: Key) -> None:
        for value, key, _ in self.options:
            if event.key == key:
                event.stop()
                self.dismiss(value)
                return

    def action_cancel(self) -> None:
        self.dismiss(None)
