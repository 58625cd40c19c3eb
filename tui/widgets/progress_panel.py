"""A progress view for long core operations (inventory fetch, apply): bar, counters, rate, ETA."""
from __future__ import annotations

from exocm.core.events import Progress
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def describe(progress: Progress) -> str:
    """One line of counters for a progress event: done/total, ok/skipped/failed, rate, ETA, concurrency, 429s."""
    parts = [f"{progress.done:,}" + (f" / {progress.total:,}" if progress.total is not None else "")]
    counters = progress.counters
    for key in ("ok", "skipped", "failed"):
        if key in counters:
            parts.append(f"{key} {counters[key]:,}")
    if progress.rate is not None:
        parts.append(f"{progress.rate:,.1f}/s")
    parts.append(f"ETA {_duration(progress.eta_s)}")
    if "concurrency" in counters:
        parts.append(f"concurrency {counters['concurrency']}")
    if "http_429" in counters:
        parts.append(f"429s {counters['http_429']:,}")
    if "pages" in counters:
        parts.append(f"pages {counters['pages']:,}")
    return " · ".join(parts)


class ProgressPanel(Vertical):
    """Title, bar and a counters line; `update_progress` takes core Progress events."""

    DEFAULT_CSS = """
    ProgressPanel { height: auto; padding: 0 1; border: round $accent; }
    ProgressPanel > #progress-title { text-style: bold; }
    ProgressPanel > ProgressBar { width: 100%; }
    ProgressPanel > ProgressBar > Bar { width: 1fr; }
    """

    def __init__(self, title: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._title = title
        self.last: Progress | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._title, id="progress-title", markup=False)  # errors from the service
        # hidden until the first progress event: an indeterminate bar animates at 15 fps, which costs
        # the worker loading a snapshot (or connecting) a good share of the GIL for no information
        bar = ProgressBar(total=None, show_eta=False, id="progress-bar")
        bar.display = False
        yield bar
        yield Static("", id="progress-counters", markup=False)

    def set_title(self, title: str) -> None:
        """Change the title line (e.g. 'Paused', 'Cancelling…')."""
        self._title = title
        self.query_one("#progress-title", Static).update(title)

    def update_progress(self, progress: Progress) -> None:
        """Show one progress event."""
        self.last = progress
        bar = self.query_one(ProgressBar)
        bar.display = True
        bar.update(total=progress.total, progress=progress.done)
        line = describe(progress)
        if progress.message:
            line += f"\n{progress.message}"
        self.query_one("#progress-counters", Static).update(line)
