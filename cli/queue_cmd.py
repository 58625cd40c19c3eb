"""`exocm enqueue` and `exocm worker`: one job per tenant on a Redis queue, run by workers anywhere.

    exocm enqueue findings --all-profiles --redis redis://queue-host:6379/0
    exocm enqueue apply plans/ --profiles a,b --redis ...      (plans/<profile>.json, from plan -o DIR)
    exocm worker --redis redis://queue-host:6379/0 --threads 2  (on each machine; SIGTERM stops it)

Workers write each job's outcome to <data dir>/queue/<kind>-<profile>.json (the data dir must be
shared storage when workers run on several machines: journals, locks, plans and history live there).
The queue logic is core's (exocm.core.app.queue); this module only parses and prints.
"""
from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import click
from exocm.core.access.config import ConfigError
from exocm.core.app.queue import KINDS, QueueSettings, enqueue, run_worker, setup
from exocm.core.app.tenants import profile_names

from .errors import fail, handle_errors
from .stop_signals import on_stop_signals

REDIS_ENV = "EXOCM_REDIS_URL"


def _settings(redis_url: str | None, heartbeat_ms: int, lock_ttl_ms: int, max_backoff_ms: int,
              maintenance_chance: int) -> QueueSettings:
    if not redis_url:
        fail(f"name the Redis server: --redis redis://HOST:6379/0 (or {REDIS_ENV})")
    return QueueSettings(url=redis_url, heartbeat_timeout_ms=heartbeat_ms, lock_ttl_ms=lock_ttl_ms,
                         max_backoff_ms=max_backoff_ms, maintenance_chance=maintenance_chance)


_COMMON = [
    click.option("--redis", "redis_url", envvar=REDIS_ENV, default=None, metavar="URL",
                 help=f"Redis URL of the queue (env {REDIS_ENV})."),
    click.option("--heartbeat-timeout-ms", "heartbeat_ms", type=click.IntRange(1000), default=60_000,
                 show_default=True, help="A worker silent this long is dead: its job goes to another worker."),
    click.option("--lock-ttl-ms", "lock_ttl_ms", type=click.IntRange(1000), default=60_000, show_default=True,
                 help="TTL of a tenant lock (refreshed while the job runs; a dead holder's expires)."),
    click.option("--max-backoff-ms", "max_backoff_ms", type=click.IntRange(100), default=60_000,
                 show_default=True, help="Longest wait before retrying a job whose tenant is busy."),
    click.option("--maintenance-chance", "maintenance_chance", type=click.IntRange(1, 1_000_000), default=100_000,
                 show_default=True, help="Per million queue calls: how often one also requeues dead workers' jobs."),
]


def _common(func: Any) -> Any:
    for option in reversed(_COMMON):
        func = option(func)
    return func


@click.command("enqueue")
@click.argument("kind", type=click.Choice(sorted(KINDS)))
@click.argument("plans", required=False, type=click.Path(path_type=Path))
@click.option("--profiles", "profiles", metavar="A,B,..", default=None, help="These profiles (tenants).")
@click.option("--all-profiles", "all_profiles", is_flag=True, help="Every configured profile.")
@click.option("--since", default=None, metavar="last|TIME|RUN", help="findings: compare with an earlier run.")
@click.option("--wait", "wait_s", type=click.IntRange(1), default=None, metavar="SECONDS",
              help="Wait up to SECONDS for every tenant's result, print the summary per tenant and exit "
                   "with the worst tenant's code (as a tenant set run in one process would).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="With --wait: the summary table, or {\"tenants\": {PROFILE: ...}}.")
@_common
@handle_errors
def enqueue_cmd(kind: str, plans: Path | None, profiles: str | None, all_profiles: bool, since: str | None,
                wait_s: int | None, fmt: str, redis_url: str | None, heartbeat_ms: int, lock_ttl_ms: int,
                max_backoff_ms: int, maintenance_chance: int) -> None:
    """Put one KIND job per tenant on the queue (apply: PLANS is the directory `plan -o DIR` wrote)."""
    if not (profiles or all_profiles):
        raise click.UsageError("name the tenants: --profiles A,B or --all-profiles")
    if (kind == "apply") != (plans is not None):
        raise click.UsageError("apply takes the plans' directory (PLANS); other kinds take none")
    names = profile_names(profiles, all_profiles=all_profiles)
    queue = setup(_settings(redis_url, heartbeat_ms, lock_ttl_ms, max_backoff_ms, maintenance_chance))
    queued_at = datetime.now(UTC)
    ids = enqueue(queue, kind, names, args={"since": since} if since else None, plans=plans)
    for name, message_id in zip(names, ids, strict=True):
        click.echo(f"{message_id}  {kind}  {name}", err=wait_s is not None)
    click.echo(f"exocm: {len(ids)} {kind} jobs queued; workers write results to <data dir>/queue/", err=True)
    if wait_s is not None:
        from exocm.core.app.queue import wait_results

        from .tenant_set import present

        present(wait_results(kind, names, after=queued_at, timeout_s=wait_s), fmt, None)


@click.command("worker")
@click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Tenants this worker works on at once.")
@_common
@handle_errors
def worker_cmd(threads: int, redis_url: str | None, heartbeat_ms: int, lock_ttl_ms: int, max_backoff_ms: int,
               maintenance_chance: int) -> None:
    """Run tenant jobs from the queue until Ctrl-C or SIGTERM (start one per machine, or several)."""
    settings = _settings(redis_url, heartbeat_ms, lock_ttl_ms, max_backoff_ms, maintenance_chance)
    try:
        queue = setup(settings)
    except ConfigError as exc:
        fail(str(exc))
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    click.echo(f"exocm worker: {threads} threads on {settings.url.split('@')[-1]}", err=True)
    try:
        with on_stop_signals(on_term):
            run_worker(queue, threads=threads, stop=stop)
    except KeyboardInterrupt:
        pass
    click.echo("exocm worker: stopped", err=True)
