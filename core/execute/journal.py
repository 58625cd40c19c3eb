"""The apply journal: one append-only JSON Lines file per run, fsynced per group commit.

Line 1 is the header `{"type": "header", "plan_digest", "tenant", "run_id", "actor",
"started_at", "tool_version", ...}`. Then, per target:

- `{"type": "intent", ...}` written (and fsynced) *before* a write is sent: the identity,
  the value before, the target, and the backup of the writeback attributes. An intent
  with no outcome after it means "a write may have been sent": a resume reads the
  mailbox back instead of writing again.
- `{"type": "row", "run_id", "seq", "identity", "status", "verified", "before", "after",
  "backup", "error", "at", ...}` the outcome: verified, failed, stale, skipped,
  applied_unverified (`verified` is true exactly when the status is `verified`).
- `{"type": "end", ...}` when the run stops cleanly (absent after a crash).
- `{"type": "override", "check", "confirmed", ...}` (tenant default only): the admin typed the
  override confirmation for a refused change (e.g. on-prem still provisions mailboxes).

Readers never fail on a torn last line (a crash mid-write) or a garbage line: they skip
it and say so in `warnings`.
"""
from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ..access.config import data_dir
from ..files import fsync_dir, private_dir, read_whole

JOURNAL_SCHEMA: Final = 1
#: Row statuses that end a target for good in a plan's history.
FINAL_OK: Final = frozenset({"verified"})
#: Windows' C runtime opens a descriptor in text mode unless told otherwise (it would write "\r\n");
#: journals are bytes, the same on every platform. 0 where the flag does not exist (POSIX).
_O_BINARY: Final[int] = getattr(os, "O_BINARY", 0)
STATUSES: Final = frozenset({"verified", "failed", "stale", "skipped", "applied_unverified", "drifted"})


class JournalError(Exception):
    """A journal file cannot be used at all (missing, or no header line)."""


def journals_under(data: Path | None = None) -> Path:
    """Where the journals of a data directory (default: config.data_dir()) live: <data>/journals."""
    return (Path(data) if data is not None else data_dir()) / "journals"


def journal_dir(base: Path | None = None) -> Path:
    """Directory of journals: `base` or data_dir()/journals (created 0700)."""
    return private_dir(Path(base) if base is not None else journals_under())


def new_run_id() -> str:
    """A fresh run id (time-ordered prefix, random suffix)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def local_actor() -> str:
    """The local account running exocm ('user@host')."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers; no USERNAME on Windows
        # Windows has no uid (nor a pwd module for getuser to fall back on)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def utc_now_iso() -> str:
    """Now as ISO-8601 UTC."""
    return datetime.now(UTC).isoformat()


