"""Typed confirmation before a change: the user types the phrase naming the tenant and the count."""
from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ConfirmModal(ModalScreen[bool]):
    """Dismisses with True only when the typed text equals `phrase` exactly."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="confirm.cancel"),
    ]

    DEFAULT_CSS = """
    ConfirmModal { align: center middle; }
    ConfirmModal > Vertical { width: 80; height: auto; border: thick $error; background: $surface; padding: 1 2; }
    ConfirmModal #confirm-label { color: $error; text-style: bold; }
    ConfirmModal Horizontal { height: auto; margin-top: 1; }
    ConfirmModal Button { margin-right: 2; }
    """

    def __init__(self, title: str, body: str, phrase: str, *, label: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.phrase = phrase
        self.label = label

    def compose(self) -> ComposeResult:
        with Vertical():
            # plain text (Content), never markup: the label, the body and the phrase name the tenant
            if self.label:
                yield Static(Content(f"[{self.label}]"), id="confirm-label")
            yield Static(Content(self.title_text), id="confirm-title", classes="title")
            yield Static(Content(self.body), id="confirm-body")
            yield Static(Content.assemble("Type ", (self.phrase, "bold"), " to confirm:"), id="confirm-prompt")
            yield Input(placeholder=self.phrase, id="confirm-input")
            with Horizontal():
                yield Button("Confirm", variant="error", id="confirm-ok", disabled=True)
                yield Button("Cancel", id="confirm-cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Changed, "#confirm-input")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#confirm-ok", Button).disabled = event.value.strip() != self.phrase

    @on(Input.Submitted, "#confirm-input")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.phrase:
            self.dismiss(True)
        else:
            self.notify("The text does not match; nothing was changed.", severity="warning")

    @on(Button.Pressed, "#confirm-ok")
    def _ok(self) -> None:
        if self.query_one(Input).value.strip() == self.phrase:
            self.dismiss(True)

    @on(Button.Pressed, "#confirm-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)
