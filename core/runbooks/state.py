"""Persisted runbook runs: one JSON state file per run, an audit log, and a lock.

Under `data_dir()/runbooks/` (0700), per run:

- `<run_id>.json`   the run's state: runbook, tenant, per-object state (current step, per-step
  status, facts recorded along the way), gate confirmations. Written atomically (temp file,
  fsync, rename; mode 0600) after every change that matters, so a kill -9 leaves the last
  complete state.
- `<run_id>.audit.jsonl`  the audit log: one fsynced JSON line per event (who, when, tenant,
  object, step, before, after, outcome), written through core.journal's writer (same
  append/fsync/torn-line rules as the apply journal); a resumed run appends to it.
- `<run_id>.lock`   held while a process drives the run (two processes never drive one run).

The per-step status `intent` means "the action may have been sent": a resumed run reads the
state back (verification) before it would ever act again.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import filelock

from ..access.config import data_dir
from ..execute.journal import JournalContents, JournalError, JournalWriter, new_run_id, read_journal
from ..files import private_dir, write_atomic

STATE_SCHEMA: Final = 1

#: Object statuses: still going, finished, dropped with a reason, or nothing to do.
OBJECT_STATUSES: Final = ("active", "done", "failed", "skipped")
#: Run statuses. `completed` and `aborted` are final; the others can be resumed.
RUN_STATUSES: Final = ("new", "running", "needs_confirmation", "needs_manual", "waiting", "error",
                       "interrupted", "completed", "aborted")
FINAL_RUN_STATUSES: Final = frozenset({"completed", "aborted"})


class RunStateError(Exception):
    """A run cannot be found, read or used; `str(exc)` is one line that says what to do."""


class RunLocked(RunStateError):
    """Another process is driving the run."""


def utc_iso(epoch: float) -> str:
    """Epoch seconds as ISO-8601 UTC (seconds precision)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


@dataclass
class StepState:
    """One step of one object: pending | intent | done | skipped | failed, with timestamps and detail."""

    status: str = "pending"
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    detail: str = ""
    error: str | None = None


@dataclass
class ObjectState:
    """One target of a run: identity, where it is in the runbook, per-step state and recorded facts."""

    key: str
    identity: str
    upn: str = ""
    display_name: str = ""
    status: str = "active"
    step: str = ""
    reason: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepState] = field(default_factory=dict)

    def step_state(self, step_id: str) -> StepState:
        """The state of `step_id` (created pending on first use)."""
        st = self.steps.get(step_id)
        if st is None:
            st = self.steps[step_id] = StepState()
        return st

    @property
    def label(self) -> str:
        """What to call the object in messages (UPN, else the identity given)."""
        return self.upn or self.identity


@dataclass
class RunState:
    """Everything a run needs to continue in another process, on another day."""

    run_id: str
    runbook: str
    runbook_version: int
    steps: list[str]
    tenant: str
    label: str
    profile: str | None
    sandbox: bool
    embedded: bool
    actor: str
    created_at: str
    updated_at: str
    status: str = "new"
    message: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, ObjectState] = field(default_factory=dict)
    gates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)
    schema: int = STATE_SCHEMA

    # -- views ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Objects per status (active, done, failed, skipped)."""
        out = dict.fromkeys(OBJECT_STATUSES, 0)
        for obj in self.objects.values():
            out[obj.status] = out.get(obj.status, 0) + 1
        return out

    @property
    def is_final(self) -> bool:
        """True once the run completed or was aborted (resume refuses it)."""
        return self.status in FINAL_RUN_STATUSES

    def current_step(self) -> str | None:
        """The earliest step an active object is at (None when no object is active)."""
        order = {s: i for i, s in enumerate(self.steps)}
        active = [o.step for o in self.objects.values() if o.status == "active"]
        return min(active, key=lambda s: order.get(s, 0)) if active else None

    # -- JSON ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The state as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunState:
        """Rebuild from to_json(); RunStateError for another schema or a malformed file."""
        if not isinstance(data, Mapping) or data.get("schema") != STATE_SCHEMA:
            raise RunStateError("the run state file has an unknown schema (written by another exocm version?)")
        try:
            objects: dict[str, ObjectState] = {}
            for key, raw in dict(data.get("objects") or {}).items():
                steps = {sid: StepState(**st) for sid, st in dict(raw.get("steps") or {}).items()}
                fields_ = {k: v for k, v in raw.items() if k != "steps"}
                objects[str(key)] = ObjectState(**fields_, steps=steps)
            plain = {k: v for k, v in data.items() if k != "objects"}
            return cls(**plain, objects=objects)
        except (TypeError, AttributeError) as exc:
            raise RunStateError(f"the run state file is malformed ({exc})") from None


