"""The Bridge protocol: run Exchange cmdlets with named parameters, get plain records back.

Callers hold a Bridge and stay transport-blind (REST, PSRP, or the sandbox at another address).
Records are dicts keyed by Exchange's property names with normalised values: bool, int,
str, list[str], datetime (UTC, tz-aware), GUIDs as lower-case str, None.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .errors import BridgeError

Record = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One cmdlet invocation: name and named parameters (always bound, never pasted into script)."""

    cmdlet: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallResult:
    """Outcome of one Call inside invoke_many: records or a typed error, plus service warnings."""

    call: Call
    records: list[Record] = field(default_factory=list)
    error: BridgeError | None = None
    warnings: list[str] = field(default_factory=list)


@runtime_checkable
class Bridge(Protocol):
    """What every transport offers."""

    tenant: str
    kind: str  # "rest" | "psrp"

    def invoke(self, cmdlet: str, parameters: dict[str, Any] | None = None) -> list[Record]:
        """Run one cmdlet and return all its records (follows paging)."""
        ...

    def stream(
        self, cmdlet: str, parameters: dict[str, Any] | None = None, *, page_size: int = 1000
    ) -> Iterator[list[Record]]:
        """Run one read cmdlet and yield its records page by page."""
        ...

    def invoke_many(self, calls: Sequence[Call]) -> list[CallResult]:
        """Run many calls (batched where the transport can), one CallResult per call, in order."""
        ...

    def close(self) -> None:
        """Release connections and runspaces."""
        ...
