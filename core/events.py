"""One progress event stream from core to both faces."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Progress:
    """A snapshot of a long operation: `done` of `total` (None if unknown), with a rate and ETA.

    `stage` names the operation ("inventory", "apply", ...); `counters` carries extras
    such as ok/skipped/failed, concurrency, http_429.
    """

    stage: str
    done: int
    total: int | None = None
    rate: float | None = None
    eta_s: float | None = None
    message: str = ""
    counters: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]


def ignore_progress(_: Progress) -> None:
    """A ProgressCallback that drops every event."""
