"""Snapshot tests of the main screens at 120x40 on a fixed-seed sandbox with frozen clocks.

Baselines live in tests/__snapshots__/ (pytest-textual-snapshot); regenerate them after an intended
change of the UI with `pytest tests/test_tui_snapshots.py --snapshot-update` and review the SVGs.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from exocm.core.app.session import Session
from exocm.tui.app import ExocmApp
from exocm.tui.screens.findings import FindingsScreen
from exocm.tui.screens.preview import PreviewScreen
from textual.widgets import Input
from tui_support import frozen_age_clock, sandbox_session, wait_for

SIZE = (120, 40)


@pytest.fixture()
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tmp_path / "config"))
    with sandbox_session(tmp_path / "data") as opened:
        yield opened


STABLE_SANDBOX_DETAIL = "embedded, 300 users, seed 7, state: ~/exocm/embedded-300-7.sqlite"


def make_app(session: Session) -> ExocmApp:
    Input.cursor_blink = False  # a blinking cursor would make screenshots flaky
    # a stable sandbox label (not the test's temp path), so screenshots do not change from run to run
    return ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True, clock=frozen_age_clock(session),
                    sandbox_detail=STABLE_SANDBOX_DETAIL)


def loaded_then(steps: Callable[[Any, ExocmApp], Any] | None = None) -> Callable[[Any], Any]:
    """A run_before that waits for the inventory and findings, then runs `steps(pilot, app)`."""
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: app.session is not None, what="connection")
        screen = app.mailboxes_screen()
        await wait_for(pilot, lambda: screen.view is not None and screen.view.findings is not None,
                       what="inventory and findings")
        await pilot.pause()
        if steps is not None:
            await steps(pilot, app)
        await pilot.pause()
    return run_before


def test_mailboxes_screen_shows_the_table_counts_and_sandbox_label(snap_compare: Any, session: Session) -> None:
    assert snap_compare(make_app(session), terminal_size=SIZE, run_before=loaded_then())


def test_mailboxes_screen_filtered_sorted_and_selected(snap_compare: Any, session: Session) -> None:
    async def steps(pilot: Any, app: ExocmApp) -> None:
        await pilot.press("2", "t", "s", "s", "space", "space", "down", "space")
    assert snap_compare(make_app(session), terminal_size=SIZE, run_before=loaded_then(steps))


def test_findings_screen_groups_codes_with_severity(snap_compare: Any, session: Session) -> None:
    async def steps(pilot: Any, app: ExocmApp) -> None:
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FindingsScreen) and len(app.screen.summary) > 0,
                       what="findings")
    assert snap_compare(make_app(session), terminal_size=SIZE, run_before=loaded_then(steps))


def edit_cloud_values(session: Session, count: int = 2) -> list[str]:
    """Edit a writeback attribute in EXO on `count` cloud-managed mailboxes (as an admin would after a flip).

    A disable hands these values back to on-prem: the next sync overwrites them. Returns their UPNs.
    """
    records = session.bridge.invoke("Get-Mailbox", {"Filter": "IsExchangeCloudManaged -eq $true",
                                                    "ResultSize": count})
    for index, record in enumerate(records):
        session.bridge.invoke("Set-Mailbox", {"Identity": record["ExternalDirectoryObjectId"],
                                              f"CustomAttribute{index + 1}": f"edited in EXO {index + 1}"})
    return [str(record["UserPrincipalName"]) for record in records]


def test_preview_screen_of_a_disable_plan_lists_overwritten_values(snap_compare: Any, session: Session) -> None:
    edit_cloud_values(session)

    async def steps(pilot: Any, app: ExocmApp) -> None:
        await pilot.press("1", "a", "p", "d")  # cloud-managed ones, all shown, preview a disable
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen), what="preview")
    assert snap_compare(make_app(session), terminal_size=SIZE, run_before=loaded_then(steps))


def test_help_screen_lists_keys_and_binding_ids(snap_compare: Any, session: Session) -> None:
    async def steps(pilot: Any, app: ExocmApp) -> None:
        await pilot.press("question_mark")
    assert snap_compare(make_app(session), terminal_size=SIZE, run_before=loaded_then(steps))
