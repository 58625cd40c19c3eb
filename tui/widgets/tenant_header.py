"""The header of every screen: app name, the screen's name, and the tenant label (SANDBOX, always, on the sandbox)."""
from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class TenantHeader(Widget):
    """One line: `exocm · <screen> · [SANDBOX | tenant] [sandbox detail]`.

    The label comes from `app.tenant_label`; on the embedded sandbox, `app.sandbox_detail` says
    which one (size, seed, state path).
    """

    DEFAULT_CSS = """
    TenantHeader { dock: top; height: 1; background: $panel; color: $text; }
    TenantHeader.-sandbox { background: $warning 40%; }
    """

    def __init__(self, screen_title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.screen_title = screen_title

    def on_mount(self) -> None:
        self.watch(self.app, "tenant_label", self._label_changed)

    def _label_changed(self, label: str) -> None:
        self.set_class(getattr(self.app, "is_sandbox", False), "-sandbox")
        self.refresh()

    def render(self) -> Text:
        label: str = getattr(self.app, "tenant_label", "") or "connecting…"
        sandbox: bool = getattr(self.app, "is_sandbox", False)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" exocm ", style="bold")
        text.append("· ")
        text.append(self.screen_title, style="bold")
        text.append("  ")
        text.append(f" {label} ", style="bold reverse red" if sandbox else "bold reverse green")
        detail: str = getattr(self.app, "sandbox_detail", "") if sandbox else ""
        if detail:  # which embedded sandbox: size, seed, where its state lives
            text.append(f" {detail}", style="dim")
        return text
