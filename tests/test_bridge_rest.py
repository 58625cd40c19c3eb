"""The REST bridge against the sandbox over loopback TLS, through real msal and httpx.

Time is the only thing faked: the bridge's sleep is injected (it records every wait and,
where the sandbox's clock is injected too, moves that clock forward), so no test really
sleeps for a backoff.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from exocm.core.access.config import sandbox_profile
from exocm.core.access.connect import open_bridge
from exocm.core.bridge.base import Call
from exocm.core.bridge.concurrency import forget_limiters
from exocm.core.bridge.errors import AppliedUnknown, InvalidInput, NotFound, ProtocolError, Transient
from exocm.core.bridge.rest import RestBridge
from exocm.core.bridge.retry import RetryPolicy
from exocm.sandbox.server import Sandbox
from exocm.sandbox.tenant import Tenant


class FakeClock:
    """Epoch seconds that move only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = time.time()
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
            self.now += seconds


@pytest.fixture(autouse=True)
def fresh_limiters() -> Iterator[None]:
    forget_limiters()
    yield
    forget_limiters()


def connect(sb: Sandbox, clock: FakeClock | None = None, **options: Any) -> RestBridge:
    """A bridge to `sb` as `exocm profiles add --from-sandbox` would configure it."""
    info = sb.info
    prof = sandbox_profile("lab", info)
    assert prof.secret_env
    clock = clock or FakeClock()
    options.setdefault("retry_policy", RetryPolicy(max_attempts=10))
    return open_bridge(prof, env={prof.secret_env: info["client_secret"]}, persist_tokens=False,
                       sleep=clock.sleep, **options)


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [str(r["ExternalDirectoryObjectId"]) for r in records]


def truth(sb: Sandbox, cmdlet: str = "Get-Mailbox") -> set[str]:
    """What the tenant holds, read directly (not through any client)."""
    with sb.tenant.lock:
        return {str(r["ExternalDirectoryObjectId"]).lower()
                for r in sb.tenant.invoke(cmdlet, {"ResultSize": "Unlimited"})}


