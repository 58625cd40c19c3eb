"""A real-terminal smoke test: tmux runs `exocm --sandbox --size 300`, we send keys, capture-pane shows the UI."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest


def _tmux() -> str | None:
    return shutil.which("tmux")  # .ci/run installs it; tests never install system packages


def _exocm() -> list[str]:
    script = Path(sys.executable).parent / "exocm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "exocm.cli.main"]


def test_exocm_in_a_real_terminal_shows_the_table_and_the_sandbox_label(tmp_path: Path) -> None:
    tmux = _tmux()
    if tmux is None:
        pytest.skip("tmux is not installed (.ci/run installs it; or apt-get install tmux)")
    session = f"exocm-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "EXOCM_DATA_DIR": str(tmp_path / "data"), "EXOCM_CONFIG_DIR": str(tmp_path / "config"),
           "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    command = " ".join([*_exocm(), "tui", "--sandbox", "--size", "300", "--seed", "7"])
    socket = str(tmp_path / "tmux.sock")
    base = [tmux, "-S", socket]
    subprocess.run([*base, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", command],
                   env=env, check=True, timeout=30)
    try:
        screen = _wait_for_sock(base, session, "total 2")
        assert "SANDBOX" in screen
        assert "UserPrincipalName" in screen and "@contoso" in screen
        # keys: on-prem-managed quick filter, select all shown; the counts follow
        subprocess.run([*base, "send-keys", "-t", session, "2"], check=True, timeout=10)
        subprocess.run([*base, "send-keys", "-t", session, "a"], check=True, timeout=10)
        screen = _wait_for_sock(base, session, "filter: on-prem-managed")
        # a cold start paints the fetch's first page, then the whole inventory (mail users too) joins
        # the table: rows selected on the first page stay selected, the new ones are not. 'a' again
        # until every shown row is selected (at most a few presses: the whole fetch takes seconds)
        for _ in range(20):
            shown = screen.split("shown ", 1)[1].split(" ", 1)[0]
            if f"selected {shown} " in screen:
                break
            subprocess.run([*base, "send-keys", "-t", session, "a"], check=True, timeout=10)
            time.sleep(1.0)
            screen = _wait_for_sock(base, session, "filter: on-prem-managed")
        assert f"selected {shown} " in screen, screen
        # the findings screen keeps the label
        subprocess.run([*base, "send-keys", "-t", session, "f"], check=True, timeout=10)
        _wait_for_sock(base, session, "Findings by code")
        screen = _wait_for_sock(base, session, "DUAL_MAILBOX")  # the codes may fill in a frame after the title
        assert "SANDBOX" in screen and "Findings by code" in screen
        subprocess.run([*base, "send-keys", "-t", session, "C-q"], check=True, timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            alive = subprocess.run([*base, "has-session", "-t", session], capture_output=True, timeout=10)
            if alive.returncode != 0:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("exocm did not quit on ctrl+q")
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=10)


def _wait_for_sock(base: list[str], session: str, needle: str, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        result = subprocess.run([*base, "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                                timeout=20)
        screen = result.stdout
        if needle in screen:
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} never appeared; the terminal shows:\n{screen}")
