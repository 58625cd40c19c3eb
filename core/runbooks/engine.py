"""The runbook engine: steps with preconditions, actions and verifications, run per object,
persisted after every change, resumable after a kill at any moment.

A runbook is a list of steps. Each step has a kind:

- `automatic`: check (verification first: already done means nothing to do), precondition,
  record the *intent* (state file + audit, fsynced), act, read back (verification), record.
- `wait_until`: poll the verification every `interval_s` until it holds for every object or
  `timeout_s` passes (the run then pauses; resume polls again).
- `manual`: tell the admin exactly what to do; the step passes only when the verification
  shows the state done (never on the admin's word).
- `gate`: a typed confirmation `<tenant>:<count>` for the objects at the gate; never passed
  without it, and the confirmation covers exactly those objects.

Objects move in lock-step: every active object finishes a step (or fails, or is skipped)
before any object starts the next, so a gate sees every object that reached it. A step that
blocks (gate unconfirmed, manual step not done, wait timed out, a service error) stops the run
there; `resume` continues from the state file.

Idempotency: an object whose step is `intent` after a crash is re-checked by reading the
tenant (verification) before anything else; a done action is never sent again. Every outcome
goes to the audit log (who, when, tenant, object, step, before, after, outcome).

Time is injectable (`clock` returns epoch seconds, `sleep` waits) so tests poll fast.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..access.config import ConfigError
from ..bridge.base import Bridge
from ..bridge.errors import AppliedUnknown, AuthFailed, BridgeError, Transient
from ..bridge.graph import GraphBridge
from ..execute.journal import JournalWriter, local_actor
from .state import ObjectState, RunState, RunStore, utc_iso

log = logging.getLogger(__name__)

StepKind = Literal["automatic", "wait_until", "manual", "gate"]
STEP_KINDS: Final = ("automatic", "wait_until", "manual", "gate")
#: Objects handled per group commit of intents/outcomes (one state write per group).
CHUNK_SIZE: Final = 10
#: Environment hook for crash tests: "<step>" or "<step>:<phase>" (phase start|intent|action|done).
CRASH_ENV: Final = "EXOCM_TEST_CRASH_AT"
CRASH_EXIT_CODE: Final = 137


# ----------------------------------------------------------------------------- step definitions
@dataclass(frozen=True)
class Check:
    """The answer of a precondition or verification: ok, why, and the values observed."""

    ok: bool
    detail: str = ""
    observed: dict[str, Any] | None = None


@dataclass
class Services:
    """What steps talk to: EXO (REST bridge), Microsoft Graph, on-prem Exchange/AD (PSRP bridge)."""

    exo: Bridge
    graph: GraphBridge | None = None
    onprem: Bridge | None = None
    #: Change on-prem AD group membership over PSRP (else a manual step asks the admin to).
    onprem_group_changes: bool = False
    #: The tenant is an embedded sandbox that ends with this process (its runs cannot be resumed elsewhere).
    embedded: bool = False

    def close(self) -> None:
        """Close every connection (best effort)."""
        for client in (self.graph, self.onprem, self.exo):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing must not hide the run's outcome
                    pass


@dataclass
class StepContext:
    """What a step function sees: the services, the object (with its recorded facts), the tenant."""

    services: Services
    obj: ObjectState
    tenant: str
    options: Mapping[str, Any]

    @property
    def facts(self) -> dict[str, Any]:
        """Facts recorded for this object by earlier steps (persisted with the state)."""
        return self.obj.facts

    @property
    def exo(self) -> Bridge:
        """The Exchange Online bridge."""
        return self.services.exo

    @property
    def graph(self) -> GraphBridge:
        """The Graph client (ConfigError when the connection has none)."""
        if self.services.graph is None:
            raise ConfigError("this step needs Microsoft Graph, and the connection has no Graph endpoint")
        return self.services.graph

    @property
    def onprem(self) -> Bridge:
        """The on-prem Exchange/AD bridge (ConfigError when none is configured)."""
        if self.services.onprem is None:
            raise ConfigError("this step needs the on-prem Exchange endpoint (WinRM): set extra.onprem_url in "
                              "the profile or pass --onprem-host")
        return self.services.onprem


CheckFn = Callable[[StepContext], Check]
ActionFn = Callable[[StepContext], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Step:
    """One step of a runbook.

    `precondition`: must hold before the action (else the object fails, or is skipped when
    `skip_when_unmet`). `action`: changes the tenant (or, with `writes=False`, only reads
    and records facts); returns values for the audit log. `verify`: reads the tenant and
    says whether the step's effect is in place (checked before acting, after acting, after a
    crash, and polled by waits and manual steps). `applies`: False skips the step for an
    object. `instructions` (manual) and `gate_text` (gate) are what the admin reads.
    """

    id: str
    title: str
    kind: StepKind = "automatic"
    precondition: CheckFn | None = None
    action: ActionFn | None = None
    verify: CheckFn | None = None
    applies: Callable[[StepContext], bool] | None = None
    instructions: Callable[[StepContext], str] | None = None
    gate_text: Callable[[int, str], str] | None = None
    interval_s: float = 60.0
    timeout_s: float = 2 * 3600.0
    writes: bool = True
    skip_when_unmet: bool = False
    irreversible: bool = False

    def __post_init__(self) -> None:
        if self.kind not in STEP_KINDS:
            raise ValueError(f"step {self.id}: unknown kind {self.kind!r}")
        if self.kind in ("wait_until", "manual") and self.verify is None:
            raise ValueError(f"step {self.id}: a {self.kind} step needs a verification")
        if self.kind == "gate" and self.gate_text is None:
            raise ValueError(f"step {self.id}: a gate needs its text")
        if self.kind == "automatic" and self.action is not None and self.writes and self.verify is None:
            # Without a read-back a resumed run could not tell a done action from one never sent.
            raise ValueError(f"step {self.id}: an action that writes needs a verification")


@dataclass(frozen=True)
class Runbook:
    """A named list of steps; `requires` names services the run cannot start without."""

    name: str
    title: str
    description: str
    steps: tuple[Step, ...]
    fixes: tuple[str, ...] = ()
    requires: frozenset[str] = frozenset()
    version: int = 1

    def __post_init__(self) -> None:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"runbook {self.name}: duplicate step ids")

    def step(self, step_id: str) -> Step:
        """The step called `step_id`."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def gates(self) -> tuple[Step, ...]:
        """The gate steps."""
        return tuple(s for s in self.steps if s.kind == "gate")