@dataclass(frozen=True)
class RunSummary:
    """One run as a list shows it."""

    run_id: str
    runbook: str
    tenant: str
    label: str
    status: str
    message: str
    created_at: str
    updated_at: str
    counts: dict[str, int]
    current_step: str | None


class RunStore:
    """Where runs live: state files, audit logs and locks under one directory."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = private_dir(Path(directory) if directory is not None else data_dir() / "runbooks")

    # -- paths -----------------------------------------------------------------------------
    def state_path(self, run_id: str) -> Path:
        """Path of a run's state file."""
        return self.directory / f"{run_id}.json"

    def audit_path(self, run_id: str) -> Path:
        """Path of a run's audit log."""
        return self.directory / f"{run_id}.audit.jsonl"

    def lock_path(self, run_id: str) -> Path:
        """Path of a run's lock file."""
        return self.directory / f"{run_id}.lock"

    # -- runs ------------------------------------------------------------------------------
    @staticmethod
    def new_run_id() -> str:
        """A fresh, time-ordered run id."""
        return new_run_id()

    def save(self, state: RunState, *, now: float) -> None:
        """Write the state atomically (temp file, fsync, rename, 0600) and fsync the directory."""
        state.updated_at = utc_iso(now)
        text = json.dumps(state.to_json(), ensure_ascii=False, sort_keys=True, indent=1, default=str)
        private_dir(self.directory)
        write_atomic(self.state_path(state.run_id), text.encode("utf-8") + b"\n")

    def load(self, run_id: str) -> RunState:
        """Read a run's state (run id or a unique prefix of one)."""
        path = self.state_path(self.resolve(run_id))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunStateError(f"no runbook run {run_id!r} (see 'exocm runbook status')") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunStateError(f"cannot read the state of run {run_id!r}: {exc}") from None
        return RunState.from_json(data)

    def resolve(self, run_id: str) -> str:
        """The full run id for `run_id` or a unique prefix of it ('last' = the newest run)."""
        run_id = run_id.strip()
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise RunStateError(f"{run_id!r} is not a run id")
        ids = sorted(p.name[: -len(".json")] for p in self.directory.glob("*.json"))
        if run_id == "last":
            if not ids:
                raise RunStateError("there are no runbook runs yet")
            return ids[-1]
        if run_id in ids:
            return run_id
        matches = [i for i in ids if i.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunStateError(f"no runbook run {run_id!r} (see 'exocm runbook status')")
        raise RunStateError(f"{run_id!r} matches {len(matches)} runs; give more of the run id")

    def list(self) -> list[RunSummary]:
        """Every run, newest first (unreadable state files are left out)."""
        out: list[RunSummary] = []
        for path in self.directory.glob("*.json"):
            try:
                state = RunState.from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RunStateError):
                continue
            out.append(RunSummary(state.run_id, state.runbook, state.tenant, state.label, state.status,
                                  state.message, state.created_at, state.updated_at, state.counts(),
                                  state.current_step()))
        out.sort(key=lambda s: (s.created_at, s.run_id), reverse=True)
        return out

    @contextlib.contextmanager
    def locked(self, run_id: str) -> Iterator[None]:
        """Hold the run's lock; RunLocked when another process holds it."""
        lock = filelock.FileLock(str(self.lock_path(run_id)), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RunLocked(f"run {run_id} is being driven by another exocm process; wait for it to stop "
                            "(or stop it), then resume") from None
        try:
            yield
        finally:
            lock.release()

    # -- audit -----------------------------------------------------------------------------
    def open_audit(self, state: RunState) -> JournalWriter:
        """The run's audit log for appending (created with its header on first use)."""
        path = self.audit_path(state.run_id)
        if path.exists():
            try:
                return JournalWriter.reopen(path)
            except JournalError:
                # A header lost to a crash before its first fsync: keep the remains, start afresh.
                path.replace(path.with_suffix(f".jsonl.broken-{os.getpid()}"))
        header = {"run_id": state.run_id, "runbook": state.runbook, "tenant": state.tenant,
                  "actor": state.actor, "started_at": state.created_at, "kind": "runbook-audit",
                  "plan_digest": None, "tool_version": _tool_version()}
        return JournalWriter(path, header)

    def read_audit(self, run_id: str) -> JournalContents:
        """The run's audit log as read (torn or garbage lines skipped with a warning)."""
        return read_journal(self.audit_path(self.resolve(run_id)))


def _tool_version() -> str:
    try:
        from importlib.metadata import version

        return version("exocm")
    except Exception:  # noqa: BLE001 - metadata missing in odd installs
        return "0+unknown"
