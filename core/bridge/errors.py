"""Typed bridge errors. Transports map protocol failures to these in one place each;
nothing above the bridge parses error strings."""
from __future__ import annotations


class BridgeError(Exception):
    """Base of every error a bridge raises. `message` is safe to show (no secrets)."""

    def __init__(self, message: str, *, cmdlet: str | None = None, identity: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cmdlet = cmdlet
        self.identity = identity


class NotFound(BridgeError):
    """The identity resolves to no object."""


class Ambiguous(BridgeError):
    """The identity resolves to more than one object."""


class PermissionDenied(BridgeError):
    """The caller lacks the role or scope for this cmdlet or parameter."""


class InvalidInput(BridgeError):
    """Unknown cmdlet, unknown parameter, bad filter, bad value: retrying will not help."""


class AuthFailed(BridgeError):
    """Credentials, tenant or token rejected."""


class Transient(BridgeError):
    """5xx, reset, timeout: safe to retry a read; a write must be read back first."""


class Throttled(Transient):
    """429 or EXO's concurrency error; wait `retry_after` seconds when the service said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class PageLost(Transient):
    """The answer to a follow-up page (an @odata.nextLink) was lost after it was sent: whether the
    service's cursor moved on is not documented, so the link is not sent again; the caller reads
    the whole result again from its start (docs/exchange-facts.md#retried-pages)."""


class IncompleteRead(BridgeError):
    """A read answered 200 with `@adminapi.errors` for records it left out, and reading those
    records again by identity did not bring them back; `errors` are the service's texts."""

    def __init__(self, message: str, *, errors: tuple[str, ...] = (), **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.errors = errors


class AppliedUnknown(BridgeError):
    """A write failed in a way that may have applied: the caller must read back."""


class ProtocolError(BridgeError):
    """The service answered something exocm will not follow (bad JSON, a nextLink to another
    host, an unknown endpoint): not retried."""