# ----------------------------------------------------------------------------- faces' hooks
@dataclass(frozen=True)
class GateRequest:
    """What a face shows at a gate: the text, the count, the tenant, and the objects concerned."""

    run_id: str
    step: str
    title: str
    text: str
    tenant: str
    count: int
    objects: tuple[str, ...]

    @property
    def expected(self) -> str:
        """The confirmation that passes this gate: '<tenant>:<count>'."""
        return confirmation_text(self.tenant, self.count)


@dataclass(frozen=True)
class ManualItem:
    """One object's manual instruction."""

    key: str
    label: str
    instructions: str
    detail: str = ""


@dataclass(frozen=True)
class ManualRequest:
    """A manual step waiting for the admin: what to do, per object."""

    run_id: str
    step: str
    title: str
    items: tuple[ManualItem, ...]


@dataclass(frozen=True)
class RunEvent:
    """Progress of a run for the faces: kind is step | object | wait | gate | manual | finished."""

    kind: str
    run_id: str
    step: str = ""
    message: str = ""
    object: str = ""
    status: str = ""
    pending: int = 0
    total: int = 0
    remaining_s: float | None = None
    next_poll_s: float | None = None


ConfirmFn = Callable[[GateRequest, int, str], "str | None"]
ManualFn = Callable[[ManualRequest], bool]
EventFn = Callable[[RunEvent], None]


def _no_confirmation(request: GateRequest, attempt: int, error: str) -> str | None:
    return None


def _stop_at_manual(request: ManualRequest) -> bool:
    return False


def _ignore(event: RunEvent) -> None:
    return None


