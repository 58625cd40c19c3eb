"""Scale-out: one job per tenant on a Redis queue (Dramatiq), run by `exocm worker` processes anywhere.

    broker = setup("redis://host:6379/0")          # same call on the enqueueing and the working side
    enqueue(broker, "findings", ["msp-1", "msp-2"])  # one message per tenant
    run_worker(broker, threads=2, stop=event)      # until `stop` is set

Delivery is Dramatiq's Redis broker: at least once. A message a worker has taken stays in that
worker's "acks" set until it finishes; when the worker dies (kill -9, lost machine) its heartbeat
stops and, `heartbeat_timeout_ms` later, the broker's maintenance puts the message back on the queue
for another worker (docs/architecture.md, "Many tenants and the queue").

Each job takes a per-tenant lock in Redis first (SET NX with a TTL, refreshed every TTL/3 while the
job runs, released at the end by its owner only): two workers never work on one tenant at once. A
job that finds its tenant locked is retried later (Dramatiq's Retries middleware, with backoff); a
dead holder's lock expires after its TTL. While a job runs, the lock refresher also renews the
worker's broker heartbeat (Dramatiq's consumer only beats when it fetches, and a worker whose
prefetch is full does not fetch), so a live worker's long apply is never handed to another worker.

A job whose plan is locked by a still-running apply (a worker that only looked dead) is retried
later too. An apply job is `tenants.apply_job`: it resumes from the plan's journals, so a job re-run after a
crash never writes a row the journal holds as verified, and re-reads each in-flight row before
writing it again (core/execute/apply.py). Results go to `<data dir>/queue/<kind>-<profile>.json`;
findings runs are kept in the findings history as a local run's are.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..access.config import ConfigError, data_dir, get_profile
from ..files import write_atomic
from .tenants import TenantOutcome, apply_job, findings_job, inventory_job, plan_for_profile, readiness_job

#: Job kinds a worker runs, by name: (profile, args) -> outcome.
JobFn = Callable[[str, dict[str, Any]], TenantOutcome]
KINDS: dict[str, JobFn] = {
    "findings": lambda name, args: findings_job(name, fail_on=str(args.get("fail_on", "high")),
                                                since=args.get("since")),
    "inventory": lambda name, args: inventory_job(name),
    "readiness": lambda name, args: readiness_job(name, scope=str(args.get("scope", "flip")),
                                                  fail_on=str(args.get("fail_on", "high"))),
    "apply": lambda name, args: apply_job(name, Path(str(args["plan"]))),
}
QUEUE_NAME = "exocm-tenants"
#: Defaults; `setup` takes others (tests make them short).
HEARTBEAT_TIMEOUT_MS = 60_000
LOCK_TTL_MS = 60_000
#: A tenant job may run this long before Dramatiq's TimeLimit stops it (a 100k-row apply takes hours).
TIME_LIMIT_MS = 24 * 3600 * 1000
MAX_RETRIES = 50


def register_kind(name: str, job: JobFn) -> None:
    """Make a job kind available to enqueue and workers (e.g. readiness, once it is a core job)."""
    KINDS[name] = job


class TenantBusy(Exception):
    """Another worker holds this tenant's lock; the job is retried later."""


@dataclass
class QueueSettings:
    """How the queue behaves; the same on every worker and enqueuer of one deployment."""

    url: str
    heartbeat_timeout_ms: int = HEARTBEAT_TIMEOUT_MS
    lock_ttl_ms: int = LOCK_TTL_MS
    time_limit_ms: int = TIME_LIMIT_MS
    max_retries: int = MAX_RETRIES
    min_backoff_ms: int = 1_000
    max_backoff_ms: int = 60_000
    #: Per million broker calls, how often a call also requeues dead workers' messages. Dramatiq's
    #: default (1,000) suits busy queues; a few idle workers polling once a second would take ~15 min
    #: to notice a dead one, so exocm asks for 10%: maintenance is cheap with one queue.
    maintenance_chance: int = 100_000


