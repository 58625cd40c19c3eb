"""Helpers for tests that drive the `exocm` command line in-process (click's CliRunner).

`private_env(monkeypatch, tmp_path)` gives a test its own config and data dirs, a file token
cache and no EXOCM_PROFILE; `exocm(*args)` runs `exocm ARGS` and re-raises anything but
SystemExit (a crash is a test failure, not an exit code); `run(*args)` is the same as
(exit code, stdout, stderr); `add_sandbox_profile(info, name, directory)` is
`exocm profiles add NAME --from-sandbox sandbox.json`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from exocm.cli.main import cli


def private_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *unset: str) -> Path:
    """Config and data dirs under `tmp_path`, a 0600 file token cache, no EXOCM_PROFILE (nor `unset`)."""
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EXOCM_TOKEN_CACHE", "file")
    for name in ("EXOCM_PROFILE", *unset):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def exocm(*args: str, env: Mapping[str, str] | None = None, input: str | None = None) -> Result:
    """`exocm ARGS` in-process; an exception other than SystemExit is raised, not swallowed."""
    result = CliRunner().invoke(cli, list(args), env=env, input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def run(*args: str, env: Mapping[str, str] | None = None, input: str | None = None) -> tuple[int, str, str]:
    """`exocm ARGS` in-process as (exit code, stdout, stderr)."""
    result = exocm(*args, env=env, input=input)
    return result.exit_code, result.stdout, result.stderr


def add_sandbox_profile(info: Mapping[str, Any], name: str, directory: Path) -> Path:
    """Write the sandbox's info to `directory`/sandbox.json and add profile `name` from it; returns the file."""
    info_file = directory / "sandbox.json"
    info_file.write_text(json.dumps(dict(info)) + "\n", encoding="utf-8")
    added = exocm("profiles", "add", name, "--from-sandbox", str(info_file))
    assert added.exit_code == 0, added.output
    return info_file