# -- paging ------------------------------------------------------------------------------------
def test_paged_read_follows_next_links_and_returns_every_record_once(sandbox: Sandbox) -> None:
    with connect(sandbox) as bridge:
        pages = list(bridge.stream("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=150))
        got = [i for page in pages for i in ids(page)]
        counters = bridge.snapshot()
    expected = truth(sandbox)
    assert len(expected) > 300 and len(pages) == -(-len(expected) // 150)
    assert len(got) == len(set(got)) == len(expected) and set(got) == expected
    assert counters["pages"] == len(pages) and counters["retries"] == 0


def test_records_come_back_normalised(sandbox: Sandbox) -> None:
    with connect(sandbox) as bridge:
        record = bridge.invoke("Get-Mailbox", {"ResultSize": 1})[0]
    assert record["ExternalDirectoryObjectId"] == record["ExternalDirectoryObjectId"].lower()
    assert isinstance(record["IsDirSynced"], bool)
    assert isinstance(record["EmailAddresses"], list)
    when = record["WhenChangedUTC"]
    assert when.tzinfo is not None and when.utcoffset().total_seconds() == 0


def test_token_expiry_mid_stream_is_refreshed_without_a_lost_page(sandbox: Sandbox) -> None:
    with connect(sandbox) as bridge:
        stream = bridge.stream("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=200)
        got = ids(next(stream))
        assert sandbox.revoke_tokens() >= 1  # every token issued so far is now rejected (401)
        for page in stream:
            got += ids(page)
        counters = bridge.snapshot()
    assert counters["token_refreshes"] == 1
    assert len(got) == len(set(got)) and set(got) == truth(sandbox)


def test_five_percent_transient_faults_lose_and_duplicate_nothing(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(size=5000, seed=11, fault_timeout_s=0.05,
                      faults={"500": 0.0125, "503": 0.0125, "reset": 0.0125, "timeout": 0.0125})
    expected = truth(sb, "Get-User")
    assert len(expected) >= 5000
    clock = FakeClock()
    with connect(sb, clock, timeout=10.0) as bridge:
        got = [i for page in bridge.stream("Get-User", {"ResultSize": "Unlimited"}, page_size=100)
               for i in ids(page)]
        counters = bridge.snapshot()
    injected = sb.stats.snapshot()["faults_injected"]
    assert sum(injected.values()) >= 1, injected
    assert counters["retries"] >= 1 and len(clock.waits) == counters["retries"]
    assert len(got) == len(set(got)) == len(expected) and set(got) == expected


def test_a_next_link_to_another_host_is_refused_and_gets_no_token(sandbox: Sandbox) -> None:
    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(1)
    trap.setblocking(False)
    old = sandbox.knobs.next_link_base_url
    sandbox.knobs.next_link_base_url = f"https://127.0.0.1:{trap.getsockname()[1]}"
    try:
        with connect(sandbox) as bridge:
            stream = bridge.stream("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=100)
            with pytest.raises(ProtocolError, match="another host"):
                list(stream)
    finally:
        sandbox.knobs.next_link_base_url = old
    with pytest.raises(BlockingIOError):
        trap.accept()  # nobody ever connected to the other host
    trap.close()


def test_resultsize_warning_is_surfaced(sandbox: Sandbox) -> None:
    seen: list[tuple[str, str]] = []
    with connect(sandbox, on_warning=lambda cmdlet, text: seen.append((cmdlet, text))) as bridge:
        records = bridge.invoke("Get-Mailbox", {"ResultSize": 5})
        warnings = bridge.last_warnings
        batched = bridge.invoke_many([Call("Get-Mailbox", {"ResultSize": 3})])[0]
    assert len(records) == 5
    assert warnings and "more results available" in warnings[0]
    assert seen[0][0] == "Get-Mailbox"
    assert batched.error is None and len(batched.records) == 3 and batched.warnings


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cmdlet", "params", "needle"), [
    ("Get-Nothing", {}, "'Get-Nothing' is not recognized"),
    ("Get-Mailbox", {"Frobnicate": 1}, "Frobnicate"),
    ("Get-Mailbox", {"Filter": "Frob -eq 1"}, "'Frob' is not a recognized filterable property"),
])
def test_unknown_cmdlet_parameter_or_property_is_a_clear_invalid_input(
        sandbox: Sandbox, cmdlet: str, params: dict[str, Any], needle: str) -> None:
    with connect(sandbox) as bridge, pytest.raises(InvalidInput) as info:
        bridge.invoke(cmdlet, params)
    assert needle in info.value.message and info.value.message.startswith(f"{cmdlet}: ")
    assert "\n" not in info.value.message


def test_invoke_many_gives_one_classified_result_per_call_in_order(sandbox: Sandbox) -> None:
    known = sorted(truth(sandbox))[:15]
    calls = [Call("Get-Mailbox", {"Identity": i}) for i in known]
    calls.insert(3, Call("Get-Mailbox", {"Identity": "nobody-at-all@nowhere.example"}))
    calls.insert(12, Call("Get-Nothing", {}))
    with connect(sandbox) as bridge:
        results = bridge.invoke_many(calls)
        counters = bridge.snapshot()
    assert [r.call for r in results] == calls
    assert isinstance(results[3].error, NotFound)
    assert isinstance(results[12].error, InvalidInput)
    ok = [r for r in results if r.error is None]
    assert [ids(r.records)[0] for r in ok] == known
    assert counters["batches"] == 2


# -- throttling and writes (private sandboxes with an injected clock) ----------------------------
def test_429_with_retry_after_is_honoured(make_sandbox: Callable[..., Sandbox]) -> None:
    clock = FakeClock()
    sb = make_sandbox(tenant=Tenant(seed=3), write_budget=1, clock=clock)
    flips = [Call("Set-OrganizationConfig", {"ExchangeAttributesCloudManagedByDefault": i % 2 == 0})
             for i in range(3)]
    with connect(sb, clock) as bridge:
        results = bridge.invoke_many(flips)
        assert all(r.error is None for r in results)
        assert clock.waits == [1.0, 1.0]  # the service's Retry-After, exactly
        bridge.invoke("Set-OrganizationConfig", {"ExchangeAttributesCloudManagedByDefault": False})
        bridge.invoke("Set-OrganizationConfig", {"ExchangeAttributesCloudManagedByDefault": True})
        counters = bridge.snapshot()
    assert clock.waits == [1.0, 1.0, 1.0, 1.0]  # the bucket was empty: each single write waited once
    assert counters["http_429"] == 5  # three inside $batch answers, two on single calls
    assert sb.stats.snapshot()["writes"] == 5


def test_the_limiter_shrinks_under_the_tenant_concurrency_limit(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(tenant=Tenant(seed=4), concurrency_limit=1, latency_ms=30)
    with connect(sb, max_concurrency=4, retry_policy=RetryPolicy(max_attempts=20)) as bridge:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: bridge.invoke("Get-OrganizationConfig"), range(12)))
        counters = bridge.snapshot()
    assert all(len(a) == 1 for a in answers)
    assert counters["http_429"] >= 1 and counters["decreases"] >= 1 and counters["limit"] < 4


def test_a_write_that_failed_with_an_empty_message_is_applied_unknown_and_not_resent(
        make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(tenant=Tenant(seed=5), faults={"applied-error": 1.0})
    with connect(sb) as bridge:
        [result] = bridge.invoke_many([Call("Set-OrganizationConfig",
                                            {"ExchangeAttributesCloudManagedByDefault": True})])
        assert isinstance(result.error, AppliedUnknown)
        with pytest.raises(AppliedUnknown, match="read it back"):
            bridge.invoke("Set-OrganizationConfig", {"ExchangeAttributesCloudManagedByDefault": False})
        sb.knobs.faults = {}
        after = bridge.invoke("Get-OrganizationConfig")[0]["ExchangeAttributesCloudManagedByDefault"]
    assert sb.stats.snapshot()["writes"] == 2  # each write sent once, never blindly again
    assert after is False  # both applied despite the errors


def test_server_errors_retry_reads_but_never_resend_writes(make_sandbox: Callable[..., Sandbox]) -> None:
    clock = FakeClock()
    sb = make_sandbox(tenant=Tenant(seed=6), faults={"500": 1.0})
    with connect(sb, clock, retry_policy=RetryPolicy(max_attempts=4)) as bridge:
        with pytest.raises(AppliedUnknown):
            bridge.invoke("Set-OrganizationConfig", {"ExchangeAttributesCloudManagedByDefault": True})
        assert bridge.snapshot()["requests"] == 1  # the write went out once
        with pytest.raises(Transient):
            bridge.invoke("Get-OrganizationConfig")
    assert len(clock.waits) == 3  # four tries of the read, none of the write
