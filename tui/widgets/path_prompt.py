"""Ask for a file path (import a CSV, save a plan): dismisses with the Path, or None on Esc."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class PathPrompt(ModalScreen[Path | None]):
    """A one-field modal: title, a hint, and a path input (pre-filled with `default`)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]

    DEFAULT_CSS = """
    PathPrompt { align: center middle; }
    PathPrompt > Vertical { width: 90; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    PathPrompt #prompt-title { text-style: bold; }
    PathPrompt #prompt-keys { color: $text-muted; }
    """

    def __init__(self, title: str, hint: str = "", default: str = "", *, must_exist: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.hint = hint
        self.default = default
        self.must_exist = must_exist

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="prompt-title", markup=False)
            if self.hint:
                yield Static(self.hint, id="prompt-hint", markup=False)
            yield Input(value=self.default, placeholder="path", id="prompt-input")
            yield Static("Enter to go on · Esc cancels", id="prompt-keys", markup=False)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted, "#prompt-input")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self.notify(f"{path} is a folder: give a file name", severity="warning")
            return
        if self.must_exist and not path.is_file():
            self.notify(f"{path} is not a file", severity="warning")
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