class TenantLock:
    """A per-tenant lock in Redis with a TTL, refreshed while held (see the module docstring)."""

    _RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
                "else return 0 end")
    _REFRESH = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
                "else return 0 end")

    def __init__(self, client: Any, tenant: str, *, ttl_ms: int, on_beat: Callable[[], None] | None = None,
                 profile: str = "") -> None:
        self.client = client
        self.key = f"exocm:tenant-lock:{tenant.lower()}"
        self.ttl_ms = ttl_ms
        self.token = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "id": uuid.uuid4().hex,
                                 "profile": profile})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_beat = on_beat

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock ({"pid", "host", "id"}), or None."""
        raw = self.client.get(self.key)
        return json.loads(raw) if raw else None

    def acquire(self) -> None:
        """Take the lock or raise TenantBusy."""
        if not self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            raise TenantBusy(f"tenant lock {self.key} is held by {self.holder()}")
        self._thread = threading.Thread(target=self._refresh, name="exocm-tenant-lock", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                self.client.eval(self._REFRESH, 1, self.key, self.token, self.ttl_ms)
                if self._on_beat is not None:
                    self._on_beat()
            except Exception:  # noqa: BLE001 - Redis away for a moment: the next beat tries again
                pass

    def release(self) -> None:
        """Stop refreshing and delete the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.client.eval(self._RELEASE, 1, self.key, self.token)


def results_dir() -> Path:
    """Where workers write each job's outcome."""
    return data_dir() / "queue"


def result_path(kind: str, profile: str) -> Path:
    """The latest outcome of job `kind` for `profile`."""
    return results_dir() / f"{kind}-{profile}.json"


def _write_result(kind: str, outcome: TenantOutcome, message_id: str, attempt: int) -> None:
    path = result_path(kind, outcome.profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"kind": kind, "profile": outcome.profile, "tenant": outcome.tenant, "status": outcome.status,
           "error": outcome.error, "counts": outcome.counts, "seconds": round(outcome.seconds, 3),
           "message_id": message_id, "attempt": attempt, "worker": {"pid": os.getpid(), "host": socket.gethostname()},
           "finished_at": datetime.now(UTC).isoformat(), "result": outcome.payload}
    write_atomic(path, (json.dumps(doc, default=str, indent=1) + "\n").encode("utf-8"))


@dataclass
class Queue:
    """The broker and the tenant actor of one deployment (from `setup`)."""

    broker: Any
    actor: Any
    settings: QueueSettings


def setup(settings: QueueSettings | str) -> Queue:
    """Connect to Redis and declare the tenant actor (the same on every worker and enqueuer)."""
    try:
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker
        from dramatiq.middleware import CurrentMessage
    except ImportError:
        raise ConfigError("the queue needs Dramatiq with Redis: pip install 'dramatiq[redis]'") from None
    if isinstance(settings, str):
        settings = QueueSettings(url=settings)
    options: dict[str, Any] = {"url": settings.url, "heartbeat_timeout": settings.heartbeat_timeout_ms,
                               "maintenance_chance": settings.maintenance_chance}
    broker = RedisBroker(**options)  # type: ignore[no-untyped-call]
    broker.add_middleware(CurrentMessage())
    dramatiq.set_broker(broker)

    def beat() -> None:
        # Dramatiq's Redis broker keeps worker liveness in the sorted set <namespace>:__heartbeats__
        # (dispatch.lua); renew ours while a job runs, as a fetch would.
        broker.client.zadd(f"{broker.namespace}:__heartbeats__", {broker.broker_id: int(time.time() * 1000)})

    def tenant_job(kind: str, profile: str, args: dict[str, Any]) -> None:
        job = KINDS.get(kind)
        if job is None:
            raise ConfigError(f"unknown job kind {kind!r}")
        message = CurrentMessage.get_current_message()
        message_id = str(message.message_id) if message is not None else ""
        attempt = int(message.options.get("retries", 0)) if message is not None else 0
        # The lock names the tenant, not the profile: two profiles of one tenant are one tenant.
        try:
            tenant = get_profile(profile).tenant
        except ConfigError:
            tenant = profile  # the job reports the missing profile itself
        lock = TenantLock(broker.client, tenant, ttl_ms=settings.lock_ttl_ms, on_beat=beat, profile=profile)
        lock.acquire()
        try:
            from ..execute.apply import PlanLocked
            from .tenants import run_one

            try:
                outcome = run_one(profile, lambda name: job(name, args), reraise=(PlanLocked,))
            except PlanLocked as exc:
                # The plan's own lock is held: a run this queue lost track of (its worker looked
                # dead but is not) still applies it. Retry later rather than fail the tenant.
                raise TenantBusy(str(exc)) from None
            _write_result(kind, outcome, message_id, attempt)
        finally:
            lock.release()

    def retry_when(retries: int, exc: BaseException) -> bool:
        return isinstance(exc, TenantBusy) and retries < settings.max_retries

    declare: Any = dramatiq.actor(
        actor_name="exocm_tenant_job", queue_name=QUEUE_NAME, broker=broker, max_retries=settings.max_retries,
        min_backoff=settings.min_backoff_ms, max_backoff=settings.max_backoff_ms,
        time_limit=settings.time_limit_ms, retry_when=retry_when)
    actor = declare(tenant_job)
    return Queue(broker, actor, settings)


