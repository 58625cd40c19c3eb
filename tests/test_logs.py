"""Errors you can diagnose: an internal error leaves its traceback in <data dir>/logs/exocm.log and the
one line the user sees names that file; expected failures stay one line without a traceback; the log
file is private and never holds a secret; --debug / EXOCM_LOG_LEVEL also print records on stderr."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from exocm.cli.main import cli
from exocm.core import logs
from exocm.tui.app import ExocmApp
from tui_support import wait_for

EXOCM = [sys.executable, "-c", "from exocm.cli.main import main; main()"]
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def _log(data: Path) -> Path:
    return data / "logs" / "exocm.log"


@pytest.fixture(autouse=True)
def _fresh_logging() -> Any:
    yield
    logs.stop_echo()


def test_redact_removes_tokens_secrets_passwords_and_authorization_headers() -> None:
    logs.register_secret("s3cr3t-value-registered")
    text = logs.redact(
        f"Authorization: Bearer {JWT} | headers={{'Authorization': 'Basic dXNlcjpwYXNz'}} | "
        "client_secret=abcdef123456&grant_type=client_credentials | {\"refresh_token\": \"0.AAAArefresh\"} | "
        f"password='hunter2hunter2' | token {JWT} | passphrase: pfx-pass-99 | s3cr3t-value-registered")
    for needle in (JWT, "dXNlcjpwYXNz", "abcdef123456", "0.AAAArefresh", "hunter2hunter2", "pfx-pass-99",
                   "s3cr3t-value-registered"):
        assert needle not in text, (needle, text)
    assert "grant_type=client_credentials" in text and "[redacted]" in text


def test_an_internal_error_logs_its_traceback_and_the_line_names_the_log_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("EXOCM_DATA_DIR", str(data))

    def bug(*_: Any, **__: Any) -> Any:  # a bug planted in the command, carrying secret-looking text
        raise RuntimeError(f"unexpected state with client_secret=plantedsecret99 and {JWT}")

    monkeypatch.setattr("exocm.cli.profiles_cmd.load_config", bug)
    result = CliRunner().invoke(cli, ["profiles", "list"])
    assert result.exit_code == 2
    err = result.stderr
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "internal error: RuntimeError" in err
    assert str(_log(data)) in " ".join(err.split()), err
    text = _log(data).read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "RuntimeError: unexpected state" in text
    assert "in bug" in text  # the frame that raised
    assert "plantedsecret99" not in text + err and JWT not in text + err
    assert stat.S_IMODE(_log(data).stat().st_mode) == 0o600
    assert stat.S_IMODE(_log(data).parent.stat().st_mode) == 0o700


def test_an_expected_failure_is_one_line_and_logged_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("EXOCM_DATA_DIR", str(data))
    result = CliRunner().invoke(cli, ["profiles", "show", "nosuch"])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "internal error" not in result.stderr
    text = _log(data).read_text(encoding="utf-8")
    assert "nosuch" in text and "Traceback" not in text


def test_debug_and_the_level_variable_print_records_on_stderr_as_well(tmp_path: Path) -> None:
    env = dict(os.environ, EXOCM_DATA_DIR=str(tmp_path / "data"), EXOCM_CONFIG_DIR=str(tmp_path / "config"))
    env.pop(logs.LEVEL_ENV, None)
    quiet = subprocess.run([*EXOCM, "profiles", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and "exocm.cli.main" not in quiet.stderr
    loud = subprocess.run([*EXOCM, "--debug", "profiles", "list"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert loud.returncode == 0 and "INFO exocm.cli.main" in loud.stderr, loud.stderr
    by_env = subprocess.run([*EXOCM, "profiles", "list"], env={**env, logs.LEVEL_ENV: "debug"},
                            capture_output=True, text=True, timeout=60)
    assert by_env.returncode == 0 and "exocm profiles started" in by_env.stderr, by_env.stderr
    assert _log(tmp_path / "data").read_text(encoding="utf-8").count("exocm profiles started") == 3


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_failed_tui_worker_logs_its_traceback_and_names_the_log_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("EXOCM_DATA_DIR", str(data))
    logs.configure(data, echo=False)

    def broken_connect() -> Any:
        raise KeyError("a bug in opening the session")

    app = ExocmApp(broken_connect, label="SANDBOX", is_sandbox=True)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await wait_for(pilot, lambda: any("internal error" in n.message for n in app._notifications),
                       what="the failure notification")
        shown = next(n.message for n in app._notifications if "internal error" in n.message)
    assert "KeyError" in shown and str(_log(data)) in shown
    text = _log(data).read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "in broken_connect" in text
