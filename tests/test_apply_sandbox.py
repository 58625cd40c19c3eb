"""Apply through the sandbox's REST endpoint: the plan/apply contract of docs/architecture.md#plan-apply-undo."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from exocm.cli.main import cli
from exocm.core.execute.apply import ForeignTenant, PlanExpired, PlanLock, PlanLocked, WritePacer, apply_plan
from exocm.core.execute.journal import plan_history, read_journal
from exocm.core.plan.planfile import PlanDigestError, PlanRow, load_plan, save_plan
from plan_support import SetMailboxCounter, add_profile, cloud_managed, connect, dirsynced_plan, mailbox


@pytest.fixture(autouse=True)
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("EXOCM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EXOCM_CONFIG_DIR", str(tmp_path / "config"))
    yield tmp_path


def test_plan_show_apply_sets_every_row_and_the_sandbox_state_agrees(make_sandbox: Any, tmp_path: Path) -> None:
    sb = make_sandbox(size=200, seed=11)
    name = add_profile(sb)
    runner = CliRunner()
    plan_path = tmp_path / "flip.json"
    made = runner.invoke(cli, ["plan", "--profile", name, "--set-cloud-managed", "true", "--all-dirsynced",
                               "--types", "UserMailbox,SharedMailbox", "-o", str(plan_path)])
    assert made.exit_code == 0, made.output
    plan = load_plan(plan_path)
    targets = [r.identity for r in plan.set_rows()]
    assert len(targets) > 50

    shown = runner.invoke(cli, ["show", str(plan_path)])
    assert shown.exit_code == 1  # like kubectl diff: 1 = something would change
    assert f"set    {len(targets):>7,}" in shown.output
    assert all(cloud_managed(sb, i) is False for i in targets)  # show changed nothing

    applied = runner.invoke(cli, ["apply", "--profile", name, str(plan_path), "--yes"])
    assert applied.exit_code == 0, applied.output
    assert all(cloud_managed(sb, i) is True for i in targets)
    history = plan_history(plan.digest)
    assert set(history.verified) == set(targets)
    skipped = {r.identity for r in plan.rows if r.action == "skip"}
    assert all(cloud_managed(sb, i) is True for i in skipped)  # skips here are 'already in target state'


def test_apply_skips_rows_changed_behind_the_plans_back_as_stale(make_sandbox: Any) -> None:
    sb = make_sandbox(size=150, seed=12)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=30)
    flipped, edited = plan.set_rows()[0].identity, plan.set_rows()[1].identity
    # behind the plan's back: someone flips one mailbox, an on-prem edit syncs into another
    sb.tenant.invoke("Set-Mailbox", {"Identity": flipped, "IsExchangeCloudManaged": True}, side="exo")
    upn = mailbox(sb, edited)["UserPrincipalName"]
    sb.tenant.invoke("Set-RemoteMailbox", {"Identity": upn, "CustomAttribute7": "moved to Oslo"}, side="onprem")
    sb.run_sync_cycle()
    assert mailbox(sb, edited)["CustomAttribute7"] == "moved to Oslo"

    result = apply_plan(bridge, plan)
    rows = {r["identity"]: r for r in read_journal(result.journal_path).rows()}
    assert rows[flipped]["status"] == "stale" and "IsExchangeCloudManaged" in rows[flipped]["reason"]
    assert rows[edited]["status"] == "stale" and "writeback attributes changed" in rows[edited]["reason"]
    assert cloud_managed(sb, edited) is False  # a stale row is never written
    assert result.counts["verified"] == 28 and result.counts["stale"] == 2


def test_apply_refuses_tampered_foreign_and_expired_plans(make_sandbox: Any, tmp_path: Path) -> None:
    sb = make_sandbox(size=80, seed=13)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=5)
    counter = SetMailboxCounter(sb)

    tampered = dirsynced_plan(sb, bridge, limit=5)
    tampered.rows[0] = PlanRow(**{**tampered.rows[0].__dict__, "identity": tampered.rows[1].identity.upper()})
    with pytest.raises(PlanDigestError):
        apply_plan(bridge, tampered)

    foreign = dirsynced_plan(sb, bridge, limit=5)
    foreign.tenant = "11111111-2222-3333-4444-555555555555"
    foreign.finalise()
    with pytest.raises(ForeignTenant, match="another tenant|is for tenant"):
        apply_plan(bridge, foreign)

    old = plan.created() + timedelta(hours=25)
    with pytest.raises(PlanExpired, match="25.0 h old"):
        apply_plan(bridge, plan, now=lambda: old)
    # a longer --max-age lets it through
    result = apply_plan(bridge, plan, now=lambda: old, max_age=timedelta(hours=48))
    assert result.counts["verified"] == 5
    assert sum(counter.counts.values()) == 5  # the refused plans wrote nothing

    # the CLI says it in one line and exits 2
    path = save_plan(foreign, tmp_path / "foreign.json")
    text = path.read_text(encoding="utf-8").replace('"display_name": "', '"display_name": "X', 1)
    (tmp_path / "edited.json").write_text(text, encoding="utf-8")
    name = add_profile(sb)
    for bad, words in (("foreign.json", "is for tenant"), ("edited.json", "does not match its digest")):
        out = CliRunner().invoke(cli, ["apply", "--profile", name, str(tmp_path / bad), "--yes"])
        assert out.exit_code == 2
        assert words in out.output and "Traceback" not in out.output


def test_applied_but_errored_writes_are_resolved_by_read_back_never_reported_wrong(make_sandbox: Any) -> None:
    sb = make_sandbox(size=300, seed=14)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge)
    counter = SetMailboxCounter(sb)
    sb.knobs.faults = {"applied-error": 0.10}
    result = apply_plan(bridge, plan)
    sb.knobs.faults = {}
    assert sb.stats.snapshot()["faults_injected"].get("applied-error", 0) > 5
    rows = read_journal(result.journal_path).rows()
    for row in rows:
        if row["status"] == "verified":
            assert cloud_managed(sb, row["identity"]) is True
        elif row["status"] != "skipped":
            pytest.fail(f"unexpected status {row['status']}: {row}")
    assert result.counts["verified"] == len(plan.set_rows()) and result.complete
    assert any("read-back shows it applied" in (r.get("note") or "") for r in rows)
    # the quirk applied the change: no identity was written twice
    assert max(counter.counts.values()) == 1


def test_429_storm_ends_with_every_row_applied_and_none_failed(make_sandbox: Any) -> None:
    sb = make_sandbox(size=200, seed=15, write_budget=20)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=80)
    # the storm: the run starts far above the budget (as when other tools share it), and the
    # budget drops further in the middle of the run
    squeeze = threading.Timer(1.0, lambda: setattr(sb.knobs, "write_budget", 8))
    relax = threading.Timer(2.5, lambda: setattr(sb.knobs, "write_budget", 20))
    squeeze.start()
    relax.start()
    try:
        result = apply_plan(bridge, plan, pacer=WritePacer(initial_rate=300))
    finally:
        squeeze.cancel()
        relax.cancel()
    assert result.counts["failed"] == 0 and result.counts["verified"] == 80
    assert all(cloud_managed(sb, r.identity) is True for r in plan.set_rows())
    assert result.bridge_stats["http_429"] > 0  # it was a storm


def test_second_apply_of_the_same_plan_is_refused_while_the_first_holds_the_lock(make_sandbox: Any,
                                                                                  dirs: Path) -> None:
    sb = make_sandbox(size=60, seed=16)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge, limit=5)
    holder = PlanLock(dirs / "data" / "locks", plan.digest)
    holder.acquire("other-run")
    try:
        with pytest.raises(PlanLocked, match=rf"pid {os.getpid()}"):
            apply_plan(bridge, plan)
    finally:
        holder.release()
    # a holder that died (kill -9) leaves a lock file but no lock: the next apply goes ahead
    code = ("import sys, time; from pathlib import Path; from exocm.core.execute.apply import PlanLock; "
            f"lock = PlanLock(Path({str(dirs / 'data' / 'locks')!r}), {plan.digest!r}); lock.acquire('doomed'); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    with pytest.raises(PlanLocked, match=rf"pid {proc.pid}"):
        apply_plan(bridge, plan)
    proc.kill()
    proc.wait()
    assert (dirs / "data" / "locks").glob("apply-*.lock")
    assert apply_plan(bridge, plan).counts["verified"] == 5


def test_cancel_settles_in_flight_rows_and_a_rerun_finishes_without_rewriting(make_sandbox: Any) -> None:
    sb = make_sandbox(size=400, seed=17, latency_ms=20)
    bridge = connect(sb)
    plan = dirsynced_plan(sb, bridge)
    counter = SetMailboxCounter(sb)
    cancel = threading.Event()

    def stop_early(event: Any) -> None:
        if event.counters.get("verified", 0) >= 40:
            cancel.set()

    first = apply_plan(bridge, plan, progress=stop_early, cancel=cancel)
    assert first.cancelled and 40 <= first.counts["verified"] < len(plan.set_rows())
    assert first.counts["not_started"] > 0
    second = apply_plan(bridge, plan)
    assert second.complete
    assert second.counts["previously_verified"] == first.counts["verified"]
    assert first.counts["verified"] + second.counts["verified"] == len(plan.set_rows())
    assert set(counter.counts) == {r.identity.lower() for r in plan.set_rows()}
    assert max(counter.counts.values()) == 1


def test_apply_without_yes_on_a_non_interactive_stdin_is_refused(make_sandbox: Any, tmp_path: Path) -> None:
    sb = make_sandbox(size=60, seed=18)
    bridge = connect(sb)
    plan = save_plan(dirsynced_plan(sb, bridge, limit=3), tmp_path / "p.json")
    name = add_profile(sb)
    out = CliRunner().invoke(cli, ["apply", "--profile", name, str(plan)], input="")
    assert out.exit_code == 3
    assert "--yes" in out.output
    assert all(cloud_managed(sb, r.identity) is False for r in load_plan(plan).set_rows())


def test_plan_expiry_uses_the_plan_creation_time() -> None:
    created = datetime(2030, 1, 1, tzinfo=UTC)
    from exocm.core.execute.apply import check_plan
    from exocm.core.plan.planfile import Observed, Plan

    plan = Plan(tenant="t", bridge="rest", value=True, created_at=created.isoformat(),
                rows=[PlanRow("a", "", "", "set", "", Observed(False, None, "x"))]).finalise()
    check_plan(plan, "T", now=created + timedelta(hours=23))
    with pytest.raises(PlanExpired):
        check_plan(plan, "t", now=created + timedelta(hours=24, seconds=1))
