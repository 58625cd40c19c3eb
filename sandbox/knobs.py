"""Knobs that make the sandbox misbehave the way Exchange Online does under load.

All of them can be changed while the sandbox runs (tests flip them between calls):
- latency: fixed milliseconds plus uniform jitter in [-jitter, +jitter]: the service time of every
  EXO REST / Graph request (the token endpoint answers at once). A read is answered that long
  after it arrived, its answer built within that time (`FaultDice.service_time`); a write is
  applied after it. Variant `build-after-latency` builds reads after it too
  (docs/exchange-facts.md, "A read's page is built within its latency");
- concurrency limit: in-flight InvokeCommand/$batch requests per tenant; one more gets 429
  with EXO's "maximum number of concurrent requests per tenant" body (docs/exchange-facts.md#throttling);
- batch item cost: each `$batch` item runs for `batch_item_ms` (None: the same as one
  request's latency) inside the batch's slot, one item after another, so a batch saves
  round trips, not server work (the reasoning and what is unknown: docs/exchange-facts.md,
  "Cost of a $batch and of WinRM requests");
- write budget: a token bucket of R writes per second (burst R, at least 1); a write beyond
  it gets 429 with Retry-After (whole seconds, at least 1);
- faults at a rate per request, drawn from one seeded RNG: "500", "503" (with Retry-After on
  about half of them), "reset" (socket closed with a TCP RST, no response), "timeout" (the
  request is run, then held `fault_timeout_s` seconds and closed without a response; the
  write may have landed, as when a real client times out), "applied-error" (a write runs,
  then the answer is an error whose message is EMPTY: the GA quirk of
  Set-Mailbox -IsExchangeCloudManaged, see docs/exchange-facts.md#applied-but-errored).
"""
from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: Microsoft Graph application permissions the sandbox app holds by default (admin-consented);
#: `Knobs.graph_roles` replaces the list (tests drop one to see the 403). Names are Graph's
#: (Microsoft Graph permissions reference; the SOA ones from `onpremisessyncbehavior-update`).
GRAPH_APP_ROLES: tuple[str, ...] = (
    "Directory.Read.All", "Group.Read.All", "GroupMember.Read.All", "OrgContact.Read.All", "User.Read.All",
    "Group.ReadWrite.All", "GroupMember.ReadWrite.All", "LicenseAssignment.ReadWrite.All",
    "Group-OnPremisesSyncBehavior.ReadWrite.All", "Contacts-OnPremisesSyncBehavior.ReadWrite.All",
    "User-OnPremisesSyncBehavior.ReadWrite.All",
    # Reading Cloud Sync jobs (Graph "List synchronizationJobs": Synchronization.Read.All; cloudsync.py).
    "Synchronization.Read.All",
)

#: Fault kinds accepted by --fault KIND=RATE.
FAULT_KINDS: tuple[str, ...] = ("500", "503", "reset", "timeout", "applied-error")
#: Faults that hit a request before (or instead of) its answer, in draw order.
TRANSPORT_FAULTS: tuple[str, ...] = ("500", "503", "reset", "timeout")


def parse_fault(spec: str) -> tuple[str, float]:
    """Parse `KIND=RATE` (rate in 0..1) into a (kind, rate) pair; ValueError names the kinds."""
    kind, sep, rate_text = spec.partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in FAULT_KINDS:
        raise ValueError(f"bad fault {spec!r}: expected KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}")
    rate = float(rate_text)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"bad fault rate {rate_text!r}: expected a number between 0 and 1")
    return kind, rate


def validate_faults(faults: dict[str, float] | None) -> dict[str, float]:
    """Check a kind->rate mapping and return a copy."""
    out: dict[str, float] = {}
    for kind, rate in (faults or {}).items():
        k, r = parse_fault(f"{kind}={rate}")
        out[k] = r
    return out


