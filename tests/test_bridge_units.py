"""Backoff, Retry-After, AIMD limiter and record normalisation: the bridge's small parts."""
from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

from exocm.core.bridge.concurrency import AdaptiveLimiter
from exocm.core.bridge.normalize import normalize_record, parse_datetime
from exocm.core.bridge.retry import Backoff, RetryPolicy, parse_retry_after


def test_backoff_uses_full_jitter_below_an_exponential_ceiling() -> None:
    slept: list[float] = []
    backoff = Backoff(RetryPolicy(base_s=1.0, cap_s=8.0), slept.append, random.Random(1))
    for attempt in range(1, 7):
        backoff.wait(attempt)
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(0 <= s <= c for s, c in zip(slept, ceilings, strict=True))
    assert len(set(slept)) == len(slept)  # jittered, not fixed


def test_retry_after_is_honoured_exactly_and_capped() -> None:
    slept: list[float] = []
    backoff = Backoff(RetryPolicy(max_retry_after_s=60), slept.append, random.Random(1))
    backoff.wait(1, retry_after=7)
    backoff.wait(2, retry_after=600)
    assert slept == [7, 60]


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=lambda: now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_limiter_halves_once_per_burst_and_grows_back_by_one() -> None:
    limiter = AdaptiveLimiter(8)
    tickets = [limiter.acquire() for _ in range(8)]
    for ticket in tickets:  # eight 429s from requests that were all in flight together
        limiter.release(ticket, throttled=True)
    assert limiter.limit == 4
    for _ in range(4):
        limiter.release(limiter.acquire())
    assert limiter.limit == 5


def test_limiter_never_goes_below_one_and_bounds_in_flight() -> None:
    limiter = AdaptiveLimiter(3)
    for _ in range(10):
        limiter.release(limiter.acquire(), throttled=True)
    assert limiter.limit == 1
    peak = 0
    lock = threading.Lock()
    active = 0

    def work() -> None:
        nonlocal peak, active
        with limiter.slot():
            with lock:
                active += 1
                peak = max(peak, active)
            threading.Event().wait(0.002)
            with lock:
                active -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak <= 3 and limiter.in_flight == 0


def test_records_are_normalised_by_property_name() -> None:
    record = normalize_record({
        "ExternalDirectoryObjectId": "6A1B1A0E-1234-4C3D-9E8F-0123456789AB",
        "ExchangeGuid": "{0DE6C1B5-AAAA-BBBB-CCCC-0123456789AB}",
        "DisplayName": "6A1B1A0E-1234-4C3D-9E8F-0123456789AB",
        "WhenChangedUTC": "2024-05-01T10:11:12.1234567Z",
        "WhenChanged": "2024-05-01T12:11:12+02:00",
        "Notes": "2024-05-01T10:11:12Z",
        "IsDirSynced": True,
        "EmailAddresses": ["SMTP:a@x.com", "smtp:b@x.com"],
        "EmailAddresses@odata.type": "#Collection(String)",
        "Nested": {"a": 1},
    })
    assert record["ExternalDirectoryObjectId"] == "6a1b1a0e-1234-4c3d-9e8f-0123456789ab"
    assert record["ExchangeGuid"] == "0de6c1b5-aaaa-bbbb-cccc-0123456789ab"
    assert record["DisplayName"] == "6A1B1A0E-1234-4C3D-9E8F-0123456789AB"  # not a GUID property
    assert record["WhenChangedUTC"] == datetime(2024, 5, 1, 10, 11, 12, 123456, tzinfo=UTC)
    assert record["WhenChanged"] == datetime(2024, 5, 1, 10, 11, 12, tzinfo=UTC)
    assert record["Notes"] == "2024-05-01T10:11:12Z"  # not a date property
    assert record["IsDirSynced"] is True
    assert record["EmailAddresses"] == ["SMTP:a@x.com", "smtp:b@x.com"]
    assert "EmailAddresses@odata.type" not in record
    assert record["Nested"] == '{"a": 1}'


def test_dotnet_json_dates_are_understood() -> None:
    assert parse_datetime("/Date(86400000)/") == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=1)
    assert parse_datetime("not a date") is None


