"""The signals that ask a long run (apply, the sandbox server) to stop cleanly, on each platform.

POSIX: SIGTERM (`kill`, a service manager). Windows has no SIGTERM sender and no SIGKILL; what it
delivers is Ctrl+C (SIGINT, a KeyboardInterrupt, handled by the caller) and Ctrl+Break, which
Python receives as SIGBREAK, as it does a closed console window (CTRL_CLOSE_EVENT) and a logoff or
shutdown. Windows ends the process soon after a close event (docs/platforms.md): the apply
journal does not depend on the handler running, because every record is already written and
fsynced when it is appended.
"""
from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], None]

#: Tried in this order; each is used where the `signal` module has it (a seam for tests).
STOP_SIGNAL_NAMES: tuple[str, ...] = ("SIGTERM", "SIGBREAK")


def stop_signals() -> list[int]:
    """The stop signals this platform has: SIGTERM everywhere Python defines it, SIGBREAK on Windows."""
    return [int(getattr(signal, name)) for name in STOP_SIGNAL_NAMES if hasattr(signal, name)]


@contextlib.contextmanager
def on_stop_signals(handler: Handler) -> Iterator[list[int]]:
    """Call `handler` on each stop signal inside the block; the previous handlers come back after.

    Yields the signals installed. Outside the main thread nothing is installed (Python allows
    signal handlers only there).
    """
    installed: list[tuple[int, Any]] = []  # Any: signal's handler type is private to typeshed
    try:
        for signum in stop_signals():
            try:
                previous = signal.signal(signum, handler)
            except (ValueError, OSError):  # not the main thread, or a signal this OS refuses
                continue
            installed.append((signum, previous))
        yield [signum for signum, _ in installed]
    finally:
        for signum, earlier in reversed(installed):
            signal.signal(signum, earlier)


def ignore_further_interrupts() -> None:
    """Ignore Ctrl+C from now on: `cli.main.main` calls it when a command exits 130 (interrupted).

    A second Ctrl+C while the process ends (its exit handlers, the threads and worker processes it
    waits for, the interpreter's teardown) would otherwise end it by the signal itself (exit status
    -2 rather than 130). SIG_IGN, not a Python handler: the interpreter puts Python-level handlers
    back to the default early in its teardown, while an ignored signal stays ignored to the end.
    Only for the way out of a command (a process started after it would inherit the ignored
    signal); only the main thread may change a handler.
    """
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
