"""One decision, two faces: `exocm plan`/`exocm apply` and the TUI decide through the same core calls.

- The same selection (a CSV) on the same inventory snapshot gives the same plan file, byte for
  byte (same digest), whether `exocm plan --csv` or the TUI's CSV import + preview + save made it.
- After a run that was stopped part-way, both faces ask for the same typed confirmation for that
  plan: the tenant and the rows still PENDING (not the plan's set rows: some are verified already).

Time is the one thing injected: the plan's created-at and detection's "now" come from a frozen
clock on both sides (the CLI's `utc_now`, the Session's clock), so the digests can be compared.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click.testing
import pytest
from cli_support import exocm
from exocm.cli.connection import open_connection
from exocm.core.app.session import Session
from exocm.core.events import Progress
from exocm.core.execute.apply import apply_plan
from exocm.core.execute.journal import plan_history
from exocm.core.plan.planfile import Plan, load_plan
from exocm.sandbox.server import Sandbox
from exocm.tui.app import ExocmApp
from exocm.tui.screens.preview import PreviewScreen
from exocm.tui.widgets.confirm_modal import ConfirmModal
from exocm.tui.widgets.path_prompt import PathPrompt
from plan_support import add_profile, connect
from textual.widgets import Input
from tui_support import loaded, wait_for

#: One instant for the whole run (recent, so the plan is young enough to apply).
FROZEN = datetime.now(UTC).replace(microsecond=0)
SIZE = (120, 40)
pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
def frozen_cli_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """`exocm plan` reads the wall clock through core.plan.workflow.utc_now: freeze it."""
    monkeypatch.setattr("exocm.cli.plan_cmd.utc_now", lambda: FROZEN)
    monkeypatch.setattr("exocm.core.plan.workflow.utc_now", lambda: FROZEN)


@pytest.fixture()
def profile(make_sandbox: Any) -> tuple[Sandbox, str]:
    """A private sandbox (a little latency, so a run can be stopped part-way) and a CLI profile for it."""
    sb = make_sandbox(size=200, seed=11, latency_ms=40)
    return sb, add_profile(sb, "one")


def pilot_csv(tmp_path: Path, profile_name: str) -> tuple[Path, Plan]:
    """A first `exocm plan` (which saves the inventory snapshot both faces then read) and a CSV
    naming 20 of its set rows, 3 of its skipped rows and one line that matches nothing."""
    first = tmp_path / "all.json"
    made = exocm("plan", "--profile", profile_name, "--set-cloud-managed", "true", "--all-dirsynced",
                 "-o", str(first))
    assert made.exit_code == 0, made.stderr
    plan = load_plan(first)
    to_set = [row.identity for row in plan.rows if row.action == "set"][:20]
    skipped = [row.identity for row in plan.rows if row.action == "skip"][:3]
    assert len(to_set) == 20 and skipped
    csv = tmp_path / "pilot.csv"
    csv.write_text("ExternalDirectoryObjectId\n" + "\n".join([*to_set, *skipped, "nobody@example.invalid"]) + "\n",
                   encoding="utf-8")
    return csv, plan


def cli_plan(profile_name: str, csv: Path, out: Path) -> Path:
    made = exocm("plan", "--profile", profile_name, "--set-cloud-managed", "true", "--csv", str(csv), "-o", str(out))
    assert made.exit_code == 0, made.stderr
    return out


@pytest.fixture()
def tui_session(profile: tuple[Sandbox, str]) -> Iterator[Session]:
    """A Session on the same profile, opened as `exocm tui --profile NAME` opens it, on the frozen clock."""
    _, name = profile
    with open_connection(name, quiet=True) as connection:
        yield Session(connection.bridge, label=connection.label, is_sandbox=connection.is_sandbox,
                      profile_name=connection.profile.name, snapshot_first=True, clock=lambda: FROZEN,
                      embedded_sandbox=connection.embedded)


async def test_cli_and_tui_write_the_same_plan_file_from_the_same_csv(
    tmp_path: Path, profile: tuple[Sandbox, str], frozen_cli_clock: None, tui_session: Session
) -> None:
    _, name = profile
    csv, _ = pilot_csv(tmp_path, name)
    from_cli = cli_plan(name, csv, tmp_path / "cli.json")

    from_tui = tmp_path / "tui.json"
    app = ExocmApp(lambda: tui_session, label="SANDBOX", is_sandbox=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        assert tui_session.inventory is not None and tui_session.inventory.from_snapshot
        await pilot.press("m")  # select from a CSV
        await wait_for(pilot, lambda: isinstance(app.screen, PathPrompt), what="CSV prompt")
        app.screen.query_one(Input).value = str(csv)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.selection.count == 23, what="the CSV's 23 rows selected")
        await pilot.press("p")
        await pilot.pause()
        await pilot.press("e")  # enable cloud management
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen), what="preview")
        preview = app.screen
        assert isinstance(preview, PreviewScreen)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, PathPrompt), what="save prompt")
        app.screen.query_one(Input).value = str(from_tui)
        await pilot.press("enter")
        await wait_for(pilot, lambda: preview.saved_path is not None, what="plan saved")

    cli_plan_file, tui_plan_file = load_plan(from_cli), load_plan(from_tui)
    assert cli_plan_file.source["kind"] == "csv" and len(cli_plan_file.set_rows()) == 20
    assert [issue["problem"] for issue in cli_plan_file.input_report] == ["unmatched"]
    assert tui_plan_file.digest == cli_plan_file.digest
    assert from_tui.read_bytes() == from_cli.read_bytes()


async def test_both_faces_ask_for_the_pending_rows_after_a_stopped_run(
    tmp_path: Path, profile: tuple[Sandbox, str], frozen_cli_clock: None, tui_session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb, name = profile
    csv, _ = pilot_csv(tmp_path, name)
    path = cli_plan(name, csv, tmp_path / "cli.json")
    plan = load_plan(path)
    set_rows = len(plan.set_rows())

    # a run stopped part-way (Ctrl-C / the TUI's stop: the cancel event), one row at a time
    cancel = threading.Event()

    def stop_after_first(event: Progress) -> None:
        if event.counters.get("ok", 0) >= 1:
            cancel.set()

    with connect(sb) as bridge:
        stopped = apply_plan(bridge, plan, progress=stop_after_first, cancel=cancel, concurrency=1, chunk_size=1,
                             plan_path=path, max_age=None)
    assert stopped.cancelled
    verified = len(plan_history(plan.digest).verified)
    assert 0 < verified < set_rows, "the run must stop with rows left to resume"
    pending = set_rows - verified

    # the TUI: the same plan in the preview, then 'a' asks for the typed confirmation
    app = ExocmApp(lambda: tui_session, label="SANDBOX", is_sandbox=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        app.push_screen(PreviewScreen(plan))
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen), what="preview")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirmation")
        tui_phrase = app.screen.phrase
        await pilot.press("escape")

    # the CLI: `exocm apply PLAN` on a terminal prompts "Type '<phrase>' to continue"
    monkeypatch.setattr(click.testing._NamedTextIOWrapper, "isatty", lambda self: True)
    applied = exocm("apply", str(path), "--profile", name, input=tui_phrase + "\n")
    asked = re.search(r"Type '([^']*)' to continue", applied.stderr)
    assert asked is not None, applied.stderr
    assert asked.group(1) == tui_phrase == f"{plan.tenant} {pending}"
    assert applied.exit_code == 0, applied.stderr  # the phrase was accepted: the rest was applied
    assert len(plan_history(plan.digest).verified) == set_rows
