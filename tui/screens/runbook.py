"""The Runbook screen: a run's steps and objects, live; waits with a countdown; the gate dialog.

A new run first shows core's RunPreview in a modal (steps, objects, which steps write, which are
irreversible); nothing is created or written unless Confirm is pressed.
The run is driven by core's RunExecutor in a thread worker. Its hooks come back to the UI
thread with `call_from_thread`: progress refreshes the tables, a gate opens the typed
confirmation dialog ("<tenant>:<count>", never passed without it), a manual step shows its
instructions and waits for `c` (check again: the step passes only when the tenant shows it
done) or `s` (stop; resume later from here or `exocm runbook resume RUN`). Esc stops a running
run at the next safe point (the state is saved; nothing is lost) and goes back.
"""
from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from exocm.core.app.failures import failure_line
from exocm.core.runbooks import (
    GateRequest,
    ManualRequest,
    RunEvent,
    RunExecutor,
    RunHooks,
    RunOutcome,
    RunPreview,
    RunState,
    RunStore,
    get_runbook,
    new_run,
    preview_run,
    resolve_identities,
)
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, RichLog, Static

from ..widgets.confirm_modal import ConfirmModal
from ..widgets.runbook_preview_modal import RunbookPreviewModal
from ..widgets.tenant_header import TenantHeader

#: Rows shown in the objects table (a note says when a batch is larger).
MAX_OBJECT_ROWS = 500
STATUS_STYLE = {"done": "green", "failed": "bold red", "skipped": "blue", "active": "yellow"}


