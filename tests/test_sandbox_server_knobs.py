"""The sandbox's misbehaviour knobs: concurrency limit, write budget, latency and faults."""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from exocm.sandbox.knobs import parse_fault
from exocm.sandbox.rest import CONCURRENCY_MESSAGE
from sandbox_clients import (
    app_token,
    batch_url,
    cmdlet_body,
    confidential_app,
    headers,
    invoke,
    invoke_url,
    rest_client,
)


def _flip_candidates(sb: Any, n: int) -> list[str]:
    rows = sb.tenant.invoke("Get-Mailbox", {"Filter": "IsDirSynced -eq $true -and IsExchangeCloudManaged -eq $false",
                                            "ResultSize": n})
    return [r["ExternalDirectoryObjectId"] for r in rows]


def _cloud_managed(sb: Any, edoid: str) -> bool:
    return bool(sb.tenant.invoke("Get-Mailbox", {"Identity": edoid})[0]["IsExchangeCloudManaged"])


def _flip(client: httpx.Client, info: dict[str, Any], token: str, edoid: str) -> httpx.Response:
    return invoke(client, info, token, "Set-Mailbox", Identity=edoid, IsExchangeCloudManaged=True)


def test_requests_beyond_the_concurrency_limit_get_429_with_exo_text(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(size=50, concurrency_limit=2, latency_ms=800)
    info = sb.info
    token = app_token(info)
    statuses: list[int] = []
    bodies: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def one() -> None:
        with rest_client(info) as c:
            start.wait()
            resp = invoke(c, info, token, "Get-Mailbox", ResultSize=1)
        with lock:
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                bodies.append(resp.json()["error"]["message"])

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(set(statuses)) == [200, 429]
    assert statuses.count(200) >= 2
    assert bodies and all(b == CONCURRENCY_MESSAGE for b in bodies)
    assert sb.stats.snapshot()["http_429"] == statuses.count(429)
    assert 1 <= sb.rest.gate.peak <= 2  # the observed peak never passed the limit
    # The limit is a knob: lifted, the same burst passes.
    sb.knobs.concurrency_limit = None
    sb.knobs.latency_ms = 0
    with rest_client(info) as c:
        assert invoke(c, info, token, "Get-Mailbox", ResultSize=1).status_code == 200


def test_batches_beyond_the_concurrency_limit_get_429_and_the_peak_stays_under_it(
        make_sandbox: Callable[..., Any]) -> None:
    # A $batch is one HTTP request to EXO: it takes one slot of the per-tenant limit, whatever it holds.
    sb = make_sandbox(size=50, concurrency_limit=2, latency_ms=800)
    info = sb.info
    token = app_token(info)
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(6)
    batch = {"requests": [{"id": str(i), "method": "POST", "url": invoke_url(info),
                           "body": cmdlet_body("Get-Mailbox", ResultSize=1)} for i in range(3)]}

    def one() -> None:
        with rest_client(info) as c:
            start.wait()
            resp = c.post(batch_url(info), json=batch, headers=headers(token, Prefer="odata.continue-on-error"))
        with lock:
            statuses.append(resp.status_code)
            if resp.status_code == 200:
                assert [a["status"] for a in resp.json()["responses"]] == [200, 200, 200]
            else:
                assert resp.json()["error"]["message"] == CONCURRENCY_MESSAGE

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(set(statuses)) == [200, 429] and len(statuses) == 6
    assert statuses.count(200) >= 2
    assert 1 <= sb.rest.gate.peak <= 2  # the observed peak never passed the limit
    assert sb.rest.gate.in_flight == 0


def test_writes_beyond_the_budget_get_429_with_retry_after(make_sandbox: Callable[..., Any]) -> None:
    now = [time.time()]
    sb = make_sandbox(write_budget=1, clock=lambda: now[0])
    info = sb.info
    token = app_token(info)
    first, second, third = _flip_candidates(sb, 3)
    with rest_client(info) as c:
        assert _flip(c, info, token, first).status_code == 200
        throttled = _flip(c, info, token, second)
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
        assert not _cloud_managed(sb, second)
        # Reads are not writes: they pass while the budget is empty.
        assert invoke(c, info, token, "Get-Mailbox", ResultSize=1).status_code == 200
        now[0] += 1.0
        assert _flip(c, info, token, second).status_code == 200
        # Inside a $batch each write spends budget on its own.
        now[0] += 1.0
        batch = [{"id": str(i), "method": "POST", "url": invoke_url(info),
                  "body": cmdlet_body("Set-Mailbox", Identity=e, IsExchangeCloudManaged=True)}
                 for i, e in enumerate([third, first])]
        resp = c.post(batch_url(info), json={"requests": batch},
                      headers=headers(token, Prefer="odata.continue-on-error"))
        answers = resp.json()["responses"]
        assert [a["status"] for a in answers] == [200, 429] and answers[1]["headers"]["Retry-After"] == "1"
    assert sb.stats.snapshot()["http_429"] == 1  # the batch itself answered 200


def test_fault_500_and_503_answer_exo_like_errors_without_running_the_cmdlet(
        make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(faults={"500": 1.0})
    info = sb.info
    token = app_token(info)
    edoid = _flip_candidates(sb, 1)[0]
    with rest_client(info) as c:
        resp = _flip(c, info, token, edoid)
        assert resp.status_code == 500 and resp.json()["error"]["code"] == "InternalServerError"
        assert not _cloud_managed(sb, edoid)
        sb.knobs.faults = {"503": 1.0}
        answers = [invoke(c, info, token, "Get-Mailbox", ResultSize=1) for _ in range(8)]
        assert {r.status_code for r in answers} == {503}
        assert any(r.headers.get("Retry-After") == "1" for r in answers)
        sb.knobs.faults = {}
        assert invoke(c, info, token, "Get-Mailbox", ResultSize=1).status_code == 200
    assert sb.stats.snapshot()["faults_injected"] == {"500": 1, "503": 8}


def test_fault_reset_drops_the_connection_without_an_answer(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(faults={"reset": 1.0})
    info = sb.info
    token = app_token(info)
    with rest_client(info) as c:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
            invoke(c, info, token, "Get-Mailbox", ResultSize=1)
        sb.knobs.faults = {}
        assert invoke(c, info, token, "Get-Mailbox", ResultSize=1).status_code == 200
    assert sb.stats.snapshot()["resets"] == 1


def test_fault_timeout_holds_the_request_after_running_it(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(faults={"timeout": 1.0}, fault_timeout_s=2.0)
    info = sb.info
    token = app_token(info)
    edoid = _flip_candidates(sb, 1)[0]
    with rest_client(info, timeout=0.5) as c, pytest.raises(httpx.ReadTimeout):
        _flip(c, info, token, edoid)
    # The client gave up, but the write landed: only a read-back tells.
    assert _cloud_managed(sb, edoid)


def test_fault_applied_error_writes_then_answers_an_error_with_an_empty_message(
        make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(faults={"applied-error": 1.0})
    info = sb.info
    token = app_token(info)
    edoid = _flip_candidates(sb, 1)[0]
    with rest_client(info) as c:
        resp = _flip(c, info, token, edoid)
        assert resp.status_code == 400
        error = resp.json()["error"]
        assert error["message"] == "" and error["details"][0]["message"] == ""
        assert error["innererror"]["internalException"]["message"] == ""
        # Reads are never hit by this fault.
        assert invoke(c, info, token, "Get-Mailbox", ResultSize=1).status_code == 200
    assert _cloud_managed(sb, edoid)


def test_fault_draws_are_reproducible_per_seed(make_sandbox: Callable[..., Any]) -> None:
    def run() -> list[int]:
        sb = make_sandbox(size=20, seed=11, faults={"503": 0.4})
        info = sb.info
        token = app_token(info)
        with rest_client(info) as c:
            return [invoke(c, info, token, "Get-Mailbox", ResultSize=1).status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second and set(first) == {200, 503}


def test_knobs_parse_fault_specs() -> None:
    assert parse_fault("applied-error=0.25") == ("applied-error", 0.25)
    for bad in ("boom=0.1", "503", "503=1.5"):
        with pytest.raises(ValueError):
            parse_fault(bad)


def test_latency_and_jitter_are_added_per_request(make_sandbox: Callable[..., Any]) -> None:
    # No wall-clock assertion: the knob is read per request and a request still succeeds.
    sb = make_sandbox(size=20, latency_ms=20, latency_jitter_ms=10)
    info = sb.info
    with rest_client(info) as c:
        assert invoke(c, info, app_token(info), "Get-Mailbox", ResultSize=1).status_code == 200
    assert sb.knobs.delay_s(random.Random(1)) >= 0.01


def test_token_lifetime_knob_sets_expires_in(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(size=20, token_lifetime_s=120)
    info = sb.info
    result = confidential_app(info).acquire_token_for_client([info["scope"]])
    assert result["expires_in"] == 120


def test_sync_interval_runs_sync_cycles_in_the_background(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(size=20, sync_interval=0.1)
    deadline = time.monotonic() + 20
    while sb.tenant.sync_cycles < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sb.tenant.sync_cycles >= 2
