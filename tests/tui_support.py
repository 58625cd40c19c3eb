"""Helpers for the TUI tests: a sandbox Session opened the way `exocm tui` opens it, and pilot waits."""
from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exocm.cli.connection import open_connection
from exocm.core.app.session import Session
from exocm.sandbox.generator import generate_tenant
from textual.pilot import Pilot

#: The sandbox's (and detection's) fixed "now": snapshots and findings do not depend on the day.
FROZEN_NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
SEED = 7


def frozen_clock() -> datetime:
    """The frozen wall clock of the TUI tests."""
    return FROZEN_NOW


@contextmanager
def sandbox_session(data_dir: Path, size: int = 300, seed: int = SEED, **knobs: Any) -> Iterator[Session]:
    """An embedded sandbox (in process, loopback TLS, real REST bridge) wrapped in a core Session."""
    tenant = generate_tenant(size, seed, clock=frozen_clock)  # dates relative to the frozen clock
    with open_connection(None, True, size, seed, quiet=True, clock=frozen_clock, tenant=tenant,
                         **knobs) as connection:
        handle = connection.sandbox_handle
        session = Session(connection.bridge, label=connection.label, is_sandbox=connection.is_sandbox,
                          profile_name=connection.profile.name, data_dir=data_dir,
                          onprem_records=handle.tenant.onprem_records, snapshot_first=False,
                          clock=frozen_clock)
        yield session


async def loaded(pilot: Pilot[Any], app: Any) -> Any:
    """Wait for the inventory and the findings to be on the Mailboxes screen; returns that screen."""
    await wait_for(pilot, lambda: app.session is not None, what="connection")
    screen = app.mailboxes_screen()
    await wait_for(pilot, lambda: screen.view is not None and screen.view.findings is not None,
                   what="inventory and findings")
    await pilot.pause()
    return screen


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], Any], timeout: float = 60.0,
                   what: str = "condition") -> None:
    """Let the app run until `predicate()` is true (bounded: fails after `timeout` seconds)."""
    steps = int(timeout / 0.05)
    for _ in range(steps):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text (from the app's SVG screenshot)."""
    svg = app.export_screenshot()
    parts = re.findall(r"<text[^>]*>(.*?)</text>", svg)
    return html.unescape("".join(parts)).replace("\xa0", " ")


def frozen_age_clock(session: Session, minutes: int = 3) -> Callable[[], datetime]:
    """A clock that always reads `minutes` after the loaded inventory's fetch time (stable ages)."""
    def clock() -> datetime:
        inventory = session.inventory
        return (inventory.fetched_at if inventory is not None else FROZEN_NOW) + timedelta(minutes=minutes)
    return clock
