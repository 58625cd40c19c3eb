"""One WinRM shell = one PSRP runspace pool (psrpcore `ServerRunspacePool`) and its pipelines.

psrpcore objects are not thread-safe: every touch of the pool or a pipeline happens under the
shell's lock. Messages psrpcore queues are routed into one outgoing queue per target (the pool,
or one pipeline), so a Receive for a command only ever gets that command's data. Pipeline output
is serialised lazily, as Receives ask for it, so a 50,000-object result never sits in memory as
XML. Cmdlets run in a worker thread; a Receive waits on the shell's condition for data.

Private psrpcore parts used (pinned by `psrpcore<1`): `RunspacePool._send_buffer` (swapped to
route per target), `_fragment_counter` and `_payload.create_message` (to queue output that
`serialize.py` already rendered), and `Pipeline._change_state` (psrpcore has no public call to
fail a pipeline with a terminating error yet).
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psrpcore import (
    CreatePipelineEvent,
    GetAvailableRunspacesEvent,
    ServerPipeline,
    ServerRunspacePool,
    SetMaxRunspacesEvent,
    SetMinRunspacesEvent,
)
from psrpcore._payload import PSRPMessage, PSRPPayload, StreamType, create_message
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    NETException,
    PSInvocationState,
    PSRPMessageType,
)

from ..errors import CmdletError
from .serialize import record_to_clixml
from .sessions import CommandSpec, Outcome, Session

#: Output objects serialised per batch, and the initial bytes queued ahead of the client (raised
#: to two Receive envelopes once a Receive says how large its envelope may be).
_BATCH = 64
_HIGH_WATER = 256 * 1024

#: .NET base types an Exchange exception derives from (sandbox-abridged).
_EXCEPTION_BASES = ("System.Exception", "System.Object")


@dataclass
class PipelineRun:
    """A pipeline's progress: commands, outcome once computed, how far output was queued."""

    pipeline: ServerPipeline
    commands: list[CommandSpec] = field(default_factory=list)
    outcome: Outcome | None = None
    next_record: int = 0
    finalized: bool = False
    reported_done: bool = False
    stopped: bool = False


def error_record(err: CmdletError, cmdlet: str, target: str | None = None) -> ErrorRecord:
    """A PowerShell ErrorRecord for a tenant CmdletError, shaped like Exchange's."""
    exc = NETException(Message=err.message or "", HResult=-2146233087)
    exc.PSObject.type_names = [err.error_type, *_EXCEPTION_BASES]
    short = err.error_type.rsplit(".", 1)[-1]
    try:
        category = ErrorCategory[err.category]
    except KeyError:
        category = ErrorCategory.NotSpecified
    info = ErrorCategoryInfo(Category=category, Activity=cmdlet, Reason=short, TargetName=target or "")
    # Sandbox-made FullyQualifiedErrorId: Exchange's carries a hash code before the cmdlet class.
    return ErrorRecord(
        Exception=exc,
        CategoryInfo=info,
        TargetObject=target,
        FullyQualifiedErrorId=f"{short},{cmdlet}",
    )


