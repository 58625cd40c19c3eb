"""The embedded sandbox's state between commands: one SQLite file per (size, seed).

`exocm plan` in one command and `exocm apply` in the next must see the same tenant, so the
embedded sandbox is loaded from (and saved to) `<data dir>/sandbox/embedded-<size>-<seed>.sqlite`,
with its TLS material and credentials next to it (`.sqlite.tls/`). One command at a time
uses a given state: a lock file is held while the sandbox runs, and a second command is
refused with one line naming the holder. `exocm sandbox reset` deletes a state.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
from exocm.core.access.config import ConfigError, data_dir, embedded_sandbox_state, ensure_private_dir

DEFAULT_SANDBOX_SIZE = 5000
DEFAULT_SANDBOX_SEED = 42


def sandbox_flags(size: int, seed: int) -> str:
    """The --size/--seed flags that name this sandbox (empty for the defaults)."""
    flags = []
    if size != DEFAULT_SANDBOX_SIZE:
        flags.append(f"--size {size}")
    if seed != DEFAULT_SANDBOX_SEED:
        flags.append(f"--seed {seed}")
    return (" " + " ".join(flags)) if flags else ""


def reset_command(size: int, seed: int) -> str:
    """The command that deletes this sandbox's state."""
    return f"exocm sandbox reset{sandbox_flags(size, seed)}"


def banner_text(size: int, seed: int, state: Path | None) -> str:
    """The one SANDBOX line every command on the embedded sandbox prints first."""
    where = (f"state: {state}; `{reset_command(size, seed)}` starts over" if state is not None
             else "not saved: it ends with this command")
    return (f"SANDBOX (embedded, {size:,} users, seed {seed}, {where}) "
            "-- a local test tenant, not Microsoft")


def sandbox_label(size: int, seed: int, state: Path | None) -> str:
    """Which embedded sandbox this is, in one short line (the banner's words, for the TUI header)."""
    where = f"state: {state}" if state is not None else "not saved"
    return f"embedded, {size:,} users, seed {seed}, {where}"


def _paths(state: Path) -> dict[str, Path]:
    return {
        "state": state,
        "tls": Path(f"{state}.tls"),
        "lock": Path(f"{state}.lock"),
        "owner": Path(f"{state}.owner.json"),
    }


@dataclass
class StateLock:
    """Held while one command runs the embedded sandbox of one state file."""

    state: Path
    _lock: filelock.BaseFileLock = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ensure_private_dir(self.state.parent)
        self._lock = filelock.FileLock(str(_paths(self.state)["lock"]), timeout=0, thread_local=False)

    def acquire(self, what: str) -> None:
        """Take the lock, or raise ConfigError naming the command that holds it."""
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise ConfigError(
                f"the embedded sandbox ({what}) is in use by another exocm command ({self._holder()}); "
                "wait for it to finish, or run 'exocm sandbox serve' and a profile for several at once"
            ) from None
        owner = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        with contextlib.suppress(OSError):
            _paths(self.state)["owner"].write_text(json.dumps(owner), encoding="utf-8")

    def release(self) -> None:
        """Let the next command use the state."""
        with contextlib.suppress(OSError):
            _paths(self.state)["owner"].unlink()
        self._lock.release()

    def _holder(self) -> str:
        try:
            owner = json.loads(_paths(self.state)["owner"].read_text(encoding="utf-8"))
            return f"pid {owner['pid']}, since {owner['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "pid unknown"


def state_lock(size: int, seed: int) -> StateLock:
    """The lock of the embedded sandbox's state for (size, seed)."""
    return StateLock(embedded_sandbox_state(size, seed))


def existing_states() -> list[tuple[int, int, Path]]:
    """(size, seed, path) of every saved embedded sandbox, smallest first."""
    found = []
    for path in (data_dir() / "sandbox").glob("embedded-*-*.sqlite"):
        parts = path.stem.split("-")
        with contextlib.suppress(ValueError, IndexError):
            found.append((int(parts[1]), int(parts[2]), path))
    return sorted(found)


def delete_state(size: int, seed: int) -> list[Path]:
    """Delete the saved embedded sandbox of (size, seed); returns what was deleted.

    Raises ConfigError while a command is using it.
    """
    state = embedded_sandbox_state(size, seed)
    paths = _paths(state)
    if not state.exists() and not paths["tls"].exists():
        return []
    lock = StateLock(state)
    lock.acquire(f"{size:,} users, seed {seed}")
    deleted: list[Path] = []
    try:
        for extra in ("", "-journal", "-wal", "-shm"):
            path = Path(f"{state}{extra}")
            if path.exists():
                path.unlink()
                deleted.append(path)
        if paths["tls"].exists():
            shutil.rmtree(paths["tls"])
            deleted.append(paths["tls"])
    finally:
        lock.release()
    with contextlib.suppress(OSError):
        paths["lock"].unlink()
    return deleted


def start_embedded(size: int, seed: int, *, persist: bool, announce: Any, **knobs: Any) -> tuple[Any, StateLock | None]:
    """Start the embedded sandbox; with `persist`, from (and saving to) its state file.

    `announce(text)` prints a line on stderr. Returns (Sandbox, lock or None); the caller
    stops the sandbox (which saves it) and then releases the lock.
    """
    from exocm.sandbox.server import Sandbox  # cli may start the sandbox; core never imports it

    # EXOCM_SANDBOX_VARIANT=NAME[,NAME...] (or "strict") runs the embedded sandbox under conformance
    # variants (exocm sandbox serve --variant); the state file is the same, the behaviour is not.
    spec = os.environ.get("EXOCM_SANDBOX_VARIANT", "").strip()
    if spec and "variants" not in knobs:
        from exocm.sandbox.variants import parse_variants

        names = [n for n in spec.split(",") if n.strip() and n.strip().lower() != "strict"]
        strict = any(n.strip().lower() == "strict" for n in spec.split(","))
        try:
            chosen = parse_variants(names, strict=strict)
        except ValueError as exc:
            raise ConfigError(f"EXOCM_SANDBOX_VARIANT: {exc}") from None
        knobs["variants"] = sorted(chosen)
        said = announce

        def announce(text: str) -> None:  # the variants go right after the banner
            said(text)
            if text.startswith("SANDBOX (embedded"):
                said(f"SANDBOX: conformance variants in force: {', '.join(sorted(chosen))}")

    if not persist:
        announce(banner_text(size, seed, None))
        return Sandbox.start(size=size, seed=seed, port=0, **knobs), None
    state = embedded_sandbox_state(size, seed)
    lock = state_lock(size, seed)
    lock.acquire(f"{size:,} users, seed {seed}")
    try:
        announce(banner_text(size, seed, state))
        if not state.exists():
            announce(f"SANDBOX: first use of this size and seed: generating {size:,} users ...")
        try:
            # durable_writes: a write is saved before it is answered, so even a killed apply
            # leaves the journal and the sandbox in agreement (as with a real tenant).
            handle = Sandbox.start(size=size, seed=seed, port=0, state_file=state, durable_writes=True, **knobs)
        except Exception as exc:  # a damaged or older state file: one line with the way out
            if not state.exists():
                raise
            raise ConfigError(f"cannot load the embedded sandbox state {state} ({type(exc).__name__}: {exc}); "
                              f"'{reset_command(size, seed)}' starts over") from None
    except BaseException:
        lock.release()
        raise
    return handle, lock
