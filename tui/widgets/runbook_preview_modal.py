"""Before a runbook starts: its steps, its objects, which steps write and which are irreversible (core's
RunPreview, presented); Confirm starts the run, Cancel (or Esc) leaves the tenant untouched."""
from __future__ import annotations

from typing import ClassVar

from exocm.core.runbooks import RunPreview
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

#: Objects named in the modal (the count is always given).
SHOWN_OBJECTS = 12


class RunbookPreviewModal(ModalScreen[bool]):
    """Dismisses with True on Confirm, False on Cancel or Esc."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="runbook_preview.cancel"),
    ]

    DEFAULT_CSS = """
    RunbookPreviewModal { align: center middle; }
    RunbookPreviewModal > Vertical { width: 110; max-height: 90%; height: auto; border: thick $warning;
                                     background: $surface; padding: 1 2; }
    RunbookPreviewModal #runbook-preview-body { height: auto; max-height: 30; }
    RunbookPreviewModal .write { color: $warning; }
    RunbookPreviewModal .irreversible { color: $error; text-style: bold; }
    RunbookPreviewModal Horizontal { height: auto; margin-top: 1; }
    RunbookPreviewModal Button { margin-right: 2; }
    """

    def __init__(self, preview: RunPreview) -> None:
        super().__init__()
        self.preview = preview

    def compose(self) -> ComposeResult:
        p = self.preview
        with Vertical():
            # plain text (Content), never markup: titles and object names come from the tenant
            yield Static(Content(f"Start {p.title}?"), id="runbook-preview-title", classes="title")
            with VerticalScroll(id="runbook-preview-body"):
                names = ", ".join(p.objects[:SHOWN_OBJECTS])
                more = f" and {p.count - SHOWN_OBJECTS} more" if p.count > SHOWN_OBJECTS else ""
                yield Static(Content(f"Tenant {p.label or p.tenant} · {p.count} object(s): {names}{more}"),
                             id="runbook-preview-objects")
                for step in p.steps:
                    classes = "irreversible" if step.writes and step.irreversible else "write" if step.writes else ""
                    yield Static(Content(f"{step.number:>2}. [{step.kind}] {step.title} ({step.note})"),
                                 classes=f"runbook-preview-step {classes}".strip())
            yield Static(Content(p.summary()), id="runbook-preview-summary")
            with Horizontal():
                yield Button("Confirm", variant="warning", id="runbook-preview-ok")
                yield Button("Cancel", id="runbook-preview-cancel")

    def on_mount(self) -> None:
        self.query_one("#runbook-preview-cancel", Button).focus()  # Enter alone never starts a write

    @on(Button.Pressed, "#runbook-preview-ok")
    def _ok(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#runbook-preview-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)
