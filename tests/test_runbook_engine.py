"""The runbook engine on a toy runbook over an in-memory world (time is the only thing faked):
intents before actions, verify-first resumes, gates, manual steps, waits, locks, the audit log."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from exocm.core.execute.journal import read_journal
from exocm.core.runbooks import (
    Check,
    GateRequest,
    ManualRequest,
    Runbook,
    RunExecutor,
    RunHooks,
    RunLocked,
    RunStateError,
    RunStore,
    Services,
    Step,
    StepContext,
    Targets,
    new_run,
)
from exocm.core.runbooks.state import ObjectState


class Crash(BaseException):
    """Stands in for kill -9: nothing after the raise runs, nothing is caught."""


class World:
    """The 'tenant' of the toy runbook: per object a license flag and a cleared flag; counts every write."""

    def __init__(self, keys: list[str]) -> None:
        self.licensed = dict.fromkeys(keys, True)
        self.synced = dict.fromkeys(keys, False)
        self.cleared = dict.fromkeys(keys, False)
        self.writes: list[tuple[str, str]] = []
        self.crash_after: str | None = None
        self.crash_before: str | None = None

    def write(self, op: str, key: str) -> None:
        if self.crash_before == op:
            self.crash_before = None
            raise Crash(op)
        self.writes.append((op, key))
        if op == "unlicense":
            self.licensed[key] = False
        elif op == "clear":
            self.cleared[key] = True
        if self.crash_after == op:
            self.crash_after = None
            raise Crash(op)


def toy_runbook(world: World) -> Runbook:
    def unlicensed(ctx: StepContext) -> Check:
        return Check(not world.licensed[ctx.obj.key], "unlicensed", {"licensed": world.licensed[ctx.obj.key]})

    def unlicense(ctx: StepContext) -> dict[str, Any]:
        world.write("unlicense", ctx.obj.key)
        return {"removed": True}

    def synced(ctx: StepContext) -> Check:
        return Check(world.synced[ctx.obj.key], "synced" if world.synced[ctx.obj.key] else "not synced yet")

    def cleared(ctx: StepContext) -> Check:
        return Check(world.cleared[ctx.obj.key], "cleared")

    def clear(ctx: StepContext) -> dict[str, Any]:
        world.write("clear", ctx.obj.key)
        return {}

    def exists(ctx: StepContext) -> Check:
        return Check(ctx.obj.key in world.licensed, "exists")

    return Runbook(
        name="toy", title="Toy", description="a toy runbook", fixes=("TOY",),
        steps=(
            Step("check", "Check", precondition=exists, skip_when_unmet=True),
            Step("unlicense", "Unlicense", precondition=exists, action=unlicense, verify=unlicensed),
            Step("wait-sync", "Wait for sync", kind="wait_until", verify=synced, interval_s=60, timeout_s=600),
            Step("gate", "Confirm", kind="gate", gate_text=lambda n, t: f"destroy {n} in {t}"),
            Step("clear", "Clear", precondition=exists, action=clear, verify=cleared, irreversible=True),
            Step("manual", "Tell someone", kind="manual", verify=lambda ctx: Check(world.synced[ctx.obj.key] == 2),
                 instructions=lambda ctx: f"do the thing for {ctx.obj.key}"),
        ),
    )


class FakeTime:
    """Clock and sleep: sleeping moves the clock and may run a 'sync' in the world."""

    def __init__(self, world: World, sync_after_sleeps: int = 1) -> None:
        self.now = 1_800_000_000.0
        self.world = world
        self.sleeps = 0
        self.sync_after = sync_after_sleeps

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        if self.sleeps >= self.sync_after:
            for key, licensed in self.world.licensed.items():
                if not licensed and not self.world.synced[key]:
                    self.world.synced[key] = True


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runbooks")


KEYS = ["k1", "k2", "k3"]


def _start(store: RunStore, rb: Runbook, keys: list[str] = KEYS) -> str:
    targets = Targets(objects=[ObjectState(key=k, identity=k, upn=f"{k}@contoso.com") for k in keys],
                      source={"kind": "identity"})
    state = new_run(rb, targets, store=store, tenant="contoso", label="Contoso", profile="p", sandbox=True,
                    embedded=False, options={"verify_delay_s": 0})
    return state.run_id


def _services() -> Services:
    return Services(exo=None)  # type: ignore[arg-type]  # the toy runbook talks to its World only


def _executor(store: RunStore, rb: Runbook, run_id: str, fake: FakeTime, *, confirm: str | None = None,
              manual: bool = False) -> RunExecutor:
    def confirm_fn(request: GateRequest, attempt: int, error: str) -> str | None:
        return confirm if attempt == 1 else None

    hooks = RunHooks(confirm=confirm_fn, manual=lambda request: manual)
    return RunExecutor(rb, store.load(run_id), store, _services(), hooks=hooks, clock=fake.clock, sleep=fake.sleep,
                       actor="tester")


def _audit(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    return store.read_audit(run_id).records


def test_gate_stops_the_run_until_the_exact_tenant_and_count_are_typed(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    fake = FakeTime(world)
    for wrong in (None, "contoso:2", "contoso:4", "fabrikam:3", "CONTOSO:3 ", "contoso: 3", "3", ""):
        outcome = _executor(store, rb, run_id, fake, confirm=wrong).run()
        assert outcome.status == "needs_confirmation"
        assert outcome.gate is not None and outcome.gate.expected == "contoso:3"
        assert not any(op == "clear" for op, _ in world.writes)
    refused = [r for r in _audit(store, run_id) if r["event"] == "refused"]
    assert len(refused) == 7  # every typed answer that was wrong; None is "not typed"
    outcome = _executor(store, rb, run_id, fake, confirm="contoso:3").run()
    assert outcome.status == "needs_manual"
    assert sorted(k for op, k in world.writes if op == "clear") == KEYS
    gates = store.load(run_id).gates["gate"]
    assert gates[0]["count"] == 3 and gates[0]["by"] == "tester" and sorted(gates[0]["objects"]) == KEYS


def test_a_confirmation_covers_only_the_objects_that_reached_the_gate(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    fake = FakeTime(world)
    del world.licensed["k3"]  # k3 disappears before the run: it is skipped at the first check
    world.synced.pop("k3")
    outcome = _executor(store, rb, run_id, fake, confirm="contoso:3").run()
    assert outcome.status == "needs_confirmation" and outcome.gate is not None
    assert outcome.gate.count == 2 and not any(op == "clear" for op, _ in world.writes)
    assert store.load(run_id).objects["k3"].status == "skipped"
    outcome = _executor(store, rb, run_id, fake, confirm="contoso:2").run()
    assert outcome.status == "needs_manual"


def test_resume_after_a_crash_after_the_action_reads_back_and_never_sends_it_again(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    fake = FakeTime(world)
    world.crash_after = "unlicense"  # the first object's write lands, then the process dies
    with pytest.raises(Crash):
        _executor(store, rb, run_id, fake).run()
    state = store.load(run_id)
    assert [state.objects[k].step_state("unlicense").status for k in KEYS] == ["intent"] * 3
    outcome = _executor(store, rb, run_id, fake).run()
    assert outcome.status == "needs_confirmation"
    assert sorted(world.writes) == sorted(("unlicense", k) for k in KEYS)  # k1 exactly once
    verified = [r for r in _audit(store, run_id) if r["event"] == "verified" and r["object"] == "k1"]
    assert "not sent again" in verified[0]["detail"]


def test_resume_after_a_crash_between_intent_and_action_acts_exactly_once(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    fake = FakeTime(world)
    world.crash_before = "unlicense"  # intent recorded, nothing sent
    with pytest.raises(Crash):
        _executor(store, rb, run_id, fake).run()
    assert world.writes == []
    _executor(store, rb, run_id, fake).run()
    assert sorted(world.writes) == sorted(("unlicense", k) for k in KEYS)
    intents = [r for r in _audit(store, run_id) if r["event"] == "intent" and r["object"] == "k1"]
    assert len(intents) == 2  # the second intent follows a read-back that showed nothing applied


def test_wait_times_out_into_a_paused_run_and_resume_keeps_waiting(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    fake = FakeTime(world, sync_after_sleeps=10**9)  # no sync ever happens in this first run
    outcome = _executor(store, rb, run_id, fake).run()
    assert outcome.status == "waiting" and "resume later" in outcome.message
    assert fake.sleeps == 10  # 600 s timeout / 60 s interval, all on the fake clock
    assert store.load(run_id).status == "waiting"
    fake.sync_after = 0  # the next sleep runs a sync
    outcome = _executor(store, rb, run_id, fake).run()
    assert outcome.status == "needs_confirmation"


def test_manual_step_passes_only_when_the_verification_shows_it_done(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    fake = FakeTime(world)
    _executor(store, rb, run_id, fake, confirm="contoso:3").run()
    seen: list[ManualRequest] = []

    def say_done(request: ManualRequest) -> bool:
        seen.append(request)
        return len(seen) < 3  # the admin claims "done" twice, then gives up

    executor = _executor(store, rb, run_id, fake)
    executor.hooks.manual = say_done
    outcome = executor.run()
    assert outcome.status == "needs_manual" and len(seen) == 3
    assert seen[0].items[0].instructions == "do the thing for k1"
    world.synced["k1"] = 2  # the tenant now shows k1 done: only k1 passes
    outcome = _executor(store, rb, run_id, fake).run()
    assert outcome.status == "needs_manual" and outcome.manual is not None
    assert [i.key for i in outcome.manual.items] == ["k2", "k3"]
    world.synced.update(k2=2, k3=2)
    outcome = _executor(store, rb, run_id, fake).run()
    assert outcome.status == "completed" and outcome.counts["done"] == 3


def test_two_processes_never_drive_one_run(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    with store.locked(run_id), pytest.raises(RunLocked):
        _executor(store, rb, run_id, FakeTime(world)).run()
    assert world.writes == []


def test_audit_log_is_fsynced_json_lines_with_who_when_tenant_object_step_before_after(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    _executor(store, rb, run_id, FakeTime(world)).run()
    records = _audit(store, run_id)
    action = next(r for r in records if r["event"] == "action" and r["object"] == "k2")
    for key in ("actor", "at", "tenant", "object", "step", "before", "after", "outcome"):
        assert key in action
    assert action["actor"] == "tester" and action["tenant"] == "contoso" and action["step"] == "unlicense"
    assert action["before"] == {"licensed": True} and action["after"] == {"removed": True}


def test_a_torn_audit_line_is_cut_and_the_resumed_run_appends_after_it(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    fake = FakeTime(world)
    _executor(store, rb, run_id, fake).run()
    path = store.audit_path(run_id)
    with path.open("ab") as handle:
        handle.write(b'{"type": "audit", "event": "half-writ')
    _executor(store, rb, run_id, fake, confirm="contoso:3").run()
    contents = read_journal(path)
    assert contents.warnings == []
    seqs = [r["seq"] for r in contents.records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert any(r["event"] == "confirmed" for r in contents.records)


def test_state_file_is_replaced_atomically_and_a_broken_one_is_one_clear_error(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    path = store.state_path(run_id)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(path.read_text())["run_id"] == run_id
    assert not list(path.parent.glob(".*.tmp"))
    path.write_text('{"schema": 1, "run_id": ')
    with pytest.raises(RunStateError, match="cannot read the state"):
        store.load(run_id)
    with pytest.raises(RunStateError, match="no runbook run"):
        store.load("nope")


def test_cancel_stops_between_objects_and_resume_finishes(store: RunStore) -> None:
    world = World(KEYS)
    rb = toy_runbook(world)
    run_id = _start(store, rb)
    fake = FakeTime(world)
    cancel = threading.Event()
    executor = _executor(store, rb, run_id, fake)
    executor.cancel = cancel
    original = world.write

    def write_then_cancel(op: str, key: str) -> None:
        original(op, key)
        cancel.set()

    world.write = write_then_cancel  # type: ignore[method-assign]
    assert executor.run().status == "interrupted"
    world.write = original  # type: ignore[method-assign]
    assert _executor(store, rb, run_id, fake).run().status == "needs_confirmation"
    assert sorted(world.writes) == sorted(("unlicense", k) for k in KEYS)


@pytest.fixture(autouse=True)
def _no_crash_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("EXOCM_TEST_CRASH_AT", raising=False)
    yield
