"""What a runbook will do, shown before it starts: its steps, the objects, which steps write to the
tenant and which cannot be undone. Computed once here; the CLI (`exocm runbook run`) and the TUI
(the preview modal before a run) only present it, and both ask before the first write.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .engine import Runbook, Step, StepKind, confirmation_text
from .state import ObjectState

#: What each kind of step does, in the words both faces show.
KIND_NOTES: Final[dict[str, str]] = {
    "automatic": "reads only",
    "wait_until": "waits for a sync; reads only",
    "manual": "you do it by hand; exocm checks",
    "gate": "typed confirmation",
}


@dataclass(frozen=True)
class StepPreview:
    """One step as the preview shows it."""

    number: int
    id: str
    title: str
    kind: StepKind
    #: exocm changes the tenant (EXO, Graph or on-prem) in this step
    writes: bool
    #: the change cannot be undone (the gate before it asks for the typed confirmation)
    irreversible: bool

    @property
    def note(self) -> str:
        """'WRITES', 'WRITES, IRREVERSIBLE', or what the step does instead."""
        if self.writes:
            return "WRITES, IRREVERSIBLE" if self.irreversible else "WRITES"
        if self.kind == "gate" and self.irreversible:
            return "typed confirmation before an irreversible step"
        return KIND_NOTES.get(self.kind, self.kind)


@dataclass(frozen=True)
class RunPreview:
    """A runbook about to start on some objects of one tenant."""

    runbook: str
    title: str
    tenant: str
    label: str
    objects: tuple[str, ...]
    steps: tuple[StepPreview, ...]

    @property
    def count(self) -> int:
        """How many objects the run starts with."""
        return len(self.objects)

    @property
    def writing_steps(self) -> tuple[StepPreview, ...]:
        """The steps in which exocm writes to the tenant."""
        return tuple(s for s in self.steps if s.writes)

    @property
    def irreversible_steps(self) -> tuple[StepPreview, ...]:
        """The writing steps that cannot be undone."""
        return tuple(s for s in self.steps if s.writes and s.irreversible)

    @property
    def writes(self) -> bool:
        """True when the run may change the tenant (then the faces ask before starting)."""
        return bool(self.writing_steps)

    @property
    def first_write(self) -> StepPreview | None:
        """The first step that writes (None for a read-only runbook)."""
        return next(iter(self.writing_steps), None)

    @property
    def gate_confirmation(self) -> str | None:
        """The typed confirmation its gates ask for when every object reaches them (None without a gate);
        a gate asks for the count of objects that actually reach it."""
        return confirmation_text(self.tenant, self.count) if any(s.kind == "gate" for s in self.steps) else None

    def summary(self) -> str:
        """One line: objects, writing steps, irreversible steps."""
        writing, irreversible = self.writing_steps, self.irreversible_steps
        text = (f"{self.title}: {self.count} object(s) in tenant {self.label or self.tenant}; "
                f"{len(writing)} of {len(self.steps)} steps write to the tenant")
        if writing:
            text += f" (first: step {writing[0].number}, {writing[0].title})"
        if irreversible:
            numbers = ", ".join(str(s.number) for s in irreversible)
            text += f"; IRREVERSIBLE: step {numbers}"
            if self.gate_confirmation:
                text += f", only after the typed confirmation \"{self.gate_confirmation}\" at its gate"
        return text


def _writes(step: Step) -> bool:
    return step.kind == "automatic" and step.action is not None and step.writes


def preview_run(runbook: Runbook, objects: Sequence[ObjectState], *, tenant: str, label: str = "") -> RunPreview:
    """The preview of `runbook` started on `objects` (resolved targets) in `tenant`."""
    steps = tuple(StepPreview(number=i, id=s.id, title=s.title, kind=s.kind, writes=_writes(s),
                              irreversible=s.irreversible)
                  for i, s in enumerate(runbook.steps, start=1))
    return RunPreview(runbook=runbook.name, title=runbook.title, tenant=tenant, label=label,
                      objects=tuple(o.label for o in objects), steps=steps)
