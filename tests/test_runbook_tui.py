"""The TUI run view: start a finding's runbook, see steps and objects, and the gate dialog that
never passes without the typed "<tenant>:<count>" (Esc stops at the gate; r resumes)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from exocm.core.app.session import Session
from exocm.core.runbooks import RunStore
from exocm.sandbox.server import Sandbox
from exocm.tui.app import ExocmApp
from exocm.tui.screens.runbook import RunbookScreen
from exocm.tui.widgets.confirm_modal import ConfirmModal
from exocm.tui.widgets.runbook_preview_modal import RunbookPreviewModal
from runbook_support import services_for
from textual.widgets import Button, Input, Static
from tui_support import wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox(size=300, seed=7, sync_interval=0.1)


def _app(sandbox: Sandbox, data_dir: Path,
         embedded: tuple[int, int] | None = None) -> tuple[ExocmApp, list[Any]]:
    opened: list[Any] = []

    def services(onprem_group_changes: bool) -> Any:
        s = services_for(sandbox.info, onprem_group_changes=onprem_group_changes)
        opened.append(s)
        return s

    def connect() -> Session:
        s = services(False)
        return Session(s.exo, label="SANDBOX", is_sandbox=True, profile_name="lab", data_dir=data_dir,
                       onprem_records=sandbox.tenant.onprem_records, snapshot_first=False,
                       runbook_services=services, embedded_sandbox=embedded)

    return ExocmApp(connect, label="SANDBOX", is_sandbox=True), opened


async def confirm_preview(pilot: Any, app: ExocmApp) -> Any:
    """Wait for the runbook preview modal, press Confirm; returns the preview it showed."""
    await wait_for(pilot, lambda: isinstance(app.screen, RunbookPreviewModal), what="the runbook preview")
    modal = app.screen
    assert isinstance(modal, RunbookPreviewModal)
    await pilot.pause()
    modal.query_one("#runbook-preview-ok", Button).press()
    await wait_for(pilot, lambda: app.screen is not modal, what="the preview to close")
    return modal.preview


async def test_run_view_gate_dialog_needs_the_exact_confirmation_then_the_run_completes(
        sandbox: Sandbox, tmp_path: Path) -> None:
    target = sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"][0]
    expected = f"{sandbox.tenant.tenant_id}:1"
    app, opened = _app(sandbox, tmp_path, embedded=(300, 7))
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: app.session is not None, what="the session")
            screen = RunbookScreen(runbook="clear-previous-mailbox-info", identities=[target],
                                   options={"poll_interval_s": 0.05, "verify_delay_s": 0})
            app.push_screen(screen)
            await confirm_preview(pilot, app)
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the gate dialog")
            assert "permanently destroys the cloud mailbox content of 1 user(s)" in app.screen.body  # type: ignore[attr-defined]
            await pilot.press(*f"{sandbox.tenant.tenant_id}:2", "enter")  # wrong count: stays open
            await pilot.pause(0.1)
            assert isinstance(app.screen, ConfirmModal)
            await pilot.press("escape")  # cancelled: the run stops at the gate, nothing cleared
            await wait_for(pilot, lambda: screen.outcome is not None, what="the run to stop")
            assert screen.outcome is not None and screen.outcome.status == "needs_confirmation"
            assert sandbox.tenant.exo[target].prev_rtd == "UserMailbox"
            await pilot.press("r")  # resume from the run view
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the gate dialog again")
            app.screen.query_one(Input).value = expected
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.outcome is not None and screen.outcome.status == "completed",
                           what="the run to complete")
            assert sandbox.tenant.exo[target].prev_rtd is None
            assert "completed: 1 fixed" in screen.status_text
            # like a CLI run, the run records which embedded sandbox it ran on ('runbook resume' reopens it)
            saved = RunStore(tmp_path / "runbooks").load(screen.run_id or "")
            assert saved.options["embedded_sandbox"] == {"size": 300, "seed": 7}
    finally:
        for services in opened:
            services.close()


async def test_findings_screen_starts_the_recommended_runbook_for_a_finding(sandbox: Sandbox, tmp_path: Path) -> None:
    app, opened = _app(sandbox, tmp_path)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: app.session is not None and app.mailboxes_screen().view is not None
                           and app.mailboxes_screen().view.findings is not None, what="findings")
            await pilot.press("f")
            from exocm.tui.screens.findings import FindingsScreen

            await wait_for(pilot, lambda: isinstance(app.screen, FindingsScreen), what="the findings screen")
            findings = app.screen
            assert isinstance(findings, FindingsScreen)
            findings.show_code("PREVIOUS_MAILBOX_INFO")
            await pilot.pause(0.1)
            await pilot.press("R")  # every finding of the code, one batch run
            count = len(sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"])
            preview = await confirm_preview(pilot, app)
            assert preview.count == count
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the gate dialog")
            assert app.screen.phrase == f"{sandbox.tenant.tenant_id}:{count}"  # type: ignore[attr-defined]
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunbookScreen) and app.screen.outcome is not None,
                           what="the run to stop at the gate")
    finally:
        for services in opened:
            services.close()


async def test_r_on_findings_previews_steps_objects_and_writes_and_cancel_writes_nothing(
        sandbox: Sandbox, tmp_path: Path) -> None:
    targets = sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"]
    upns = {sandbox.tenant.exo[t].upn for t in targets}
    app, opened = _app(sandbox, tmp_path)
    try:
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_for(pilot, lambda: app.session is not None and app.mailboxes_screen().view is not None
                           and app.mailboxes_screen().view.findings is not None, what="findings")
            await pilot.press("f")
            from exocm.tui.screens.findings import FindingsScreen

            await wait_for(pilot, lambda: isinstance(app.screen, FindingsScreen), what="the findings screen")
            findings = app.screen
            assert isinstance(findings, FindingsScreen)
            findings.show_code("PREVIOUS_MAILBOX_INFO")
            await pilot.pause(0.1)
            await pilot.press("r")  # one key: the preview, never a write
            await wait_for(pilot, lambda: isinstance(app.screen, RunbookPreviewModal), what="the runbook preview")
            modal = app.screen
            assert isinstance(modal, RunbookPreviewModal)
            preview = modal.preview
            assert preview.runbook == "clear-previous-mailbox-info" and preview.count == 1
            assert [s.id for s in preview.writing_steps] == ["clear-previous-info"]
            assert [s.id for s in preview.irreversible_steps] == ["clear-previous-info"]
            shown = "\n".join(str(w.render()) for w in modal.query(Static))
            assert "(WRITES, IRREVERSIBLE)" in shown and "Set-User -PermanentlyClearPreviousMailboxInfo" in shown
            assert "[gate]" in shown and "(reads only)" in shown
            shown_objects = str(modal.query_one("#runbook-preview-objects", Static).render())
            assert preview.objects[0] in upns and f"1 object(s): {preview.objects[0]}" in shown_objects
            assert preview.summary() in shown
            await pilot.press("escape")  # Cancel: nothing is created or written
            await wait_for(pilot, lambda: isinstance(app.screen, FindingsScreen), what="back on findings")
            assert RunStore(tmp_path / "runbooks").list() == []
            assert all(sandbox.tenant.exo[t].prev_rtd == "UserMailbox" for t in targets)
    finally:
        for services in opened:
            services.close()
