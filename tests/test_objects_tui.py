"""TUI pilot test of the kind switcher: switch to Groups, filter, select, preview, apply (through
Graph against the in-process sandbox), with the detail pane showing a group's members, parents and
children, and the command palette knowing the kinds."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from exocm.cli.connection import open_connection
from exocm.cli.object_kinds import object_onprem
from exocm.core.app.session import Session
from exocm.sandbox.generator import generate_tenant
from exocm.tui.app import ExocmApp
from exocm.tui.commands import commands_for
from exocm.tui.screens.apply import ApplyScreen
from exocm.tui.screens.objects import ObjectsScreen
from exocm.tui.screens.preview import PreviewScreen
from exocm.tui.widgets.choice_modal import ChoiceModal
from exocm.tui.widgets.confirm_modal import ConfirmModal
from textual.widgets import Input
from tui_support import SEED, frozen_clock, screen_text, wait_for

SIZE = (140, 44)
pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def graph_session(data_dir: Path, size: int = 300) -> Iterator[Session]:
    """The embedded sandbox in a Session with its Graph bridge and its AD side, as `exocm tui` opens it."""
    tenant = generate_tenant(size, SEED, clock=frozen_clock)
    with open_connection(None, True, size, SEED, quiet=True, clock=frozen_clock, tenant=tenant) as connection:
        def onprem(kind: str, frame: Any) -> Any:
            return object_onprem(connection, kind, frame, None, data_dir)[0]

        data_dir.mkdir(parents=True, exist_ok=True)
        yield Session(connection.bridge, label=connection.label, is_sandbox=True, data_dir=data_dir,
                      onprem_records=connection.sandbox_handle.tenant.onprem_records, snapshot_first=False,
                      clock=frozen_clock, graph=connection.graph, object_onprem=onprem)


async def test_switch_to_groups_filter_select_preview_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    with graph_session(tmp_path / "data") as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True, clock=frozen_clock)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.session is not None, what="connection")
            titles = {c.title for c in commands_for(app, app.screen)}
            assert {"Kind: Groups", "Kind: Contacts", "Kind: Users", "Kind: Mailboxes"} <= titles

            await pilot.press("f3")  # the kind switcher: Groups
            await wait_for(pilot, lambda: isinstance(app.screen, ObjectsScreen), what="groups screen")
            screen = app.screen
            assert isinstance(screen, ObjectsScreen) and screen.kind == "group"
            await wait_for(pilot, lambda: screen.frame is not None and bool(screen.shown), what="groups loaded")
            text = screen_text(app)
            assert "Groups" in text and "SANDBOX" in text
            total = len(screen.shown)
            assert total == len(session.objects["group"].frame)

            # quick filter: AD-managed groups only, then a search
            await pilot.press("2")
            ad_managed = len(screen.shown)
            assert 0 < ad_managed < total
            frame = screen.frame
            assert all(frame.at[i, "IsCloudManaged"] is False for i in screen.shown)
            await pilot.press("slash")
            await pilot.press("d", "l", "-")
            await wait_for(pilot, lambda: screen.search == "dl-", what="search")
            assert screen.shown and all("dl-" in str(frame.at[i, "DisplayName"]).lower() for i in screen.shown)
            await pilot.press("enter")

            # detail pane: a group with children lists members, parents and children
            await pilot.press("x")
            parent = next(i for i in screen.shown if frame.at[i, "ChildGroups"])
            row = screen.shown.index(parent)
            table = screen.query_one("#objects-table")
            table.move_cursor(row=row)  # type: ignore[attr-defined]
            await wait_for(pilot, lambda: parent in screen.members, what="members read live")
            await pilot.pause()
            detail = screen_text(app)
            assert "Child groups:" in detail and "Parent groups:" in detail and "Members (" in detail

            # select the AD-managed distribution lists and preview a conversion
            await pilot.press("2")
            screen.search = ""
            screen.query_one("#objects-search", Input).value = ""
            await wait_for(pilot, lambda: screen.search == "", what="search cleared")
            wanted = [i for i in screen.shown if frame.at[i, "GroupType"] == "Distribution"]
            assert wanted
            screen.select_ids(wanted)
            await pilot.pause()
            assert len(screen.selected) == len(wanted)
            await pilot.press("p")
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceModal), what="choice")
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen), what="preview")
            preview = app.screen
            assert isinstance(preview, PreviewScreen)
            plan = preview.plan
            assert plan.object_kind == "group" and plan.value is True
            assert {r.identity for r in plan.rows} == set(wanted)
            to_set = [r.identity for r in plan.set_rows()]
            assert to_set
            assert "isCloudManaged" in screen_text(app)

            # apply with the typed confirmation
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirmation")
            confirm = app.screen
            assert isinstance(confirm, ConfirmModal)
            confirm.query_one(Input).value = confirm.phrase
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ApplyScreen), what="apply screen")
            apply_screen = app.screen
            assert isinstance(apply_screen, ApplyScreen)
            await wait_for(pilot, lambda: not apply_screen.running, what="apply to finish")
            assert apply_screen.error is None and apply_screen.outcome == "complete"
            assert apply_screen.result.counts.get("verified") == len(to_set)