@dataclass
class Knobs:
    """Runtime-mutable behaviour of one sandbox (plain attributes; assign to change them)."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    #: Server time of one `$batch` item; None = latency_ms (the service time of one request).
    batch_item_ms: float | None = None
    concurrency_limit: int | None = None
    write_budget: float | None = None
    faults: dict[str, float] = field(default_factory=dict)
    fault_timeout_s: float = 30.0
    token_lifetime_s: int = 3600
    #: Seconds a paging cursor lives after its last use.
    cursor_ttl_s: float = 600.0
    #: When set, @odata.nextLink points at this base URL instead of the sandbox's own
    #: (hostile-service tests: a client must refuse to send its token elsewhere).
    next_link_base_url: str | None = None
    #: Conformance variants in force (variants.py); the tenant model holds the same set.
    variants: frozenset[str] = field(default_factory=frozenset)
    #: Graph app roles put in tokens issued from now on (and granted to delegated sign-ins);
    #: None = GRAPH_APP_ROLES. Tokens already issued keep the roles they carry.
    graph_roles: list[str] | None = None
    #: Transport faults of the Graph front (same kinds and rates as `faults`, drawn from the same
    #: seeded dice); separate so EXO fault tests do not disturb Graph callers. Empty = none.
    graph_faults: dict[str, float] = field(default_factory=dict)
    #: Milliseconds of service time per item of a Graph $batch, spent inside the batch's
    #: concurrency slot (0: items cost nothing beyond the batch's latency; the service's real
    #: cost per item is not public, see docs/exchange-facts.md).
    graph_batch_item_ms: float = 0.0

    def delay_s(self, rng: random.Random) -> float:
        """The latency to add to one request, in seconds."""
        base = self.latency_ms
        if self.latency_jitter_ms:
            base += rng.uniform(-self.latency_jitter_ms, self.latency_jitter_ms)
        return max(0.0, base) / 1000.0

    def reads_within_latency(self) -> bool:
        """Whether a read's answer is built within its latency (the default) rather than after it."""
        return "build-after-latency" not in self.variants

    def batch_item_s(self) -> float:
        """Server time of one `$batch` item, in seconds (default: one request's latency)."""
        ms = self.latency_ms if self.batch_item_ms is None else self.batch_item_ms
        return max(0.0, ms) / 1000.0


class FaultDice:
    """One seeded RNG shared by all request threads (draws are serialised by a lock)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def transport_fault(self, faults: dict[str, float]) -> str | None:
        """Draw once for this request: the transport fault to inject, or None."""
        if not faults:
            return None
        with self._lock:
            u = self._rng.random()
        cumulative = 0.0
        for kind in TRANSPORT_FAULTS:
            cumulative += faults.get(kind, 0.0)
            if u < cumulative:
                return kind
        return None

    def chance(self, rate: float) -> bool:
        """True with probability `rate`."""
        if rate <= 0.0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def latency(self, knobs: Knobs) -> float:
        """The latency for one request, in seconds."""
        with self._lock:
            return knobs.delay_s(self._rng)

    @contextmanager
    def service_time(self, knobs: Knobs, *, read: bool) -> Iterator[None]:
        """One request's latency around the block that answers it (docs/exchange-facts.md, "A read's
        page is built within its latency"): a read is built inside it, the block's end waiting out
        what is left (a build longer than the latency is answered at once); anything else (a write,
        a $batch, or any request under variant build-after-latency) waits all of it first."""
        delay = self.latency(knobs)
        within = read and knobs.reads_within_latency()
        started = time.monotonic()
        if delay and not within:
            time.sleep(delay)
        yield
        left = delay - (time.monotonic() - started) if delay and within else 0.0
        if left > 0:
            time.sleep(left)


class ConcurrencyGate:
    """Counts in-flight requests of one tenant against a limit read at each arrival."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def try_enter(self, limit: int | None) -> bool:
        """Admit one request unless `limit` requests are already in flight."""
        with self._lock:
            if limit is not None and self.in_flight >= limit:
                return False
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return True

    def leave(self) -> None:
        """Mark one admitted request as finished."""
        with self._lock:
            self.in_flight -= 1


class WriteBudget:
    """Token bucket of `rate` writes per second with a burst of max(1, rate) writes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._stamp = 0.0

    def take(self, rate: float | None) -> float:
        """Spend one write; 0.0 when allowed, else the seconds to wait before retrying."""
        if rate is None or rate <= 0:
            return 0.0
        capacity = max(1.0, rate)
        with self._lock:
            now = self._clock()
            if self._tokens is None:
                self._tokens = capacity
            else:
                self._tokens = min(capacity, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / rate


def retry_after_header(seconds: float) -> str:
    """Retry-After as whole seconds (RFC 9110 delay-seconds), at least 1."""
    return str(max(1, math.ceil(seconds)))
