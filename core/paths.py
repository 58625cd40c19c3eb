"""Paths as text: quoted for the shell an admin types into, and read back from a plan or journal.

exocm prints commands with paths in them (`exocm apply PLAN --resume`) and records paths in
journals (`plan_file`). On Windows the admin's shell is PowerShell and paths carry a drive letter
and backslashes (`C:\\Users\\Jane Doe\\AppData\\Local\\exocm\\exocm\\plans\\p.json`); a journal
may be read on another machine than the one that wrote it (docs/platforms.md).
"""
from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath

# PowerShell takes these unquoted as one argument (a bare word): letters, digits and path punctuation.
_POWERSHELL_BARE = re.compile(r"[\w.\\/:+=~-]+")
# PowerShell treats the typographic single quotes like ' (about_Quoting_Rules): double each.
_POWERSHELL_SINGLE_QUOTES = re.compile("['\u2018\u2019\u201a\u201b]")


def _on_windows(windows: bool | None) -> bool:
    return sys.platform == "win32" if windows is None else windows


def shell_arg(value: str | os.PathLike[str], *, windows: bool | None = None) -> str:
    """`value` as one argument for the admin's shell: PowerShell on Windows, a POSIX shell elsewhere.

    Plain paths come back unchanged; a path with spaces or shell characters is quoted
    (single quotes in both shells).
    """
    text = os.fspath(value)
    if not _on_windows(windows):
        return shlex.quote(text)
    if text and _POWERSHELL_BARE.fullmatch(text) and not text.startswith("-"):
        return text
    return "'" + _POWERSHELL_SINGLE_QUOTES.sub(lambda m: m.group(0) * 2, text) + "'"


def recorded_path(text: object, *, windows: bool | None = None) -> Path | None:
    """A path read back from a plan, journal or state file; None when empty or not usable here.

    A path written on the other kind of system (`C:\\...` or `\\\\server\\share\\...` read on
    POSIX, `/home/...` read on Windows) names nothing on this one: None, rather than a relative
    path that would be looked up in the current directory.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    if _on_windows(windows):
        if PurePosixPath(text).is_absolute() and not PureWindowsPath(text).drive:
            return None
        return Path(text)
    if PureWindowsPath(text).drive:
        return None
    return Path(text)
