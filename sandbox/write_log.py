"""The sandbox's own record of every change made to the tenant (like Exchange's admin audit log).

Set `EXOCM_SANDBOX_WRITE_LOG=/path/file.jsonl` before the sandbox starts and every successful
write (an EXO or on-prem cmdlet that is not Get-*/Test-*, or a Graph license/membership change)
appends one JSON line: `{"at", "side", "operation", "identity", "parameters"}`. Tests count
writes here to prove a resumed runbook never repeated an action. Off when the variable is unset.
Parameter values are written as given (the sandbox has no secrets in cmdlet parameters; the
Connect-ExchangeOnline token never reaches the cmdlet layer).
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

ENV = "EXOCM_SANDBOX_WRITE_LOG"
_READ_VERBS = frozenset({"get", "test", "search"})
_lock = threading.Lock()


def is_write(cmdlet: str) -> bool:
    """True for cmdlets that change state (not Get-*, Test-*, Search-*)."""
    return cmdlet.split("-", 1)[0].strip().lower() not in _READ_VERBS


def log_write(side: str, operation: str, identity: Any, parameters: dict[str, Any] | None = None) -> None:
    """Append one write to the log named by EXOCM_SANDBOX_WRITE_LOG (no-op when unset)."""
    path = os.environ.get(ENV)
    if not path:
        return
    if parameters and str(parameters.get("WhatIf", "")).lower() in ("true", "$true", "1"):
        return
    line = json.dumps({"at": time.time(), "side": side, "operation": operation, "identity": str(identity),
                       "parameters": parameters or {}}, default=str, sort_keys=True)
    with _lock, open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
