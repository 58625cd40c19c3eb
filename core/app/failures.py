"""One line for a failure the user sees, decided once for both faces.

An *expected* failure (the service said no, a file is bad, a plan is refused, ...) is its own
message, one line, no traceback; it is logged as a WARNING line. Anything else is a bug: its
traceback goes to the log file (core/logs.py) and the line says `internal error: ...` and names
that file, so an admin has something to send.
"""
from __future__ import annotations

import logging

from .. import logs
from ..access.config import ConfigError
from ..bridge.errors import BridgeError
from ..execute.apply import ApplyRefused
from ..execute.journal import JournalError
from ..execute.tenant_default import TenantDefaultError
from ..execute.undo import UndoError
from ..inventory.fetch import InventoryCancelled
from ..inventory.onprem import OnPremFormatError
from ..plan.planfile import PlanError
from ..plan.selection import SelectionError
from ..runbooks.state import RunStateError

log = logging.getLogger(__name__)

#: Failures exocm expects and explains in their own message (never a bug).
EXPECTED: tuple[type[BaseException], ...] = (
    BridgeError, ConfigError, PlanError, SelectionError, ApplyRefused, JournalError, UndoError,
    TenantDefaultError, RunStateError, OnPremFormatError, InventoryCancelled, OSError,
)


def is_expected(exc: BaseException, also: tuple[type[BaseException], ...] = ()) -> bool:
    """True when `exc` is a failure exocm expects (its message is meant for the user); `also` adds the
    types the caller expects besides (e.g. ValueError from a file the user chose)."""
    return isinstance(exc, EXPECTED + also)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of `str(exc)`, else the exception's class name."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__


def internal_error_line(exc: BaseException, what: str = "") -> str:
    """Log `exc` with its traceback and return `internal error: ...` naming the log file."""
    log.error("internal error%s: %s: %s", f" in {what}" if what else "", type(exc).__name__, exc,
              exc_info=(type(exc), exc, exc.__traceback__))
    return f"internal error: {type(exc).__name__}: {logs.redact(first_line(exc))} ({logs.where_to_look()})"


def failure_line(exc: BaseException, what: str = "", also: tuple[type[BaseException], ...] = ()) -> str:
    """The one line to show for `exc`: its own message when expected (logged without traceback), else
    an internal error (traceback logged, the line names the log file). `what` says what was running;
    `also`: types the caller expects besides EXPECTED."""
    if is_expected(exc, also):
        log.warning("%s failed: %s", what or "operation", first_line(exc))
        return first_line(exc)
    return internal_error_line(exc, what)
