"""An adaptive concurrency limit (AIMD) shared by every caller of one tenant.

Exchange Online throttles per tenant (concurrent requests, then 429 with Retry-After).
Additive increase, multiplicative decrease: halve the limit on a throttle, add one after
`limit` successes in a row (about one round of requests), bounded to [min, max]. A burst
of 429s from requests that were all in flight at the same time halves only once: a
throttle counts only when its request started after the last decrease.

A refusal that names the tenant's concurrency limit ("maximum number of concurrent
requests", `at_limit`) says more than a throttle: the request was the `level`-th in flight,
so the tenant allows fewer. The limit is then set just under that level (not halved) and
kept as a *ceiling*: successes grow the limit back to it, but not beyond it before
`hold_rounds` rounds of successes have passed, so the limiter settles at the tenant's limit
and probes past it rarely (each probe costs one 429).

Until the first refusal or throttle, the limit grows faster: one more slot after each success of
a saturated limit (TCP's slow start, RFC 5681 section 3.1), so a parallel read reaches the
tenant's limit within a round trip or two instead of one round per step; the first refusal
ends that phase for good.

Waiting callers are served in order of `request_priority` (lowest first, then first come): a
partitioned read marks each request with how many pages its partition has read, so partitions
advance together and end together instead of leaving a tail of a few partitions paging alone.
"""
from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

#: Where a new limiter starts when its bound is larger: the limit is found by growing from here.
START_LIMIT = 8

#: The priority of the requests this thread sends next: lower is served first (see `priority`).
_PRIORITY: ContextVar[int] = ContextVar("exocm_request_priority", default=0)


@contextmanager
def request_priority(value: int) -> Iterator[None]:
    """Requests sent by this thread inside the block wait for a slot with priority `value`."""
    token = _PRIORITY.set(value)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


@dataclass(frozen=True)
class Ticket:
    """A held slot; `epoch` is the limiter's decrease epoch when the slot was taken."""

    epoch: int
    #: Slots held when this one was taken, itself included.
    level: int = 0