class _Answer:
    """A value handed from the UI thread to the worker."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value
        self.event.set()

    def wait(self, cancel: threading.Event) -> Any:
        while not self.event.wait(0.1):
            if cancel.is_set():
                return None
        return self.value


class RunbookScreen(Screen[None]):
    """Start a runbook for some objects (`runbook`, `identities`) or continue a saved run (`run_id`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop_or_back", "Stop / back", id="runbook.back"),
        Binding("c", "check_again", "Check again", id="runbook.check"),
        Binding("s", "stop_manual", "Stop here", id="runbook.stop"),
        Binding("r", "resume", "Resume", id="runbook.resume"),
    ]

    DEFAULT_CSS = """
    RunbookScreen #runbook-summary { height: auto; padding: 0 1; background: $boost; }
    RunbookScreen #runbook-body { height: 1fr; }
    RunbookScreen #runbook-steps-pane { width: 64; border-right: tall $panel; }
    RunbookScreen #runbook-steps { height: 1fr; }
    RunbookScreen #runbook-objects-pane { width: 1fr; }
    RunbookScreen #runbook-objects { height: 1fr; }
    RunbookScreen #runbook-status { height: auto; min-height: 1; padding: 0 1; border-top: tall $panel; }
    RunbookScreen #runbook-log { height: 8; border-top: tall $panel; }
    """

    def __init__(self, *, runbook: str | None = None, identities: list[str] | None = None,
                 run_id: str | None = None, onprem_group_changes: bool = False,
                 options: dict[str, Any] | None = None) -> None:
        super().__init__()
        if run_id is None and (runbook is None or not identities):
            raise ValueError("give a runbook and identities, or a run id")
        self.runbook_name = runbook
        self.identities = list(identities or [])
        self.run_id = run_id
        self.onprem_group_changes = onprem_group_changes
        self.options = dict(options or {})
        self.cancel_event = threading.Event()
        self.running = False
        self.state: RunState | None = None
        self.outcome: RunOutcome | None = None
        self.error: str | None = None
        self._manual: _Answer | None = None
        self.countdown = ""
        self.status_text = ""

    def compose(self) -> ComposeResult:
        yield TenantHeader("Runbook")
        yield Static("Starting…", id="runbook-summary")
        with Horizontal(id="runbook-body"):
            with Vertical(id="runbook-steps-pane"):
                yield Static("Steps", classes="pane-title")
                yield DataTable(id="runbook-steps", cursor_type="row", zebra_stripes=True)
            with Vertical(id="runbook-objects-pane"):
                yield Static("Objects", classes="pane-title", id="runbook-objects-title")
                yield DataTable(id="runbook-objects", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runbook-status")
        yield RichLog(id="runbook-log", max_lines=2000, wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runbook-steps", DataTable).add_columns("#", "Step", "Kind", "Done", "Here")
        self.query_one("#runbook-objects", DataTable).add_columns("Object", "Status", "Step", "Detail")
        self._start()

    def on_unmount(self) -> None:
        # the app is closing (or the screen is gone): a worker waiting for an answer must not wait forever
        self.cancel_event.set()

    # -- the worker --------------------------------------------------------------------------
    def _start(self) -> None:
        self.running = True
        self.cancel_event.clear()
        self.outcome = None
        self.error = None
        self._drive()

    @work(thread=True, exclusive=True, group="runbook")
    def _drive(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        factory = getattr(session, "runbook_services", None) if session is not None else None
        if factory is None:
            self.app.call_from_thread(self._finished, None, "this connection cannot run runbooks")
            return
        outcome: RunOutcome | None = None
        error: str | None = None
        try:
            services = factory(self.onprem_group_changes)
        except Exception as exc:  # noqa: BLE001 - one line for the user
            self.app.call_from_thread(self._finished, None, failure_line(exc, "runbook services"))
            return
        try:
            store = RunStore(session.data_dir / "runbooks")
            if self.run_id is None:
                assert self.runbook_name is not None
                rb = get_runbook(self.runbook_name)
                targets = resolve_identities(services.exo, [("TUI", i) for i in self.identities],
                                             source={"kind": "tui", "values": self.identities})
                for issue in targets.issues:
                    self.app.call_from_thread(self._log, f"skipped: {issue}")
                if not targets.objects:
                    raise ValueError("nothing to do: no object to run the runbook on")
                options = {**self.options, "onprem_group_changes": self.onprem_group_changes}
                if services.embedded:  # the embedded sandbox syncs every few seconds, not every 30 min
                    options.setdefault("poll_interval_s", 1.0)
                options.update(session.embedded_source())  # 'runbook resume' reopens the same embedded sandbox
                preview = preview_run(rb, targets.objects, tenant=services.exo.tenant, label=session.label)
                if preview.writes and not self._ask_start(preview):
                    self.app.call_from_thread(self._not_started)
                    return
                state = new_run(rb, targets, store=store, tenant=services.exo.tenant, label=session.label,
                                profile=None if services.embedded else session.profile_name,
                                sandbox=bool(session.is_sandbox), embedded=services.embedded, options=options)
                self.run_id = state.run_id
            else:
                state = store.load(self.run_id)
                rb = get_runbook(state.runbook)
            self.state = state
            self.app.call_from_thread(self._refresh, self._snapshot(), None)
            hooks = RunHooks(confirm=self._confirm, manual=self._ask_manual, on_event=self._on_event)
            outcome = RunExecutor(rb, state, store, services, hooks=hooks, sleep=self._sleep,
                                  cancel=self.cancel_event).run()
        except Exception as exc:  # noqa: BLE001 - shown; the run's state is saved as it stood
            error = failure_line(exc, "runbook", also=(ValueError,))
        finally:
            services.close()
        self.app.call_from_thread(self._finished, outcome, error)

    # -- hooks (worker thread) ---------------------------------------------------------------
    def _on_event(self, event: RunEvent) -> None:
        self.app.call_from_thread(self._refresh, self._snapshot(), event)

    def _confirm(self, request: GateRequest, attempt: int, error: str) -> str | None:
        answer = _Answer()
        self.app.call_from_thread(self._ask_gate, request, error, answer)
        value: str | None = answer.wait(self.cancel_event)
        return value

    def _ask_start(self, preview: RunPreview) -> bool:
        """The preview modal (steps, objects, writes, irreversible steps); True only on Confirm."""
        answer = _Answer()
        self.app.call_from_thread(self._show_preview, preview, answer)
        return bool(answer.wait(self.cancel_event))

    def _ask_manual(self, request: ManualRequest) -> bool:
        answer = _Answer()
        self.app.call_from_thread(self._show_manual, request, answer)
        return bool(answer.wait(self.cancel_event))

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.cancel_event.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            self.app.call_from_thread(self._set_countdown, left)
            time.sleep(min(0.25, left))

    def _snapshot(self) -> dict[str, Any]:
        state = self.state
        if state is None:
            return {}
        rb = get_runbook(state.runbook)
        objects = list(state.objects.values())
        here: dict[str, int] = {}
        done: dict[str, int] = {}
        for obj in objects:
            if obj.status == "active":
                here[obj.step] = here.get(obj.step, 0) + 1
            for sid, st in obj.steps.items():
                if st.status in ("done", "skipped"):
                    done[sid] = done.get(sid, 0) + 1
        steps = [(i, s.title, s.kind, done.get(s.id, 0), here.get(s.id, 0)) for i, s in enumerate(rb.steps, 1)]
        rows = []
        for obj in objects[:MAX_OBJECT_ROWS]:
            st = obj.steps.get(obj.step)
            detail = obj.reason or (st.detail if st is not None else "")
            title = rb.step(obj.step).title if obj.step in state.steps else "-"
            rows.append((obj.label, obj.status, title, detail))
        return {"run_id": state.run_id, "runbook": rb.title, "status": state.status, "counts": state.counts(),
                "steps": steps, "objects": rows, "total": len(objects)}

    # -- UI thread ---------------------------------------------------------------------------
    def _refresh(self, snap: dict[str, Any], event: RunEvent | None) -> None:
        if snap:
            counts = snap["counts"]
            self.query_one("#runbook-summary", Static).update(Text(
                f"{snap['runbook']} · run {snap['run_id']} · {snap['total']} object(s): "
                f"{counts.get('done', 0)} done, {counts.get('active', 0)} in progress, "
                f"{counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped"))
            steps = self.query_one("#runbook-steps", DataTable)
            steps.clear()
            for number, title, kind, done, here in snap["steps"]:
                style = "bold" if here else ("dim" if done else "")
                steps.add_row(str(number), Text(title, style=style), kind, str(done), str(here or ""))
            objects = self.query_one("#runbook-objects", DataTable)
            objects.clear()
            for label, status, step, detail in snap["objects"]:
                objects.add_row(Text(label), Text(status, style=STATUS_STYLE.get(status, "")), Text(step),
                                Text(detail))
            more = snap["total"] - len(snap["objects"])
            self.query_one("#runbook-objects-title", Static).update(
                f"Objects ({len(snap['objects'])} of {snap['total']} shown)" if more > 0 else "Objects")
        if event is None:
            return
        if event.kind == "object":
            self._log(f"{event.object}: {event.status}" + (f" - {event.message}" if event.message else ""))
        elif event.kind == "step":
            self.countdown = ""
            self._status(f"{event.message} ({event.total} object(s))")
            self._log(f"> {event.message}")
        elif event.kind == "wait":
            self._status(f"Waiting: {event.pending} of {event.total} not there yet · gives up in "
                         f"{_clock(event.remaining_s or 0)}")

    def _set_countdown(self, left: float) -> None:
        self.countdown = f"next check in {left:.0f} s"
        self.query_one("#runbook-status", Static).update(Text(f"{self.status_text} · {self.countdown}"))

    def _ask_gate(self, request: GateRequest, error: str, answer: _Answer) -> None:
        names = ", ".join(request.objects[:5]) + (f" and {len(request.objects) - 5} more"
                                                  if len(request.objects) > 5 else "")
        body = f"{request.text}\n\nObjects: {names}"
        if error:
            body += f"\n\nNot confirmed: {error}"
        self._status(f"Waiting for your confirmation: {request.title}")

        def done(ok: bool | None) -> None:
            answer.set(request.expected if ok else None)

        self.app.push_screen(ConfirmModal(request.title, body, request.expected, label="IRREVERSIBLE"), done)

    def _show_preview(self, preview: RunPreview, answer: _Answer) -> None:
        self._status(f"Waiting for your go-ahead: {preview.summary()}")
        self.app.push_screen(RunbookPreviewModal(preview), lambda ok: answer.set(bool(ok)))

    def _not_started(self) -> None:
        self.running = False
        self._status("Not started: nothing was written.")
        self.notify("Runbook not started; nothing was written.", severity="information")
        if self.app.screen is self:
            self.app.pop_screen()

    def _show_manual(self, request: ManualRequest, answer: _Answer) -> None:
        self._manual = answer
        lines = [f"MANUAL STEP: {request.title}"]
        lines += [f"  {item.label}: {item.instructions}" + (f"  (now: {item.detail})" if item.detail else "")
                  for item in request.items[:20]]
        lines.append("Do it, then press c to check again (s stops here; resume later).")
        self._status("\n".join(lines))

    def _finished(self, outcome: RunOutcome | None, error: str | None) -> None:
        self.running = False
        self._manual = None
        self.outcome = outcome
        self.error = error
        if error:
            self._status(f"Stopped: {error}")
            self.notify(error, severity="error", timeout=20)
            return
        assert outcome is not None
        hint = ""
        if outcome.status not in ("completed", "aborted") and self.run_id:
            hint = f" · r resumes here, or: exocm runbook resume {self.run_id}"
        self._status(f"{outcome.message}{hint}")
        self._log(f"run {self.run_id}: {outcome.status}")
        self.notify(outcome.message, severity="information" if outcome.status == "completed" else "warning",
                    timeout=15)

    def _status(self, text: str) -> None:
        self.status_text = text
        self.query_one("#runbook-status", Static).update(Text(text))

    def _log(self, text: str) -> None:
        self.query_one("#runbook-log", RichLog).write(Text(text))

    # -- actions -----------------------------------------------------------------------------
    def action_check_again(self) -> None:
        if self._manual is not None:
            answer, self._manual = self._manual, None
            self._status("Checking…")
            answer.set(True)

    def action_stop_manual(self) -> None:
        if self._manual is not None:
            answer, self._manual = self._manual, None
            answer.set(False)

    def action_resume(self) -> None:
        if self.running or self.run_id is None:
            return
        if self.outcome is not None and self.outcome.status in ("completed", "aborted"):
            self.notify("This run is finished.", severity="information")
            return
        self._start()

    def action_stop_or_back(self) -> None:
        if self.running:
            self.cancel_event.set()
            self.action_stop_manual()
            self._status("Stopping at the next safe point… (the run is saved)")
            return
        self.app.pop_screen()


def _clock(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

