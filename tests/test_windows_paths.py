"""exocm's file-writing paths as on Windows: os's Unix-only functions absent, the Windows seams set.

Every test here runs on Linux with what Windows lacks taken away (`os.fchmod`, `os.getuid`,
`os.fchown`, `os.geteuid`, `signal.SIGKILL`...; `core.files.ON_WINDOWS` set; getpass with no user)
and checks that the atomic writer, the journal, snapshots, config, plan files and the token-cache
fallback still write, resume and read back (docs/platforms.md). Nothing is mocked but the OS
differences themselves and, for the replace retry, time.
"""
from __future__ import annotations

import getpass
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock._unix
import msal
import pytest
from cli_support import exocm, private_env
from exocm.cli.stop_signals import on_stop_signals, stop_signals
from exocm.core import files, logs
from exocm.core.access.config import Profile, config_path, load_config, save_profile
from exocm.core.access.token_cache import build_token_cache
from exocm.core.execute.journal import JournalWriter, local_actor, read_journal
from exocm.core.files import write_atomic
from exocm.core.inventory.fetch import Inventory, records_to_frame
from exocm.core.inventory.snapshot import load_snapshot, save_snapshot
from exocm.core.paths import recorded_path, shell_arg
from exocm.core.plan.planfile import load_plan

#: What `os` and `signal` lack on Windows (CPython 3.11-3.13) that a POSIX tool might reach for.
WINDOWS_LACKS_OS = ("fchmod", "fchown", "chown", "lchown", "getuid", "geteuid", "getgid", "getegid",
                    "getpgid", "setsid", "killpg", "sync")
WINDOWS_LACKS_SIGNAL = ("SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM_", "SIGPIPE")


class _OsForFilelock:
    """`os` with fchmod, for filelock's Unix lock class only (see the `windows` fixture)."""

    def __init__(self, fchmod: Any) -> None:
        self.fchmod = fchmod

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """This test runs as on Windows: Unix-only calls gone, core.files' Windows seam set."""
    private_env(monkeypatch, tmp_path)
    monkeypatch.setattr(files, "ON_WINDOWS", True)
    # filelock chooses its lock class by platform: its Unix class (the one this box runs) needs
    # fchmod, its Windows class (msvcrt.locking) does not; let only filelock's Unix class keep it
    monkeypatch.setattr(filelock._unix, "os", _OsForFilelock(os.fchmod))
    for name in WINDOWS_LACKS_OS:
        monkeypatch.delattr(os, name, raising=False)
    for name in WINDOWS_LACKS_SIGNAL:
        monkeypatch.delattr(signal, name, raising=False)

    def no_user() -> str:  # Windows with no USERNAME: getpass finds no pwd module to ask
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_user)
    yield tmp_path


def test_the_windows_fixture_really_takes_the_unix_calls_away(windows: Path) -> None:
    assert not hasattr(os, "fchmod") and not hasattr(os, "getuid") and not hasattr(signal, "SIGKILL")


def test_atomic_writer_writes_and_replaces_without_fchmod(windows: Path) -> None:
    target = windows / "out" / "report.json"
    write_atomic(target, b"one")
    write_atomic(target, "deux \u00e9\n".encode())
    assert target.read_bytes() == "deux \u00e9\n".encode()
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]  # no temp file left


def test_a_replace_refused_while_a_reader_holds_the_file_is_retried(
        windows: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = windows / "snap.parquet"
    write_atomic(target, b"old")
    waits: list[float] = []
    monkeypatch.setattr(files, "sleep", waits.append)  # time only
    real_replace = os.replace
    refusals = iter(range(2))

    def replace_like_windows(src: Any, dst: Any) -> None:
        # what Windows says while another process (a reader of the snapshot) holds `dst` open
        if next(refusals, None) is not None:
            raise PermissionError(13, "The process cannot access the file because it is being used "
                                      "by another process")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_like_windows)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert waits == list(files.REPLACE_BACKOFF[:2])


