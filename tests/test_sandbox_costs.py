"""What the sandbox charges (docs/exchange-facts.md, "Cost of a $batch and of WinRM requests"):
$batch items cost server time inside the batch's concurrency slot, a read's page is built within
its latency and a write lands after it, and the WinRM endpoint honours latency, the concurrency
limit (open shells) and the write budget. No wall-clock assertions: the tests observe the slot
being held, the cmdlet having run or not, the quota fault, and the budget's bucket."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from exocm.sandbox import knobs as knobs_module
from exocm.sandbox.knobs import FaultDice, Knobs, WriteBudget
from exocm.sandbox.rest import CONCURRENCY_MESSAGE
from sandbox_clients import app_token, batch_url, cmdlet_body, headers, invoke, invoke_url, rest_client


def test_a_batch_item_costs_one_requests_service_time_by_default() -> None:
    assert Knobs(latency_ms=150).batch_item_s() == pytest.approx(0.15)
    assert Knobs(latency_ms=150, batch_item_ms=40).batch_item_s() == pytest.approx(0.04)
    assert Knobs(latency_ms=150, batch_item_ms=0).batch_item_s() == 0.0


def test_a_read_is_answered_its_latency_after_it_arrived_whatever_its_build_took(
        monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(knobs_module.time, "sleep", slept.append)
    now = [100.0]
    monkeypatch.setattr(knobs_module.time, "monotonic", lambda: now[0])
    dice, knobs = FaultDice(1), Knobs(latency_ms=150)
    with dice.service_time(knobs, read=True):
        now[0] = 100.04  # the page took 40 ms to build: 110 ms of the latency are left
    with dice.service_time(knobs, read=True):
        now[0] = 100.3  # a build longer than the latency: answered at once
    assert slept == [pytest.approx(0.11)]
    assert Knobs().reads_within_latency()
    assert not Knobs(variants=frozenset({"build-after-latency"})).reads_within_latency()
    slept.clear()
    later = Knobs(latency_ms=150, variants=frozenset({"build-after-latency"}))
    for kind, read in ((knobs, False), (later, True)):  # a write; a read under the variant
        with dice.service_time(kind, read=read):
            assert slept == [pytest.approx(0.15)]  # all of the latency before the block runs
        slept.clear()


@pytest.mark.parametrize("variant", [None, "build-after-latency"])
def test_a_read_runs_within_its_latency_and_a_write_after_it(make_sandbox: Callable[..., Any],
                                                             variant: str | None) -> None:
    sb = make_sandbox(size=30, latency_ms=3000, variants=variant)
    info = sb.info
    token = app_token(info)
    identity = next(r.upn for r in sb.rest.tenant.exo.values() if r.rtd == "UserMailbox" and r.dir_synced)
    for cmdlet, params, runs_early in (("Get-Mailbox", {"ResultSize": 1}, variant is None),
                                       ("Set-Mailbox", {"Identity": identity, "IsExchangeCloudManaged": True}, False)):
        answers: list[httpx.Response] = []

        def send(cmdlet: str = cmdlet, params: dict[str, Any] = params,
                 answers: list[httpx.Response] = answers) -> None:
            with rest_client(info) as c:
                answers.append(invoke(c, info, token, cmdlet, **params))

        thread = threading.Thread(target=send)
        thread.start()
        deadline = time.monotonic() + 20
        while not (sb.rest.gate.in_flight == 1 and (
                not runs_early or sb.rest.stats.invoke_by_cmdlet.get(cmdlet))) and time.monotonic() < deadline:
            time.sleep(0.01)
        # in flight, not answered yet (3 s of latency): a read has already run, a write not yet
        assert sb.rest.gate.in_flight == 1 and not answers
        assert bool(sb.rest.stats.invoke_by_cmdlet.get(cmdlet)) is runs_early
        thread.join(30)
        assert answers and answers[0].status_code == 200
        assert sb.rest.stats.invoke_by_cmdlet.get(cmdlet) == 1


def test_batch_items_run_inside_the_batchs_concurrency_slot(make_sandbox: Callable[..., Any]) -> None:
    sb = make_sandbox(size=30, concurrency_limit=1, batch_item_ms=400)
    info = sb.info
    token = app_token(info)
    batch = [{"id": str(i), "method": "POST", "url": invoke_url(info),
              "body": cmdlet_body("Get-Mailbox", ResultSize=1)} for i in range(4)]
    answers: list[httpx.Response] = []

    def send() -> None:
        with rest_client(info) as c:
            answers.append(c.post(batch_url(info), json={"requests": batch}, headers=headers(token)))

    thread = threading.Thread(target=send)
    thread.start()
    deadline = time.monotonic() + 20
    while sb.rest.gate.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    # While the batch's items run, the tenant's only slot is taken: a single request is refused.
    with rest_client(info) as c:
        refused = invoke(c, info, token, "Get-Mailbox", ResultSize=1)
    thread.join(timeout=30)
    assert refused.status_code == 429 and refused.json()["error"]["message"] == CONCURRENCY_MESSAGE
    assert answers and [a["status"] for a in answers[0].json()["responses"]] == [200] * 4
    with rest_client(info) as c:  # the slot is free again once the batch answered
        assert invoke(c, info, token, "Get-Mailbox", ResultSize=1).status_code == 200


def _winrm(concurrency_limit: int | None = None, write_budget: float | None = None,
           budget: WriteBudget | None = None) -> Any:
    from exocm.sandbox.generator import generate_tenant
    from exocm.sandbox.psrp import WinRMEndpoint

    knobs = Knobs(latency_ms=5, concurrency_limit=concurrency_limit, write_budget=write_budget)
    return WinRMEndpoint.start(generate_tenant(30, 9), password="loopback-only", knobs=knobs,
                               dice=FaultDice(1), write_budget=budget)


def test_winrm_refuses_a_shell_beyond_the_concurrency_limit_with_the_quota_fault() -> None:
    from exocm.core.bridge.psrp import PsrpBridge, PsrpEndpoint

    endpoint = _winrm(concurrency_limit=1)
    try:
        psrp = PsrpEndpoint(endpoint.onprem_url, username=endpoint.username, password="loopback-only")
        with PsrpBridge(psrp, "lab") as first:
            assert first.invoke("Get-User", {"ResultSize": 2})  # one shell open (latency applied)
            with PsrpBridge(psrp, "lab") as second, pytest.raises(Exception) as refused:
                second.invoke("Get-User", {"ResultSize": 2})
            assert "maximum number of concurrent shells" in str(refused.value) \
                or endpoint.service.stats.get("quota_faults", 0) >= 1
        assert endpoint.service.stats.get("quota_faults", 0) >= 1
        with PsrpBridge(psrp, "lab") as again:  # the first shell closed: a new one is allowed
            assert again.invoke("Get-User", {"ResultSize": 2})
    finally:
        endpoint.stop()


def test_winrm_writes_wait_for_the_tenants_write_budget() -> None:
    now = [1000.0]
    budget = WriteBudget(clock=lambda: now[0])
    endpoint = _winrm(write_budget=2, budget=budget)
    try:
        service = endpoint.service
        service.before_write()
        service.before_write()  # the burst of a 2/s bucket
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (service.before_write(), done.set()))
        waiter.start()
        assert not done.wait(0.3)  # the third write waits for a token
        now[0] += 1.0
        waiter.join(timeout=10)
        assert done.is_set()
    finally:
        endpoint.stop()