class Shell:
    """A runspace pool on the sandbox WinRM endpoint, with its lock, queues and pipelines."""

    def __init__(self, shell_id: str, session: Session, owner: str, client_ip: str) -> None:
        self.shell_id = shell_id
        self.session = session
        self.owner = owner
        self.client_ip = client_ip
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.pool = ServerRunspacePool()
        self.queues: dict[uuid.UUID | None, list[PSRPMessage]] = {}
        self.runs: dict[uuid.UUID, PipelineRun] = {}
        self.last_used = time.monotonic()
        self.closed = False
        self.high_water = _HIGH_WATER

    # -- input -----------------------------------------------------------------------------
    def feed(self, data: bytes, pipeline_id: uuid.UUID | None = None) -> None:
        """Feed PSRP fragments from Create/Command/Send and act on complete messages."""
        with self.lock:
            self.last_used = time.monotonic()
            if pipeline_id is not None and pipeline_id not in self.pool.pipeline_table:
                # A pipeline must exist before its CreatePipeline message is processed.
                self.runs[pipeline_id] = PipelineRun(ServerPipeline(self.pool, pipeline_id))
            self.pool.receive_data(PSRPPayload(data, StreamType.default, pipeline_id))
            while (event := self.pool.next_event()) is not None:
                if isinstance(event, CreatePipelineEvent):
                    self._start(event)
                elif isinstance(event, SetMaxRunspacesEvent | SetMinRunspacesEvent | GetAvailableRunspacesEvent):
                    self.pool.runspace_availability_response(event.ci, True)
            self._route()
            self.changed.notify_all()

    def _start(self, event: CreatePipelineEvent) -> None:
        run = self.runs[event.pipeline_id]
        spec = event.pipeline
        run.commands = [
            CommandSpec(str(c.command_text), list(c.parameters), bool(c.is_script), bool(c.end_of_statement))
            for c in spec.commands
        ]
        run.pipeline.start()
        threading.Thread(target=self._execute, args=(run,), daemon=True, name=f"psrp-{event.pipeline_id}").start()

    def _execute(self, run: PipelineRun) -> None:
        """Run the cmdlets, then keep the pipeline's queue filled ahead of the client's Receives."""
        try:
            outcome = self.session.run(run.commands)
        except Exception as exc:  # a sandbox bug must still end the pipeline, never hang the client
            outcome = Outcome(
                terminating=CmdletError("System.InvalidOperationException", "NotSpecified",
                                        f"sandbox internal error: {type(exc).__name__}: {exc}")
            )
        with self.lock:
            run.outcome = outcome
        self._produce(run, outcome)

    def _produce(self, run: PipelineRun, outcome: Outcome) -> None:
        """Serialise output in batches, outside the shell lock, up to a high-water mark ahead of the
        client (so the server works while the client decodes), then finish the pipeline."""
        pid = run.pipeline.pipeline_id
        total = len(outcome)
        while True:
            with self.lock:
                while (not run.stopped and not self.closed
                       and sum(len(m) for m in self.queues.get(pid, ())) >= self.high_water):
                    self.changed.wait(0.5)
                if run.stopped or self.closed:
                    return
                first = run.next_record
            count = min(_BATCH, total - first)
            if count <= 0:
                break
            xmls = [record_to_clixml(outcome.record(i), outcome.cmdlet, selected=outcome.selected)
                    for i in range(first, first + count)]
            with self.lock:
                if run.stopped or self.closed:
                    return
                rpid = self.pool.runspace_pool_id
                queue = self.queues.setdefault(pid, [])
                for xml in xmls:
                    raw = create_message(False, PSRPMessageType.PipelineOutput, xml, rpid, pid)
                    queue.append(PSRPMessage(PSRPMessageType.PipelineOutput, bytearray(raw), rpid, pid,
                                             self.pool._fragment_counter))
                run.next_record = first + count
                self.changed.notify_all()
        with self.lock:
            if not run.stopped and not self.closed:
                self._finish(run, outcome)
            self.changed.notify_all()

    def _finish(self, run: PipelineRun, outcome: Outcome) -> None:
        """Warnings and errors after the output, then the final pipeline state (lock held)."""
        pipeline = run.pipeline
        if pipeline.state == PSInvocationState.Running:
            cmdlet = outcome.cmdlet or (run.commands[0].name if run.commands else "")
            for text in outcome.warnings:
                pipeline.write_warning(text)
            for err in outcome.errors:
                rec = error_record(err, cmdlet)
                pipeline.write_error(rec.Exception, rec.CategoryInfo, rec.TargetObject, rec.FullyQualifiedErrorId)
            if outcome.terminating is not None:
                first = run.commands[0].name if run.commands else ""
                pipeline._change_state(PSInvocationState.Failed, error_record(outcome.terminating, first))
            else:
                pipeline.complete()
        run.finalized = True
        self._route()

    def _route(self) -> None:
        buffer: list[PSRPMessage] = self.pool._send_buffer
        if buffer:
            for msg in buffer:
                self.queues.setdefault(msg.pipeline_id, []).append(msg)
            buffer.clear()

    # -- output ----------------------------------------------------------------------------
    def _has_data(self, target: uuid.UUID | None) -> bool:
        if self.queues.get(target):
            return True
        run = self.runs.get(target) if target is not None else None
        return run is not None and run.finalized and not run.reported_done

    def receive(self, target: uuid.UUID | None, budget: int, deadline: float,
                abandoned: Callable[[], bool] = lambda: False) -> tuple[bytes | None, bool]:
        """Wait until `target` has data (or `deadline`), then return up to `budget` bytes of fragments.

        Returns (payload or None on timeout, whether the command is done).
        """
        with self.lock:
            while not self._has_data(target) and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or abandoned():
                    return None, False
                self.changed.wait(min(remaining, 0.5))
            self.last_used = time.monotonic()
            self.high_water = max(self.high_water, 2 * budget)
            run = self.runs.get(target) if target is not None else None
            payload = self._take(target, budget)
            done = run is not None and run.finalized and not self.queues.get(target)
            if done and run is not None:
                run.reported_done = True
            self.changed.notify_all()  # the producer may refill now
            return payload, done

    def _take(self, target: uuid.UUID | None, amount: int) -> bytes | None:
        queue = self.queues.get(target)
        if not queue:
            return None
        saved = self.pool._send_buffer
        self.pool._send_buffer = queue
        try:
            payload: Any = self.pool.data_to_send(amount)
        finally:
            self.pool._send_buffer = saved
        return bytes(payload.data) if payload is not None else None

    # -- control ---------------------------------------------------------------------------
    def signal(self, pipeline_id: uuid.UUID, code: str) -> None:
        """ctrl_c stops a running pipeline; terminate forgets a finished one."""
        with self.lock:
            self.last_used = time.monotonic()
            run = self.runs.get(pipeline_id)
            if run is None:
                return
            if code.endswith("ctrl_c") and run.pipeline.state == PSInvocationState.Running:
                run.stopped = True
                run.finalized = True
                self.queues.pop(pipeline_id, None)
                run.pipeline.stop()
                self._route()
            elif code.endswith("Terminate") or code.endswith("terminate"):
                self.runs.pop(pipeline_id, None)
                self.queues.pop(pipeline_id, None)
                self.pool.pipeline_table.pop(pipeline_id, None)
            self.changed.notify_all()

    def close(self) -> None:
        """Drop the pool and wake every waiting Receive."""
        with self.lock:
            self.closed = True
            self.runs.clear()
            self.queues.clear()
            self.changed.notify_all()
