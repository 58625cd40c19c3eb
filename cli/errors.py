"""Expected failures become ONE clear line on stderr and an exit code; never a traceback.

AuthFailed and PermissionDenied (a role or Graph permission to grant) -> 4, any other BridgeError
or ConfigError -> 2, Ctrl-C -> 130. The line is
the error's own message (written to carry no secret), with control characters made
inert so hostile text from the service cannot drive the terminal.
"""
from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
from exocm.core.access.config import ConfigError
from exocm.core.bridge.errors import AuthFailed, BridgeError, PermissionDenied

from . import exitcodes

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert(text: str) -> str:
    """`text` on one line with control characters (ESC, bidi overrides, ...) replaced by '?'."""
    return _CONTROL.sub("?", " ".join(str(text).split()))


def fail(message: str, code: int = exitcodes.ERROR) -> NoReturn:
    """Print `exocm: error: message` on stderr and exit with `code` (and log the line, without traceback)."""
    log.warning("exit %d: %s", code, message)
    click.echo(f"exocm: error: {inert(message)}", err=True)
    raise SystemExit(code)


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an expected failure."""
    if isinstance(exc, AuthFailed | PermissionDenied):
        return exitcodes.AUTH_FAILED
    return exitcodes.ERROR


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected exceptions raised inside the block into one line + exit code."""
    try:
        yield
    except AuthFailed as exc:
        fail(f"authentication failed: {exc.message}", exitcodes.AUTH_FAILED)
    except PermissionDenied as exc:
        fail(exc.message, exitcodes.AUTH_FAILED)
    except BridgeError as exc:
        fail(exc.message, exitcodes.ERROR)
    except ConfigError as exc:
        fail(str(exc), exitcodes.ERROR)
    except KeyboardInterrupt:
        click.echo("exocm: interrupted", err=True)
        raise SystemExit(exitcodes.INTERRUPTED) from None


def handle_errors(func: F) -> F:
    """Decorator form of `user_errors` for click commands."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with user_errors():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
