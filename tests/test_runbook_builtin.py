"""The built-in runbooks against a sandbox over loopback (REST, Graph, WinRM), with the sandbox's
sync cycle driven by the run's own waits (each sleep runs one cycle) or by its fast timer.
Detection is re-run from scratch (EXO inventory + live on-prem) to show the findings are gone."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from exocm.core.runbooks import (
    GateRequest,
    RunExecutor,
    RunHooks,
    RunOutcome,
    RunStore,
    Services,
    get_runbook,
    identities_from_findings,
    new_run,
    resolve_identities,
)
from exocm.sandbox.generator import generate_tenant
from exocm.sandbox.server import Sandbox
from exocm.sandbox.tenant import Tenant
from runbook_support import findings_by_code, plant_dual, services_for


@pytest.fixture
def write_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "writes.jsonl"
    monkeypatch.setenv("EXOCM_SANDBOX_WRITE_LOG", str(path))
    return path


def writes(path: Path) -> Counter[tuple[str, str]]:
    """(operation, identity) -> how many times the sandbox applied it."""
    if not path.exists():
        return Counter()
    return Counter((r["operation"], r["identity"]) for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()))


@pytest.fixture
def tenant() -> Tenant:
    t = generate_tenant(300, 7)
    t.planted_for_test = {kind: plant_dual(t, kind, skip=i)  # type: ignore[attr-defined]
                          for i, kind in enumerate(("direct", "cloud_group", "synced_group"))}
    return t


@pytest.fixture
def sandbox(tenant: Tenant, make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox(tenant=tenant)


@pytest.fixture
def connect(sandbox: Sandbox) -> Iterator[Callable[..., Services]]:
    opened: list[Services] = []

    def factory(**kw: Any) -> Services:
        services = services_for(sandbox.info, **kw)
        opened.append(services)
        return services

    yield factory
    for services in opened:
        services.close()


def run(name: str, identities: list[str], services: Services, sandbox: Sandbox, store: RunStore, *,
        confirm: Callable[[GateRequest], str | None] = lambda g: g.expected,
        run_id: str | None = None) -> tuple[str, RunOutcome]:
    """Start (or resume) a run; every wait's sleep runs one sandbox sync cycle."""
    rb = get_runbook(name)
    if run_id is None:
        targets = resolve_identities(services.exo, [("test", i) for i in identities], source={"kind": "identity"})
        assert not targets.issues
        state = new_run(rb, targets, store=store, tenant=services.exo.tenant, label="SANDBOX", profile="t",
                        sandbox=True, embedded=False, options={"poll_interval_s": 1, "verify_delay_s": 0,
                                                               "onprem_group_changes": services.onprem_group_changes})
    else:
        state = store.load(run_id)
    hooks = RunHooks(confirm=lambda g, attempt, err: confirm(g) if attempt == 1 else None)
    outcome = RunExecutor(rb, state, store, services, hooks=hooks, sleep=lambda s: sandbox.run_sync_cycle()).run()
    return state.run_id, outcome


def test_keep_onprem_fixes_dual_mailboxes_of_every_license_kind_and_the_finding_disappears(
        tenant: Tenant, sandbox: Sandbox, connect: Callable[..., Services], tmp_path: Path, write_log: Path) -> None:
    services = connect(onprem_group_changes=True)
    duals = dict(tenant.planted_for_test)  # type: ignore[attr-defined]
    before = findings_by_code(services)
    assert set(duals.values()) <= before["DUAL_MAILBOX"]
    run_id, outcome = run("dual-mailbox-keep-onprem", list(duals.values()), services, sandbox, RunStore(tmp_path))
    assert outcome.status == "completed" and outcome.counts == {"active": 0, "done": 3, "failed": 0, "skipped": 0}
    after = findings_by_code(services)
    for edoid in duals.values():
        assert edoid not in after.get("DUAL_MAILBOX", set())
        assert edoid not in after.get("PREVIOUS_MAILBOX_INFO", set())
        r = tenant.exo[edoid]
        a = tenant.ad_for(r)
        assert a is not None and r.rtd == "MailUser" and r.exchange_guid == a.exchange_guid
        assert tenant.has_exchange_license(tenant.entra_users[edoid])  # licensed again, no cloud mailbox
    log = writes(write_log)
    for edoid in duals.values():
        assert log[("Set-User", edoid)] == 1
    assert log[("assignLicense", duals["direct"])] == 2  # removed once, given back once
    assert log[("removeGroupMember", duals["cloud_group"])] == log[("addGroupMember", duals["cloud_group"])] == 1
    assert log[("Remove-ADGroupMember", "GG-Lic-M365-E3")] == log[("Add-ADGroupMember", "GG-Lic-M365-E3")] == 1


