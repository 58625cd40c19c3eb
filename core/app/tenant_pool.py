"""A tenant set across processes: one Python process runs one thread at a time, so a large tenant
set spreads its tenants over worker processes, about one per core, each working on a few tenants in
threads (20 tenants of 5,000 mailboxes cost ~0.3 s of CPU each: in one process they take ~6 s however
many cores there are).

Linux only: the workers are forked, so the job (a closure over the command's options) is inherited
rather than pickled; elsewhere, and for small sets, `run_tenants` keeps to threads. The workers take
tenants from one queue (a big tenant does not hold up a fixed share of the others), and send each
outcome back through a pipe as it ends; a worker that dies leaves its unfinished tenants as
"error" outcomes, never missing ones. Ctrl-C reaches the workers too: each sets the jobs' cancel
event (applies settle their writes in flight) and ends; the parent waits for them, then re-raises.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tenants import TenantOutcome

#: A set smaller than this stays in one process (forking costs more than it saves).
MIN_TENANTS_FOR_PROCESSES = 4
#: How long Ctrl-C waits for the workers to settle their writes in flight and end.
SETTLE_S = 120.0


def can_fork() -> bool:
    """True where the tenant pool may fork workers (Linux)."""
    return sys.platform == "linux" and hasattr(os, "fork")


def default_processes(count: int) -> int:
    """Worker processes for `count` tenants: one per core, at least two tenants each; 1 (threads
    only) for small sets or where workers cannot be forked."""
    if not can_fork() or count < MIN_TENANTS_FOR_PROCESSES:
        return 1
    return max(1, min(os.cpu_count() or 1, count // 2))


def processes_for(count: int, requested: int | None) -> int:
    """The worker processes a set of `count` tenants runs in: `requested` (None: the default), at
    most one per tenant, and 1 where workers cannot be forked."""
    if requested is None:
        return default_processes(count)
    return max(1, min(requested, count)) if can_fork() else 1


def run_in_processes(names: Sequence[str], job: Callable[[str], TenantOutcome], *, processes: int,
                     threads: int, on_done: Callable[[TenantOutcome], None] | None,
                     cancel: threading.Event | None) -> dict[str, TenantOutcome]:
    """Run `job` for each of `names` in `processes` forked workers of `threads` threads each; the
    outcomes in the order of `names`."""
    from .tenants import TenantOutcome

    context: Any = multiprocessing.get_context("fork")  # typed loosely: Windows stubs have no fork context
    todo = context.SimpleQueue()
    workers: list[tuple[Any, Connection]] = []
    for _ in range(processes):
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(target=_worker, args=(todo, writer, job, threads, cancel), daemon=True)
        process.start()
        writer.close()
        workers.append((process, reader))
    # the queue is a pipe: fed once the workers read it (thousands of names fill its buffer)
    feeder = threading.Thread(target=_feed, args=(todo, names, processes * threads), daemon=True)
    feeder.start()
    outcomes: dict[str, TenantOutcome] = {}
    forwarded = False
    try:
        readers = [reader for _, reader in workers]
        while readers:
            if cancel is not None and cancel.is_set() and not forwarded:
                _interrupt(workers)  # a stop signal reached this process only: the workers settle too
                forwarded = True
            for ready in wait(readers, timeout=0.2):
                assert isinstance(ready, Connection)
                try:
                    outcome = ready.recv()
                except EOFError:
                    readers.remove(ready)
                    continue
                outcomes[outcome.profile] = outcome
                if on_done is not None:
                    on_done(outcome)
        for process, _ in workers:
            process.join()
    except KeyboardInterrupt:
        if cancel is not None:
            cancel.set()
        _interrupt(workers)
        _settle([process for process, _ in workers])
        raise
    codes = sorted({str(process.exitcode) for process, _ in workers if process.exitcode})
    for name in names:
        if name not in outcomes:
            outcomes[name] = TenantOutcome(name, "error", error="the worker process running this tenant ended "
                                                             f"before it finished (exit code {', '.join(codes) or '?'})")
    return {name: outcomes[name] for name in names}


def _feed(todo: Any, names: Sequence[str], ends: int) -> None:
    """Put every name, then one end mark per worker thread."""
    for name in names:
        todo.put(name)
    for _ in range(ends):
        todo.put(None)


def _settle(processes: Sequence[Any]) -> None:
    """Wait up to SETTLE_S for the workers to end; a second Ctrl-C does not cut the settling short
    (as for one tenant's apply)."""
    deadline = time.monotonic() + SETTLE_S
    for process in processes:
        while process.is_alive() and time.monotonic() < deadline:
            try:
                process.join(0.2)
            except KeyboardInterrupt:
                pass


def _interrupt(workers: Sequence[tuple[Any, Connection]]) -> None:
    """SIGINT to every worker still running (each then settles its tenants' writes and ends)."""
    for process, _ in workers:
        if process.is_alive() and process.pid is not None:
            try:
                os.kill(process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass


def _worker(todo: Any, out: Connection, job: Callable[[str], TenantOutcome], threads: int,
            cancel: threading.Event | None) -> None:
    """A forked worker: `threads` threads take tenants from `todo` until its end marks, and send
    each outcome through `out`."""
    from .tenants import TenantOutcome, run_one

    sending = threading.Lock()
    stop = cancel if cancel is not None else threading.Event()
    # Ctrl-C (or the parent's forwarded SIGINT) is the jobs' own stop signal: applies settle their
    # writes in flight. A handler, not KeyboardInterrupt: a second signal cannot cut the settling short.
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())

    def loop() -> None:
        while not stop.is_set():
            name = todo.get()
            if name is None:
                return
            outcome = run_one(name, job)
            try:
                with sending:
                    out.send(outcome)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an outcome that cannot be pickled
                with sending:
                    out.send(TenantOutcome(name, "error", error=f"its outcome could not be sent back ({exc})"))

    pool = [threading.Thread(target=loop, name=f"exocm-tenant-{k}", daemon=True) for k in range(threads)]
    for thread in pool:
        thread.start()
    try:
        for thread in pool:
            thread.join()
    finally:
        out.close()
