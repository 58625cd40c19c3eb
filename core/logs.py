"""exocm's log file: `<data dir>/logs/exocm.log`, rotating, mode 0600, with every secret redacted.

Modules log through `logging.getLogger(__name__)` (all under the `exocm` logger); nothing is
written until a face calls `configure` (the CLI's group callback, the TUI at start-up) with the
data directory (this module sits in core's lowest layer, below `access.config`, so it is told the
directory rather than looking it up). The file and its folder are created on the first record.

- Level INFO by default; `--debug` or `EXOCM_LOG_LEVEL=DEBUG|INFO|WARNING|ERROR` raises or sets
  it, and then records are also printed to stderr (never while the TUI owns the terminal).
- Every record passes `SecretFilter` before it is written anywhere: client secrets, passwords,
  bearer tokens, `Authorization` headers, refresh/access/id tokens, JWT-looking strings, and any
  value registered with `register_secret` (the client secret read from its environment variable)
  become `[redacted]`, in the message, its arguments and the traceback alike.
- `log_file()` names the file an internal error's traceback went to, so the one line the user
  sees can point at it.
"""
from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: The logger every exocm module's logger descends from (`exocm.core...`, `exocm.cli...`).
ROOT_LOGGER = "exocm"
LOG_DIR_NAME = "logs"
LOG_FILE_NAME = "exocm.log"
#: A few MB per file, a few old files kept: enough for a bad day, small next to a snapshot.
MAX_BYTES = 5 * 1024 * 1024
BACKUP_COUNT = 3
#: Seconds before a rotation the OS refused (Windows: the file is open elsewhere) is tried again.
ROTATE_RETRY_S = 60.0
LEVEL_ENV = "EXOCM_LOG_LEVEL"
REDACTED = "[redacted]"
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"

_KEYS = (r"client[_-]?secret|secret|password|passwd|pwd|passphrase|refresh[_-]?token|access[_-]?token|"
         r"id[_-]?token|client[_-]?assertion|assertion|device[_-]?code|api[_-]?key")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer xxx / Basic xxx / Negotiate xxx (headers, dict reprs, curl-like dumps)
    (re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|negotiate|ntlm|kerberos)\s+)?"
                r"[^\s\"',}]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1" + REDACTED),
    # key=value, key: value, "key": "value" for secret-bearing keys (form bodies, JSON, kwargs reprs)
    (re.compile(r"(?i)([\"']?\b(?:" + _KEYS + r")[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"), r"\1" + REDACTED),
    # anything that looks like a JWT (header.payload.signature, base64url)
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
)
_secrets: set[str] = set()
_lock = threading.Lock()
_state: dict[str, Any] = {"file": None, "handlers": []}


def register_secret(value: str | None) -> None:
    """Redact this exact value wherever it would appear in a log record (values under 6 characters are
    ignored: they would redact ordinary words)."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret and every secret-looking pattern replaced by `[redacted]`."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretFilter(logging.Filter):
    """Rewrites each record so its message and traceback carry no secret (attached to every handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class _RedactingFormatter(logging.Formatter):
    """The standard format, redacted once more as a whole (belt and braces over SecretFilter)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose folder (0700) and files (0600) are created on the first record."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8", delay=True)
        self._rotate_after = 0.0

    def _open(self) -> Any:  # TextIOWrapper; typeshed's generic parameter varies by version
        path = Path(self.baseFilename)
        missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        for folder in reversed(missing):  # each folder exocm creates is 0700, the data dir too
            folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if os.name == "posix" and hasattr(os, "fchmod"):  # Windows: the profile's ACL (docs/platforms.md)
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o600)  # a file left by an older run, or made under another umask
        return open(fd, "a", encoding="utf-8")  # noqa: SIM115 - the handler owns and closes it

    def shouldRollover(self, record: logging.LogRecord) -> int:
        """As RotatingFileHandler, but not while a rotation is held off (see doRollover)."""
        if time.monotonic() < self._rotate_after:
            return 0
        return super().shouldRollover(record)

    def doRollover(self) -> None:
        """Rotate, unless the file cannot be renamed now: then keep appending and try again later.

        Windows refuses to rename a file another process holds open (a second exocm writing to
        the same log, docs/platforms.md). Probing with a rename first keeps the old files where
        they are instead of shifting them on every failed attempt; POSIX never refuses.
        """
        if self.stream:
            self.stream.close()
            self.stream = None
        probe = self.baseFilename + ".rotating"
        try:
            os.rename(self.baseFilename, probe)
        except FileNotFoundError:
            pass
        except PermissionError:
            self._rotate_after = time.monotonic() + ROTATE_RETRY_S
            self.stream = self._open()
            return
        else:
            os.rename(probe, self.baseFilename)
        super().doRollover()


def log_path(data_dir: Path) -> Path:
    """Where the log file of data directory `data_dir` lives."""
    return data_dir / LOG_DIR_NAME / LOG_FILE_NAME


def log_file() -> Path | None:
    """The log file records go to now (None before `configure`)."""
    current = _state["file"]
    return current if isinstance(current, Path) else None


def level_from_env(value: str | None) -> int | None:
    """The level `EXOCM_LOG_LEVEL` asks for (a name or a number), None when unset or not a level."""
    if not value or not value.strip():
        return None
    text = value.strip().upper()
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text)
    return level if isinstance(level, int) else None


def configure(data_dir: Path, *, debug: bool = False, echo: bool = True,
              environ: dict[str, str] | None = None) -> Path:
    """Send exocm's records to `<data_dir>/logs/exocm.log` (replacing an earlier configuration).

    Level: DEBUG with `debug`, else `EXOCM_LOG_LEVEL` when set, else INFO. With `debug` or
    `EXOCM_LOG_LEVEL` set, records also go to stderr unless `echo` is False. Returns the file's path.
    """
    env = os.environ if environ is None else environ
    asked = level_from_env(env.get(LEVEL_ENV))
    level = logging.DEBUG if debug else (asked if asked is not None else logging.INFO)
    path = log_path(data_dir)
    _reset()
    logger = logging.getLogger(ROOT_LOGGER)
    logger.setLevel(level)
    handlers: list[logging.Handler] = [PrivateRotatingFileHandler(path)]
    if echo and (debug or asked is not None):
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setLevel(level)
        handler.addFilter(SecretFilter())
        handler.setFormatter(_RedactingFormatter(FORMAT))
        logger.addHandler(handler)
    _state["file"], _state["handlers"] = path, handlers
    return path


def stop_echo() -> None:
    """Stop printing records to stderr (the TUI owns the terminal); the log file keeps receiving them."""
    logger = logging.getLogger(ROOT_LOGGER)
    kept: list[logging.Handler] = []
    for handler in _state["handlers"]:
        if isinstance(handler, logging.FileHandler):
            kept.append(handler)
        else:
            logger.removeHandler(handler)
    _state["handlers"] = kept


def _reset() -> None:
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in _state["handlers"]:
        logger.removeHandler(handler)
        with contextlib.suppress(Exception):
            handler.close()
    _state["file"], _state["handlers"] = None, []


def where_to_look() -> str:
    """The end of an internal error's one line: which file holds the traceback (or how to get one)."""
    path = log_file()
    return f"the traceback is in {path}" if path is not None else "run with --debug for the traceback"
