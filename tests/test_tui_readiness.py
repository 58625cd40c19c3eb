"""The TUI's Readiness screen: `y` (or the palette) opens it on the sandbox; it lists every check with
its result, the highlighted check's evidence below, and `s` switches to the last-server checks."""
from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import private_env
from exocm.cli.tui_cmd import build_app
from exocm.core.detect.prerequisites import codes_for
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.readiness_state import apply_variants, expected_readiness
from exocm.tui.commands import commands_for
from exocm.tui.screens.readiness import ReadinessScreen
from tui_support import screen_text, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return private_env(monkeypatch, tmp_path)


async def test_readiness_screen_lists_the_checks_with_results_and_evidence() -> None:
    tenant = generate_tenant(80, 13)
    apply_variants(tenant, ["no-routing-domain"])
    expected = expected_readiness(tenant)
    app, stack = build_app(None, True, 80, 13, tenant=tenant)
    with stack:
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_for(pilot, lambda: app.session is not None, what="connection")
            assert any(c.title == "Go: Readiness" for c in commands_for(app, app.screen))
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, ReadinessScreen), what="readiness screen")
            screen = app.screen
            assert isinstance(screen, ReadinessScreen)
            await wait_for(pilot, lambda: bool(screen.checks) or bool(screen.error), what="checks")
            assert not screen.error
            assert [c.code for c in screen.checks] == list(codes_for("flip"))
            assert {c.code: c.result for c in screen.checks} == {k: expected[k] for k in codes_for("flip")}
            # the rows are painted after the checks arrive: wait for the paint, then read the screen
            await wait_for(pilot, lambda: "ROUTING_DOMAIN" in screen_text(app), what="rows painted")
            text = screen_text(app)
            assert "ROUTING_DOMAIN" in text and "FAIL" in text
            routing = [c.code for c in screen.checks].index("ROUTING_DOMAIN")
            for _ in range(routing):
                await pilot.press("down")
            await wait_for(pilot, lambda: "is not an accepted domain" in screen_text(app), what="evidence")
            assert "HCW8001" in screen_text(app)
            await pilot.press("s")
            await wait_for(pilot, lambda: not screen.running and len(screen.checks) == len(codes_for("decommission")),
                           what="decommission checks")
            assert {c.code: c.result for c in screen.checks} == expected
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ReadinessScreen), what="back")
