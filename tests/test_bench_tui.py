"""scripts/bench/tui.py's logic: a keystroke is timed from the key sent to the repaint of the rows of
its filter, with keys sent as a terminal sends them (no pilot waits), and a missing repaint is no figure."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from bench_support import bench_module
from exocm.tui.app import ExocmApp
from textual import events
from tui_support import loaded, sandbox_session

tui_bench = bench_module("tui")
pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def test_the_slowest_keystroke_is_none_when_a_repaint_never_came() -> None:
    assert tui_bench._slowest([0.02, 0.05, 0.03]) == 0.05
    assert tui_bench._slowest([0.02, None]) is None
    assert tui_bench._slowest([]) is None


async def test_a_key_sent_without_the_pilot_is_timed_to_the_repaint_of_its_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tmp_path / "config"))
    with sandbox_session(tmp_path / "data") as session:
        app = ExocmApp(lambda: session, label="SANDBOX", is_sandbox=True)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await loaded(pilot, app)
            app.post_message(events.Key("slash", "/"))
            await pilot.pause()
            t0 = time.perf_counter()
            app.post_message(events.Key("s", "s"))
            seconds = await tui_bench._until_painted(screen, t0, lambda shown: shown[0] == "s")
            assert seconds is not None and seconds > 0
            assert screen.painted_filter[0] == "s" and screen.painted_at == pytest.approx(t0 + seconds, abs=1e-3)
            # a filter that is never painted: no figure (after the timeout), rather than a wrong one
            assert await tui_bench._until_painted(screen, time.perf_counter(), lambda shown: shown[0] == "x",
                                                  timeout_s=0.2) is None