class AdaptiveLimiter:
    """AIMD concurrency limiter; thread-safe."""

    def __init__(self, max_limit: int, *, min_limit: int = 1, initial: int | None = None,
                 hold_rounds: int = 30) -> None:
        if max_limit < 1:
            raise ValueError("max_limit must be >= 1")
        self.max_limit = max_limit
        self.min_limit = max(1, min(min_limit, max_limit))
        self._limit = max(self.min_limit, min(initial or max_limit, max_limit))
        self._in_flight = 0
        self._epoch = 0
        self._successes = 0
        self._cond = threading.Condition()
        self.peak_in_flight = 0
        self.decreases = 0
        self.increases = 0
        self.hold_rounds = hold_rounds
        #: From this limit up, only successes of slots taken at the limit count towards growing it.
        self.grow_idle_below = START_LIMIT
        self._saturated = False  # every slot was in use at some point since the last increase
        self.ceiling: int | None = None  # the most the tenant allowed when it last refused one more
        self._held = 0  # successes at the ceiling since then
        self.slow_start = True  # until the first refusal or throttle (module docstring)
        self._waiting: list[tuple[int, int]] = []  # heap of (priority, arrival) of blocked callers
        self._arrivals = itertools.count()

    @property
    def limit(self) -> int:
        """The current limit."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Slots held right now."""
        return self._in_flight

    def acquire(self, timeout: float | None = None) -> Ticket:
        """Block until a slot is free; TimeoutError after `timeout` seconds. Blocked callers get
        slots in order of their `request_priority`, then of arrival."""
        with self._cond:
            if self._in_flight >= self._limit or self._waiting:
                entry = (_PRIORITY.get(), next(self._arrivals))
                heapq.heappush(self._waiting, entry)
                try:
                    if not self._cond.wait_for(lambda: self._in_flight < self._limit and self._waiting[0] == entry,
                                               timeout=timeout):
                        raise TimeoutError("no concurrency slot became free")
                finally:
                    self._waiting.remove(entry)
                    heapq.heapify(self._waiting)
                    self._cond.notify_all()  # the next in line may fit too
            self._in_flight += 1
            if self._in_flight >= self._limit:
                self._saturated = True
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            return Ticket(self._epoch, self._in_flight)

    def release(self, ticket: Ticket, *, throttled: bool = False, success: bool = True,
                at_limit: bool = False) -> None:
        """Give the slot back and adapt: halve on a throttle, just under the refused level when
        the tenant's concurrency limit refused it (`at_limit`), +1 after `limit` successes."""
        with self._cond:
            self._in_flight -= 1
            if at_limit or throttled:
                self.slow_start = False
            if at_limit:
                self._successes = 0
                if ticket.epoch == self._epoch:
                    level = ticket.level or self._limit
                    self._limit = max(self.min_limit, min(self._limit - 1, level - 1))
                    self.ceiling = self._limit
                    self._held = 0
                    self._epoch += 1
                    self.decreases += 1
            elif throttled:
                self._successes = 0
                if ticket.epoch == self._epoch:
                    self._limit = max(self.min_limit, self._limit // 2)
                    self._epoch += 1
                    self.decreases += 1
            elif success:
                if self._limit >= self.grow_idle_below and not self._saturated:
                    # successes while the limit was never all in use say nothing about a higher one
                    # (RFC 7661: grow only a window in use); else idle sequential calls would raise
                    # the limit to the ceiling and the next parallel burst would meet 429s
                    self._cond.notify_all()
                    return
                self._successes += 1
                if self.slow_start and self._saturated:
                    self._successes = self._limit  # one more slot per success (module docstring)
                if self.ceiling is not None and self._limit >= self.ceiling:
                    self._held += 1
                    if self._held < self.hold_rounds * max(1, self._limit):
                        self._successes = min(self._successes, self._limit - 1)  # hold at the ceiling
                    else:
                        self.ceiling = None  # long enough: probe one above
                if self._successes >= self._limit and self._limit < self.max_limit:
                    self._limit += 1
                    self._successes = 0
                    self._saturated = False
                    self.increases += 1
            self._cond.notify_all()

    @contextmanager
    def slot(self) -> Iterator[Ticket]:
        """Hold a slot for the duration of a `with` block (counted as a success)."""
        ticket = self.acquire()
        try:
            yield ticket
        finally:
            self.release(ticket)

    def resize(self, max_limit: int) -> None:
        """Change the upper bound; a larger bound starts at it, a smaller one clamps the limit."""
        if max_limit < 1:
            raise ValueError("max_limit must be >= 1")
        with self._cond:
            grow = max_limit > self.max_limit
            self.max_limit = max_limit
            self.min_limit = min(self.min_limit, max_limit)
            self._limit = max_limit if grow else min(self._limit, max_limit)
            self._cond.notify_all()

    def snapshot(self) -> dict[str, Any]:
        """Current limit and counters, for progress displays and benchmarks."""
        with self._cond:
            return {"limit": self._limit, "max_limit": self.max_limit, "in_flight": self._in_flight,
                    "peak_in_flight": self.peak_in_flight, "decreases": self.decreases,
                    "increases": self.increases, "ceiling": self.ceiling}


_registry: dict[tuple[str, str], AdaptiveLimiter] = {}
_registry_lock = threading.Lock()


#: The bridges' default bound: above any tenant limit seen (EXO's is not published; the sandbox
#: models 10), so the limiter finds the tenant's own limit instead of stopping short of it.
DEFAULT_MAX_CONCURRENCY = 16


def limiter_for(endpoint: str, tenant: str, max_limit: int) -> AdaptiveLimiter:
    """The process-wide limiter of one tenant at one endpoint (created on first use).

    Every bridge to the same tenant shares it, so parallel callers (inventory partitions,
    apply workers) stay within the tenant's budget together. A bridge asking for another
    bound resizes the shared limiter.
    """
    key = (endpoint.lower().rstrip("/"), tenant.lower())
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = AdaptiveLimiter(max_limit, initial=min(max_limit, START_LIMIT))
            _registry[key] = limiter
        elif limiter.max_limit != max_limit:
            limiter.resize(max_limit)
        return limiter


def forget_limiters() -> None:
    """Drop every shared limiter (tests)."""
    with _registry_lock:
        _registry.clear()
