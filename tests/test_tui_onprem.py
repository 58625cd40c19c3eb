"""The TUI's on-prem options: `exocm tui --onprem-live` / `--onprem-host` read the on-prem side over
WinRM through the same options and loader as `exocm findings`, so the Findings screen shows the
on-prem-joined findings (dual mailboxes) for a profile whose tenant has no on-prem data otherwise."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import add_sandbox_profile, private_env, run
from exocm.cli.tui_cmd import build_app
from exocm.sandbox.server import Sandbox
from exocm.tui.screens.findings import FindingsScreen
from tui_support import screen_text, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_env(monkeypatch, tmp_path, "EXOCM_ONPREM_PASSWORD")


def _live_options(how: str, info: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    if how == "profile":  # --onprem-live: the endpoint the profile remembers (profiles add --from-sandbox)
        return {"onprem_live": True}
    monkeypatch.setenv("EXOCM_ONPREM_PASSWORD", info["winrm_password"])
    return {"onprem_host": info["winrm_onprem_url"], "onprem_user": info["winrm_username"],
            "onprem_ca": info["ca_file"]}


@pytest.mark.parametrize("how", ["profile", "host"])
async def test_tui_with_live_onprem_shows_the_dual_mailboxes_on_the_findings_screen(
        how: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = make_sandbox(size=120, seed=4)
    add_sandbox_profile(sb.info, "lab", tmp_path)
    planted = set(sb.tenant.planted()["DUAL_MAILBOX"])
    assert planted
    app, stack = build_app("lab", False, 10, 1, onprem_live=_live_options(how, sb.info, monkeypatch))
    with stack:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.session is not None, what="connection")
            screen = app.mailboxes_screen()
            await wait_for(pilot, lambda: screen.view is not None and screen.view.findings is not None,
                           what="inventory and findings")
            session = app.session
            assert session is not None
            assert session.onprem_source == f"WinRM {sb.info['winrm_onprem_url']}"  # read live, not a CSV
            assert session.onprem is not None and len(session.onprem) == len(sb.tenant.onprem_records())
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, FindingsScreen), what="findings screen")
            findings = app.screen
            assert isinstance(findings, FindingsScreen)
            await wait_for(pilot, lambda: len(findings.summary) > 0, what="findings summary")
            assert "DUAL_MAILBOX" in set(findings.summary["code"])
            assert "DUAL_MAILBOX" in screen_text(app)
            frame = screen.view.findings
            assert set(frame.loc[frame["code"] == "DUAL_MAILBOX", "ExternalDirectoryObjectId"]) == planted


def test_tui_refuses_onprem_csv_with_onprem_live_as_findings_does(tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("UserPrincipalName,RecipientTypeDetails\n", encoding="utf-8")
    code, _, err = run("tui", "--sandbox", "--onprem-live", "--onprem-csv", str(csv))
    assert code == 2 and "exclude each other" in err


async def test_tui_onprem_live_on_a_profile_without_an_endpoint_says_what_to_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from exocm.core.access.config import Profile, save_profile

    monkeypatch.setenv("EXOCM_SECRET_BARE", "not-used")  # nothing is sent: the endpoint check comes first
    save_profile(Profile(name="bare", tenant="t.onmicrosoft.com", client_id="c", secret_env="EXOCM_SECRET_BARE"),
                 make_default=True)
    app, stack = build_app("bare", False, 10, 1, onprem_live={"onprem_live": True})
    with stack:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: "names no on-prem endpoint" in screen_text(app), what="the reason")
            assert app.session is None  # nothing half-connected


async def test_a_wrong_onprem_password_in_the_tui_is_a_one_line_detection_error(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = make_sandbox(size=40, seed=2)
    add_sandbox_profile(sb.info, "lab", tmp_path)
    options = _live_options("host", sb.info, monkeypatch)
    monkeypatch.setenv("EXOCM_ONPREM_PASSWORD", "wrong")
    app, stack = build_app("lab", False, 10, 1, onprem_live=options)
    with stack:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.mailboxes_screen()
            await wait_for(pilot, lambda: screen.detection_error != "", what="the detection error")
            assert "rejected the credentials" in screen.detection_error
            assert screen.view is not None and screen.view.findings is None  # no findings that miss on-prem
            await pilot.pause()
            assert "findings failed (r retries)" in screen_text(app)
            await pilot.press("f")
            await wait_for(pilot, lambda: "Detection failed: WinRM endpoint" in screen_text(app),
                           what="the reason on the findings screen")
