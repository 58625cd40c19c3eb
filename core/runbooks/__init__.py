"""Remediation runbooks: step engine, persisted runs with an audit log, and the built-in runbooks.

Faces call:
    targets = resolve_identities(services.exo, [("--identity", "a@contoso.com")], source={...})
    state = new_run(get_runbook("dual-mailbox-keep-onprem"), targets, store=RunStore(), tenant=..., ...)
    outcome = RunExecutor(runbook, state, store, services, hooks=RunHooks(...)).run()
and `RunExecutor(...).run()` again with `store.load(run_id)` to resume.
"""
from __future__ import annotations

from .builtin import RUNBOOKS, get_runbook, runbooks_for_finding
from .engine import (
    Check,
    GateRequest,
    ManualItem,
    ManualRequest,
    Runbook,
    RunEvent,
    RunExecutor,
    RunHooks,
    RunOutcome,
    Services,
    Step,
    StepContext,
    confirmation_text,
)
from .preview import RunPreview, StepPreview, preview_run
from .state import RunLocked, RunState, RunStateError, RunStore, RunSummary
from .targets import (
    Targets,
    describe_targets,
    identities_from_csv,
    identities_from_findings,
    new_run,
    resolve_identities,
)

__all__ = [
    "RUNBOOKS",
    "Check",
    "GateRequest",
    "ManualItem",
    "ManualRequest",
    "RunEvent",
    "RunExecutor",
    "RunHooks",
    "RunLocked",
    "RunOutcome",
    "RunPreview",
    "RunState",
    "RunStateError",
    "RunStore",
    "RunSummary",
    "Runbook",
    "Services",
    "Step",
    "StepContext",
    "StepPreview",
    "Targets",
    "confirmation_text",
    "describe_targets",
    "get_runbook",
    "identities_from_csv",
    "identities_from_findings",
    "new_run",
    "preview_run",
    "resolve_identities",
    "runbooks_for_finding",
]