def enqueue(queue: Queue, kind: str, profiles: Sequence[str], *, args: dict[str, Any] | None = None,
            plans: str | Path | None = None) -> list[str]:
    """Put one `kind` job per profile on the queue; returns the message ids. For "apply", `plans`
    is the directory (or {profile} pattern) of the saved plans, one per profile."""
    if kind not in KINDS:
        raise ConfigError(f"unknown job kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    from redis.exceptions import RedisError

    ids: list[str] = []
    try:
        _send_all(queue, kind, profiles, args, plans, ids)
    except (RedisError, ConnectionError) as exc:
        where = queue.settings.url.split("@")[-1]
        raise ConfigError(f"cannot reach the queue's Redis at {where}: {exc} ({len(ids)} of {len(profiles)} "
                          "jobs were queued)") from None
    return ids


def _send_all(queue: Queue, kind: str, profiles: Sequence[str], args: dict[str, Any] | None,
              plans: str | Path | None, ids: list[str]) -> None:
    for profile in profiles:
        job_args = dict(args or {})
        if kind == "apply":
            if plans is None:
                raise ConfigError("apply jobs need the plans' directory")
            plan = plan_for_profile(plans, profile).resolve()
            if not plan.is_file():
                raise ConfigError(f"no plan for profile {profile!r} at {plan}")
            job_args["plan"] = str(plan)
        message = queue.actor.send(kind, profile, job_args)
        ids.append(str(message.message_id))


def run_worker(queue: Queue, *, threads: int = 2, stop: threading.Event | None = None) -> None:
    """Work on tenant jobs until `stop` is set (or forever); each thread runs one tenant at a time."""
    import dramatiq

    stop = stop or threading.Event()
    # Prefetch one message per thread (Dramatiq's default is two): a tenant job runs for minutes,
    # and a message waiting in one worker's prefetch is a tenant another, idle worker cannot take.
    worker = dramatiq.Worker(queue.broker, worker_threads=threads, worker_timeout=1000)
    worker.queue_prefetch = threads  # read when the consumers start (dramatiq/worker.py)
    worker.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        worker.stop()


def read_result(kind: str, profile: str, *, after: datetime | None = None) -> TenantOutcome | None:
    """The latest outcome a worker wrote for (`kind`, `profile`), if it finished after `after`."""
    path = result_path(kind, profile)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    finished = datetime.fromisoformat(str(doc.get("finished_at")))
    if after is not None and finished <= after:
        return None
    outcome = TenantOutcome(profile, str(doc.get("status", "error")), dict(doc.get("result") or {}),
                            dict(doc.get("counts") or {}), doc.get("error"), float(doc.get("seconds", 0.0)),
                            str(doc.get("tenant", "")))
    return outcome


def wait_results(kind: str, profiles: Sequence[str], *, after: datetime, timeout_s: float,
                 poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> dict[str, TenantOutcome]:
    """Wait until every profile's job of `kind` has a result newer than `after` (or `timeout_s`
    passed: those still missing are "error" outcomes saying so)."""
    deadline = clock() + timeout_s
    found: dict[str, TenantOutcome] = {}
    while True:
        for name in profiles:
            if name not in found:
                outcome = read_result(kind, name, after=after)
                if outcome is not None:
                    found[name] = outcome
        if len(found) == len(profiles) or clock() >= deadline:
            break
        sleep(poll_s)
    for name in profiles:
        if name not in found:
            found[name] = TenantOutcome(name, "error", error=f"no result within {timeout_s:.0f} s (still queued "
                                                            "or running; see <data dir>/queue/ later)")
    return {name: found[name] for name in profiles}
