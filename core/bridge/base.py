"""The Bridge protocol: run Exchange cmdlets with named parameters, get plain records back.

Callers hold a Bridge and stay transport-blind (REST, PSRP, or the sandbox at another address).
Records are dicts keyed by Exchange's property names with normalised values: bool, int,
str, list[str], datetime (UTC, tz-aware), GUIDs as lower-case str, None.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, Final, Protocol, runtime_checkable

from .errors import BridgeError

Record = dict[str, Any]
_READ_VERBS: Final = frozenset({"Get", "Test"})


def is_read_cmdlet(cmdlet: str) -> bool:
    """Get-* and Test-* only read; everything else may change state."""
    return cmdlet.split("-", 1)[0].capitalize() in _READ_VERBS


def identity_of(parameters: Mapping[str, Any] | None) -> str | None:
    """The call's -Identity as text (for error messages), or None."""
    value = parameters.get("Identity") if parameters else None
    return str(value) if value is not None else None


def counters(stats: Any) -> dict[str, Any]:
    """A bridge's counters (a dataclass with a `waits_s` list) as plain data: every other field
    as it is, in field order, then the waits summed as `waited_s`."""
    data = {f.name: getattr(stats, f.name) for f in fields(stats) if f.name != "waits_s"}
    data["waited_s"] = round(sum(stats.waits_s), 3)
    return data


def plain_parameters(value: Any) -> Any:
    """Parameter values as both transports send them: dates as ISO text, GUIDs as text, collections as lists."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain_parameters(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_parameters(v) for v in value]
    return value


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


@runtime_checkable
class PropertySelectingBridge(Protocol):
    """A bridge whose `stream()` can return only some properties of each record, selected where the
    records are made (PSRP: `| Select-Object -Property ...` in the remote pipeline), so less crosses
    the wire and less is deserialised. REST selects with `stream_bodies(select=...)` instead."""

    selects_properties: bool

    def stream(
        self, cmdlet: str, parameters: dict[str, Any] | None = None, *, page_size: int = 1000,
        properties: Sequence[str] | None = None,
    ) -> Iterator[list[Record]]:
        """Run one read cmdlet and yield its records page by page, with only `properties` when given."""
        ...
