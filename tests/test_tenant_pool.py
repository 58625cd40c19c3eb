"""A tenant set spread over forked worker processes (core/app/tenant_pool.py): every tenant ends
exactly once, in the order given, through more than one process; a failing tenant and a dying
worker become error outcomes of their own tenants while the others complete."""
from __future__ import annotations

import os
import time

import pytest
from exocm.core.app.tenant_pool import MIN_TENANTS_FOR_PROCESSES, can_fork, default_processes
from exocm.core.app.tenants import TenantOutcome, run_tenants

pytestmark = pytest.mark.skipif(not can_fork(), reason="worker processes are forked on Linux only")

NAMES = [f"t-{k}" for k in range(1, 9)]


def _job(name: str) -> TenantOutcome:
    time.sleep(0.05)  # long enough for both workers to take tenants
    if name == "t-3":
        raise ValueError("this tenant's plan is refused")
    if name == "t-6":
        os._exit(9)  # the worker process dies mid-tenant
    return TenantOutcome(name, "ok", {"pid": os.getpid()}, {"mailboxes": int(name[2:])})


def test_tenants_spread_over_processes_each_ends_once_in_order() -> None:
    seen: list[str] = []
    # one thread per worker: the dying worker has no other tenant in flight to lose with t-6
    outcomes = run_tenants(NAMES, _job, parallel=2, processes=2, on_done=lambda o: seen.append(o.profile))
    assert list(outcomes) == NAMES
    ok = {name: o for name, o in outcomes.items() if o.status == "ok"}
    assert set(ok) == set(NAMES) - {"t-3", "t-6"}
    assert all(o.counts == {"mailboxes": int(name[2:])} for name, o in ok.items())
    assert len({o.payload["pid"] for o in ok.values()} | {os.getpid()}) >= 2  # not this process alone
    assert outcomes["t-3"].status == "error" and "refused" in str(outcomes["t-3"].error)
    assert outcomes["t-6"].status == "error" and "worker process" in str(outcomes["t-6"].error)
    assert sorted(seen) == sorted(set(NAMES) - {"t-6"})  # each finished tenant reported once, as it ended


def test_small_sets_stay_in_one_process() -> None:
    assert default_processes(MIN_TENANTS_FOR_PROCESSES - 1) == 1
    assert default_processes(100) == max(1, min(os.cpu_count() or 1, 50))
    outcomes = run_tenants(["a", "b"], lambda name: TenantOutcome(name, "ok", {"pid": os.getpid()}))
    assert {o.payload["pid"] for o in outcomes.values()} == {os.getpid()}


def test_thousands_of_tenants_pass_through_the_queue() -> None:
    names = [f"customer-{k:05d}" for k in range(5000)]  # more names than a pipe's buffer holds
    outcomes = run_tenants(names, lambda name: TenantOutcome(name, "ok"), parallel=4, processes=2)
    assert list(outcomes) == names and all(o.status == "ok" for o in outcomes.values())