class JournalWriter:
    """Appends records to one run's journal; every `append` is one write + flush + fsync.

    Thread-safe. Records get `run_id` and a per-run `seq` here.
    """

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path = Path(path)
        private_dir(self.path.parent)
        self.run_id: str = str(header["run_id"])
        self._lock = threading.Lock()
        self._seq = 0
        self.records_written = 0
        self.fsyncs = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _O_BINARY, 0o600)
        head = {"type": "header", "schema": JOURNAL_SCHEMA, **header}
        self._write([json.dumps(head, ensure_ascii=False, sort_keys=True, default=str)])
        fsync_dir(self.path.parent)  # make the new directory entry durable too

    @classmethod
    def reopen(cls, path: Path) -> JournalWriter:
        """Append to an existing journal (a resumed run): the header stays, `seq` continues.

        A torn last line (a crash mid-write) is cut off first, so new records never glue onto
        it; complete records are never touched. JournalError when the file has no header.
        """
        path = Path(path)
        contents = read_journal(path)
        header = require_header(contents)
        raw_size = path.stat().st_size
        with path.open("rb") as handle:
            data = handle.read()
        keep = data.rfind(b"\n") + 1
        self = cls.__new__(cls)
        self.path = path
        self.run_id = str(header["run_id"])
        self._lock = threading.Lock()
        self._seq = max((int(r.get("seq") or 0) for r in contents.records), default=0)
        self.records_written = 0
        self.fsyncs = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | _O_BINARY)
        if keep < raw_size:
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)
        return self

    @classmethod
    def create(
        cls,
        *,
        plan_digest: str | None,
        tenant: str,
        actor: str,
        tool_version: str,
        directory: Path | None = None,
        extra: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> JournalWriter:
        """Start a new journal file for one run under `directory` (default data_dir()/journals)."""
        run_id = run_id or new_run_id()
        folder = journal_dir(directory)
        tag = (plan_digest or "nodigest")[:12]
        path = folder / f"{run_id}-{tag}.jsonl"
        header = {
            "plan_digest": plan_digest,
            "tenant": tenant,
            "run_id": run_id,
            "actor": actor,
            "started_at": utc_now_iso(),
            "tool_version": tool_version,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **(extra or {}),
        }
        return cls(path, header)

    def _write(self, lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self.fsyncs += 1

    def append(self, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Append records as one group commit (fsync once); returns them with run_id/seq/at set."""
        out: list[dict[str, Any]] = []
        with self._lock:
            if self._fd < 0:
                raise JournalError(f"journal {self.path} is closed")
            lines = []
            for record in records:
                self._seq += 1
                full = {"run_id": self.run_id, "seq": self._seq, "at": utc_now_iso(), **record}
                full["run_id"], full["seq"] = self.run_id, self._seq
                if full.get("type") == "row":  # docs/architecture.md#journal names a per-row `verified` flag
                    full["verified"] = full.get("status") == "verified"
                lines.append(json.dumps(full, ensure_ascii=False, sort_keys=True, default=str))
                out.append(full)
            if lines:
                self._write(lines)
                self.records_written += len(lines)
        return out

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class JournalContents:
    """A journal as read: its header (None if unusable), records in order, and read warnings."""

    path: Path
    header: dict[str, Any] | None
    records: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def plan_digest(self) -> str | None:
        """The digest of the plan this run applied (None for tenant-default runs)."""
        return None if self.header is None else self.header.get("plan_digest")

    def rows(self) -> list[dict[str, Any]]:
        """Outcome records (type 'row')."""
        return [r for r in self.records if r.get("type") == "row"]

    @property
    def end(self) -> dict[str, Any] | None:
        """The closing record of a run that stopped cleanly (None after a crash)."""
        return next((r for r in reversed(self.records) if r.get("type") == "end"), None)

    def outcome(self) -> str:
        """'complete', 'incomplete', 'cancelled', 'error' or 'interrupted' (no end record: the process died)."""
        end = self.end
        if end is None:
            return "interrupted"
        if end.get("error"):
            return "error"
        if end.get("cancelled"):
            return "cancelled"
        counts = {r.get("status") for r in self.rows()}
        return "incomplete" if counts & {"failed", "applied_unverified", "interrupted"} else "complete"


def read_journal(path: Path | str) -> JournalContents:
    """Read a journal tolerantly: a torn last line or garbage lines are skipped with a warning."""
    path = Path(path)
    raw = read_whole(path, "journal", JournalError)
    contents = JournalContents(path=path, header=None)
    lines = raw.split(b"\n")
    torn = lines[-1] != b""
    if not torn:
        lines = lines[:-1]
    for number, line in enumerate(lines, start=1):
        if torn and number == len(lines):
            if line.strip():
                contents.warnings.append(f"{path.name}: line {number} is incomplete (torn write); ignored")
            break
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            contents.warnings.append(f"{path.name}: line {number} is not a journal record; ignored")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("type"), str):
            contents.warnings.append(f"{path.name}: line {number} is not a journal record; ignored")
            continue
        if record["type"] == "header":
            if number == 1:
                contents.header = record
            else:
                contents.warnings.append(f"{path.name}: line {number} is a second header; ignored")
            continue
        if contents.header is None:
            contents.warnings.append(f"{path.name}: line {number} comes before any header; ignored")
            continue
        if record.get("run_id") != contents.header.get("run_id"):
            contents.warnings.append(f"{path.name}: line {number} belongs to another run; ignored")
            continue
        if record["type"] in ("row", "intent") and not isinstance(record.get("identity"), str):
            contents.warnings.append(f"{path.name}: line {number} has no identity; ignored")
            continue
        contents.records.append(record)
    return contents


def require_header(contents: JournalContents) -> dict[str, Any]:
    """The header of a journal, or JournalError when the file is not an exocm journal."""
    if contents.header is None:
        raise JournalError(f"{contents.path} is not an exocm journal (its first line is not a header)")
    return contents.header


def journals_for_plan(digest: str, directory: Path | None = None) -> list[Path]:
    """Every journal of runs of the plan with `digest`, oldest first (headers checked, not names)."""
    folder = journal_dir(directory)
    found: list[tuple[str, str, Path]] = []
    for path in folder.glob("*.jsonl"):
        header = _read_header(path)
        if header is not None and header.get("plan_digest") == digest:
            found.append((str(header.get("started_at") or ""), str(header.get("run_id") or ""), path))
    found.sort()
    return [p for _, _, p in found]


def _read_header(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            first = handle.readline(1 << 20)
    except OSError:
        return None
    try:
        record = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(record, dict) and record.get("type") == "header":
        return record
    return None


@dataclass
class PlanHistory:
    """What all runs of one plan did, folded per identity (latest record wins)."""

    journals: list[JournalContents]
    latest: dict[str, dict[str, Any]]
    verified: dict[str, dict[str, Any]]
    warnings: list[str]

    def open_intents(self) -> dict[str, dict[str, Any]]:
        """Identities whose latest record is an intent: a write may have been sent, outcome unknown."""
        return {k: v for k, v in self.latest.items() if v.get("type") == "intent"}

    def intents(self) -> dict[str, dict[str, Any]]:
        """Latest intent record per identity (any run)."""
        out: dict[str, dict[str, Any]] = {}
        for contents in self.journals:
            for record in contents.records:
                if record.get("type") == "intent":
                    out[record["identity"]] = record
        return out

    def recorded_skips(self) -> set[str]:
        """Identities already journaled as plan skips."""
        return {
            r["identity"]
            for c in self.journals
            for r in c.records
            if r.get("type") == "row" and r.get("status") == "skipped"
        }


def plan_history(digest: str, directory: Path | None = None) -> PlanHistory:
    """Fold every journal of the plan: latest record per identity and the verified rows."""
    journals = [read_journal(p) for p in journals_for_plan(digest, directory)]
    latest: dict[str, dict[str, Any]] = {}
    verified: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for contents in journals:
        warnings.extend(contents.warnings)
        for record in contents.records:
            if record.get("type") not in ("row", "intent"):
                continue
            identity = record["identity"]
            if record.get("type") == "row" and record.get("status") == "verified":
                verified.setdefault(identity, record)
            latest[identity] = record
    # once verified, a target stays verified: later records (none are written) never hide it
    latest.update(verified)
    return PlanHistory(journals=journals, latest=latest, verified=verified, warnings=warnings)


def verified_identities(digest: str, directory: Path | None = None) -> set[str]:
    """Identities some run of the plan has verified (what a resume must not write again)."""
    return set(plan_history(digest, directory).verified)


@dataclass(frozen=True)
class JournalInfo:
    """One journal as a list shows it."""

    path: Path
    run_id: str
    tenant: str
    plan_digest: str
    started_at: str
    actor: str
    outcome: str
    counts: dict[str, int]
    warnings: int = 0

    @property
    def rows(self) -> int:
        """How many row records the journal holds."""
        return sum(self.counts.values())


def list_journals(data_dir_or_journals: Path | None = None, *, tenant: str | None = None) -> list[JournalInfo]:
    """Journals (newest first), optionally of one tenant; accepts the data dir or the journals dir."""
    base = Path(data_dir_or_journals) if data_dir_or_journals is not None else None
    folder = base / "journals" if base is not None and (base / "journals").is_dir() else base
    out: list[JournalInfo] = []
    for path in journal_dir(folder).glob("*.jsonl"):
        header = _read_header(path)
        if header is None:
            continue
        if tenant is not None and str(header.get("tenant", "")).lower() != tenant.lower():
            continue
        contents = read_journal(path)
        counts: dict[str, int] = {}
        for row in contents.rows():
            counts[str(row.get("status"))] = counts.get(str(row.get("status")), 0) + 1
        out.append(JournalInfo(
            path=path, run_id=str(header.get("run_id", "")), tenant=str(header.get("tenant", "")),
            plan_digest=str(header.get("plan_digest") or ""), started_at=str(header.get("started_at", "")),
            actor=str(header.get("actor", "")), outcome=contents.outcome(), counts=counts,
            warnings=len(contents.warnings),
        ))
    out.sort(key=lambda j: (j.started_at, j.run_id), reverse=True)
    return out
