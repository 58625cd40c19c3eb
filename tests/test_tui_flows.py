"""Pilot tests of the TUI on the embedded sandbox: each flow an admin runs, end to end.

The app is driven with keys through App.run_test; it talks to an in-process sandbox over loopback
TLS through the real REST bridge (the same path as `exocm` with no profile).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from exocm.core.app.session import Session
from exocm.core.execute.journal import read_journal
from exocm.tui.app import ExocmApp
from exocm.tui.messages import InventoryLoaded, InventoryPreviewed
from exocm.tui.screens.apply import ApplyScreen
from exocm.tui.screens.findings import FindingsScreen
from exocm.tui.screens.help import HelpScreen
from exocm.tui.screens.journals import JournalsScreen
from exocm.tui.screens.mailboxes import MailboxesScreen
from exocm.tui.screens.preview import PreviewScreen
from exocm.tui.widgets.choice_modal import ChoiceModal
from exocm.tui.widgets.confirm_modal import ConfirmModal
from exocm.tui.widgets.detail_pane import DetailPane
from exocm.tui.widgets.frame_table import FrameTable
from exocm.tui.widgets.mailbox_table import MailboxTable
from textual.widgets import Input
from tui_support import frozen_age_clock, loaded, sandbox_session, screen_text, wait_for

SIZE = (120, 40)
pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
def env_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "data"


def mailboxes(app: ExocmApp) -> MailboxesScreen:
    return app.mailboxes_screen()


def assert_sandbox_label(app: ExocmApp, where: str) -> None:
    assert "SANDBOX" in screen_text(app), f"no SANDBOX label on {where}"


def sandbox_value(session: Any, identity: str) -> Any:
    records = session.bridge.invoke("Get-Mailbox", {"Identity": identity})
    return records[0].get("IsExchangeCloudManaged")


async def type_text(pilot: Any, text: str) -> None:
    await pilot.press(*[{" ": "space"}.get(ch, ch) for ch in text])


async def test_filter_select_preview_apply_journal_undo_preview(env_dirs: Path) -> None:
    with sandbox_session(env_dirs) as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True, clock=frozen_age_clock(session))
        async with app.run_test(size=SIZE) as pilot:
            screen = await loaded(pilot, app)
            assert_sandbox_label(app, "Mailboxes")
            total = screen.view.size
            assert f"total {total:,}" in screen_text(app)

            # filter: on-prem-managed user mailboxes, then a text search that narrows them
            await pilot.press("2")
            await pilot.press("t")  # first type: UserMailbox
            assert screen.quick.onprem_managed and screen.quick.types == frozenset({"UserMailbox"})
            onprem_users = len(screen.shown)
            assert 0 < onprem_users < total
            await pilot.press("slash")
            await type_text(pilot, "a")
            await wait_for(pilot, lambda: screen.text == "a", what="search text")
            shown = len(screen.shown)
            assert 0 < shown <= onprem_users
            await pilot.press("escape")
            assert isinstance(app.focused, MailboxTable)

            # select: three rows with space, then all shown, none, invert
            await pilot.press("space", "space", "space")
            assert screen.selection.count == 3
            await pilot.press("a")
            assert screen.selection.count == shown
            await pilot.press("n")
            assert screen.selection.count == 0
            await pilot.press("i")
            assert screen.selection.count == shown
            await pilot.press("n", "home", "space", "space", "space", "space", "space")
            selected = screen.selection.ids(screen.view)
            assert len(selected) == 5
            assert "selected 5" in screen_text(app)

            # preview: enable cloud management for the selection
            await pilot.press("p")
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceModal), what="choice")
            assert_sandbox_label(app, "the enable/disable choice")
            text = screen_text(app)  # the buttons teach their keys ("[e]" is text, not markup)
            assert "Enable cloud management [e]" in text and "Disable (back to on-prem) [d]" in text
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen), what="preview")
            preview = app.screen
            assert isinstance(preview, PreviewScreen)
            plan = preview.plan
            assert plan.value is True and {row.identity for row in plan.rows} == set(selected)
            to_set = [row.identity for row in plan.set_rows()]
            assert to_set, "the sandbox's on-prem-managed user mailboxes should have flippable rows"
            assert_sandbox_label(app, "Preview")
            assert f"{len(to_set):,} to change" in screen_text(app)

            # save the plan file from the preview
            await pilot.press("s")
            await wait_for(pilot, lambda: app.screen.__class__.__name__ == "PathPrompt", what="save prompt")
            await pilot.press("enter")
            await wait_for(pilot, lambda: preview.saved_path is not None, what="plan saved")
            assert preview.saved_path.is_file()

            # apply: a wrong phrase does nothing, the right one starts the run
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirmation")
            confirm = app.screen
            assert isinstance(confirm, ConfirmModal)
            assert confirm.phrase == f"{plan.tenant} {len(to_set)}"
            assert_sandbox_label(app, "the confirmation")
            assert "[SANDBOX]" in screen_text(app), "the confirmation itself names the tenant label"
            await type_text(pilot, "yes")
            await pilot.press("enter")
            assert isinstance(app.screen, ConfirmModal)
            app.screen.query_one(Input).value = ""
            await type_text(pilot, confirm.phrase)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ApplyScreen), what="apply screen")
            apply_screen = app.screen
            assert isinstance(apply_screen, ApplyScreen)
            assert_sandbox_label(app, "Apply")
            await wait_for(pilot, lambda: not apply_screen.running, what="apply to finish")
            result = apply_screen.result
            assert result is not None and apply_screen.error is None
            assert apply_screen.outcome == "complete"
            assert result.counts.get("verified") == len(to_set)
            await wait_for(pilot, lambda: str(result.journal_path) in screen_text(app).replace("\n", ""),
                           what="the journal path on screen")  # shown by the repaint after the run ends
            for identity in to_set:
                assert sandbox_value(session, identity) is True

            # journals: the run is listed with its outcome; undo builds a plan and opens it
            await pilot.press("j")
            await wait_for(pilot, lambda: isinstance(app.screen, JournalsScreen), what="journals")
            journals = app.screen
            assert isinstance(journals, JournalsScreen)
            await wait_for(pilot, lambda: len(journals.journals) == 1, what="journal list")
            assert journals.journals[0].outcome == "complete"
            assert journals.journals[0].counts.get("verified") == len(to_set)
            assert_sandbox_label(app, "Journals")
            await pilot.press("u")
            await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen), what="undo preview")
            undo = app.screen
            assert isinstance(undo, PreviewScreen)
            assert undo.plan.kind == "undo" and undo.plan.value is False
            assert sorted(row.identity for row in undo.plan.set_rows()) == sorted(to_set)
            assert "Undo plan" in screen_text(app)
            assert_sandbox_label(app, "the undo preview")


async def confirm_and_start_apply(pilot: Any, app: ExocmApp) -> ApplyScreen:
    """From the preview: a, type the confirmation phrase, enter; return once a few rows are verified."""
    await pilot.press("a")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirmation")
    await type_text(pilot, app.screen.phrase)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ApplyScreen), what="apply screen")
    apply_screen = app.screen
    assert isinstance(apply_screen, ApplyScreen)
    panel = apply_screen.query_one("#apply-progress")
    await wait_for(pilot, lambda: panel.last is not None and panel.last.counters.get("ok", 0) >= 3,
                   what="some rows verified")
    return apply_screen


async def test_cancel_mid_apply_leaves_a_consistent_journal(env_dirs: Path) -> None:
    with sandbox_session(env_dirs, size=400, latency_ms=40) as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await loaded(pilot, app)
            await pilot.press("2", "a")
            selected = screen.selection.ids(screen.view)
            assert len(selected) > 100
            screen.preview(True)
            await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen), what="preview")
            plan = app.screen.plan
            apply_screen = await confirm_and_start_apply(pilot, app)
            await pilot.press("escape")  # cancel: stop taking rows, settle the in-flight ones
            await wait_for(pilot, lambda: not apply_screen.running, what="the cancelled run to stop")
            result = apply_screen.result
            assert result is not None and result.cancelled and apply_screen.outcome == "cancelled"
            assert result.remaining > 0, "cancel came too late to leave rows undone"
            # the result line is painted on a later refresh than the message that sets it
            await wait_for(pilot, lambda: "r applies the rest" in screen_text(app), timeout=10,
                           what="the result line saying r applies the rest")

            # r applies the rest of the same plan: a second run that never writes a verified row again
            await pilot.press("r")
            await wait_for(pilot, lambda: not apply_screen.running and apply_screen.result is not result,
                           timeout=120, what="the rest to be applied")
            rest = apply_screen.result
            assert apply_screen.outcome == "complete" and rest.journal_path != result.journal_path
            first_verified = {r["identity"] for r in read_journal(result.journal_path).rows()
                              if r["status"] == "verified"}
            second_written = {r["identity"] for r in read_journal(rest.journal_path).rows()
                              if r["status"] == "verified"}
            assert first_verified and not first_verified & second_written
            assert first_verified | second_written == {row.identity for row in plan.set_rows()}

    contents = read_journal(result.journal_path)
    assert not contents.warnings, contents.warnings
    assert contents.header is not None and contents.header["plan_digest"] == plan.digest
    assert contents.records[-1]["type"] == "end" and contents.records[-1]["outcome"] == "cancelled"
    rows = contents.rows()
    planned = {row.identity for row in plan.rows}
    assert {r["identity"] for r in rows} <= planned
    verified = [r["identity"] for r in rows if r["status"] == "verified"]
    assert len(verified) == len(set(verified)) > 0
    assert all(r["run_id"] == contents.header["run_id"] for r in contents.records)


async def test_quitting_mid_apply_stops_it_cleanly_before_the_app_exits(env_dirs: Path) -> None:
    with sandbox_session(env_dirs, size=400, latency_ms=40) as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await loaded(pilot, app)
            await pilot.press("2", "a")
            screen.preview(True)
            await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen), what="preview")
            plan = app.screen.plan
            apply_screen = await confirm_and_start_apply(pilot, app)
            await pilot.press("ctrl+q")  # the app does not vanish with the apply still writing behind it
            assert apply_screen.cancel_event.is_set()
            await wait_for(pilot, lambda: app.return_code is not None, what="the app to exit after the stop")
            # the app exited only once the run had ended: its result reached the screen
            assert not apply_screen.running and apply_screen.result is not None
            assert apply_screen.outcome == "cancelled" and apply_screen.result.remaining > 0

    contents = read_journal(apply_screen.result.journal_path)
    assert not contents.warnings, contents.warnings
    assert contents.header is not None and contents.header["plan_digest"] == plan.digest
    assert contents.records[-1]["type"] == "end" and contents.records[-1]["outcome"] == "cancelled"


async def test_escape_cancels_a_running_fetch_and_keeps_the_table(env_dirs: Path) -> None:
    # 1.5 s a request: the refetch is still running when Esc arrives, however slow the machine
    # is at handling the key press (at 150 ms a loaded machine sometimes finished it first)
    with sandbox_session(env_dirs, size=300, latency_ms=1500) as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await loaded(pilot, app)
            before = screen.view
            await pilot.press("r")
            assert screen.fetching
            await pilot.press("escape")
            await wait_for(pilot, lambda: not screen.fetching, what="the fetch to stop")
            assert screen.view is before and len(screen.shown) == before.size
            assert "cancelled" in screen_text(app).lower()


async def test_findings_screen_groups_by_code_and_jumps_to_the_mailbox(env_dirs: Path) -> None:
    with sandbox_session(env_dirs) as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await loaded(pilot, app)
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, FindingsScreen), what="findings")
            findings = app.screen
            assert isinstance(findings, FindingsScreen)
            await wait_for(pilot, lambda: len(findings.summary) > 0, what="findings summary")
            assert_sandbox_label(app, "Findings")
            text = screen_text(app)
            for row in findings.summary.itertuples():
                assert row.code in text
            assert findings.summary["count"].sum() == len(screen.view.findings)
            first_code = str(findings.summary.iloc[0]["code"])
            assert findings.code == first_code
            assert "Recommended:" in text
            identity = str(findings.rows.iloc[0]["ExternalDirectoryObjectId"])
            await pilot.press("g")
            await wait_for(pilot, lambda: isinstance(app.screen, MailboxesScreen), what="back to mailboxes")
            table = screen.query_one(MailboxTable)
            assert table.cursor_position == screen.view.position_of(identity)


async def test_a_saved_snapshot_is_painted_first_and_the_whole_inventory_joins_the_same_table(
        env_dirs: Path) -> None:
    with sandbox_session(env_dirs) as session:
        session.load_inventory()  # fetch once: saves the tenant's snapshot
        reopened = Session(session.bridge, label=session.label, is_sandbox=True, data_dir=env_dirs,
                           onprem_records=session.onprem_records, snapshot_first=True, clock=session.clock)
        seen: list[Any] = []
        app = ExocmApp(lambda: reopened, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
            screen = await loaded(pilot, app)
            kinds = [type(m) for m in seen]
            assert InventoryPreviewed in kinds and InventoryLoaded in kinds
            assert kinds.index(InventoryPreviewed) < kinds.index(InventoryLoaded)
            preview = next(m for m in seen if isinstance(m, InventoryPreviewed)).preview
            assert preview.view.frame is None or preview.view.frame is screen.inventory.frame
            # the table painted from the preview is the table that stays: same view, now with every property
            assert screen.view is preview.view and screen.view.frame is screen.inventory.frame
            assert screen.inventory.from_snapshot and "snapshot" in screen_text(app)
            await wait_for(pilot, lambda: "LegacyExchangeDN" in screen.query_one(DetailPane).text,
                           what="the detail pane with every property")
            await pilot.press("2", "a")
            assert screen.selection.count == len(screen.shown) > 0
            assert_sandbox_label(app, "Mailboxes (from a snapshot)")


async def test_help_and_palette_list_every_screen_action_with_its_id(env_dirs: Path) -> None:
    with sandbox_session(env_dirs) as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True,
                       keymap={"mailboxes.preview": "ctrl+o"})
        async with app.run_test(size=SIZE) as pilot:
            screen = await loaded(pilot, app)
            from exocm.tui.commands import commands_for

            titles = {c.title for c in commands_for(app, screen)}
            for expected in ("Preview", "Select shown", "Refresh", "Sort by UserPrincipalName",
                             "Filter: only UserMailbox", "Go: Findings", "Go: Journals",
                             "Preview: disable cloud management for the selection"):
                assert expected in titles
            # the keymap remaps by binding id: ctrl+o now previews
            await pilot.press("a", "ctrl+o")
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceModal), what="remapped preview key")
            await pilot.press("escape")
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
            text = screen_text(app)
            assert "mailboxes.preview" in text and "SANDBOX" in text


async def test_findings_keys_move_between_panes_and_jump_from_any_row(env_dirs: Path) -> None:
    with sandbox_session(env_dirs) as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await loaded(pilot, app)
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, FindingsScreen), what="findings")
            findings = app.screen
            assert isinstance(findings, FindingsScreen)
            await wait_for(pilot, lambda: len(findings.summary) > 1, what="findings summary")
            counts = [int(c) for c in findings.summary["count"]]
            index = next(i for i, count in enumerate(counts) if count >= 3)
            codes = findings.query_one("#findings-codes")
            rows = findings.query_one("#findings-rows", FrameTable)
            assert app.focused is codes
            await pilot.press(*["down"] * index)
            code = str(findings.summary.iloc[index]["code"])
            await wait_for(pilot, lambda: findings.code == code and rows.table is not None, what=code)
            await pilot.press("tab")  # codes -> rows
            assert app.focused is rows.table
            await pilot.press("down", "down")
            await wait_for(pilot, lambda: rows.cursor_row == 2, what="the third row")
            identity = findings.current_identity()
            assert identity == str(findings.rows.iloc[2]["ExternalDirectoryObjectId"])
            await pilot.press("shift+tab")  # rows -> codes: the rows table does not keep the keyboard
            assert app.focused is codes
            await pilot.press("enter")  # Enter on a code drills into its rows
            await wait_for(pilot, lambda: app.focused is rows.table, what="the rows focused by Enter")
            await pilot.press("up")
            await wait_for(pilot, lambda: rows.cursor_row == 1, what="the second row")
            identity = findings.current_identity()
            assert identity == str(findings.rows.iloc[1]["ExternalDirectoryObjectId"])
            await pilot.press("g")
            await wait_for(pilot, lambda: isinstance(app.screen, MailboxesScreen), what="back to mailboxes")
            assert screen.query_one(MailboxTable).cursor_position == screen.view.position_of(identity)


async def test_any_search_text_is_shown_as_typed_and_never_read_as_markup(env_dirs: Path) -> None:
    with sandbox_session(env_dirs) as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await loaded(pilot, app)
            search = screen.query_one("#search", Input)
            for text in ("[/", "[/]", "[b]x[/b]", "[link=http://e]L[/link]", "[@click=app.quit]q"):
                await pilot.press("slash")
                search.value = ""
                await type_text(pilot, text)
                await wait_for(pilot, lambda text=text: screen.text == text, what=f"search {text!r}")
                await pilot.pause()
                assert app.is_running
                assert f"“{text}”" in screen_text(app), f"the counts line does not show {text!r} as typed"
            await pilot.press("escape", "x")
            assert len(screen.shown) == screen.view.size


async def test_a_disable_preview_lists_the_cloud_values_the_next_sync_overwrites(env_dirs: Path) -> None:
    with sandbox_session(env_dirs) as session:
        # after a flip, an admin edited a writeback attribute in EXO: a disable hands it back to on-prem
        edited = session.bridge.invoke("Get-Mailbox", {"Filter": "IsExchangeCloudManaged -eq $true",
                                                       "ResultSize": 1})[0]
        session.bridge.invoke("Set-Mailbox", {"Identity": edited["ExternalDirectoryObjectId"],
                                              "CustomAttribute3": "edited in EXO"})
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await loaded(pilot, app)
            assert screen.jump_to(str(edited["ExternalDirectoryObjectId"]))
            await pilot.press("space", "p")
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceModal), what="choice")
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen), what="preview")
            preview = app.screen
            assert isinstance(preview, PreviewScreen) and preview.plan.value is False
            frame = preview.query_one("#preview-overwritten", FrameTable).frame
            assert frame is not None
            row = frame.loc[frame["attribute"] == "CustomAttribute3"]
            assert list(row["cloud"]) == ["edited in EXO"]
            assert list(row["UserPrincipalName"]) == [edited["UserPrincipalName"]]
            text = screen_text(app)
            assert "Cloud values the next sync overwrites" in text and "edited in EXO" in text

            # e exports them (the CSV 'exocm undo --export-overwritten' writes), for Excel
            await pilot.press("e")
            await wait_for(pilot, lambda: app.screen.__class__.__name__ == "PathPrompt", what="export prompt")
            path = Path(app.screen.query_one(Input).value)
            await pilot.press("enter")
            await wait_for(pilot, path.is_file, what="the exported CSV")
            from exocm.core.csvio import read_csv

            exported = read_csv(path).frame
            row = exported.loc[exported["Attribute"] == "CustomAttribute3"]
            assert list(row["CloudValue"]) == ["edited in EXO"]
            assert list(row["Identity"]) == [edited["ExternalDirectoryObjectId"]]


async def test_a_cold_start_paints_the_fetchs_first_page_then_the_whole_inventory(env_dirs: Path) -> None:
    with sandbox_session(env_dirs, size=1500, latency_ms=60) as session:  # no snapshot: the app fetches
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.session is not None, what="connection")
            screen = mailboxes(app)
            await wait_for(pilot, lambda: screen.view is not None, what="the first rows")
            # the first page is on screen before the whole inventory has arrived, and says so
            assert screen.inventory is None and screen.view is not None and screen.view.size == 1000
            assert "fetching the rest" in screen.note
            await pilot.press("slash", "s")  # the search box works on the rows shown meanwhile
            await wait_for(pilot, lambda: screen.text == "s", what="the keystroke")
            await wait_for(pilot, lambda: screen.inventory is not None, what="the whole inventory")
            assert screen.view.size == len(screen.inventory.frame) > 1000 and screen.note == ""


async def test_painted_at_comes_after_the_refresh_that_drew_the_filtered_rows(
        env_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[float, int]] = []  # (when, how many rows the table had) at each render
    render_lines = MailboxTable.render_lines

    def recorded(table: MailboxTable, crop: Any) -> Any:
        strips = render_lines(table, crop)
        drawn.append((time.perf_counter(), table.row_count))
        return strips

    monkeypatch.setattr(MailboxTable, "render_lines", recorded)
    with sandbox_session(env_dirs) as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await loaded(pilot, app)
            await pilot.press("slash")
            for typed in ("s", "so", "son"):
                await pilot.press(typed[-1])
                await wait_for(pilot, lambda t=typed: screen.painted_filter is not None
                               and screen.painted_filter[0] == t, what=f"the rows for {typed!r} painted")
                shown = len(screen.shown)
                stamp = screen.painted_at
                assert stamp is not None
                # the stamp follows a render of the filtered rows (not only their computation)
                assert any(when < stamp and rows == shown for when, rows in drawn)
            assert 0 < shown < screen.view.size
            await pilot.press("escape", "2")  # a quick filter: the stamp says which filter the rows are for
            await wait_for(pilot, lambda: screen.painted_filter is not None and screen.painted_filter[1].onprem_managed,
                           what="the quick filter painted")
            assert screen.painted_filter == (screen.text, screen.quick, screen.sort_column, screen.sort_descending)
