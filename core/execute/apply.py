"""The apply engine: run a plan against the tenant, row by row, with a durable journal.

Contract (docs/architecture.md#plan-apply-undo): refuse a plan for another tenant, with a wrong digest, or
older than `max_age`; hold a lock per plan digest so two applies of one plan never run at
once; per chunk of <= 10 rows: re-read the mailboxes (one batched read), skip rows whose
observed state changed since the plan (`stale`), journal an *intent* with the backup of
the writeback attributes (fsynced before the write is sent), send `Set-Mailbox -Identity
X -IsExchangeCloudManaged v` (the switch alone) for the chunk as one `$batch`, read back,
and journal each outcome. A write whose answer is unknown (AppliedUnknown, Transient,
Throttled) is resolved by the read-back, never by writing again blind; only a read-back
showing "not applied" allows another attempt (bounded). A rerun of the same plan reads
every journal of the plan: verified rows are never written again, and rows with an open
intent are resolved by reading them back.

Reads (the re-read and the read-back) are one `Get-Mailbox -Filter` of OR'ed
ExternalDirectoryObjectId terms per chunk when every identity is a GUID (one request, one
round trip), else a `$batch` of `Get-Mailbox -Identity`. Over REST the chunk's writes go out as
parallel single requests rather than one `$batch`: a batch saves round trips, not server work,
and the service runs its items one after another in one concurrency slot
(docs/exchange-facts.md, "Cost of a $batch and of WinRM requests"), so ten parallel writes
finish in one request's time for the same slot time; other transports use `invoke_many`.

Writes are paced by `WritePacer`, a client-side token bucket whose rate is learned from
the tenant's throttling (slow start, then multiplicative decrease to just under the rate
the tenant accepted, then a concave climb back and an upward probe), so the write budget is used without a storm of
429s; request concurrency is the bridge's shared AIMD limiter.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import filelock

from .. import logs
from ..access.config import data_dir as default_data_dir
from ..bridge.base import Bridge, Call, CallResult, Record
from ..bridge.errors import (
    AppliedUnknown,
    AuthFailed,
    BridgeError,
    NotFound,
    Throttled,
    Transient,
)
from ..events import Progress, ProgressCallback, ignore_progress
from ..files import private_dir, write_atomic
from ..plan.planfile import (
    Observed,
    Plan,
    PlanDigestError,
    PlanRow,
    tool_version,
    writeback_values,
)
from ..values import is_guid
from .journal import JournalWriter, PlanHistory, journals_under, local_actor, new_run_id, plan_history

DEFAULT_MAX_AGE: Final = timedelta(hours=24)
#: Outcomes that leave it open whether a sent write landed (a rerun reads them back first).
UNSETTLED: Final = frozenset({"interrupted", "applied_unverified"})
#: Rows per chunk: one batched read, one $batch of writes (EXO allows <= 10), one read-back.
CHUNK_SIZE: Final = 10
#: Attempts of a write whose read-back shows it did not apply after an unknown outcome.
MAX_UNKNOWN_ATTEMPTS: Final = 5
#: Throttled attempts of one row before it is recorded as failed (429 storms end applied).
MAX_THROTTLED_ATTEMPTS: Final = 60

Now = Callable[[], datetime]
Monotonic = Callable[[], float]
Sleep = Callable[[float], None]

log = logging.getLogger(__name__)


class ApplyRefused(Exception):
    """The plan may not be applied as asked; `str(exc)` is one line that says what to do."""


class ForeignTenant(ApplyRefused):
    """The plan was made for another tenant than the one connected."""


class PlanExpired(ApplyRefused):
    """The plan is older than the allowed age."""


class PlanLocked(ApplyRefused):
    """Another apply of the same plan is running."""


# --- reads -----------------------------------------------------------------------------


def _edoi(record: Mapping[str, Any]) -> str:
    return str(record.get("ExternalDirectoryObjectId") or "").lower()


def read_mailboxes(bridge: Bridge, identities: Sequence[str], *, mode: str = "batch") -> dict[str, Record]:
    """Current Get-Mailbox records of these ExternalDirectoryObjectIds (absent ones are left out).

    One request either way: mode "batch" sends a `$batch` of `Get-Mailbox -Identity X`
    (<= 10 identities, each bound as a parameter); mode "filter" sends one `Get-Mailbox
    -Filter` of OR'ed `ExternalDirectoryObjectId -eq` terms (only when every identity is a
    GUID, so nothing but a GUID reaches filter text). Raises the bridge's error when the
    read fails; an identity the service does not find is simply absent from the result.
    """
    ids = [i for i in dict.fromkeys(identities) if i]
    if not ids:
        return {}
    wanted = {i.lower(): i for i in ids}
    out: dict[str, Record] = {}
    if mode == "filter" and all(is_guid(i, braces=False) for i in ids):
        terms = " -or ".join(f"(ExternalDirectoryObjectId -eq '{i.lower()}')" for i in ids)
        for record in bridge.invoke("Get-Mailbox", {"Filter": terms, "ResultSize": "Unlimited"}):
            key = _edoi(record)
            if key in wanted:
                out[wanted[key]] = record
        return out
    for start in range(0, len(ids), CHUNK_SIZE):
        group = ids[start:start + CHUNK_SIZE]
        results = bridge.invoke_many([Call("Get-Mailbox", {"Identity": i}) for i in group])
        for identity, result in zip(group, results, strict=True):
            if isinstance(result.error, NotFound):
                continue
            if result.error is not None:
                raise result.error
            for record in result.records:
                if _edoi(record) == identity.lower() or len(result.records) == 1:
                    out[identity] = record
    return out


class RowIO:
    """How the engine reads, observes, backs up and writes one kind of row (mailboxes here; Graph
    objects in execute/objects_io.py). `write` returns one error (or None) per identity, in order."""

    #: What a row is, for messages ("mailbox", "group", ...).
    noun = "mailbox"

    def read(self, identities: Sequence[str]) -> dict[str, Record]:
        """Current records of these identities (absent ones are left out); raises the bridge's error."""
        raise NotImplementedError

    def observe(self, record: Mapping[str, Any]) -> Observed:
        """The observed state of a record (what a plan row is compared with)."""
        raise NotImplementedError

    def backup(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The values journaled before a write (what undo restores or shows)."""
        raise NotImplementedError

    def write(self, identities: Sequence[str], target: bool) -> list[BridgeError | None]:
        """Send the SOA write for these identities (one request where the transport can batch)."""
        raise NotImplementedError


class MailboxIO(RowIO):
    """Mailboxes through an Exchange bridge: Get-Mailbox reads, Set-Mailbox -IsExchangeCloudManaged writes."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def read(self, identities: Sequence[str]) -> dict[str, Record]:
        """One read of these mailboxes: a filter of GUIDs, else a $batch (read_mailboxes)."""
        return read_mailboxes(self.bridge, identities, mode="filter")

    def observe(self, record: Mapping[str, Any]) -> Observed:
        """IsExchangeCloudManaged, WhenChanged and the writeback fingerprint."""
        return Observed.from_record(record)

    def backup(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The writeback attributes."""
        return writeback_values(record)

    def write(self, identities: Sequence[str], target: bool) -> list[BridgeError | None]:
        """One $batch of `Set-Mailbox -Identity X -IsExchangeCloudManaged target` (the switch alone)."""
        calls = [Call("Set-Mailbox", {"Identity": i, "IsExchangeCloudManaged": target}) for i in identities]
        try:
            results = self.bridge.invoke_many(calls)
        except BridgeError as exc:  # the whole batch failed in a way the bridge raised
            results = [CallResult(call, error=exc) for call in calls]
        return [r.error for r in results]


# --- write pacing ------------------------------------------------------------------------


class WritePacer:
    """Client-side token bucket for writes, its rate learned from the tenant's throttling.

    A tenant's write budget behaves like a token bucket: when it throttles, the bucket is
    empty. Between two throttle events the tenant therefore accepted about its refill rate
    times the time between them, which is the estimate used here (never below what the last
    `floor_window_s` prove): after an event the rate is cut just under it (`cut_to`), then
    climbs back towards `plateau` times it (the *ceiling*) along a concave curve over
    `recover_s`, fast at first and flat near the ceiling, as TCP CUBIC does. Once back, with
    no throttle since, the tenant's budget may have grown (a throttling storm ended): the
    rate probes upward, doubling every `probe_doubling_s`, never beyond twice what the
    tenant accepted recently. A probe that finds no more budget keeps the ceiling (the
    average since the last event undercounts a budget the pacer sat below) and makes the
    next probe wait twice as long, up to `max_recover_s`; a budget that moved resets that
    wait. Before the first event, slow start doubles the rate every `doubling_s`, never
    running ahead of four times what the tenant accepted recently. Throttles that arrive
    within `cooldown_s` of an event are the same burst and count once. (`increase_per_s` is
    no longer used; it stays accepted so callers keep working.)
    """

    def __init__(
        self,
        *,
        initial_rate: float = 30.0,
        min_rate: float = 0.5,
        max_rate: float | None = None,
        doubling_s: float = 1.0,
        cut_to: float = 0.95,
        first_cut_to: float = 0.85,
        increase_per_s: float = 0.002,
        pause_s: float = 0.25,
        max_pause_s: float = 2.0,
        window_s: float = 2.0,
        cooldown_s: float = 2.5,
        burst_s: float = 0.25,
        min_estimate_span_s: float = 5.0,
        recover_s: float = 8.0,
        max_recover_s: float = 32.0,
        probe_doubling_s: float = 3.0,
        floor_window_s: float = 8.0,
        plateau: float = 0.985,
        probe_found: float = 1.3,
        clock: Monotonic = time.monotonic,
        throttle_signal: Callable[[], int] | None = None,
    ) -> None:
        self.rate = initial_rate if max_rate is None else min(initial_rate, max_rate)
        self.initial_rate = self.rate
        self.min_rate = min_rate
        self.max_rate = max_rate
        self.doubling_s = doubling_s
        self.cut_to = cut_to
        self.first_cut_to = first_cut_to
        self.increase_per_s = increase_per_s
        self.pause_s = pause_s
        self.max_pause_s = max_pause_s
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.burst_s = burst_s
        self.min_estimate_span_s = min_estimate_span_s
        self.recover_s = recover_s
        self.max_recover_s = max_recover_s
        self._recover = recover_s  # current wait before probing (backs off while probes find nothing)
        self.probe_doubling_s = probe_doubling_s
        self.floor_window_s = floor_window_s
        self.plateau = plateau
        self.probe_found = probe_found
        self.slow_start = True
        self.cuts = 0
        self.estimate: float | None = None
        self.throttle_signal = throttle_signal
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._tokens = 0.0
        self._filled_at = now
        self._paused_until = now
        self._grown_at = now
        self._last_event = -math.inf
        self._started = now
        self._recent: deque[tuple[float, int]] = deque()
        self._history: deque[tuple[float, int]] = deque()  # accepted writes of the last floor_window_s
        self._accepted_total = 0
        self._accepted_at_event = 0
        self._seen_throttles: int | None = None
        self._ceiling = self.rate  # what the tenant accepted before the last cut
        self._cut_rate = self.rate  # the rate right after the last cut

    def _recent_rate(self, now: float) -> float | None:
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()
        span = min(self.window_s, now - self._started)
        if span < 0.5:
            return None
        return sum(n for _, n in self._recent) / span

    def _window_floor(self, now: float) -> float:
        """A lower bound of the tenant's rate from the writes accepted in the last `floor_window_s`.

        The tenant's bucket is empty now (it throttled), and it held at most about one second of
        budget at the window's start, so accepted <= rate * (window + 1).
        """
        while self._history and self._history[0][0] < now - self.floor_window_s:
            self._history.popleft()
        span = min(self.floor_window_s, now - self._started)
        if span < self.floor_window_s / 2:
            return 0.0
        return sum(n for _, n in self._history) / (span + 1.0)

    def _grow(self, now: float) -> None:
        dt = max(0.0, now - self._grown_at)
        self._grown_at = now
        if dt == 0:
            return
        if self.slow_start:
            rate = self.rate * (2.0 ** (dt / self.doubling_s))
            recent = self._recent_rate(now)
            if recent is not None:
                rate = min(rate, max(self.initial_rate, 4.0 * recent))
        else:
            quiet = now - self._last_event
            if quiet < self._recover:  # concave climb back to the ceiling
                gap = max(0.0, self._ceiling - self._cut_rate)
                rate = max(self.rate, self._ceiling - gap * (1.0 - min(1.0, quiet / self.recover_s)) ** 3)
            else:  # back at the ceiling, no throttle since: probe for a larger budget
                rate = max(self.rate, self._ceiling) * (2.0 ** (dt / self.probe_doubling_s))
                recent = self._recent_rate(now)
                if recent is not None:
                    rate = min(rate, max(self.rate, self._ceiling, 2.0 * recent))
        if self.max_rate is not None:
            rate = min(rate, self.max_rate)
        self.rate = max(self.min_rate, rate)

    def _poll_signal(self) -> None:
        """React at once to throttles the transport saw (it may be retrying them by itself)."""
        if self.throttle_signal is None:
            return
        try:
            count = int(self.throttle_signal())
        except Exception:  # noqa: BLE001 - a counter that cannot be read is no signal
            return
        if self._seen_throttles is None:
            self._seen_throttles = count
        elif count > self._seen_throttles:
            self._seen_throttles = count
            self.throttled()

    def try_take(self, n: int) -> float:
        """Take `n` write tokens: 0.0 when taken, else the seconds to wait before asking again.

        Tokens accrue at the current rate (so a rate change applies at once to every waiting
        writer) and never bank more than `burst_s` of them (no burst after an idle spell).
        """
        self._poll_signal()
        with self._lock:
            now = self._clock()
            self._grow(now)
            if now < self._paused_until:
                self._filled_at = now
                return self._paused_until - now
            cap = max(float(n), self.rate * self.burst_s)
            self._tokens = min(cap, self._tokens + (now - self._filled_at) * self.rate)
            self._filled_at = now
            if self._tokens >= n:
                self._tokens -= n
                return 0.0
            return (n - self._tokens) / self.rate

    def accepted(self, n: int) -> None:
        """`n` writes were accepted by the tenant."""
        if n <= 0:
            return
        with self._lock:
            now = self._clock()
            self._recent.append((now, n))
            self._history.append((now, n))
            while self._history and self._history[0][0] < now - self.floor_window_s:
                self._history.popleft()
            self._accepted_total += n

    def throttled(self, retry_after: float | None = None) -> bool:
        """The tenant throttled a write: pause new writes, re-estimate the rate, cut just under it.

        New writes wait `retry_after` when given, else `pause_s` (at most `max_pause_s`), so the
        tenant's bucket refills a few writes' worth before they go on at the cut rate; the
        throttled writes themselves are retried after their own Retry-After. The apply loop passes
        no `retry_after`: a Retry-After is whole seconds (at least 1), far longer than an empty
        bucket takes to refill one write, and pausing every writer for it cost ~1 s of the
        budget per throttle (apply bench, alternated: share of the budget 0.931-0.974 with 1 s,
        0.967-1.0 with 0.25 s, 429s alike). True when the rate was cut.
        """
        with self._lock:
            now = self._clock()
            if now - self._last_event < self.cooldown_s:
                return False
            pause = min(self.max_pause_s, retry_after if retry_after else self.pause_s)
            self._paused_until = max(self._paused_until, now + pause)
            self._tokens = 0.0
            since = self._accepted_total - self._accepted_at_event
            # throttled while probing above the ceiling: the ceiling itself held for a while without
            # a throttle, so it stays (the average since the last event undercounts a budget the
            # pacer sat below, and would ratchet the ceiling down cycle after cycle)
            held = None if self.slow_start or now - self._last_event < self._recover else self._ceiling
            if held is not None and self._window_floor(now) < self.probe_found * held:
                # the probe found no more budget: probe less often (the tenant's budget is steady)
                self._recover = min(self.max_recover_s, 2.0 * self._recover)
            else:  # the budget moved (dropped before a probe, or a probe found much more): watch closely
                self._recover = self.recover_s
            if self.slow_start:
                recent = self._recent_rate(now)
                base = self.rate if not recent else min(self.rate, recent)
                self.rate = base * self.first_cut_to
                self.slow_start = False
            else:
                span = now - self._last_event
                if span >= self.min_estimate_span_s:
                    # exact when the budget held still since the last event (the bucket was empty
                    # at both); after the budget grew, the last seconds alone give a lower bound
                    self.estimate = max(since / span, self._window_floor(now))
                    base = min(self.rate, self.estimate)
                else:  # too soon after the last event to measure: trust what was just accepted
                    recent = self._recent_rate(now)
                    base = self.rate if not recent else min(self.rate, max(recent, self.rate * 0.8))
                self.rate = base * self.cut_to
            self.rate = max(self.min_rate, self.rate)
            if self.max_rate is not None:
                self.rate = min(self.rate, self.max_rate)
            self._cut_rate = self.rate
            self._ceiling = max(self.rate, base * self.plateau, held or 0.0)
            if self.max_rate is not None:
                self._ceiling = min(self._ceiling, self.max_rate)
            self._last_event = now
            self._accepted_at_event = self._accepted_total
            self._grown_at = now
            self.cuts += 1
            return True


# --- results -----------------------------------------------------------------------------


@dataclass
class ApplyResult:
    """What one apply run did, with its journal path and how to resume."""

    run_id: str
    journal_path: Path
    plan_digest: str
    tenant: str
    total: int
    counts: dict[str, int]
    cancelled: bool = False
    error: str | None = None
    elapsed_s: float = 0.0
    rows_per_s: float = 0.0
    bridge_stats: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        """Rows a rerun would still work on (not verified, not skipped by the plan, not stale)."""
        return sum(self.counts.get(k, 0) for k in ("failed", "applied_unverified", "interrupted", "not_started"))

    @property
    def complete(self) -> bool:
        """Every row of the plan ended verified, skipped or stale."""
        return self.remaining == 0 and self.error is None and not self.cancelled

    def to_json(self) -> dict[str, Any]:
        """Plain JSON summary."""
        return {
            "run_id": self.run_id,
            "journal": str(self.journal_path),
            "plan_digest": self.plan_digest,
            "tenant": self.tenant,
            "total": self.total,
            "counts": self.counts,
            "cancelled": self.cancelled,
            "error": self.error,
            "elapsed_s": round(self.elapsed_s, 3),
            "rows_per_s": round(self.rows_per_s, 3),
            "complete": self.complete,
        }


# --- checks and lock -----------------------------------------------------------------------


def check_plan(plan: Plan, tenant: str, *, max_age: timedelta | None = DEFAULT_MAX_AGE,
               now: datetime | None = None) -> None:
    """Refuse a plan with a wrong digest, for another tenant, or older than `max_age`."""
    if not plan.digest or plan.compute_digest() != plan.digest:
        raise PlanDigestError("the plan does not match its digest: it was changed after it was created; "
                              "re-create it with 'exocm plan'")
    if plan.tenant.strip().lower() != str(tenant).strip().lower():
        raise ForeignTenant(f"the plan is for tenant {plan.tenant}, but this connection is to {tenant}: "
                            "connect to the plan's tenant or make a new plan")
    if max_age is not None:
        age = plan.age(now)
        if age > max_age:
            hours = age.total_seconds() / 3600
            limit = max_age.total_seconds() / 3600
            raise PlanExpired(f"the plan is {hours:.1f} h old (limit {limit:g} h): re-create it with "
                              "'exocm plan' so it sees the current state, or pass --max-age")


class PlanLock:
    """An exclusive lock per plan digest (filelock: flock on POSIX, msvcrt.locking on Windows; the OS
    releases it if the holder dies).

    The owner's pid, host and start time are written next to it so a refusal can say who holds it.
    """

    def __init__(self, directory: Path, digest: str) -> None:
        private_dir(directory)
        self.path = directory / f"apply-{digest[:32]}.lock"
        self.owner_path = directory / f"apply-{digest[:32]}.owner.json"
        self._lock = filelock.FileLock(str(self.path), timeout=0, thread_local=False, mode=0o600)
        self.stale_owner: str | None = None

    def acquire(self, run_id: str) -> None:
        """Take the lock or raise PlanLocked naming the holder."""
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise PlanLocked(f"this plan is already being applied ({self._owner_text()}); "
                             "wait for that run to finish, or stop it first") from None
        # An owner file left behind names a run that died holding the lock (kill -9, power
        # loss): the kernel released its flock, so the lock is stale; take it over and say so.
        self.stale_owner = self._owner_text() if self.owner_path.exists() else None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id,
                 "since": datetime.now(UTC).isoformat()}
        with contextlib.suppress(OSError):
            write_atomic(self.owner_path, json.dumps(owner).encode("utf-8"))

    def _owner_text(self) -> str:
        try:
            owner = json.loads(self.owner_path.read_text(encoding="utf-8"))
            return f"pid {owner.get('pid')} on {owner.get('host')} since {owner.get('since')}"
        except (OSError, ValueError, AttributeError):
            return "owner unknown"

    def release(self) -> None:
        """Release the lock (the owner file is removed first)."""
        with contextlib.suppress(OSError):
            self.owner_path.unlink()
        self._lock.release()


# --- the engine ------------------------------------------------------------------------------


def _chunks(rows: Sequence[PlanRow], size: int) -> list[list[PlanRow]]:
    return [list(rows[i:i + size]) for i in range(0, len(rows), size)]


def _err_text(error: BaseException | None) -> str | None:
    if error is None:
        return None
    message = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class _FatalStop(Exception):
    """The run cannot go on (reads keep failing, auth lost): stop cleanly, journal stays valid."""


class _Engine:
    def __init__(
        self,
        bridge: Bridge,
        plan: Plan,
        journal: JournalWriter,
        history: PlanHistory,
        *,
        workers: int,
        chunk_size: int,
        pacer: WritePacer,
        cancel: threading.Event,
        pause: threading.Event,
        progress: ProgressCallback,
        monotonic: Monotonic,
        sleep: Sleep | None,
        io: RowIO | None = None,
    ) -> None:
        self.bridge = bridge
        self.io = io or MailboxIO(bridge)
        self.plan = plan
        self.target = plan.value
        self.journal = journal
        self.history = history
        # writes an earlier run may have sent without learning the outcome: resolved by read-back
        self.intents = {
            identity: intent for identity, intent in history.intents().items()
            if history.latest.get(identity, {}).get("type") == "intent"
            or history.latest.get(identity, {}).get("status") in UNSETTLED
        }
        self.workers = max(1, workers)
        self.chunk_size = max(1, min(chunk_size, 10))
        self.pacer = pacer
        if pacer.throttle_signal is None and callable(getattr(bridge, "snapshot", None)):
            # writes the tenant throttled (the bridge retries them itself, so results rarely show it)
            pacer.throttle_signal = self._write_throttle_count
        self.cancel = cancel
        self.pause = pause
        self.progress = progress
        self.monotonic = monotonic
        self.sleep = sleep
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {k: 0 for k in (
            "verified", "failed", "stale", "skipped", "applied_unverified", "interrupted",
            "previously_verified", "not_started")}
        self.queue: deque[list[PlanRow]] = deque()
        self.total = len(plan.rows)
        self.done = 0
        self.run_done = 0
        self.started = monotonic()
        self.last_emit = -math.inf
        self.rate_window: deque[tuple[float, int]] = deque()
        self.fatal: str | None = None
        self.stopped_between_waves = False
        self.dependent_mode = False
        self.ready_cond = threading.Condition()
        self.state_name = "isCloudManaged" if plan.is_graph else "IsExchangeCloudManaged"
        # parallel single writes over REST (the module docstring says why); None: invoke_many
        self.write_pool: ThreadPoolExecutor | None = None
        if isinstance(self.io, MailboxIO) and getattr(bridge, "kind", None) == "rest":
            self.write_pool = ThreadPoolExecutor(max_workers=min(64, self.workers * self.chunk_size),
                                                 thread_name_prefix="exocm-write")

    # -- helpers -----------------------------------------------------------------------------
    def wait(self, seconds: float) -> None:
        """Sleep `seconds` unless cancelled (real sleeps wake on cancel)."""
        if seconds <= 0:
            return
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            self.cancel.wait(seconds)

    def _write_throttle_count(self) -> int:
        snap = self.bridge_snapshot()
        # writes the tenant's write budget refused; transports without that counter give
        # every throttled exchange (429/503), a coarser signal
        return int(snap["write_429"] if "write_429" in snap else snap.get("throttled", 0))

    def bridge_snapshot(self) -> dict[str, Any]:
        snap = getattr(self.bridge, "snapshot", None)
        if callable(snap):
            with contextlib.suppress(Exception):
                data = snap()
                if isinstance(data, dict):
                    return data
        return {}

    def record(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        self.journal.append(records)
        if self.dependent_mode:
            self.release_dependents(records)
        with self.lock:
            for r in records:
                if r.get("type") != "row":
                    continue
                status = str(r.get("status"))
                self.counts[status] = self.counts.get(status, 0) + 1
                self.done += 1
                self.run_done += 1
            self.rate_window.append((self.monotonic(), sum(1 for r in records if r.get("type") == "row")))
        self.emit()

    def row_record(self, row: PlanRow, status: str, *, before: Any = None, after: Any = None,
                   backup: dict[str, Any] | None = None, error: str | None = None, reason: str = "",
                   attempts: int = 0, note: str = "") -> dict[str, Any]:
        rec: dict[str, Any] = {
            "type": "row", "identity": row.identity, "display_name": row.display_name, "upn": row.upn,
            "status": status, "target": self.target, "before": before, "after": after,
            "backup": backup, "error": error, "reason": reason, "attempts": attempts,
        }
        if note:
            rec["note"] = note
        return rec

    def emit(self, force: bool = False) -> None:
        now = self.monotonic()
        with self.lock:
            if not force and now - self.last_emit < 0.25:
                return
            self.last_emit = now
            while len(self.rate_window) > 1 and self.rate_window[0][0] < now - 15.0:
                self.rate_window.popleft()
            span = max(1e-6, now - (self.rate_window[0][0] if len(self.rate_window) > 1 else self.started))
            rate = sum(n for _, n in self.rate_window) / span if self.rate_window else 0.0
            remaining = self.total - self.done
            counters: dict[str, Any] = dict(self.counts)
            done = self.done
        snap = self.bridge_snapshot()
        counters.update({
            "ok": counters.get("verified", 0) + counters.get("previously_verified", 0),
            "concurrency": snap.get("limit"),
            "in_flight": snap.get("in_flight"),
            "http_429": snap.get("http_429", 0),
            "throttled": snap.get("throttled", 0),
            "requests": snap.get("requests", 0),
            "write_rate": round(self.pacer.rate, 1),
            "journal": str(self.journal.path),
        })
        self.progress(Progress(
            stage="apply", done=done, total=self.total, rate=rate if rate > 0 else None,
            eta_s=(remaining / rate) if rate > 0 else None,
            message="paused" if self.pause.is_set() else "", counters=counters,
        ))

    # -- reading -------------------------------------------------------------------------------
    def read(self, ids: Sequence[str], *, attempts: int = 3) -> dict[str, Record]:
        """One read of these mailboxes (a filter of GUIDs, else a $batch) with a few extra tries beyond
        the bridge's own; _FatalStop when it keeps failing."""
        last: BridgeError | None = None
        for attempt in range(attempts):
            try:
                return self.io.read(ids)
            except AuthFailed as exc:
                raise _FatalStop(_err_text(exc) or "authentication failed") from None
            except Transient as exc:
                last = exc
                self.wait(min(10.0, 1.0 * (2 ** attempt)))
            except BridgeError as exc:
                raise _FatalStop(f"reading {self.io.noun}s failed: {_err_text(exc)}") from None
        raise _FatalStop(f"reading {self.io.noun}s keeps failing: {_err_text(last)}")

    def send_writes(self, calls: list[Call]) -> list[CallResult]:
        """The chunk's writes: parallel single requests over REST (module docstring), else invoke_many."""
        pool = self.write_pool
        if pool is None or len(calls) <= 1:
            return self.bridge.invoke_many(calls)
        return [f.result() for f in [pool.submit(self._write_one, call) for call in calls]]

    def _write_one(self, call: Call) -> CallResult:
        try:
            return CallResult(call, records=self.bridge.invoke(call.cmdlet, call.parameters))
        except BridgeError as exc:
            return CallResult(call, error=exc)

    # -- one chunk -------------------------------------------------------------------------------
    def process(self, chunk: list[PlanRow]) -> None:
        current = self.read([r.identity for r in chunk])
        outcomes: list[dict[str, Any]] = []
        to_write: list[tuple[PlanRow, Record]] = []
        for row in chunk:
            record = current.get(row.identity)
            if record is None:
                outcomes.append(self.row_record(row, "stale", reason=f"{self.io.noun} not found any more"))
                continue
            seen = self.io.observe(record)
            intent = self.intents.get(row.identity)
            if intent is not None and seen.is_cloud_managed == self.target:
                outcomes.append(self.row_record(
                    row, "verified", before=intent.get("before"), after=seen.is_cloud_managed,
                    backup=intent.get("backup"), attempts=0,
                    note="written by an interrupted earlier run; verified by read-back, not written again"))
                continue
            diffs = row.observed.differences(seen)
            if diffs:
                outcomes.append(self.row_record(
                    row, "stale", before=seen.is_cloud_managed, after=seen.is_cloud_managed,
                    reason="changed since the plan: " + "; ".join(diffs)))
                continue
            to_write.append((row, record))
        self.record(outcomes)
        if not to_write:
            return
        before = {row.identity: self.io.observe(rec).is_cloud_managed for row, rec in to_write}
        backups = {row.identity: self.io.backup(rec) for row, rec in to_write}
        self.journal.append([
            {"type": "intent", "identity": row.identity, "before": before[row.identity], "target": self.target,
             "backup": backups[row.identity], "observed": self.io.observe(rec).to_json()}
            for row, rec in to_write
        ])
        self.write_until_settled([row for row, _ in to_write], before, backups)

    def write_until_settled(self, rows: list[PlanRow], before: dict[str, Any],
                            backups: dict[str, dict[str, Any]]) -> None:
        unknown_attempts = {r.identity: 0 for r in rows}
        throttled_attempts = {r.identity: 0 for r in rows}
        total_attempts = {r.identity: 0 for r in rows}
        errors: dict[str, str | None] = {}
        pending = list(rows)
        while pending:
            if self.cancel.is_set():
                self.record([self.row_record(
                    r, "interrupted", before=before[r.identity], backup=backups[r.identity],
                    error=errors.get(r.identity), attempts=total_attempts[r.identity],
                    reason="stopped before this write was confirmed; read back as not applied")
                    for r in pending])
                return
            while not self.cancel.is_set():
                delay = self.pacer.try_take(len(pending))
                if delay <= 0:
                    break
                self.wait(min(delay, 0.05))
            if self.cancel.is_set():
                continue
            if isinstance(self.io, MailboxIO):  # Set-Mailbox: parallel single writes over REST (send_writes)
                calls = [Call("Set-Mailbox", {"Identity": r.identity, "IsExchangeCloudManaged": self.target})
                         for r in pending]
                try:
                    sent = self.send_writes(calls)
                except BridgeError as exc:  # the whole batch failed in a way the bridge raised
                    sent = [CallResult(call, error=exc) for call in calls]
                results: list[BridgeError | None] = [res.error for res in sent]
            else:
                results = self.io.write([r.identity for r in pending], self.target)
            for r in pending:
                total_attempts[r.identity] += 1
            accepted = sum(1 for res in results if res is None)
            self.pacer.accepted(accepted)
            if any(isinstance(res, Throttled) for res in results):
                self.pacer.throttled()
            try:
                back = self.read([r.identity for r in pending])
            except _FatalStop as stop:
                self.record([self.row_record(
                    r, "applied_unverified" if res is None else "interrupted",
                    before=before[r.identity], backup=backups[r.identity],
                    error=_err_text(res), attempts=total_attempts[r.identity],
                    reason=f"could not read back ({stop}); a resume reads it back before writing again")
                    for r, res in zip(pending, results, strict=True)])
                raise
            settled: list[dict[str, Any]] = []
            retry: list[PlanRow] = []
            retry_after = 0.0
            for row, error in zip(pending, results, strict=True):
                if error is not None:
                    errors[row.identity] = _err_text(error)
                record = back.get(row.identity)
                value = self.io.observe(record).is_cloud_managed if record is not None else None
                common = {"before": before[row.identity], "backup": backups[row.identity],
                          "attempts": total_attempts[row.identity]}
                if record is not None and value == self.target:
                    note = f"the write answered {errors[row.identity]}; read-back shows it applied" \
                        if error is not None else ""
                    settled.append(self.row_record(row, "verified", after=value, note=note, **common))
                elif record is None:
                    settled.append(self.row_record(row, "failed", after=None, error=_err_text(error),
                                                   reason=f"{self.io.noun} not found on read-back", **common))
                elif value is None and (error is None or isinstance(error, AppliedUnknown | Transient)):
                    # the read-back cannot tell (IsExchangeCloudManaged absent or not true/false): writing
                    # again would be blind, so the row ends here and says why
                    settled.append(self.row_record(
                        row, "applied_unverified", after=None, error=_err_text(error),
                        reason=f"the read-back shows no readable {self.state_name} (absent or not "
                               "true/false): cannot verify; not written again", **common))
                elif error is None:
                    unknown_attempts[row.identity] += 1
                    if unknown_attempts[row.identity] >= MAX_UNKNOWN_ATTEMPTS:
                        settled.append(self.row_record(
                            row, "failed", after=value, error=None,
                            reason=f"the write reported success {unknown_attempts[row.identity]} times "
                                   "but read-back never showed the new value", **common))
                    else:
                        retry.append(row)
                elif isinstance(error, Throttled):
                    throttled_attempts[row.identity] += 1
                    retry_after = max(retry_after, error.retry_after or 1.0)
                    if throttled_attempts[row.identity] >= MAX_THROTTLED_ATTEMPTS:
                        settled.append(self.row_record(
                            row, "failed", after=value, error=_err_text(error),
                            reason=f"throttled {throttled_attempts[row.identity]} times; not applied", **common))
                    else:
                        retry.append(row)
                elif isinstance(error, AppliedUnknown | Transient):
                    unknown_attempts[row.identity] += 1
                    if unknown_attempts[row.identity] >= MAX_UNKNOWN_ATTEMPTS:
                        settled.append(self.row_record(
                            row, "failed", after=value, error=_err_text(error),
                            reason=f"not applied after {unknown_attempts[row.identity]} attempts "
                                   "(each read back before trying again)", **common))
                    else:
                        retry.append(row)
                else:
                    settled.append(self.row_record(row, "failed", after=value, error=_err_text(error),
                                                   reason="the service refused the change", **common))
            self.record(settled)
            pending = retry
            if pending and retry_after > 0:
                self.wait(retry_after)

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        finally:
            if self.write_pool is not None:
                self.write_pool.shutdown(wait=True)

    def _run(self) -> None:
        verified = self.history.verified
        recorded_skips = self.history.recorded_skips()
        skips: list[dict[str, Any]] = []
        work: list[PlanRow] = []
        for row in self.plan.rows:
            if row.identity in verified:
                self.counts["previously_verified"] += 1
                self.done += 1
            elif row.action == "skip":
                if row.identity in recorded_skips:
                    self.counts["skipped"] += 1
                    self.done += 1
                else:
                    skips.append(self.row_record(row, "skipped", reason=row.reason,
                                                 before=row.observed.is_cloud_managed,
                                                 after=row.observed.is_cloud_managed, note=row.detail))
            else:
                work.append(row)
        self.emit(force=True)
        self.record(skips)
        if any(row.after for row in work):
            # Nested groups: a row starts once every child it names (`after`) verified, so a parent
            # is never converted while one of its children is not, and no wave waits for another.
            left = self.run_dependent(work)
            if left and not self.cancel.is_set() and not self.fatal:
                self.stopped_between_waves = True
            self.counts["not_started"] += left
            self.emit(force=True)
            return
        # Waves without named children: a wave starts only when every earlier row verified.
        waves = sorted({row.wave or 0 for row in work})
        left = 0
        for number, wave in enumerate(waves):
            rows = [row for row in work if (row.wave or 0) == wave]
            if self.cancel.is_set() or self.fatal or (number and self.unsettled_rows()):
                left += len(rows)
                continue
            self.run_wave(rows)
            with self.lock:
                left += sum(len(c) for c in self.queue)
                self.queue.clear()
        if left and not self.cancel.is_set() and not self.fatal and len(waves) > 1:
            self.stopped_between_waves = True
        self.counts["not_started"] += left
        self.emit(force=True)

    def run_dependent(self, rows: list[PlanRow]) -> int:
        """Work through `rows` in plan order, each once its `after` rows verified; returns rows never started."""
        ids = {row.identity for row in rows}
        verified_before = self.history.verified
        self.waiting = {row.identity: {a for a in row.after if a in ids and a not in verified_before}
                        for row in rows}
        self.dependents: dict[str, list[str]] = {}
        for row in rows:
            for child in self.waiting[row.identity]:
                self.dependents.setdefault(child, []).append(row.identity)
        self.rows_by_id = {row.identity: row for row in rows}
        self.ready: deque[PlanRow] = deque(row for row in rows if not self.waiting[row.identity])
        self.in_flight = 0
        self.started_ids: set[str] = set()
        self.dependent_mode = True
        threads = [threading.Thread(target=self.dependent_worker, name=f"exocm-apply-{i}", daemon=True)
                   for i in range(self.workers)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            try:
                time.sleep(0.05)  # not Thread.join (see run_wave)
            except KeyboardInterrupt:
                self.cancel.set()
        for t in threads:
            t.join()
        return len(ids - self.started_ids)

    def release_dependents(self, records: Sequence[dict[str, Any]]) -> None:
        """Rows whose last child just verified become ready (dependency mode)."""
        with self.ready_cond:
            for record in records:
                if record.get("type") != "row" or record.get("status") != "verified":
                    continue
                for parent in self.dependents.get(str(record.get("identity")), ()):
                    waiting = self.waiting[parent]
                    waiting.discard(str(record.get("identity")))
                    if not waiting:
                        self.ready.append(self.rows_by_id[parent])
            self.ready_cond.notify_all()

    def dependent_worker(self) -> None:
        """Take ready rows (up to a chunk) until none is ready and none is in flight."""
        while True:
            with self.ready_cond:
                while True:
                    if self.cancel.is_set():
                        return
                    if self.pause.is_set():
                        self.ready_cond.wait(0.1)
                        continue
                    if self.ready:
                        break
                    if self.in_flight == 0:
                        self.ready_cond.notify_all()
                        return
                    self.ready_cond.wait(0.1)
                chunk = [self.ready.popleft() for _ in range(min(self.chunk_size, len(self.ready)))]
                self.started_ids.update(row.identity for row in chunk)
                self.in_flight += 1
            try:
                self.process(chunk)
            except _FatalStop as stop:
                with self.lock:
                    self.fatal = self.fatal or str(stop)
                self.cancel.set()
            except Exception as exc:  # noqa: BLE001 - an engine bug must stop the run cleanly
                with self.lock:
                    self.fatal = self.fatal or f"internal error: {_err_text(exc)}"
                self.cancel.set()
            finally:
                with self.ready_cond:
                    self.in_flight -= 1
                    self.ready_cond.notify_all()

    def unsettled_rows(self) -> int:
        """Rows of this run that did not end verified (failed, unverified, interrupted, stale)."""
        with self.lock:
            return sum(self.counts.get(k, 0) for k in ("failed", "applied_unverified", "interrupted", "stale"))

    def run_wave(self, rows: list[PlanRow]) -> None:
        """Work through `rows` with the worker threads until they are all settled (or cancelled)."""
        self.queue.extend(_chunks(rows, self.chunk_size))
        threads = [threading.Thread(target=self.worker, name=f"exocm-apply-{i}", daemon=True)
                   for i in range(min(self.workers, max(1, len(self.queue))))]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            try:
                time.sleep(0.05)  # not Thread.join: an interrupt inside join() can corrupt it (CPython < 3.13)
            except KeyboardInterrupt:  # run from a main thread: Ctrl-C cancels like the cancel event
                self.cancel.set()
        for t in threads:
            t.join()

    def next_chunk(self) -> list[PlanRow] | None:
        while self.pause.is_set() and not self.cancel.is_set():
            self.cancel.wait(0.1)
        if self.cancel.is_set():
            return None
        with self.lock:
            return self.queue.popleft() if self.queue else None

    def worker(self) -> None:
        while True:
            chunk = self.next_chunk()
            if chunk is None:
                return
            try:
                self.process(chunk)
            except _FatalStop as stop:
                with self.lock:
                    self.fatal = self.fatal or str(stop)
                self.cancel.set()
                return
            except Exception as exc:  # noqa: BLE001 - an engine bug must stop the run cleanly
                log.exception("apply: internal error in a worker; the run stops")
                with self.lock:
                    self.fatal = self.fatal or f"internal error: {_err_text(exc)} ({logs.where_to_look()})"
                self.cancel.set()
                return


def apply_plan(
    bridge: Bridge,
    plan: Plan,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    pause: threading.Event | None = None,
    data_dir: Path | None = None,
    journal_dir: Path | None = None,
    max_age: timedelta | None = DEFAULT_MAX_AGE,
    concurrency: int = 8,
    chunk_size: int = CHUNK_SIZE,
    actor: str | None = None,
    plan_path: str | Path | None = None,
    pacer: WritePacer | None = None,
    now: Now | None = None,
    monotonic: Monotonic = time.monotonic,
    sleep: Sleep | None = None,
    io: RowIO | None = None,
) -> ApplyResult:
    """Apply `plan` through `bridge`, journaling every outcome; see the module docstring.

    `cancel` (set = stop taking rows, settle the in-flight ones, return), `pause` (set =
    hold before the next chunk). Called from the main thread, Ctrl-C acts as `cancel`. `data_dir` defaults to config.data_dir(); journals go to
    `journal_dir` or data_dir/journals, locks to data_dir/locks. Raises ApplyRefused /
    PlanDigestError before anything is written.
    """
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    jdir = Path(journal_dir) if journal_dir is not None else journals_under(base)
    check_plan(plan, bridge.tenant, max_age=max_age, now=(now() if now else None))
    cancel = cancel or threading.Event()
    pause = pause or threading.Event()
    lock = PlanLock(base / "locks", plan.digest)
    run_id = new_run_id()
    lock.acquire(run_id)
    try:
        history = plan_history(plan.digest, jdir)
        journal = JournalWriter.create(
            plan_digest=plan.digest, tenant=plan.tenant, actor=actor or local_actor(),
            tool_version=tool_version(), directory=jdir, run_id=run_id,
            extra={"operation": plan.operation, "value": plan.value, "plan_kind": plan.kind,
                   "object_kind": plan.object_kind,
                   "bridge": getattr(bridge, "kind", "?"),
                   "plan_file": str(plan_path) if plan_path else None, "rows": len(plan.rows),
                   "resumed_from": [c.header.get("run_id") for c in history.journals if c.header],
                   "lock_taken_over_from": lock.stale_owner},
        )
        log.info("apply run %s started: plan %s (%s=%s, %d rows) on tenant %s over %s; journal %s%s", run_id,
                 plan.digest[:12], plan.operation, plan.value, len(plan.rows), plan.tenant,
                 getattr(bridge, "kind", "?"), journal.path.name,
                 f"; resuming {len(history.journals)} earlier run(s)" if history.journals else "")
        engine = _Engine(
            bridge, plan, journal, history, workers=concurrency, chunk_size=chunk_size,
            pacer=pacer or WritePacer(clock=monotonic), cancel=cancel, pause=pause,
            progress=progress or ignore_progress, monotonic=monotonic, sleep=sleep, io=io,
        )
        started = monotonic()
        try:
            engine.run()
        finally:
            elapsed = monotonic() - started
            cancelled = cancel.is_set() and engine.fatal is None
            counts = dict(engine.counts)
            summary = ApplyResult(
                run_id=run_id, journal_path=journal.path, plan_digest=plan.digest, tenant=plan.tenant,
                total=len(plan.rows), counts=counts, cancelled=cancelled, error=engine.fatal,
                elapsed_s=elapsed, rows_per_s=(engine.run_done / elapsed) if elapsed > 0 else 0.0,
                bridge_stats=engine.bridge_snapshot(), warnings=list(history.warnings),
            )
            if engine.stopped_between_waves:
                summary.warnings.append("stopped before the next nesting wave: a child group did not verify, so "
                                        "its parents were not converted; fix it and resume")
            if lock.stale_owner:
                summary.warnings.append(f"took over the lock of a run that is gone ({lock.stale_owner})")
            outcome = ("error" if engine.fatal else "cancelled" if cancelled
                       else "complete" if summary.complete else "incomplete")
            log.log(logging.WARNING if engine.fatal else logging.INFO,
                    "apply run %s ended %s in %.1f s: %s%s", run_id, outcome, elapsed,
                    ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v),
                    f"; error: {engine.fatal}" if engine.fatal else "")
            journal.append([{"type": "end", "outcome": outcome, "cancelled": cancelled, "error": engine.fatal,
                             "counts": counts,
                             "elapsed_s": round(elapsed, 3), "fsyncs": journal.fsyncs + 1}])
            journal.close()
    finally:
        lock.release()
    return summary


def pending_rows(plan: Plan, history: PlanHistory) -> list[PlanRow]:
    """Rows of the plan a rerun would still work on (set rows not yet verified by an earlier run)."""
    return [r for r in plan.rows if r.action == "set" and r.identity not in history.verified]


def confirmation_phrase(tenant: str, pending: int) -> str:
    """What the admin types to go ahead with an apply: the tenant and the number of rows still to change
    (`len(pending_rows(...))`: after a stopped run, only what the journals have not verified)."""
    return f"{tenant} {pending}"

