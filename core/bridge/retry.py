"""Retry timing: exponential backoff with full jitter, honouring the service's Retry-After.

Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): wait a uniform
random time in [0, min(cap, base * 2**attempt)]. When the service names a Retry-After,
wait exactly that long (bounded by `max_retry_after_s`). Sleep and clock are injectable
so tests never really sleep.
"""
from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; `max_attempts` counts the first try."""

    max_attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 30.0
    max_retry_after_s: float = 120.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (1 = first retry)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after_s)
        ceiling = min(self.cap_s, self.base_s * (2 ** max(attempt - 1, 0)))
        return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = now() if now else datetime.now(UTC)
        return max((when - current).total_seconds(), 0.0)
    return seconds if seconds >= 0 else None


@dataclass
class Backoff:
    """A retry policy bound to a sleep function and a random source; records every wait."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    waits: list[float] = field(default_factory=list)

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Sleep before retry `attempt`; returns the seconds slept."""
        seconds = self.policy.delay(attempt, retry_after, self.rng)
        self.waits.append(seconds)
        if seconds > 0:
            self.sleep(seconds)
        return seconds

    def gives_up(self, attempt: int) -> bool:
        """True when `attempt` tries have been used up."""
        return attempt >= self.policy.max_attempts
