"""No secret leaks: client secret, certificate passphrase and access tokens appear nowhere they should not.

A sandbox runs as its own process (`exocm sandbox serve`), like Microsoft would: exocm gets the
client secret and the PFX passphrase only through environment variables named by two
profiles made with `exocm login`. Then the real command line runs inventory, findings, plan,
apply (killed with SIGKILL once, then resumed), report, undo, and fails on purpose
(wrong secret, wrong passphrase, TLS without the CA), while a sampler reads every process's
argv (/proc/*/cmdline, what `ps -eo args` shows). The runs that must be seen from outside
(apply, its resume, the debug-logged ones) are processes of their own; the rest run in-process. The access tokens are taken from the token
cache exocm itself wrote. Afterwards every file exocm wrote (config, snapshots, plans,
journals, reports, exocm's own log file <data>/logs/exocm.log), every stdout/stderr, debug logging
output and every argv seen are searched
for the secret, the passphrase and each token: none may appear. The token cache and config are
0600 in 0700 directories. TLS verification cannot be switched off by a profile (an unknown key
such as `verify` is refused, http:// endpoints are refused; see test_bad_input.py) and a profile
without the sandbox's CA fails to connect instead of connecting unverified.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from exocm.cli.main import cli

EXOCM = [sys.executable, "-c", "from exocm.cli.main import main; main()"]
#: The same, with every library logger at DEBUG on stderr (what a user turning on logs would see).
EXOCM_DEBUG = [sys.executable, "-c", "import logging; logging.basicConfig(level=logging.DEBUG); "
               "from exocm.cli.main import main; main()"]


class ArgvSampler:
    """Reads /proc/*/cmdline of every process until stopped; keeps each distinct argv once."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    raw = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if raw and len(self.seen) < 10_000:
                    self.seen.add(raw.replace(b"\x00", b" ").decode("utf-8", "replace"))
            self.samples += 1
            self._stop.wait(0.02)

    def __enter__(self) -> ArgvSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`exocm sandbox serve` in a child process (slow writes, so an apply runs long enough to watch)."""
    proc = subprocess.Popen([*EXOCM, "sandbox", "serve", "--size", "150", "--seed", "9", "--write-budget", "25",
                             "--print-json"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, EXOCM_DATA_DIR=str(
                                tmp_path / "sandbox-side"), EXOCM_CONFIG_DIR=str(tmp_path / "sandbox-side")))
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_no_secret_passphrase_or_token_leaks_into_files_output_logs_or_argv(served: dict[str, Any],
                                                                            tmp_path: Path) -> None:
    info = served
    secret, passphrase = str(info["client_secret"]), str(info["client_pfx_passphrase"])
    assert len(secret) >= 16 and len(passphrase) >= 8
    home = tmp_path / "admin"
    env = dict(os.environ, EXOCM_DATA_DIR=str(home / "data"), EXOCM_CONFIG_DIR=str(home / "config"),
               EXOCM_TOKEN_CACHE="file", EXOCM_SECRET_PROD=secret, EXOCM_PFX_PASSPHRASE_CERT=passphrase)
    env.pop("EXOCM_PROFILE", None)
    outputs: list[str] = []

    def exocm(*args: str, ok: tuple[int, ...] = (0, 1), debug: bool = False, extra_env: dict[str, str] | None = None,
              own_process: bool = False) -> Any:
        """Run exocm with the secrets in its environment: a process of its own (seen by the argv
        sampler; `debug` logs every library at DEBUG), or in this process (faster; same code)."""
        run_env = {**env, **(extra_env or {})}
        if debug:  # exocm's own log file at DEBUG too (and its records on stderr)
            run_env["EXOCM_LOG_LEVEL"] = "DEBUG"
        if own_process or debug:
            done = subprocess.run([*(EXOCM_DEBUG if debug else EXOCM), *args], env=run_env,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
            code, out, err = done.returncode, done.stdout, done.stderr
        else:
            result = CliRunner().invoke(cli, list(args), env={k: v for k, v in run_env.items()
                                                               if k.startswith("EXOCM")})
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                raise AssertionError(f"exocm {args[0]} raised {result.exception!r}") from result.exception
            code, out, err = result.exit_code, result.stdout, result.stderr
        outputs.append(f"$ exocm {' '.join(args)}\n{out}\n{err}")
        assert code in ok, (args, code, err[-1500:])
        assert "Traceback" not in err, err[-3000:]
        return type("Ran", (), {"stdout": out, "stderr": err, "returncode": code})

    common = ["--tenant", str(info["tenant"]), "--cloud", "custom", "--client-id", str(info["client_id"]),
              "--authority", str(info["authority"]), "--rest-base-url", str(info["rest_base_url"]),
              "--ca-file", str(info["ca_file"])]
    plan = home / "plans" / "flip.json"
    with ArgvSampler() as sampler:
        canary = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)", "argv-canary-7f3a"])
        exocm("login", "--profile", "prod", "--auth", "secret", "--secret-env", "EXOCM_SECRET_PROD", *common,
              "--default", ok=(0,))
        exocm("login", "--profile", "cert", "--auth", "certificate", "--pfx-file", str(info["client_pfx_file"]),
              "--pfx-passphrase-env", "EXOCM_PFX_PASSPHRASE_CERT", *common, "--no-default", ok=(0,))
        exocm("inventory", "--profile", "cert", "--format", "csv", "--out", str(home / "inventory.csv"), ok=(0,))
        exocm("findings", "--profile", "prod", "--format", "json", "--out", str(home / "findings.json"),
              debug=True)
        exocm("plan", "--profile", "prod", "--set-cloud-managed", "true", "--all-dirsynced", "--max", "60",
              "-o", str(plan), debug=True, ok=(0,))
        # an apply killed mid-run (SIGKILL: whatever it had on stderr is the crash output), then resumed
        killed = subprocess.Popen([*EXOCM_DEBUG, "--debug", "apply", "--profile", "prod", str(plan), "--yes"],
                                  env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        journals = home / "data" / "journals"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and killed.poll() is None:
            if any(p.stat().st_size > 2000 for p in journals.glob("*.jsonl")):
                break
            time.sleep(0.05)
        if killed.poll() is None:
            killed.send_signal(signal.SIGKILL)
        out, err = killed.communicate(timeout=60)
        outputs.append(f"$ exocm apply (killed)\n{out}\n{err}")
        exocm("apply", "--profile", "prod", str(plan), "--yes", "--resume", ok=(0,), own_process=True)
        journal = max(journals.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        exocm("report", str(journal), "--format", "csv", "--out", str(home / "report.csv"), ok=(0,))
        exocm("undo", "--profile", "prod", str(journal), "-o", str(home / "plans" / "undo.json"), ok=(0,))
        # failures on purpose: their messages must not echo what was wrong
        # (a fresh data dir: no cached token or snapshot, so the wrong credential is really used)
        fresh = str(home / "data-fresh")
        wrong = exocm("inventory", "--profile", "prod", ok=(4,),
                      extra_env={"EXOCM_SECRET_PROD": "wrong-secret-0123456789abcdef", "EXOCM_DATA_DIR": fresh})
        assert "wrong-secret-0123456789abcdef" not in wrong.stdout + wrong.stderr
        bad_pass = exocm("inventory", "--profile", "cert", ok=(2, 4),
                         extra_env={"EXOCM_PFX_PASSPHRASE_CERT": "wrong-passphrase-42", "EXOCM_DATA_DIR": fresh})
        assert "wrong-passphrase-42" not in bad_pass.stdout + bad_pass.stderr
        # TLS stays on: the same endpoint without its CA bundle is refused, never used unverified
        exocm("login", "--profile", "noca", "--auth", "secret", "--secret-env", "EXOCM_SECRET_PROD",
              *common[:-2], "--no-default", ok=(2, 4), extra_env={"EXOCM_DATA_DIR": fresh})
        canary.wait(timeout=30)
        time.sleep(0.1)
    # the sampler really sees argv (a canary), and the debug runs really logged
    assert sampler.samples > 10 and any("argv-canary-7f3a" in argv for argv in sampler.seen)
    assert any(" apply " in argv for argv in sampler.seen)
    assert any("DEBUG:" in text for text in outputs)
    # exocm's own log file was written (sign-ins, the apply runs) and is searched like every other file
    log_text = (home / "data" / "logs" / "exocm.log").read_text(encoding="utf-8")
    assert "signed in (secret)" in log_text and "signed in (certificate)" in log_text
    assert "apply run" in log_text and " DEBUG " in log_text

    cache = home / "data" / "token_cache.json"
    cached = json.loads(cache.read_text(encoding="utf-8"))
    tokens = [str(v["secret"]) for section in ("AccessToken", "RefreshToken") for v in cached.get(section, {}).values()
              if v.get("secret")]
    assert tokens, "exocm cached no token; nothing to look for"
    needles = {"client secret": secret, "PFX passphrase": passphrase}
    for n, token in enumerate(tokens):
        needles[f"token {n}"] = token
        needles[f"token {n} signature"] = token.rsplit(".", 1)[-1]

    haystacks: dict[str, str] = {f"output {i}": text for i, text in enumerate(outputs)}
    haystacks.update({f"argv {i}": argv for i, argv in enumerate(sorted(sampler.seen))})
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files) and any(p.name.endswith(".parquet") or "snapshot" in str(p)
                                                            for p in files)
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        if path == cache:  # the token cache holds tokens by design; never the secret or the passphrase
            assert secret not in text and passphrase not in text
            continue
        haystacks[str(path.relative_to(home))] = text
    leaks = [f"{what} in {where}" for where, text in haystacks.items() for what, needle in needles.items()
             if needle in text]
    assert not leaks, leaks

    # private files and directories
    assert _mode(cache) == 0o600
    assert _mode(home / "config" / "config.toml") == 0o600
    for directory in (home / "config", home / "data", journals):
        assert _mode(directory) == 0o700, directory
    open_to_others = [f"{path.relative_to(home)} {oct(_mode(path))}" for path in files
                      if (path.is_relative_to(home / "data") or path.is_relative_to(home / "config"))
                      and _mode(path) & 0o077]
    assert not open_to_others, open_to_others


def _decoded_payloads(text: str) -> list[str]:
    """`text` plus every base64 run in it decoded (WSMan messages carry PSRP fragments as base64)."""
    import base64
    import re

    out = [text]
    for run in re.findall(r"[A-Za-z0-9+/]{40,}={0,2}", text):
        try:
            out.append(base64.b64decode(run + "=" * (-len(run) % 4)).decode("utf-8", "replace"))
        except ValueError:
            continue
    return out


def test_debug_logs_of_a_winrm_run_never_show_the_access_token_or_the_passwords(
        make_sandbox: Any, caplog: pytest.LogCaptureFixture) -> None:
    """EXO through a management host sends the MSAL access token as Connect-ExchangeOnline
    -AccessToken: pypsrp logs every PSRP message and WSMan envelope at DEBUG; exocm keeps the
    bodies out of those records (on-prem runs carry no secret in bodies, but the same rule holds)."""
    import logging

    from exocm.core.access.config import sandbox_profile
    from exocm.core.access.connect import open_bridge
    from exocm.core.access.exo_host import PASSWORD_ENV

    sb = make_sandbox(size=40, seed=5)
    info = sb.info
    prof = sandbox_profile("host", info)
    prof.extra.update({"exo_transport": "psrp", "winrm_exo_url": info["winrm_exo_url"],
                       "winrm_username": info["winrm_username"]})
    assert prof.secret_env is not None
    env = {prof.secret_env: str(info["client_secret"]), PASSWORD_ENV: str(info["winrm_password"])}
    caplog.set_level(logging.DEBUG)
    bridge = open_bridge(prof, env=env, persist_tokens=False)
    try:
        records = bridge.invoke("Get-Mailbox", {"ResultSize": 3})
        assert len(records) == 3
        token = bridge._tokens.token()  # type: ignore[union-attr]
    finally:
        bridge.close()
    # psrpcore's runspace-pool records come from the sandbox's server side in this process (the
    # management host, which receives the token by design); exocm's client side is pypsrp.
    logged = [r.getMessage() for r in caplog.records if not r.name.startswith("psrpcore._base")]
    assert any(r.name.startswith("pypsrp") for r in caplog.records), "pypsrp logged nothing: nothing was checked"
    assert any("Packing PSRP message" in text for text in logged)  # the dumps are there, without bodies
    needles = {"access token": token, "token signature": token.rsplit(".", 1)[-1],
               "WinRM password": str(info["winrm_password"]), "client secret": str(info["client_secret"])}
    leaks = sorted({what for text in logged for payload in _decoded_payloads(text)
                    for what, needle in needles.items() if needle in payload})
    assert not leaks, leaks