@dataclass
class RunHooks:
    """How a face answers: `confirm(request, attempt, error)` returns typed text or None (stop);
    `manual(request)` returns True to check again now, False to stop; `on_event` shows progress."""

    confirm: ConfirmFn = _no_confirmation
    manual: ManualFn = _stop_at_manual
    on_event: EventFn = _ignore


def confirmation_text(tenant: str, count: int) -> str:
    """The exact text that confirms a gate for `count` objects of `tenant`."""
    return f"{tenant}:{count}"


@dataclass
class RunOutcome:
    """Where a run stopped: status (see state.RUN_STATUSES), one line, and what it waits for."""

    status: str
    message: str
    gate: GateRequest | None = None
    manual: ManualRequest | None = None
    counts: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------- crash hook
def _crash_point(step: str, phase: str) -> None:
    """Test hook: exit at once (like kill -9, nothing flushed) when EXOCM_TEST_CRASH_AT names this point."""
    want = os.environ.get(CRASH_ENV)
    if not want:
        return
    name, _, at = want.partition(":")
    if name == step and (at or "action") == phase:
        os._exit(CRASH_EXIT_CODE)


class _Blocked(Exception):
    """Internal: the current step cannot finish now; the run stops with this outcome."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


# ----------------------------------------------------------------------------- the executor
class RunExecutor:
    """Drives one run until it completes or blocks; call `run()` again (any process) to resume."""

    def __init__(self, runbook: Runbook, state: RunState, store: RunStore, services: Services, *,
                 hooks: RunHooks | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, cancel: threading.Event | None = None,
                 actor: str | None = None) -> None:
        if state.runbook != runbook.name:
            raise ConfigError(f"run {state.run_id} belongs to runbook {state.runbook}, not {runbook.name}")
        if list(state.steps) != [s.id for s in runbook.steps]:
            raise ConfigError(f"run {state.run_id} was made by another version of runbook {runbook.name} "
                              "(its steps differ); start a new run")
        self.runbook = runbook
        self.state = state
        self.store = store
        self.services = services
        self.hooks = hooks or RunHooks()
        self.clock = clock
        self.sleep = sleep
        self.cancel = cancel or threading.Event()
        self.actor = actor or local_actor()
        self._audit: JournalWriter | None = None

    # -- public ----------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        """Run from where the state stands until done or blocked; the state is saved throughout."""
        state = self.state
        if state.status == "aborted":
            return RunOutcome("aborted", f"run {state.run_id} was aborted; start a new run", counts=state.counts())
        with self.store.locked(state.run_id):
            self._audit = self.store.open_audit(state)
            log.info("runbook %s run %s started (status %s, %d objects) on tenant %s", state.runbook, state.run_id,
                     state.status, len(state.objects), state.tenant)
            try:
                self._check_services()
                outcome = self._run_locked()
            except _Blocked as blocked:
                outcome = blocked.outcome
            except (AuthFailed, ConfigError) as exc:
                message = exc.message if isinstance(exc, BridgeError) else str(exc)
                outcome = RunOutcome("error", f"stopped: {message}")
                self._finish(outcome)
                raise
            except KeyboardInterrupt:
                self._finish(RunOutcome("interrupted", "interrupted; resume to continue"))
                raise
            except Exception as exc:
                log.exception("runbook %s run %s stopped by an unexpected error", state.runbook, state.run_id)
                self._finish(RunOutcome("error", f"stopped by an unexpected error ({type(exc).__name__}); "
                                                 "resume to continue"))
                raise
            finally:
                if self._audit is not None:
                    self._audit.close()
                    self._audit = None
        log.info("runbook %s run %s: %s (%s)", state.runbook, state.run_id, outcome.status, outcome.message)
        return outcome

    # -- main loop -------------------------------------------------------------------------
    def _check_services(self) -> None:
        missing = []
        if "graph" in self.runbook.requires and self.services.graph is None:
            missing.append("Microsoft Graph (set extra.graph_base_url, or use a Microsoft cloud profile)")
        if "onprem" in self.runbook.requires and self.services.onprem is None:
            missing.append("the on-prem Exchange endpoint over WinRM (extra.onprem_url or --onprem-host)")
        if missing:
            raise ConfigError(f"runbook {self.runbook.name} needs " + " and ".join(missing))

    def _run_locked(self) -> RunOutcome:
        state = self.state
        first = state.status == "new"
        state.status = "running"
        state.message = ""
        self._save()
        self._audit_event("run", "started" if first else "resumed", detail=f"{len(state.objects)} objects")
        for step in self.runbook.steps:
            objs = [o for o in state.objects.values() if o.status == "active" and o.step == step.id]
            if not objs:
                continue
            self._emit(RunEvent("step", state.run_id, step.id, step.title, total=len(objs), pending=len(objs)))
            _crash_point(step.id, "start")
            if step.kind == "automatic":
                self._automatic(step, objs)
            elif step.kind == "wait_until":
                self._wait(step, objs)
            elif step.kind == "manual":
                self._manual(step, objs)
            else:
                self._gate(step, objs)
            _crash_point(step.id, "done")
        counts = state.counts()
        failed = counts.get("failed", 0)
        done = counts.get("done", 0)
        skipped = counts.get("skipped", 0)
        message = f"completed: {done} fixed, {skipped} skipped, {failed} failed"
        outcome = RunOutcome("completed", message, counts=counts)
        self._finish(outcome)
        return outcome

    def _finish(self, outcome: RunOutcome) -> None:
        state = self.state
        state.status = outcome.status
        state.message = outcome.message
        outcome.counts = state.counts()
        self._save()
        self._audit_event("run", outcome.status, detail=outcome.message)
        self._emit(RunEvent("finished", state.run_id, status=outcome.status, message=outcome.message))

    def _block(self, outcome: RunOutcome) -> None:
        self._finish(outcome)
        raise _Blocked(outcome)

    # -- step kinds ------------------------------------------------------------------------
    def _context(self, obj: ObjectState) -> StepContext:
        return StepContext(self.services, obj, self.state.tenant, self.state.options)

    def _applies(self, step: Step, ctx: StepContext) -> bool:
        if step.applies is None or step.applies(ctx):
            return True
        self._advance(ctx.obj, step, "skipped", "not needed for this object")
        self._audit_event("step", "not_applicable", step=step, obj=ctx.obj)
        return False

    def _automatic(self, step: Step, objs: Sequence[ObjectState]) -> None:
        errors: list[str] = []
        for start in range(0, len(objs), CHUNK_SIZE):
            chunk = objs[start:start + CHUNK_SIZE]
            todo: list[tuple[StepContext, Check | None]] = []
            for obj in chunk:
                self._check_cancel()
                ctx = self._context(obj)
                try:
                    if not self._applies(step, ctx):
                        continue
                    prepared = self._prepare(step, ctx)
                except Transient as exc:
                    errors.append(f"{obj.label}: {exc.message}")
                    self._note_error(obj, step, exc.message)
                    continue
                except (AuthFailed, ConfigError):
                    raise
                except BridgeError as exc:
                    self._fail(obj, step, exc.message)
                    continue
                if isinstance(prepared, Check):
                    todo.append((ctx, prepared))
            if not todo:
                self._save()
                continue
            if step.writes:
                now = utc_iso(self.clock())
                for ctx, _ in todo:
                    st = ctx.obj.step_state(step.id)
                    st.status = "intent"
                    st.attempts += 1
                    st.started_at = st.started_at or now
                self._save()
                self._audit_many("intent", step, [(c.obj, b) for c, b in todo])
                _crash_point(step.id, "intent")
            for ctx, pre in todo:
                self._check_cancel()
                self._act(step, ctx, pre, errors)
            self._save()
        if errors:
            self._block(RunOutcome("error", f"step '{step.title}': {len(errors)} object(s) hit service errors "
                                            f"(first: {errors[0]}); resume to retry"))

    def _prepare(self, step: Step, ctx: StepContext) -> Check | bool:
        """Decide whether to act: False = no action (done, skipped or failed), else the 'before' check."""
        obj = ctx.obj
        st = obj.step_state(step.id)
        interrupted = st.status == "intent"
        seen: dict[str, Any] = {}
        if step.verify is not None and (step.writes or interrupted):
            check = step.verify(ctx)
            seen.update(check.observed or {})
            if check.ok:
                detail = ("the action of an interrupted run is in effect; not sent again" if interrupted
                          else "already in the desired state; nothing sent")
                self._advance(obj, step, "done", detail)
                self._audit_event("step", "verified", step=step, obj=obj, after=check.observed,
                                  outcome="done", detail=detail)
                return False
        if step.precondition is None:
            return Check(True, observed=seen or None)
        pre = step.precondition(ctx)
        seen.update(pre.observed or {})
        if not pre.ok:
            if step.skip_when_unmet:
                obj.status = "skipped"
                obj.reason = pre.detail
                self._advance(obj, step, "skipped", pre.detail, keep_status=True)
                self._audit_event("step", "skipped", step=step, obj=obj, before=pre.observed, outcome="skipped",
                                  detail=pre.detail)
            else:
                self._fail(obj, step, f"precondition not met: {pre.detail}", observed=pre.observed)
            return False
        if step.action is None:
            self._advance(obj, step, "done", pre.detail)
            self._audit_event("step", "checked", step=step, obj=obj, before=pre.observed, outcome="done",
                              detail=pre.detail)
            return False
        return Check(True, pre.detail, seen or None)

    def _act(self, step: Step, ctx: StepContext, before: Check | None, errors: list[str]) -> None:
        obj = ctx.obj
        assert step.action is not None
        error: BridgeError | None = None
        result: dict[str, Any] | None = None
        try:
            result = step.action(ctx)
        except (AuthFailed, ConfigError):
            raise
        except BridgeError as exc:
            error = exc
        _crash_point(step.id, "action")
        self._audit_event("step", "action" if step.writes else "observed", step=step, obj=obj,
                          before=before.observed if before else None, after=result,
                          outcome="error" if error else ("sent" if step.writes else "read"),
                          detail=error.message if error else "")
        if step.verify is None:
            if error is None:
                self._advance(obj, step, "done", "")
            elif isinstance(error, Transient | AppliedUnknown):
                errors.append(f"{obj.label}: {error.message}")
                self._note_error(obj, step, error.message)
            else:
                self._fail(obj, step, error.message)
            return
        try:
            check = self._verify_after(step, ctx)
        except Transient as exc:
            errors.append(f"{obj.label}: {exc.message}")
            self._note_error(obj, step, exc.message)
            return
        except BridgeError as exc:
            self._fail(obj, step, exc.message)
            return
        if check.ok:
            self._advance(obj, step, "done", check.detail)
            self._audit_event("step", "verified", step=step, obj=obj, after=check.observed, outcome="done",
                              detail=check.detail)
        elif error is not None and isinstance(error, Transient | AppliedUnknown):
            # Not applied (read back): safe to try again on resume; the intent stays open until then.
            errors.append(f"{obj.label}: {error.message}")
            self._note_error(obj, step, error.message)
        else:
            reason = error.message if error is not None else f"verification failed after the action: {check.detail}"
            self._fail(obj, step, reason, observed=check.observed)

    def _verify_after(self, step: Step, ctx: StepContext) -> Check:
        """Verification right after an action, re-read a few times (services answer reads a little late)."""
        assert step.verify is not None
        attempts = int(self.state.options.get("verify_attempts", 3))
        delay = float(self.state.options.get("verify_delay_s", 2.0))
        check = step.verify(ctx)
        for _ in range(max(attempts - 1, 0)):
            if check.ok:
                break
            self.sleep(delay)
            check = step.verify(ctx)
        return check

    def _wait(self, step: Step, objs: Sequence[ObjectState]) -> None:
        assert step.verify is not None
        interval = float(self.state.options.get("poll_interval_s") or step.interval_s)
        timeout = float(self.state.options.get("wait_timeout_s") or step.timeout_s)
        pending: list[StepContext] = []
        now = utc_iso(self.clock())
        for obj in objs:
            ctx = self._context(obj)
            if self._applies(step, ctx):
                st = obj.step_state(step.id)
                st.started_at = st.started_at or now
                pending.append(ctx)
        self._save()
        deadline = self.clock() + timeout
        total = len(pending)
        polls = 0
        while pending:
            self._check_cancel()
            polls += 1
            still: list[StepContext] = []
            for ctx in pending:
                check = self._poll(step, ctx)
                if check is None:
                    continue
                if check.ok:
                    self._advance(ctx.obj, step, "done", check.detail)
                    self._audit_event("step", "waited", step=step, obj=ctx.obj, after=check.observed,
                                      outcome="done", detail=f"{check.detail} (after {polls} checks)")
                else:
                    ctx.obj.step_state(step.id).detail = check.detail
                    still.append(ctx)
            if len(still) != len(pending):
                self._save()
            pending = still
            if not pending:
                break
            remaining = deadline - self.clock()
            if remaining <= 0:
                self._save()
                first = pending[0].obj
                detail = first.step_state(step.id).detail
                self._block(RunOutcome(
                    "waiting",
                    f"'{step.title}': {len(pending)} of {total} object(s) not there yet after "
                    f"{_duration(timeout)} (e.g. {first.label}: {detail}); resume later to keep waiting"))
            nap = min(interval, max(remaining, 0.0))
            self._emit(RunEvent("wait", self.state.run_id, step.id, step.title, pending=len(pending), total=total,
                                remaining_s=remaining, next_poll_s=nap))
            self.sleep(nap)

    def _poll(self, step: Step, ctx: StepContext) -> Check | None:
        """One verification for a wait or manual step: None when the object failed for good."""
        assert step.verify is not None
        try:
            return step.verify(ctx)
        except Transient as exc:
            return Check(False, f"could not read the state ({exc.message})")
        except (AuthFailed, ConfigError):
            raise
        except BridgeError as exc:
            self._fail(ctx.obj, step, exc.message)
            return None

    def _manual(self, step: Step, objs: Sequence[ObjectState]) -> None:
        assert step.verify is not None
        pending: list[StepContext] = []
        for obj in objs:
            ctx = self._context(obj)
            if self._applies(step, ctx):
                pending.append(ctx)
        shown: set[str] = set()
        while True:
            self._check_cancel()
            still: list[StepContext] = []
            for ctx in pending:
                check = self._poll(step, ctx)
                if check is None:
                    continue
                if check.ok:
                    self._advance(ctx.obj, step, "done", check.detail)
                    self._audit_event("step", "manual_verified", step=step, obj=ctx.obj, after=check.observed,
                                      outcome="done", detail=check.detail)
                else:
                    ctx.obj.step_state(step.id).detail = check.detail
                    still.append(ctx)
            self._save()
            pending = still
            if not pending:
                return
            items = []
            for ctx in pending:
                text = step.instructions(ctx) if step.instructions is not None else step.title
                items.append(ManualItem(ctx.obj.key, ctx.obj.label, text, ctx.obj.step_state(step.id).detail))
                if ctx.obj.key not in shown:
                    shown.add(ctx.obj.key)
                    self._audit_event("step", "manual_requested", step=step, obj=ctx.obj, outcome="waiting",
                                      detail=text)
            request = ManualRequest(self.state.run_id, step.id, step.title, tuple(items))
            self._emit(RunEvent("manual", self.state.run_id, step.id, step.title, pending=len(pending),
                                total=len(objs)))
            if not self.hooks.manual(request):
                self._block(RunOutcome(
                    "needs_manual",
                    f"'{step.title}' needs you for {len(pending)} object(s); do it, then resume "
                    "(the step passes only when the tenant shows it done)", manual=request))

    def _gate(self, step: Step, objs: Sequence[ObjectState]) -> None:
        assert step.gate_text is not None
        pending = [o for o in objs if self._applies(step, self._context(o))]
        if not pending:
            return
        tenant = self.state.tenant
        request = GateRequest(self.state.run_id, step.id, step.title, step.gate_text(len(pending), tenant),
                              tenant, len(pending), tuple(o.label for o in pending))
        self._emit(RunEvent("gate", self.state.run_id, step.id, request.text, pending=len(pending),
                            total=len(pending)))
        error = ""
        for attempt in range(1, 4):
            typed = self.hooks.confirm(request, attempt, error)
            if typed is None:
                break
            if typed.strip() == request.expected:
                now = utc_iso(self.clock())
                record = {"at": now, "by": self.actor, "count": len(pending), "tenant": tenant,
                          "objects": [o.key for o in pending]}
                self.state.gates.setdefault(step.id, []).append(record)
                for obj in pending:
                    self._advance(obj, step, "done", f"confirmed by {self.actor}")
                self._save()
                for obj in pending:
                    self._audit_event("gate", "confirmed", step=step, obj=obj, outcome="done",
                                      detail=f"typed confirmation for {len(pending)} object(s)")
                return
            error = (f"the confirmation must be exactly '<tenant>:<count>' for tenant {tenant} and "
                     f"{len(pending)} object(s)")
            self._audit_event("gate", "refused", step=step, outcome="refused",
                              detail=f"wrong confirmation typed (attempt {attempt})")
        self._block(RunOutcome("needs_confirmation",
                               f"'{step.title}' needs a typed confirmation: {request.text}", gate=request))

    # -- bookkeeping -----------------------------------------------------------------------
    def _advance(self, obj: ObjectState, step: Step, status: str, detail: str, *, keep_status: bool = False) -> None:
        st = obj.step_state(step.id)
        st.status = status
        st.detail = detail
        st.error = None
        st.finished_at = utc_iso(self.clock())
        if keep_status:
            return
        ids = [s.id for s in self.runbook.steps]
        index = ids.index(step.id)
        if index + 1 < len(ids):
            obj.step = ids[index + 1]
        else:
            obj.status = "done"
            obj.step = ""
        self._emit(RunEvent("object", self.state.run_id, step.id, detail, object=obj.label, status=status))

    def _fail(self, obj: ObjectState, step: Step, reason: str, *, observed: dict[str, Any] | None = None) -> None:
        st = obj.step_state(step.id)
        st.status = "failed"
        st.error = reason
        st.finished_at = utc_iso(self.clock())
        obj.status = "failed"
        obj.reason = f"{step.title}: {reason}"
        self._audit_event("step", "failed", step=step, obj=obj, after=observed, outcome="failed", detail=reason)
        self._emit(RunEvent("object", self.state.run_id, step.id, reason, object=obj.label, status="failed"))

    def _note_error(self, obj: ObjectState, step: Step, message: str) -> None:
        st = obj.step_state(step.id)
        st.error = message
        self._audit_event("step", "error", step=step, obj=obj, outcome="retry_on_resume", detail=message)

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            self._block(RunOutcome("interrupted", "stopped on request; resume to continue"))

    def _save(self) -> None:
        self.store.save(self.state, now=self.clock())

    def _emit(self, event: RunEvent) -> None:
        try:
            self.hooks.on_event(event)
        except Exception:  # noqa: BLE001 - a display failure must not break the run
            pass

    def _record(self, event: str, kind: str, *, step: Step | None = None, obj: ObjectState | None = None,
                before: Any = None, after: Any = None, outcome: str = "", detail: str = "") -> dict[str, Any]:
        return {
            "type": "audit", "event": kind, "category": event, "actor": self.actor,
            "tenant": self.state.tenant, "runbook": self.state.runbook,
            "object": obj.key if obj is not None else None, "upn": obj.upn if obj is not None else None,
            "step": step.id if step is not None else None, "step_kind": step.kind if step is not None else None,
            "before": before, "after": after, "outcome": outcome, "detail": detail,
        }

    def _audit_event(self, event: str, kind: str, **kw: Any) -> None:
        assert self._audit is not None
        self._audit.append([self._record(event, kind, **kw)])

    def _audit_many(self, kind: str, step: Step, items: Iterable[tuple[ObjectState, Check | None]]) -> None:
        assert self._audit is not None
        self._audit.append([self._record("step", kind, step=step, obj=obj,
                                         before=check.observed if check is not None else None,
                                         outcome="pending", detail="about to act")
                            for obj, check in items])


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
