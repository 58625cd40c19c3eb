"""What the benchmarks share: the figures as JSON (printed, and written to `--json OUT`), peak
RSS, a sandbox served by a child process, and the product's REST bridge to a sandbox.

Imported as `from _common import ...` (a benchmark runs as `python scripts/bench/NAME.py`, so
its own folder is first on sys.path).
"""
from __future__ import annotations

import json
import resource
import select
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_figures(result: Mapping[str, Any], out: str | Path | None, *, indent: int = 2) -> None:
    """Print the figures as JSON and, when `out` is given, write them there too."""
    text = json.dumps(result, indent=indent)
    print(text)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (getrusage's ru_maxrss), to 0.1."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


@contextmanager
def sandbox_process(size: int, seed: int, *serve_args: str, start_timeout: float = 600.0) -> Iterator[dict[str, Any]]:
    """`exocm sandbox serve --print-json` (plus `serve_args`) in a child process, whose CPU is not
    behind this process's GIL; yields its info (URLs, CA file, throwaway credentials, `_pid`)."""
    cmd = [sys.executable, "-c", "from exocm.cli.main import main; main()", "sandbox", "serve",
           "--size", str(size), "--seed", str(seed), "--port", "0", "--print-json", *serve_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], start_timeout)
        if not ready:
            raise SystemExit("the sandbox did not start in time")
        info: dict[str, Any] = json.loads(proc.stdout.readline())
        info["_pid"] = proc.pid  # for benchmarks that count the sandbox's CPU
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
        yield info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def sandbox_bridge(info: Mapping[str, Any], **options: Any) -> Any:
    """The product's REST bridge to a sandbox: a sandbox profile, its throwaway secret, tokens in memory."""
    from exocm.core.access.config import sandbox_profile
    from exocm.core.access.connect import open_bridge
    from exocm.core.access.token_cache import memory_token_cache

    profile = sandbox_profile("bench", info)
    assert profile.secret_env is not None
    options.setdefault("token_cache", memory_token_cache())
    return open_bridge(profile, env={profile.secret_env: str(info["client_secret"])}, **options)
