"""What a bridge needs from sign-in: a bearer token, refreshed before expiry and after a 401.

The protocol lives on the consumer's side (the bridge); `exocm.core.access.auth.MsalTokenProvider`
implements it with msal.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class TokenProvider(Protocol):
    """A source of bearer tokens for one endpoint."""

    @property
    def expires_at(self) -> float:
        """Epoch seconds when the current token expires (0 before the first token)."""
        ...

    @property
    def username(self) -> str | None:
        """The signed-in user's UPN for delegated tokens; None for app-only tokens."""
        ...

    def token(self) -> str:
        """A valid access token, refreshed when it is within the margin of expiry."""
        ...

    def refresh(self) -> str:
        """Drop the current token and get a new one (after the service answered 401)."""
        ...