def test_a_reader_that_never_lets_go_fails_after_the_backoff_and_leaves_the_old_file(
        windows: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = windows / "plan.json"
    write_atomic(target, b"old")
    waits: list[float] = []
    monkeypatch.setattr(files, "sleep", waits.append)

    def always_held(src: Any, dst: Any) -> None:
        raise PermissionError(13, "The process cannot access the file")

    monkeypatch.setattr(os, "replace", always_held)
    with pytest.raises(PermissionError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert waits == list(files.REPLACE_BACKOFF)
    assert [p.name for p in windows.iterdir() if p.name.startswith(".plan")] == []  # temp removed


def test_on_posix_a_permission_error_on_replace_is_raised_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "ON_WINDOWS", False)
    waits: list[float] = []
    monkeypatch.setattr(files, "sleep", waits.append)

    def refused(src: Any, dst: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(PermissionError):
        write_atomic(tmp_path / "x", b"data")
    assert waits == []


def test_the_journal_writes_resumes_after_a_torn_line_and_reads_back(windows: Path) -> None:
    actor = local_actor()
    assert actor.startswith("unknown@")  # no getuid to fall back on
    plan_file = r"C:\Users\Jane Doe\AppData\Local\exocm\exocm\plans\p.json"
    writer = JournalWriter.create(plan_digest="d" * 64, tenant="contoso.onmicrosoft.com", actor=actor,
                                  tool_version="test", directory=windows / "journals",
                                  extra={"plan_file": plan_file})
    writer.append([{"type": "intent", "identity": "a"}, {"type": "row", "identity": "a", "status": "verified"}])
    writer.close()
    with writer.path.open("ab") as handle:  # a crash mid-write
        handle.write(b'{"type": "row", "ident')
    resumed = JournalWriter.reopen(writer.path)
    resumed.append([{"type": "row", "identity": "b", "status": "verified"}])
    resumed.close()
    contents = read_journal(writer.path)
    assert contents.header is not None and contents.header["actor"] == actor
    assert contents.header["plan_file"] == plan_file  # backslashes and the space survive JSON
    assert [(r["identity"], r["seq"]) for r in contents.records if r["type"] == "row"] == [("a", 2), ("b", 3)]
    assert b"\r\n" not in writer.path.read_bytes()
    # the recorded plan path means something on Windows, nothing on the Linux box it was copied to
    assert recorded_path(plan_file, windows=True) == Path(plan_file)
    assert recorded_path(plan_file, windows=False) is None
    assert recorded_path(r"\\fileserver\exocm\p.json", windows=False) is None
    assert recorded_path("/home/jane/p.json", windows=True) is None
    assert recorded_path("/home/jane/p.json", windows=False) == Path("/home/jane/p.json")
    assert recorded_path(None) is None and recorded_path("") is None


def test_snapshot_and_config_write_and_read_back(windows: Path) -> None:
    mailboxes = [{"ExternalDirectoryObjectId": f"{i:x}0000000-0000-4000-8000-000000000000", "Guid": f"g{i}",
                  "DisplayName": f"Jos\u00e9 {i}", "RecipientTypeDetails": "UserMailbox",
                  "RecipientType": "UserMailbox", "IsDirSynced": True, "IsExchangeCloudManaged": False,
                  "EmailAddresses": [f"SMTP:u{i}@contoso.com"]} for i in range(3)]
    inventory = Inventory(frame=records_to_frame(mailboxes, []), tenant="contoso.onmicrosoft.com",
                          fetched_at=datetime(2026, 1, 1, tzinfo=UTC), source="rest")
    path = save_snapshot(inventory)
    save_snapshot(inventory)  # over the first one: the replace path
    loaded = load_snapshot("contoso.onmicrosoft.com")
    assert loaded is not None and path.is_file()
    assert list(loaded.frame["DisplayName"]) == ["Jos\u00e9 0", "Jos\u00e9 1", "Jos\u00e9 2"]

    profile = Profile(name="contoso", tenant="contoso.onmicrosoft.com", client_id="app-id",
                      secret_env="EXOCM_SECRET_CONTOSO", pfx_file=r"C:\certs\exocm app.pfx")
    save_profile(profile)
    assert load_config().profiles["contoso"] == profile
    assert config_path().read_bytes().decode("utf-8")  # UTF-8 whatever the console's code page


def _add_token(cache: msal.TokenCache) -> None:
    cache.add({"client_id": "app-id", "scope": ["https://outlook.office365.com/.default"],
               "token_endpoint": "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
               "response": {"access_token": "at-not-logged", "token_type": "Bearer", "expires_in": 3600}})


def test_token_cache_falls_back_to_the_file_and_reads_back(windows: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = windows / "data" / "token_cache.json"
    # msal-extensions picks DPAPI by sys.platform; this Linux box has no DPAPI, so the import of
    # its Windows agent fails and exocm falls back to the file, as on a Windows box where it fails
    monkeypatch.setattr(sys, "platform", "win32")
    cache = build_token_cache(path, encrypted=True)
    monkeypatch.setattr(sys, "platform", "linux")
    _add_token(cache)
    assert path.is_file() and "at-not-logged" in path.read_text(encoding="utf-8")
    again = build_token_cache(path, encrypted=False)
    assert again.find(msal.TokenCache.CredentialType.ACCESS_TOKEN)


def test_stop_signals_include_ctrl_break_where_the_platform_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(signal, "SIGBREAK", raising=False)
    assert stop_signals() == [int(signal.SIGTERM)]
    # Windows: Ctrl+Break and a closed console window arrive as SIGBREAK; stand SIGUSR1 in for it
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    assert stop_signals() == [int(signal.SIGTERM), int(signal.SIGUSR1)]
    stopped = threading.Event()
    before = signal.getsignal(signal.SIGUSR1)
    with on_stop_signals(lambda signum, frame: stopped.set()) as installed:
        assert int(signal.SIGUSR1) in installed
        os.kill(os.getpid(), signal.SIGUSR1)
    assert stopped.is_set()
    assert signal.getsignal(signal.SIGUSR1) == before


@pytest.mark.parametrize(("path", "windows", "shown"), [
    (r"C:\plans\p.json", True, r"C:\plans\p.json"),
    (r"C:\Users\Jane Doe\p.json", True, r"'C:\Users\Jane Doe\p.json'"),
    (r"C:\Users\O'Brien\p $x.json", True, r"'C:\Users\O''Brien\p $x.json'"),
    ("/home/jane/p.json", False, "/home/jane/p.json"),
    ("/home/jane/my plan.json", False, "'/home/jane/my plan.json'"),
])
def test_printed_commands_quote_paths_for_the_admins_shell(path: str, windows: bool, shown: str) -> None:
    assert shell_arg(path, windows=windows) == shown


def test_inventory_plan_and_apply_from_the_cli_as_on_windows(windows: Path) -> None:
    sandbox = ["--sandbox", "--size", "30", "--seed", "3"]
    listed = exocm("inventory", *sandbox, "--format", "csv", "-o", str(windows / "mailboxes.csv"))
    assert listed.exit_code == 0, listed.output
    assert (windows / "mailboxes.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM
    plan = windows / "plan.json"
    made = exocm("plan", *sandbox, "--set-cloud-managed", "true", "--where", "IsDirSynced", "-o", str(plan))
    assert made.exit_code in (0, 1), made.output
    rows = load_plan(plan).set_rows()
    applied = exocm("apply", str(plan), "--yes")
    assert applied.exit_code == 0, applied.output
    assert f"verified {len(rows)}," in applied.stderr
    again = exocm("apply", str(plan), "--resume", "--yes")
    assert again.exit_code == 0, again.output
    journals = sorted((windows / "data" / "journals").glob("*.jsonl"))
    assert journals
    contents = read_journal(journals[0])
    assert "(local unknown@" in str((contents.header or {})["actor"])  # no getuid to fall back on
    verified = [r for r in contents.records if r.get("type") == "row" and r.get("status") == "verified"]
    assert len(verified) == len(rows)


def test_the_on_prem_export_script_needs_nothing_newer_than_windows_powershell_5_1() -> None:
    script = (Path(__file__).resolve().parents[1] / "scripts" / "Export-ExocmOnPrem.ps1").read_text(encoding="utf-8")
    help_block, code = script.split("#>", 1)
    assert "Windows PowerShell 5.1" in help_block and "PowerShell 7" in help_block
    code = "\n".join(line.split(" #", 1)[0] for line in code.splitlines() if not line.lstrip().startswith("#"))
    for seven_only in (r"\?\?", r"\?\.", r"-Parallel\b", r"\s\?\s[^:\n]+\s:\s", r"&&", r"\|\|", r"utf8NoBOM",
                       r"-AsHashtable", r"Join-String", r"\$PSStyle"):
        assert not re.search(seven_only, code), seven_only


def test_the_log_file_is_written_without_fchmod(windows: Path) -> None:
    path = logs.configure(windows / "logdata", echo=False, environ={})
    try:
        logging.getLogger("exocm.core.test").info("written as on Windows: caf\u00e9")
        for handler in logging.getLogger(logs.ROOT_LOGGER).handlers:
            handler.flush()
        assert "caf\u00e9" in path.read_text(encoding="utf-8")
    finally:
        logs._reset()


def test_a_log_another_process_holds_open_is_not_rotated_and_keeps_every_record(
        windows: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = logs.configure(windows / "logdata", echo=False, environ={})
    handler = next(h for h in logging.getLogger(logs.ROOT_LOGGER).handlers
                   if isinstance(h, logs.PrivateRotatingFileHandler))
    monkeypatch.setattr(handler, "maxBytes", 200)
    real_rename = os.rename

    def rename_like_windows(src: Any, dst: Any) -> None:
        # another exocm process has the log open: Windows refuses to rename it
        if Path(src) == path:
            raise PermissionError(13, "The process cannot access the file because it is being used "
                                      "by another process")
        real_rename(src, dst)

    try:
        log = logging.getLogger("exocm.core.test")
        log.info("first %s", "x" * 150)
        (path.parent / "exocm.log.1").write_text("an older file\n", encoding="utf-8")
        monkeypatch.setattr(os, "rename", rename_like_windows)
        for i in range(5):
            log.info("record %d %s", i, "y" * 100)
        handler.flush()
        text = path.read_text(encoding="utf-8")
        assert all(f"record {i} " in text for i in range(5))
        assert (path.parent / "exocm.log.1").read_text(encoding="utf-8") == "an older file\n"  # not shifted
        assert "Logging error" not in capsys.readouterr().err
        monkeypatch.setattr(os, "rename", real_rename)
        monkeypatch.setattr(handler, "_rotate_after", 0.0)  # time only: the hold-off is over
        log.info("after %s", "z" * 100)
        handler.flush()
        assert "record 4" in (path.parent / "exocm.log.1").read_text(encoding="utf-8")  # rotated now
        assert (path.parent / "exocm.log.2").read_text(encoding="utf-8") == "an older file\n"
    finally:
        logs._reset()