def test_keep_cloud_fixes_the_generator_s_dual_mailboxes_and_the_finding_disappears(
        tenant: Tenant, sandbox: Sandbox, connect: Callable[..., Services], tmp_path: Path, write_log: Path) -> None:
    services = connect()
    planted = [e for e in tenant.planted()["DUAL_MAILBOX"] if e not in tenant.planted_for_test.values()]  # type: ignore[attr-defined]
    assert planted
    old = {e: (tenant.ad_for(tenant.exo[e]).legacy_dn, tenant.exo[e].exchange_guid) for e in planted}  # type: ignore[union-attr]
    run_id, outcome = run("dual-mailbox-keep-cloud", planted, services, sandbox, RunStore(tmp_path))
    assert outcome.status == "completed" and outcome.counts["done"] == len(planted)
    after = findings_by_code(services)
    for edoid in planted:
        assert edoid not in after.get("DUAL_MAILBOX", set()) and edoid not in after.get("EXCHANGEGUID_MISMATCH", set())
        r = tenant.exo[edoid]
        a = tenant.ad_for(r)
        legacy, guid = old[edoid]
        assert r.rtd == "UserMailbox" and r.exchange_guid == guid  # the cloud mailbox kept its content
        assert a is not None and a.rtd == "RemoteUserMailbox" and a.exchange_guid == guid
        assert f"x500:{legacy}".lower() in {p.lower() for p in r.proxies}
    log = writes(write_log)
    assert sum(n for (op, _), n in log.items() if op == "Disable-Mailbox") == len(planted)
    assert sum(n for (op, _), n in log.items() if op == "Enable-RemoteMailbox") == len(planted)


def test_clear_previous_mailbox_info_from_findings_fixes_its_finding(
        sandbox: Sandbox, connect: Callable[..., Services], tmp_path: Path, write_log: Path) -> None:
    services = connect()
    ids = [v for _, v in identities_from_findings(services.exo, services.onprem, "PREVIOUS_MAILBOX_INFO")]
    assert ids and set(ids) == set(sandbox.tenant.planted()["PREVIOUS_MAILBOX_INFO"])
    _, outcome = run("clear-previous-mailbox-info", ids, services, sandbox, RunStore(tmp_path))
    assert outcome.status == "completed" and outcome.counts["done"] == len(ids)
    assert not findings_by_code(services).get("PREVIOUS_MAILBOX_INFO")
    assert sorted(e for (op, e) in writes(write_log) if op == "Set-User") == sorted(ids)


def test_the_clear_gate_is_never_passed_without_its_exact_confirmation(
        tenant: Tenant, sandbox: Sandbox, connect: Callable[..., Services], tmp_path: Path, write_log: Path) -> None:
    services = connect()
    store = RunStore(tmp_path)
    ids = tenant.planted()["PREVIOUS_MAILBOX_INFO"]
    tid = services.exo.tenant
    run_id, outcome = run("clear-previous-mailbox-info", ids, services, sandbox, store, confirm=lambda g: None)
    assert outcome.status == "needs_confirmation" and outcome.gate is not None
    assert outcome.gate.expected == f"{tid}:{len(ids)}" and str(len(ids)) in outcome.gate.text
    for wrong in (f"{tid}:{len(ids) + 1}", f"{tid}:{len(ids) - 1}", f"other:{len(ids)}", "yes", tid):
        _, outcome = run("clear-previous-mailbox-info", ids, services, sandbox, store, confirm=lambda g, w=wrong: w,
                         run_id=run_id)
        assert outcome.status == "needs_confirmation"
    assert not [k for k in writes(write_log) if k[0] == "Set-User"]
    assert all(tenant.exo[e].prev_rtd == "UserMailbox" for e in ids)
    _, outcome = run("clear-previous-mailbox-info", ids, services, sandbox, store, run_id=run_id)
    assert outcome.status == "completed"