def test_limiter_settles_just_under_a_refused_level_and_holds_there_before_probing() -> None:
    limiter = AdaptiveLimiter(16, initial=8, hold_rounds=2)
    tickets = [limiter.acquire() for _ in range(8)]
    assert [t.level for t in tickets] == list(range(1, 9))
    for t in tickets[:-1]:
        limiter.release(t)
    limiter.release(tickets[-1], success=False, at_limit=True)  # the 8th in flight was one too many
    assert limiter.limit == 7 and limiter.ceiling == 7 and limiter.decreases == 1
    for _ in range(2 * 7 - 1):  # held at the ceiling for hold_rounds rounds of successes
        limiter.release(limiter.acquire())
    assert limiter.limit == 7
    for _ in range(8):  # then it probes one above
        limiter.release(limiter.acquire())
    assert limiter.limit == 8 and limiter.ceiling is None


def test_limiter_does_not_grow_past_its_start_on_calls_that_never_reached_the_limit() -> None:
    limiter = AdaptiveLimiter(16, initial=8)
    for _ in range(200):  # one call at a time: the limit of 8 was never in use
        limiter.release(limiter.acquire())
    assert limiter.limit == 8
    for _ in range(3):  # eight at once, at the limit: that says the limit may be too low
        tickets = [limiter.acquire() for _ in range(limiter.limit)]
        for t in tickets:
            limiter.release(t)
    assert limiter.limit > 8


def _blocked(limiter: AdaptiveLimiter, count: int) -> None:
    """Wait until `count` callers are queued for a slot."""
    import time

    deadline = time.monotonic() + 10
    while len(limiter._waiting) < count:  # noqa: SLF001 - the queue is what this test watches
        assert time.monotonic() < deadline, "callers did not block"
        time.sleep(0.005)


def test_limiter_hands_each_freed_slot_to_the_first_in_line_by_priority_then_arrival() -> None:
    from exocm.core.bridge.concurrency import request_priority

    limiter = AdaptiveLimiter(1, initial=1)
    held = limiter.acquire()
    order: list[str] = []
    tickets: dict[str, object] = {}
    threads = []

    def wait_for_slot(name: str, priority: int) -> None:
        with request_priority(priority):
            ticket = limiter.acquire(timeout=10)
        order.append(name)
        tickets[name] = ticket
        limiter.release(ticket)

    for k, (name, priority) in enumerate((("late-low", 5), ("first-high", 1), ("second-high", 1))):
        thread = threading.Thread(target=wait_for_slot, args=(name, priority))
        thread.start()
        threads.append(thread)
        _blocked(limiter, k + 1)
    limiter.release(held)
    for thread in threads:
        thread.join(10)
    assert order == ["first-high", "second-high", "late-low"]
    assert limiter.in_flight == 0 and limiter.peak_in_flight == 1


def test_limiter_timeout_leaves_the_line_without_taking_a_slot() -> None:
    import pytest

    limiter = AdaptiveLimiter(1, initial=1)
    held = limiter.acquire()
    with pytest.raises(TimeoutError):
        limiter.acquire(timeout=0.05)
    assert not limiter._waiting  # noqa: SLF001
    limiter.release(held)
    assert limiter.in_flight == 0
    limiter.release(limiter.acquire(timeout=1))  # the slot freed above is free, not held by the timed-out caller
    assert limiter.in_flight == 0


def test_limiter_grants_as_many_waiters_as_a_grown_limit_allows() -> None:
    limiter = AdaptiveLimiter(2, initial=2)
    held = [limiter.acquire(), limiter.acquire()]
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(limiter.acquire(timeout=10))) for _ in range(3)]
    for k, thread in enumerate(threads):
        thread.start()
        _blocked(limiter, k + 1)
    limiter.resize(5)  # three more slots: every waiter gets one at once
    for thread in threads:
        thread.join(10)
    assert len(got) == 3 and limiter.in_flight == 5
    for ticket in [*held, *got]:
        limiter.release(ticket)  # type: ignore[arg-type]
    assert limiter.in_flight == 0