def test_manual_step_does_not_pass_until_the_sandbox_shows_the_group_change_synced(
        tenant: Tenant, sandbox: Sandbox, connect: Callable[..., Services], tmp_path: Path, write_log: Path) -> None:
    services = connect(onprem_group_changes=False)
    store = RunStore(tmp_path)
    edoid = tenant.planted_for_test["synced_group"]  # type: ignore[attr-defined]
    sam = tenant.ad_for(tenant.exo[edoid]).sam  # type: ignore[union-attr]
    run_id, outcome = run("dual-mailbox-keep-onprem", [edoid], services, sandbox, store)
    assert outcome.status == "needs_manual" and outcome.manual is not None
    assert f"Remove-ADGroupMember -Identity 'GG-Lic-M365-E3' -Members '{sam}'" in outcome.manual.items[0].instructions
    _, outcome = run("dual-mailbox-keep-onprem", [], services, sandbox, store, run_id=run_id)
    assert outcome.status == "needs_manual"  # nothing changed: still waiting for the admin
    tenant.invoke("Remove-ADGroupMember", {"Identity": "GG-Lic-M365-E3", "Members": [sam]}, side="onprem")
    _, outcome = run("dual-mailbox-keep-onprem", [], services, sandbox, store, run_id=run_id)
    assert outcome.status == "needs_manual"  # done on-prem, but Entra does not show it before a sync
    sandbox.run_sync_cycle()
    _, outcome = run("dual-mailbox-keep-onprem", [], services, sandbox, store, run_id=run_id)
    assert outcome.status == "needs_manual" and outcome.manual is not None
    assert outcome.manual.step == "rejoin-synced-groups"  # passed the removal, the gate, the clear
    assert writes(write_log)[("Set-User", edoid)] == 1
    tenant.invoke("Add-ADGroupMember", {"Identity": "GG-Lic-M365-E3", "Members": [sam]}, side="onprem")
    sandbox.run_sync_cycle()
    _, outcome = run("dual-mailbox-keep-onprem", [], services, sandbox, store, run_id=run_id)
    assert outcome.status == "completed" and outcome.counts["done"] == 1
    assert edoid not in findings_by_code(services).get("DUAL_MAILBOX", set())


def test_keep_onprem_with_the_sandbox_sync_on_a_fast_timer(
        tenant: Tenant, make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    timed = make_sandbox(tenant=tenant, sync_interval=0.2)
    services = services_for(timed.info)
    try:
        edoid = tenant.planted_for_test["direct"]  # type: ignore[attr-defined]
        store = RunStore(tmp_path)
        rb = get_runbook("dual-mailbox-keep-onprem")
        targets = resolve_identities(services.exo, [("test", edoid)], source={"kind": "identity"})
        state = new_run(rb, targets, store=store, tenant=services.exo.tenant, label="SANDBOX", profile="t",
                        sandbox=True, embedded=False,
                        options={"poll_interval_s": 0.05, "wait_timeout_s": 30, "verify_delay_s": 0.05})
        hooks = RunHooks(confirm=lambda g, attempt, err: g.expected)
        outcome = RunExecutor(rb, state, store, services, hooks=hooks).run()  # real time.sleep
        assert outcome.status == "completed", outcome.message
        assert tenant.exo[edoid].rtd == "MailUser" and edoid not in tenant.planted()["DUAL_MAILBOX"]
    finally:
        services.close()
